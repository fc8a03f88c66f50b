"""The attendance module's staff pages in headless Chromium, used like an employee uses them:
sign in through the development sign-in, check in with the phone's position overridden
outside the fence (refused, with the distance) and inside it (recorded), then check out; go
offline, check in, come back online and see the record uploaded once (one record for its key
in the database) with its outcome; the check-in page opening with the server gone (service
worker); my day, my month and my leave on /saya, with a leave request sent from its form.
Every page at 360x740 and 1280x800 with screenshots, axe-clean, no console error, no failed
request, no other origin."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from pamong.testing import wait_until
from tests.browser import harness
from tests.integration.attendance_support import (
    API,
    FAR,
    NEAR,
    NIP_STAFF,
    OFFICE,
    checkin,
    count_from_midnight,
    seed_directory,
    token,
)

pytestmark = pytest.mark.browser
OFFLINE = ("net::ERR_INTERNET_DISCONNECTED",)


@pytest.fixture
def site(request, config):
    """The attendance service with its pages and the development sign-in, on a free port,
    with the test Pemda in its directory replica."""
    from services.attendance.service import AttendanceService

    served = harness.serve(
        request, config, AttendanceService, PAGES_DEV_SIGNIN=True,
        DIRECTORY_SNAPSHOT_ON_EMPTY=False, ATTENDANCE_CONFIG_CACHE_SECONDS=0,
        ATTENDANCE_CLOSE_INTERVAL_SECONDS=0)
    seed_directory(config)
    return served


def today():
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date()


def signed_in(browser, site, nip=NIP_STAFF):
    harness.sign_in(browser, site.url, token(site.client, nip))


def ready(browser):
    """The check-in page knows who I am and where I am: its button is enabled."""
    harness.wait_for_text(browser, "#siapa", "Budi Prasetyo")
    harness.wait_for(browser, lambda d: d.find_element(By.ID, "tombol").is_enabled(),
                     message="the check-in button enabled")
    harness.wait_for_text(browser, "#jarak", "m")


def press(browser):
    browser.find_element(By.ID, "tombol").click()
    return harness.wait_for(browser, lambda d: (lambda box: box if box.is_displayed() and
                                                box.get_attribute("data-tone") else False)(
        d.find_element(By.ID, "jawaban")), message="the answer")


def stored_keys(site, nip=NIP_STAFF):
    day = site.db.days.find_one({"nip": nip}) or {}
    return [r["key"] for r in day.get("records", ())]


# -- every page ------------------------------------------------------------------------------

def test_check_in_page_renders_clean_on_a_phone_and_a_desktop(browser, site, page_check):
    signed_in(browser, site)
    harness.set_geolocation(browser, *NEAR, accuracy=12)
    shots = page_check(f"{site.url}/presensi", "attendance-presensi")
    assert len(shots) == 2
    harness.wait_for_text(browser, "#tempat", "Kantor Dinas Kesehatan")
    harness.wait_for_text(browser, "#akurasi", "±12 m")
    harness.wait_for_text(browser, "#perkiraan", "di dalam area")


def test_my_day_page_renders_clean_on_a_phone_and_a_desktop(browser, site, page_check):
    count_from_midnight(site.client)
    assert checkin(site.client, NIP_STAFF).status_code == 201
    leave = site.client.request("POST", f"{API}/leave", token=token(site.client, NIP_STAFF),
                                json={"type": "CS", "start": today().isoformat(),
                                      "end": today().isoformat(), "reason": "demam tinggi"})
    assert leave.status_code == 201, leave.text
    signed_in(browser, site)
    page_check(f"{site.url}/saya", "attendance-saya")
    harness.wait_for_text(browser, "#hari-catatan", "Kantor Dinas Kesehatan")
    harness.wait_for_text(browser, "#cuti-daftar", "Cuti sakit")
    harness.wait_for_text(browser, "#bulan-isi", "Hadir")
    harness.wait_for_text(browser, "#cuti-saldo", "Sisa cuti tahunan")


def test_not_signed_in_goes_to_the_sign_in_page_and_back(browser, site):
    harness.open_page(browser, f"{site.url}/presensi")
    harness.wait_for_path(browser, "/masuk")
    assert "next=%2Fpresensi" in browser.current_url


# -- checking in -----------------------------------------------------------------------------

def test_sign_in_then_check_in_outside_and_inside_the_fence(browser, site):
    harness.set_geolocation(browser, *FAR, accuracy=8)
    harness.open_page(browser, f"{site.url}/masuk?next=/presensi")
    Select(browser.find_element(By.ID, "dev-role")).select_by_value("pegawai")
    Select(browser.find_element(By.ID, "dev-nip")).select_by_value(NIP_STAFF)
    browser.find_element(By.CSS_SELECTOR, "#dev-form button[type=submit]").click()
    harness.wait_for_path(browser, "/presensi")
    harness.wait_until_settled(browser)
    ready(browser)
    assert browser.find_element(By.ID, "tombol").text == "Presensi masuk"

    # outside: out, with how far and what the place accepts
    answer = press(browser)
    assert answer.get_attribute("data-tone") == "bad"
    assert "status-bad" in answer.get_attribute("class")
    assert browser.find_element(By.ID, "jawaban-kata").text == "Di luar area"
    why = browser.find_element(By.ID, "jawaban-alasan").text
    assert "1,1 km dari Kantor Dinas Kesehatan" in why and "batasnya 100 m" in why
    assert stored_keys(site) == []
    refused = site.db.days.find_one({"nip": NIP_STAFF})["refused"]
    assert len(refused) == 1 and refused[0]["reason"] == "outside"
    harness.screenshot(browser, "attendance-presensi-outside")

    # inside: in, recorded, and the button turns to check-out
    harness.set_geolocation(browser, *NEAR, accuracy=8)
    harness.wait_for_text(browser, "#perkiraan", "di dalam area")
    answer = press(browser)
    assert answer.get_attribute("data-tone") == "ok"
    assert browser.find_element(By.ID, "jawaban-kata").text == "Di dalam area"
    assert "Presensi masuk tercatat" in browser.find_element(By.ID, "jawaban-alasan").text
    assert "Kantor Dinas Kesehatan" in browser.find_element(By.ID, "jawaban-rincian").text
    harness.wait_for_text(browser, "#tombol", "Presensi pulang")
    harness.wait_for_text(browser, "#hari-ini", "Masuk")
    assert len(stored_keys(site)) == 1
    harness.screenshot(browser, "attendance-presensi-inside")

    # the check-out: one more record, kind out
    answer = press(browser)
    harness.wait_for_text(browser, "#jawaban-alasan", "Presensi pulang tercatat")
    day = site.db.days.find_one({"nip": NIP_STAFF})
    assert [r["kind"] for r in day["records"]] == ["in", "out"]
    harness.assert_page_clean(browser, allow_failed=("/check-in 422",))


def test_offline_check_in_is_kept_then_uploaded_once(browser, site):
    signed_in(browser, site)
    harness.set_geolocation(browser, *NEAR, accuracy=15)
    harness.open_page(browser, f"{site.url}/presensi")
    ready(browser)

    harness.go_offline(browser)
    harness.wait_for_text(browser, "#koneksi", "luring")
    answer = press(browser)
    assert answer.get_attribute("data-tone") == "warn"
    assert browser.find_element(By.ID, "jawaban-kata").text == "Tersimpan di perangkat"
    item = harness.wait_for_element(browser, "#antrean li")
    key = item.get_attribute("data-key")
    assert "menunggu koneksi" in item.text
    assert key and stored_keys(site) == []
    # the button knows I am in, even before the server does
    assert browser.find_element(By.ID, "tombol").text == "Presensi pulang"
    harness.screenshot(browser, "attendance-presensi-offline")

    harness.go_online(browser)
    done = harness.wait_for_element(browser, f'#hasil li[data-key="{key}"]', timeout=15)
    assert done.get_attribute("data-outcome") == "accepted"
    assert "diterima: di dalam area" in done.text
    # the answer on screen now says what the server made of it
    harness.wait_for_text(browser, "#jawaban-alasan", "terkirim dan tercatat")
    assert browser.find_element(By.ID, "jawaban").get_attribute("data-tone") == "ok"
    assert stored_keys(site) == [key]
    day = site.db.days.find_one({"nip": NIP_STAFF})
    assert day["records"][0]["offline"] is True and "offline" in day["records"][0]["flags"]
    assert harness.execute(browser, "return JSON.parse(localStorage.getItem("
                                    "'pamong.presensi.queue'))") == []
    harness.wait_for(browser, lambda d: not d.find_element(By.ID, "antrean-kartu")
                     .is_displayed(), message="the queue emptied")
    uploads = [r for r in harness.requests_made(browser) if r.url.endswith("/records/offline")]
    assert len(uploads) == 1 and uploads[0].status == 200
    harness.screenshot(browser, "attendance-presensi-uploaded")

    # a reload uploads nothing again: still exactly one record for that key
    harness.open_page(browser, f"{site.url}/presensi")
    harness.wait_for_element(browser, f'#hasil li[data-key="{key}"]')
    assert not [r for r in harness.requests_made(browser)
                if r.url.endswith("/records/offline")]
    assert stored_keys(site) == [key]
    harness.assert_page_clean(browser)


def test_the_check_in_page_opens_without_the_server(browser, site):
    signed_in(browser, site)
    harness.set_geolocation(browser, *NEAR, accuracy=15)
    harness.open_page(browser, f"{site.url}/presensi")
    ready(browser)
    harness.wait_for(browser, lambda d: d.execute_script(
        "return !!(navigator.serviceWorker && navigator.serviceWorker.controller)"),
        timeout=15, message="the service worker controlling the page")
    site.container.stop()  # nothing answers on the port any more
    harness.go_offline(browser)
    browser.get(f"{site.url}/presensi")
    harness.wait_for_element(browser, "#tombol")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Presensi"
    # the page still knows the places it saw last time, and keeps a check-in for later
    harness.wait_for_text(browser, "#tempat", OFFICE["name"])
    harness.wait_for(browser, lambda d: d.find_element(By.ID, "tombol").is_enabled(),
                     message="the check-in button enabled")
    assert press(browser).get_attribute("data-tone") == "warn"
    harness.wait_for_element(browser, "#antrean li")


# -- my day, my month, my leave ---------------------------------------------------------------

def test_my_day_shows_today_the_month_and_leave_and_sends_a_request(browser, site):
    count_from_midnight(site.client)
    assert checkin(site.client, NIP_STAFF).status_code == 201
    signed_in(browser, site)
    harness.open_page(browser, f"{site.url}/saya")
    harness.wait_for_text(browser, "#siapa", "Budi Prasetyo")
    status = browser.find_element(By.ID, "hari-status").text
    assert status.startswith(("Hadir", "Hari libur kerja", "Libur"))
    harness.wait_for_text(browser, "#hari-rincian", "Masuk")
    harness.wait_for_text(browser, "#bulan-status", "hari sudah ditutup")
    assert browser.find_element(By.ID, "bulan").get_attribute("value") == today().isoformat()[:7]
    harness.wait_for_text(browser, "#cuti-saldo", "Sisa cuti tahunan")
    harness.wait_for_text(browser, "#cuti-daftar", "Belum ada permintaan cuti")

    Select(browser.find_element(By.ID, "cuti-jenis")).select_by_value("CS")
    for field, value in (("cuti-mulai", today()), ("cuti-selesai", today())):
        browser.execute_script("arguments[0].value = arguments[1]",
                               browser.find_element(By.ID, field), value.isoformat())
    browser.find_element(By.ID, "cuti-alasan").send_keys("Demam, surat dokter menyusul")
    browser.find_element(By.CSS_SELECTOR, "#cuti-form button[type=submit]").click()
    harness.wait_for_text(browser, "#cuti-form-status", "Permintaan cuti terkirim")
    item = harness.wait_for_text(browser, "#cuti-daftar li", "Cuti sakit")
    assert "Menunggu keputusan" in item.text
    leaves = wait_until(lambda: (site.db.people.find_one({"_id": NIP_STAFF}) or {})
                        .get("leaves"), timeout=5, message="the leave stored")
    assert [(e["type"], e["status"]) for e in leaves] == [("CS", "requested")]

    # cancelled from the list
    item.find_element(By.CSS_SELECTOR, "button").click()
    harness.wait_for_text(browser, "#cuti-daftar li", "Dibatalkan")
    assert site.db.people.find_one({"_id": NIP_STAFF})["leaves"][0]["status"] == "cancelled"
    harness.screenshot(browser, "attendance-saya-leave")
    harness.assert_page_clean(browser)

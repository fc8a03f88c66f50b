"""The permits module's public pages in headless Chromium, used like a person uses them: each
page at 360x740 and 1280x800 with screenshots, axe-clean, no console error, no failed
request, no other origin; an applicant tracks a file by typing the receipt's number and the
last 4 digits (right: the timeline; wrong digits and an unknown number: the same words); a
permit's QR page valid, revoked and unknown; the open dashboard shows a new application
within 2 s of its submission without a reload, and draws its charts."""

import time

import pytest
from selenium.webdriver.common.by import By

from tests.browser import harness
from tests.integration.permits_support import (
    NIK,
    head,
    officer,
    publish_type,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.browser
NOT_FOUND = "Tidak ada berkas dengan nomor pendaftaran dan 4 angka ini"


@pytest.fixture
def site(request, config):
    """The permits service with its pages on a free port, the test Pemda in its replica and
    one permit type published."""
    from services.permits.service import PermitsService
    from tests.integration.attendance_support import seed_directory

    served = harness.serve(
        request, config, PermitsService, DIRECTORY_SNAPSHOT_ON_EMPTY=False,
        PERMITS_REFERENCE_CACHE_SECONDS=0, PERMITS_SLA_INTERVAL_SECONDS=0,
        PERMITS_EXPIRY_INTERVAL_SECONDS=0, PERMITS_PRESENCE_PURGE_SECONDS=0)
    seed_directory(config, service="permits")
    publish_type(served.client)
    return served


def registered(client):
    return step(client, submitted(client), "register", officer(client))


def issued(client):
    app = registered(client)
    for action, token in (("start_review", officer(client)), ("recommend", reviewer(client)),
                          ("sign", head(client)), ("issue", officer(client))):
        app = step(client, app, action, token)
    return app


def code_of(site, app):
    return site.db.applications.find_one({"_id": app["id"]})["permit"]["code"]


def main_text(driver):
    return driver.find_element(By.TAG_NAME, "main").text


def test_every_public_page_renders_on_a_phone_and_a_desktop(page_check, site):
    app = issued(site.client)
    number = app["registration_number"]
    code = code_of(site, app)
    page_check(f"{site.url}/layanan", "permits-layanan")
    page_check(f"{site.url}/layanan/SIP", "permits-layanan-sip")
    page_check(f"{site.url}/lacak", "permits-lacak")
    page_check(f"{site.url}/lacak/{number}?digit={NIK[-4:]}", "permits-lacak-hasil")
    page_check(f"{site.url}/lacak?nomor={number}&digit=0000", "permits-lacak-tidak-ada",
               allow_failed=[f"/lacak?nomor={number}&digit=0000 404"])
    page_check(f"{site.url}/verifikasi/izin/{code}", "permits-verifikasi-berlaku")
    page_check(f"{site.url}/verifikasi/izin/TIDAKADA1234", "permits-verifikasi-tidak-dikenal",
               allow_failed=["/verifikasi/izin/TIDAKADA1234 404"])
    page_check(f"{site.url}/dasbor", "permits-dasbor")
    page_check(f"{site.url}/data", "permits-data")
    page_check(f"{site.url}/dasbor?lang=en", "permits-dasbor-en")


def track(driver, site, number, digits):
    harness.open_page(driver, f"{site.url}/lacak")
    field = driver.find_element(By.ID, "nomor")
    field.clear()
    field.send_keys(number)
    driver.find_element(By.ID, "digit").send_keys(digits)
    harness.submit(driver, driver.find_element(
        By.CSS_SELECTOR, "form[action='/lacak'] button[type=submit]"))
    return main_text(driver)


def test_an_applicant_tracks_a_file_by_typing(browser, site):
    number = registered(site.client)["registration_number"]

    words = track(browser, site, number.lower(), NIK[-4:])
    assert "Status sekarang: Terdaftar" in words and number in words
    steps = browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    assert [s.text.split("\n")[0] for s in steps] == ["Draf", "Diajukan", "Terdaftar"]
    assert "current" in steps[-1].get_attribute("class")
    assert "hari kerja tersisa" in words
    harness.assert_page_clean(browser)
    harness.assert_axe_clean(browser, "the timeline")
    harness.screenshot(browser, "permits-lacak-diketik")

    wrong = track(browser, site, number, "0000")
    assert NOT_FOUND in wrong and "Riwayat" not in wrong
    harness.assert_page_clean(browser, allow_failed=["&digit=0000 404"])
    unknown = track(browser, site, "REG-2000-999999", "0000")
    assert unknown.replace("REG-2000-999999", "N") == wrong.replace(number, "N")
    harness.assert_page_clean(browser, allow_failed=["&digit=0000 404"])

    # the number from a notification's link is filled in: only the digits to type
    harness.open_page(browser, f"{site.url}/lacak/{number}")
    assert browser.find_element(By.ID, "nomor").get_attribute("value") == number
    browser.find_element(By.ID, "digit").send_keys(NIK[-4:])
    browser.find_element(By.CSS_SELECTOR, "form[action='/lacak'] button[type=submit]").click()
    harness.wait_for_text(browser, "main", "Status sekarang: Terdaftar")


def test_a_permit_qr_page_says_valid_revoked_or_unknown(browser, site):
    app = issued(site.client)
    code = code_of(site, app)
    url = f"{site.url}/verifikasi/izin/{code}"
    harness.open_page(browser, url)
    assert browser.find_element(By.ID, "putusan").text == "BERLAKU"
    words = main_text(browser)
    assert app["permit"]["number"] in words and "Si** Am****" in words and "Siti" not in words
    harness.assert_page_clean(browser)

    step(site.client, app, "revoke", head(site.client), reason="Praktik tidak sesuai izin")
    harness.open_page(browser, url)
    assert browser.find_element(By.ID, "putusan").text == "DICABUT"
    assert "status-bad" in browser.find_element(By.CSS_SELECTOR, "section.verdict") \
        .get_attribute("class")
    assert "Praktik tidak sesuai" not in main_text(browser)  # the reason is not public
    harness.assert_page_clean(browser)
    harness.screenshot(browser, "permits-verifikasi-dicabut")

    # a code typed by hand: a wrong one is unknown, the right one (any case) is found
    browser.find_element(By.ID, "kode").send_keys("SALAHKETIK99")
    browser.find_element(By.CSS_SELECTOR, "form[action='/verifikasi/izin'] button").click()
    harness.wait_for_text(browser, "#putusan", "TIDAK DIKENAL")
    browser.find_element(By.ID, "kode").send_keys(code.lower())
    browser.find_element(By.CSS_SELECTOR, "form[action='/verifikasi/izin'] button").click()
    harness.wait_for_text(browser, "#putusan", "DICABUT")
    harness.assert_page_clean(browser, allow_failed=["/verifikasi/izin/SALAHKETIK99 404"])


def test_the_dashboard_shows_a_new_application_within_2_seconds_without_reload(browser, site):
    client = site.client
    harness.set_viewport(browser, 360, 740, mobile=True)
    harness.open_page(browser, f"{site.url}/dasbor")
    # connected: the script says so once the first event arrived, and drew the charts
    harness.wait_for_text(browser, "#dasbor-status", "Diperbarui otomatis", timeout=10)
    harness.wait_for_text(browser, "#grafik-status", "Belum ada data")  # no file yet
    assert browser.find_element(By.ID, "angka-diajukan").text == "0"
    harness.execute(browser, "window.__samePage = true;")

    submitted(client)
    at = time.monotonic()
    harness.wait_for(browser, lambda d: d.find_element(By.ID, "angka-diajukan").text == "1",
                     timeout=5, message="the submission on the open dashboard")
    took = time.monotonic() - at
    print(f"the submission showed on the open dashboard after {took:.2f} s")
    assert took <= 2.0
    assert harness.execute(browser, "return window.__samePage === true")  # no reload
    assert "Diajukan" in browser.find_element(By.ID, "tabel-status").text
    harness.wait_for_element(browser, "#grafik-status canvas")
    assert not harness.horizontal_overflow(browser)
    harness.assert_axe_clean(browser, "the live dashboard")
    harness.assert_page_clean(browser)
    harness.screenshot(browser, "permits-dasbor-langsung-360")

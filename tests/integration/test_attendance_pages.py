"""The attendance module's staff pages over HTTP, against the real broker and database:
``/presensi`` and ``/saya`` are shells (no personal data, strict CSP, no inline script or
style), their assets and the check-in page's service worker are served with the right type,
scope and caching, and ``GET /me/today`` gives an employee what the check-in page needs
(places, hours, presence, records). The offline queue's contract with the API is checked
here too: a check-in whose answer was lost and then uploaded offline with the same key is one
record, and the device time JavaScript writes (``toISOString``) is accepted."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.containers import ServiceContainer

from pamong.testing import HttpClient, free_port
from tests.integration.attendance_support import (
    API,
    FAR,
    NEAR,
    NIP_STAFF,
    NIP_STAFF2,
    OFFICE,
    Running,
    checkin,
    count_from_midnight,
    reading,
    seed_directory,
    token,
)

pytestmark = pytest.mark.integration

PAGES = ("/presensi", "/saya")
HTML = {"Accept": "text/html"}


@pytest.fixture
def site(request, config):
    """The attendance service with its pages and the development sign-in."""
    from services.attendance.service import AttendanceService

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "ATTENDANCE_CONFIG_CACHE_SECONDS": 0,
                "ATTENDANCE_CLOSE_INTERVAL_SECONDS": 0, "PAGES_DEV_SIGNIN": True}
    container = ServiceContainer(AttendanceService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config)
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings)


def today():
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date()


def me_today(client, nip=NIP_STAFF, **kwargs):
    return client.request("GET", f"{API}/me/today", token=token(client, nip), **kwargs)


def asset_urls(html):
    return re.findall(r'(?:src|href)="(/aset/[^"]+)"', html)


# -- the shells --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
def test_staff_pages_are_shells_with_a_strict_policy(site, path):
    client = site.client
    answer = client.request("GET", path, headers=HTML)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "worker-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert answer.headers["X-Request-ID"]
    assert answer.headers["Cache-Control"] == "no-cache"
    html = answer.text
    # no inline script or style: every script has a src, no style attribute or element
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "style=" not in html and "<style" not in html
    assert 'data-api="/api/attendance/v1"' in html
    assert "/aset/attendance/attendance.css?v=" in html
    assert "/aset/pamong.js?v=" in html
    # nothing personal in a shell: the script fetches it with the person's token
    for secret in (NIP_STAFF, "Budi Prasetyo", OFFICE["name"]):
        assert secret not in html
    assert 'href="/presensi"' in html and 'href="/saya"' in html
    assert '<html lang="id">' in html


def test_the_pages_speak_english_when_asked(site):
    html = site.client.request("GET", "/presensi?lang=en", headers=HTML).text
    assert '<html lang="en">' in html
    assert "Check-in" in html and "Your location" in html
    saya = site.client.request("GET", "/saya?lang=en", headers=HTML).text
    assert "Monthly recap" in saya and "Request leave" in saya


def test_the_check_in_page_has_its_button_answer_and_queue(site):
    html = site.client.request("GET", "/presensi", headers=HTML).text
    for element in ('id="tombol"', 'id="jawaban"', 'id="antrean"', 'id="hasil"',
                    'id="akurasi"', 'id="jarak"', 'data-sw="/presensi/sw.js"',
                    'data-scope="/presensi"', "/aset/attendance/presensi.js?v="):
        assert element in html
    assert 'aria-current="page">Presensi' in html


def test_the_leave_form_offers_what_a_person_may_request(site):
    html = site.client.request("GET", "/saya", headers=HTML).text
    options = re.findall(r'<option value="([A-Za-z]+)">', html)
    assert options == ["CT", "CB", "CS", "CM", "CAP", "CLTN"]  # not cuti bersama
    assert "/aset/attendance/saya.js?v=" in html
    assert 'id="cuti-form"' in html and 'type="month"' in html


def test_assets_are_served_with_their_type_and_cached_by_hash(site):
    client = site.client
    urls = set(asset_urls(client.request("GET", "/presensi", headers=HTML).text)) | set(
        asset_urls(client.request("GET", "/saya", headers=HTML).text))
    assert {u.split("?")[0] for u in urls} >= {
        "/aset/pamong.css", "/aset/pamong.js", "/aset/attendance/attendance.css",
        "/aset/attendance/presensi.js", "/aset/attendance/saya.js"}
    for url in urls:
        answer = client.request("GET", url, headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200, url
        kind = ("text/css" if ".css" in url else "image/svg+xml" if ".svg" in url
                else "javascript")
        assert kind in answer.headers["Content-Type"], url
        assert "immutable" in answer.headers["Cache-Control"], url
    stale = client.request("GET", "/aset/attendance/presensi.js?v=0000")
    assert "immutable" not in stale.headers.get("Cache-Control", "")


def test_the_service_worker_covers_the_page_and_names_its_assets_by_hash(site):
    client = site.client
    page = client.request("GET", "/presensi", headers=HTML).text
    answer = client.request("GET", "/presensi/sw.js")
    assert answer.status_code == 200
    assert "javascript" in answer.headers["Content-Type"]
    assert answer.headers["Service-Worker-Allowed"] == "/presensi"
    assert answer.headers["Cache-Control"] == "no-cache"
    worker = answer.text
    assert worker.startswith("self.PRESENSI_SW = {")
    linked = asset_urls(page)
    assert "/aset/attendance/presensi.js?v=" in "".join(linked)
    for url in linked:
        assert f'"{url}"' in worker, url  # the very URLs the page asks for
    assert '"pages": ["/presensi"]' in worker
    version = re.search(r'"version": "([0-9a-f]{12})"', worker).group(1)
    again = client.request("GET", "/presensi/sw.js",
                           headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304
    assert version in client.request("GET", "/presensi/sw.js").text  # stable between loads


def test_an_unknown_page_is_the_html_error_page(site):
    answer = site.client.request("GET", "/presensi/tidak-ada", headers=HTML)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in answer.headers


# -- what the pages read: GET /me/today --------------------------------------------------------

def test_me_today_gives_places_hours_presence_and_records(site):
    client = site.client
    answer = me_today(client)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["nip"] == NIP_STAFF and body["name"] == "Budi Prasetyo"
    assert body["unit"] == "3510.03.01" and body["unit_name"] == "Bidang Pelayanan Kesehatan"
    assert body["date"] == today().isoformat()
    assert body["timezone"] == "Asia/Jakarta"
    # the bidang has no office: its dinas's is where it records
    assert body["places"] == [{**OFFICE, "kind": "office"}]
    assert body["records"] == [] and body["refused"] == 0
    working = body["hours"] is not None
    assert body["presence"]["status"] == ("not_yet_in" if working else body["presence"]["status"])
    assert body["presence"]["status"] in ("not_yet_in", "day_off", "holiday")

    count_from_midnight(client)
    assert checkin(client, NIP_STAFF, position=FAR).status_code == 422
    stored = checkin(client, NIP_STAFF, key="pg-in-0001")
    assert stored.status_code == 201, stored.text
    body = me_today(client).json()
    assert [r["key"] for r in body["records"]] == ["pg-in-0001"]
    record = body["records"][0]
    assert record["kind"] == "in" and record["place"] == OFFICE["name"]
    assert "latitude" not in record  # the coordinates stay in the day document
    assert body["refused"] == 1
    if body["hours"] is not None:
        assert body["presence"]["status"] == "checked_in"
        assert body["presence"]["check_in"] is not None
    # another employee's day is not in mine
    assert me_today(client, NIP_STAFF2).json()["records"] == []


def test_me_today_lists_an_active_assignment_place(site):
    client = site.client
    place = {"name": "Puskesmas Genteng, vaksinasi", "latitude": FAR[0],
             "longitude": FAR[1], "radius_m": 150}
    made = client.request("POST", f"{API}/assignments",
                          token=token(client, roles=("opd_admin",), opd="3510.03"),
                          json={"employees": [NIP_STAFF], "start": today().isoformat(),
                                "end": today().isoformat(), "place": place,
                                "purpose": "vaksinasi massal"})
    assert made.status_code == 201, made.text
    places = me_today(client).json()["places"]
    assert places[0]["kind"] == "office"
    assert places[1] == {**place, "kind": "assignment", "assignment": made.json()["id"],
                         "purpose": "vaksinasi massal"}
    assert checkin(client, NIP_STAFF, position=FAR).status_code == 201
    assert me_today(client, NIP_STAFF2).json()["places"] == [{**OFFICE, "kind": "office"}]


def test_me_today_is_for_an_employee_signed_in(site):
    client = site.client
    assert client.request("GET", f"{API}/me/today").status_code == 401
    admin = token(client, roles=("admin",), opd="3510")
    assert client.request("GET", f"{API}/me/today", token=admin).status_code == 403
    no_nip = client.request("GET", f"{API}/me/today", token=token(client, None, sub="x-1"))
    assert no_nip.status_code == 403
    assert "NIP" in no_nip.json()["detail"]
    stranger = me_today(client, "199912312020121999")
    assert stranger.status_code == 403
    assert "directory" in stranger.json()["detail"]


def test_a_development_token_opens_the_pages_api(site):
    client = site.client
    minted = client.request("POST", "/auth/dev/token", json={"role": "pegawai",
                                                             "nip": NIP_STAFF})
    assert minted.status_code == 200, minted.text
    answer = client.request("GET", f"{API}/me/today", token=minted.json()["access_token"])
    assert answer.status_code == 200 and answer.json()["nip"] == NIP_STAFF


# -- the offline queue's contract --------------------------------------------------------------

def test_a_lost_answer_then_an_offline_upload_of_the_same_key_is_one_record(site):
    client, db = site.client, site.db
    key = "web-" + uuid.uuid4().hex
    # the live check-in reached the server but the phone never saw the answer
    assert checkin(client, NIP_STAFF, key=key).status_code == 201
    # so the page kept it and uploads it when the connection returns, twice (a retry)
    record = {"key": key, "kind": "in", **reading(device="web-phone")}
    for _ in range(2):
        answer = client.request("POST", f"{API}/records/offline",
                                token=token(client, NIP_STAFF), json={"records": [record]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcomes"][0]["outcome"] == "duplicate"
    day = db.days.find_one({"nip": NIP_STAFF})
    assert [r["key"] for r in day["records"]] == [key]


def test_the_device_time_javascript_writes_is_accepted(site):
    client = site.client
    # Date.prototype.toISOString(): UTC with milliseconds and a Z
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "123Z"
    live = {**reading(), "device_time": stamp}
    answer = client.request("POST", f"{API}/check-in", token=token(client, NIP_STAFF),
                            headers={"Idempotency-Key": "web-" + uuid.uuid4().hex}, json=live)
    assert answer.status_code == 201, answer.text
    earlier = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S.") + "0Z"
    offline = {"key": "web-" + uuid.uuid4().hex, "kind": "out", **reading(),
               "device_time": earlier}
    answer = client.request("POST", f"{API}/records/offline", token=token(client, NIP_STAFF2),
                            json={"records": [offline]})
    assert answer.status_code == 200, answer.text
    outcome = answer.json()["outcomes"][0]
    assert outcome["outcome"] == "accepted" and outcome["record"]["offline"] is True
    assert outcome["record"]["flags"] == ["offline"] or "offline" in outcome["record"]["flags"]


def test_a_refusal_carries_what_the_page_shows(site):
    answer = checkin(site.client, NIP_STAFF, position=FAR)
    assert answer.status_code == 422
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["reason"] == "outside" and problem["place"] == OFFICE["name"]
    assert 1000 < problem["distance_m"] < 1300 and problem["radius_m"] == 100
    vague = checkin(site.client, NIP_STAFF, position=NEAR, accuracy=250.0).json()
    assert vague["reason"] == "accuracy" and vague["accuracy_m"] == 250.0

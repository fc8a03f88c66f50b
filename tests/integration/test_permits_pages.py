"""The permits module's public pages over HTTP with the real broker and database: service
standards, tracking (the same limit and answers as ``GET /track``), permit verification, the
public dashboard and its stream (a new application within 2 s), the attendance read model fed
by ``attendance.checked_in``, open data. Status, headers, the text that matters, and no
personal data."""

import gzip
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from kombu import Connection
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from pamong.events.contracts import dump_data, load_data
from pamong.events.envelope import Event, load_envelope, new_event
from pamong.events.topology import bindings_of
from pamong.testing import HttpClient, done_marks, free_port, publish_raw, wait_until
from services.permits import presence
from services.permits.store import PRESENCE, local_today
from tests.integration.attendance_support import (
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    seed_directory,
)
from tests.integration.permits_support import (
    API,
    NIK,
    PHONE_E164,
    head,
    officer,
    publish_type,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.integration

LIMIT = 5
PERSONAL = (NIK, "Siti", "Aminah", PHONE_E164, "81234567890", "siti.aminah", "Ahmad Yani",
            "1990-12-05")
PAID = {"name": "Izin Reklame Insidentil", "fee": 250_000, "validity_months": 12}
HTML = "text/html; charset=utf-8"


@pytest.fixture
def service(request, config):
    """The permits service with its pages: a small tracking limit keyed on ``X-Real-IP`` (a
    test plays several clients), quick streams, its container for the timers."""
    from services.permits.service import PermitsService

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                "PERMITS_SLA_INTERVAL_SECONDS": 0, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0,
                "PERMITS_HEADCOUNT_SECONDS": 0, "PERMITS_PRESENCE_PURGE_SECONDS": 0,
                "PERMITS_TRACK_PER_MINUTE": LIMIT, "PERMITS_CLIENT_IP_HEADER": "X-Real-IP",
                "PERMITS_STREAM_HEARTBEAT_SECONDS": 2, "PERMITS_STREAM_MAX_SECONDS": 60}
    container = ServiceContainer(PermitsService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="permits")
    return SimpleNamespace(client=HttpClient(f"http://127.0.0.1:{port}", config), db=db,
                           container=container, config=settings,
                           url=f"http://127.0.0.1:{port}")


def page(client, path, ip="10.9.0.1", **kwargs):
    """A browser's GET of a page (no language remembered from an earlier ``?lang=``)."""
    client.session.cookies.clear()
    headers = {"Accept": "text/html", "X-Real-IP": ip, **kwargs.pop("headers", {})}
    return client.request("GET", path, headers=headers, allow_redirects=False, **kwargs)


def text_of(html):
    """The visible words of a page, one space between them (for phrases split over tags)."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def assert_page(r, status=200, cache=None):
    assert r.status_code == status, r.text[:2000]
    assert r.headers["Content-Type"] == HTML
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    if cache:
        assert r.headers["Cache-Control"] == cache
    return r.text


def registered(client):
    publish_type(client)
    return step(client, submitted(client), "register", officer(client))


def issued(client, **changes):
    publish_type(client, **changes)
    app = step(client, submitted(client), "register", officer(client))
    for action, token in (("start_review", officer(client)), ("recommend", reviewer(client)),
                          ("sign", head(client)), ("issue", officer(client))):
        app = step(client, app, action, token)
    return app


def collected(client):
    app = issued(client)
    return step(client, app, "collect", officer(client))


def verdict_of(html):
    return re.search(r'<section class="card verdict.*?</section>', html, re.S).group(0)


def code_of(db, app_id):
    return db.applications.find_one({"_id": app_id})["permit"]["code"]


# -- service standards ----------------------------------------------------------------------------

def test_service_standards_list_every_type_in_force_with_its_standard(service):
    client = service.client
    publish_type(client)  # SIP, free, 5 working days
    publish_type(client, code="REKLAME", **PAID)
    publish_type(client, code="LAMA", name="Izin yang tidak dibuka lagi", active=False)
    html = assert_page(page(client, "/layanan"), cache="no-cache")
    words = text_of(html)
    assert "Surat Izin Praktik Perawat (SIP)" in words and "Izin Reklame Insidentil" in words
    assert "Izin yang tidak dibuka lagi" not in words  # not in force
    assert "5 hari kerja" in words and "Gratis" in words and "Rp 250.000" in words
    assert "UU 17/2023 tentang Kesehatan; Permenkes 26/2019" in words
    assert "Surat Tanda Registrasi (STR) yang masih berlaku" in words  # a requirement
    assert "Verifikasi teknis" in words  # a stage
    assert "5 tahun" in words and "1 tahun" in words  # validity
    assert "Yang perlu dibawa atau disiapkan" in words and "Dinas Kesehatan" in words
    english = text_of(assert_page(page(client, "/layanan?lang=en")))
    assert "Free" in english and "5 working days" in english and "Rp 250,000" in english

    detail = text_of(assert_page(page(client, "/layanan/sip")))
    assert "Surat Izin Praktik Perawat (SIP)" in detail and "Pas foto 4x6 berlatar merah" in detail
    assert "jika ada" in detail  # the optional requirement says so
    old = text_of(assert_page(page(client, "/layanan/LAMA")))
    assert "tidak menerima permohonan baru" in old
    missing = page(client, "/layanan/TIDAKADA")
    assert "Jenis izin ini tidak ada" in assert_page(missing, 404)


# -- tracking -------------------------------------------------------------------------------------

def test_tracking_shows_the_timeline_and_days_and_no_personal_data(service):
    client = service.client
    app = registered(client)
    number = app["registration_number"]
    form = assert_page(page(client, "/lacak"), cache="no-store")
    assert 'action="/lacak"' in form and 'method="get"' in form
    assert f"{LIMIT} kali per menit" in text_of(form)  # the limit in plain words
    prefilled = assert_page(page(client, f"/lacak/{number}"), cache="no-store")
    assert f'value="{number}"' in prefilled and "Riwayat" not in prefilled

    found = assert_page(page(client, f"/lacak?nomor={number.lower()}&digit={NIK[-4:]}"),
                        cache="no-store")
    words = text_of(found)
    assert number in words and "Status sekarang: Terdaftar" in words
    assert "Diajukan" in words and "Draf" in words  # the timeline
    assert "0 hari kerja terpakai dari 5" in words and "5 hari kerja tersisa" in words
    assert "Perkiraan selesai paling lambat" in words
    for secret in PERSONAL:
        assert secret not in found
    by_phone = page(client, f"/lacak/{number}?digit={PHONE_E164[-4:]}")
    assert "Status sekarang: Terdaftar" in text_of(assert_page(by_phone, cache="no-store"))


def test_a_wrong_number_and_wrong_digits_render_the_same_page(service):
    client = service.client
    number = registered(client)["registration_number"]
    unknown_number = "REG-2000-999999"
    wrong = page(client, f"/lacak?nomor={number}&digit=0000", ip="10.9.1.1")
    unknown = page(client, f"/lacak?nomor={unknown_number}&digit=0000", ip="10.9.1.2")
    assert wrong.status_code == unknown.status_code == 404
    assert "Berkas tidak ditemukan" in text_of(wrong.text)
    assert wrong.text.replace(number, "N") == unknown.text.replace(unknown_number, "N")
    assert wrong.headers["Cache-Control"] == unknown.headers["Cache-Control"] == "no-store"


def test_malformed_input_shows_the_form_again_and_is_not_counted(service):
    client = service.client
    for _ in range(LIMIT + 2):
        r = page(client, "/lacak?nomor=123&digit=12a", ip="10.9.2.1")
        words = text_of(assert_page(r, 422))
        assert "Nomor pendaftaran tertulis seperti REG-2026-000123" in words
        assert "Isi tepat 4 angka" in words
    # never counted: the same client may still look a file up
    r = page(client, "/lacak?nomor=REG-2000-000001&digit=1234", ip="10.9.2.1")
    assert r.status_code == 404


def test_the_page_and_the_api_share_the_rate_limit_and_429_says_when(service):
    client = service.client
    wait_until(lambda: 60 - time.time() % 60 >= 10, timeout=15, message="room in the minute")
    ip = "10.9.3.1"
    for n in range(LIMIT):
        if n % 2:
            r = client.request("GET", f"{API}/track", headers={"X-Real-IP": ip},
                               params={"number": "REG-2000-000001", "last4": "1234"})
        else:
            r = page(client, "/lacak?nomor=REG-2000-000001&digit=1234", ip=ip)
        assert r.status_code == 404
    refused = page(client, "/lacak?nomor=REG-2000-000001&digit=1234", ip=ip)
    words = text_of(assert_page(refused, 429, cache="no-store"))
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert "Terlalu banyak percobaan" in words
    assert f"Silakan coba lagi dalam {wait} detik" in words
    assert f"hanya boleh mencoba {LIMIT} kali dalam satu menit" in words
    # the API is refused too, and another client is not
    assert client.request("GET", f"{API}/track", headers={"X-Real-IP": ip}, params={
        "number": "REG-2000-000001", "last4": "1234"}).status_code == 429
    assert page(client, "/lacak?nomor=REG-2000-000001&digit=1234",
                ip="10.9.3.2").status_code == 404


# -- verification ---------------------------------------------------------------------------------

def test_verification_of_a_valid_then_revoked_permit(service):
    client, db = service.client, service.db
    app = issued(client)
    code = code_of(db, app["id"])
    html = assert_page(page(client, f"/verifikasi/izin/{code}"), cache="no-store")
    words = text_of(html)
    assert "status-ok" in html and "BERLAKU" in words
    assert app["permit"]["number"] in words and "Si** Am****" in words
    assert "Surat Izin Praktik Perawat (SIP)" in words and "Dinas Kesehatan" in words
    for secret in PERSONAL:
        assert secret not in html
    retyped = page(client, f"/verifikasi/izin/{code.lower()}").text
    assert verdict_of(retyped) == verdict_of(html)
    step(client, app, "revoke", head(client), reason="Praktik tidak sesuai izin")
    revoked = assert_page(page(client, f"/verifikasi/izin/{code}"), cache="no-store")
    assert "status-bad" in revoked and "DICABUT" in text_of(revoked)
    assert "Dicabut pada" in text_of(revoked)


def test_verification_of_an_expired_permit(service):
    client, db = service.client, service.db
    app = issued(client)
    until = date.fromisoformat(app["permit"]["valid_until"])
    with entrypoint_hook(service.container, "expiry_timer") as expiry:
        expiry(today=until + timedelta(days=1))
    html = assert_page(page(client, f"/verifikasi/izin/{code_of(db, app['id'])}"))
    assert "status-warn" in html and "TIDAK BERLAKU LAGI" in text_of(html)


def test_an_unknown_code_is_a_404_in_the_verification_layout(service):
    client = service.client
    for code in ("ABCDEFGHJKLM", "x", "bukan kode"):
        html = assert_page(page(client, f"/verifikasi/izin/{code}"), 404, cache="no-store")
        assert "verdict-izin" in html and "status-unknown" in html
        assert "TIDAK DIKENAL" in text_of(html)
        assert "Halaman tidak ditemukan" not in html  # not the generic error page
    typed = page(client, "/verifikasi/izin?kode=abcdefghjklm")
    assert typed.status_code == 303
    assert typed.headers["Location"].endswith("/verifikasi/izin/ABCDEFGHJKLM")
    assert_page(page(client, "/verifikasi/izin"), cache="no-store")


# -- the dashboard --------------------------------------------------------------------------------

def sse(response):
    """``(event, data)`` of a text/event-stream, as they arrive."""
    event, data = None, []
    for raw in response.iter_lines(chunk_size=1):
        line = raw.decode()
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def figure(html, element_id):
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    return found.group(1).strip() if found else None


def test_the_dashboard_page_shows_aggregates_only(service):
    client = service.client
    publish_type(client)
    empty = assert_page(page(client, "/dasbor"), cache="no-cache")
    assert figure(empty, "angka-diajukan") == "0"
    assert 'id="presensi-kosong"' in empty  # no attendance data: said so
    assert 'data-stream="/dasbor/stream?lang=id"' in empty
    submitted(client)
    html = wait_until(lambda: (lambda h: h if figure(h, "angka-diajukan") == "1" else None)(
        page(client, "/dasbor").text), timeout=15, message="the submission on the dashboard")
    words = text_of(html)
    assert "Diajukan" in words and "Dinas Kesehatan" in words
    assert figure(html, "angka-diproses") == "1"
    for secret in PERSONAL:
        assert secret not in html
    assert "vendor/uPlot.iife.min.js" in html and "permits/dasbor.js" in html
    gzipped = client.request("GET", "/dasbor", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert gzipped.headers["Content-Encoding"] == "gzip"
    assert b"angka-diajukan" in gzip.decompress(gzipped.raw.read())


def test_the_stream_shows_a_new_application_within_2_seconds(service):
    client = service.client
    publish_type(client)
    response = client.request("GET", "/dasbor/stream?lang=en", stream=True, timeout=30)
    try:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        events = sse(response)
        kind, first = next(events)
        assert kind == "dashboard" and first["figures"]["today"]["submitted"] == 0
        assert "Today" in first["html"]  # rendered in the page's language
        app = submitted(client)
        at = time.monotonic()
        for _kind, payload in events:
            if payload["figures"]["today"]["submitted"] == 1:
                break
        took = time.monotonic() - at
        print(f"the submission reached the open stream after {took:.2f} s")
        assert took <= 2.0
        assert payload["version"] != first["version"]
        assert figure(payload["html"], "angka-diajukan") == "1"
        assert [row["state"] for row in payload["figures"]["by_status"]] == ["submitted"]
        for secret in PERSONAL:
            assert secret not in json.dumps(payload)
        assert app["id"] not in json.dumps(payload)
    finally:
        response.close()


def test_streams_past_the_limit_are_told_to_come_back(request, config):
    from services.permits.service import PermitsService

    port = free_port()
    container = ServiceContainer(PermitsService, {
        **config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "DIRECTORY_SNAPSHOT_ON_EMPTY": False,
        "PERMITS_SLA_INTERVAL_SECONDS": 0, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0,
        "PERMITS_PUBLIC_STREAMS": 1})
    container.start()
    request.addfinalizer(container.stop)
    client = HttpClient(f"http://127.0.0.1:{port}", config)
    first = client.request("GET", "/dasbor/stream", stream=True, timeout=30)
    try:
        assert next(sse(first))[0] == "dashboard"
        second = client.request("GET", "/dasbor/stream", stream=True, timeout=30)
        assert second.status_code == 200
        assert second.text.startswith("retry: 30000")  # and the stream ended
    finally:
        first.close()


# -- today's attendance per OPD -------------------------------------------------------------------

def check_in(nip, unit, opd, day=None, **changes):
    day = day or local_today({})
    now = datetime.now(UTC)
    data = {"nip": nip, "unit": unit, "opd": opd, "date": day, "at": now, "received_at": now,
            "device_at": None, "place": "Kantor", "distance_m": 12.0, "accuracy_m": 8.0,
            "flags": [], "offline": False, **changes}
    return new_event("attendance", "attendance.checked_in",
                     dump_data("attendance.checked_in", 1, data), opd=opd)


def as_event(envelope):
    loaded = load_envelope(envelope)
    loaded["data"] = load_data(loaded["type"], loaded["version"], loaded["data"])
    return Event(**loaded)


def test_attendance_counts_the_first_check_in_per_nip_and_day_once(service, config):
    client, db = service.client, service.db
    today = local_today(service.config)
    with entrypoint_hook(service.container, "presence_headcount") as count:
        counts = count()
    assert counts == {"3510_03": 4, "3510_04": 1, "3510_09": 1}
    first = check_in(NIP_STAFF, "3510.03.01", "3510.03", today)
    envelopes = [
        first, first,  # the same event twice (a redelivery)
        check_in(NIP_STAFF, "3510.03.01", "3510.03", today),  # a later record of the day
        check_in(NIP_STAFF2, "3510.03.01", "3510.03", today),
        check_in(NIP_OTHER, "3510.04", None, today),  # no OPD in the event: the replica's
        check_in(NIP_KABID, "3510.03.01", "3510.03", today - timedelta(days=1)),  # yesterday
    ]
    handled = done_marks(db)
    for envelope in envelopes:
        publish_raw(config, "attendance", "attendance.checked_in", envelope)
    distinct = len({envelope["id"] for envelope in envelopes})
    # every distinct event handled (the duplicate is dropped by the inbox or counts nothing)
    wait_until(lambda: done_marks(db) >= handled + distinct, timeout=20,
               message="every check-in event handled")
    kept = db[PRESENCE].find_one({"_id": today.isoformat()})
    assert kept["opds"] == {"3510_03": 2, "3510_04": 1} and kept["present"] == 3

    # the handler itself: the same event again counts nothing; a crash after the claim
    # (claimed, not counted) is completed by the redelivery, once
    assert presence.count_check_in(db, as_event(first)) is False
    late = check_in(NIP_HEAD, "3510.03", "3510.03", today)
    event = as_event(late)
    db[presence.day_collection(today)].insert_one({"_id": NIP_HEAD, "opd": "3510.03",
                                                   "event": event.id, "counted": False})
    assert presence.count_check_in(db, event) is True
    assert presence.count_check_in(db, event) is False
    assert db[PRESENCE].find_one({"_id": today.isoformat()})["opds"]["3510_03"] == 3

    html = wait_until(lambda: (lambda h: h if "4 dari 6" in text_of(h) else None)(
        assert_page(page(client, "/dasbor"))), timeout=5, message="the counts on the page")
    assert 'id="presensi-kosong"' not in html
    words = text_of(html)
    assert "Dinas Kesehatan 3 4 75,0%" in words and "Dinas Pendidikan 1 1 100,0%" in words
    assert "4 dari 6" in words  # the Pemda: 4 of the 6 active employees
    for nip in (NIP_STAFF, NIP_STAFF2, NIP_OTHER, NIP_HEAD):
        assert nip not in html


def test_old_days_of_claims_are_dropped(service):
    db = service.db
    today = local_today(service.config)
    old, recent = today - timedelta(days=30), today - timedelta(days=1)
    for day in (old, recent):
        db[presence.day_collection(day)].insert_one({"_id": NIP_STAFF, "counted": True})
    with entrypoint_hook(service.container, "presence_purge") as purge:
        dropped = purge()
    assert dropped == [presence.day_collection(old)]
    names = db.list_collection_names()
    assert presence.day_collection(recent) in names and presence.day_collection(old) not in names


def test_the_bus_topology_declares_the_presence_queue(service, config):
    from services.permits.service import PermitsService

    binding = next(b for b in bindings_of(PermitsService)
                   if b.event_type == "attendance.checked_in")
    assert (binding.queue, binding.source) == ("permits.presence_on_checked_in", "attendance")
    with Connection(config["AMQP_URI"]) as connection:  # declared when the service started
        channel = connection.channel()
        assert channel.queue_declare(binding.queue, passive=True).queue == binding.queue
        channel.queue_declare(f"{binding.queue}.dlq", passive=True)


# -- open data ------------------------------------------------------------------------------------

def test_the_open_data_page_lists_the_dataset_with_metadata_and_downloads(service):
    client = service.client
    collected(client)
    html = wait_until(lambda: (lambda h: h if "Surat Izin Praktik Perawat" in h else None)(
        page(client, "/data").text), timeout=15, message="the month's row in the preview")
    words = text_of(assert_page(page(client, "/data")))
    assert "Statistik perizinan" in words and "CC BY 4.0" in words
    assert "hari kerja" in words and "sla_compliance_pct" in words  # units and columns
    month = f"{local_today({}):%Y-%m}"
    links = re.findall(r'href="(/api/permits/v1/open-data/permits\.(?:csv|json)[^"]*)"', html)
    assert len(links) == 2 and all(f"to={month}" in link for link in links)
    csv = client.request("GET", links[0].replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "Surat Izin Praktik Perawat (SIP)" in csv.text
    for secret in PERSONAL:
        assert secret not in html
    chosen = text_of(assert_page(page(client, f"/data?from={month}&to={month}")))
    assert "1 (satu per bulan dan jenis izin)" in chosen
    refused = text_of(assert_page(page(client, "/data?from=2026-13"), 422))
    assert "Periode tidak dapat dibaca" in refused
    later = text_of(assert_page(page(client, "/data?from=2026-05&to=2026-01"), 422))
    assert "Periode tidak dapat dibaca" in later

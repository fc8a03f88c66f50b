"""The directory service over HTTP, against the real broker and database: records, derived
supervisors, acting heads, the audit trail, and events only on real changes."""

import pytest

from pamong.localtime import local_today
from pamong.testing import HttpClient, free_port, wait_until

pytestmark = pytest.mark.integration

API = "/api/directory/v1"
NIP_KADIS = "197001011995031001"   # head of 3510.03 (male)
NIP_KABID = "198002022005012002"   # head of 3510.03.01 (female)
NIP_STAFF = "199003032015031003"   # staff in 3510.03.01
NIP_OTHER = "198505052010011004"   # staff in 3510.04


def admin(client, method, path, **kwargs):
    response = client.as_staff(method, path, roles=("admin",), opd="3510", **kwargs)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


UNITS = [
    ("3510", {"name": "Pemerintah Kabupaten Banyuwangi", "kind": "pemda"}),
    ("3510.03", {"name": "Dinas Kesehatan", "kind": "opd", "offices": [
        {"name": "Kantor Dinkes", "latitude": -8.2192, "longitude": 114.3691}]}),
    ("3510.03.01", {"name": "Bidang Pelayanan Kesehatan", "kind": "bidang"}),
    ("3510.04", {"name": "Dinas Pendidikan", "kind": "opd"}),
]
POSITIONS = [
    ("sekda", {"title": "Sekretaris Daerah", "kind": "struktural", "unit": "3510",
               "heads_unit": True}),
    ("dinkes-kadis", {"title": "Kepala Dinas Kesehatan", "kind": "struktural",
                      "unit": "3510.03", "heads_unit": True}),
    ("dinkes-kabid-yankes", {"title": "Kepala Bidang Pelayanan Kesehatan",
                             "kind": "struktural", "unit": "3510.03.01", "heads_unit": True}),
    ("dinkes-perawat", {"title": "Perawat", "kind": "fungsional", "unit": "3510.03.01"}),
    ("disdik-kadis", {"title": "Kepala Dinas Pendidikan", "kind": "struktural",
                      "unit": "3510.04", "heads_unit": True}),
    ("disdik-staf", {"title": "Pengadministrasi Umum", "kind": "pelaksana", "unit": "3510.04"}),
]
EMPLOYEES = [
    (NIP_KADIS, {"name": "Bambang Wijaya", "unit": "3510.03", "position": "dinkes-kadis",
                 "phone": "0812-3456-7801", "nik": "3510010101700001"}),
    (NIP_KABID, {"name": "Siti Rahayu", "title_front": "dr.", "unit": "3510.03.01",
                 "position": "dinkes-kabid-yankes"}),
    (NIP_STAFF, {"name": "Agus Santoso", "title_back": "S.Kep.", "unit": "3510.03.01",
                 "position": "dinkes-perawat", "email": "Agus@Banyuwangikab.example.id"}),
    (NIP_OTHER, {"name": "Dewi Lestari", "unit": "3510.04", "position": "disdik-staf"}),
]


def seed(client):
    for code, body in UNITS:
        admin(client, "PUT", f"{API}/units/{code}", json=body)
    for position_id, body in POSITIONS:
        admin(client, "PUT", f"{API}/positions/{position_id}", json=body)
    for nip, body in EMPLOYEES:
        admin(client, "PUT", f"{API}/employees/{nip}", json=body)


def test_records_derive_supervisors_views_and_events(directory, recorder):
    seed(directory)
    staff = admin(directory, "GET", f"{API}/employees/{NIP_STAFF}")
    assert staff["supervisor"] == NIP_KABID and not staff["supervisor_explicit"]
    assert staff["display_name"] == "Agus Santoso, S.Kep."
    assert staff["gender"] == "L" and staff["birth_date"] == "1990-03-03"  # from the NIP
    assert staff["email"] == "agus@banyuwangikab.example.id"
    kadis = admin(directory, "GET", f"{API}/employees/{NIP_KADIS}")
    assert kadis["phone"] == "+6281234567801" and kadis["nik"] == "3510010101700001"
    assert kadis["supervisor"] is None  # the Sekda post is vacant, the Bupati is elected
    chain = admin(directory, "GET", f"{API}/employees/{NIP_STAFF}/supervisors")
    assert [e["nip"] for e in chain] == [NIP_KABID, NIP_KADIS]

    wait_until(lambda: len(recorder.of("employee.upserted")) == 4, timeout=15,
               message="four employee.upserted events")
    upserted = {e["data"]["nip"]: e for e in recorder.of("employee.upserted")}
    assert upserted[NIP_KADIS]["data"]["nik_masked"] == "3510********0001"
    assert "nik" not in upserted[NIP_KADIS]["data"]
    assert upserted[NIP_STAFF]["data"]["supervisor"] == NIP_KABID
    assert upserted[NIP_STAFF]["opd"] == "3510.03"
    assert len(recorder.of("unit.upserted")) == 4


def test_only_real_changes_emit_events_and_enter_the_audit_trail(directory, recorder):
    seed(directory)
    wait_until(lambda: len(recorder.of("employee.upserted")) == 4, timeout=15)
    body = dict(EMPLOYEES[2][1])
    admin(directory, "PUT", f"{API}/employees/{NIP_STAFF}", json=body)  # the same again
    admin(directory, "PUT", f"{API}/units/3510.03.01", json=UNITS[2][1])
    body["phone"] = "+62 813 1111 2222"
    admin(directory, "PUT", f"{API}/employees/{NIP_STAFF}", json=body)
    wait_until(lambda: len(recorder.of("employee.upserted")) == 5, timeout=15)
    latest = recorder.of("employee.upserted")[-1]["data"]
    assert latest["nip"] == NIP_STAFF and latest["version"] == 2
    assert latest["phone"] == "+6281311112222"
    assert len(recorder.of("unit.upserted")) == 4
    history = admin(directory, "GET", f"{API}/employees/{NIP_STAFF}/history")
    assert [h["action"] for h in history] == ["created", "updated"]
    assert history[1]["changes"] == {"phone": {"from": None, "to": "+6281311112222"}}
    assert history[1]["by"]["role"] == "admin"


def test_a_new_head_changes_the_derived_supervisor_of_the_staff(directory, recorder):
    seed(directory)
    # the head of the bidang retires: the staff now answer to the head of the OPD
    before = admin(directory, "GET", f"{API}/employees/{NIP_KABID}")
    admin(directory, "POST", f"{API}/employees/{NIP_KABID}/deactivate",
          json={"status": "retired", "effective_date": "2026-12-31"})
    staff = admin(directory, "GET", f"{API}/employees/{NIP_STAFF}")
    assert staff["supervisor"] == NIP_KADIS
    wait_until(lambda: recorder.of("employee.deactivated"), timeout=15)
    deactivated, = recorder.of("employee.deactivated")
    assert deactivated["data"] == {"nip": NIP_KABID, "status": "retired",
                                   "effective_date": "2026-12-31", "version": 2}
    # the retirement has its own date: the TMT in the unit is left as it was
    retired = admin(directory, "GET", f"{API}/employees/{NIP_KABID}")
    assert retired["status_date"] == "2026-12-31"
    assert retired["effective_date"] == before["effective_date"]
    history = admin(directory, "GET", f"{API}/employees/{NIP_STAFF}/history")
    assert history[-1]["action"] == "derived"


def test_transfer_is_published_as_a_transfer(directory, recorder):
    seed(directory)
    admin(directory, "POST", f"{API}/employees/{NIP_OTHER}/transfer",
          json={"unit": "3510.03.01", "position": "dinkes-perawat",
                "effective_date": "2026-12-01"})
    wait_until(lambda: recorder.of("employee.transferred"), timeout=15)
    moved, = recorder.of("employee.transferred")
    assert moved["data"] == {"nip": NIP_OTHER, "from_unit": "3510.04", "to_unit": "3510.03.01",
                             "from_position": "disdik-staf", "to_position": "dinkes-perawat",
                             "effective_date": "2026-12-01", "version": 2}
    upserted = [e for e in recorder.of("employee.upserted") if e["data"]["nip"] == NIP_OTHER]
    assert upserted[-1]["data"]["unit"] == "3510.03.01" and upserted[-1]["data"]["version"] == 2


# UTC+14 and UTC-12: their dates always differ, so a server date would fail one of the two
@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_a_transfer_without_a_date_takes_effect_today_where_the_pemda_is(request, config,
                                                                          zone):
    from nameko.containers import ServiceContainer

    from services.directory.service import DirectoryService

    port = free_port()
    container = ServiceContainer(DirectoryService, {
        **config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "DIRECTORY_TIMEZONE": zone})
    container.start()
    request.addfinalizer(container.stop)
    directory = HttpClient(f"http://127.0.0.1:{port}", config)
    seed(directory)
    admin(directory, "POST", f"{API}/employees/{NIP_OTHER}/transfer",
          json={"unit": "3510.03.01", "position": "dinkes-perawat"})
    stored = admin(directory, "GET", f"{API}/employees/{NIP_OTHER}")
    assert stored["effective_date"] == local_today(zone).isoformat()


def test_head_and_acting_head_on_a_date(directory, recorder):
    seed(directory)
    admin(directory, "POST", f"{API}/employees/{NIP_KADIS}/deactivate",
          json={"status": "retired"})
    acting = admin(directory, "POST", f"{API}/acting", json={
        "kind": "plt", "position": "dinkes-kadis", "nip": NIP_KABID,
        "start": "2026-12-01", "end": "2027-02-28"})
    head = admin(directory, "GET", f"{API}/units/3510.03/head?date=2027-01-15")
    assert head["head"] is None and head["acting"]["nip"] == NIP_KABID
    assert head["acting"]["kind"] == "plt"
    before = admin(directory, "GET", f"{API}/units/3510.03/head?date=2026-11-30")
    assert before["acting"] is None
    # a second Plt for overlapping dates is refused; Plh on a vacant post too
    clash = directory.as_staff("POST", f"{API}/acting", roles=("admin",), opd="3510", json={
        "kind": "plt", "position": "dinkes-kadis", "nip": NIP_STAFF,
        "start": "2027-02-01", "end": "2027-03-31"})
    assert clash.status_code == 422 and "overlaps" in clash.text
    admin(directory, "POST", f"{API}/acting/{acting['id']}/end", json={"ended_on": "2027-01-31"})
    after = admin(directory, "GET", f"{API}/units/3510.03/head?date=2027-02-15")
    assert after["acting"] is None
    wait_until(lambda: recorder.of("acting.ended"), timeout=15)
    ended, = recorder.of("acting.ended")
    assert ended["data"]["ended_on"] == "2027-01-31" and ended["data"]["version"] == 2


def test_tree_ancestors_and_search(directory):
    seed(directory)
    tree = admin(directory, "GET", f"{API}/tree?root=3510")
    assert [c["code"] for c in tree["children"]] == ["3510.03", "3510.04"]
    assert tree["children"][0]["head"] == NIP_KADIS
    assert tree["children"][0]["children"][0]["code"] == "3510.03.01"
    ancestors = admin(directory, "GET", f"{API}/units/3510.03.01/ancestors")
    assert [u["code"] for u in ancestors] == ["3510.03", "3510"]
    found = admin(directory, "GET", f"{API}/employees?q=rahayu")
    assert [e["nip"] for e in found["items"]] == [NIP_KABID]
    by_nip = admin(directory, "GET", f"{API}/employees?q=1990")
    assert [e["nip"] for e in by_nip["items"]] == [NIP_STAFF]
    under = admin(directory, "GET", f"{API}/employees?under=3510.03")
    assert {e["nip"] for e in under["items"]} == {NIP_KADIS, NIP_KABID, NIP_STAFF}
    page1 = admin(directory, "GET", f"{API}/employees?limit=3")
    page2 = admin(directory, "GET", f"{API}/employees?limit=3&cursor={page1['next_cursor']}")
    assert len(page1["items"]) == 3 and len(page2["items"]) == 1


def test_bad_records_are_422_with_field_errors_and_change_nothing(directory, recorder):
    seed(directory)
    cases = [
        (f"{API}/employees/198613262015051001", {"name": "X", "unit": "3510.03"}, "nip"),
        (f"{API}/employees/199101012015031005", {"name": "X", "unit": "3510.03",
                                                 "gender": "P"}, "gender"),
        (f"{API}/employees/199101012015031005", {"name": "X", "unit": "3510.99"}, "unit"),
        (f"{API}/employees/199101012015031005", {"name": "X", "unit": "3510.03",
                                                 "phone": "021-555-1234"}, "phone"),
        (f"{API}/employees/199101012015031005", {"name": "X", "unit": "3510.04",
                                                 "position": "dinkes-perawat"}, "position"),
        (f"{API}/employees/199101012015031005", {"name": "X", "unit": "3510.03",
                                                 "position": "dinkes-kadis"}, "position"),
        (f"{API}/units/3510.03.02", {"name": "X", "kind": "pemda"}, "kind"),
        (f"{API}/units/3510.07.01", {"name": "X", "kind": "bidang"}, "code"),
    ]
    for path, body, field in cases:
        response = directory.as_staff("PUT", path, roles=("admin",), opd="3510", json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert field in response.json()["errors"], (field, response.json())
    assert admin(directory, "GET", f"{API}/employees?limit=50")["items"].__len__() == 4
    wait_until(lambda: len(recorder.of("employee.upserted")) == 4, timeout=15)
    assert len(recorder.of("unit.upserted")) == 4


def test_concurrent_claims_on_one_struktural_post_leave_one_holder(directory, recorder):
    """Two clerks at once put different employees into the same vacant head post: the post's
    holder claim (one conditional update) lets one win; the other waits for the winner's
    write and is told the post is taken."""
    from concurrent.futures import ThreadPoolExecutor

    seed(directory)
    admin(directory, "POST", f"{API}/employees/{NIP_KABID}/deactivate",
          json={"status": "retired"})
    candidates = ["199101012015031005", "199202022016032006"]

    def claim(nip):
        return directory.as_staff("PUT", f"{API}/employees/{nip}", roles=("admin",), opd="3510",
                                  json={"name": f"Calon {nip[-3:]}", "unit": "3510.03.01",
                                        "position": "dinkes-kabid-yankes"})

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(r.status_code for r in pool.map(claim, candidates))
    assert statuses == [200, 422]
    holders = admin(directory, "GET", f"{API}/employees?position=dinkes-kabid-yankes&status=active")
    assert len(holders["items"]) == 1


def test_concurrent_overlapping_acting_assignments_leave_one(directory):
    from concurrent.futures import ThreadPoolExecutor

    seed(directory)
    admin(directory, "POST", f"{API}/employees/{NIP_KADIS}/deactivate",
          json={"status": "retired"})

    def assign(nip):
        return directory.as_staff("POST", f"{API}/acting", roles=("admin",), opd="3510", json={
            "kind": "plt", "position": "dinkes-kadis", "nip": nip,
            "start": "2027-01-01", "end": "2027-03-31"})

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(r.status_code for r in pool.map(assign, [NIP_KABID, NIP_STAFF]))
    assert statuses == [201, 422]
    assert len(admin(directory, "GET", f"{API}/acting?position=dinkes-kadis")["items"]) == 1


def test_children_of_a_unit_and_a_token_without_opd(directory):
    seed(directory)
    children = admin(directory, "GET", f"{API}/units?parent=3510")
    assert [u["code"] for u in children["items"]] == ["3510.03", "3510.04"]
    # a role that is not Pemda-wide and names no OPD reads nothing (a citizen's token)
    for path in (f"{API}/units", f"{API}/employees", f"{API}/tree"):
        response = directory.request("GET", path, token=directory.token(("pemohon",), opd=None))
        assert response.status_code == 403, (path, response.text)


def test_ending_an_acting_assignment_twice_is_a_conflict_and_publishes_once(directory,
                                                                             recorder):
    seed(directory)
    acting = admin(directory, "POST", f"{API}/acting", json={
        "kind": "plh", "position": "dinkes-kadis", "nip": NIP_KABID,
        "start": "2026-12-01", "end": "2026-12-31"})
    path = f"{API}/acting/{acting['id']}/end"
    admin(directory, "POST", path, json={"ended_on": "2026-12-15"})
    again = directory.as_staff("POST", path, roles=("admin",), opd="3510",
                               json={"ended_on": "2026-12-20"})
    assert again.status_code == 409
    bad = directory.as_staff("POST", f"{API}/acting", roles=("admin",), opd="3510", json={
        "kind": "plh", "position": "dinkes-kadis", "nip": NIP_KABID,
        "start": "2027-01-31", "end": "2027-01-01"})
    assert bad.status_code == 422 and "end" in bad.json()["errors"]
    wait_until(lambda: recorder.of("acting.ended"), timeout=15)
    assert [e["data"]["ended_on"] for e in recorder.of("acting.ended")] == ["2026-12-15"]

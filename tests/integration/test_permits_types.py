"""Permit types (versioned service standards, public reading, admin publishing) and the
holiday calendar, through the HTTP API of a running permits service."""

import pytest

from pamong.testing import race
from tests.integration.permits_support import (
    API,
    OTHER_OPD,
    admin,
    citizen,
    officer,
    publish_type,
    requirement,
    type_body,
)

pytestmark = pytest.mark.integration


def put(client, code, body, token=None):
    return client.request("PUT", f"{API}/types/{code}", token=token or admin(client),
                          json=body)


def test_publish_read_publicly_and_version(permits):
    client = permits.client
    r = put(client, "SIP", type_body())
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"] == 1 and first["sla_days"] == 5 and first["code"] == "SIP"
    assert first["opd_name"] == "Dinas Kesehatan" and first["published_by"] == "admin-1"
    assert r.headers["Location"].endswith("/types/SIP?version=1")

    # the same body again (a retried click): the version in force, nothing new
    again = put(client, "SIP", type_body())
    assert again.status_code == 200 and again.json()["version"] == 1

    # a change publishes version 2; version 1 stays readable as it was
    changed = put(client, "SIP", type_body(fee=150_000, validity_months=36))
    assert changed.status_code == 201 and changed.json()["version"] == 2

    # everyone reads without login
    one = client.request("GET", f"{API}/types/SIP")
    assert one.status_code == 200 and one.json()["version"] == 2
    assert one.json()["fee"] == 150_000
    old = client.request("GET", f"{API}/types/SIP", params={"version": 1})
    assert old.status_code == 200 and old.json()["fee"] == 0 and old.json()["version"] == 1
    assert client.request("GET", f"{API}/types/SIP", params={"version": 3}).status_code == 404
    assert client.request("GET", f"{API}/types/NOPE").status_code == 404

    listed = client.request("GET", f"{API}/types").json()["items"]
    assert [t["code"] for t in listed] == ["SIP"]
    assert listed[0]["requirements"][0]["key"] == "ktp"


def test_inactive_types_and_filter(permits):
    client = permits.client
    publish_type(client, "SIP")
    publish_type(client, "TDUP", name="Tanda Daftar Usaha Pariwisata", opd=OTHER_OPD,
                 needs_business=True)
    publish_type(client, "OLD", name="Izin lama", active=False)
    codes = lambda **q: [t["code"] for t in client.request(  # noqa: E731
        "GET", f"{API}/types", params=q).json()["items"]]
    assert codes() == ["SIP", "TDUP"]  # by name: Surat..., Tanda...
    assert codes(opd=OTHER_OPD) == ["TDUP"]
    assert set(codes(include_inactive="true")) == {"SIP", "TDUP", "OLD"}
    # an inactive type is still readable (applications made under it refer to it)
    assert client.request("GET", f"{API}/types/OLD").status_code == 200


def test_only_admin_publishes(permits):
    client = permits.client
    assert client.request("PUT", f"{API}/types/SIP", json=type_body()).status_code == 401
    for token in (citizen(client), officer(client), officer(client, roles=("opd_admin",))):
        r = put(client, "SIP", type_body(), token=token)
        assert r.status_code == 403, r.text
    assert client.request("GET", f"{API}/types/SIP").status_code == 404  # nothing written


@pytest.mark.parametrize("code, body, field", [
    ("sip", type_body(), "code"),  # lower case
    ("SIP", type_body(opd="3599.01"), "opd"),  # not in the directory
    ("SIP", type_body(opd="3510.03.01"), "opd"),  # a bidang, not an OPD
    ("SIP", type_body(recommenders=["3510.03"]), "recommenders"),  # itself
    ("SIP", type_body(recommenders=["3510.77"]), "recommenders.0"),
    ("SIP", type_body(stages=[{"key": "lain", "name": "Lain", "sla_days": 2}]),
     "stages.0.key"),
    ("SIP", type_body(stages=[{"key": "teknis", "name": "Teknis", "sla_days": 0}]), "stages"),
    ("SIP", type_body(requirements=[requirement("ktp", "KTP"), requirement("ktp", "KTP 2")]),
     "requirements"),
    ("SIP", type_body(requirements=[requirement("ktp", "KTP", types=("text/html",))]),
     "requirements.0.types.0"),
    ("SIP", type_body(requirements=[requirement("ktp", "KTP", max_bytes=10**9)]),
     "requirements.0.max_bytes"),
    ("SIP", type_body(fee=-1), "fee"),
    ("SIP", {**type_body(), "sla_days": 9}, "sla_days"),  # derived, not sent
])
def test_bad_standard_is_422_and_writes_nothing(permits, code, body, field):
    client = permits.client
    r = put(client, code, body)
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert field in r.json()["errors"], r.json()
    assert permits.db.types.count_documents({}) == 0
    assert permits.db.type_versions.count_documents({}) == 0


def test_concurrent_publications_make_one_version_each(permits):
    """Two admins publishing different bodies at once: one becomes version 2, the other gets
    409 (or becomes version 3 after it); the same body at once: one version."""
    client = permits.client
    publish_type(client)
    bodies = [type_body(fee=1000 * n) for n in range(1, 5)]
    results = race(bodies, lambda body: put(client, "SIP", body))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}, codes
    versions = sorted(d["version"] for d in permits.db.type_versions.find({}))
    assert versions == list(range(1, len(versions) + 1))  # no gap, no duplicate
    assert len(versions) == 1 + codes.count(201)
    in_force = client.request("GET", f"{API}/types/SIP").json()
    assert in_force["version"] == versions[-1]
    # the same body from several admins at once: one new version, every answer names it
    same = race(range(4), lambda _: put(client, "SIP", type_body(fee=77)))
    assert {r.status_code for r in same} <= {200, 201, 409}
    assert len({r.json()["version"] for r in same if r.status_code in (200, 201)}) == 1
    assert client.request("GET", f"{API}/types/SIP").json()["fee"] == 77


def test_publication_stopped_between_its_writes_completes_on_repeat(permits):
    """A crash after the new version's document and before the type in force: the repeat of
    the same body puts it in force; a different body is told to read again."""
    client = permits.client
    first = publish_type(client)
    body = type_body(fee=5000)
    stored = permits.db.types.find_one({"_id": "SIP"})
    assert stored["version"] == first["version"] == 1
    permits.db.type_versions.insert_one({**stored, **body, "_id": "SIP:2", "version": 2})
    other = put(client, "SIP", type_body(fee=9999))
    assert other.status_code == 409 and other.json()["version"] == 1
    repeat = put(client, "SIP", body)
    assert repeat.status_code == 201 and repeat.json()["version"] == 2
    assert client.request("GET", f"{API}/types/SIP").json()["fee"] == 5000


def test_holidays(permits):
    client = permits.client
    r = client.request("GET", f"{API}/holidays", params={"year": 2026})
    assert r.status_code == 200, r.text
    national = {h["date"]: h for h in r.json()["items"]}
    assert national["2026-08-17"]["kind"] == "national"  # Hari Kemerdekaan
    assert national["2026-01-01"]["on_weekend"] is False

    # a regional day (Hari Jadi Banyuwangi) and a cuti bersama, by admin only
    body = {"name": "Hari Jadi Kabupaten Banyuwangi", "kind": "regional"}
    assert client.request("PUT", f"{API}/holidays/2026-12-18", token=officer(client),
                          json=body).status_code == 403
    r = client.request("PUT", f"{API}/holidays/2026-12-18", token=admin(client), json=body)
    assert r.status_code == 200 and r.json()["kind"] == "regional"
    again = client.request("PUT", f"{API}/holidays/2026-12-18", token=admin(client), json=body)
    assert again.status_code == 200
    listed = client.request("GET", f"{API}/holidays", params={"year": 2026}).json()["items"]
    assert [h["name"] for h in listed if h["date"] == "2026-12-18"] == [body["name"]]
    assert not [h for h in client.request("GET", f"{API}/holidays", params={
        "year": 2027}).json()["items"] if h["date"] == "2026-12-18"]

    # bad input
    for day in ("2026-13-01", "18-12-2026", "1999-01-01"):
        r = client.request("PUT", f"{API}/holidays/{day}", token=admin(client), json=body)
        assert r.status_code == 422, (day, r.text)
    r = client.request("PUT", f"{API}/holidays/2026-12-19", token=admin(client),
                       json={"name": "x", "kind": "nasional"})
    assert r.status_code == 422 and {"name", "kind"} <= set(r.json()["errors"])

    # withdrawing: a regional day goes, a national one stays
    assert client.request("DELETE", f"{API}/holidays/2026-12-18",
                          token=admin(client)).status_code == 204
    assert client.request("DELETE", f"{API}/holidays/2026-12-18",
                          token=admin(client)).status_code == 404
    assert client.request("DELETE", f"{API}/holidays/2026-08-17",
                          token=admin(client)).status_code == 409

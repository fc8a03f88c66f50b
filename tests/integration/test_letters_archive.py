"""The archive against the real broker and database: filing once, its guards, retention
inherited from a parent code, the due report, the disposal decision recorded once."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from pamong.testing import EventRecorder, race, wait_until
from tests.integration.letters_support import (
    CLERK,
    NIP_STAFF,
    call,
    clerk,
    create,
    incoming,
    register,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "letters")
    yield recorder
    recorder.close()


def year():
    return datetime.now(ZoneInfo("Asia/Jakarta")).year


def filed(client, classification, subject="Permintaan data imunisasi"):
    letter = register(client, incoming(classification=classification, subject=subject))
    r = clerk(client, "POST", f"/letters/{letter['id']}/archive", json={})
    assert r.status_code == 201, r.text
    return r.json()


def test_filing_once_with_inherited_retention_and_guards(letters, events):
    client, db = letters.client, letters.db
    letter = register(client, incoming(classification="000.1"))  # 000.1 has no retention
    path = f"/letters/{letter['id']}/archive"
    assert call(client, "POST", path, NIP_STAFF, json={}).status_code == 403  # a pegawai
    r = call(client, "POST", path, roles=("opd_admin",), opd="3510.04", json={})
    assert r.status_code == 404  # another OPD's archivist

    first = clerk(client, "POST", path, json={"note": "Selesai ditindaklanjuti"})
    assert first.status_code == 201, first.text
    record = first.json()
    y = year()
    assert record["retention"] == {"active_years": 2, "inactive_years": 3,
                                   "disposition": "destroy", "source": "000"}
    assert (record["finished"], record["inactive_from"], record["disposition_due"]) == (
        datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat(), f"{y + 3}-01-01",
        f"{y + 6}-01-01")
    again = clerk(client, "POST", path, json={})
    assert again.status_code == 200 and again.json()["archived_at"] == record["archived_at"]

    stored = db.letters.find_one({"_id": letter["id"]})
    assert stored["state"] == "archived"
    assert [e["step"] for e in stored["timeline"]].count("archive") == 1
    wait_until(lambda: db.archive.find_one({"_id": letter["id"]}), timeout=15,
               message="the record filed")
    wait_until(lambda: events.of("letter.archived"), timeout=15, message="the event")
    assert len(events.of("letter.archived")) == 1
    assert db.archive.find_one({"_id": f"due:3510.03:{y + 6}-01"})["ids"] == [letter["id"]]

    # only a sent or received letter is filed
    draft_letter = create(client)
    r = clerk(client, "POST", f"/letters/{draft_letter['id']}/archive", json={})
    assert r.status_code == 409 and r.json()["state"] == "draft"


def test_due_report_and_a_decision_recorded_once(letters):
    client = letters.client
    short = filed(client, "000.1.1")  # 1 + 1 years, destroy
    permanent = filed(client, "000.5.3", subject="Penyusutan arsip")  # 5 + 5, permanent
    y = year()

    def due(until, **params):
        r = clerk(client, "GET", "/archive/due", params={"until": until, **params})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    wait_until(lambda: due(f"{y + 20}-12-31") == [short["id"], permanent["id"]], timeout=15,
               message="both in the report")
    assert due(f"{y + 2}-12-31") == []
    assert due(f"{y + 3}-01-01") == [short["id"]]
    assert due(f"{y + 11}-01-01", limit=1) == [short["id"]]
    r = clerk(client, "GET", "/archive/due", params={"until": f"{y + 11}-01-01", "limit": 1})
    cursor = r.json()["next_cursor"]
    assert due(f"{y + 11}-01-01", limit=1, cursor=cursor) == [permanent["id"]]
    r = call(client, "GET", "/archive/due", roles=("opd_admin",), opd="3510.04",
             params={"until": f"{y + 20}-01-01", "opd": "3510.03"})
    assert r.status_code == 404

    path = f"/archive/{permanent['id']}/decision"
    r = clerk(client, "POST", path, json={"decision": "destroyed"})
    assert r.status_code == 422  # a permanent record is never destroyed
    r = clerk(client, "POST", f"/archive/{short['id']}/decision",
              json={"decision": "destroyed", "reference": "BA-12/2030"})
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["decision"] == "destroyed"
    assert r.json()["decision"]["by"]["nip"] == CLERK
    r = clerk(client, "POST", f"/archive/{short['id']}/decision",
              json={"decision": "reviewed_extended", "extend_years": 2})
    assert r.status_code == 409 and r.json()["decision"] == "destroyed"
    assert due(f"{y + 20}-12-31") == [permanent["id"]]  # decided: off the report


def test_a_review_keeps_the_record_longer_and_it_comes_back_on_the_new_date(letters):
    client = letters.client
    record = filed(client, "000.1.1")  # 1 + 1 years, destroy: due in January, year + 3
    y = year()
    path = f"/archive/{record['id']}/decision"
    r = clerk(client, "POST", path, json={"decision": "reviewed_extended"})
    assert r.status_code == 422 and "extend_years" in r.json()["errors"]
    r = clerk(client, "POST", path, json={"decision": "destroyed", "extend_years": 2})
    assert r.status_code == 422  # years only with a review
    r = clerk(client, "POST", path, json={"decision": "reviewed_extended", "extend_years": 2,
                                          "note": "Masih dipakai untuk audit BPK"})
    assert r.status_code == 200, r.text
    kept = r.json()
    assert kept["decision"] is None and kept["disposition_due"].startswith(f"{y + 5}-")
    assert kept["reviews"][0]["previous_due"].startswith(f"{y + 3}-")
    assert kept["reviews"][0]["note"] == "Masih dipakai untuk audit BPK"

    def due(until):
        r = clerk(client, "GET", "/archive/due", params={"until": until})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert due(f"{y + 4}-12-31") == []  # not before its new date
    assert due(f"{y + 5}-12-31") == [record["id"]]
    r = clerk(client, "POST", path, json={"decision": "destroyed", "reference": "BA-3"})
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "destroyed"
    assert len(r.json()["reviews"]) == 1
    assert due(f"{y + 30}-12-31") == []


def test_concurrent_decisions_land_once_each_on_what_they_read(letters):
    """Three destroys and three reviews at once: each lands only on the record as it read
    it (a compare-and-set on the decision and the due date), so at most one destroy lands,
    each landed review moved the due date once, and every other answer is 409. A request
    that read the record after a review landed may land on it: it decided on what it saw."""
    client = letters.client
    record = filed(client, "000.1.1")
    choices = [{"decision": "destroyed"},
               {"decision": "reviewed_extended", "extend_years": 3}] * 3
    results = race(choices, lambda choice: clerk(
        client, "POST", f"/archive/{record['id']}/decision", json=choice))
    assert {r.status_code for r in results} <= {200, 409}
    landed = [r.json() for r in results if r.status_code == 200]
    destroyed = [a for a in landed if a["decision"]]
    reviewed = [a for a in landed if not a["decision"]]
    assert landed and len(destroyed) <= 1
    stored = letters.db.archive.find_one({"_id": record["id"]})
    assert len(stored.get("reviews", ())) == len(reviewed)
    assert (stored["decision"] or {}).get("decision") == ("destroyed" if destroyed else None)
    first_due = date.fromisoformat(record["disposition_due"])
    assert date.fromisoformat(stored["disposition_due"]).year == \
        first_due.year + 3 * len(reviewed)

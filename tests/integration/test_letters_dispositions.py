"""Dispositions against the real broker and database: the head of the receiving unit (or its
Plt) disposes a received letter down a two-level tree; cancel only while unread; completion
once; two concurrent cancels or completions land once; overdue reported once per
disposition by two service processes' timers."""

from datetime import UTC, datetime, timedelta

import pytest

from pamong.events.outbox import OUTBOX
from pamong.testing import EventRecorder, free_port, race, serve_process, wait_until
from tests.integration.letters_support import (
    ACTING_NIP,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    act_as_head,
    call,
    clerk,
    dispose,
    register,
)

pytestmark = pytest.mark.integration
STAFF = {"roles": ("pegawai",), "opd": "3510.03.01"}
KABID = {"roles": ("pimpinan",), "opd": "3510.03.01"}


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "letters")
    yield recorder
    recorder.close()


def received(client):
    letter = register(client)
    return letter, f"/receipts/{letter['id']}:3510.03"


def one(r):
    assert r.status_code == 201, r.text
    (item,) = r.json()["items"]
    return item


def test_a_disposition_tree_two_levels_down(letters, events):
    client = letters.client
    letter, receipt = received(client)
    due = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    top = one(dispose(client, receipt, NIP_HEAD, [NIP_KABID], due=due, urgency="segera",
                      instruction="Siapkan data imunisasi"))
    assert top["state"] == "unread" and top["by"]["nip"] == NIP_HEAD and top["due"] == due
    r = dispose(client, f"/dispositions/{top['id']}", NIP_KABID, [NIP_STAFF, NIP_STAFF2],
                **KABID)
    assert r.status_code == 201, r.text
    below = r.json()["items"]
    assert {d["parent"] for d in below} == {top["id"]}
    assert {d["urgency"] for d in below} == {"biasa"}  # the letter's

    tree = clerk(client, "GET", receipt).json()["dispositions"]
    assert [d["id"] for d in tree] == [top["id"]] and tree[0]["state"] == "read"
    assert sorted(c["to"]["nip"] for c in tree[0]["children"]) == sorted([NIP_STAFF,
                                                                          NIP_STAFF2])
    # the chain sees the letter; reading by the recipient marks it read
    r = call(client, "GET", f"/dispositions/{below[0]['id']}", below[0]["to"]["nip"], **STAFF)
    assert r.status_code == 200 and r.json()["state"] == "read"
    assert call(client, "GET", f"/letters/{letter['id']}", NIP_STAFF, **STAFF).status_code == 200
    assert call(client, "GET", f"/dispositions/{top['id']}", NIP_OTHER,
                opd="3510.04").status_code == 404
    assert len(call(client, "GET", f"/dispositions/{top['id']}", NIP_KABID,
                    **KABID).json()["children"]) == 2

    assigned = wait_until(lambda: len(events.of("disposition.assigned")) >= 3 and
                          events.of("disposition.assigned"), timeout=15, message="3 events")
    assert sorted((e["data"]["by"], e["data"]["to"]) for e in assigned) == sorted([
        (NIP_HEAD, NIP_KABID), (NIP_KABID, NIP_STAFF), (NIP_KABID, NIP_STAFF2)])
    assert assigned[0]["data"]["subject"] == "Permintaan data imunisasi"


def test_who_may_dispose_and_to_whom(letters, config):
    client = letters.client
    _, receipt = received(client)
    # only the head of the receiving unit; to people of that unit or below, not on the path
    assert dispose(client, receipt, NIP_KABID, [NIP_STAFF], **KABID).status_code == 403
    assert dispose(client, receipt, NIP_STAFF, [NIP_STAFF2], roles=("opd_admin",),
                   opd="3510.03").status_code == 403
    r = dispose(client, receipt, NIP_HEAD, [NIP_OTHER])
    assert r.status_code == 422 and "3510.03" in r.json()["errors"]["to"][0]
    top = one(dispose(client, receipt, NIP_HEAD, [NIP_KABID]))
    r = dispose(client, f"/dispositions/{top['id']}", NIP_KABID, [NIP_HEAD], **KABID)
    assert r.status_code == 422  # back up the path
    assert dispose(client, f"/dispositions/{top['id']}", NIP_STAFF, [NIP_STAFF2],
                   **STAFF).status_code == 404  # not in the chain: cannot even see it
    # the Plt acting as head today disposes as the head does
    act_as_head(config)
    wait_until(lambda: letters.db.acting.find_one({"nip": ACTING_NIP}), timeout=15,
               message="the acting assignment in the replica")
    r = dispose(client, receipt, ACTING_NIP, [NIP_STAFF], roles=("pegawai",), opd="3510.03.01")
    assert r.status_code == 201, r.text
    # a repeat with the same key is the same disposition
    first = dispose(client, receipt, NIP_HEAD, [NIP_STAFF2], key="dispose-00001")
    again = dispose(client, receipt, NIP_HEAD, [NIP_STAFF2], key="dispose-00001")
    assert again.status_code == 200 and again.json()["items"] == first.json()["items"]


def test_cancel_only_while_unread(letters):
    client = letters.client
    _, receipt = received(client)
    to_kabid, to_staff = dispose(client, receipt, NIP_HEAD, [NIP_KABID, NIP_STAFF]
                                 ).json()["items"]
    path = f"/dispositions/{to_staff['id']}"
    assert call(client, "POST", f"{path}/cancel", NIP_KABID, **KABID, json={}
                ).status_code == 403  # not its author
    r = call(client, "POST", f"{path}/cancel", NIP_HEAD, roles=("pimpinan",), opd="3510.03",
             json={"note": "Salah tujuan"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert r.json()["cancelled"]["note"] == "Salah tujuan"
    assert call(client, "POST", f"{path}/read", NIP_STAFF, **STAFF).status_code == 409
    assert call(client, "POST", f"{path}/complete", NIP_STAFF, **STAFF,
                json={"note": "Selesai"}).status_code == 409
    assert dispose(client, path, NIP_STAFF, [NIP_STAFF2], **STAFF).status_code == 409
    # the cancelled recipient left the letter's access list (no other disposition names
    # them), the kabid whose disposition stands is still in it
    letter_id = to_staff["letter"]
    assert call(client, "GET", f"/letters/{letter_id}", NIP_STAFF, **STAFF).status_code == 404
    assert call(client, "GET", f"/letters/{letter_id}", NIP_KABID, **KABID).status_code == 200

    path = f"/dispositions/{to_kabid['id']}"
    assert call(client, "POST", f"{path}/read", NIP_KABID, **KABID).json()["state"] == "read"
    r = call(client, "POST", f"{path}/cancel", NIP_HEAD, roles=("pimpinan",), opd="3510.03",
             json={})
    assert r.status_code == 409 and r.json()["state"] == "read"


def test_completion_once(letters, events):
    client = letters.client
    _, receipt = received(client)
    d = one(dispose(client, receipt, NIP_HEAD, [NIP_KABID]))
    path = f"/dispositions/{d['id']}/complete"
    assert call(client, "POST", path, NIP_HEAD, roles=("pimpinan",), opd="3510.03",
                json={"note": "x y"}).status_code == 403  # the author does not complete it
    assert call(client, "POST", path, NIP_KABID, **KABID, json={}).status_code == 422
    r = call(client, "POST", path, NIP_KABID, **KABID, json={"note": "Data sudah dikirim"})
    assert r.status_code == 200 and r.json()["state"] == "completed"
    assert r.json()["read_at"] is not None and r.json()["note"] == "Data sudah dikirim"
    again = call(client, "POST", path, NIP_KABID, **KABID, json={"note": "Lagi"})
    assert again.status_code == 409 and again.json()["state"] == "completed"
    completed = wait_until(lambda: events.of("disposition.completed"), timeout=15,
                           message="disposition.completed")
    assert [e["data"]["note"] for e in completed] == ["Data sudah dikirim"]


def test_two_concurrent_cancels_or_completions_land_once(letters, events):
    client = letters.client
    _, receipt = received(client)
    first, second = dispose(client, receipt, NIP_HEAD, [NIP_KABID, NIP_STAFF]).json()["items"]
    cancels = race([0, 1], lambda _: call(
        client, "POST", f"/dispositions/{first['id']}/cancel", NIP_HEAD, roles=("pimpinan",),
        opd="3510.03", json={}))
    assert sorted(r.status_code for r in cancels) == [200, 409]
    completions = race([0, 1], lambda i: call(
        client, "POST", f"/dispositions/{second['id']}/complete", NIP_STAFF, **STAFF,
        json={"note": f"Selesai {i}"}))
    assert sorted(r.status_code for r in completions) == [200, 409]
    # the event travels in the completing write itself: once the disposition's outbox is
    # drained, every completion that landed has been published
    wait_until(lambda: not letters.db.dispositions.find_one({"_id": second["id"]}).get(OUTBOX),
               timeout=15, message="the disposition's outbox drained")
    assert len(wait_until(lambda: events.of("disposition.completed"), timeout=15,
                          message="completed")) == 1
    # a cancel racing the recipient's reading: one of them wins, never both
    third = one(dispose(client, receipt, NIP_HEAD, [NIP_STAFF2]))
    cancel, read = race(["cancel", "read"], lambda what: call(
        client, "POST", f"/dispositions/{third['id']}/{what}",
        *((NIP_HEAD,) if what == "cancel" else (NIP_STAFF2,)),
        **({"roles": ("pimpinan",), "opd": "3510.03"} if what == "cancel" else STAFF),
        json={} if what == "cancel" else None))
    assert sorted([cancel.status_code, read.status_code]) == [200, 409]


def test_overdue_reported_once_by_two_replicas(letters, config, events, request):
    client = letters.client
    _, receipt = received(client)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    late = one(dispose(client, receipt, NIP_HEAD, [NIP_KABID], due=yesterday))
    done = one(dispose(client, receipt, NIP_HEAD, [NIP_STAFF], due=yesterday))
    assert call(client, "POST", f"/dispositions/{done['id']}/complete", NIP_STAFF, **STAFF,
                json={"note": "Sudah"}).status_code == 200
    one(dispose(client, receipt, NIP_HEAD, [NIP_STAFF2], due=tomorrow))

    # two more processes on the same database, their timers every 50 ms
    for _ in range(2):
        process = serve_process(config, "letters", free_port(),
                                DIRECTORY_SNAPSHOT_ON_EMPTY="false",
                                LETTERS_SETTLE_INTERVAL_SECONDS="0",
                                LETTERS_OVERDUE_INTERVAL_SECONDS="0.05")
        request.addfinalizer(process.wait)
        request.addfinalizer(process.terminate)
    wait_until(lambda: events.of("disposition.overdue"), timeout=30,
               message="disposition.overdue")
    # every round reads the buckets from the watermark (two days back) to today, so a later
    # late disposition reported means later rounds went over the first one again
    later = one(dispose(client, receipt, NIP_HEAD, [NIP_KABID], due=yesterday))
    wait_until(lambda: any(e["data"]["id"] == later["id"]
                           for e in events.of("disposition.overdue")), timeout=30,
               message="the later disposition reported")
    for d in (late, later):
        wait_until(lambda d=d: not letters.db.dispositions.find_one({"_id": d["id"]})
                   .get(OUTBOX), timeout=15, message="its report published")
    overdue = events.of("disposition.overdue")
    assert sorted((e["data"]["id"], e["data"]["due"]) for e in overdue) == sorted(
        [(late["id"], yesterday), (later["id"], yesterday)])
    r = call(client, "GET", f"/dispositions/{late['id']}", NIP_HEAD, roles=("pimpinan",),
             opd="3510.03")
    assert r.json()["overdue"] is True and r.json()["state"] == "unread"


def test_no_disposition_to_another_opds_receipt(letters):
    client = letters.client
    _, receipt = received(client)
    assert dispose(client, receipt, NIP_OTHER, [NIP_STAFF], opd="3510.04").status_code == 404


def test_the_overdue_watermark_moves_past_settled_days_only():
    """The timer's round (pure): what it reports and how far its watermark may move."""
    from services.letters.domain import overdue_round

    now = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)
    day = now.date()

    def d(i, overdue_at, **state):
        return {"_id": i, "overdue_at": overdue_at, "overdue_sent": False, "cancelled": None,
                "completed_at": None, **state}

    past, later = now - timedelta(hours=1), now + timedelta(hours=1)
    found = {"a": d("a", past - timedelta(days=4)), "b": d("b", past, completed_at=past),
             "c": d("c", past, overdue_sent=True), "e": d("e", later)}
    buckets = {day - timedelta(days=4): ["a", "gone"], day - timedelta(days=3): ["b"],
               day - timedelta(days=2): ["c"], day: ["e"]}
    report, settled = overdue_round(day - timedelta(days=6), now, buckets, found)
    assert [x["_id"] for x in report] == ["a"]  # the rest finished, reported or not yet due
    assert settled == day - timedelta(days=2)  # never closer than two days to today
    # a bucket still waiting holds the watermark before it
    found["c"] = d("c", later)
    assert overdue_round(day - timedelta(days=6), now, buckets, found)[1] == \
        day - timedelta(days=3)
    assert overdue_round(day, now, buckets, found) == ([], day)  # nothing after today

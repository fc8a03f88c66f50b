"""The work lists, a citizen's list and the timers' day lists in chunks of bounded size
(``services/permits/chunks.py``): however many applications enter one state on one day, no
document a filing writes holds more than ``chunks.CHUNK`` ids; concurrent and repeated
filings, and a keeper that crashed between its writes and runs again, leave each entry
listed once; lists kept before the chunks are still read and are converted by
``rebuild-lists``."""

import os
import subprocess
import sys

import pymongo
import pytest

from pamong.storage import by_ids
from pamong.testing import race, wait_until
from services.permits import chunks
from services.permits.applications import QUEUED
from services.permits.store import APPLICATIONS, DUE, OWNERS, QUEUES
from tests.integration.permits_support import (
    API,
    act,
    citizen,
    officer,
    publish_type,
    ready,
)

pytestmark = pytest.mark.integration

DAY = "2026-11-20"
OPD = "9999.01"  # no such OPD in the replica: these lists are written here directly


def listed_ids(client, token, **params):
    r = client.request("GET", f"{API}/applications", token=token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def all_pages(client, token, **params):
    ids, cursor = [], None
    while True:
        page = listed_ids(client, token, **params, **({"cursor": cursor} if cursor else {}))
        ids += [i["id"] for i in page["items"]]
        if not (cursor := page["next_cursor"]):
            return ids


def chunk_sizes(db):
    return [len(d["ids"]) for d in db.queues.find({"ids": {"$exists": True}})] + \
        [len(d["ids"]) for d in db.owners.find({"ids": {"$exists": True}})]


def fake(n, state="submitted", day=DAY, owner=None):
    """An application as the keeper reads it: in ``state`` since ``day``."""
    return {"_id": f"fake{n:04d}", "owner": owner, "state": state, "opd": OPD,
            "timeline": [{"to": "draft", "on": day}, {"to": state, "on": day}]}


def queued(db, state="submitted", opd=OPD):
    keys, known = chunks.queue_chunks(db[QUEUES], by_ids, opd, [state])
    docs = {**by_ids(db[QUEUES], keys), **known}
    return [i for key in keys for i in docs.get(key, {}).get("ids", ())]


def month(db, state="submitted", day=DAY, opd=OPD):
    return db[QUEUES].find_one({"_id": f"{opd}:{state}:{day[:7]}"}) or {}


def live(doc, day=DAY):
    """Places of ``day`` handed out and not emptied (what the day may still hold)."""
    field = f"d{day[8:10]}"
    return doc.get("days", {}).get(field, 0) - doc.get("gone", {}).get(field, 0)


# -- through the service ---------------------------------------------------------------------

def test_one_busy_day_fills_bounded_chunks_in_order(permits, monkeypatch):
    """Seven applications submitted on one day with chunks of 2: four chunks of at most two
    ids, the list oldest first across them and paged by 3; the citizen's own list in chunks
    too; registering them drains the day (not read any more)."""
    monkeypatch.setattr(chunks, "CHUNK", 2)
    client, db = permits.client, permits.db
    publish_type(client)
    me, desk = citizen(client), officer(client)
    apps = []
    for _ in range(7):
        app = ready(client, me)
        assert act(client, app["id"], "submit", me).status_code == 200
        apps.append(app["id"])
        wait_until(lambda: all_pages(client, desk, state="submitted") == apps,
                   message="filed in submission order")
    assert max(chunk_sizes(db)) <= 2
    day = db.applications.find_one({"_id": apps[0]})["timeline"][-1]["on"]
    assert db.queues.count_documents({"_id": {"$regex": f"^3510.03:submitted:{day}:"}}) == 4
    assert live(month(db, "submitted", day, "3510.03"), day) == 7
    page = listed_ids(client, desk, state="submitted", limit=3)
    assert [i["id"] for i in page["items"]] == apps[:3] and page["next_cursor"]
    wait_until(lambda: all_pages(client, me, limit=3) == apps[::-1], message="own list")
    assert db.owners.find_one({"_id": "citizen-1"})["n"] == 7
    for app_id in apps[:5]:
        assert act(client, app_id, "register", desk).status_code == 200
    wait_until(lambda: all_pages(client, desk, state="submitted") == apps[5:],
               message="five registered")
    wait_until(lambda: sorted(all_pages(client, desk, state="registered")) == sorted(apps[:5]),
               message="five in the registered list")
    for app_id in apps[5:]:
        assert act(client, app_id, "register", desk).status_code == 200
    wait_until(lambda: live(month(db, "submitted", day, "3510.03"), day) == 0,
               message="the day drained")
    keys, _ = chunks.queue_chunks(db.queues, by_ids, "3510.03", ["submitted"])
    assert keys == []  # a drained day is not read
    assert max(chunk_sizes(db)) <= 2
    assert db.queues.count_documents({"_id": {"$regex": "^3510.03:submitted@"}}) == 0
    wait_until(lambda: sorted(all_pages(client, desk, state="registered")) == sorted(apps),
               message="all seven registered")

    # `pamong permits rebuild-lists` writes the same lists from the applications (in the
    # order of the timeline's times), and the keeper goes on from them
    env = {**os.environ, **{k: str(permits.config[k]) for k in (
        "AMQP_URI", "MONGO_URI", "MONGO_DB_PREFIX", "JWT_SECRET")}}
    result = subprocess.run([sys.executable, "-m", "pamong.cli.main", "permits",
                             "rebuild-lists"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "rewritten" in result.stdout
    assert all_pages(client, desk, state="registered") == apps
    assert all_pages(client, me, limit=3) == apps[::-1]
    assert act(client, apps[0], "start_review", desk).status_code == 200
    wait_until(lambda: all_pages(client, desk, state="registered") == apps[1:],
               message="out of the rebuilt list")


# -- the keeper's writes, directly -----------------------------------------------------------

def test_many_filings_at_once_stay_bounded_and_listed_once(permits, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 5)
    db = permits.db
    apps = [fake(n) for n in range(23)]
    race(apps, lambda app: chunks.file_queued(db[QUEUES], OPD, "submitted", app))
    assert sorted(queued(db)) == sorted(a["_id"] for a in apps)
    assert max(chunk_sizes(db)) <= 5
    assert live(month(db)) == 23

    def kept():
        return list(db[QUEUES].find({"_id": {"$regex": f"^{OPD}:submitted(@|:{DAY}:)"}})
                    .sort("_id"))
    before = kept()
    # redelivered, and handled by two replicas at once: the chunks and claims do not change
    # (each repeat's place is counted gone at once)
    race(apps + apps, lambda app: chunks.file_queued(db[QUEUES], OPD, "submitted", app))
    assert kept() == before and live(month(db)) == 23
    # one new entry filed by four workers at once: one claim, listed once, the unused places
    # counted as gone (the day is still read while it holds anything)
    late = fake(99)
    chunks_used = race([late] * 4, lambda app: chunks.file_queued(db[QUEUES], OPD,
                                                                   "submitted", app))
    assert len(set(chunks_used)) == 1
    assert queued(db).count(late["_id"]) == 1
    assert live(month(db)) == 24
    # all of them leave (two replicas at once): the day drains and is not read
    race(apps + [late] + apps, lambda app: chunks.unfile_queued(
        db[QUEUES], OPD, "submitted", app, chunks.entries_into(app, "submitted")))
    assert queued(db) == []
    assert live(month(db)) == 0
    assert chunks.queue_chunks(db[QUEUES], by_ids, OPD, ["submitted"])[0] == []


class Crash(Exception):
    pass


class Crashing:
    """A collection that fails once at the write ``when(name, args)`` picks (a keeper killed
    between two of its writes), then works."""

    def __init__(self, collection, when):
        self.collection, self.when, self.crashed = collection, when, False

    def __getattr__(self, name):
        method = getattr(self.collection, name)

        def call(*args, **kwargs):
            if not self.crashed and self.when(name, args):
                self.crashed = True
                raise Crash(name)
            return method(*args, **kwargs)
        return call


@pytest.mark.parametrize("where", ["before the claim", "before the chunk", "before the pull",
                                   "before the claim's delete", "before gone"])
def test_keeper_crashed_between_writes_runs_again_to_the_same_lists(permits, where):
    db = permits.db
    app = fake(1)
    crash = {
        "before the claim": lambda name, args: name == "insert_one",
        "before the chunk": lambda name, args: name == "update_one"
        and args[0]["_id"].endswith(":0"),
        "before the pull": lambda name, args: name == "update_one"
        and "$pull" in args[1],
        "before the claim's delete": lambda name, args: name == "delete_one",
        "before gone": lambda name, args: name == "update_one"
        and "$inc" in args[1] and "gone.d20" in args[1]["$inc"],
    }[where]
    queues = Crashing(db[QUEUES], crash)
    leaving = where in ("before the pull", "before the claim's delete", "before gone")
    if leaving:
        chunks.file_queued(db[QUEUES], OPD, "submitted", app)
        run = lambda q: chunks.unfile_queued(q, OPD, "submitted", app,  # noqa: E731
                                             chunks.entries_into(app, "submitted"))
    else:
        run = lambda q: chunks.file_queued(q, OPD, "submitted", app)  # noqa: E731
    with pytest.raises(Crash):
        run(queues)
    run(db[QUEUES])  # the redelivery
    run(db[QUEUES])  # and once more
    if leaving:
        assert queued(db) == []
        assert db[QUEUES].find_one({"_id": chunks.claim_id(f"{OPD}:submitted", app["_id"], 1)}) \
            is None
        # a crash before counting it gone leaves the day read (never hidden) until rebuilt
        assert live(month(db)) == (1 if where == "before gone" else 0)
    else:
        assert queued(db) == [app["_id"]]
        assert db[QUEUES].count_documents({"_id": {"$regex": "@"}}) == 1
        # a crash between the place and the claim leaves a place never emptied: the day is
        # read while anything may be listed, so that place only costs a read
        assert live(month(db)) == (2 if where == "before the claim" else 1)


def test_a_citizens_list_in_chunks_and_a_repeated_filing_listed_once(permits, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 3)
    db = permits.db
    race(range(8), lambda n: chunks.file_owned(db[OWNERS], "busy-citizen", f"app{n}"))
    chunks.file_owned(db[OWNERS], "busy-citizen", "app3")  # the creation's event again
    ids = chunks.owned_ids(db[OWNERS], by_ids, "busy-citizen")
    assert sorted(ids) == [f"app{n}" for n in range(8)]
    assert max(len(d["ids"]) for d in db[OWNERS].find({"ids": {"$exists": True}})) <= 3
    assert db[OWNERS].find_one({"_id": "busy-citizen"})["n"] == 9


def test_due_days_in_chunks(permits, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 4)
    db = permits.db
    race(range(10), lambda n: chunks.due_add(db[DUE], "sla:2026-12-24", [f"a{n}"]))
    chunks.due_add(db[DUE], "sla:2026-12-24", ["a1", "a2"])  # a file listed again
    heads = by_ids(db[DUE], ["sla:2026-12-24"])
    buckets = chunks.due_buckets(db[DUE], by_ids, heads)
    assert {i for _, ids in buckets.values() for i in ids} == {f"a{n}" for n in range(10)}
    assert max(len(ids) for _, ids in buckets.values()) <= 4
    assert heads["sla:2026-12-24"]["n"] == 12


# -- lists kept before the chunks ------------------------------------------------------------

def test_month_lists_from_before_are_read_left_and_rebuilt(permits, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 2)
    db = permits.db
    old = [fake(n, owner="old-citizen") for n in range(3)]
    db[APPLICATIONS].insert_many([{**a, "timeline": [{**e, "at": None} for e in a["timeline"]]}
                                  for a in old])
    db[QUEUES].insert_many([{"_id": f"{OPD}:submitted", "months": [DAY[:7]]},
                            {"_id": f"{OPD}:submitted:{DAY[:7]}",
                             "ids": [a["_id"] for a in old]}])
    db[OWNERS].insert_one({"_id": "old-citizen", "applications": [a["_id"] for a in old]})
    db[DUE].insert_one({"_id": "sla:2026-12-24", "ids": ["x1", "x2", "x3"]})
    new = fake(7, day="2026-11-21")
    chunks.file_queued(db[QUEUES], OPD, "submitted", new)
    assert queued(db) == [*(a["_id"] for a in old), new["_id"]]  # the month's, then by day
    chunks.unfile_queued(db[QUEUES], OPD, "submitted", old[1],
                         chunks.entries_into(old[1], "submitted"))  # it left: out of the month
    assert queued(db) == [old[0]["_id"], old[2]["_id"], new["_id"]]
    assert chunks.owned_ids(db[OWNERS], by_ids, "old-citizen") == [a["_id"] for a in old]

    chunks.rebuild_lists(db, QUEUED)
    assert db[QUEUES].find_one({"_id": f"{OPD}:submitted:{DAY[:7]}"}).get("ids") is None
    assert sorted(queued(db)) == sorted(a["_id"] for a in old)  # the applications' states
    assert max(chunk_sizes(db)) <= 2
    assert sorted(chunks.owned_ids(db[OWNERS], by_ids, "old-citizen")) == \
        sorted(a["_id"] for a in old)
    # a due day from before is read as it is, takes new ids, drains as its day passes
    chunks.due_add(db[DUE], "sla:2026-12-24", ["x4"])
    heads = by_ids(db[DUE], ["sla:2026-12-24"])
    assert heads["sla:2026-12-24"]["n"] == 1
    assert sorted(i for _, ids in chunks.due_buckets(db[DUE], by_ids, heads).values()
                  for i in ids) == ["x1", "x2", "x3", "x4"]
    # and the keeper takes a converted entry out as any other
    chunks.unfile_queued(db[QUEUES], OPD, "submitted", old[0],
                         chunks.entries_into(old[0], "submitted"))
    assert old[0]["_id"] not in queued(db)


def test_duplicate_key_on_a_first_upsert_is_an_update(permits):
    db = permits.db
    race(range(6), lambda n: chunks.upsert(db[QUEUES], "first", {"$inc": {"n": 1}}))
    assert db[QUEUES].find_one({"_id": "first"})["n"] == 6
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        db[QUEUES].insert_one({"_id": "first"})

"""The directory's write path under concurrency, as production runs it: two directory
processes (``pamong serve directory``) on one database and one vhost.

The promises (issue; ``services/directory/lock.py``, ``changes.py``, ``store.py``):

1. a storm of single changes spread over both replicas leaves the directory consistent:
   every stored view (above all ``supervisor``) is what the rules derive from the whole
   directory, a struktural post has at most one active holder (and its ``holder`` claim names
   it), and every employee is filed in ``slots`` under its slot; and the interleaving that
   breaks it in a storm, made certain in one process (a staff change paused between reading
   the holders of its chain and writing, while its head leaves or arrives);
2. unrelated changes do not wait for each other (a shared writer never waits for another
   shared writer; a structure change waits for them, then gives up with 503 and
   ``Retry-After``), and readers never wait for a writer;
3. two concurrent claims of one vacant struktural post: one wins, the other is a 422 naming
   the winner;
4. a new head re-derives exactly the people below it;
5. what a killed change leaves behind (a NIP filed too many, a post claim never written)
   does not break later changes;
6. a directory stored before slots and post claims is filed by its next write.

One pair of processes and one seeded directory (``seed``) serve the whole module. Each test
works in units of its own (3510.05 the storm, 3510.07 the claims, 3510.08 a head change,
3510.09 crash leftovers, 3510.10 migration) and checks the invariant there, so the tests do
not depend on their order or on another's failure; the storm checks the whole directory.
The interleaving tests run one directory in this process (``directory`` fixture).
"""

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date

import pytest

from pamong.storage import client_for, database_name
from pamong.testing import (
    ConditionTimeout,
    EventRecorder,
    HttpClient,
    broker,
    drop_databases,
    free_port,
    race,
    serve_process,
    wait_until,
)
from services.directory import domain
from services.directory.lock import LOCK_ID, WriteLock
from services.directory.store import FILING_VERSION, load, release_post
from tests.conftest import service_test_config

pytestmark = pytest.mark.integration

API = "/api/directory/v1"
ATTEMPTS = 20  # a client repeats a 409 or 503 this many times at most
ROUNDS = 16  # of the storm


def nip(n):
    """A valid NIP of its own for every ``n`` in 1..999 (born 1991-01-01, appointed 2015-03)."""
    return f"199101012015031{n:03d}"


# -- the seeded directory ------------------------------------------------------------------

UNITS = [  # parents first
    ("3510", "Pemerintah Kabupaten Banyuwangi", "pemda"),
    # the storm (test 1)
    ("3510.05", "Dinas Komunikasi dan Informatika", "opd"),
    ("3510.05.01", "Bidang Aplikasi", "bidang"),
    ("3510.05.01.01", "Seksi Aplikasi Layanan", "seksi"),
    ("3510.05.02", "Bidang Persandian", "bidang"),
    # claims of one post (tests 2 and 3)
    ("3510.07", "Dinas Perhubungan", "opd"),
    # a head change (test 4)
    ("3510.08", "Dinas Sosial", "opd"),
    ("3510.08.01", "Bidang Rehabilitasi Sosial", "bidang"),
    ("3510.08.01.01", "Seksi Rehabilitasi Anak", "seksi"),  # no head of its own
    ("3510.08.02", "Bidang Perlindungan Sosial", "bidang"),
    # crash leftovers (test 5)
    ("3510.09", "Dinas Pertanian", "opd"),
    ("3510.09.01", "Bidang Tanaman Pangan", "bidang"),
    # migration (test 6)
    ("3510.10", "Dinas Perikanan", "opd"),
    ("3510.10.01", "Bidang Budidaya", "bidang"),
]

HEAD, STAFF, FUNCTIONAL = "head", "pelaksana", "fungsional"
POSITIONS = [  # id, unit, what it is
    ("sekda", "3510", HEAD),
    ("s-kadis", "3510.05", HEAD), ("s-staf", "3510.05", STAFF), ("s-pool", "3510.05", FUNCTIONAL),
    ("s1-kabid", "3510.05.01", HEAD), ("s1-staf", "3510.05.01", STAFF),
    ("s11-kasi", "3510.05.01.01", HEAD), ("s11-staf", "3510.05.01.01", STAFF),
    ("s2-kabid", "3510.05.02", HEAD), ("s2-staf", "3510.05.02", STAFF),
    ("c-kadis", "3510.07", HEAD), ("c-staf", "3510.07", STAFF),
    ("h-kadis", "3510.08", HEAD),
    ("h1-kabid", "3510.08.01", HEAD), ("h1-staf", "3510.08.01", STAFF),
    ("h11-staf", "3510.08.01.01", STAFF),
    ("h2-kabid", "3510.08.02", HEAD), ("h2-staf", "3510.08.02", STAFF),
    ("r-kadis", "3510.09", HEAD), ("r-staf", "3510.09", STAFF),
    ("r1-kabid", "3510.09.01", HEAD), ("r1-staf", "3510.09.01", STAFF),
    ("m-kadis", "3510.10", HEAD),
    ("m1-kabid", "3510.10.01", HEAD), ("m1-staf", "3510.10.01", STAFF),
]
UNIT_OF = {position_id: unit for position_id, unit, _ in POSITIONS}
WHAT_OF = {position_id: what for position_id, _, what in POSITIONS}

SEKDA = nip(1)
# the storm: officials move between the head posts and the pool, staff between staff posts
STORM_HEADS = ["s-kadis", "s1-kabid", "s11-kasi", "s2-kabid"]
STORM_STAFF_POSTS = ["s-staf", "s1-staf", "s11-staf", "s2-staf"]
OFFICIALS = [nip(10 + i) for i in range(8)]
STORM_STAFF = [nip(20 + i) for i in range(16)]
# claims
CLAIM_STAFF = [nip(200 + i) for i in range(5)]
# a head change
H_KADIS, H2_KABID = nip(300), nip(301)
H1_STAFF = [nip(310), nip(311), nip(312)]
H11_STAFF = [nip(313), nip(314)]
H2_STAFF = [nip(320), nip(321), nip(322)]
# crash leftovers
R_KADIS, R1_A, R1_B, R_STAFF = nip(400), nip(401), nip(402), nip(403)
GHOST = nip(499)  # filed or claimed by a change that died before writing: never stored
# migration
M_KADIS, M1_STAFF = nip(500), [nip(501), nip(502)]

EMPLOYEES = [  # nip, position (its unit is the position's)
    (SEKDA, "sekda"),
    *((nip_, post) for nip_, post in zip(OFFICIALS, [*STORM_HEADS[:3], *["s-pool"] * 5],
                                         strict=True)),
    *((nip_, STORM_STAFF_POSTS[i % 4]) for i, nip_ in enumerate(STORM_STAFF)),
    *((nip_, "c-staf") for nip_ in CLAIM_STAFF),
    (H_KADIS, "h-kadis"), (H2_KABID, "h2-kabid"),
    *((nip_, "h1-staf") for nip_ in H1_STAFF), *((nip_, "h11-staf") for nip_ in H11_STAFF),
    *((nip_, "h2-staf") for nip_ in H2_STAFF),
    (R_KADIS, "r-kadis"), (R1_A, "r1-staf"), (R1_B, "r1-staf"), (R_STAFF, "r-staf"),
    (M_KADIS, "m-kadis"), *((nip_, "m1-staf") for nip_ in M1_STAFF),
]


def position_body(position_id, unit, what):
    if what == HEAD:
        return {"title": f"Kepala {unit}", "kind": "struktural", "unit": unit,
                "heads_unit": True}
    return {"title": f"Jabatan {position_id}", "kind": what, "unit": unit}


def employee_body(nip_, position, **extra):
    return {"name": f"Pegawai {nip_[-3:]}", "unit": UNIT_OF[position], "position": position,
            **extra}


# -- the two replicas ----------------------------------------------------------------------

@dataclass
class Replicas:
    config: dict
    db: object
    urls: list

    def client(self, i):
        """A client of its own (its own connection pool) for replica ``i % 2``."""
        return HttpClient(self.urls[i % 2], self.config)


def send(client, method, path, retried=None, **kwargs):
    """One request as an admin client makes it: a 409 (lost race) or 503 (busy) is
    repeated, counted in ``retried``. Returns the last response."""
    for _ in range(ATTEMPTS):
        response = client.as_staff(method, API + path, roles=("admin",), opd="3510", **kwargs)
        if response.status_code not in (409, 503):
            return response
        if retried is not None:
            retried[response.status_code] += 1
    return response


def ok(client, method, path, **kwargs):
    response = send(client, method, path, **kwargs)
    assert response.status_code == 200, (method, path, response.status_code, response.text)
    return response.json()


@pytest.fixture(scope="module")
def replicas():
    """Two directory processes on one database and vhost, with the directory seeded."""
    vhost = broker.create_vhost()
    config = service_test_config(vhost, f"t{uuid.uuid4().hex[:10]}_")
    ports = [free_port()]
    while (port := free_port()) in ports:
        pass
    ports.append(port)
    processes = []

    def start(port):  # both at once; a failure is returned, so that the other is stopped
        try:
            return serve_process(config, "directory", port, OUTBOX_POLL_SECONDS=0.05)
        except Exception as exc:  # noqa: BLE001 - raised below
            return exc

    try:
        started = race(ports, start)
        processes = [p for p in started if not isinstance(p, Exception)]
        for failure in started:
            if isinstance(failure, Exception):
                raise failure
        pair = Replicas(config, client_for(config["MONGO_URI"])[database_name(config, "directory")],
                        [f"http://127.0.0.1:{port}" for port in ports])
        seed(pair)
        yield pair
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        drop_databases(config)
        broker.delete_vhost(vhost)


def seed(pair):
    """Units, positions and employees through the API, alternating the replicas."""
    clients = [pair.client(0), pair.client(1)]
    for i, (code, name, kind) in enumerate(UNITS):
        ok(clients[i % 2], "PUT", f"/units/{code}", json={"name": name, "kind": kind})
    for i, (position_id, unit, what) in enumerate(POSITIONS):
        ok(clients[i % 2], "PUT", f"/positions/{position_id}",
           json=position_body(position_id, unit, what))
    for i, (nip_, position) in enumerate(EMPLOYEES):
        ok(clients[i % 2], "PUT", f"/employees/{nip_}", json=employee_body(nip_, position))


# -- what must always hold -----------------------------------------------------------------

def assert_consistent(db, under=None):
    """The invariant, over the whole directory or the units ``under`` (codes: their subtrees):
    - every stored view is what the rules derive from the whole directory (``domain.plan``
      of the directory against itself plans nothing);
    - a struktural post has at most one active holder, and its ``holder`` claim names them;
    - every employee is filed in ``slots`` under ``domain.slot_of`` (slots are a superset).
    Returns the whole directory (a ``domain.State``)."""
    def mine(unit):
        return under is None or any(unit == u or unit.startswith(u + ".") for u in under)

    state, meta = load(db)
    stale = []
    for change in domain.plan(state, state, meta, date.today()):
        if not mine(change.record.get("unit") or change.record.get("code")):
            continue
        stored = meta[change.collection][change.key][1] or {}
        wrong = {f: (stored.get(f), change.view.get(f)) for f in change.view
                 if stored.get(f) != change.view.get(f)} if change.view else change.changes
        stale.append((change.collection, change.key, wrong))
    assert not stale, f"stored views differ from the derived ones (stored, derived): {stale}"
    assert_posts_claimed(db, state, mine)
    assert_filed(db, state, mine)
    return state


def assert_posts_claimed(db, state, mine=lambda unit: True):
    for post in db.positions.find({"kind": "struktural"}, {"unit": 1, "holder": 1}):
        if not mine(post["unit"]):
            continue
        holders = state.holders(post["_id"])
        assert len(holders) <= 1, f"struktural post {post['_id']} has active holders {holders}"
        if holders:
            assert post.get("holder") == holders[0], (
                f"post {post['_id']} is held by {holders[0]} but claimed by {post.get('holder')}")


def assert_filed(db, state, mine=lambda unit: True):
    filed = {d["_id"]: set(d.get("nips", [])) for d in db.slots.find()}
    unfiled = [(n, domain.slot_of(e)) for n, e in state.employees.items()
               if mine(e["unit"]) and n not in filed.get(domain.slot_of(e), set())]
    assert not unfiled, f"employees not filed under their slot: {unfiled}"


def supervisor(client, nip_):
    return ok(client, "GET", f"/employees/{nip_}")["supervisor"]


def versions(db):
    return {d["_id"]: d["version"] for d in db.employees.find({}, {"version": 1})}


# -- 1. the storm ----------------------------------------------------------------------------

def storm_ops(rng, fresh):
    """One round: one request for every official and every storm staff member (each on its
    own employee), plus six new staff. Items: (what, method, path, body)."""
    ops = []
    for official in OFFICIALS:
        what = rng.choice(["head", "head", "head", "head", "pool", "pool", "leave", "back"])
        if what == "head":
            post = rng.choice(STORM_HEADS)
            ops.append(("head", "POST", f"/employees/{official}/transfer",
                        {"unit": UNIT_OF[post], "position": post}))
        elif what == "pool":
            ops.append(("move", "POST", f"/employees/{official}/transfer",
                        {"unit": "3510.05", "position": "s-pool"}))
        elif what == "leave":
            ops.append(("leave", "POST", f"/employees/{official}/deactivate",
                        {"status": "long_leave"}))
        else:  # back from leave (or out of a head post) into the pool
            ops.append(("put", "PUT", f"/employees/{official}",
                        employee_body(official, "s-pool")))
    for staff in STORM_STAFF:
        post = rng.choice(STORM_STAFF_POSTS)
        what = rng.choice(["move", "move", "move", "put", "leave"])
        if what == "move":
            ops.append(("move", "POST", f"/employees/{staff}/transfer",
                        {"unit": UNIT_OF[post], "position": post}))
        elif what == "leave":
            ops.append(("leave", "POST", f"/employees/{staff}/deactivate",
                        {"status": rng.choice(["long_leave", "unpaid_leave"])}))
        else:  # a PUT: a new phone, maybe a new post, active again after a leave
            phone = f"+62812{rng.randrange(10**7):07d}"
            ops.append(("put", "PUT", f"/employees/{staff}",
                        employee_body(staff, post, phone=phone)))
    for _ in range(6):
        new, post = next(fresh), rng.choice(STORM_STAFF_POSTS)
        ops.append(("new", "PUT", f"/employees/{new}", employee_body(new, post)))
    rng.shuffle(ops)
    return ops


def test_a_storm_over_two_replicas_leaves_every_view_derived_and_every_post_single(replicas):
    """Many concurrent single changes (heads in and out of nested head posts, staff moving
    under them, new staff, leaves and returns) spread over two processes: afterwards every
    stored supervisor is what the whole directory derives, each struktural post has one
    active holder at most, and every employee is filed under its slot."""
    seed_value = random.randrange(10**6)
    rng = random.Random(seed_value)
    fresh = (nip(n) for n in range(100, 200))
    retried, outcomes, refused = Counter(), Counter(), []
    before = assert_consistent(replicas.db)

    def run(item):
        i, (what, method, path, body) = item
        response = send(replicas.client(i), method, path, retried, json=body)
        return what, method, path, body, response.status_code, response.text

    for _ in range(ROUNDS):
        for what, method, path, body, status, text in race(
                list(enumerate(storm_ops(rng, fresh))), run):
            outcomes[what, status] += 1
            if status != 200 and not (what == "head" and status == 422
                                      and "is already held by" in text):
                refused.append((what, method, path, body, status, text))
    print(f"\nstorm (seed {seed_value}): {dict(outcomes)}; retried: {dict(retried)}")

    assert not refused, f"requests that failed: {refused}"
    assert outcomes["head", 200], "no head post changed hands"
    assert outcomes["head", 422], "no two officials ever wanted one head post"
    after = assert_consistent(replicas.db)
    moved = [n for n in OFFICIALS if after.employees[n]["position"]
             != before.employees[n]["position"]]
    assert moved, "the storm moved no official"


# the storm's failure, one interleaving at a time: a staff change that read the holders of
# its chain, then a head change running to its end, then the staff change writing

INTERLEAVINGS = {
    # (the head change, the staff change paused in its derivation): method, path, body (a
    # position id stands for ``employee_body`` of that employee in that position)
    "a new employee under a head who leaves": (
        ("POST", "/employees/{head}/deactivate", {"status": "retired"}),
        ("PUT", "/employees/{staff}", "s-staf")),
    "a transfer in under a head who arrives": (
        ("PUT", "/employees/{head}", "s-kadis"),
        ("POST", "/employees/{staff}/transfer", {"unit": "3510.05", "position": "s-staf"})),
}


@pytest.mark.parametrize("case", INTERLEAVINGS)
def test_a_staff_change_racing_its_head_change_derives_the_head_that_stays(
        case, directory, config, monkeypatch):
    """The interleaving behind a stale supervisor, made certain (one directory in this process,
    the staff change held right after it read the holders of its chain): the head of the
    unit leaves or arrives meanwhile, and its change re-derives the people filed below it.
    Afterwards the staff member's stored supervisor must be the head the directory now has:
    the staff change filed itself before the head change looked for the people below, and
    it wrote after the head change, so one of the two has to see the other
    (``changes.py``: "each sees the other")."""
    import eventlet
    from eventlet.event import Event

    from pamong.web.context import current_principal
    from services.directory import changes

    db = client_for(config["MONGO_URI"])[database_name(config, "directory")]
    head_change, staff_change = INTERLEAVINGS[case]
    head, staff = nip(20), nip(21)
    arriving = head_change[0] == "PUT"
    for code, name, kind in [UNITS[0], UNITS[1], ("3510.07", "Dinas Perhubungan", "opd")]:
        ok(directory, "PUT", f"/units/{code}", json={"name": name, "kind": kind})
    for position_id in ("sekda", "s-kadis", "s-staf", "c-staf"):
        ok(directory, "PUT", f"/positions/{position_id}",
           json=position_body(position_id, UNIT_OF[position_id], WHAT_OF[position_id]))
    ok(directory, "PUT", f"/employees/{SEKDA}", json=employee_body(SEKDA, "sekda"))
    if not arriving:
        ok(directory, "PUT", f"/employees/{head}", json=employee_body(head, "s-kadis"))
    if staff_change[0] == "POST":  # a transfer: the staff member works elsewhere first
        ok(directory, "PUT", f"/employees/{staff}", json=employee_body(staff, "c-staf"))

    reached, go = Event(), Event()
    load_holders = changes.load_holders

    def held_after_reading(*args, **kwargs):
        holders = load_holders(*args, **kwargs)
        principal = current_principal()
        if principal is not None and principal.sub == "slow" and not reached.ready():
            reached.send()
            go.wait()
        return holders

    monkeypatch.setattr(changes, "load_holders", held_after_reading)
    slow = HttpClient(directory.base_url, config)
    method, path, body = staff_change
    if isinstance(body, str):
        body = employee_body(staff, body)
    paused = eventlet.spawn(slow.request, method, API + path.format(staff=staff),
                            token=slow.token(("admin",), "3510", sub="slow"), json=body)
    wait_until(reached.ready, message="the staff change has read the holders of its chain")
    method, path, body = head_change
    if isinstance(body, str):
        body = employee_body(head, body)
    head_request = eventlet.spawn(send, HttpClient(directory.base_url, config), method,
                                  path.format(head=head), json=body)
    try:  # the head change runs to its end while the staff change waits
        wait_until(lambda: head_request.dead, timeout=5, message="the head change")
    except ConditionTimeout:
        pass  # a directory that made it wait for the staff change would be right too
    go.send()
    for request in (paused, head_request):
        response = request.wait()
        assert response.status_code == 200, response.text

    assert supervisor(directory, staff) == (head if arriving else SEKDA)
    assert_consistent(db)


# -- 2. shared and exclusive -------------------------------------------------------------------

def test_unrelated_changes_do_not_wait_and_readers_never_wait(replicas):
    """With a shared writer inside (a lock held by hand), single employee changes on both
    replicas still answer at once, while a unit change (exclusive) waits for it and then
    answers 503 with Retry-After; with an exclusive writer inside, readers answer at once."""
    db, clients = replicas.db, [replicas.client(0), replicas.client(1)]
    staff = CLAIM_STAFF[4]

    def timed(client, method, path, **kwargs):
        started = time.monotonic()
        response = client.as_staff(method, API + path, roles=("admin",), opd="3510", **kwargs)
        return response, time.monotonic() - started

    shared = WriteLock(db, shared=True).acquire()
    try:
        changed = race([0, 1], lambda i: timed(
            clients[i], "PUT", f"/employees/{(staff, R_STAFF)[i]}",
            json=employee_body((staff, R_STAFF)[i], ("c-staf", "r-staf")[i],
                               phone=f"+6281300000{i:03d}")))
        for response, seconds in changed:
            assert response.status_code == 200, response.text
            assert seconds < 3, f"an employee change waited {seconds:.1f}s for another"
        busy, waited = timed(clients[0], "PUT", "/units/3510.07",
                             json={"name": "Dinas Perhubungan", "kind": "opd"})
        assert busy.status_code == 503, busy.text
        assert waited >= 5, f"the unit change gave up after {waited:.1f}s without waiting"
    finally:
        shared.release()
    assert ok(clients[1], "GET", f"/employees/{staff}")["phone"] == "+6281300000000"

    exclusive = WriteLock(db).acquire()
    try:
        for client in clients:
            for path in (f"/employees/{staff}", "/tree?root=3510", "/units/3510.07/head"):
                response, seconds = timed(client, "GET", path)
                assert response.status_code == 200, (path, response.text)
                assert seconds < 3, f"GET {path} waited {seconds:.1f}s for a writer"
    finally:
        exclusive.release()
    # the unit change goes through once the writers are gone
    ok(clients[0], "PUT", "/units/3510.07", json={"name": "Dinas Perhubungan", "kind": "opd"})
    assert_consistent(db, under=("3510.07", "3510.09"))
    # last, so that everything above is proven whatever the answer here
    assert "Retry-After" in busy.headers, (
        f"a 503 for a busy directory says when to retry: headers {dict(busy.headers)}")


# -- 3. one post, two claims -----------------------------------------------------------------

def test_two_concurrent_claims_of_a_vacant_head_post_one_wins(replicas):
    """Two employees put into one vacant struktural post at the same moment, one through each
    replica: exactly one 200, the other a 422 naming the winner; the post's ``holder`` claim
    names the winner; the loser is left as it was; leaving the post releases the claim.
    Rounds with new employees (PUT) and with existing ones (transfer)."""
    db = replicas.db
    new_pairs = [(nip(210), nip(211)), (nip(212), nip(213)), (nip(214), nip(215))]
    transfer_pairs = [(CLAIM_STAFF[0], CLAIM_STAFF[1]), (CLAIM_STAFF[3], CLAIM_STAFF[2])]
    rounds = [("put", pair) for pair in new_pairs] + [("transfer", pair)
                                                      for pair in transfer_pairs]
    for kind, pair in rounds:
        assert db.positions.find_one({"_id": "c-kadis"}).get("holder") is None

        def claim(i, kind=kind, pair=pair):
            client = replicas.client(i)
            if kind == "put":
                return client.as_staff("PUT", f"{API}/employees/{pair[i]}", roles=("admin",),
                                       opd="3510", json=employee_body(pair[i], "c-kadis"))
            return client.as_staff("POST", f"{API}/employees/{pair[i]}/transfer",
                                   roles=("admin",), opd="3510",
                                   json={"unit": "3510.07", "position": "c-kadis"})

        answers = race([0, 1], claim)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 422], [(a.status_code, a.text) for a in answers]
        winner = pair[[a.status_code for a in answers].index(200)]
        loser, refusal = next((n, a) for n, a in zip(pair, answers, strict=True)
                              if a.status_code == 422)
        assert f"held by {winner}" in refusal.text, refusal.text
        assert db.positions.find_one({"_id": "c-kadis"}).get("holder") == winner
        lost = db.employees.find_one({"_id": loser})
        assert (lost is None) if kind == "put" else (lost["position"] == "c-staf")
        assert supervisor(replicas.client(0), CLAIM_STAFF[4]) == winner

        # the post is left again: its claim goes with it
        if kind == "put":
            ok(replicas.client(1), "POST", f"/employees/{winner}/deactivate",
               json={"status": "retired"})
        else:
            ok(replicas.client(1), "POST", f"/employees/{winner}/transfer",
               json={"unit": "3510.07", "position": "c-staf"})
        assert db.positions.find_one({"_id": "c-kadis"}).get("holder") is None
        assert supervisor(replicas.client(0), CLAIM_STAFF[4]) == SEKDA
    assert_consistent(db, under=("3510.07",))


# -- 4. a new head -----------------------------------------------------------------------------

def test_a_new_head_rederives_exactly_the_people_below(replicas):
    """A new head of a bidang: its staff, and the staff of the seksi below it (no head of its
    own), get the new head as supervisor, each with a new version and an
    ``employee.upserted``; nobody else gets a new version (not the staff of the sibling
    bidang, not the head above, nobody in other units)."""
    db = replicas.db
    below = H1_STAFF + H11_STAFF
    for staff in below + H2_STAFF:
        assert supervisor(replicas.client(0), staff) == (
            H2_KABID if staff in H2_STAFF else H_KADIS)
    head = nip(330)
    old = versions(db)
    recorder = EventRecorder(replicas.config, "directory")
    try:
        ok(replicas.client(1), "PUT", f"/employees/{head}", json=employee_body(head, "h1-kabid"))

        new = versions(db)
        assert {n for n in new if new[n] != old.get(n)} == {head, *below}
        for staff in below:
            assert new[staff] == old[staff] + 1
            assert supervisor(replicas.client(0), staff) == head
        assert supervisor(replicas.client(0), head) == H_KADIS

        def upserted():
            found = {e["data"]["nip"]: e["data"] for e in recorder.of("employee.upserted")
                     if e["data"]["nip"] in below
                     and e["data"]["version"] == new[e["data"]["nip"]]}
            return found if len(found) == len(below) else None

        events = wait_until(upserted, timeout=15, message="employee.upserted of the staff below")
        assert {n: e["supervisor"] for n, e in events.items()} == {n: head for n in below}
    finally:
        recorder.close()
    assert_consistent(db, under=("3510.08",))


# -- 5. what a crash leaves behind --------------------------------------------------------------

def test_a_stale_filing_is_not_a_holder(replicas):
    """A NIP filed in a slot by a change killed before it wrote the employee (an existing
    employee filed under a vacant head post, a NIP never written filed under the staff post
    below): the next head of that post is accepted (200, not "already held"), the staff below
    get the real head, and the directory stays consistent through further changes."""
    db = replicas.db
    db.slots.update_one({"_id": "r1-kabid"}, {"$set": {f"nips.{R_STAFF}": 1}}, upsert=True)
    db.slots.update_one({"_id": "r1-staf"}, {"$set": {f"nips.{GHOST}": 1}}, upsert=True)
    untouched = db.employees.find_one({"_id": R_STAFF})["version"]

    head = nip(410)
    ok(replicas.client(0), "PUT", f"/employees/{head}", json=employee_body(head, "r1-kabid"))
    for staff in (R1_A, R1_B):
        assert supervisor(replicas.client(1), staff) == head
    ok(replicas.client(1), "POST", f"/employees/{head}/deactivate", json={"status": "retired"})
    for staff in (R1_A, R1_B):
        assert supervisor(replicas.client(0), staff) == R_KADIS
    assert db.employees.find_one({"_id": R_STAFF})["version"] == untouched
    assert db.employees.find_one({"_id": GHOST}) is None
    assert_consistent(db, under=("3510.09",))


def test_a_post_claim_left_by_a_dead_change_is_taken_over_once_its_lease_is_over(replicas):
    """A struktural post's ``holder`` claim whose change never wrote its employee: once older
    than the writer lease (30 s) the next employee put into the post takes it over (200); a
    fresh one may belong to a change still running, so a claimant waits for it (up to 2 s)
    and then answers 409, leaving the claim and itself as they were."""
    db, client = replicas.db, replicas.client(1)
    assert db.positions.find_one({"_id": "r1-kabid"}).get("holder") is None
    db.positions.update_one({"_id": "r1-kabid"}, {"$set": {
        "holder": GHOST, "claimed_at": time.time() - 3600}})
    ok(client, "PUT", f"/employees/{R1_B}", json=employee_body(R1_B, "r1-kabid"))
    assert db.positions.find_one({"_id": "r1-kabid"}).get("holder") == R1_B
    assert supervisor(replicas.client(0), R1_A) == R1_B
    ok(client, "POST", f"/employees/{R1_B}/transfer",
       json={"unit": "3510.09.01", "position": "r1-staf"})
    assert db.positions.find_one({"_id": "r1-kabid"}).get("holder") is None

    db.positions.update_one({"_id": "r1-kabid"}, {"$set": {
        "holder": GHOST, "holder_version": 1, "claimed_at": time.time()}})
    try:
        started = time.monotonic()
        response = client.as_staff("PUT", f"{API}/employees/{R1_A}", roles=("admin",),
                                   opd="3510", json=employee_body(R1_A, "r1-kabid"))
        waited = time.monotonic() - started
        assert response.status_code == 409, response.text
        assert waited >= 1.5, f"the claimant gave up after {waited:.2f}s"
        assert db.positions.find_one({"_id": "r1-kabid"}).get("holder") == GHOST
        assert db.employees.find_one({"_id": R1_A})["position"] == "r1-staf"
    finally:  # that change ends as a failed change does: its claim is released
        release_post(db, "r1-kabid", GHOST, 1)
    ok(client, "POST", f"/employees/{R1_A}/transfer",
       json={"unit": "3510.09.01", "position": "r1-kabid"})
    assert supervisor(replicas.client(0), R1_B) == R1_A
    assert_consistent(db, under=("3510.09",))


# -- 6. migration ------------------------------------------------------------------------------

def test_a_directory_stored_before_filing_is_filed_by_its_next_write(replicas):
    """No lock document (so no ``filed``), no ``slots``, no post claims, as a directory
    stored before them: the next write (a new head, whose staff are found through the slots)
    files the directory first, so the staff below get the new head and the whole directory
    is consistent, post claims included."""
    db = replicas.db
    db.locks.delete_one({"_id": LOCK_ID})
    db.slots.drop()
    db.positions.update_many({}, {"$unset": {"holder": "", "claimed_at": ""}})

    head = nip(510)
    ok(replicas.client(1), "PUT", f"/employees/{head}", json=employee_body(head, "m1-kabid"))
    assert db.locks.find_one({"_id": LOCK_ID})["filed"] == FILING_VERSION
    for staff in M1_STAFF:
        assert supervisor(replicas.client(0), staff) == head
    state = assert_consistent(db, under=("3510.10",))
    # every employee filed again, every held post claimed again, not only this unit's
    assert_filed(db, state)
    assert_posts_claimed(db, state)
    assert db.positions.find_one({"_id": "m-kadis"})["holder"] == M_KADIS


# -- 7. a re-derivation whose writer died --------------------------------------------------------

def test_a_rederivation_noted_by_a_writer_that_died_is_finished(replicas):
    """What a writer killed between its own write and the re-derivation of the people below
    leaves: their stored views stale (here: a supervisor that is not theirs) and its note in
    ``pending``. A note whose lease is over is finished by the timer of either replica; a
    fresh one (its writer might still be alive) by the next exclusive writer (a unit change).
    Each finished note re-derives the staff (new version, their real supervisor) and is
    deleted."""
    db = replicas.db
    staff = [e["_id"] for e in db.employees.find({"_id": {"$in": [R1_A, R1_B]}})
             if e["position"] == "r1-staf"]  # earlier tests may have made one of them head
    assert staff

    def leave_behind(until):
        db.employees.update_many({"_id": {"$in": staff}},
                                 {"$set": {"view.supervisor": GHOST}})
        db.pending.insert_one({"_id": uuid.uuid4().hex, "positions": ["r1-kabid"],
                               "until": until})
        return versions(db)

    def repaired(before):
        after = versions(db)
        return all(after[n] == before[n] + 1 for n in staff) and (
            db.pending.count_documents({}) == 0)

    before = leave_behind(until=time.time() - 1)
    wait_until(lambda: repaired(before), timeout=30, message="the timer finishing the note")
    for nip_ in staff:
        assert supervisor(replicas.client(0), nip_) != GHOST

    before = leave_behind(until=time.time() + 3600)
    unit = db.units.find_one({"_id": "3510.09"})
    ok(replicas.client(1), "PUT", "/units/3510.09", json={"name": unit["name"] + " (baru)",
                                                          "kind": unit["kind"]})
    assert repaired(before)
    assert_consistent(db, under=("3510.09",))

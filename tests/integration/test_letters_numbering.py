"""Numbers at signing: unique and gap-free across two service processes on one database, and
what a stopped process leaves is cancelled on record, never reused or lost."""

from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from pamong.testing import HttpClient, free_port, serve_process
from services.letters import numbering
from tests.integration.attendance_support import seed_directory
from tests.integration.letters_support import (
    NIP_HEAD,
    NIP_STAFF,
    call,
    configure_numbering,
    create,
    draft,
    step,
)

pytestmark = pytest.mark.integration
SIGNS = 200
BLOCKS, BLOCK = 4, 5  # reserved blocks taken while the signers sign


def awaiting_signature(client, count):
    """``count`` letters submitted straight to the head (no verifiers)."""
    def one(_):
        letter = create(client, body=draft(verifiers=()))
        assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
        return letter["id"]
    return list(eventlet.GreenPool(20).imap(one, range(count)))


def test_concurrent_signs_on_two_replicas_give_distinct_numbers_without_gaps(config, request):
    ports = [free_port(), free_port()]
    replicas = [serve_process(config, "letters", port, DIRECTORY_SNAPSHOT_ON_EMPTY="false")
                for port in ports]
    for process in replicas:
        request.addfinalizer(process.wait)
        request.addfinalizer(process.terminate)
    db = seed_directory(config, service="letters")
    clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
    configure_numbering(clients[0])
    ids = awaiting_signature(clients[0], SIGNS)

    def sign(i):  # every other request to the other replica, all at once
        if i >= SIGNS:  # an opd_admin reserving a block meanwhile
            return call(clients[i % 2], "POST", "/numbering/reservations",
                        roles=("opd_admin",), opd="3510.03",
                        json={"unit": "3510.03.01", "count": BLOCK, "reason": "outage drill"})
        return step(clients[i % 2], ids[i], "sign", NIP_HEAD, roles=("pimpinan",))

    order = list(range(SIGNS + BLOCKS))
    answers = list(eventlet.GreenPool(SIGNS + BLOCKS).imap(
        sign, order[:SIGNS // 2] + order[SIGNS:] + order[SIGNS // 2:SIGNS]))
    blocks = [a.json() for a in answers if a.status_code == 201]
    answers = [a for a in answers if a.status_code != 201]
    assert [a.status_code for a in answers] == [200] * SIGNS and len(blocks) == BLOCKS
    numbers = [a.json()["number"] for a in answers]
    reserved = [n for b in blocks for n in range(b["first"], b["last"] + 1)]
    total = SIGNS + BLOCKS * BLOCK
    year = datetime.now(UTC).year
    assert sorted([int(n.split("/")[1]) for n in numbers] + reserved) == \
        list(range(1, total + 1))
    assert len(set(numbers)) == SIGNS
    stored = {d["_id"]: d["number"] for d in db.letters.find({}, {"number": 1})}
    assert sorted(stored.values()) == sorted(numbers)
    counter = f"3510.03:*:{year}"
    assert db.counters.find_one({"_id": counter})["next"] == total
    r = call(clients[1], "GET", "/numbering/register", roles=("admin",), opd="3510",
             params={"counter": counter, "limit": 500})
    assert r.status_code == 200
    register = r.json()
    assert [c["n"] for c in register["items"]] == list(range(1, total + 1))
    assert {c["n"] for c in register["items"] if c["status"] == "reserved"} == set(reserved)
    assert {c["letter"] for c in register["items"] if c["status"] == "used"} == set(ids)
    print(f"\n{SIGNS} concurrent signs and {BLOCKS} reserved blocks of {BLOCK} over 2 "
          f"replicas: numbers 1..{total}, {len(set(numbers))} distinct, 0 gaps, 0 overlaps")


def test_numbers_a_stopped_process_left_are_cancelled_on_record(letters):
    client, db = letters.client, letters.db
    configure_numbering(client)
    first, second = awaiting_signature(client, 2)
    counter = f"3510.03:*:{datetime.now(UTC).year}"
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    # what two processes killed mid-sign leave: one after the $inc (no claim), one after the
    # claim (its letter never written)
    db.counters.update_one({"_id": counter}, {"$inc": {"next": 2}, "$set": {"at": long_ago}},
                           upsert=True)
    db.numbers.insert_one({"_id": f"{counter}:2", "counter": counter, "n": 2,
                           "status": "used", "number": "x/2", "letter": second,
                           "at": long_ago, "by": NIP_HEAD})

    signed = step(client, first, "sign", NIP_HEAD, roles=("pimpinan",)).json()
    assert signed["number"].split("/")[1] == "3"
    assert numbering.settle(db, grace_seconds=60) == 0  # n 1 may still be about to be claimed
    assert db.counters.find_one({"_id": counter}).get("checked", 0) == 0

    later = datetime.now(UTC) + timedelta(minutes=2)
    assert numbering.settle(db, grace_seconds=60, now=later) == 2
    assert numbering.settle(db, grace_seconds=60, now=later) == 0  # settled once
    assert db.counters.find_one({"_id": counter})["checked"] == 3
    r = call(client, "GET", "/numbering/register", roles=("opd_admin",), opd="3510.03",
             params={"counter": counter})
    items = r.json()["items"]
    assert [(c["n"], c["status"]) for c in items] == [(1, "cancelled"), (2, "cancelled"),
                                                      (3, "used")]
    assert "never claimed" in items[0]["reason"] and "not signed" in items[1]["reason"]

    again = step(client, second, "sign", NIP_HEAD, roles=("pimpinan",)).json()
    assert again["number"].split("/")[1] == "4"  # a cancelled number is never handed out


def test_a_number_cancelled_before_its_claim_is_skipped(letters):
    client, db = letters.client, letters.db
    configure_numbering(client)
    (letter,) = awaiting_signature(client, 1)
    counter = f"3510.03:*:{datetime.now(UTC).year}"
    # a settle round took a slow signer for dead and cancelled number 1 first
    db.numbers.insert_one({"_id": f"{counter}:1", "counter": counter, "n": 1,
                           "status": "cancelled", "reason": "handed out but never claimed",
                           "at": datetime.now(UTC)})
    signed = step(client, letter, "sign", NIP_HEAD, roles=("pimpinan",)).json()
    assert signed["number"].split("/")[1] == "2"
    assert db.numbers.find_one({"_id": f"{counter}:2"})["letter"] == letter


def test_concurrent_signers_skip_numbers_cancelled_before_their_claims(letters):
    """Signers served at once share one ``$inc`` and one insert of their claims; those whose
    claim meets a cancelled number take the next ones, and no number is given twice."""
    from pamong.testing import race

    client, db = letters.client, letters.db
    configure_numbering(client)
    waiting = awaiting_signature(client, 6)
    counter = f"3510.03:*:{datetime.now(UTC).year}"
    db.numbers.insert_many([{"_id": f"{counter}:{n}", "counter": counter, "n": n,
                             "status": "cancelled", "reason": "handed out but never claimed",
                             "at": datetime.now(UTC)} for n in (2, 3)])
    signed = race(waiting, lambda letter: step(client, letter, "sign", NIP_HEAD,
                                               roles=("pimpinan",)).json())
    numbers = sorted(int(s["number"].split("/")[1]) for s in signed)
    assert numbers == [1, 4, 5, 6, 7, 8]
    for letter, s in zip(waiting, signed, strict=True):
        n = int(s["number"].split("/")[1])
        assert db.numbers.find_one({"_id": f"{counter}:{n}"})["letter"] == letter
    assert db.counters.find_one({"_id": counter})["next"] == 8


def test_a_number_one_signer_cannot_print_fails_that_signer_alone(config):
    """Three signers in one batch of a counter; printing the second one's number fails: that
    signer gets the error, the others their numbers, and the unprinted number stays
    unclaimed for the settle round to cancel on record."""
    from pamong.storage import client_for, database_name
    from pamong.testing import race

    db = client_for(config["MONGO_URI"])[database_name(config, "letters-render")]
    at = datetime.now(UTC)

    def render(n):
        if n == 2:
            raise ValueError("the template cannot print 2")
        return f"X/{n}"

    def sign(letter):
        try:
            return numbering.allocate(db, "c:*:2026", letter, render, NIP_HEAD, at)
        except ValueError as exc:
            return str(exc)

    answers = race(["a", "b", "c"], sign)
    assert sorted(map(str, answers)) == sorted(
        ["(1, 'X/1')", "(3, 'X/3')", "the template cannot print 2"])
    assert sorted(c["n"] for c in db.numbers.find({"counter": "c:*:2026"})) == [1, 3]
    assert db.counters.find_one({"_id": "c:*:2026"})["next"] == 3

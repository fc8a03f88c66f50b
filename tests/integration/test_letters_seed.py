"""The demo letters (``services/letters/seed.py``) through the real service: every state of
the flow is there, the surat tugas carries its assignment, the incoming letter its scan and
disposition tree, the reserved block its paper use; a second run adds nothing."""

import pytest

from pamong.testing import wait_until
from services.letters.seed import seed
from tests.integration.attendance_support import NIP_STAFF, NIP_STAFF2

pytestmark = pytest.mark.integration


def test_demo_letters_cover_every_state_and_a_second_run_adds_nothing(letters):
    db = letters.db
    first = seed(letters.client.base_url, letters.config)
    assert first == {"created": 10, "present": 0}
    wait_until(lambda: db.letters.count_documents({"state": "sent"}) >= 2
               and db.letters.count_documents({"state": "archived"}) == 1, timeout=60,
               message="the signed demo letters sealed and sent, one archived")
    states = sorted(d["state"] for d in db.letters.find({}, {"state": 1}))
    assert set(states) == {"draft", "in_review", "returned", "awaiting_signature",
                           "withdrawn", "sent", "archived", "received"}
    assert db.letters.count_documents({"revoked": {"$ne": None},
                                       "state": "sent"}) == 1
    tugas = db.letters.find_one({"kind": "surat_tugas"})
    assert tugas["number"] and tugas["assignment"]["employees"] == sorted(
        [NIP_STAFF, NIP_STAFF2])
    incoming = db.letters.find_one({"direction": "incoming"})
    assert incoming["attachments"] and incoming["attachments"][0]["type"] == "application/pdf"
    tree = list(db.dispositions.find({"letter": incoming["_id"]}))
    assert len(tree) == 2 and {bool(d.get("parent")) for d in tree} == {True, False}
    assert [d for d in tree if d.get("completed_at")]
    paper = list(db.numbers.find({"status": "paper"}))
    reserved = list(db.numbers.find({"status": "reserved"}))
    assert len(paper) == 1 and len(reserved) == 4

    count = db.letters.count_documents({})
    again = seed(letters.client.base_url, letters.config)
    assert again == {"created": 0, "present": 10}
    assert db.letters.count_documents({}) == count
    assert db.numbers.count_documents({"status": {"$in": ["paper", "reserved"]}}) == 5

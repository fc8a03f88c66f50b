"""Outgoing letters against the real broker and database: draft, paraf, return, resubmit,
sign with a number, the timeline and events, illegal steps, access, the Plt signing."""

from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from pamong.testing import EventRecorder, wait_until
from tests.integration.letters_support import (
    ACTING_NIP,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    act_as_head,
    call,
    configure_numbering,
    create,
    draft,
    step,
)

pytestmark = pytest.mark.integration
HEAD = ("pimpinan",)


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "letters")
    yield recorder
    recorder.close()


def test_draft_return_resubmit_paraf_and_sign(letters, events):
    client = letters.client
    configure_numbering(client)
    letter = create(client)
    assert letter["state"] == "draft" and letter["allowed"] == ["submit", "withdraw"]
    assert letter["signer"]["title"] == "Kepala Dinas" and letter["unit"] == "3510.03.01"

    submitted = step(client, letter["id"], "submit", NIP_STAFF).json()
    assert submitted["state"] == "in_review" and submitted["allowed"] == []
    r = step(client, letter["id"], "return", NIP_KABID, note="")
    assert r.status_code == 422  # a return says what to fix
    returned = step(client, letter["id"], "return", NIP_KABID,
                    note="Lampirkan daftar undangan").json()
    assert returned["state"] == "returned"
    assert returned["verifiers"][0]["status"] == "returned"

    fixed = draft(body="Dengan hormat,\n\nDaftar undangan terlampir.")
    r = call(client, "PUT", f"/letters/{letter['id']}", NIP_STAFF,
             json={**fixed, "version": returned["version"]})
    assert r.status_code == 200 and r.json()["body"].endswith("terlampir.")
    r = call(client, "PUT", f"/letters/{letter['id']}", NIP_STAFF,
             json={**fixed, "version": returned["version"]})
    assert r.status_code == 409  # the version read is stale now
    step(client, letter["id"], "submit", NIP_STAFF)
    approved = step(client, letter["id"], "approve", NIP_KABID).json()
    assert approved["state"] == "awaiting_signature"
    assert approved["verifiers"][0]["status"] == "approved"

    signed = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD).json()
    year = datetime.now(UTC).year  # the unit is in WIB: only New Year's Eve could differ
    assert signed["state"] == "signed" and signed["number"] == f"000.8.3.3/1/DINKES/{year}"
    assert signed["signed_by"]["nip"] == NIP_HEAD and signed["allowed"] == []
    again = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert again.status_code == 200 and again.json()["number"] == signed["number"]

    timeline = [(e["step"], e["from"], e["to"]) for e in signed["timeline"]]
    assert timeline == [
        ("create", None, "draft"), ("submit", "draft", "in_review"),
        ("return", "in_review", "returned"), ("edit", "returned", "returned"),
        ("submit", "returned", "in_review"), ("approve", "in_review", "awaiting_signature"),
        ("sign", "awaiting_signature", "signed")]
    assert signed["timeline"][2]["note"] == "Lampirkan daftar undangan"

    wait_until(lambda: len(events.events()) >= 5, timeout=15, message="five letter events")
    kinds = [(e["type"], (e["data"].get("awaiting") or {}).get("role")) for e in events.events()]
    assert kinds == [("letter.submitted", "verifier"), ("letter.returned", None),
                     ("letter.submitted", "verifier"), ("letter.submitted", "signer"),
                     ("letter.signed", None)]
    signed_event = events.of("letter.signed")[0]["data"]
    assert signed_event["number"] == signed["number"] and signed_event["signer"] == NIP_HEAD
    # the relay pulls the entry after the broker confirmed it: a consumer may see it first
    wait_until(lambda: letters.db.letters.find_one({"_id": letter["id"]})["_outbox"] == [],
               timeout=15, message="the letter's outbox drained")


def test_an_illegal_step_names_the_state_and_the_allowed_ones(letters):
    client = letters.client
    letter = create(client)
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 409
    assert r.json()["state"] == "draft" and r.json()["allowed"] == ["submit", "withdraw"]
    assert step(client, letter["id"], "submit", NIP_KABID).status_code == 403  # not drafter
    step(client, letter["id"], "submit", NIP_STAFF)
    assert step(client, letter["id"], "approve", NIP_HEAD, roles=HEAD).status_code == 403
    r = step(client, letter["id"], "submit", NIP_STAFF)
    assert r.status_code == 409 and r.json()["state"] == "in_review"
    r = call(client, "PUT", f"/letters/{letter['id']}", NIP_STAFF,
             json={**draft(), "version": 2})
    assert r.status_code == 409 and "cannot be edited" in r.json()["detail"]


def test_signing_without_a_numbering_template_is_refused_and_gives_no_number(letters):
    client = letters.client
    letter = create(client, body=draft(verifiers=()))
    step(client, letter["id"], "submit", NIP_STAFF)
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 409 and "numbering template" in r.json()["detail"]
    assert letters.db.counters.count_documents({}) == 0


def test_bad_drafts_are_refused_with_the_field(letters):
    client = letters.client
    cases = [({"signer": NIP_STAFF}, "signer"), ({"kind": "surat_cinta"}, "kind"),
             ({"classification": "999.9"}, "classification"),
             ({"verifiers": [NIP_KABID, NIP_KABID]}, "verifiers"),
             ({"assignment": {"employees": [NIP_STAFF], "start": "2026-12-07",
                              "end": "2026-12-08", "purpose": "Rapat",
                              "place": {"name": "Aula", "latitude": -8.2, "longitude": 114.3,
                                        "radius_m": 100}}}, "assignment")]
    for changes, field in cases:
        r = call(client, "POST", "/letters", NIP_STAFF, json=draft(**changes))
        assert r.status_code == 422 and field in r.json()["errors"], (changes, r.text)


def test_a_repeated_create_with_its_key_returns_the_first_draft(letters):
    first = create(letters.client, key="draft-key-0001")
    again = create(letters.client, key="draft-key-0001")
    assert again["id"] == first["id"] and letters.db.letters.count_documents({}) == 1


def test_who_sees_a_letter(letters):
    client = letters.client
    plain = create(client)
    secret = create(client, body=draft(security="R"))
    admin_of_opd = {"roles": ("opd_admin",), "opd": "3510.03"}
    assert call(client, "GET", f"/letters/{plain['id']}", **admin_of_opd).status_code == 200
    assert call(client, "GET", f"/letters/{secret['id']}", **admin_of_opd).status_code == 404
    for nip in (NIP_STAFF, NIP_KABID, NIP_HEAD):  # drafter, verifier, signer
        assert call(client, "GET", f"/letters/{secret['id']}", nip).status_code == 200
    other = call(client, "GET", f"/letters/{plain['id']}", NIP_OTHER, roles=("opd_admin",),
                 opd="3510.04")
    assert other.status_code == 404
    assert call(client, "GET", "/letters/nope", NIP_STAFF).status_code == 404


def test_the_plt_signs_on_the_day_and_not_after_the_acting_ended(letters, config):
    client = letters.client
    configure_numbering(client)
    act_as_head(config)
    wait_until(lambda: letters.db.acting.count_documents({}) == 1, timeout=15,
               message="the acting assignment replicated")
    letter = create(client, body=draft(signer=ACTING_NIP, verifiers=()))
    assert letter["signer"]["title"] == "Plt. Kepala Dinas"
    step(client, letter["id"], "submit", NIP_STAFF)
    signed = step(client, letter["id"], "sign", ACTING_NIP).json()
    assert signed["state"] == "signed" and signed["signed_by"]["acting"] == "plt"

    # once the acting has ended the Plt may not sign; the head, holding the position the
    # letter names, signs instead
    second = create(client, body=draft(signer=ACTING_NIP, verifiers=()))
    step(client, second["id"], "submit", NIP_STAFF)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    act_as_head(config, version=2, ended_on=yesterday)
    wait_until(lambda: letters.db.acting.find_one({"ended_on": {"$ne": None}}), timeout=15,
               message="the acting end replicated")
    r = step(client, second["id"], "sign", ACTING_NIP)
    assert r.status_code == 409 and "no longer" in r.json()["detail"]
    by_head = step(client, second["id"], "sign", NIP_HEAD, roles=HEAD).json()
    assert by_head["state"] == "signed" and by_head["signed_by"]["nip"] == NIP_HEAD
    assert by_head["number"].split("/")[1] == "2"


def test_one_step_taken_twice_at_once_lands_once(letters):
    client = letters.client
    letter = create(client)
    step(client, letter["id"], "submit", NIP_STAFF)
    answers = list(eventlet.GreenPool(2).imap(
        lambda _: step(client, letter["id"], "approve", NIP_KABID), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 409]
    stored = letters.db.letters.find_one({"_id": letter["id"]})
    assert [e["step"] for e in stored["timeline"]].count("approve") == 1
    assert stored["state"] == "awaiting_signature" and stored["version"] == 3


def test_a_double_sign_gives_one_number_and_cancels_the_other_on_record(letters):
    client = letters.client
    configure_numbering(client)
    letter = create(client, body=draft(verifiers=()))
    step(client, letter["id"], "submit", NIP_STAFF)
    answers = list(eventlet.GreenPool(2).imap(
        lambda _: step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD), range(2)))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["number"] == answers[1].json()["number"]
    claims = list(letters.db.numbers.find({}, {"status": 1, "letter": 1, "reason": 1}))
    used = [c for c in claims if c["status"] == "used"]
    assert len(used) == 1 and used[0]["_id"] == letters.db.letters.find_one(
        {"_id": letter["id"]})["number_claim"]
    # both signs may have taken a number before either wrote the letter: the loser's is
    # cancelled with its reason, never left as a gap
    assert all("changed while it was being signed" in c["reason"]
               for c in claims if c["status"] == "cancelled")

"""Reserved blocks of numbers for an outage: taken without overlapping signers' numbers, used
on paper and recorded later, each number recorded once; a request that dies half-way leaves
its block reserved, not lost."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.letters import numbering
from tests.integration.letters_support import (
    NIP_HEAD,
    NIP_STAFF,
    call,
    configure_numbering,
    step,
)
from tests.integration.test_letters_numbering import awaiting_signature

pytestmark = pytest.mark.integration
PATH = "/numbering/reservations"


def reserve(client, count=3, unit="3510.03.01", opd="3510.03", key=None, **body):
    headers = {"Idempotency-Key": key} if key else None
    return call(client, "POST", PATH, roles=("opd_admin",), opd=opd, headers=headers,
                json={"unit": unit, "count": count, "reason": "server maintenance", **body})


def paper_use(n, **changes):
    return {"used_on": date.today().isoformat(), "subject": "Undangan rapat darurat",
            "addressee": "Kepala Dinas Pendidikan", "signer": f"dr. Kepala ({NIP_HEAD})",
            "classification": "000.8.3.3", **changes}


def test_a_block_sits_between_signed_numbers_and_is_recorded_once(letters):
    client, db = letters.client, letters.db
    configure_numbering(client, template="{klasifikasi}/{urut:3}/{unit}/{bulan_romawi}/{tahun}")
    first, second = awaiting_signature(client, 2)
    signed = step(client, first, "sign", NIP_HEAD, roles=("pimpinan",))
    assert signed.json()["number"].split("/")[1] == "001"

    r = reserve(client, count=3)
    assert r.status_code == 201, r.text
    block = r.json()
    assert (block["first"], block["last"]) == (2, 4)
    assert [(c["n"], c["status"]) for c in block["numbers"]] == [(2, "reserved"),
                                                                 (3, "reserved"),
                                                                 (4, "reserved")]
    later = step(client, second, "sign", NIP_HEAD, roles=("pimpinan",))
    assert later.json()["number"].split("/")[1] == "005"  # after the block

    url = f"{PATH}/{block['id']}/numbers"
    used = call(client, "POST", f"{url}/2", roles=("opd_admin",), opd="3510.03",
                json=paper_use(2))
    assert used.status_code == 200, used.text
    today = date.today()
    roman = "I II III IV V VI VII VIII IX X XI XII".split()[today.month - 1]
    assert used.json()["number"] == f"000.8.3.3/002/DINKES/{roman}/{today.year}"
    assert used.json()["status"] == "paper"
    assert used.json()["paper"]["subject"] == "Undangan rapat darurat"
    again = call(client, "POST", f"{url}/2", roles=("opd_admin",), opd="3510.03",
                 json=paper_use(2, subject="Something else"))
    assert again.status_code == 409 and again.json()["recorded_as"] == "paper"
    unused = call(client, "POST", f"{url}/3", roles=("opd_admin",), opd="3510.03",
                  json={"reason": "the outage ended before it was needed"})
    assert unused.json()["status"] == "cancelled"
    assert call(client, "POST", f"{url}/9", roles=("opd_admin",), opd="3510.03",
                json=paper_use(9)).status_code == 404
    incomplete = call(client, "POST", f"{url}/4", roles=("opd_admin",), opd="3510.03",
                      json={"subject": "no date nor signer"})
    assert incomplete.status_code == 422

    counter = block["counter"]
    register = call(client, "GET", "/numbering/register", roles=("opd_admin",), opd="3510.03",
                    params={"counter": counter}).json()
    assert [(c["n"], c["status"]) for c in register["items"]] == [
        (1, "used"), (2, "paper"), (3, "cancelled"), (4, "reserved"), (5, "used")]
    shown = call(client, "GET", f"{PATH}/{block['id']}", roles=("pimpinan",),
                 opd="3510.03").json()
    assert [c["status"] for c in shown["numbers"]] == ["paper", "cancelled", "reserved"]
    assert db.counters.find_one({"_id": counter})["next"] == 5


def test_a_repeated_reservation_returns_the_same_block(letters):
    client = letters.client
    configure_numbering(client)
    one = reserve(client, key="outage-2026-12-05").json()
    two = reserve(client, key="outage-2026-12-05").json()
    assert one["id"] == two["id"] and (one["first"], one["last"]) == (two["first"], two["last"])
    other = reserve(client).json()
    assert other["first"] == one["last"] + 1


def test_who_may_reserve_and_what_a_reservation_needs(letters):
    client = letters.client
    assert reserve(client).status_code == 409  # no template anywhere up the tree
    configure_numbering(client, per_kind=True)
    r = reserve(client)
    assert r.status_code == 422 and "kind" in r.json()["errors"]
    assert reserve(client, kind="nota_dinas").status_code == 201
    assert reserve(client, kind="nota_dinas", opd="3510.04").status_code == 403  # other OPD
    r = call(client, "POST", PATH, NIP_STAFF, json={"unit": "3510.03.01", "count": 2,
                                                     "reason": "x" * 5})
    assert r.status_code == 403  # a pegawai
    assert reserve(client, count=0, kind="nota_dinas").status_code == 422
    block = reserve(client, kind="nota_dinas").json()
    assert call(client, "GET", f"{PATH}/{block['id']}", roles=("opd_admin",),
                opd="3510.04").status_code == 404


def test_a_block_whose_request_died_before_its_claims_is_kept_reserved(letters):
    client, db = letters.client, letters.db
    configure_numbering(client)
    counter = f"3510.03:*:{datetime.now(UTC).year}"
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    # what a reserving process killed after its counter write leaves: the block, no claims
    db.counters.insert_one({"_id": counter, "next": 3, "at": long_ago, "blocks": [
        {"id": f"{counter}:dead", "unit": "3510.03.01", "kind": None, "reason": "outage",
         "by": "u-admin", "template": "{klasifikasi}/{urut}/{unit}/{tahun}",
         "unit_code": "DINKES", "first": 1, "last": 3, "at": long_ago}]})
    assert numbering.settle(db, grace_seconds=60) == 0  # nothing cancelled
    claims = {d["n"]: d["status"] for d in db.numbers.find({"counter": counter})}
    assert claims == {1: "reserved", 2: "reserved", 3: "reserved"}
    assert db.counters.find_one({"_id": counter})["checked"] == 3
    (letter,) = awaiting_signature(client, 1)
    signed = step(client, letter, "sign", NIP_HEAD, roles=("pimpinan",))
    assert signed.json()["number"].split("/")[1] == "4"

"""Who may see a letter, against the real service: the people named in it, its unit's readers
for a Biasa letter, the units it was delivered to, its disposition chain, and for a Sangat
Rahasia letter only the named people and their leadership chain (the heads of the units
above, or their Plt today). Everyone else gets 404, as for a letter that does not exist."""

import pytest

from pamong.testing import wait_until
from tests.integration.letters_support import (
    ACTING_NIP,
    CLERK,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    PDF,
    act_as_head,
    call,
    configure_numbering,
    create,
    dispose,
    draft,
    incoming,
    publish_sent,
    register,
    step,
    upload,
)

pytestmark = pytest.mark.integration

# (name, nip, roles, opd)
DRAFTER = ("drafter", NIP_STAFF, ("pegawai",), "3510.03.01")
VERIFIER = ("verifier", NIP_KABID, ("verifikator",), "3510.03.01")
SIGNER = ("signer", NIP_HEAD, ("pimpinan",), "3510.03")
HEAD = ("head of the OPD", NIP_HEAD, ("pegawai",), "3510.03")
KABID = ("head of the bidang", NIP_KABID, ("pegawai",), "3510.03.01")
PLT = ("Plt of the OPD's head", ACTING_NIP, ("pegawai",), "3510.03.01")
UNIT_READER = ("unit reader", None, ("opd_admin",), "3510.03")
CLERK_OF_UNIT = ("unit clerk", None, ("sekretariat",), "3510.03")
COLLEAGUE = ("colleague", NIP_STAFF2, ("pegawai",), "3510.03.01")
OTHER_READER = ("another OPD's reader", NIP_OTHER, ("opd_admin",), "3510.04")
ADMIN = ("Pemda admin", None, ("admin",), "3510")


def status(client, path, who):
    _, nip, roles, opd = who
    return call(client, "GET", path, nip, roles=roles, opd=opd).status_code


def seen_by(client, path, people):
    return {who[0] for who in people if status(client, path, who) == 200}


def attached(client, letter, nip=NIP_STAFF):
    r = upload(client, letter["id"], PDF, nip=nip, roles=("pegawai",), opd="3510.03.01")
    assert r.status_code == 201, r.text
    return f"/files/{r.json()['id']}"


def test_a_biasa_letter(letters):
    client = letters.client
    configure_numbering(client)
    letter = create(client)  # drafted in the bidang, paraf by the kabid, signed by the head
    everyone = [DRAFTER, VERIFIER, SIGNER, UNIT_READER, COLLEAGUE, OTHER_READER, ADMIN]
    assert seen_by(client, f"/letters/{letter['id']}", everyone) == {
        "drafter", "verifier", "signer", "unit reader", "Pemda admin"}
    assert status(client, "/letters/0123456789abcdef", DRAFTER) == 404  # as for nothing

    # delivered to Dinas Pendidikan: its readers see it from then on
    assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
    assert step(client, letter["id"], "approve", NIP_KABID).status_code == 200
    signed = step(client, letter["id"], "sign", NIP_HEAD, roles=("pimpinan",)).json()
    publish_sent(letters.config, signed, ["3510.04"])
    wait_until(lambda: letters.db.receipts.find_one({"_id": f"{letter['id']}:3510.04"}),
               timeout=30, message="delivered")
    assert status(client, f"/letters/{letter['id']}", OTHER_READER) == 200
    assert status(client, f"/receipts/{letter['id']}:3510.04", OTHER_READER) == 200
    assert status(client, f"/letters/{letter['id']}", COLLEAGUE) == 404


def test_a_sangat_rahasia_letter(letters, config):
    client = letters.client
    # drafted in the bidang, signed by its head: the OPD's head is not named in it
    letter = create(client, body=draft(security="SR", verifiers=(), signer=NIP_KABID))
    file = attached(client, letter)
    act_as_head(config)  # the Plt of the OPD's head, today
    wait_until(lambda: letters.db.acting.find_one({"nip": ACTING_NIP}), timeout=15,
               message="the acting assignment in the replica")
    everyone = [DRAFTER, KABID, HEAD, PLT, UNIT_READER, OTHER_READER, ADMIN]
    assert seen_by(client, file, everyone) == {
        "drafter", "head of the bidang", "head of the OPD", "Plt of the OPD's head"}
    # the OPD's readers see neither the letter nor its file
    assert status(client, f"/letters/{letter['id']}", UNIT_READER) == 404


def test_an_incoming_rahasia_letter_and_its_disposition_chain(letters):
    client = letters.client
    letter = register(client, body=incoming(unit="3510.03.01", security="R"))
    receipt = f"/receipts/{letter['id']}:3510.03.01"
    path = f"/letters/{letter['id']}"
    clerk = ("registering clerk", CLERK, ("sekretariat",), "3510.03")
    everyone = [clerk, KABID, HEAD, COLLEAGUE, DRAFTER, UNIT_READER, CLERK_OF_UNIT,
                OTHER_READER, ADMIN]
    assert seen_by(client, receipt, everyone) == {"registering clerk", "head of the bidang",
                                                  "head of the OPD"}
    # the bidang's head disposes it to one of its staff: that one sees it, the other not
    r = dispose(client, receipt, NIP_KABID, [NIP_STAFF], roles=("pegawai",),
                opd="3510.03.01")
    assert r.status_code == 201, r.text
    assert status(client, path, DRAFTER) == 200 and status(client, receipt, DRAFTER) == 200
    assert status(client, path, COLLEAGUE) == 404


def test_a_biasa_incoming_letter_is_its_receiving_units(letters):
    client = letters.client
    letter = register(client)
    receipt = f"/receipts/{letter['id']}:3510.03"
    everyone = [UNIT_READER, CLERK_OF_UNIT, COLLEAGUE, OTHER_READER, ADMIN]
    assert seen_by(client, receipt, everyone) == {"unit reader", "unit clerk", "Pemda admin"}

"""Lists and search against the real broker and database: the to-do follows the flow, inbox
and outbox after sending, search by words, number, dates, classification and sender, cursor
pages, access, redelivery, and a page's reads not growing with the letters stored."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pymongo
import pytest
from pymongo import monitoring

from pamong.storage import database_name
from pamong.testing import wait_until
from services.letters import lists
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
    dispose,
    draft,
    publish_sent,
    register,
    step,
)

pytestmark = pytest.mark.integration
HEAD = ("pimpinan",)


def awaiting(client, nip, role):
    r = call(client, "GET", "/awaiting", nip, params={"role": role})
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def until_listed(client, nip, role, letter_id, present=True):
    return wait_until(lambda: (letter_id in awaiting(client, nip, role)) == present,
                      timeout=15, message=f"{role} list of {nip[-4:]} {present}")


def signed(client, subject="Undangan rapat koordinasi SPBE", **changes):
    """A letter signed by the head without verifiers."""
    letter = create(client, body=draft(verifiers=(), subject=subject, **changes))
    assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    return r.json()


def get(client, path, nip=None, roles=("opd_admin",), opd="3510.03", **params):
    r = call(client, "GET", path, nip, roles=roles, opd=opd, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def search_ids(client, nip=None, roles=("opd_admin",), opd="3510.03", **params):
    return [i["id"] for i in get(client, "/search", nip, roles, opd, **params)["items"]]


def test_todo_follows_submit_approve_return_resubmit_sign_and_withdraw(letters):
    client = letters.client
    configure_numbering(client)
    letter = create(client)  # verifier: the kabid, signer: the head
    step(client, letter["id"], "submit", NIP_STAFF)
    until_listed(client, NIP_KABID, "verifier", letter["id"])
    assert letter["id"] not in awaiting(client, NIP_HEAD, "signer")

    step(client, letter["id"], "approve", NIP_KABID)
    until_listed(client, NIP_HEAD, "signer", letter["id"])
    assert letter["id"] not in awaiting(client, NIP_KABID, "verifier")  # no event: checked

    step(client, letter["id"], "return", NIP_HEAD, roles=HEAD, note="Perbaiki dasar hukum")
    until_listed(client, NIP_STAFF, "drafter", letter["id"])
    r = call(client, "GET", "/awaiting", NIP_STAFF)
    item = next(i for i in r.json()["items"] if i["id"] == letter["id"])
    assert item["role"] == "drafter" and item["note"] == "Perbaiki dasar hukum"
    assert item["returned_by"] == NIP_HEAD
    assert letter["id"] not in awaiting(client, NIP_HEAD, "signer")

    step(client, letter["id"], "submit", NIP_STAFF)  # resubmitted: the drafter's item goes
    until_listed(client, NIP_KABID, "verifier", letter["id"])
    assert letter["id"] not in awaiting(client, NIP_STAFF, "drafter")
    step(client, letter["id"], "approve", NIP_KABID)
    until_listed(client, NIP_HEAD, "signer", letter["id"])
    step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert letter["id"] not in awaiting(client, NIP_HEAD, "signer")
    stored = letters.db.lists.find_one({"_id": f"todo:{NIP_HEAD}"})["items"]
    assert letter["id"] not in stored  # the stale item was removed on that read

    other = create(client)
    step(client, other["id"], "submit", NIP_STAFF)
    step(client, other["id"], "return", NIP_KABID, note="Tidak perlu")
    until_listed(client, NIP_STAFF, "drafter", other["id"])
    step(client, other["id"], "withdraw", NIP_STAFF)  # no event: gone at the next read
    assert other["id"] not in awaiting(client, NIP_STAFF, "drafter")


def test_the_plt_of_the_signer_sees_what_awaits_the_signature_and_signs_it(letters, config):
    """The head is away: whoever acts in the head's position today lists the letters waiting
    for that position's signature (marked ``acting: plt``), and after the Plt signed, the
    letter leaves both lists."""
    client = letters.client
    configure_numbering(client)
    act_as_head(config)
    wait_until(lambda: letters.db.acting.count_documents({}) == 1, timeout=15,
               message="the acting assignment replicated")
    letter = create(client)
    step(client, letter["id"], "submit", NIP_STAFF)
    step(client, letter["id"], "approve", NIP_KABID)
    until_listed(client, ACTING_NIP, "signer", letter["id"])
    item = next(i for i in call(client, "GET", "/awaiting", ACTING_NIP).json()["items"]
                if i["id"] == letter["id"])
    assert item["role"] == "signer" and item["acting"] == "plt"
    head_item = next(i for i in call(client, "GET", "/awaiting", NIP_HEAD).json()["items"]
                     if i["id"] == letter["id"])
    assert head_item["acting"] is None  # the named signer sees it as their own

    r = step(client, letter["id"], "sign", ACTING_NIP, roles=HEAD)
    assert r.status_code == 200, r.text
    assert letter["id"] not in awaiting(client, ACTING_NIP, "signer")
    assert letter["id"] not in awaiting(client, NIP_HEAD, "signer")
    assert letter["id"] not in letters.db.lists.find_one(
        {"_id": "todo:pos:pos-1001"})["items"]  # the stale item went on that read


def handled(db, event_id, handler):
    """The consumer's done mark of ``event_id`` for ``handler`` (the queue names it)."""
    return any(db[name].find_one({"_id": {"$regex": f"{handler}.*:{event_id}$"},
                                  "at": {"$exists": True}})
               for name in db.list_collection_names() if name.startswith("_inbox_"))


def test_inbox_and_outbox_after_sending_once_under_redelivery(letters):
    client, db = letters.client, letters.db
    configure_numbering(client)
    letter = signed(client)
    event = publish_sent(letters.config, letter, ["3510.04"])
    outbox = wait_until(lambda: get(client, "/outbox", unit="3510.03.01")["items"], timeout=15,
                        message="the outbox")
    assert [i["id"] for i in outbox] == [letter["id"]]
    assert outbox[0]["number"] == letter["number"] and outbox[0]["visible"]
    assert outbox[0]["sender"] == "Bidang Pelayanan Kesehatan"
    inbox = wait_until(lambda: get(client, "/inbox", roles=("sekretariat",), opd="3510.04",
                                   unit="3510.04")["items"], timeout=15, message="the inbox")
    assert [(i["id"], i["receipt"], i["read_at"]) for i in inbox] == [
        (letter["id"], f"{letter['id']}:3510.04", None)]
    assert inbox[0]["subject"] == letter["subject"]

    # the same letter.sent again with a new id (not the inbox's to drop): one entry still
    again = publish_sent(letters.config, letter, ["3510.04"])
    wait_until(lambda: handled(db, again["id"], "list_sent"), timeout=15,
               message="the repeat handled")
    publish_sent(letters.config, letter, ["3510.04"], event=event)  # and the very same
    assert [i["id"] for i in get(client, "/outbox", unit="3510.03.01")["items"]] == [
        letter["id"]]
    assert len(search_ids(client, q="rapat koordinasi")) == 1

    # another OPD reads neither this outbox nor finds it
    r = call(client, "GET", "/outbox", roles=("opd_admin",), opd="3510.09",
             params={"unit": "3510.03.01"})
    assert r.status_code == 404


def test_search_by_words_number_dates_classification_sender_and_pages(letters):
    client = letters.client
    configure_numbering(client)
    subjects = ["Rapat koordinasi anggaran", "Rapat koordinasi imunisasi",
                "Laporan imunisasi triwulan", "Rapat koordinasi kepegawaian",
                "Rapat koordinasi SPBE", "Rapat koordinasi puskesmas"]
    sent = []
    for n, subject in enumerate(subjects):
        letter = signed(client, subject=subject,
                        classification="800.1.2" if n == 3 else "000.8.3.3")
        publish_sent(letters.config, letter, ["3510.04"])
        sent.append(letter)
    both = {x["id"] for x in sent if "Rapat koordinasi" in x["subject"]}
    wait_until(lambda: set(search_ids(client, q="koordinasi rapat")) == both, timeout=20,
               message="five letters searchable")

    assert search_ids(client, q="rapat imunisasi") == [sent[1]["id"]]
    assert search_ids(client, q="rapat zebra") == []
    assert search_ids(client, number=sent[2]["number"].lower()) == [sent[2]["id"]]
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()  # dates are days in WIB
    assert set(search_ids(client, q="imunisasi", **{"from": today.isoformat(),
                                                    "to": today.isoformat()})) == {
        sent[1]["id"], sent[2]["id"]}
    assert search_ids(client, q="imunisasi", **{"from": (today + timedelta(days=2))
                                                .isoformat()}) == []
    assert search_ids(client, q="imunisasi", to=(today - timedelta(days=2)).isoformat()) == []
    assert search_ids(client, classification="800.1") == [sent[3]["id"]]
    assert len(search_ids(client, classification="000.8")) == 5
    assert len(search_ids(client, sender="pelayanan kesehatan")) == 6
    assert search_ids(client, sender="pendidikan") == []

    pages, cursor, first = [], None, None
    while True:
        params = {"q": "rapat koordinasi", "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = get(client, "/search", **params)
        pages.append([i["id"] for i in body["items"]])
        cursor = body["next_cursor"]
        first = first or cursor
        if not cursor:
            break
    flat = list(itertools.chain(*pages))
    assert len(flat) == len(set(flat)) == 5 and set(flat) == both
    assert all(pages[:-1]) and all(len(p) == 2 for p in pages[:-1])
    r = call(client, "GET", "/search", roles=("opd_admin",), opd="3510.03",
             params={"q": "imunisasi", "cursor": first})
    assert r.status_code == 400  # a cursor of another search

    # the receiving OPD's readers find them too; the drafter (no reader role) finds his own
    # (their postings come with the receipts: the letter.received events after delivery)
    wait_until(lambda: len(search_ids(client, roles=("sekretariat",), opd="3510.04",
                                      q="rapat")) == 5, timeout=20,
               message="the receiving OPD finds the five")
    assert len(search_ids(client, NIP_STAFF, roles=("pegawai",), opd="3510.03.01",
                          q="rapat koordinasi")) == 5


def test_access_strangers_and_confidential_subjects(letters):
    client = letters.client
    configure_numbering(client)
    plain = signed(client, subject="Pemberitahuan jadwal vaksinasi")
    secret = signed(client, subject="Pemeriksaan dugaan pelanggaran disiplin", security="SR",
                    addressees=[{"type": "internal", "unit": "3510.04", "name": "Kepala"}])
    for letter in (plain, secret):
        publish_sent(letters.config, letter, [])
    wait_until(lambda: len(get(client, "/outbox", unit="3510.03.01")["items"]) == 2,
               timeout=15, message="both sent")

    # the drafter and the signer find the SR letter by its subject; nobody else does
    wait_until(lambda: search_ids(client, NIP_STAFF, roles=("pegawai",), opd="3510.03.01",
                                  q="pelanggaran disiplin") == [secret["id"]], timeout=15,
               message="the drafter finds it")
    wait_until(lambda: search_ids(client, roles=("admin",), opd="3510", q="vaksinasi"),
               timeout=15, message="every posting written")
    assert search_ids(client, NIP_HEAD, roles=HEAD, q="pelanggaran disiplin") == [secret["id"]]
    assert search_ids(client, q="pelanggaran disiplin") == []  # a reader of the OPD, not named
    assert search_ids(client, roles=("admin",), opd="3510", q="pelanggaran") == []
    assert search_ids(client, NIP_OTHER, roles=("pegawai",), opd="3510.04",
                      q="pelanggaran") == []
    # the OPD's outbox lists it, without its subject or classification
    hidden = next(i for i in get(client, "/outbox", unit="3510.03.01")["items"]
                  if i["id"] == secret["id"])
    assert hidden["visible"] is False and hidden["subject"] is None
    assert hidden["classification"] is None and hidden["number"] == secret["number"]

    # a B letter: the OPD's readers and Pemda-wide roles find it, another OPD's do not
    assert search_ids(client, q="jadwal vaksinasi") == [plain["id"]]
    assert search_ids(client, roles=("admin",), opd="3510", q="vaksinasi") == [plain["id"]]
    assert search_ids(client, roles=("opd_admin",), opd="3510.09", q="vaksinasi") == []
    assert search_ids(client, NIP_OTHER, roles=("pegawai",), opd="3510.04",
                      q="vaksinasi") == []


def test_incoming_letters_and_dispositions_for_me(letters):
    client = letters.client
    letter = register(client)  # from outside, for 3510.03, by the clerk
    number = letter["sender_number"]
    found = wait_until(lambda: search_ids(client, roles=("sekretariat",), number=number),
                       timeout=15, message="the incoming letter searchable")
    assert found == [letter["id"]]
    assert search_ids(client, roles=("sekretariat",), sender="provinsi jawa") == [letter["id"]]
    inbox = get(client, "/inbox", roles=("sekretariat",), unit="3510.03")["items"]
    assert [(i["id"], i["direction"]) for i in inbox] == [(letter["id"], "incoming")]

    receipt = f"{letter['id']}:3510.03"
    r = dispose(client, f"/receipts/{receipt}", NIP_HEAD, [NIP_KABID],
                due=(datetime.now(UTC).date() - timedelta(days=1)).isoformat())
    assert r.status_code in (200, 201), r.text

    def mine(**params):
        return get(client, "/dispositions/mine", NIP_KABID, roles=("pegawai",),
                   opd="3510.03.01", **params)["items"]

    opened = wait_until(lambda: mine(open="true"), timeout=15, message="the disposition")
    assert opened[0]["letter"] == letter["id"] and opened[0]["role"] == "to"
    assert opened[0]["subject"] == letter["subject"]
    wait_until(lambda: mine(), timeout=15, message="the history")
    # the kabid (in the chain now) finds the letter by its words
    wait_until(lambda: search_ids(client, NIP_KABID, roles=("pegawai",), opd="3510.03.01",
                                  q="data imunisasi") == [letter["id"]], timeout=15,
               message="the chain member finds it")

    r = call(client, "POST", f"/dispositions/{opened[0]['id']}/complete", NIP_KABID,
             opd="3510.03.01", json={"note": "Data sudah dikirim"})
    assert r.status_code == 200, r.text
    assert mine(open="true") == []  # checked against the disposition at once
    assert [d["state"] for d in mine()] == ["completed"]


# -- a page's cost does not follow the number of letters stored ---------------------------

class Finds(monitoring.CommandListener):
    def __init__(self):
        self.count = 0

    def started(self, event):
        self.count += event.command_name == "find"

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def synthetic(n, start):
    words = ["anggaran", "imunisasi", "kepegawaian", "puskesmas", "gizi", "bencana"]
    for i in range(n):
        at = start + timedelta(minutes=i)
        yield {"_id": f"{n}-{i:06d}", "unit": "3510.03.01", "opd": "3510.03", "state": "sent",
               "subject": f"Rapat koordinasi {words[i % len(words)]}",
               "classification": "000.8.3.3", "security": "B", "kind": "nota_dinas",
               "urgency": "biasa", "number": f"000.8.3.3/{i + 1}/DINKES/2025",
               "created_at": at, "signed_at": at, "sent_at": at,
               "drafter": {"nip": NIP_STAFF}, "signer": {"nip": NIP_HEAD}, "verifiers": [],
               "receivers": ["3510.04"]}


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_a_page_reads_the_same_with_1000_and_10000_letters(config, n):
    finds = Finds()
    client = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True, event_listeners=[finds])
    db = client[database_name(config, f"lists_cost_{n}")]
    try:
        lists.bulk_index(db, synthetic(n, datetime(2025, 1, 1, tzinfo=UTC)))
        counts = {}
        for name, stream, keep in [
                ("inbox", "in:3510.04", lambda c: True),
                ("two words", "t:3510.03:w.imunisasi", lambda c: "rapat" in c["w"])]:
            head = db.lists.find_one({"_id": stream})
            finds.count = 0
            page = lists.walk_page(lists.Walk(db, stream, head), 50, keep,
                                   lambda cards: {c["k"]: c for c in cards})
            counts[name] = finds.count
            assert len(page["items"]) == 50 and page["next_cursor"]
        assert counts == {"inbox": 1, "two words": 1}  # one _id $in of chunks after the head
    finally:
        client.drop_database(db.name)
        client.close()

"""The letters part of the day (owner: the letters helper; see tests/e2e/day.py).

07:25 a drafter of the two employees' unit writes a surat tugas sending them to a place for
the day; the head of their bidang gives paraf and the head of their OPD signs. Letters numbers
it from the OPD's template, seals the PDF and answers the public verification; notify tells
the head once that a letter awaits the signature. At 09:00 a transferred employee drafts in
the new unit. Every step is a ``suite.write`` with its own Idempotency-Key and survives a
module killed in between: a step that landed before the answer was lost is recognised on its
retry (409 naming a later state) by the timeline.
"""

import hashlib
import re
from collections import Counter

from pamong.replica import EMPLOYEES
from pamong.testing import wait_until
from tests.e2e.suite import WAIT, retried

API = "/api/letters/v1"
NOTIFY_API = "/api/notify/v1"
KIND, CLASSIFICATION = "surat_tugas", "000.1.2"  # the seeded kind and "Perjalanan Dinas"
TEMPLATE = "{klasifikasi}/{urut:3}/{unit}/{tahun}"
ST_TEMPLATE = "{urut:3}/ST/{unit}/{bulan_romawi}/{tahun}"
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
SENT_STATES = ("sent", "archived")  # where a signed letter ends once sealed


class LettersDay:
    def __init__(self, suite, world, day):
        self.suite, self.world, self.day = suite, world, day
        self.letter = None  # what surat_tugas returned
        self.notice_sends = None  # WhatsApp sends of the "awaiting signature" notice

    # -- 07:25 the surat tugas -----------------------------------------------------------

    def surat_tugas(self, candidates):
        """A surat tugas for ``candidates`` (``(nips, place)``), drafted, verified and signed
        by a head; returns what AttendanceDay.expect_assignment needs."""
        nips, place = candidates
        nips = list(nips)
        unit = _common_unit([self.world.employees[n]["unit"] for n in nips])
        opd = self._opd_of(unit)
        drafter, verifier, signer = self._people(unit, opd, nips)
        code = self._numbering(opd, unit)

        day = self.day.isoformat()
        subject = f"Penugasan rapat koordinasi lapangan {day}"
        body = {
            "kind": KIND, "classification": CLASSIFICATION, "security": "B",
            "urgency": "segera", "subject": subject,
            "body": "Dalam rangka rapat koordinasi lapangan, dengan ini menugaskan pegawai "
                    "yang namanya tersebut di bawah untuk hadir di tempat tujuan.",
            "addressees": [{"type": "internal", "unit": unit,
                            "name": self.world.units[unit]["name"]}],
            "copies": [], "verifiers": [verifier], "signer": signer,
            "assignment": {"employees": nips, "start": day, "end": day, "place": place,
                           "purpose": "Rapat koordinasi lapangan"}}
        created = self.suite.write("letters", "POST", f"{API}/letters",
                                   key=f"day-surat-tugas-{day}", expect=(200, 201),
                                   roles=("pegawai",), opd=unit, nip=drafter,
                                   json=body).json()
        letter_id = created["id"]
        assert created["unit"] == unit and created["opd"] == self._opd_field(opd), created
        assert created["signer"]["nip"] == signer and created["assignment"]["employees"] == nips

        self._step(letter_id, "submit", drafter, ("pegawai",), unit)
        self._step(letter_id, "approve", verifier, ("pegawai",),
                   self.world.employees[verifier]["unit"])
        signed = self._step(letter_id, "sign", signer, ("pimpinan",),
                            self.world.employees[signer]["unit"])
        assert signed["state"] in ("signed", *SENT_STATES) and signed["number"], signed
        assert signed["signed_by"]["nip"] == signer, signed["signed_by"]

        letter = self._sealed(letter_id, signer)
        number = self._one_number(letter, opd, code)
        self._verified(letter, unit)
        self._signer_notified_once(signer, subject)
        self.letter = {"letter_id": letter_id, "number": number, "nips": nips, "place": place,
                       "start": self.day, "end": self.day, "unit": unit, "signer": signer}
        return self.letter

    def _people(self, unit, opd, nips):
        """``(drafter, verifier, signer)``: a staff member of ``unit`` not on the letter, the
        head of the unit (or another staff member) for the paraf, and the head of the OPD
        (or of a unit below it) who may sign."""
        w = self.world
        signer = self._signer(unit, opd)
        staff = sorted(e["nip"] for e in w.active if e["unit"] == unit and e["nip"] != signer
                       and not (w.positions.get(e["position"]) or {}).get("heads_unit"))
        others = [e["nip"] for e in sorted(w.active, key=lambda e: e["nip"])
                  if _within(e["unit"], unit) or _within(e["unit"], opd)]
        drafter = next(n for n in [n for n in staff if n not in nips] + nips + others
                       if n != signer)
        head = w.head_of(unit)
        if head and head["nip"] not in (signer, drafter):
            return drafter, head["nip"], signer
        return drafter, next(n for n in staff + others if n not in (drafter, signer)), signer

    def _signer(self, unit, opd, exclude=()):
        """The head of ``opd``, else of the nearest unit below it on the way to ``unit``,
        whose position may sign (else anyone up the chain who may)."""
        chain = _chain(unit)
        for code in chain[chain.index(opd):]:
            head = self.world.head_of(code)
            position = self.world.positions.get(head["position"]) if head else None
            if position and position["may_sign"] and head["nip"] not in exclude:
                return head["nip"]
        # no head there (the Pemda's own unit: the Bupati is no employee): who else may sign
        return next(e["nip"] for e in sorted(self.world.active,
                                             key=lambda e: (e["unit"] not in chain, e["nip"]))
                    if e["nip"] not in exclude
                    and (self.world.positions.get(e["position"]) or {}).get("may_sign"))

    def _opd_of(self, unit):
        """The OPD ``unit`` is in: its first two segments, as the directory has it (the root
        for the Pemda's own unit)."""
        return ".".join(unit.split(".")[:2])

    def _opd_field(self, opd):
        """An employee's ``opd`` in the directory: none for the Pemda's own unit."""
        return opd if "." in opd else None

    def _numbering(self, opd, unit):
        """The OPD's template (the unit inherits it): a PUT, the same on every retry. Returns
        the OPD's code in numbers."""
        code = _unit_code(self.world.units[opd]["name"])
        self.suite.write("letters", "PUT", f"{API}/numbering/{opd}", key=f"day-numbering-{opd}",
                         expect=200, roles=("admin",), opd="3510",
                         json={"unit_code": code, "template": TEMPLATE,
                               "kinds": {KIND: ST_TEMPLATE}})
        inherited = self.suite.read("letters", f"{API}/numbering/{unit}", roles=("admin",),
                                    opd="3510")
        assert inherited["unit"] == opd and inherited["kinds"] == {KIND: ST_TEMPLATE}, inherited
        return code

    def _step(self, letter_id, step, nip, roles, opd):
        """``step`` by ``nip``; a retry that finds it taken already (409 naming a later
        state: the first attempt landed, its answer was lost) reads the letter instead."""
        r = self.suite.write("letters", "POST", f"{API}/letters/{letter_id}/{step}",
                             key=f"day-{step}-{letter_id}", expect=(200, 409), roles=roles,
                             opd=opd, nip=nip, json={})
        if r.status_code == 200:
            return r.json()
        letter = self.suite.read("letters", f"{API}/letters/{letter_id}", roles=roles, opd=opd,
                                 nip=nip)
        taken = [e for e in letter["timeline"] if e["step"] == step and e["nip"] == nip]
        assert len(taken) == 1, f"{step} refused and not taken before: {r.text[:500]}"
        return letter

    def _sealed(self, letter_id, signer):
        """The letter once the sealing consumer stored its PDF and sent it."""
        signer_opd = self.world.employees[signer]["unit"]

        def sent():
            letter = self.suite.read("letters", f"{API}/letters/{letter_id}",
                                     roles=("pimpinan",), opd=signer_opd, nip=signer)
            return letter if letter["state"] in SENT_STATES else None

        letter = wait_until(sent, timeout=WAIT, interval=0.5,
                            message=f"letter {letter_id} sealed and sent")
        steps = [e["step"] for e in letter["timeline"]]
        assert steps == ["create", "submit", "approve", "sign", "send"], steps
        document = letter["document"]
        r = self.suite.read("letters", f"{API}/letters/{letter_id}/document", raw=True,
                            roles=("pimpinan",),
                      opd=signer_opd, nip=signer)
        assert r.content.startswith(b"%PDF") and r.headers["ETag"] == f'"{document["sha256"]}"'
        assert hashlib.sha256(r.content).hexdigest() == document["sha256"]
        assert len(r.content) == document["size"]
        stored, by_hash = self._data("letters", lambda db: (
            db.documents.find_one({"_id": letter_id}, {"pdf": 0}),
            db.hashes.find_one({"_id": document["sha256"]})))
        assert stored["sha256"] == document["sha256"], stored
        assert by_hash["letter"] == letter_id, by_hash
        return letter

    def _one_number(self, letter, opd, code):
        """Exactly one number for the letter, rendered from the OPD's surat tugas template,
        its claim the only one used by the letter; the register accounts for every number
        before it."""
        year = self.day.year
        match = re.fullmatch(rf"(\d{{3}})/ST/{re.escape(code)}/{ROMAN[self.day.month - 1]}/"
                             rf"{year}", letter["number"])
        assert match, f"{letter['number']} is not {ST_TEMPLATE} of {code}"
        n = int(match.group(1))
        counter = f"{opd}:*:{year}"
        assert letter["number_counter"] == counter, letter["number_counter"]
        stored, used, same_number = self._data("letters", lambda db: (
            db.letters.find_one({"_id": letter["id"]}, {"number_claim": 1}),
            list(db.numbers.find({"letter": letter["id"], "status": "used"})),
            db.numbers.count_documents({"number": letter["number"]})))
        assert stored["number_claim"] == f"{counter}:{n}", stored
        assert [c["_id"] for c in used] == [stored["number_claim"]], used
        assert same_number == 1, f"{same_number} claims print {letter['number']}"
        register = self.suite.read("letters", f"{API}/numbering/register?counter={counter}",
                                   roles=("admin",), opd="3510")
        mine = [c for c in register["items"] if c["n"] == n]
        assert mine and mine[0]["letter"] == letter["id"] and mine[0]["status"] == "used"
        return letter["number"]

    def _verified(self, letter, unit):
        """The public verification (no token) of the code the QR carries says valid."""
        r = self.suite.read("letters", f"{API}/verify/{letter['verify_code']}", token=False,
                            raw=True)
        view = r.json()
        assert view["status"] == "valid" and view["number"] == letter["number"], view
        assert view["sha256"] == letter["document"]["sha256"] and view["kind"] == KIND, view
        assert view["unit"]["code"] == unit and view["signer"]["name"], view
        assert "subject" not in view and r.headers["Cache-Control"] == "no-store"

    def _signer_notified_once(self, signer, subject):
        """Notify's ``letter_awaiting_signature`` rule made one notification for the signer,
        delivered on the rule's first channel that reaches them."""
        def delivered():
            docs = self._data("notify", lambda db: list(db.notifications.find(
                {"rule": "letter_awaiting_signature", "recipient.person": signer})))
            return docs if docs and all(d["state"] in ("sent", "delivered", "read")
                                        for d in docs) else None

        docs = wait_until(delivered, timeout=WAIT, interval=0.5,
                          message=f"the signer {signer} notified of the letter")
        assert len(docs) == 1, [(d["_id"], d["event"]) for d in docs]
        (doc,) = docs
        assert doc["event"]["type"] == "letter.submitted" and doc["event"]["source"] == "letters"
        channel = doc["channel"]
        if channel == "whatsapp":
            phone = doc["recipient"]["phone"]
            sends = [b for b in self.suite.wa.received(to=phone)
                     if b.get("template", {}).get("name") == "surat_menunggu_ttd"
                     and subject in str(b)]
            attempts = [a for d in doc["deliveries"] if d["channel"] == "whatsapp"
                        for a in d["attempts"]]
            self.notice_sends = len(sends)
            # a second send only follows an attempt whose outcome a crash left unknown
            assert len(sends) == 1 or (len(sends) <= len(attempts) and any(
                a.get("outcome") in (None, "unknown") for a in attempts)), (sends, attempts)
        elif channel == "inapp":
            inbox = self.suite.read("notify", f"{NOTIFY_API}/inbox", roles=("pegawai",),
                                    nip=signer)
            mine = [i for i in inbox["items"] if i["id"] == doc["_id"]]
            self.notice_sends = len(mine)
            assert len(mine) == 1, inbox
        else:
            self.notice_sends = 1

    def _data(self, module, read):
        """``read(module's database)``, repeated while the database is away."""
        return retried(lambda: read(self.suite.db(module)))

    # -- 09:00 the transfer --------------------------------------------------------------

    def transfer_seen(self, nip, unit):
        """Letters sees ``nip`` in ``unit`` now: its replica holds it, and a letter the
        employee drafts is the new unit's (and OPD's)."""
        employee = wait_until(
            lambda: (e := self._data("letters", lambda db: db[EMPLOYEES].find_one(
                {"_id": nip}))) and e["unit"] == unit and e,
            timeout=WAIT, interval=0.5, message=f"letters' replica holding {nip} in {unit}")
        opd = self._opd_of(unit)
        assert employee["opd"] == self._opd_field(opd), employee
        signer = self._signer(unit, opd, exclude=(nip,))
        draft = self.suite.write(
            "letters", "POST", f"{API}/letters", key=f"day-transfer-draft-{nip}",
            expect=(200, 201), roles=("pegawai",), opd=unit, nip=nip,
            json={"kind": "nota_dinas", "classification": "800.1.3", "security": "B",
                  "urgency": "biasa", "subject": "Laporan mulai bertugas di unit baru",
                  "body": "Dengan hormat, bersama ini saya melaporkan telah mulai bertugas.",
                  "addressees": [{"type": "internal", "unit": unit,
                                  "name": self.world.units[unit]["name"]}],
                  "verifiers": [], "signer": signer}).json()
        assert draft["unit"] == unit and draft["opd"] == self._opd_field(opd), draft
        assert draft["drafter"]["nip"] == nip and draft["state"] == "draft", draft

    # -- the summary ---------------------------------------------------------------------

    def counts(self):
        """From letters' own data, once every counter is settled (each number handed out
        is claimed by its letter or cancelled with a reason)."""
        wait_until(lambda: self._data("letters", lambda db: all(
            c.get("checked", 0) >= c["next"] for c in db.counters.find({}))),
                   timeout=WAIT, interval=0.5, message="every letter number settled")
        claims, signed, issued, sealed = self._data("letters", lambda db: (
            list(db.numbers.find({}, {"status": 1, "letter": 1, "number": 1})),
            list(db.letters.find({"number": {"$ne": None}}, {"number": 1})),
            sum(c["next"] for c in db.counters.find({})), db.documents.count_documents({})))
        used = [c for c in claims if c["status"] == "used"]
        per_letter = Counter(c["letter"] for c in used)
        per_number = Counter(c["number"] for c in used)
        numbers_of_letters = Counter(s["number"] for s in signed)
        return {
            "letters_signed": len(signed),
            "letters_sealed": sealed,
            "numbers_issued": len(used),
            "numbers_cancelled": sum(c["status"] == "cancelled" for c in claims),
            "numbers_unaccounted": issued - len(claims),
            "numbers_per_letter_max": max(per_letter.values(), default=0),
            "duplicate_numbers": sum(n > 1 for n in per_number.values())
                                 + sum(n > 1 for n in numbers_of_letters.values()),
            "letters_without_number_claim": sum(s["_id"] not in per_letter for s in signed),
            "signature_notices_sent": self.notice_sends,
        }


def _chain(unit):
    """``3510.03.01`` -> ``[3510, 3510.03, 3510.03.01]``."""
    parts = unit.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _within(unit, top):
    return unit == top or unit.startswith(top + ".")


def _common_unit(units):
    """The deepest unit all of ``units`` are in (themselves when they are one)."""
    chains = [_chain(u) for u in units]
    return [c for c in chains[0] if all(c in other for other in chains)][-1]


def _unit_code(name):
    """``Dinas Kesehatan`` -> ``DK``: the code an OPD's numbers carry."""
    return "".join(w[0] for w in name.replace(",", " ").split() if w[0].isupper())[:8] or "OPD"

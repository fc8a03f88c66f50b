"""Reserved blocks of numbers for an outage: an ``opd_admin`` reserves a block while the
system is up, the OPD numbers its letters on paper from it while it is down, and records later
what each number was used for (or why it was not). The register then shows every number
accounted for: used by a letter, used on paper, or cancelled with a reason.

The block is taken by ``numbering.reserve`` (written into the counter by the same
compare-and-set that moves its ``next``: never lost half-way, never overlapping a signer's
number); each number of it is claimed ``reserved`` and later becomes ``paper`` or
``cancelled``, a compare-and-set on ``status`` so a number is recorded once.
"""

import uuid
from datetime import UTC, datetime

from pamong.storage import by_ids, db_now
from pamong.web import Problem, conflict, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.letters import domain, numbering
from services.letters.schemas import ClaimOut, PaperUseBody, ReservationBody, ReservationOut
from services.letters.store import COUNTERS, NUMBERS, claim_id

API = "/api/letters/v1/numbering/reservations"
TAGS = ["reference"]
ADMINS = ("admin", "opd_admin")
KEY_IDS = uuid.UUID("0d6c2b8e-4f1a-4e3b-9c7d-5a2e8f1b6c40")  # block ids from a key


def split_id(reservation_id):
    """``<unit>:<kind or *>:<year>:<hex>`` -> (counter, the id)."""
    counter, _, tail = reservation_id.rpartition(":")
    if not counter or not tail:
        raise not_found()
    return counter, reservation_id


class ReservationEndpoints:
    """Mixed into the letters service (needs ``db``, ``cache``)."""

    @route("POST", API, roles=ADMINS, body=ReservationBody(), response=ReservationOut(),
           status=201, tags=TAGS,
           problems={409: "No numbering template is set for the unit or any unit above it"},
           summary="Reserve a block of numbers for use on paper during an outage "
                   "(Idempotency-Key optional: a repeat returns the same block)")
    def reserve_numbers(self, request, principal, body):
        unit = body["unit"]
        if not principal.can_write(unit):
            raise forbidden("You may reserve numbers for your own unit and those below it.")
        configs = numbering.configs_for(self.db, self.cache, unit)
        kind = body["kind"]
        scheme = domain.scheme_for(configs, numbering.unit_chain(unit), kind or "*")
        if scheme is None:
            raise conflict(f"No numbering template is set for unit {unit} or any unit above "
                           "it: an opd_admin sets one (PUT /numbering/<unit>).")
        owner, template, per_kind, unit_code = scheme
        if per_kind and not kind:
            raise unprocessable({"kind": [f"unit {owner} numbers each kind on its own: name "
                                          "the kind"]})
        year = self._today(unit).year
        counter = domain.sequence_id(owner, kind, year, per_kind)
        key = idempotency_key(request)
        suffix = (uuid.uuid5(KEY_IDS, f"{principal.sub}:{key}") if key else uuid.uuid4()).hex
        block = {"id": f"{counter}:{suffix[:16]}", "unit": unit, "kind": kind,
                 "reason": body["reason"], "by": principal.sub, "template": template,
                 "unit_code": unit_code}
        block = numbering.reserve(self.db, counter, body["count"], block, db_now())
        return self._reservation_out(counter, block)

    @route("GET", f"{API}/<reservation_id>", roles=ADMINS + ("pimpinan",),
           response=ReservationOut(), tags=TAGS,
           summary="A reserved block and what became of each of its numbers")
    def get_reservation(self, request, principal, reservation_id):
        counter, block = self._block(principal, reservation_id, principal.can_read)
        return self._reservation_out(counter, block)

    @route("POST", f"{API}/<reservation_id>/numbers/<int:n>", roles=ADMINS,
           body=PaperUseBody(), response=ClaimOut(), tags=TAGS,
           summary="Record what a reserved number was used for on paper, or why not (once)")
    def record_reserved_number(self, request, principal, reservation_id, n, body):
        counter, block = self._block(principal, reservation_id, principal.can_write)
        if not block["first"] <= n <= block["last"]:
            raise not_found(f"Number {n} is not in this block ({block['first']}-"
                            f"{block['last']}).")
        use = {"reason": body["reason"]}
        if not body["reason"]:
            paper = {k: (v.isoformat() if k == "used_on" else v) for k, v in body.items()
                     if k != "reason"}
            number = domain.render_number(
                block["template"], seq=n, day=body["used_on"], unit_code=block["unit_code"],
                classification=body["classification"], security=body["security"],
                kind=body["kind"] or block["kind"] or "")
            use = {"number": number, "paper": paper}
        claim = numbering.record_paper_use(self.db, counter, n, use, principal.sub,
                                           datetime.now(UTC))
        if claim is None:
            current = self.db[NUMBERS].find_one({"_id": claim_id(counter, n)}) or {}
            raise Problem(409, f"Number {n} is already recorded as {current.get('status')}.",
                          extensions={"recorded_as": current.get("status")})
        return claim

    def _block(self, principal, reservation_id, in_scope):
        counter, block_id = split_id(reservation_id)
        block = numbering.block_of(self.db[COUNTERS].find_one({"_id": counter}), block_id)
        if block is None or not in_scope(block["unit"]):
            raise not_found()
        return counter, block

    def _reservation_out(self, counter, block):
        ids = [claim_id(counter, n) for n in range(block["first"], block["last"] + 1)]
        claims = by_ids(self.db[NUMBERS], ids)
        return {**block, "counter": counter,
                "numbers": [claims.get(i) or {"n": int(i.rsplit(":", 1)[1]), "status": "pending"}
                            for i in ids]}

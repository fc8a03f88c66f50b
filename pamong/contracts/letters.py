"""Events published by ``letters`` that other modules consume (the letters module honours
these when it is built; attendance already consumes ``letter.signed``).

A surat tugas (assignment letter) carries ``assignment``: the employees it sends, the dates
and the place where they may check in instead of their office.
"""

from marshmallow import Schema, fields, validate

from pamong.contracts.directory import NIP, UNIT_CODE
from pamong.events.contracts import contract


class Place(Schema):
    name = fields.String(required=True)
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    radius_m = fields.Integer(required=True, validate=validate.Range(min=1, max=5000))


class Assignment(Schema):
    employees = fields.List(fields.String(validate=validate.Regexp(NIP)), required=True,
                            validate=validate.Length(min=1))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    place = fields.Nested(Place, required=True)
    purpose = fields.String(required=True, allow_none=True)


@contract("letter.signed", 1)
class LetterSigned(Schema):
    """A letter was signed and numbered."""

    id = fields.String(required=True)
    number = fields.String(required=True)
    kind = fields.String(required=True, metadata={
        "description": "document kind code, e.g. surat_tugas, surat_dinas, nota_dinas"})
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    subject = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    signer = fields.String(required=True, validate=validate.Regexp(NIP))
    assignment = fields.Nested(Assignment, required=True, allow_none=True, metadata={
        "description": "set on a surat tugas that sends employees somewhere"})


class Awaiting(Schema):
    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    role = fields.String(required=True, validate=validate.OneOf(("verifier", "signer")))


@contract("letter.submitted", 1)
class LetterSubmitted(Schema):
    """A letter reached its next reviewer: on submission, and on each paraf that passes it on
    (``awaiting.role`` ``signer``: it waits for the signature). The subject of a Sangat
    Rahasia or Rahasia letter is not carried."""

    id = fields.String(required=True)
    kind = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    security = fields.String(required=True, validate=validate.OneOf(("SR", "R", "T", "B")))
    urgency = fields.String(required=True)
    subject = fields.String(required=True, allow_none=True)
    drafter = fields.String(required=True, validate=validate.Regexp(NIP))
    awaiting = fields.Nested(Awaiting, required=True)


@contract("letter.returned", 1)
class LetterReturned(Schema):
    """A verifier or the signer sent the letter back to its drafter with a note."""

    id = fields.String(required=True)
    kind = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    security = fields.String(required=True, validate=validate.OneOf(("SR", "R", "T", "B")))
    subject = fields.String(required=True, allow_none=True)
    drafter = fields.String(required=True, validate=validate.Regexp(NIP))
    returned_by = fields.String(required=True, validate=validate.Regexp(NIP))
    note = fields.String(required=True)


_SECURITY = validate.OneOf(("SR", "R", "T", "B"))


@contract("letter.sent", 1)
class LetterSent(Schema):
    """A signed letter was sealed (its PDF stored) and sent: internal addressees and copy
    holders receive it in their units' inboxes (one ``letter.received`` each); external ones
    are recorded as sent by a channel afterwards."""

    id = fields.String(required=True)
    number = fields.String(required=True)
    kind = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    security = fields.String(required=True, validate=_SECURITY)
    urgency = fields.String(required=True)
    subject = fields.String(required=True, allow_none=True)
    signed_at = fields.DateTime(required=True)
    internal = fields.List(fields.String(validate=validate.Regexp(UNIT_CODE)), required=True,
                           metadata={"description": "units that receive it in their inbox"})
    external = fields.List(fields.String(), required=True,
                           metadata={"description": "names of the parties outside the Pemda"})
    sha256 = fields.String(required=True, metadata={"description": "of the sealed PDF"})


@contract("letter.received", 1)
class LetterReceived(Schema):
    """A letter reached a unit's inbox: an internal letter delivered on sending, or an incoming
    letter from outside registered by a mail clerk (``source`` external)."""

    id = fields.String(required=True, metadata={"description": "the receipt: <letter>:<unit>"})
    letter = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    source = fields.String(required=True, validate=validate.OneOf(("internal", "external")))
    number = fields.String(required=True, allow_none=True)
    sender = fields.String(required=True)
    security = fields.String(required=True, validate=_SECURITY)
    urgency = fields.String(required=True)
    subject = fields.String(required=True, allow_none=True)
    received_at = fields.DateTime(required=True)


class _Disposition(Schema):
    id = fields.String(required=True)
    letter = fields.String(required=True)
    receipt = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    by = fields.String(required=True, validate=validate.Regexp(NIP),
                       metadata={"description": "who disposed it"})
    to = fields.String(required=True, validate=validate.Regexp(NIP),
                       metadata={"description": "who it is disposed to"})


@contract("disposition.assigned", 1)
class DispositionAssigned(_Disposition):
    """A head disposed a received letter to a subordinate (or a subordinate passed it on)."""

    parent = fields.String(required=True, allow_none=True)
    instruction = fields.String(required=True)
    due = fields.Date(required=True, allow_none=True)
    urgency = fields.String(required=True)
    subject = fields.String(required=True, allow_none=True)


@contract("disposition.completed", 1)
class DispositionCompleted(_Disposition):
    """The person a disposition went to finished it, with a follow-up note."""

    completed_at = fields.DateTime(required=True)
    note = fields.String(required=True)


@contract("disposition.overdue", 1)
class DispositionOverdue(_Disposition):
    """A disposition passed its due date unfinished (published once per disposition)."""

    due = fields.Date(required=True)


@contract("letter.archived", 1)
class LetterArchived(Schema):
    """A finished letter was filed under its classification, with its retention dates."""

    id = fields.String(required=True)
    number = fields.String(required=True, allow_none=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    classification = fields.String(required=True)
    archived_at = fields.DateTime(required=True)
    inactive_from = fields.Date(required=True)
    disposition_due = fields.Date(required=True)
    final_disposition = fields.String(required=True,
                                      validate=validate.OneOf(("destroy", "review",
                                                               "permanent")))


@contract("letter.revoked", 1)
class LetterRevoked(Schema):
    """A signed letter was revoked: verification answers ``revoked`` from now on."""

    id = fields.String(required=True)
    number = fields.String(required=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    revoked_at = fields.DateTime(required=True)
    by = fields.String(required=True, validate=validate.Regexp(NIP))
    reason = fields.String(required=True)

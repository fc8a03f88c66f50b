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

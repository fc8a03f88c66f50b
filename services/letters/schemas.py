"""Request and response schemas of the letters API (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.directory import NIP, UNIT_CODE
from services.letters import domain

_nip = fields.String(validate=validate.Regexp(NIP))


# -- reference data ------------------------------------------------------------------------

class KindBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=3, max=80))
    group = fields.String(required=True, validate=validate.OneOf(domain.KIND_GROUPS))
    heading = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=80), metadata={
                                "description": "printed above the letter (null: none)"})
    active = fields.Boolean(load_default=True)


class KindOut(KindBody):
    code = fields.String(required=True)


class KindList(Schema):
    items = fields.List(fields.Nested(KindOut), required=True)


class RetentionSchema(Schema):
    active_years = fields.Integer(required=True, validate=validate.Range(min=0, max=100))
    inactive_years = fields.Integer(required=True, validate=validate.Range(min=0, max=100))
    disposition = fields.String(required=True, validate=validate.OneOf(domain.DISPOSITIONS))


class ClassificationBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    retention = fields.Nested(RetentionSchema, load_default=None, allow_none=True, metadata={
        "description": "null: the nearest ancestor's retention applies"})


class ClassificationOut(ClassificationBody):
    code = fields.String(required=True)
    parent = fields.String(allow_none=True)
    effective_retention = fields.Nested(RetentionSchema, allow_none=True)


class ClassificationList(Schema):
    items = fields.List(fields.Nested(ClassificationOut), required=True)


class ClassificationQuery(Schema):
    under = fields.String(load_default=None, metadata={
        "description": "only this code's children (null: the top-level codes)"})


class ImportOut(Schema):
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)


class NumberingBody(Schema):
    unit_code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9.\-]{1,20}$"),
                              metadata={"description": "the unit's code in numbers ({unit}), "
                                                       "e.g. OR, KPA.1, DISKOMINFO"})
    template = fields.String(required=True, metadata={
        "description": "e.g. {klasifikasi}/{urut}/{unit}/{tahun}; placeholders: "
                       + ", ".join(f"{{{p}}}" for p in domain.PLACEHOLDERS)
                       + "; {urut:3} pads with zeros"})
    per_kind = fields.Boolean(load_default=False, metadata={
        "description": "a sequence per document kind instead of one for every kind"})
    kinds = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict,
                        metadata={"description": "kind code -> its own template"})


class NumberingOut(NumberingBody):
    unit = fields.String(required=True)
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    example = fields.String(metadata={"description": "number 7 of a Biasa surat dinas "
                                                     "classified 000.1 signed today"})


class RegisterQuery(Schema):
    counter = fields.String(required=True, validate=validate.Length(max=80), metadata={
        "description": "<unit>:<kind or *>:<year>, as a signed letter's number_counter"})
    first = fields.Integer(load_default=1, validate=validate.Range(min=1))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class ClaimOut(Schema):
    n = fields.Integer(required=True)
    status = fields.String(required=True, metadata={
        "description": "used | cancelled | pending (handed out a moment ago)"})
    number = fields.String(allow_none=True)
    letter = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    at = fields.DateTime(allow_none=True)


class RegisterOut(Schema):
    counter = fields.String(required=True)
    last = fields.Integer(required=True, metadata={"description": "the last number handed out"})
    checked = fields.Integer(required=True, metadata={
        "description": "every number up to this one is accounted for"})
    items = fields.List(fields.Nested(ClaimOut), required=True)


# -- letters ---------------------------------------------------------------------------------

class PartySchema(Schema):
    """An addressee or a copy holder: a unit of this Pemda, or someone outside it."""

    type = fields.String(required=True, validate=validate.OneOf(("internal", "external")))
    unit = fields.String(load_default=None, allow_none=True,
                         validate=validate.Regexp(UNIT_CODE))
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))

    @validates_schema
    def unit_when_internal(self, data, **kwargs):
        if data["type"] == "internal" and not data.get("unit"):
            raise ValidationError("an internal party names its unit", "unit")


class PlaceSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=160))
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    radius_m = fields.Integer(required=True, validate=validate.Range(min=20, max=5000))


class AssignmentSchema(Schema):
    employees = fields.List(_nip, required=True, validate=validate.Length(min=1, max=200))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    place = fields.Nested(PlaceSchema, required=True)
    purpose = fields.String(required=True, validate=validate.Length(min=3, max=500))

    @validates_schema
    def dates(self, data, **kwargs):
        if data["end"] < data["start"]:
            raise ValidationError("before the start", "end")


class DraftBody(Schema):
    kind = fields.String(required=True, validate=validate.Regexp(domain.KIND_CODE.pattern))
    classification = fields.String(required=True,
                                   validate=validate.Regexp(domain.CLASSIFICATION_CODE))
    security = fields.String(load_default="B", validate=validate.OneOf(domain.SECURITY))
    urgency = fields.String(load_default="biasa", validate=validate.OneOf(domain.URGENCY))
    subject = fields.String(required=True, validate=validate.Length(min=3, max=500))
    body = fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    addressees = fields.List(fields.Nested(PartySchema), required=True,
                             validate=validate.Length(min=1, max=100))
    copies = fields.List(fields.Nested(PartySchema), load_default=list,
                         validate=validate.Length(max=100))
    verifiers = fields.List(_nip, load_default=list, validate=validate.Length(max=10),
                            metadata={"description": "NIPs giving paraf, in order"})
    signer = fields.String(required=True, validate=validate.Regexp(NIP), metadata={
        "description": "NIP of the signer: holder of a position that may sign, or the "
                       "official acting in one"})
    assignment = fields.Nested(AssignmentSchema, load_default=None, allow_none=True, metadata={
        "description": "a surat tugas: who is sent where and when (attendance takes it)"})

    @validates_schema
    def people(self, data, **kwargs):
        verifiers = data["verifiers"]
        if len(set(verifiers)) != len(verifiers):
            raise ValidationError("each verifier once", "verifiers")
        if data["signer"] in verifiers:
            raise ValidationError("the signer does not also give paraf", "verifiers")
        if data.get("assignment") and data["kind"] != "surat_tugas":
            raise ValidationError("only a surat_tugas carries an assignment", "assignment")


class DraftUpdate(DraftBody):
    version = fields.Integer(required=True, metadata={
        "description": "the version you read; a letter changed since answers 409"})


class StepBody(Schema):
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))
    version = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "the version you read (optional): a letter changed since answers 409"})


class PersonOut(Schema):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    title = fields.String(allow_none=True)


class VerifierOut(PersonOut):
    status = fields.String(required=True, metadata={"description": "pending|approved|returned"})
    at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)


class SignerOut(PersonOut):
    position = fields.String(allow_none=True)
    acting = fields.String(allow_none=True, metadata={"description": "plt | plh | null"})


class TimelineEntry(Schema):
    at = fields.DateTime(required=True)
    nip = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    step = fields.String(required=True)
    from_state = fields.String(allow_none=True, data_key="from")
    to_state = fields.String(required=True, data_key="to")
    note = fields.String(allow_none=True)


class LetterOut(Schema):
    id = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": " | ".join(domain.STATES)})
    version = fields.Integer(required=True)
    unit = fields.String(required=True)
    opd = fields.String(allow_none=True)
    kind = fields.String(required=True)
    classification = fields.String(required=True)
    security = fields.String(required=True)
    urgency = fields.String(required=True)
    subject = fields.String(required=True)
    body = fields.String(required=True)
    addressees = fields.List(fields.Nested(PartySchema), required=True)
    copies = fields.List(fields.Nested(PartySchema), required=True)
    drafter = fields.Nested(PersonOut, required=True)
    verifiers = fields.List(fields.Nested(VerifierOut), required=True)
    signer = fields.Nested(SignerOut, required=True)
    assignment = fields.Nested(AssignmentSchema, allow_none=True)
    number = fields.String(allow_none=True)
    number_counter = fields.String(allow_none=True)
    signed_at = fields.DateTime(allow_none=True)
    signed_by = fields.Nested(SignerOut, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    timeline = fields.List(fields.Nested(TimelineEntry), required=True)
    allowed = fields.List(fields.String(), required=True, metadata={
        "description": "the steps you may take now"})

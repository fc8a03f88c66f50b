"""Request and response schemas of the letters API (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.directory import NIP, UNIT_CODE
from pamong.web.pagination import PageQuery
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
        "description": "used (by a letter) | cancelled (why) | reserved (in a block for an "
                       "outage) | paper (a reserved number used on paper: what for) | pending "
                       "(handed out a moment ago)"})
    number = fields.String(allow_none=True)
    letter = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    at = fields.DateTime(allow_none=True)
    block = fields.String(allow_none=True, metadata={"description": "its reserved block"})
    paper = fields.Dict(allow_none=True, metadata={
        "description": "what a reserved number was used for on paper"})


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
    # mail (mail.py, attachments.py): set once delivered, on incoming letters, with files
    direction = fields.String(dump_default="outgoing", metadata={
        "description": "outgoing | incoming (registered from outside)"})
    sender = fields.Nested(lambda: SenderSchema(), allow_none=True)
    sender_number = fields.String(allow_none=True)
    sender_date = fields.String(allow_none=True, metadata={"description": "ISO date"})
    received_on = fields.String(allow_none=True, metadata={"description": "ISO date"})
    receivers = fields.List(fields.String(), metadata={
        "description": "units whose inbox received it"})
    attachments = fields.List(fields.Nested(lambda: AttachmentOut()))
    dispatched = fields.Dict(keys=fields.String(), values=fields.Nested(lambda: DispatchOut()),
                             metadata={"description": "how each external party was sent it, "
                                                      "by `<party>-<index>`"})
    # the sealed document and revocation (signed.py)
    verify_code = fields.String(allow_none=True, metadata={
        "description": "the public verification code the QR carries (set at signing)"})
    document = fields.Nested(lambda: DocumentOut(), allow_none=True, metadata={
        "description": "the sealed PDF (GET .../document), once sealed"})
    sent_at = fields.DateTime(allow_none=True)
    revoked = fields.Nested(lambda: RevokedOut(), allow_none=True)


# -- reserved blocks (reserved.py) -----------------------------------------------------------

class ReservationBody(Schema):
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE), metadata={
        "description": "the unit whose letters will carry the numbers"})
    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.Regexp(domain.KIND_CODE.pattern), metadata={
                             "description": "required when the unit numbers per kind"})
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=500))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class ReservationOut(Schema):
    id = fields.String(required=True)
    counter = fields.String(required=True)
    unit = fields.String(required=True)
    kind = fields.String(allow_none=True)
    first = fields.Integer(required=True)
    last = fields.Integer(required=True)
    reason = fields.String(required=True)
    by = fields.String(required=True)
    at = fields.DateTime(required=True)
    numbers = fields.List(fields.Nested(ClaimOut), required=True)


class PaperUseBody(Schema):
    """What a reserved number was used for on paper, or why it was not used."""

    used_on = fields.Date(load_default=None, allow_none=True)
    subject = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=3, max=500))
    addressee = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=200))
    signer = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=200), metadata={
                               "description": "who signed the paper letter (name and NIP)"})
    classification = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Regexp(domain.CLASSIFICATION_CODE))
    security = fields.String(load_default="B", validate=validate.OneOf(domain.SECURITY))
    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.Regexp(domain.KIND_CODE.pattern))
    reason = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(min=3, max=500), metadata={
                               "description": "instead of the rest: the number was not used"})

    @validates_schema
    def use_or_reason(self, data, **kwargs):
        if data.get("reason"):
            return
        missing = [f for f in ("used_on", "subject", "signer", "classification")
                   if not data.get(f)]
        if missing:
            raise ValidationError("required unless a reason says the number was not used",
                                  missing[0])


# -- mail: delivery, incoming letters, attachments, dispositions (mail.py, attachments.py,
#    dispositions.py) ------------------------------------------------------------------------

CHANNELS = ("pos", "kurir", "email", "faks", "tangan", "other")  # how an external party got it


class SenderSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=200), metadata={
        "description": "who signed it, or the sending office"})
    organisation = fields.String(load_default=None, allow_none=True,
                                 validate=validate.Length(max=200))


class IncomingBody(Schema):
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE), metadata={
        "description": "the receiving unit (in your write scope)"})
    sender = fields.Nested(SenderSchema, required=True)
    sender_number = fields.String(required=True, validate=validate.Length(min=1, max=120),
                                  metadata={"description": "the number the sender gave it"})
    sender_date = fields.Date(required=True, metadata={"description": "the date on the letter"})
    received_on = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "the day it arrived (default: today in the unit's zone)"})
    kind = fields.String(load_default="surat_dinas",
                         validate=validate.Regexp(domain.KIND_CODE.pattern))
    classification = fields.String(required=True,
                                   validate=validate.Regexp(domain.CLASSIFICATION_CODE))
    security = fields.String(load_default="B", validate=validate.OneOf(domain.SECURITY))
    urgency = fields.String(load_default="biasa", validate=validate.OneOf(domain.URGENCY))
    subject = fields.String(required=True, validate=validate.Length(min=3, max=500))
    summary = fields.String(load_default="", validate=validate.Length(max=5000), metadata={
        "description": "the clerk's summary of the content (kept as the letter's body)"})


class AttachmentQuery(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "the file's name as the uploader knows it"})


class AttachmentOut(Schema):
    id = fields.String(required=True, metadata={"description": "download: GET /files/<id>"})
    name = fields.String(required=True)
    type = fields.String(required=True, metadata={"description": "detected from the content"})
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    uploaded_by = fields.String(allow_none=True)
    uploaded_at = fields.DateTime(required=True)


class DispatchBody(Schema):
    party = fields.String(load_default="addressees",
                          validate=validate.OneOf(("addressees", "copies")))
    index = fields.Integer(required=True, validate=validate.Range(min=0, max=99), metadata={
        "description": "which of the letter's addressees (or copies), from 0"})
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    reference = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=200), metadata={
                                  "description": "receipt number, tracking code, e-mail id"})
    at = fields.DateTime(load_default=None, allow_none=True, metadata={
        "description": "when it went out (default: now)"})


class DispatchOut(Schema):
    party = fields.String(required=True)
    index = fields.Integer(required=True)
    name = fields.String(required=True)
    channel = fields.String(required=True)
    reference = fields.String(allow_none=True)
    at = fields.DateTime(required=True)
    by = fields.String(allow_none=True, metadata={"description": "NIP (or subject) of the clerk"})
    recorded_at = fields.DateTime(required=True)


class LetterSummary(Schema):
    id = fields.String(required=True)
    direction = fields.String(required=True, metadata={"description": "outgoing | incoming"})
    state = fields.String(required=True)
    unit = fields.String(required=True)
    kind = fields.String(required=True)
    classification = fields.String(required=True)
    security = fields.String(required=True)
    urgency = fields.String(required=True)
    subject = fields.String(required=True)
    number = fields.String(allow_none=True)
    signed_at = fields.DateTime(allow_none=True)
    sender = fields.Nested(SenderSchema, allow_none=True)
    sender_number = fields.String(allow_none=True)
    sender_date = fields.String(allow_none=True)
    attachments = fields.List(fields.Nested(AttachmentOut), required=True)


class CancelledOut(Schema):
    at = fields.DateTime(required=True)
    by = fields.String(required=True)
    note = fields.String(allow_none=True)


class DispositionOut(Schema):
    id = fields.String(required=True)
    letter = fields.String(required=True)
    receipt = fields.String(required=True)
    unit = fields.String(required=True)
    parent = fields.String(allow_none=True)
    by = fields.Nested(PersonOut, required=True)
    to = fields.Nested(PersonOut, required=True)
    instruction = fields.String(required=True)
    due = fields.Date(allow_none=True)
    urgency = fields.String(required=True)
    state = fields.String(required=True, metadata={
        "description": "unread | read | completed | cancelled"})
    overdue = fields.Boolean(required=True, metadata={
        "description": "past its due date unfinished (disposition.overdue was sent)"})
    created_at = fields.DateTime(required=True)
    read_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True, metadata={"description": "the follow-up note"})
    cancelled = fields.Nested(CancelledOut, allow_none=True)
    children = fields.List(fields.Nested(lambda: DispositionOut()), required=True)


class DispositionList(Schema):
    items = fields.List(fields.Nested(DispositionOut), required=True)


class ReceiptOut(Schema):
    id = fields.String(required=True, metadata={"description": "<letter>:<unit>"})
    unit = fields.String(required=True)
    opd = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={"description": "internal | external"})
    received_at = fields.DateTime(required=True)
    read_at = fields.DateTime(allow_none=True)
    read_by = fields.String(allow_none=True)
    sender = fields.String(required=True)
    number = fields.String(allow_none=True)
    letter = fields.Nested(LetterSummary, required=True)
    dispositions = fields.List(fields.Nested(DispositionOut), required=True, metadata={
        "description": "the disposition tree (each with its children)"})


class DispositionBody(Schema):
    to = fields.List(_nip, required=True, validate=validate.Length(min=1, max=20), metadata={
        "description": "NIPs of the people it goes to (one disposition each)"})
    instruction = fields.String(required=True, validate=validate.Length(min=2, max=2000))
    due = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "a date already past is accepted (a paper disposition recorded late) "
                       "and is overdue at once"})
    urgency = fields.String(load_default=None, allow_none=True,
                            validate=validate.OneOf(domain.URGENCY), metadata={
                                "description": "default: the letter's"})

    @validates_schema
    def distinct(self, data, **kwargs):
        if len(set(data["to"])) != len(data["to"]):
            raise ValidationError("each person once", "to")


class CancelBody(Schema):
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))


class CompleteBody(Schema):
    note = fields.String(required=True, validate=validate.Length(min=2, max=5000), metadata={
        "description": "what was done (tindak lanjut)"})


# -- lists and search (lists.py) ------------------------------------------------------------

class ListQuery(PageQuery):
    unit = fields.String(load_default=None, validate=validate.Regexp(UNIT_CODE), metadata={
        "description": "whose inbox/outbox (default: the unit of your token)"})


class ListItemOut(Schema):
    id = fields.String(required=True, metadata={"description": "the letter"})
    receipt = fields.String(allow_none=True, metadata={"description": "inbox: <letter>:<unit>"})
    date = fields.DateTime(required=True, metadata={
        "description": "sent (outgoing), registered (incoming), received (inbox)"})
    number = fields.String(allow_none=True, metadata={
        "description": "its number; the sender's number on an incoming letter"})
    subject = fields.String(allow_none=True)
    sender = fields.String(allow_none=True)
    kind = fields.String(required=True)
    classification = fields.String(allow_none=True)
    security = fields.String(required=True)
    urgency = fields.String(required=True)
    state = fields.String(required=True)
    direction = fields.String(required=True, metadata={"description": "outgoing | incoming"})
    unit = fields.String(required=True)
    revoked = fields.Boolean(required=True)
    visible = fields.Boolean(required=True, metadata={
        "description": "false: a letter of the unit you may not open (Sangat Rahasia, Rahasia "
                       "or Terbatas); its subject and classification are not shown"})
    read_at = fields.DateTime(allow_none=True, metadata={"description": "inbox: first read"})


class AwaitingQuery(PageQuery):
    role = fields.String(load_default=None, validate=validate.OneOf(
        ("verifier", "signer", "drafter")), metadata={
        "description": "verifier: awaiting my paraf; signer: my signature; drafter: returned "
                       "to me (default: all three)"})


class AwaitingOut(Schema):
    id = fields.String(required=True, metadata={"description": "the letter"})
    role = fields.String(required=True, metadata={"description": "verifier | signer | drafter"})
    since = fields.DateTime(required=True)
    subject = fields.String(required=True)
    kind = fields.String(required=True)
    security = fields.String(required=True)
    urgency = fields.String(required=True)
    unit = fields.String(required=True)
    drafter = fields.Nested(PersonOut, required=True)
    note = fields.String(allow_none=True, metadata={"description": "why it was returned"})
    returned_by = fields.String(allow_none=True)
    acting = fields.String(allow_none=True, metadata={
        "description": "plt | plh: it awaits the signature of the position you act in today"})
    version = fields.Integer(required=True)


class MyDispositionsQuery(PageQuery):
    open = fields.Boolean(load_default=False, metadata={
        "description": "only those neither completed nor cancelled"})


class DispositionItemOut(DispositionOut):
    role = fields.String(required=True, metadata={
        "description": "to: disposed to me; by: I disposed it (overdue list)"})
    subject = fields.String(allow_none=True)


class SearchQuery(PageQuery):
    q = fields.String(load_default=None, validate=validate.Length(max=200), metadata={
        "description": "words of the subject (all must occur; words of two letters or fewer "
                       "are ignored)"})
    number = fields.String(load_default=None, validate=validate.Length(max=120), metadata={
        "description": "the exact number (or an incoming letter's own number)"})
    sender = fields.String(load_default=None, validate=validate.Length(max=200), metadata={
        "description": "words of the sender: the sending unit, or the party outside"})
    start = fields.Date(load_default=None, data_key="from", metadata={
        "description": "from this day (WIB)"})
    end = fields.Date(load_default=None, data_key="to", metadata={
        "description": "up to this day, inclusive (WIB)"})
    classification = fields.String(load_default=None,
                                   validate=validate.Regexp(domain.CLASSIFICATION_CODE),
                                   metadata={"description": "this code or any code below it"})


# -- archive (archive.py) --------------------------------------------------------------------

class ArchiveBody(Schema):
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))


class RetentionOut(RetentionSchema):
    source = fields.String(required=True, metadata={
        "description": "the classification code whose retention applies (itself or the "
                       "nearest ancestor with one)"})


class DecisionBody(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(domain.DECISIONS))
    extend_years = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=1, max=50), metadata={
        "description": "reviewed_extended only (required there): years the record is kept "
                       "longer; it comes back to the report on its new due date"})

    @validates_schema
    def _years_with_review(self, data, **kwargs):
        if (data["decision"] == "reviewed_extended") != (data.get("extend_years") is not None):
            raise ValidationError("required with reviewed_extended, and only with it",
                                  "extend_years")
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))
    reference = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=200), metadata={
                                  "description": "e.g. the berita acara of the destruction"})


class DecisionOut(Schema):
    decision = fields.String(required=True)
    note = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    at = fields.DateTime(required=True)
    by = fields.Nested(PersonOut, required=True)
    extend_years = fields.Integer(allow_none=True)


class ReviewOut(DecisionOut):
    previous_due = fields.Date(required=True)


class ArchiveOut(Schema):
    id = fields.String(required=True, metadata={"description": "the letter"})
    number = fields.String(allow_none=True)
    unit = fields.String(required=True)
    opd = fields.String(allow_none=True)
    classification = fields.String(required=True)
    retention = fields.Nested(RetentionOut, required=True)
    finished = fields.Date(required=True, metadata={
        "description": "the day the record was finished (sent or registered)"})
    inactive_from = fields.Date(required=True)
    disposition_due = fields.Date(required=True)
    final_disposition = fields.String(required=True, metadata={
        "description": "destroy | review | permanent"})
    archived_at = fields.DateTime(required=True)
    archived_by = fields.Nested(PersonOut, required=True)
    decision = fields.Nested(DecisionOut, allow_none=True)
    reviews = fields.List(fields.Nested(ReviewOut), load_default=list, metadata={
        "description": "earlier reviews that kept the record longer, oldest first"})


class DueQuery(PageQuery):
    until = fields.Date(required=True, metadata={"description": "records due up to this day"})
    opd = fields.String(load_default=None, validate=validate.Regexp(UNIT_CODE), metadata={
        "description": "whose records (default: your OPD; required for Pemda-wide roles)"})


# -- the sealed document, verification and revocation (signed.py) ---------------------------

class DocumentOut(Schema):
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sealed_at = fields.DateTime(required=True)


class RevokedOut(Schema):
    at = fields.DateTime(required=True)
    by = fields.String(required=True, metadata={"description": "NIP of who revoked it"})
    reason = fields.String(required=True)


class RevokeBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    version = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "the version you read (optional): a letter changed since answers 409"})


class VerifiedSigner(Schema):
    name = fields.String(allow_none=True)
    title = fields.String(allow_none=True)


class VerifiedUnit(Schema):
    code = fields.String(required=True)
    name = fields.String(allow_none=True)


class VerifyOut(Schema):
    """What anyone may learn of a letter from its code: never its subject or content."""

    status = fields.String(required=True, metadata={"description": "valid | revoked"})
    number = fields.String(required=True)
    date = fields.DateTime(required=True, metadata={"description": "when it was signed"})
    security = fields.String(required=True, metadata={
        "description": "Sangat Rahasia | Rahasia | Terbatas | Biasa"})
    revoked_at = fields.DateTime(allow_none=True)
    note = fields.String(metadata={"description": "SR/R letters: only their existence and "
                                                  "number are confirmed"})
    kind = fields.String(metadata={"description": "not on SR/R letters"})
    signer = fields.Nested(VerifiedSigner, metadata={"description": "not on SR/R letters"})
    unit = fields.Nested(VerifiedUnit, metadata={"description": "not on SR/R letters"})
    sha256 = fields.String(allow_none=True, metadata={
        "description": "of the sealed PDF (not on SR/R letters)"})


class SignatureCheckOut(Schema):
    signed = fields.Boolean(required=True)
    intact = fields.Boolean(required=True, metadata={
        "description": "the signed bytes are unchanged"})
    valid = fields.Boolean(required=True, metadata={
        "description": "intact, by a certificate chaining to the trusted root, covering the "
                       "whole file"})
    signer = fields.String(allow_none=True)
    signed_at = fields.DateTime(allow_none=True)
    covers_whole_file = fields.Boolean(required=True)
    problem = fields.String(allow_none=True)


class UploadVerifyOut(VerifyOut):
    status = fields.String(required=True, metadata={
        "description": "valid | revoked | unknown (no letter was sealed with these bytes)"})
    number = fields.String(allow_none=True)
    date = fields.DateTime(allow_none=True)
    security = fields.String(allow_none=True)
    hash_match = fields.Boolean(required=True, metadata={
        "description": "the file is byte for byte a PDF this service sealed"})
    signature_valid = fields.Boolean(required=True)
    signature = fields.Nested(SignatureCheckOut, required=True)

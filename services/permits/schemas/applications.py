"""Schemas of the applications: the applicant's data in, the application out."""

from marshmallow import Schema, fields, validate

from pamong.contracts.permits import CHANNELS
from pamong.web.pagination import PageQuery
from services.permits import domain
from services.permits.schemas.types import TypeOut

REGION_CODE = r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"  # Kemendagri: 35.10.03.1001


def _text(low=1, high=200, **kwargs):
    return fields.String(validate=validate.Length(min=low, max=high), **kwargs)


class Address(Schema):
    street = _text(high=300, required=True, metadata={"description": "jalan, nomor, RT/RW"})
    village = _text(required=True, metadata={"description": "desa / kelurahan"})
    district = _text(required=True, metadata={"description": "kecamatan"})
    regency = _text(required=True, metadata={"description": "kabupaten / kota"})
    province = _text(required=True)
    region_code = fields.String(required=True, validate=validate.Regexp(REGION_CODE),
                                metadata={"description": "Kemendagri code of the village "
                                                         "(or district, regency), e.g. "
                                                         "35.10.03.1001"})


class ApplicantBody(Schema):
    nik = fields.String(load_default=None, allow_none=True, metadata={
        "description": "16 digits; a pemohon's own comes from the token when it has one"})
    name = _text(2, 200, load_default=None, allow_none=True, metadata={
        "description": "a pemohon's own comes from the token when it has one"})
    birth_date = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "checked against the NIK: a difference is a warning, not an error"})
    phone = fields.String(load_default=None, allow_none=True,
                          validate=validate.Length(max=30),
                          metadata={"description": "stored as E.164 (+628...)"})
    email = fields.Email(load_default=None, allow_none=True)
    address = fields.Nested(Address, required=True)
    channel = fields.String(load_default="whatsapp", validate=validate.OneOf(CHANNELS),
                            metadata={"description": "how the applicant wants to hear"})


class ApplicantPatch(Schema):
    """What a PATCH may change of the applicant (the NIK only at the counter)."""

    nik = fields.String()
    name = _text(2, 200)
    birth_date = fields.Date(allow_none=True)
    phone = fields.String(allow_none=True, validate=validate.Length(max=30))
    email = fields.Email(allow_none=True)
    address = fields.Nested(Address)
    channel = fields.String(validate=validate.OneOf(CHANNELS))


class Business(Schema):
    name = _text(2, 200, required=True)
    nib = fields.String(required=True, validate=validate.Regexp(domain.NIB.pattern, error=(
        "an NIB is 13 digits")), metadata={"description": "Nomor Induk Berusaha, 13 digits"})


class ApplicationBody(Schema):
    type = fields.String(required=True, validate=validate.Regexp(domain.TYPE_CODE.pattern),
                         metadata={"description": "the permit type's code"})
    applicant = fields.Nested(ApplicantBody, required=True)
    business = fields.Nested(Business, load_default=None, allow_none=True, metadata={
        "description": "required when the type needs_business"})


class ApplicationPatch(Schema):
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    applicant = fields.Nested(ApplicantPatch)
    business = fields.Nested(Business, allow_none=True)


class DocumentQuery(Schema):
    name = _text(1, 200, load_default=None, metadata={
        "description": "the file's name (default: the requirement's key)"})


# -- out ------------------------------------------------------------------------------------

class Party(Schema):
    sub = fields.String(allow_none=True)
    role = fields.String(allow_none=True)


class ApplicantOut(Schema):
    nik = fields.String(required=True)
    name = fields.String(required=True)
    birth_date = fields.String(allow_none=True, metadata={"description": "ISO date"})
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    address = fields.Nested(Address, required=True)
    channel = fields.String(required=True)


class DocumentOut(Schema):
    requirement = fields.String(required=True)
    file_id = fields.String(required=True)
    name = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    uploaded_at = fields.DateTime(required=True)
    uploaded_by = fields.Nested(Party, allow_none=True)


class TimelineEntry(Schema):
    action = fields.String(required=True)
    from_state = fields.String(allow_none=True, data_key="from", attribute="from")
    to = fields.String(required=True)
    label = fields.String()
    at = fields.DateTime(required=True)
    on = fields.String(required=True, metadata={"description": "the local date (ISO)"})
    by = fields.Nested(Party, allow_none=True)
    note = fields.String(allow_none=True)


class Recommendation(Schema):
    opd = fields.String(required=True)
    status = fields.String(required=True)
    note = fields.String(allow_none=True)
    by = fields.String(allow_none=True)
    at = fields.DateTime(allow_none=True)
    due_on = fields.String(allow_none=True)


class SiteVisit(Schema):
    scheduled_on = fields.String(allow_none=True)
    officer = fields.String(allow_none=True)
    done_on = fields.String(allow_none=True)
    findings = fields.String(allow_none=True)


class Bill(Schema):
    number = fields.String(required=True)
    amount = fields.Integer(required=True)
    issued_on = fields.String(allow_none=True)
    due_on = fields.String(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    payment_reference = fields.String(allow_none=True)


class PermitOut(Schema):
    number = fields.String(required=True)
    valid_from = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    code = fields.String(allow_none=True, metadata={"description": "the verification code"})
    issued_at = fields.DateTime(allow_none=True)
    verification_url = fields.String(metadata={"description": "what the QR code carries"})


class ReceiptOut(Schema):
    """The registration receipt (bukti pendaftaran)."""

    registration_number = fields.String(required=True)
    registered_at = fields.DateTime(required=True)
    type_name = fields.String(required=True)
    documents = fields.List(fields.String(), required=True, metadata={
        "description": "the documents received"})
    sla_days = fields.Integer(required=True)
    due_on = fields.String(required=True, metadata={
        "description": "the SLA's last working day if the clock is not paused"})


class RevokedOut(Schema):
    at = fields.DateTime(required=True)
    by = fields.String(allow_none=True)
    reason = fields.String(required=True)


class ClockOut(Schema):
    sla_days = fields.Integer(required=True)
    used = fields.Integer(required=True, metadata={"description": "working days used"})
    left = fields.Integer(required=True, metadata={"description": "negative: over the SLA"})
    stages = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    running = fields.Boolean(required=True, metadata={
        "description": "false while the file waits for the applicant (returned, billed), "
                       "before submission and once decided"})
    due_on = fields.Date(allow_none=True, metadata={
        "description": "the last working day of the SLA if the clock keeps running"})


class ApplicationOut(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    state = fields.String(required=True)
    label = fields.String(required=True)
    type = fields.String(required=True)
    type_name = fields.String(required=True)
    opd = fields.String(required=True)
    owner = fields.String(allow_none=True)
    entered_by = fields.Nested(Party, required=True)
    standard = fields.Nested(TypeOut, required=True, metadata={
        "description": "the service standard this application was made under"})
    applicant = fields.Nested(ApplicantOut, required=True)
    business = fields.Nested(Business, allow_none=True)
    nik_warnings = fields.List(fields.String(), required=True)
    documents = fields.List(fields.Nested(DocumentOut), required=True)
    missing_documents = fields.List(fields.String(), required=True, metadata={
        "description": "mandatory requirements with no document yet"})
    timeline = fields.List(fields.Nested(TimelineEntry), required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    submitted_at = fields.DateTime(allow_none=True)
    registration_number = fields.String(allow_none=True)
    officer = fields.String(allow_none=True)
    missing_items = fields.List(fields.String(), allow_none=True)
    reason = fields.String(allow_none=True)
    recommendations = fields.List(fields.Nested(Recommendation))
    site_visit = fields.Nested(SiteVisit, allow_none=True)
    bill = fields.Nested(Bill, allow_none=True)
    permit = fields.Nested(PermitOut, allow_none=True)
    receipt = fields.Nested(ReceiptOut, allow_none=True, metadata={
        "description": "the registration receipt, once registered"})
    revoked = fields.Nested(RevokedOut, allow_none=True)
    clock = fields.Nested(ClockOut, required=True)
    actions = fields.List(fields.String(), required=True, metadata={
        "description": "what the caller may do now (POST .../actions/<action>)"})


class ApplicationItem(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    state = fields.String(required=True)
    label = fields.String(required=True)
    type = fields.String(required=True)
    type_name = fields.String(required=True)
    opd = fields.String(required=True)
    applicant_name = fields.String(required=True)
    registration_number = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    submitted_at = fields.DateTime(allow_none=True)
    days_used = fields.Integer(required=True)
    days_left = fields.Integer(required=True)


class ApplicationQuery(PageQuery):
    state = fields.String(load_default=None, validate=validate.OneOf(domain.STATES))
    opd = fields.String(load_default=None, metadata={
        "description": "admin: the OPD whose work list to read (staff: their own)"})

"""Schemas of public tracking and verification, and of the satisfaction survey (SKM)."""

from marshmallow import Schema, fields, pre_load, validate

from pamong.contracts.permits import SKM_ELEMENTS, STATES
from services.permits import domain


class TrackQuery(Schema):
    number = fields.String(required=True, validate=validate.Regexp(
        domain.REGISTRATION, error="a registration number looks like REG-2026-000123"),
        metadata={"description": "the registration number on the receipt"})
    last4 = fields.String(required=True, validate=validate.Regexp(
        r"^\d{4}$", error="the last 4 digits of the applicant's NIK or phone number"),
        metadata={"description": "the last 4 digits of the applicant's NIK or phone"})

    @pre_load
    def _tidy(self, data, **kwargs):
        data = dict(data)
        if isinstance(data.get("number"), str):
            data["number"] = data["number"].strip().upper()
        if isinstance(data.get("last4"), str):
            data["last4"] = data["last4"].strip()
        return data


class TrackStep(Schema):
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    label = fields.String(required=True)
    on = fields.Date(required=True)


class TrackOut(Schema):
    """What anyone with the receipt's number and 4 digits learns: no name, NIK, phone,
    address, document or officer's note."""

    registration_number = fields.String(required=True)
    type = fields.String(required=True)
    type_name = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    label = fields.String(required=True)
    stage = fields.String(allow_none=True, metadata={
        "description": "the stage of the service standard the file is in"})
    stage_name = fields.String(allow_none=True)
    running = fields.Boolean(required=True, metadata={
        "description": "the SLA clock runs (false while the file waits for the applicant)"})
    sla_days = fields.Integer(required=True)
    days_used = fields.Integer(required=True, metadata={"description": "working days"})
    days_left = fields.Integer(allow_none=True, metadata={
        "description": "working days left (negative: over the SLA); null once decided"})
    expected_by = fields.Date(allow_none=True, metadata={
        "description": "the last working day of the SLA if the clock keeps running"})
    missing_items = fields.List(fields.String(), allow_none=True, metadata={
        "description": "what to complete, while the file is returned to the applicant"})
    timeline = fields.List(fields.Nested(TrackStep), required=True)


class VerifyOut(Schema):
    verification = fields.String(required=True, validate=validate.OneOf(
        ("valid", "expired", "revoked")))
    permit_number = fields.String(required=True)
    type = fields.String(required=True)
    type_name = fields.String(required=True)
    holder = fields.String(required=True, metadata={"description": "partly masked"})
    business = fields.String(allow_none=True, metadata={"description": "partly masked"})
    issued_by = fields.String(required=True, metadata={"description": "OPD unit code"})
    issued_by_name = fields.String(allow_none=True)
    issued_on = fields.Date(allow_none=True)
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(allow_none=True, metadata={"description": "null: no end"})
    revoked_on = fields.Date(allow_none=True)
    expired_on = fields.Date(allow_none=True)


class SurveyBody(Schema):
    scores = fields.Dict(
        keys=fields.String(validate=validate.OneOf(SKM_ELEMENTS)),
        values=fields.Integer(strict=True, validate=validate.Range(min=1, max=4)),
        required=True, validate=validate.Length(equal=len(SKM_ELEMENTS), error=(
            f"rate all {len(SKM_ELEMENTS)} elements: {', '.join(SKM_ELEMENTS)}")),
        metadata={"description": "each of the 9 SKM elements: 1 (tidak baik) to 4 (sangat "
                                 "baik)"})


class SurveyOut(Schema):
    id = fields.String(required=True)
    rated_on = fields.Date(required=True)
    scores = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class SurveyElement(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)


class SurveyForm(Schema):
    elements = fields.List(fields.Nested(SurveyElement), required=True)
    scale = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class SkmQuery(Schema):
    period = fields.String(required=True, validate=validate.Regexp(
        r"^\d{4}(-(0[1-9]|1[0-2]))?$", error="a year (2026) or a month (2026-03)"))
    opd = fields.String(validate=validate.Regexp(r"^\d{4}(\.\d{2})*$"))


class SkmFigures(Schema):
    responses = fields.Integer(required=True)
    index = fields.Float(allow_none=True)
    grade = fields.String(allow_none=True)
    quality = fields.String(allow_none=True)
    elements = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                           metadata={"description": "mean score per element (1-4)"})


class SkmTypeFigures(SkmFigures):
    type = fields.String(required=True)
    name = fields.String(allow_none=True)


class SkmOut(Schema):
    period = fields.String(required=True)
    opd = fields.String(allow_none=True)
    overall = fields.Nested(SkmFigures, required=True)
    by_type = fields.List(fields.Nested(SkmTypeFigures), required=True)

"""Schemas of the dashboard and the open-data export (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.directory import UNIT_CODE

# the years the service's calendars know (as holidays, 2000-2100): a month of year 0 or 1
# would take the period's arithmetic below year 1, where Python's dates end (a 500)
MONTH = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"
_counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class DashboardQuery(Schema):
    opd = fields.String(validate=validate.Regexp(UNIT_CODE), metadata={
        "description": "narrow a Pemda-wide view to one OPD (unit code)"})


class OpenDataQuery(Schema):
    from_ = fields.String(data_key="from", attribute="from", validate=validate.Regexp(MONTH),
                          metadata={"description": "first month, YYYY-MM (default: 11 "
                                                   "months before `to`)"})
    to = fields.String(validate=validate.Regexp(MONTH), metadata={
        "description": "last month, YYYY-MM (default: this month)"})

    @validates_schema
    def _order(self, data, **kwargs):
        if data.get("from") and data.get("to") and data["from"] > data["to"]:
            raise ValidationError("must not be after `to`", "from")


class Processing(Schema):
    decided = fields.Integer(required=True, metadata={
        "description": "applications decided (issued or rejected)"})
    median_days = fields.Integer(allow_none=True, metadata={
        "description": "working days the SLA clock ran until the decision, median"})
    p90_days = fields.Integer(allow_none=True)
    within_sla = fields.Integer(required=True)
    sla_compliance_pct = fields.Float(allow_none=True)
    histogram = fields.Dict(keys=fields.Integer(), values=fields.Integer(), metadata={
        "description": "working days used -> decisions"})


class Skm(Schema):
    responses = fields.Integer(required=True)
    index = fields.Float(allow_none=True, metadata={"description": "25.00-100.00"})
    grade = fields.String(allow_none=True, metadata={"description": "A-D"})
    quality = fields.String(allow_none=True)
    period = fields.String()


class TypeFigures(Schema):
    type = fields.String(required=True)
    name = fields.String(allow_none=True)
    states = _counts
    actions = _counts
    processing = fields.Nested(Processing)
    skm = fields.Nested(Skm)


class OpdFigures(Schema):
    opd = fields.String(required=True)
    name = fields.String(allow_none=True)
    states = _counts
    processing = fields.Nested(Processing)
    sla_warnings = fields.Integer()
    sla_breaches = fields.Integer()
    skm = fields.Nested(Skm)


class Today(Schema):
    date = fields.Date(required=True)
    submitted = fields.Integer(required=True)
    resubmitted = fields.Integer(required=True)
    registered = fields.Integer(required=True)
    issued = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    actions = _counts


class Scope(Schema):
    opd = fields.String(allow_none=True, metadata={"description": "null: the whole Pemda"})
    name = fields.String(allow_none=True)


class Month(Schema):
    period = fields.String(required=True)
    actions = _counts
    processing = fields.Nested(Processing)


class Sla(Schema):
    warnings = fields.Integer(required=True, metadata={
        "description": "applications warned that few working days were left"})
    breaches = fields.Integer(required=True, metadata={
        "description": "applications over their total SLA"})
    stage_breaches = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "applications over a stage's SLA, per stage"})


class SkmPeriods(Schema):
    all_time = fields.Nested(Skm)
    year = fields.Nested(Skm)
    month = fields.Nested(Skm)


class Expiring(Schema):
    days = fields.Integer(required=True)
    count = fields.Integer(required=True)
    by_date = _counts


class DashboardOut(Schema):
    scope = fields.Nested(Scope)
    today = fields.Nested(Today)
    by_status = _counts
    open = fields.Integer(metadata={"description": "applications being processed"})
    by_type = fields.List(fields.Nested(TypeFigures))
    by_opd = fields.List(fields.Nested(OpdFigures), metadata={
        "description": "Pemda-wide views only"})
    processing = fields.Nested(Processing)
    month = fields.Nested(Month)
    sla = fields.Nested(Sla)
    skm = fields.Nested(SkmPeriods)
    expiring = fields.Nested(Expiring)
    version = fields.Integer(metadata={"description": "grows with every change"})

"""Schemas of the permit types (the published service standards) and the holiday calendar."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.directory import UNIT_CODE
from services.permits import domain

# what an uploaded document can be (pamong.files tells these apart by their bytes)
DOCUMENT_TYPES = ("application/pdf", "image/png", "image/jpeg")
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # the most a requirement may allow per file
REQUIREMENT_KEY = r"^[a-z][a-z0-9_]{1,39}$"
HOLIDAY_KINDS = ("regional", "cuti_bersama")


class Requirement(Schema):
    key = fields.String(required=True, validate=validate.Regexp(REQUIREMENT_KEY), metadata={
        "description": "the checklist item's key, used in the upload URL (e.g. ktp)"})
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    mandatory = fields.Boolean(required=True)
    types = fields.List(fields.String(validate=validate.OneOf(DOCUMENT_TYPES)),
                        required=True, validate=validate.Length(min=1), metadata={
                            "description": "accepted types, judged by the file's content"})
    max_bytes = fields.Integer(required=True,
                               validate=validate.Range(min=1024, max=MAX_DOCUMENT_BYTES))


class Stage(Schema):
    key = fields.String(required=True, validate=validate.OneOf(tuple(domain.STAGES)))
    name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    sla_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365),
                              metadata={"description": "working days"})


class TypeBody(Schema):
    """What admin publishes (``PUT /types/<code>``); ``sla_days`` is the stages' sum."""

    name = fields.String(required=True, validate=validate.Length(min=3, max=200))
    opd = fields.String(required=True, validate=validate.Regexp(UNIT_CODE),
                        metadata={"description": "the responsible OPD's unit code"})
    legal_basis = fields.String(required=True, validate=validate.Length(min=3, max=1000))
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    requirements = fields.List(fields.Nested(Requirement), required=True,
                               validate=validate.Length(max=50))
    stages = fields.List(fields.Nested(Stage), required=True,
                         validate=validate.Length(min=1, max=len(domain.STAGES)))
    fee = fields.Integer(required=True, validate=validate.Range(min=0, max=10**12),
                         metadata={"description": "rupiah; 0: free"})
    validity_months = fields.Integer(required=True, validate=validate.Range(min=0, max=1200),
                                     metadata={"description": "0: no end"})
    site_visit = fields.Boolean(required=True)
    recommenders = fields.List(fields.String(validate=validate.Regexp(UNIT_CODE)),
                               load_default=list, validate=validate.Length(max=20),
                               metadata={"description": "OPDs asked for a technical "
                                                        "recommendation"})
    needs_business = fields.Boolean(load_default=False, metadata={
        "description": "the applicant states a business and its NIB"})
    active = fields.Boolean(load_default=True, metadata={
        "description": "false: no new applications (existing ones go on)"})

    @validates_schema
    def _unique(self, data, **kwargs):
        errors = {}
        keys = [r["key"] for r in data.get("requirements", ())]
        if len(keys) != len(set(keys)):
            errors["requirements"] = ["requirement keys must be unique"]
        stages = [s["key"] for s in data.get("stages", ())]
        if len(stages) != len(set(stages)):
            errors["stages"] = ["stage keys must be unique"]
        elif stages and sum(s["sla_days"] for s in data["stages"]) < 1:
            errors["stages"] = ["the SLA (the stages' sum) is at least 1 working day"]
        recommenders = data.get("recommenders", [])
        if len(recommenders) != len(set(recommenders)):
            errors["recommenders"] = ["each OPD once"]
        elif data.get("opd") in recommenders:
            errors["recommenders"] = ["the responsible OPD does not recommend to itself"]
        if errors:
            raise ValidationError(errors)


class TypeOut(TypeBody):
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    sla_days = fields.Integer(required=True, metadata={"description": "working days, total"})
    opd_name = fields.String(allow_none=True)
    published_at = fields.DateTime(required=True)
    published_by = fields.String(allow_none=True)


class TypeList(Schema):
    items = fields.List(fields.Nested(TypeOut), required=True)


class TypeListQuery(Schema):
    opd = fields.String(load_default=None, validate=validate.Regexp(UNIT_CODE))
    include_inactive = fields.Boolean(load_default=False)


class TypeQuery(Schema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1),
                             metadata={"description": "a past version (default: in force)"})


# -- the calendar -----------------------------------------------------------------------------

class HolidayQuery(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100))


class HolidayBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=3, max=200))
    kind = fields.String(load_default="regional", validate=validate.OneOf(HOLIDAY_KINDS))


class Holiday(Schema):
    date = fields.Date(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={
        "description": "national, regional or cuti_bersama"})
    on_weekend = fields.Boolean(required=True, metadata={
        "description": "true: it falls on a weekend, so it changes no SLA"})


class HolidayList(Schema):
    year = fields.Integer(required=True)
    items = fields.List(fields.Nested(Holiday), required=True)

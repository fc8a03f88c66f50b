"""Request and response schemas of the directory API (marshmallow; unknown fields rejected)."""

import re

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from pamong.contracts.directory import (
    NIP,
    POSITION_ID,
    POSITION_KINDS,
    STATUSES,
    TIMEZONES,
    UNIT_CODE,
    UNIT_KINDS,
)
from pamong.identifiers import parse_nik, parse_staff_number, staff_mismatches
from pamong.privacy import is_masked_nik, normalize_phone
from pamong.web import PageQuery
from services.directory.csvio import EMAIL


def valid_position_id(value):
    return re.fullmatch(POSITION_ID, value) is not None


def _tidy(data, *names, required=()):
    """Collapse inner whitespace as the CSV reader does, so an API-entered name re-imports
    from an export unchanged."""
    for name in (*names, *required):
        if isinstance(data.get(name), str):
            data[name] = " ".join(data[name].split()) or None
    empty = [name for name in required if not data.get(name)]
    if empty:
        raise ValidationError({name: ["is empty"] for name in empty})
    return data


class OfficeSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    latitude = fields.Float(required=True, validate=validate.Range(min=-11, max=6))
    longitude = fields.Float(required=True, validate=validate.Range(min=95, max=141))
    radius_m = fields.Integer(load_default=100, validate=validate.Range(min=10, max=5000))

    @post_load
    def tidy(self, data, **kwargs):
        return _tidy(data, required=("name",))


class UnitBody(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(UNIT_KINDS))
    timezone = fields.String(load_default="Asia/Jakarta", validate=validate.OneOf(TIMEZONES))
    offices = fields.List(fields.Nested(OfficeSchema), load_default=list)
    active = fields.Boolean(load_default=True)

    @post_load
    def tidy(self, data, **kwargs):
        names = [office["name"] for office in data["offices"]]
        if len(names) != len(set(names)):
            raise ValidationError({"offices": ["two offices have the same name"]})
        return _tidy(data, required=("name",))


class UnitOut(UnitBody):
    code = fields.String()
    parent = fields.String(allow_none=True)
    opd = fields.String(allow_none=True)
    version = fields.Integer()
    updated_at = fields.DateTime()


class UnitQuery(PageQuery):
    parent = fields.String(metadata={"description": "children of this unit"})
    under = fields.String(metadata={"description": "the whole subtree below this unit"})
    q = fields.String(validate=validate.Length(min=1, max=100))


class PositionBody(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(POSITION_KINDS))
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    heads_unit = fields.Boolean(load_default=False)
    may_sign = fields.Boolean(load_default=None, allow_none=True)
    superior = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(POSITION_ID))
    active = fields.Boolean(load_default=True)

    @post_load
    def default_signing(self, data, **kwargs):
        if data["may_sign"] is None:  # heads sign by default (tata naskah dinas)
            data["may_sign"] = data["heads_unit"]
        return _tidy(data, required=("title",))


class PositionOut(PositionBody):
    id = fields.String()
    opd = fields.String(allow_none=True)
    version = fields.Integer()


class PositionQuery(PageQuery):
    unit = fields.String()


class EmployeeBody(Schema):
    """An employee as the API takes it; gender and birth date come from the NIP if absent."""

    kind = fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(("pns", "pppk")))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    title_front = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=100))
    title_back = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(max=100))
    gender = fields.String(load_default=None, allow_none=True,
                           validate=validate.OneOf(("L", "P")))
    birth_date = fields.Date(load_default=None, allow_none=True)
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    position = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(POSITION_ID))
    phone = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)
    status = fields.String(load_default="active", validate=validate.OneOf(STATUSES))
    # absent, or masked as a reader without `admin` sees it: the stored NIK is kept
    nik = fields.String(allow_none=True)
    supervisor = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(NIP))
    effective_date = fields.Date(load_default=None, allow_none=True)

    @validates("phone")
    def _phone(self, value, **kwargs):
        if value is not None:
            try:
                normalize_phone(value)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    @validates("email")
    def _email(self, value, **kwargs):
        if value is not None and not EMAIL.fullmatch(value):
            raise ValidationError("not an e-mail address")

    @validates("nik")
    def _nik(self, value, **kwargs):
        if value is not None and not is_masked_nik(value.strip()):
            try:
                parse_nik(value)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    @post_load
    def normalise(self, data, **kwargs):
        data["phone"] = normalize_phone(data["phone"]) if data["phone"] else None
        data["email"] = data["email"].lower() if data["email"] else None
        if "nik" in data:
            data["nik"] = data["nik"].strip() if data["nik"] else None
        return _tidy(data, "title_front", "title_back", required=("name",))


def complete_employee(nip, data, today=None):
    """Check ``data`` against the NIP and fill gender, birth date and kind from it.

    Raises ValidationError with field names, as the API reports them.
    """
    try:
        number = parse_staff_number(nip, kind=data.get("kind"), today=today)
    except ValueError as exc:
        raise ValidationError({"nip": [str(exc)]}) from None
    errors = staff_mismatches(number, data.get("gender"), data.get("birth_date"))
    if errors:
        raise ValidationError({name: [reason] for name, reason in errors.items()})
    return {**data, "nip": number.number, "kind": number.kind, "gender": number.gender,
            "birth_date": number.birth_date}


class PositionRefOut(Schema):
    id = fields.String()
    title = fields.String()
    kind = fields.String()
    heads_unit = fields.Boolean()
    may_sign = fields.Boolean()


class EmployeeOut(Schema):
    """Everything a scoped admin sees; readers outside the admin roles get a subset
    (``domain.PUBLIC_EMPLOYEE_FIELDS``), and only ``admin`` sees the NIK unmasked."""

    nip = fields.String()
    kind = fields.String()
    name = fields.String()
    display_name = fields.String()
    title_front = fields.String(allow_none=True)
    title_back = fields.String(allow_none=True)
    gender = fields.String()
    birth_date = fields.Date()
    unit = fields.String()
    opd = fields.String(allow_none=True)
    position = fields.Nested(PositionRefOut, allow_none=True)
    supervisor = fields.String(allow_none=True)
    supervisor_explicit = fields.Boolean()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    status = fields.String()
    nik = fields.String(allow_none=True)
    effective_date = fields.Date(allow_none=True, metadata={
        "description": "TMT: the date the employee started in this unit"})
    status_date = fields.Date(allow_none=True, metadata={
        "description": "the date the current status took effect, when it is not active"})
    version = fields.Integer()
    updated_at = fields.DateTime()


class EmployeeQuery(PageQuery):
    q = fields.String(validate=validate.Length(min=2, max=100),
                      metadata={"description": "part of the name, or the start of a NIP"})
    unit = fields.String(metadata={"description": "employees of exactly this unit"})
    under = fields.String(metadata={"description": "employees of this unit and units below"})
    position = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))


class TransferBody(Schema):
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    position = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(POSITION_ID))
    effective_date = fields.Date(load_default=None, metadata={
        "description": "default: today in DIRECTORY_TIMEZONE"})


class DeactivateBody(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES[1:]))
    effective_date = fields.Date(load_default=None, allow_none=True)


class ActingBody(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("plt", "plh")))
    position = fields.String(required=True, validate=validate.Regexp(POSITION_ID))
    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    start = fields.Date(required=True)
    end = fields.Date(required=True)


class ActingOut(Schema):
    id = fields.String()
    kind = fields.String()
    position = fields.String()
    unit = fields.String()
    nip = fields.String()
    start = fields.String()
    end = fields.String()
    ended_on = fields.String(allow_none=True)
    version = fields.Integer()


class ActingQuery(PageQuery):
    position = fields.String()
    unit = fields.String()
    on = fields.Date(metadata={"description": "only assignments in force on this date"})


class EndActingBody(Schema):
    ended_on = fields.Date(load_default=None, metadata={
        "description": "default: today in DIRECTORY_TIMEZONE"})


class HeadQuery(Schema):
    date = fields.Date(load_default=None, metadata={
        "description": "default: today in DIRECTORY_TIMEZONE"})


class HeadOut(Schema):
    unit = fields.String()
    position = fields.String(allow_none=True)
    head = fields.String(allow_none=True)
    acting = fields.Dict(allow_none=True)


class ImportQuery(Schema):
    dry_run = fields.Boolean(load_default=False)


class RowErrorOut(Schema):
    line = fields.Integer()
    column = fields.String(allow_none=True)
    reason = fields.String()


class ImportOut(Schema):
    id = fields.String()
    kind = fields.String()
    status = fields.String(metadata={"description": "checked (a dry run) or done"})
    dry_run = fields.Boolean()
    rows = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    transferred = fields.Integer()
    unchanged = fields.Integer()
    derived = fields.Integer(metadata={"description": "other employees whose supervisor or "
                                                      "position changed as a consequence"})
    events = fields.Integer()
    errors = fields.List(fields.Nested(RowErrorOut))
    warnings = fields.List(fields.Nested(RowErrorOut))


class AuditOut(Schema):
    at = fields.DateTime()
    action = fields.String()
    changes = fields.Dict()
    by = fields.Dict(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    source = fields.String(allow_none=True)


class TreeQuery(Schema):
    root = fields.String(metadata={"description": "unit code; default your OPD, or the Pemda"})


class TreeNode(Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    active = fields.Boolean()
    head = fields.String(allow_none=True)
    children = fields.List(fields.Nested(lambda: TreeNode()))

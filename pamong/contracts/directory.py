"""Events published by ``directory``: the Pemda's units, employees and acting officials.

Every record event carries the record's ``version``, a counter the directory raises on each
real change, so a replica applies an event only when it is newer than what it holds
(``pamong.replica``). A snapshot re-emits the current state as ``*.upserted`` events with the
versions unchanged, so replaying it is harmless.

Personal data is minimal: the NIK is only ever masked; the phone number travels because the
modules that keep an employee replica exist to reach that person (attendance reminders,
letter dispositions, leave approvals by WhatsApp).
"""

from marshmallow import Schema, fields, validate

from pamong.events.contracts import contract

UNIT_KINDS = ("pemda", "opd", "bidang", "subbidang", "seksi", "uptd", "kecamatan", "kelurahan")
TIMEZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")
POSITION_KINDS = ("struktural", "fungsional", "pelaksana")
# long_leave: cuti besar (CB); unpaid_leave: cuti di luar tanggungan negara (CLTN), PP 11/2017
STATUSES = ("active", "long_leave", "unpaid_leave", "retired", "transferred_out")
UNIT_CODE = r"^\d{4}(\.\d{2})*$"
POSITION_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NIP = r"^\d{18}$"

_version = fields.Integer(required=True, validate=validate.Range(min=1))


class Office(Schema):
    name = fields.String(required=True)
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    radius_m = fields.Integer(required=True, validate=validate.Range(min=1))


@contract("unit.upserted", 1)
class UnitUpserted(Schema):
    """A unit was created or changed (or is re-emitted by a snapshot)."""

    code = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(UNIT_KINDS))
    parent = fields.String(required=True, allow_none=True)
    opd = fields.String(required=True, allow_none=True, metadata={
        "description": "the OPD the unit belongs to (itself for an OPD; null for the Pemda)"})
    timezone = fields.String(required=True, validate=validate.OneOf(TIMEZONES))
    offices = fields.List(fields.Nested(Office), required=True)
    active = fields.Boolean(required=True)
    version = _version


@contract("unit.deactivated", 1)
class UnitDeactivated(Schema):
    code = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    version = _version


class PositionRef(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(POSITION_KINDS))
    heads_unit = fields.Boolean(required=True)
    may_sign = fields.Boolean(required=True)


@contract("employee.upserted", 1)
class EmployeeUpserted(Schema):
    """An employee was created or changed (or is re-emitted by a snapshot)."""

    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    kind = fields.String(required=True, validate=validate.OneOf(("pns", "pppk")))
    name = fields.String(required=True)
    display_name = fields.String(required=True, metadata={"description": "name with degrees"})
    gender = fields.String(required=True, validate=validate.OneOf(("L", "P")))
    unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
    opd = fields.String(required=True, allow_none=True)
    position = fields.Nested(PositionRef, required=True, allow_none=True)
    supervisor = fields.String(required=True, allow_none=True, metadata={
        "description": "NIP of the supervisor: explicit, or the holder of the nearest filled "
                       "superior position"})
    phone = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    nik_masked = fields.String(required=True, allow_none=True)
    version = _version


@contract("employee.transferred", 1)
class EmployeeTransferred(Schema):
    """Same NIP, new unit. ``employee.upserted`` with the same version follows it."""

    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    from_unit = fields.String(required=True)
    to_unit = fields.String(required=True)
    from_position = fields.String(required=True, allow_none=True)
    to_position = fields.String(required=True, allow_none=True)
    effective_date = fields.Date(required=True)
    version = _version


@contract("employee.deactivated", 1)
class EmployeeDeactivated(Schema):
    """The employee left active service (retired, transferred out) or went on long leave."""

    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES[1:]))
    effective_date = fields.Date(metadata={"description": "the day the status took effect "
                                                          "(absent from events before 2026-12)"})
    version = _version


@contract("acting.assigned", 1)
class ActingAssigned(Schema):
    """An employee acts in a position (Plt: vacant position; Plh: holder temporarily away)."""

    id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("plt", "plh")))
    position = fields.String(required=True)
    unit = fields.String(required=True)
    nip = fields.String(required=True, validate=validate.Regexp(NIP))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    version = _version


@contract("acting.ended", 1)
class ActingEnded(ActingAssigned):
    """The acting assignment ended (its end date passed, or it was ended early).

    Carries the whole assignment, so a replica that never saw ``acting.assigned`` still holds
    a complete record.
    """

    ended_on = fields.Date(required=True)


@contract("directory.snapshot_requested", 1)
class SnapshotRequested(Schema):
    """A request (to ``directory.events``) to re-emit every unit, employee and acting record."""

    requested_by = fields.String(required=True, metadata={
        "description": "the module or person asking, for the logs"})

"""Events published by ``attendance``: check-ins, leave, corrections and closed days.

Personal data is minimal: an employee is named by NIP (an employee number, not a citizen
id); a record carries the place it was judged against and its distance, never the raw
coordinates. Absences are published only once a day is closed (``day_closed``,
``day_revised``, ``absence_threshold_reached``), never from raw records: an early count of
"truants" before reconciliation is the failure this module exists to avoid.
"""

from marshmallow import Schema, fields, validate

from pamong.contracts.directory import NIP, UNIT_CODE
from pamong.events.contracts import contract

FLAGS = ("mock_location", "clock_drift", "impossible_travel", "shared_device", "offline")
LEAVE_TYPES = ("CT", "CB", "CS", "CM", "CAP", "CBer", "CLTN")
DAY_STATUSES = ("present", "absent", "leave", "assignment", "holiday", "day_off", "outage")

_nip = fields.String(required=True, validate=validate.Regexp(NIP))
_unit = fields.String(required=True, validate=validate.Regexp(UNIT_CODE))
_opd = fields.String(required=True, allow_none=True)


class _Record(Schema):
    nip = _nip
    unit = _unit
    opd = _opd
    date = fields.Date(required=True, metadata={"description": "the working day (unit time)"})
    at = fields.DateTime(required=True, metadata={
        "description": "the time that counts: the server's on receipt; the device's for an "
                       "offline record"})
    received_at = fields.DateTime(required=True, metadata={"description": "server time"})
    device_at = fields.DateTime(required=True, allow_none=True)
    place = fields.String(required=True, metadata={
        "description": "the office or assignment place the record was judged inside"})
    distance_m = fields.Float(required=True)
    accuracy_m = fields.Float(required=True)
    flags = fields.List(fields.String(validate=validate.OneOf(FLAGS)), required=True)
    offline = fields.Boolean(required=True)


@contract("attendance.checked_in", 1)
class CheckedIn(_Record):
    """An employee checked in inside a geofence (first or a later record of the day)."""


@contract("attendance.checked_out", 1)
class CheckedOut(_Record):
    """An employee checked out inside a geofence."""


class _Leave(Schema):
    id = fields.String(required=True)
    nip = _nip
    unit = _unit
    opd = _opd
    type = fields.String(required=True, validate=validate.OneOf(LEAVE_TYPES))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    working_days = fields.Integer(required=True)


@contract("attendance.leave_requested", 1)
class LeaveRequested(_Leave):
    """A leave request waits for its approver (the supervisor, or the acting head)."""

    approver = fields.String(required=True, allow_none=True, metadata={
        "description": "NIP of who is asked to decide; null when nobody is found yet"})


@contract("attendance.leave_decided", 1)
class LeaveDecided(_Leave):
    decision = fields.String(required=True, validate=validate.OneOf(("approved", "rejected",
                                                                     "cancelled")))
    decided_by = fields.String(required=True)
    note = fields.String(required=True, allow_none=True)


@contract("attendance.correction_decided", 1)
class CorrectionDecided(Schema):
    """A supervisor decided an employee's request to correct a day."""

    id = fields.String(required=True)
    nip = _nip
    unit = _unit
    opd = _opd
    date = fields.Date(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(("approved", "rejected")))
    decided_by = fields.String(required=True)


class Counts(Schema):
    employees = fields.Integer(required=True)
    present = fields.Integer(required=True)
    on_time = fields.Integer(required=True)
    late = fields.Integer(required=True, metadata={"description": "present with a TL code"})
    early_leave = fields.Integer(required=True, metadata={
        "description": "present with a PSW code"})
    absent = fields.Integer(required=True, metadata={"description": "absent without reason"})
    leave = fields.Integer(required=True)
    assignment = fields.Integer(required=True)
    holiday = fields.Integer(required=True)
    day_off = fields.Integer(required=True)
    outage = fields.Integer(required=True)
    flagged = fields.Integer(required=True, metadata={
        "description": "employees with a flagged record, for the supervisor"})


@contract("attendance.day_closed", 1)
class DayClosed(Schema):
    """A unit's day is closed: every active employee's status is computed (per unit)."""

    unit = _unit
    opd = _opd
    date = fields.Date(required=True)
    counts = fields.Nested(Counts, required=True)
    revision = fields.Integer(required=True, metadata={"description": "0 on the first close"})


@contract("attendance.day_revised", 1)
class DayRevised(Schema):
    """A closed day changed for one employee (a correction, a leave approved later); the
    unit's counts after the change."""

    unit = _unit
    opd = _opd
    date = fields.Date(required=True)
    nip = _nip
    before = fields.String(required=True, validate=validate.OneOf(DAY_STATUSES))
    after = fields.String(required=True, validate=validate.OneOf(DAY_STATUSES))
    codes = fields.List(fields.String(), required=True)
    reason = fields.String(required=True)
    counts = fields.Nested(Counts, required=True)
    revision = fields.Integer(required=True)


@contract("attendance.absence_threshold_reached", 1)
class AbsenceThresholdReached(Schema):
    """An employee's unexcused absences this year reached a PP 94/2021 threshold (reported
    to the supervisor and BKD; the module imposes nothing)."""

    nip = _nip
    unit = _unit
    opd = _opd
    year = fields.Integer(required=True)
    days = fields.Integer(required=True)
    consecutive = fields.Integer(required=True)
    level = fields.String(required=True)
    text = fields.String(required=True)
    text_id = fields.String(required=True)

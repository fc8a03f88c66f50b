"""Who may see and decide what in attendance.

- ``admin`` and ``service``: the whole Pemda.
- ``opd_admin``: its OPD (``Principal.can_read``) for reading, its unit's subtree for writing.
- ``pimpinan``/``verifikator``: the subtree of their own unit (a head sees the people under
  them, not the neighbouring bidang).
- a supervisor (the NIP the directory names as an employee's ``supervisor``) sees and decides
  for that employee.
- ``pegawai``: their own records only (the token's ``nip`` claim).
"""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.auth.principal import in_subtree
from pamong.replica import EMPLOYEES
from pamong.storage import GroupFind, grouped
from pamong.web import Problem, forbidden, not_found

API = "/api/attendance/v1"
STAFF_READERS = ("admin", "service", "opd_admin", "pimpinan", "verifikator")
# the refusal of a route whose unit comes in the query or body (documented in OpenAPI)
UNKNOWN_UNIT = {404: "The unit is not in this Pemda's directory, or the caller may not see it"}


def own_nip(principal):
    if not principal.nip:
        raise forbidden("Your token carries no NIP: only an employee records their own "
                        "attendance.")
    return principal.nip


def may_see_unit(principal, unit):
    """Reports and lists of a unit."""
    if principal.is_pemda_wide:
        return True
    if principal.has_any(("opd_admin",)) and principal.can_read(unit):
        return True
    return bool(principal.has_any(("pimpinan", "verifikator")) and principal.opd
                and in_subtree(unit, principal.opd))


def may_see_employee(principal, employee):
    return (principal.nip == employee["_id"] or principal.nip == employee.get("supervisor")
            or may_see_unit(principal, employee["unit"]))


def employee_or_404(db, principal, nip):
    """The replica's employee, when the caller may see them (else 404: never reveal another
    OPD's people)."""
    employee = db[EMPLOYEES].find_one({"_id": nip})
    if employee is None or not may_see_employee(principal, employee):
        raise not_found()
    return employee


def active_self(db, principal):
    """The caller as an active employee of the directory replica (read with the concurrent
    workers' reads: every check-in of the morning peak asks)."""
    nip = own_nip(principal)
    employee = grouped(GroupFind, db[EMPLOYEES]).insert(nip)
    if employee is None:
        raise Problem(403, f"NIP {nip} is not in this Pemda's directory (yet): ask the BKD "
                           "to register you, or wait a minute after they did.")
    if employee.get("status") != "active":
        raise Problem(403, f"NIP {nip} is not in active service ({employee.get('status')}).")
    return employee


class DecisionBody(Schema):
    """A supervisor's decision on a request (leave, a correction): a rejection says why."""
    decision = fields.String(required=True, validate=validate.OneOf(("approved", "rejected")))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def reason_for_rejection(self, data, **kwargs):
        if data["decision"] == "rejected" and not (data.get("note") or "").strip():
            raise ValidationError("say why the request is rejected", "note")


class DecidedFields(Schema):
    """Who was asked to decide a request, and who decided it, when and why."""
    approver = fields.String(allow_none=True, metadata={
        "description": "the supervisor asked when it was requested"})
    requested_at = fields.DateTime(required=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)

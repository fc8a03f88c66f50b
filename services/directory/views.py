"""What each caller may see of a stored record (the API's read side)."""

from pamong.auth.principal import subtree_filter
from pamong.privacy import mask_nik
from pamong.web import forbidden
from services.directory.domain import PUBLIC_EMPLOYEE_FIELDS
from services.directory.store import record_of

ADMIN_READERS = ("admin", "opd_admin", "service")


def reader_opd(principal):
    """The subtree a caller reads in (``Principal.read_root``: None for everything); 403 when
    a role that is not Pemda-wide comes with no unit."""
    if not principal.is_pemda_wide and not principal.opd:
        raise forbidden("Your token names no OPD.")
    return principal.read_root()


def reader_criteria(principal, field):
    """What a list adds to its filter so that it holds exactly the records a single read
    shows (``in_subtree`` of ``reader_opd``); ``field`` holds the record's unit code (``_id``
    for a unit). None: no limit."""
    scope = reader_opd(principal)
    return None if scope is None else subtree_filter(field, scope)


def unit_out(doc):
    return {**doc.get("view", {}), "code": doc["_id"], "version": doc.get("version"),
            "updated_at": doc.get("updated_at")}


def employee_out(doc, principal, public=False):
    """The record plus its derived view. ``admin`` sees the NIK; ``opd_admin`` (within its
    OPD) and ``service`` see everything else with the NIK masked; other readers, and anyone
    reading a supervisor chain (``public``), see names, positions and units only."""
    record = record_of(doc, "employees")
    view = doc.get("view") or {}
    full = {**record, **view, "version": doc.get("version"), "updated_at": doc.get("updated_at"),
            "supervisor_explicit": bool(record.get("supervisor"))}
    full["supervisor"] = view.get("supervisor")
    if public or not principal.has_any(ADMIN_READERS) or (
            not principal.is_pemda_wide and not principal.can_write(record["unit"])):
        return {k: full.get(k) for k in PUBLIC_EMPLOYEE_FIELDS}
    if not principal.has_any(("admin",)):
        full["nik"] = mask_nik(record["nik"]) if record.get("nik") else None
    return full

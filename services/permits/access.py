"""Who may see and act on an application (pure: the caller passes the principal in).

- a pemohon sees the applications they own (``owner`` is their token's ``sub``), nothing else;
- staff of the responsible OPD (``petugas``, ``verifikator``, ``pimpinan``, ``opd_admin``,
  read scope ``Principal.can_read``) see its applications; a recommending OPD's staff see the
  applications that asked them for a recommendation;
- ``admin`` and ``service`` see every application;
- everyone else gets 404, as for an application that does not exist.
What each may *do* is ``domain.parties_of`` + ``domain.ACTIONS``.
"""

from pamong.web import Problem
from services.permits import domain

API = "/api/permits/v1"
STAFF = ("petugas", "verifikator", "pimpinan", "opd_admin")  # an OPD's permit staff
APPLICANTS = ("pemohon", "petugas")  # who files an application (a petugas at the counter)
READERS = ("pemohon", *STAFF, "admin", "service")


def conflict_of(application, detail, **more):
    """409 naming the state the application is in, the actions it allows and its version
    (what a client needs to read it again and choose), plus ``more`` members."""
    where = {"state": None, "allowed": [], "version": None} if application is None else {
        "state": application["state"], "allowed": domain.allowed_actions(application["state"]),
        "version": application["version"]}
    return Problem(409, detail, extensions={**where, **more})


def recommenders(application):
    return {r["opd"] for r in application.get("recommendations", ())}


def may_see(application, principal):
    if principal.is_pemda_wide:
        return True
    if principal.has_any(("pemohon",)) and application.get("owner") == principal.sub:
        return True
    if not principal.has_any(STAFF):
        return False
    return principal.can_read(application["opd"]) or any(
        principal.can_read(opd) for opd in recommenders(application))


def parties(application, principal):
    """``domain.parties_of`` for this principal: staff act for the responsible OPD (their
    token's unit in it, ``Principal.can_read``), not for a recommending one."""
    return domain.parties_of(application, roles=principal.roles, sub=principal.sub,
                             in_opd=principal.has_any(STAFF) and not principal.is_pemda_wide
                             and principal.can_read(application["opd"]))

"""The authenticated caller and the OPD scoping rule (DESIGN §6)."""

import re
from dataclasses import dataclass

# every role a route may name (DESIGN §6); a typo in a route's roles fails at import
ROLES = frozenset({"admin", "opd_admin", "pimpinan", "verifikator", "pegawai", "petugas",
                   "sekretariat", "pemohon", "service"})  # sekretariat: an OPD's mail clerk
PEMDA_WIDE_ROLES = frozenset({"admin", "service"})
# the Pemda's own people and machines: every role but the citizen applicant
STAFF_ROLES = ROLES - {"pemohon"}


def in_subtree(code, root):
    """Unit codes are dotted paths: ``3510.01`` contains ``3510.01.02``, not ``3510.010``."""
    return code == root or code.startswith(root + ".")


def subtree_filter(field, root):
    """The database filter of ``in_subtree``: documents whose ``field`` is ``root`` or below."""
    return {field: {"$regex": f"^{re.escape(root)}(\\.|$)"}}


@dataclass(frozen=True)
class Principal:
    sub: str
    name: str | None = None
    roles: tuple[str, ...] = ()
    opd: str | None = None  # unit code of the caller's OPD, e.g. "3510.01"
    nip: str | None = None
    nik: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "roles", tuple(self.roles))

    def has_any(self, roles):
        return not set(self.roles).isdisjoint(roles)

    @property
    def is_pemda_wide(self):
        return self.has_any(PEMDA_WIDE_ROLES)

    def read_root(self):
        """The unit whose subtree this caller reads (README "Auth"): None (everything) for
        Pemda-wide roles, else the OPD of its unit (``3510.03.01`` reads ``3510.03``), or the
        unit itself when that has no OPD part (the Pemda root ``3510`` reads the whole Pemda).
        Unit codes are ``<pemda>.<opd>.<below>...``. A caller whose token names no unit reads
        nothing: refuse it before asking (``can_read`` answers False for it)."""
        if self.is_pemda_wide:
            return None
        if not self.opd:
            raise ValueError("the token names no unit: it reads nothing")
        return ".".join(self.opd.split(".")[:2])

    def can_read(self, unit_code):
        """Whether a record of ``unit_code`` is in this caller's read scope (``read_root``)."""
        if self.is_pemda_wide:
            return True
        if not self.opd or not unit_code:
            return False
        return in_subtree(unit_code, self.read_root())

    def can_write(self, unit_code):
        """Pemda-wide roles write every unit; others their own unit and the units below it,
        a narrower scope than what they read.

        Unit codes are dotted paths, so "3510.01" contains "3510.01.02" but not "3510.010".
        """
        if self.is_pemda_wide:
            return True
        if not self.opd or not unit_code:
            return False
        return in_subtree(unit_code, self.opd)

    def actor(self, preferred_roles=()):
        """``{"sub", "role"}`` for event envelopes: the role that granted access if known."""
        role = next((r for r in self.roles if r in preferred_roles),
                    self.roles[0] if self.roles else None)
        return {"sub": self.sub, "role": role}

    @classmethod
    def from_claims(cls, claims):
        roles = claims.get("roles")
        if roles is None:  # Keycloak puts realm roles here
            roles = (claims.get("realm_access") or {}).get("roles", [])
        if isinstance(roles, str):
            roles = roles.split()
        opd = claims.get("opd")
        if opd is not None and not isinstance(opd, str):
            # a number loses what the code means (3510.10 -> 3510.1): refuse, never coerce
            raise ValueError("the opd claim must be a string unit code")
        return cls(sub=str(claims["sub"]), name=_text(claims.get("name")),
                   roles=tuple(str(role) for role in roles), opd=opd,
                   nip=_text(claims.get("nip")), nik=_text(claims.get("nik")))


def _text(value):
    # an identity provider may send identifiers as numbers; comparisons here are on strings
    return None if value is None else str(value)

import pytest

from pamong.auth import Principal, scope_check
from pamong.web import Problem

pytestmark = pytest.mark.unit


def staff(opd, *roles):
    return Principal(sub="u1", roles=roles or ("pegawai",), opd=opd)


@pytest.mark.parametrize("unit, visible", [
    ("3510.01", True),          # own unit
    ("3510.01.02", True),       # child
    ("3510.01.02.07", True),    # grandchild
    ("3510.010", False),        # shares a prefix but is a sibling
    ("3510.0", False),
    ("3510", False),            # parent
    ("3510.02", False),         # sibling
    ("3510.02.01", False),
    ("", False),
    (None, False),
])
def test_write_scope_is_the_callers_unit_subtree(unit, visible):
    assert staff("3510.01").can_write(unit) is visible


@pytest.mark.parametrize("opd, root", [
    ("3510.03.01", "3510.03"),    # a bidang reads its whole OPD
    ("3510.03", "3510.03"),
    ("3510", "3510"),             # the Pemda root reads the whole Pemda
])
def test_read_scope_is_the_opd_of_the_callers_unit(opd, root):
    principal = staff(opd, "opd_admin")
    assert principal.read_root() == root
    assert principal.can_read(root) and principal.can_read(root + ".09")
    assert principal.can_read("3510.04") is (root == "3510")  # another OPD
    # writes stay in the caller's own unit subtree
    assert principal.can_write(root) is (root == opd)


@pytest.mark.parametrize("role", ["admin", "service"])
def test_pemda_wide_roles_see_every_unit(role):
    principal = Principal(sub="x", roles=(role,))
    assert principal.is_pemda_wide and principal.read_root() is None
    assert principal.can_read("3510.99.01") and principal.can_write("3510.99.01")


def test_caller_without_opd_sees_no_unit():
    citizen = Principal(sub="3510012345678901", roles=("pemohon",))
    assert not citizen.is_pemda_wide
    assert not citizen.can_read("3510.01") and not citizen.can_write("3510.01")


def test_has_any_and_actor():
    principal = Principal(sub="u1", roles=["pegawai", "verifikator"], opd="3510.01")
    assert principal.roles == ("pegawai", "verifikator")
    assert principal.has_any(("verifikator", "admin"))
    assert not principal.has_any(("admin",))
    assert principal.actor(("verifikator",)) == {"sub": "u1", "role": "verifikator"}
    assert principal.actor() == {"sub": "u1", "role": "pegawai"}


def test_scope_check_hides_other_opds_records_as_404():
    scope_check(staff("3510.01"), "3510.01.02")
    scope_check(staff("3510.01.02"), "3510.01")  # reads the whole OPD of its unit
    with pytest.raises(Problem) as raised:
        scope_check(staff("3510.01"), "3510.02")
    assert raised.value.status == 404


def test_keycloak_realm_roles_are_read():
    principal = Principal.from_claims({"sub": "k1", "realm_access": {"roles": ["petugas"]},
                                       "opd": "3510.03"})
    assert principal.roles == ("petugas",) and principal.opd == "3510.03"

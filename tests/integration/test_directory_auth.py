"""Who may do what in the directory API: every endpoint against every kind of caller.

The rules (issue: "admin for everything, opd_admin within its OPD subtree, everyone
authenticated may read names, positions and units of their own OPD"; DESIGN: 401 for a
missing, expired or forged token, 403 for the wrong role, 404 for another OPD's record so that
its existence is not revealed):

- writes: ``admin`` anywhere; ``opd_admin`` inside its subtree only (outside: 403 when the
  request names a new record or a unit outside it, 409 "cannot be registered by your OPD",
  naming nothing of it, when the key already belongs to another OPD); ``pegawai`` 403 on
  every write;
- reads: ``admin`` everything; ``opd_admin`` and ``pegawai`` their own OPD only (another
  OPD's unit, position or employee: 404; lists filtered to their OPD); a ``pegawai`` sees the
  public employee fields only, an ``opd_admin`` the NIK masked, ``admin`` the NIK whole;
- history, imports, exports: ``admin`` and ``opd_admin`` (own OPD) only; snapshot: ``admin``.

One directory service (seeded by ``test_directory_api.seed``) serves the whole module.
Requests that succeed and would change the seed work on scratch records created just before
(``prepare``), so the cases do not depend on their order; a refused write must leave its
target exactly as it was (``probe``).

Two answers are 422 rather than 403 by design: an acting assignment to another OPD's position
(the position "does not exist" for that caller, so its existence stays hidden), and an import
whose rows lie outside the caller's OPD (a row error: the whole file is refused).
"""

import csv
import io
import itertools
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
from nameko.containers import ServiceContainer

from pamong.auth import mint_token
from pamong.testing import HttpClient, drop_databases, free_port
from services.directory.domain import PUBLIC_EMPLOYEE_FIELDS
from services.directory.service import DirectoryService
from tests.conftest import service_test_config
from tests.integration.test_directory_api import (
    API,
    EMPLOYEES,
    NIP_KADIS,
    NIP_OTHER,
    NIP_STAFF,
    POSITIONS,
    UNITS,
    admin,
    seed,
)

pytestmark = pytest.mark.integration

OWN, OTHER = "3510.03", "3510.04"  # Dinas Kesehatan (the records under test), Pendidikan
CSV = {"Content-Type": "text/csv; charset=utf-8"}
NIK_KADIS = "3510010101700001"
MISSING_NIP = "199101012015031999"  # valid, never created (scratch NIPs stop well below 999)

# -- callers -------------------------------------------------------------------------------

# role and opd claim of each authenticated caller; the columns of MATRIX, in this order
CALLERS = {
    "admin": (("admin",), "3510"),
    "opd_admin_own": (("opd_admin",), OWN),
    "opd_admin_other": (("opd_admin",), OTHER),
    "pegawai_own": (("pegawai",), f"{OWN}.01"),
    "pegawai_other": (("pegawai",), OTHER),
}
UNAUTHENTICATED = ("no_token", "expired_token", "forged_token")


def token_for(client, caller):
    if caller == "no_token":
        return None
    if caller == "expired_token":  # well past JWT_LEEWAY_SECONDS
        return mint_token(client.config, "late", ["admin"], opd="3510", ttl_seconds=-600)
    if caller == "forged_token":  # right claims, wrong key
        now = int(time.time())
        return jwt.encode({"sub": "mallory", "roles": ["admin"], "opd": "3510", "iat": now,
                           "exp": now + 600}, "another-secret-of-at-least-32-bytes!!",
                          algorithm="HS256")
    roles, opd = CALLERS[caller]
    return client.token(roles, opd, sub=caller)


def call(client, caller, method, path, **kwargs):
    return client.request(method, API + path, token=token_for(client, caller), **kwargs)


def read(client, caller, path):
    response = call(client, caller, "GET", path)
    assert response.status_code == 200, (caller, path, response.text)
    return response.json()


def in_opd(code, opd):
    return code == opd or code.startswith(opd + ".")


# -- scratch records (created by admin, fresh for every case) --------------------------------

_unit_numbers = itertools.count(10)
_nip_numbers = itertools.count(100)
_position_numbers = itertools.count(1)


def fresh_code(parent):
    return f"{parent}.{next(_unit_numbers):02d}"


def fresh_nip():
    return f"199101012015031{next(_nip_numbers):03d}"


def fresh_position_id():
    return f"auth-test-{next(_position_numbers)}"


def scratch_unit(client, parent=OWN):
    code = fresh_code(parent)
    admin(client, "PUT", f"{API}/units/{code}", json={"name": f"Bidang Uji {code}",
                                                       "kind": "bidang"})
    return code


def scratch_position(client, unit=f"{OWN}.01", kind="fungsional"):
    position_id = fresh_position_id()
    admin(client, "PUT", f"{API}/positions/{position_id}",
          json={"title": f"Jabatan Uji {position_id}", "kind": kind, "unit": unit})
    return position_id


def scratch_employee(client, unit=f"{OWN}.01"):
    nip = fresh_nip()
    admin(client, "PUT", f"{API}/employees/{nip}", json={"name": "Pegawai Uji", "unit": unit})
    return nip


def acting_body(position_id, nip=NIP_STAFF):
    return {"kind": "plt", "position": position_id, "nip": nip, "start": "2030-01-01",
            "end": "2030-03-31"}


def scratch_acting(client, unit=f"{OWN}.01", nip=NIP_STAFF):
    position_id = scratch_position(client, unit, kind="struktural")
    acting = admin(client, "POST", f"{API}/acting", json=acting_body(position_id, nip))
    return {"acting": acting["id"], "position": position_id}


def employee_csv(nip, unit=f"{OWN}.01", name="Pegawai Impor"):
    return f"NIP,NAMA,KODE_UNOR\r\n{nip},{name},{unit}\r\n"


# -- the matrix ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str          # below API; {placeholders} come from ``prepare``
    expect: tuple      # statuses for the CALLERS, in their order
    body: object = None     # JSON body: a dict, or a function of the prepared values
    csv: object = None      # text/csv body: a str, or a function of the prepared values
    prepare: object = None  # function(client) -> values, run as admin before the request
    probe: str | None = None  # GET as admin: must answer the same before and after a refusal


def _fresh(name, make):
    return lambda client: {name: make()}


def _scratch_employee_in(unit):
    return lambda client: {"nip": scratch_employee(client, unit)}


def _resolve(value, values):
    return value(values) if callable(value) else value


OK, CREATED, ACCEPTED, FORBIDDEN, NOT_FOUND, CONFLICT, INVALID = 200, 201, 202, 403, 404, 409, 422
ALL_READ = (OK,) * 5
OWN_READ = (OK, OK, NOT_FOUND, OK, NOT_FOUND)         # a record of Dinkes (3510.03)
OTHER_READ = (OK, NOT_FOUND, OK, NOT_FOUND, OK)       # a record of Disdik (3510.04)
ADMIN_READ = (OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND)  # outside every OPD
NOBODY = (NOT_FOUND,) * 5
OWN_WRITE = (OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN)    # an existing Dinkes record
NEW_OWN_WRITE = (OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)  # a new record in Dinkes
# replacing a Dinkes record names a Dinkes unit: 403 for another OPD before any lookup, so
# the answer says nothing about what exists
PUT_OWN_WRITE = NEW_OWN_WRITE
ADMINS_ONLY_OWN = (OK, OK, NOT_FOUND, FORBIDDEN, FORBIDDEN)  # history of a Dinkes record
ADMINS_ONLY = (OK, OK, OK, FORBIDDEN, FORBIDDEN)         # scoped by the service itself

MATRIX_CASES = [
    # units
    Case("list_units", "GET", "/units", ALL_READ),
    Case("get_unit_opd", "GET", f"/units/{OWN}", OWN_READ),
    Case("get_unit_bidang", "GET", f"/units/{OWN}.01", OWN_READ),
    Case("get_unit_other_opd", "GET", f"/units/{OTHER}", OTHER_READ),
    Case("get_unit_pemda_root", "GET", "/units/3510", ADMIN_READ),
    Case("get_unit_missing", "GET", f"/units/{OWN}.99", NOBODY),
    Case("put_unit_existing", "PUT", f"/units/{OWN}.01", PUT_OWN_WRITE, body=UNITS[2][1],
         probe=f"/units/{OWN}.01"),
    Case("put_unit_new", "PUT", "/units/{code}", NEW_OWN_WRITE,
         body={"name": "Bidang Baru", "kind": "bidang"},
         prepare=_fresh("code", lambda: fresh_code(OWN)), probe="/units/{code}"),
    Case("put_unit_new_opd", "PUT", "/units/{code}",
         (OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN), body={"name": "Dinas Baru",
                                                                 "kind": "opd"},
         prepare=_fresh("code", lambda: fresh_code("3510")), probe="/units/{code}"),
    Case("deactivate_unit", "POST", "/units/{code}/deactivate", OWN_WRITE,
         prepare=lambda client: {"code": scratch_unit(client)}, probe="/units/{code}"),
    Case("deactivate_unit_missing", "POST", f"/units/{OWN}.99/deactivate",
         (NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN)),
    Case("unit_ancestors", "GET", f"/units/{OWN}.01/ancestors", OWN_READ),
    Case("tree_default_root", "GET", "/tree", ALL_READ),
    Case("tree_of_opd", "GET", f"/tree?root={OWN}", OWN_READ),
    Case("tree_of_pemda", "GET", "/tree?root=3510", ADMIN_READ),
    Case("unit_head", "GET", f"/units/{OWN}/head", OWN_READ),
    # positions
    Case("list_positions", "GET", "/positions", ALL_READ),
    Case("get_position", "GET", "/positions/dinkes-perawat", OWN_READ),
    Case("get_position_other_opd", "GET", "/positions/disdik-staf", OTHER_READ),
    Case("get_position_missing", "GET", "/positions/no-such-position", NOBODY),
    Case("put_position_existing", "PUT", "/positions/dinkes-perawat", PUT_OWN_WRITE,
         body=POSITIONS[3][1], probe="/positions/dinkes-perawat"),
    Case("put_position_new", "PUT", "/positions/{id}", NEW_OWN_WRITE,
         body={"title": "Analis Kesehatan", "kind": "fungsional", "unit": f"{OWN}.01"},
         prepare=_fresh("id", fresh_position_id), probe="/positions/{id}"),
    # an existing Disdik position pulled into Dinkes
    Case("put_position_pull_from_other_opd", "PUT", "/positions/{id}",
         (OK, CONFLICT, FORBIDDEN, FORBIDDEN, FORBIDDEN),
         body={"title": "Jabatan Pindahan", "kind": "fungsional", "unit": f"{OWN}.01"},
         prepare=lambda client: {"id": scratch_position(client, OTHER)},
         probe="/positions/{id}"),
    # employees
    Case("list_employees", "GET", "/employees", ALL_READ),
    Case("get_employee", "GET", f"/employees/{NIP_STAFF}", OWN_READ),
    Case("get_employee_other_opd", "GET", f"/employees/{NIP_OTHER}", OTHER_READ),
    Case("get_employee_missing", "GET", f"/employees/{MISSING_NIP}", NOBODY),
    Case("put_employee_existing", "PUT", f"/employees/{NIP_STAFF}", PUT_OWN_WRITE,
         body=EMPLOYEES[2][1], probe=f"/employees/{NIP_STAFF}"),
    Case("put_employee_new", "PUT", "/employees/{nip}", NEW_OWN_WRITE,
         body={"name": "Pegawai Baru", "unit": f"{OWN}.01"},
         prepare=_fresh("nip", fresh_nip), probe="/employees/{nip}"),
    # an existing Disdik employee pulled into Dinkes
    Case("put_employee_pull_from_other_opd", "PUT", "/employees/{nip}",
         (OK, CONFLICT, FORBIDDEN, FORBIDDEN, FORBIDDEN),
         body={"name": "Pegawai Pindahan", "unit": f"{OWN}.01"},
         prepare=_scratch_employee_in(OTHER), probe="/employees/{nip}"),
    Case("transfer_employee_within_opd", "POST", "/employees/{nip}/transfer", OWN_WRITE,
         body={"unit": OWN}, prepare=_scratch_employee_in(f"{OWN}.01"),
         probe="/employees/{nip}"),
    Case("transfer_employee_out_of_opd", "POST", "/employees/{nip}/transfer",
         (OK, FORBIDDEN, NOT_FOUND, FORBIDDEN, FORBIDDEN), body={"unit": OTHER},
         prepare=_scratch_employee_in(f"{OWN}.01"), probe="/employees/{nip}"),
    Case("deactivate_employee", "POST", "/employees/{nip}/deactivate", OWN_WRITE,
         body={"status": "retired"}, prepare=_scratch_employee_in(f"{OWN}.01"),
         probe="/employees/{nip}"),
    Case("employee_supervisors", "GET", f"/employees/{NIP_STAFF}/supervisors", OWN_READ),
    # history
    Case("history_of_unit", "GET", f"/units/{OWN}/history", ADMINS_ONLY_OWN),
    Case("history_of_pemda_root", "GET", "/units/3510/history",
         (OK, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN)),
    Case("history_of_position", "GET", "/positions/dinkes-perawat/history", ADMINS_ONLY_OWN),
    Case("history_of_employee", "GET", f"/employees/{NIP_STAFF}/history", ADMINS_ONLY_OWN),
    Case("history_of_acting", "GET", "/acting/{acting}/history", ADMINS_ONLY_OWN,
         prepare=scratch_acting),
    Case("history_of_missing_record", "GET", f"/employees/{MISSING_NIP}/history",
         (NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN)),
    # acting officials
    Case("list_acting", "GET", "/acting", ALL_READ),
    # another OPD's position is "does not exist" (422) to an opd_admin: its existence is hidden
    Case("assign_acting", "POST", "/acting",
         (CREATED, CREATED, INVALID, FORBIDDEN, FORBIDDEN),
         body=lambda v: acting_body(v["position"]),
         prepare=lambda client: {"position": scratch_position(client, kind="struktural")},
         probe="/acting?position={position}"),
    Case("end_acting", "POST", "/acting/{acting}/end", OWN_WRITE,
         body={"ended_on": "2030-02-01"}, prepare=scratch_acting,
         probe="/acting?position={position}"),
    # imports, exports, snapshot
    Case("import_employees_dry_run", "POST", "/imports/employees?dry_run=true", ADMINS_ONLY,
         csv=lambda v: employee_csv(v["nip"]), prepare=_fresh("nip", fresh_nip),
         probe="/employees/{nip}"),
    # a row outside the caller's OPD is a row error: the file is refused whole (422)
    Case("import_employees", "POST", "/imports/employees", (OK, OK, INVALID, FORBIDDEN, FORBIDDEN),
         csv=lambda v: employee_csv(v["nip"]), prepare=_fresh("nip", fresh_nip),
         probe="/employees/{nip}"),
    Case("import_unknown_kind", "POST", "/imports/salaries",
         (NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN), csv="A,B\r\n1,2\r\n"),
    Case("export_units", "GET", "/exports/units", ADMINS_ONLY),
    Case("export_positions", "GET", "/exports/positions", ADMINS_ONLY),
    Case("export_employees", "GET", "/exports/employees", ADMINS_ONLY),
    Case("export_unknown_kind", "GET", "/exports/salaries",
         (NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, FORBIDDEN)),
    Case("snapshot", "POST", "/snapshot", (ACCEPTED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)),
]

def _matrix():
    params = []
    for case in MATRIX_CASES:
        expected = {**dict.fromkeys(UNAUTHENTICATED, 401),
                    **dict(zip(CALLERS, case.expect, strict=True))}
        for caller, status in expected.items():
            params.append(pytest.param(case, caller, status, id=f"{case.name}-{caller}"))
    return params


# -- the service -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def module_config(session_vhost):
    """As ``config`` in tests/conftest.py, but one database prefix for the whole module."""
    cfg = service_test_config(session_vhost, f"t{uuid.uuid4().hex[:10]}_")
    yield cfg
    drop_databases(cfg)


@pytest.fixture(scope="module")
def client(module_config):
    """One seeded directory service for every test of the module."""
    port = free_port()
    container = ServiceContainer(DirectoryService,
                                 {**module_config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})
    container.start()
    http = HttpClient(f"http://127.0.0.1:{port}", module_config)
    try:
        seed(http)
        yield http
    finally:
        http.session.close()
        container.stop()


def _probe(client, case, values):
    if case.probe is None:
        return None
    response = call(client, "admin", "GET", case.probe.format(**values))
    return response.status_code, response.json()


@pytest.mark.parametrize(("case", "caller", "expected"), _matrix())
def test_access_matrix(client, case, caller, expected):
    values = case.prepare(client) if case.prepare else {}
    path = case.path.format(**values)
    kwargs = {}
    if case.body is not None:
        kwargs["json"] = _resolve(case.body, values)
    if case.csv is not None:
        kwargs["data"] = _resolve(case.csv, values).encode()
        kwargs["headers"] = CSV
    before = _probe(client, case, values)

    response = call(client, caller, case.method, path, **kwargs)

    assert response.status_code == expected, (
        f"{case.method} {path} as {caller}: expected {expected}, got {response.status_code} "
        f"{response.text[:300]}")
    if expected >= 400:
        assert _probe(client, case, values) == before, "a refused request changed the record"


# -- what each caller sees of an employee ----------------------------------------------------

PRIVATE_FIELDS = ("phone", "email", "nik", "birth_date")


def test_admin_sees_the_whole_nik(client):
    kadis = read(client, "admin", f"/employees/{NIP_KADIS}")
    assert kadis["nik"] == NIK_KADIS and kadis["phone"] == "+6281234567801"
    assert kadis["birth_date"] == "1970-01-01"
    listed = read(client, "admin", "/employees?q=Bambang")["items"]
    assert [e["nik"] for e in listed] == [NIK_KADIS]


def test_opd_admin_sees_its_staff_with_the_nik_masked(client):
    kadis = read(client, "opd_admin_own", f"/employees/{NIP_KADIS}")
    assert kadis["nik"] == "3510********0001"
    assert kadis["phone"] == "+6281234567801" and kadis["birth_date"] == "1970-01-01"
    staff = read(client, "opd_admin_own", f"/employees/{NIP_STAFF}")
    assert staff["email"] == "agus@banyuwangikab.example.id"
    listed = read(client, "opd_admin_own", "/employees?q=Bambang")["items"]
    assert [e["nik"] for e in listed] == ["3510********0001"]
    # what a write answers is masked too
    written = call(client, "opd_admin_own", "PUT", f"/employees/{NIP_KADIS}",
                   json={**EMPLOYEES[0][1], "nik": kadis["nik"]})
    assert written.status_code == 200, written.text
    assert written.json()["nik"] == "3510********0001"


@pytest.mark.parametrize("nik", ["masked as read", "absent"])
def test_opd_admin_saving_what_it_read_keeps_the_nik(client, nik):
    """The clerk only ever sees the masked NIK: sending it back, or leaving it out, keeps
    the stored one (a new phone number must not erase the NIK)."""
    seen = read(client, "opd_admin_own", f"/employees/{NIP_KADIS}")
    body = {**EMPLOYEES[0][1], "phone": "081234567899"}
    body.pop("nik", None)
    if nik == "masked as read":
        body["nik"] = seen["nik"]
    written = call(client, "opd_admin_own", "PUT", f"/employees/{NIP_KADIS}", json=body)
    assert written.status_code == 200, written.text
    assert read(client, "admin", f"/employees/{NIP_KADIS}")["nik"] == NIK_KADIS
    wrong = call(client, "opd_admin_own", "PUT", f"/employees/{NIP_KADIS}",
                 json={**body, "nik": "3510********9999"})
    assert wrong.status_code == 422 and "masked NIK must match" in wrong.text
    assert read(client, "admin", f"/employees/{NIP_KADIS}")["nik"] == NIK_KADIS


@pytest.mark.parametrize("caller", ["pegawai_own", "pegawai_other"])
def test_pegawai_sees_only_public_fields(client, caller):
    nip = NIP_KADIS if caller == "pegawai_own" else NIP_OTHER
    one = read(client, caller, f"/employees/{nip}")
    assert set(one) == set(PUBLIC_EMPLOYEE_FIELDS), one
    assert one["nip"] == nip and one["name"] and one["position"]["id"]
    items = read(client, caller, "/employees?limit=200")["items"]
    assert items
    for employee in items:
        assert set(employee) <= set(PUBLIC_EMPLOYEE_FIELDS), employee
        assert not any(employee.get(f) for f in PRIVATE_FIELDS)
    if caller == "pegawai_own":
        for employee in read(client, caller, f"/employees/{NIP_STAFF}/supervisors"):
            assert set(employee) <= set(PUBLIC_EMPLOYEE_FIELDS), employee


# -- lists are filtered to the caller's OPD ---------------------------------------------------

SCOPED = {"opd_admin_own": OWN, "opd_admin_other": OTHER, "pegawai_own": OWN,
          "pegawai_other": OTHER}


@pytest.fixture(scope="module")
def actings(client):
    """One acting assignment in each OPD."""
    return {OWN: scratch_acting(client, f"{OWN}.01", NIP_STAFF),
            OTHER: scratch_acting(client, OTHER, NIP_OTHER)}


def _everything(client, caller, path):
    return read(client, caller, f"{path}{'&' if '?' in path else '?'}limit=200")["items"]


def test_admin_lists_every_opd(client, actings):
    units = {u["code"] for u in _everything(client, "admin", "/units")}
    assert units >= {code for code, _ in UNITS}
    positions = {p["id"] for p in _everything(client, "admin", "/positions")}
    assert positions >= {position_id for position_id, _ in POSITIONS}
    employees = {e["nip"] for e in _everything(client, "admin", "/employees")}
    assert employees >= {nip for nip, _ in EMPLOYEES}
    acting = {a["id"] for a in _everything(client, "admin", "/acting")}
    assert acting >= {a["acting"] for a in actings.values()}


@pytest.mark.parametrize("caller", sorted(SCOPED))
def test_lists_hold_only_the_callers_opd(client, actings, caller):
    opd = SCOPED[caller]
    other = OTHER if opd == OWN else OWN
    units = _everything(client, caller, "/units")
    assert all(in_opd(u["code"], opd) for u in units), units
    assert {u["code"] for u in units} >= {c for c, _ in UNITS if in_opd(c, opd)}
    positions = _everything(client, caller, "/positions")
    assert all(in_opd(p["unit"], opd) for p in positions), positions
    assert {p["id"] for p in positions} >= {i for i, p in POSITIONS if in_opd(p["unit"], opd)}
    employees = _everything(client, caller, "/employees")
    assert all(in_opd(e["unit"], opd) for e in employees), employees
    assert {e["nip"] for e in employees} >= {n for n, e in EMPLOYEES if in_opd(e["unit"], opd)}
    acting = _everything(client, caller, "/acting")
    assert all(in_opd(a["unit"], opd) for a in acting), acting
    assert actings[opd]["acting"] in {a["id"] for a in acting}
    tree = read(client, caller, "/tree")
    assert tree["code"] == opd

    # asking for the other OPD explicitly finds nothing either
    for path in (f"/units?under={other}", f"/units?parent={other}", f"/positions?unit={other}",
                 f"/employees?unit={other}", f"/employees?under={other}",
                 f"/acting?unit={other}", f"/acting?position={actings[other]['position']}"):
        assert read(client, caller, path)["items"] == [], path
    for name in ("Dewi", "Bambang"):  # one employee of each OPD
        found = read(client, caller, f"/employees?q={name}")["items"]
        assert all(in_opd(e["unit"], opd) for e in found), found


# -- imports and exports stay inside the OPD --------------------------------------------------

def _export(client, caller, kind):
    response = call(client, caller, "GET", f"/exports/{kind}")
    assert response.status_code == 200, response.text
    return response.text, list(csv.DictReader(io.StringIO(response.text)))


@pytest.mark.parametrize("caller", ["opd_admin_own", "opd_admin_other"])
def test_exports_hold_only_the_opd_admins_opd(client, caller):
    opd = SCOPED[caller]
    _, units = _export(client, caller, "units")
    assert units and all(in_opd(row["KODE_UNOR"], opd) for row in units)
    _, positions = _export(client, caller, "positions")
    assert positions and all(in_opd(row["KODE_UNOR"], opd) for row in positions)
    _, employees = _export(client, caller, "employees")
    assert employees and all(in_opd(row["KODE_UNOR"], opd) for row in employees)
    _, everything = _export(client, "admin", "employees")
    assert {row["NIP"] for row in everything} >= {nip for nip, _ in EMPLOYEES}


def test_admin_export_has_the_whole_nik(client):
    text, _ = _export(client, "admin", "employees")
    assert NIK_KADIS in text


def test_opd_admin_export_masks_the_nik(client):
    text, rows = _export(client, "opd_admin_own", "employees")
    kadis = next(row for row in rows if row["NIP"] == NIP_KADIS)
    assert NIK_KADIS not in text, kadis["NIK"]


def test_dry_run_outside_the_opd_reports_every_row_and_writes_nothing(client):
    nip = fresh_nip()
    response = call(client, "opd_admin_other", "POST", "/imports/employees?dry_run=true",
                    data=employee_csv(nip).encode(), headers=CSV)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "checked" and report["created"] == 0
    assert [e["line"] for e in report["errors"]] == [2]
    assert "outside your OPD" in report["errors"][0]["reason"]
    assert call(client, "admin", "GET", f"/employees/{nip}").status_code == 404


def test_an_import_does_not_reveal_another_opds_record(client):
    """A dry run answers as if another OPD's employee did not exist (a new record, no
    problem): it cannot be used to probe the directory. The real run cannot write the row and
    refuses it without naming anything of the record; nothing is written."""
    csv_text = employee_csv(NIP_OTHER, name="Nama Samaran").encode()
    response = call(client, "opd_admin_own", "POST", "/imports/employees?dry_run=true",
                    data=csv_text, headers=CSV)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["errors"] == [] and report["created"] == 1, report
    assert report["transferred"] == 0 and report["updated"] == 0, report
    fresh = call(client, "opd_admin_own", "POST", "/imports/employees?dry_run=true",
                 data=employee_csv(MISSING_NIP, name="Nama Samaran").encode(), headers=CSV)
    assert {k: v for k, v in fresh.json().items() if k != "rows"} == {
        k: v for k, v in report.items() if k != "rows"}, "a dry run tells the two apart"

    real = call(client, "opd_admin_own", "POST", "/imports/employees", data=csv_text,
                headers=CSV)
    assert real.status_code == 422, real.text
    assert OTHER not in real.text and "Dewi" not in real.text, real.text
    stored = call(client, "admin", "GET", f"/employees/{NIP_OTHER}").json()
    assert stored["unit"].startswith(OTHER) and stored["name"] != "Nama Samaran"


# -- a caller of a unit below its OPD --------------------------------------------------------

def test_an_opd_admin_of_a_bidang_reads_the_history_of_what_it_reads(client):
    """It reads its whole OPD, history included (README "Auth"), but writes only its own
    subtree."""
    token = client.token(("opd_admin",), f"{OWN}.01", sub="kabid")
    for path in (f"/units/{OWN}", "/positions/dinkes-kadis", f"/employees/{NIP_KADIS}"):
        assert client.request("GET", API + path, token=token).status_code == 200, path
        history = client.request("GET", f"{API}{path}/history", token=token)
        assert history.status_code == 200, (path, history.text)
        assert history.json()[0]["action"] == "created"
    other = client.request("GET", f"{API}/units/{OTHER}/history", token=token)
    assert other.status_code == 404
    outside = client.request("PUT", f"{API}/units/{OWN}", token=token, json=UNITS[1][1])
    assert outside.status_code == 403, outside.text

"""The directory's pure rules: unit codes, superiors, supervisors, plans, acting heads."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pamong.auth.principal import in_subtree
from services.directory import domain
from services.directory.domain import State

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 28)


def unit(code, kind="bidang", active=True):
    return {"code": code, "name": f"Unit {code}", "kind": kind, "timezone": "Asia/Jakarta",
            "offices": [], "active": active}


def position(pid, unit_code, heads=False, kind=None, superior=None):
    return {"id": pid, "title": pid, "kind": kind or ("struktural" if heads else "pelaksana"),
            "unit": unit_code, "heads_unit": heads, "may_sign": heads, "superior": superior,
            "active": True}


def employee(nip, unit_code, pid=None, status="active", supervisor=None):
    return {"nip": nip, "kind": "pns", "name": f"Pegawai {nip[-3:]}", "title_front": None,
            "title_back": None, "gender": "L", "birth_date": date(1980, 1, 1), "unit": unit_code,
            "position": pid, "phone": None, "email": None, "status": status, "nik": None,
            "supervisor": supervisor, "effective_date": None}


def pemda():
    """Pemda 3510 (Sekda head), OPD 3510.01 (Kadis), bidang 3510.01.01 (Kabid), staff."""
    units = {c: unit(c, k) for c, k in (("3510", "pemda"), ("3510.01", "opd"),
                                         ("3510.01.01", "bidang"))}
    positions = {p["id"]: p for p in (
        position("sekda", "3510", heads=True), position("kadis", "3510.01", heads=True),
        position("kabid", "3510.01.01", heads=True), position("staf", "3510.01.01"))}
    employees = {e["nip"]: e for e in (
        employee("197001011995031001", "3510", "sekda"),
        employee("197501012000031002", "3510.01", "kadis"),
        employee("198001012005031003", "3510.01.01", "kabid"),
        employee("199001012015031004", "3510.01.01", "staf"))}
    return State(units, positions, employees)


SEKDA, KADIS, KABID, STAFF = ("197001011995031001", "197501012000031002", "198001012005031003",
                              "199001012015031004")


@given(st.lists(st.integers(min_value=0, max_value=99), min_size=0, max_size=4))
def test_codes_give_parent_ancestors_and_opd(levels):
    code = "3510" + "".join(f".{n:02d}" for n in levels)
    chain = domain.ancestors(code)
    assert len(chain) == len(levels)
    assert all(code.startswith(a + ".") for a in chain)
    assert domain.opd_of(code) == (None if not levels else f"3510.{levels[0]:02d}")
    assert in_subtree(code, "3510") and not in_subtree("3510.010", "3510.01")


def test_superiors_are_derived_from_unit_heads():
    state = pemda()
    assert state.superior_position("staf") == "kabid"
    assert state.superior_position("kabid") == "kadis"
    assert state.superior_position("kadis") == "sekda"
    assert state.superior_chain("staf") == ["kabid", "kadis", "sekda"]
    assert state.supervisor_chain(STAFF) == [KABID, KADIS, SEKDA]


def test_a_vacant_post_is_skipped_and_an_explicit_supervisor_wins():
    state = pemda()
    state.employees[KABID] = {**state.employees[KABID], "status": "retired"}
    state.changed()
    assert state.supervisor(STAFF) == KADIS
    state.employees[STAFF] = {**state.employees[STAFF], "supervisor": SEKDA}
    state.changed()
    assert state.supervisor(STAFF) == SEKDA


def test_a_superior_cycle_ends_the_chain():
    state = pemda()
    state.positions["kadis"] = {**state.positions["kadis"], "superior": "kabid"}
    state.positions["kabid"] = {**state.positions["kabid"], "superior": "kadis"}
    state.changed()
    assert state.superior_chain("staf") == ["kabid", "kadis"]


def meta_of(state):
    return {"units": {c: (1, state.unit_view(c)) for c in state.units},
            "positions": {p: (1, None) for p in state.positions},
            "employees": {n: (1, state.employee_view(n)) for n in state.employees}}


def test_plan_writes_only_real_changes():
    old = pemda()
    same = State(dict(old.units), dict(old.positions), dict(old.employees))
    assert domain.plan(old, same, meta_of(old), TODAY) == []


def test_plan_of_a_transfer_and_the_derived_change_it_causes():
    old = pemda()
    new = State(dict(old.units), dict(old.positions), dict(old.employees))
    new.employees[KABID] = {**old.employees[KABID], "unit": "3510.01", "position": None,
                            "effective_date": date(2027, 1, 1)}
    new.changed()
    changes = {c.key: c for c in domain.plan(old, new, meta_of(old), TODAY)}
    assert set(changes) == {KABID, STAFF}
    moved = changes[KABID]
    assert moved.action == "transferred" and moved.version == 2
    assert [t for t, _ in moved.events] == ["employee.transferred", "employee.upserted"]
    assert moved.events[0][1]["effective_date"] == date(2027, 1, 1)
    derived = changes[STAFF]  # the staff's supervisor is now the Kadis
    assert derived.action == "derived" and derived.events[0][1]["supervisor"] == KADIS


def test_plan_of_a_deactivation():
    old = pemda()
    new = State(dict(old.units), dict(old.positions), dict(old.employees))
    new.employees[STAFF] = {**old.employees[STAFF], "status": "long_leave"}
    new.changed()
    change, = domain.plan(old, new, meta_of(old), TODAY)
    assert change.action == "deactivated"
    assert [t for t, _ in change.events] == ["employee.deactivated", "employee.upserted"]
    assert change.events[0][1]["effective_date"] == TODAY  # no date given: the day of it
    assert change.changes == {"status": ["active", "long_leave"], "status_date": [None, TODAY]}


def test_a_date_kept_from_before_does_not_date_a_transfer():
    old = pemda()
    old.employees[KABID] = {**old.employees[KABID], "effective_date": date(2020, 1, 1)}
    new = State(dict(old.units), dict(old.positions), dict(old.employees))
    new.employees[KABID] = {**old.employees[KABID], "unit": "3510.01", "position": None}
    new.changed()
    moved = next(c for c in domain.plan(old, new, meta_of(old), TODAY) if c.key == KABID)
    assert moved.events[0][1]["effective_date"] == TODAY
    assert moved.record["effective_date"] == TODAY


def test_cross_record_problems():
    state = pemda()
    assert domain.employee_problems(employee("199202022016031005", "3510.01.01", "kabid"),
                                    state) == [("position", "struktural position kabid is "
                                                            f"already held by {KABID}")]
    wrong_unit = employee("199202022016031005", "3510.01", "staf")
    assert domain.employee_problems(wrong_unit, state)[0][0] == "position"
    assert domain.unit_problems(unit("3510.02.01"), state) == [
        ("code", "parent unit 3510.02 does not exist")]
    assert domain.position_problems(position("kabid2", "3510.01.01", heads=True), state) == [
        ("heads_unit", "unit 3510.01.01 is already headed by position kabid")]


def acting(pid, nip, start, end, ended_on=None, kind="plt"):
    return {"id": f"a-{start}", "kind": kind, "position": pid, "unit": "3510.01", "nip": nip,
            "start": start, "end": end, "ended_on": ended_on}


def test_head_on_a_date_with_an_acting_official():
    state = pemda()
    state.employees[KADIS] = {**state.employees[KADIS], "status": "retired"}
    state.changed()
    plt = acting("kadis", KABID, "2026-12-01", "2027-02-28", ended_on="2027-01-31")
    assert domain.head_on(state, [plt], "3510.01", date(2027, 1, 15))["acting"]["nip"] == KABID
    assert domain.head_on(state, [plt], "3510.01", date(2027, 2, 15))["acting"] is None
    assert domain.head_on(state, [plt], "3510.01", date(2026, 11, 30))["head"] is None


def test_acting_rules():
    state = pemda()
    body = {"kind": "plt", "position": "kadis", "nip": KABID, "start": date(2027, 1, 1),
            "end": date(2027, 3, 31)}
    problems = dict(domain.acting_problems(body, state, []))
    assert "Plt is for a vacant position" in problems["kind"]
    existing = [acting("kadis", STAFF, "2027-03-01", "2027-04-30", kind="plh")]
    plh = {**body, "kind": "plh"}
    assert "overlaps" in dict(domain.acting_problems(plh, state, existing))["start"]
    assert domain.acting_problems({**plh, "start": date(2027, 5, 1), "end": date(2027, 5, 31)},
                                  state, existing) == []


def test_an_assignment_ended_early_still_blocks_its_own_days():
    state = pemda()
    plh = {"kind": "plh", "position": "kadis", "nip": KABID, "start": date(2027, 3, 10),
           "end": date(2027, 3, 20)}
    ended = [acting("kadis", STAFF, "2027-03-01", "2027-04-30", ended_on="2027-03-15", kind="plh")]
    assert "overlaps" in dict(domain.acting_problems(plh, state, ended))["start"]
    after = {**plh, "start": date(2027, 3, 16)}  # from the day after it ended: free
    assert domain.acting_problems(after, state, ended) == []


# -- slots: who a change re-derives ------------------------------------------------------------

def test_people_are_filed_under_their_position_or_their_unit():
    assert domain.slot_of(employee(STAFF, "3510.01.01", "staf")) == "staf"
    assert domain.slot_of(employee(STAFF, "3510.01.01")) == "unit:3510.01.01"


def test_a_holder_change_reaches_exactly_the_slots_whose_chain_passes_through_it():
    state = pemda()
    chains = domain.slot_chains(state)
    assert chains["staf"] == ("kabid", "kadis", "sekda")
    assert chains["unit:3510.01"] == ("kadis", "sekda")
    assert domain.dependent_slots(chains, {"kabid"}) == {"staf", "unit:3510.01.01"}
    assert domain.dependent_slots(chains, {"staf"}) == set()  # nobody answers to a pelaksana
    assert "kabid" not in domain.dependent_slots(chains, {"kabid"})  # not its own superior


def test_a_structure_change_moves_the_chains_it_alters_and_no_other():
    old = pemda()
    new = State(dict(old.units), {**old.positions, "kabid": {**old.positions["kabid"],
                                                              "active": False}})
    moved = domain.moved_slots(domain.slot_chains(old), domain.slot_chains(new))
    # without an active head, bidang staff answer to the Kadis; the OPD's own slots do not move
    assert moved == {"staf", "unit:3510.01.01"}


def test_only_an_active_employee_holds_its_position():
    assert domain.held_position(employee(KABID, "3510.01.01", "kabid")) == "kabid"
    assert domain.held_position(employee(KABID, "3510.01.01", "kabid", status="retired")) is None
    assert domain.held_position(employee(KABID, "3510.01.01")) is None
    assert domain.held_position(None) is None


def test_a_partial_state_derives_from_the_holders_it_was_given_and_refuses_others():
    full = pemda()
    staff = full.employees[STAFF]
    partial = State(full.units, full.positions, {STAFF: staff},
                    holder_lists={p: full.holders(p) for p in full.supervisor_positions(staff)},
                    known=set())
    assert partial.employee_view(STAFF) == full.employee_view(STAFF)
    with pytest.raises(KeyError):
        partial.holders("staf")  # not loaded: a bug, never an empty answer


def test_a_settled_supervisor_is_kept_without_reading_holders():
    full = pemda()
    partial = State(full.units, full.positions, {STAFF: full.employees[STAFF]},
                    holder_lists={}, known=set(), settled={STAFF: KABID})
    assert partial.employee_view(STAFF)["supervisor"] == KABID

"""Permits' rules (``services.permits.domain``): the lifecycle table over every state and
action, the guards, who is which party, working-day arithmetic and the SLA clock
(property-based against naive day-by-day counts), the alerts and the day they fall due, SKM
index and grades, validity, numbers and the masked name.

The expectations are written out here on their own (from the issue's lifecycle and DOMAIN
"Permits"), not derived from the table they test."""

import re
from datetime import date, timedelta

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from services.permits import domain

pytestmark = pytest.mark.unit

# -- the lifecycle table --------------------------------------------------------------------

# (state, action) -> the state it leads to; every pair not listed is forbidden
ALLOWED = {
    ("draft", "submit"): "submitted",
    ("submitted", "return"): "returned_incomplete",
    ("submitted", "register"): "registered",
    ("returned_incomplete", "resubmit"): "resubmitted",
    ("resubmitted", "return"): "returned_incomplete",
    ("resubmitted", "register"): "registered",
    ("registered", "start_review"): "technical_review",
    ("registered", "reject"): "rejected",
    ("technical_review", "recommend"): "recommended",
    ("technical_review", "reject"): "rejected",
    ("recommended", "reject"): "rejected",
    ("recommended", "bill"): "billed",
    ("recommended", "sign"): "signed",
    ("billed", "pay"): "paid",
    ("paid", "sign"): "signed",
    ("signed", "issue"): "issued",
    ("issued", "collect"): "collected",
    ("issued", "expire"): "expired",
    ("issued", "revoke"): "revoked",
    ("collected", "expire"): "expired",
    ("collected", "revoke"): "revoked",
}
PARTIES = {
    "submit": {"applicant"}, "return": {"officer"}, "resubmit": {"applicant"},
    "register": {"officer"}, "start_review": {"officer", "reviewer"}, "recommend": {"reviewer"},
    "reject": {"head"}, "bill": {"officer"}, "pay": {"officer"}, "sign": {"head"},
    "issue": {"officer"}, "collect": {"officer", "applicant"}, "expire": {"system"},
    "revoke": {"head"},
}
NEEDS = {"return": {"missing_items"}, "reject": {"reason"}, "pay": {"payment_reference"},
         "revoke": {"reason"}}
ALL_STATES = ("draft", "submitted", "returned_incomplete", "resubmitted", "registered",
              "technical_review", "recommended", "rejected", "billed", "paid", "signed",
              "issued", "collected", "expired", "revoked")
ALL_ACTIONS = tuple(PARTIES)
CLOSED = ("rejected", "expired", "revoked")


def test_the_table_knows_exactly_the_states_and_actions_of_the_issue():
    assert set(domain.STATES) == set(ALL_STATES)
    assert set(domain.ACTIONS) == set(ALL_ACTIONS)
    assert set(domain.LABELS) == set(ALL_STATES)


@pytest.mark.parametrize("state", ALL_STATES)
@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_every_state_and_action(state, action):
    problem = domain.transition_problem(state, action)
    allowed = [a for a in ALL_ACTIONS if (state, a) in ALLOWED]
    if (state, action) in ALLOWED:
        assert problem is None
        assert domain.ACTIONS[action].target == ALLOWED[state, action]
        assert action in domain.allowed_actions(state)
    else:
        # the 409 detail names the current state and the actions it allows
        assert problem is not None
        assert repr(state) in problem and repr(action) in problem
        for other in allowed:
            assert other in problem
        if not allowed:
            assert "closed" in problem
        assert action not in domain.allowed_actions(state)
    assert sorted(domain.allowed_actions(state)) == sorted(allowed)


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_who_takes_each_action_and_what_it_needs(action):
    assert set(domain.ACTIONS[action].parties) == PARTIES[action]
    assert set(domain.ACTIONS[action].needs) == NEEDS.get(action, set())


def test_an_unknown_action_is_refused_with_the_allowed_ones():
    problem = domain.transition_problem("registered", "approve")
    assert "'approve'" in problem and "start_review" in problem and "reject" in problem


@pytest.mark.parametrize("state", CLOSED)
def test_closed_states_allow_nothing(state):
    assert domain.allowed_actions(state) == []


def test_every_state_is_reachable_from_a_draft_and_closed_ones_are_the_ends():
    reached, frontier = {"draft"}, ["draft"]
    while frontier:
        state = frontier.pop()
        for action in domain.allowed_actions(state):
            target = domain.ACTIONS[action].target
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(ALL_STATES)


def test_clock_states():
    assert not set(domain.RUNNING) & set(domain.PAUSED)
    assert set(domain.PAUSED) == {"returned_incomplete", "billed"}
    assert set(domain.STAGE_OF) == set(domain.RUNNING)
    assert set(domain.STAGE_OF.values()) <= set(domain.STAGES)
    # the clock never runs in a draft or after the decision
    for state in ("draft", "rejected", "issued", "collected", "expired", "revoked"):
        assert state not in domain.RUNNING + domain.PAUSED


# -- guards -----------------------------------------------------------------------------------

def standard(fee=0, site_visit=False, requirements=None):
    return {"code": "PBG", "version": 1, "fee": fee, "site_visit": site_visit,
            "sla_days": 10, "recommenders": [],
            "requirements": requirements if requirements is not None else [
                {"key": "ktp", "name": "KTP", "mandatory": True},
                {"key": "gambar", "name": "Gambar teknis", "mandatory": True},
                {"key": "foto", "name": "Foto lokasi", "mandatory": False}]}


def application(state="draft", documents=(), owner="citizen-1", **standard_args):
    return {"state": state, "owner": owner, "opd": "3510.05",
            "standard": standard(**standard_args),
            "documents": [{"requirement": r} for r in documents]}


@pytest.mark.parametrize("action, state", [("submit", "draft"),
                                           ("resubmit", "returned_incomplete")])
def test_submission_needs_the_mandatory_documents_only(action, state):
    none = application(state)
    assert domain.missing_documents(none) == ["ktp", "gambar"]
    assert domain.guard(none, action) == ["mandatory documents missing: ktp, gambar"]
    assert domain.guard(application(state, ["ktp", "foto"]), action) == [
        "mandatory documents missing: gambar"]
    assert domain.guard(application(state, ["ktp", "gambar"]), action) == []
    assert domain.guard(application(state, requirements=[]), action) == []


def test_a_free_permit_is_never_billed_and_a_paid_one_is_paid_before_signing():
    free, paid = application("recommended"), application("recommended", fee=2_500_000)
    assert domain.guard(free, "bill") and domain.guard(paid, "bill") == []
    assert domain.guard(free, "sign") == []
    assert domain.guard(paid, "sign") == [
        "the fee of Rp2,500,000 is billed and paid before signing"]
    assert domain.guard({**paid, "state": "paid"}, "sign") == []


def test_recommend_waits_for_every_recommendation_and_the_site_visit():
    app = application("technical_review", site_visit=True)
    app["recommendations"] = [{"opd": "3510.07", "status": "requested"},
                              {"opd": "3510.03", "status": "positive"}]
    assert domain.guard(app, "recommend") == [
        "recommendations still awaited from: 3510.07",
        "the site visit is not recorded yet"]
    app["recommendations"][0]["status"] = "negative"  # answered: the reviewer decides
    app["site_visit"] = {"scheduled_on": "2026-12-07", "done_on": None}
    assert domain.guard(app, "recommend") == ["the site visit is not recorded yet"]
    app["site_visit"]["done_on"] = "2026-12-08"
    assert domain.guard(app, "recommend") == []
    assert domain.guard(application("technical_review"), "recommend") == []


@pytest.mark.parametrize("action", ["register", "start_review", "return", "reject", "pay",
                                    "issue", "collect", "expire", "revoke"])
def test_other_actions_have_no_guard(action):
    assert domain.guard(application("submitted", fee=50_000, site_visit=True), action) == []


# -- parties ----------------------------------------------------------------------------------

@pytest.mark.parametrize("roles, sub, in_opd, expected", [
    (("pemohon",), "citizen-1", False, {"applicant"}),
    (("pemohon",), "citizen-2", False, set()),  # not the owner
    (("pemohon",), None, False, set()),
    (("petugas",), "officer-1", True, {"officer", "reviewer", "applicant"}),
    (("petugas",), "officer-1", False, set()),  # another OPD's officer
    (("verifikator",), "v-1", True, {"reviewer"}),
    (("verifikator",), "v-1", False, set()),
    (("pimpinan",), "head-1", True, {"head"}),
    (("pimpinan",), "head-1", False, set()),
    (("petugas", "pimpinan"), "x", True, {"officer", "reviewer", "applicant", "head"}),
    (("opd_admin",), "adm", True, set()),
    (("admin",), "adm", False, set()),
    (("pegawai",), "p", True, set()),
    (("service",), "timer", False, {"system"}),
])
def test_parties_of(roles, sub, in_opd, expected):
    assert domain.parties_of(application(), roles=roles, sub=sub, in_opd=in_opd) == expected


def test_an_application_entered_at_the_counter_has_no_owning_citizen():
    app = application(owner=None)
    assert domain.parties_of(app, roles=("pemohon",), sub="citizen-1") == set()
    assert domain.parties_of(app, roles=("pemohon",), sub=None) == set()


def test_actions_for_are_the_allowed_unguarded_actions_of_the_parties():
    draft = application("draft", ["ktp", "gambar"])
    assert domain.actions_for(draft, {"applicant"}) == ["submit"]
    assert domain.actions_for(application("draft"), {"applicant"}) == []  # documents missing
    assert domain.actions_for(draft, {"officer"}) == []
    registered = application("registered")
    assert domain.actions_for(registered, {"officer", "reviewer", "applicant"}) == [
        "start_review"]
    assert domain.actions_for(registered, {"head"}) == ["reject"]
    free = application("recommended")
    assert domain.actions_for(free, {"officer"}) == []  # a free permit: no bill
    assert domain.actions_for(free, {"head"}) == ["reject", "sign"]
    paid = application("recommended", fee=10_000)
    assert domain.actions_for(paid, {"officer"}) == ["bill"]
    assert domain.actions_for(paid, {"head"}) == ["reject"]
    assert domain.actions_for(application("issued"), {"system"}) == ["expire"]
    assert domain.actions_for(application("revoked"), {"officer", "head", "system"}) == []


# -- working days -------------------------------------------------------------------------------

MON = date(2026, 12, 7)  # a Monday
DAYS = st.dates(min_value=date(2019, 1, 1), max_value=date(2031, 12, 31))
WEEKDAYS = st.frozensets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s)))


def naive_working_days(start, end, holidays, weekdays):
    return sum(1 for i in range(1, (end - start).days + 1)
               if (d := start + timedelta(days=i)).weekday() in weekdays and d not in holidays)


@st.composite
def calendars(draw, span=400):
    """``(start, holidays, weekdays)``: holidays around ``start``, on any weekday."""
    start = draw(DAYS)
    offsets = draw(st.sets(st.integers(-10, span), max_size=40))
    holidays = {start + timedelta(days=o) for o in offsets}
    weekdays = draw(st.one_of(st.just(domain.OFFICE_WEEK), WEEKDAYS))
    return start, holidays, weekdays


def test_working_days_across_a_weekend_and_a_holiday():
    fri, sat, sun, next_mon = (MON + timedelta(days=d) for d in (4, 5, 6, 7))
    assert domain.working_days_between(fri, sat) == 0
    assert domain.working_days_between(fri, sun) == 0
    assert domain.working_days_between(fri, next_mon) == 1
    assert domain.working_days_between(MON, MON) == 0  # same day: none used
    assert domain.working_days_between(next_mon, MON) == 0  # backwards: none
    assert domain.working_days_between(MON, next_mon) == 5
    assert domain.working_days_between(MON, next_mon, holidays={MON + timedelta(days=2)}) == 4
    # a holiday on a Sunday changes nothing; a holiday on the start day was not counted anyway
    assert domain.working_days_between(MON, next_mon, holidays={sun, MON}) == 5
    # a holidays dict (what store.holidays_of gives) works as well as a set
    christmas = {date(2026, 12, 25): "Hari Raya Natal"}
    assert domain.working_days_between(date(2026, 12, 24), date(2026, 12, 28), christmas) == 1
    assert domain.add_working_days(date(2026, 12, 24), 1, christmas) == date(2026, 12, 28)


def test_add_working_days_lands_on_working_days():
    assert domain.add_working_days(MON, 0) == MON
    assert domain.add_working_days(MON, -3) == MON
    assert domain.add_working_days(MON, 5) == MON + timedelta(days=7)
    sat = MON + timedelta(days=5)
    assert domain.add_working_days(sat, 1) == MON + timedelta(days=7)
    with pytest.raises(ValueError):
        domain.add_working_days(MON, 1, weekdays=())


@settings(max_examples=300, deadline=None)
@given(calendars(), st.integers(-30, 400))
def test_working_days_between_equals_a_day_by_day_count(calendar, span):
    start, holidays, weekdays = calendar
    end = start + timedelta(days=span)
    assert domain.working_days_between(start, end, holidays, weekdays) == \
        naive_working_days(start, end, holidays, weekdays)


@settings(max_examples=300, deadline=None)
@given(calendars(span=200), st.integers(0, 60))
def test_add_working_days_is_the_inverse(calendar, n):
    start, holidays, weekdays = calendar
    assume(len(weekdays) > 1 or n < 20)  # one working day a week: keep the spans short
    day = domain.add_working_days(start, n, holidays, weekdays)
    assert domain.working_days_between(start, day, holidays, weekdays) == n
    if n > 0:  # the smallest such day: a working day, and the day before is one short
        assert domain.is_working_day(day, holidays, weekdays)
        assert domain.working_days_between(start, day - timedelta(days=1), holidays,
                                           weekdays) == n - 1
    else:
        assert day == start


# -- the SLA clock ------------------------------------------------------------------------------

def entry(to, on):
    return {"to": to, "on": on}


def test_clock_counts_running_days_only_and_per_stage():
    # Mon submitted, Wed returned (paused), next Mon resubmitted, Tue registered, Thu in review
    timeline = [entry("submitted", MON), entry("returned_incomplete", MON + timedelta(2)),
                entry("resubmitted", MON + timedelta(7)), entry("registered", MON + timedelta(8)),
                entry("technical_review", MON + timedelta(10))]
    c = domain.clock(timeline, MON + timedelta(14), 10)
    # pendaftaran: Tue, Wed (submitted) + Tue (resubmitted); teknis: Wed, Thu (registered)
    # + Fri, Mon (review)
    assert c.stages == {"pendaftaran": 3, "teknis": 4}
    assert (c.used, c.left, c.running) == (7, 3, True)
    # registered on the day it was submitted: none used
    same_day = domain.clock([entry("submitted", MON), entry("registered", MON)], MON, 5)
    assert (same_day.used, same_day.left, same_day.stages) == (0, 5, {"pendaftaran": 0,
                                                                     "teknis": 0})
    # awaiting payment: paused; a draft's clock does not run at all
    billed = domain.clock([entry("submitted", MON), entry("billed", MON + timedelta(1))],
                          MON + timedelta(30), 5)
    assert (billed.used, billed.running) == (1, False)
    assert domain.clock([entry("draft", MON)], MON + timedelta(30), 5) == (False, 0, {}, 5)
    assert domain.clock([], MON, 5) == (False, 0, {}, 5)


@st.composite
def timelines(draw, running_last=None):
    """``(timeline, today, holidays, weekdays)``: random states on non-decreasing days."""
    start, holidays, weekdays = draw(calendars(span=120))
    states = st.sampled_from(domain.RUNNING + domain.PAUSED + ("draft", "rejected", "issued"))
    n = draw(st.integers(1, 8))
    timeline, day = [], start
    for i in range(n):
        day += timedelta(days=draw(st.integers(0, 12)))
        if i == n - 1 and running_last is not None:
            to = draw(st.sampled_from(domain.RUNNING if running_last else domain.PAUSED))
        else:
            to = draw(states)
        timeline.append(entry(to, day))
    today = day + timedelta(days=draw(st.integers(0, 20)))
    return timeline, today, holidays, weekdays


def naive_clock(timeline, today, holidays, weekdays):
    """Day by day: a working day ``d`` is used when the state in force at the end of the day
    before (the last entry dated before ``d``) runs the clock."""
    used, stages = 0, {}
    day = timeline[0]["on"] + timedelta(days=1)
    while day <= today:
        state = [e["to"] for e in timeline if e["on"] < day][-1]
        if state in domain.RUNNING and day.weekday() in weekdays and day not in holidays:
            used += 1
            stages[domain.STAGE_OF[state]] = stages.get(domain.STAGE_OF[state], 0) + 1
        day += timedelta(days=1)
    return used, stages


@settings(max_examples=300, deadline=None)
@given(timelines(), st.integers(1, 30))
def test_clock_equals_a_day_by_day_count_and_paused_days_never_count(found, sla):
    timeline, today, holidays, weekdays = found
    c = domain.clock(timeline, today, sla, holidays=holidays, weekdays=weekdays)
    used, stages = naive_clock(timeline, today, holidays, weekdays)
    assert c.used == used == sum(c.stages.values())
    assert {k: v for k, v in c.stages.items() if v} == stages
    assert c.left == sla - used
    assert c.running == (timeline[-1]["to"] in domain.RUNNING)
    # the same file with every paused stretch made running again uses at least as many days
    unpaused = [entry("submitted" if e["to"] in domain.PAUSED else e["to"], e["on"])
                for e in timeline]
    assert domain.clock(unpaused, today, sla, holidays=holidays,
                        weekdays=weekdays).used >= c.used


# -- alerts -------------------------------------------------------------------------------------

def test_alerts_warning_breach_and_stage_breach():
    timeline = [entry("submitted", MON), entry("registered", MON + timedelta(1))]
    stage_sla = {"pendaftaran": 1, "teknis": 3}
    def due(days):
        return domain.alerts_due(timeline, domain.add_working_days(MON, days), 5, stage_sla, 2)
    assert due(0) == [] and due(2) == []
    assert due(3) == ["warning:total"]  # 2 days left
    assert due(4) == ["warning:total"]
    assert due(5) == ["warning:total", "breach:teknis"]  # teknis used 4 > 3, total 5 = sla
    assert due(6) == ["warning:total", "breach:total", "breach:teknis"]
    # no warning before the clock ran at all
    assert domain.alerts_due([entry("submitted", MON)], MON, 2, {}, 2) == []
    assert domain.next_alert_day([entry("submitted", MON)], MON, 5, {}, 2) == \
        domain.add_working_days(MON, 3)
    # not running: nothing to look at
    assert domain.next_alert_day([entry("submitted", MON), entry("billed", MON)],
                                 MON + timedelta(3), 5, {}, 2) is None


@settings(max_examples=400, deadline=None)
@given(timelines(running_last=True), st.integers(1, 20), st.integers(0, 5),
       st.dictionaries(st.sampled_from(sorted(domain.STAGES)), st.integers(0, 10)))
@example(found=([entry("submitted", MON)], MON, set(), domain.OFFICE_WEEK), sla=2, warn=2,
         stage_sla={})  # an SLA no longer than the warning: warned after the first day
def test_next_alert_day_is_the_first_day_a_new_alert_falls_due(found, sla, warn, stage_sla):
    timeline, today, holidays, weekdays = found

    def alerts(day):
        return set(domain.alerts_due(timeline, day, sla, stage_sla, warn, holidays, weekdays))

    now = alerts(today)
    nxt = domain.next_alert_day(timeline, today, sla, stage_sla, warn, holidays, weekdays)
    assert nxt is not None and nxt > today
    assume((nxt - today).days < 200)
    day = today + timedelta(days=1)
    while day < nxt:  # nothing new before it
        assert alerts(day) == now, day
        day += timedelta(days=1)
    # on it: something new, when anything new can still come
    far = domain.add_working_days(today, sla + sum(stage_sla.values()) + warn + 2, holidays,
                                  weekdays)
    if alerts(far) - now:
        assert alerts(nxt) - now
    assert alerts(nxt) >= now  # alerts never go away while the clock runs


@settings(max_examples=200, deadline=None)
@given(timelines(running_last=False), st.integers(1, 20), st.integers(0, 5))
def test_a_paused_file_has_no_next_alert_day_and_no_new_alerts(found, sla, warn):
    timeline, today, holidays, weekdays = found
    assert domain.next_alert_day(timeline, today, sla, {}, warn, holidays, weekdays) is None
    later = today + timedelta(days=30)
    assert domain.alerts_due(timeline, later, sla, {}, warn, holidays, weekdays) == \
        domain.alerts_due(timeline, today, sla, {}, warn, holidays, weekdays)


# -- SKM ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("index, grade", [
    (100.0, "A"), (88.31, "A"), (88.30, "B"), (76.61, "B"), (76.60, "C"), (65.00, "C"),
    (64.99, "D"), (25.00, "D"),
])
def test_skm_grade_boundaries(index, grade):
    assert domain.skm_grade(index)[0] == grade


def test_skm_qualities_and_none():
    assert domain.skm_grade(90) == ("A", "Sangat Baik")
    assert domain.skm_grade(80) == ("B", "Baik")
    assert domain.skm_grade(70) == ("C", "Kurang Baik")
    assert domain.skm_grade(30) == ("D", "Tidak Baik")
    assert domain.skm_grade(None) == (None, None)
    assert domain.skm_index({}, 0) is None


def test_skm_index_is_the_mean_of_the_element_means_times_25():
    elements = list(domain.SKM_ELEMENTS)
    assert len(elements) == 9
    assert domain.skm_index({e: 4 for e in elements}, 1) == 100.0
    assert domain.skm_index({e: 1 for e in elements}, 1) == 25.0
    # two answers: all 4s and all 3s -> 3.5 -> 87.5 (B)
    assert domain.skm_index({e: 7 for e in elements}, 2) == 87.5
    # one element at 3, eight at 4, one answer: (8*4 + 3) / 9 * 25 = 97.22
    assert domain.skm_index({**{e: 4 for e in elements}, "waktu": 3}, 1) == 97.22
    # three answers where the elements differ: the grade lands exactly on a boundary's side
    sums = {e: 10 for e in elements}  # 10/3 each -> 83.33
    assert domain.skm_index(sums, 3) == 83.33 and domain.skm_grade(83.33)[0] == "B"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), min_size=9, max_size=9), min_size=1, max_size=40))
def test_skm_index_of_random_answers(answers):
    elements = list(domain.SKM_ELEMENTS)
    sums = {e: sum(a[i] for a in answers) for i, e in enumerate(elements)}
    index = domain.skm_index(sums, len(answers))
    expected = sum(sum(a) for a in answers) / (9 * len(answers)) * 25
    assert abs(index - expected) <= 0.005 + 1e-9
    assert 25.0 <= index <= 100.0
    assert domain.skm_grade(index)[0] in "ABCD"


# -- validity -----------------------------------------------------------------------------------

@pytest.mark.parametrize("issued, months, until", [
    (date(2026, 1, 15), 12, date(2027, 1, 14)),
    (date(2026, 12, 1), 1, date(2026, 12, 31)),
    (date(2026, 12, 31), 1, date(2027, 1, 30)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),  # no 31 February: to the month's end
    (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
    (date(2024, 1, 30), 1, date(2024, 2, 29)),
    (date(2024, 1, 29), 1, date(2024, 2, 28)),  # 29 February exists: the day before it
    (date(2024, 2, 29), 12, date(2025, 2, 28)),  # no 29 February 2025
    (date(2024, 2, 29), 48, date(2028, 2, 28)),  # 29 February 2028 exists
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2026, 5, 1), 60, date(2031, 4, 30)),
])
def test_validity(issued, months, until):
    assert domain.validity(issued, months) == (issued, until)


def test_validity_without_an_end():
    assert domain.validity(date(2026, 2, 3), 0) == (date(2026, 2, 3), None)


@settings(max_examples=300, deadline=None)
@given(DAYS, st.integers(1, 240))
def test_validity_ends_the_day_before_the_same_date_months_later(issued, months):
    _, until = domain.validity(issued, months)
    year, month = divmod(issued.month - 1 + months, 12)
    year, month = issued.year + year, month + 1
    try:
        anniversary = date(year, month, issued.day)
    except ValueError:  # no such day that month: the period ends with the month
        anniversary = date(year + month // 12, month % 12 + 1, 1)
    assert until == anniversary - timedelta(days=1)
    assert until >= issued


# -- numbers, codes and names ---------------------------------------------------------------

def test_numbers():
    assert domain.registration_number(2026, 1) == "REG-2026-000001"
    assert domain.REGISTRATION.match(domain.registration_number(2026, 999_999))
    assert not domain.REGISTRATION.match("REG-2026-00001")
    assert domain.bill_number(2027, 42) == "SKRD-2027-000042"
    assert domain.permit_number("PBG", "DPMPTSP", 2026, 7) == "00007/PBG/DPMPTSP/2026"


@pytest.mark.parametrize("code, ok", [("PBG", True), ("SIP-DOKTER", True), ("TDUP_2", True),
                                      ("P", False), ("pbg", False), ("1PBG", False),
                                      ("PBG 2", False), ("A" * 21, False), ("A" * 20, True)])
def test_type_codes(code, ok):
    assert bool(domain.TYPE_CODE.match(code)) == ok


@pytest.mark.parametrize("nib, ok", [("9120001234567", True), ("912000123456", False),
                                     ("91200012345678", False), ("912000123456A", False)])
def test_nib(nib, ok):
    assert bool(domain.NIB.match(nib)) == ok


def test_verification_codes_are_unambiguous_and_distinct():
    codes = {domain.verification_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == 12 and set(code) <= set(domain.CODE_ALPHABET)
        assert not set(code) & set("01IO")


@pytest.mark.parametrize("name, masked", [
    ("Budi Santoso", "Bu** Sa*****"), ("Siti", "Si**"), ("Ni Luh Putu Ayu", "Ni Lu* Pu** Ay*"),
    ("A  B", "A B"), ("", ""), ("dr. Ratna Sari, Sp.A", "dr* Ra*** Sa*** Sp**"),
])
def test_mask_name(name, masked):
    assert domain.mask_name(name) == masked


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_mask_name_shows_at_most_two_letters_of_each_word(name):
    masked = domain.mask_name(name)
    words, shown = name.split(), masked.split(" ") if masked else []
    assert len(shown) == len(words)
    for word, out in zip(words, shown, strict=True):
        assert len(out) == len(word) and out[:2] == word[:2]
        assert re.fullmatch(r"\*+", out[2:]) if len(word) > 2 else out == word

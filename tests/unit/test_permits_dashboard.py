"""The pure parts of the permits dashboard, public tracking and survey."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from pamong.auth import Principal
from pamong.web import Problem
from services.permits import dashboard as d
from services.permits import domain
from services.permits.public import digits_match, phone_match, status_view, verification
from services.permits.survey import element_figures, period_sum, survey_problem

pytestmark = pytest.mark.unit

TODAY = date(2026, 12, 7)  # a Monday
STANDARD = {"name": "SIP Perawat", "sla_days": 5,
            "stages": [{"key": "pendaftaran", "sla_days": 1}, {"key": "teknis", "sla_days": 2},
                       {"key": "keputusan", "sla_days": 1},
                       {"key": "penerbitan", "sla_days": 1}]}


def at(day, hour=3):
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def entry(action, frm, to, day):
    return {"action": action, "from": frm, "to": to, "at": at(day), "on": day.isoformat()}


def application(path, opd="3510.03", type_code="SIP", **extra):
    """An application that went through ``path`` = [(action, to, day)] from a draft."""
    timeline = [entry("create", None, "draft", path[0][2])]
    for action, to, day in path:
        timeline.append(entry(action, timeline[-1]["to"], to, day))
    return {"_id": f"a{id(path)}", "opd": opd, "type": type_code, "standard": STANDARD,
            "state": timeline[-1]["to"], "timeline": timeline, "created_at": at(path[0][2]),
            **extra}


def status_events(app, holidays=()):
    """What the lifecycle publishes as permit.status_changed for each timeline entry."""
    out = []
    for index, e in enumerate(app["timeline"]):
        used = d.days_used_at(app["timeline"], index, holidays)
        out.append({"id": app["_id"], "opd": app["opd"], "type": app["type"],
                    "action": None if e["from"] is None else e["action"],
                    "from_state": e["from"], "to_state": e["to"], "at": e["at"],
                    "sla_days": app["standard"]["sla_days"], "working_days_used": used})
    return out


MON, TUE, WED, THU, FRI = (TODAY + timedelta(days=n) for n in range(5))
NEXT_MON = TODAY + timedelta(days=7)
ISSUED = [("submit", "submitted", MON), ("register", "registered", TUE),
          ("start_review", "technical_review", WED), ("recommend", "recommended", WED),
          ("sign", "signed", THU), ("issue", "issued", NEXT_MON)]


def test_a_creation_counts_the_new_state_only():
    inc = d.transition_increments({"opd": "3510.03", "type": "SIP", "action": None,
                                   "from_state": None, "to_state": "draft", "at": at(MON),
                                   "sla_days": 5, "working_days_used": 0}, MON)
    assert inc["all"] == {"states.draft": 1, "type_states.SIP.draft": 1,
                          "opds.3510_03.draft": 1, "actions.create": 1,
                          "types.SIP.actions.create": 1}
    assert "opds.3510_03.draft" not in inc["all@3510.03"]
    assert set(inc) == {"all", "all@3510.03", "month:2026-12", "month:2026-12@3510.03",
                        "day:2026-12-07", "day:2026-12-07@3510.03"}


def test_a_decision_fills_the_histogram_and_the_sla_share():
    inc = d.transition_increments({"opd": "3510.03", "type": "SIP", "action": "issue",
                                   "from_state": "signed", "to_state": "issued", "at": at(MON),
                                   "sla_days": 5, "working_days_used": 7}, MON)
    assert inc["month:2026-12"]["days.d7"] == 1
    assert inc["month:2026-12"]["within_sla"] == 0
    assert inc["all"]["states.signed"] == -1 and inc["all"]["states.issued"] == 1


def test_recompute_equals_the_events_applied_one_by_one():
    holidays = {THU: "a holiday"}
    apps = [application(ISSUED), application(ISSUED[:2], opd="3510.04", type_code="PBG"),
            application([("submit", "submitted", MON), ("return", "returned_incomplete", TUE)]),
            application(ISSUED + [("revoke", "revoked", NEXT_MON)],
                        permit={"valid_until": "2031-12-13"}),
            application(ISSUED + [("collect", "collected", NEXT_MON)],
                        permit={"valid_until": "2031-12-13"},
                        skm={"rated_on": NEXT_MON.isoformat(),
                             "scores": dict.fromkeys(domain.SKM_ELEMENTS, 3)},
                        sla={"alerts": ["warning:total", "breach:total", "breach:teknis",
                                      "expiring"]})]
    kept = {}
    for app in apps:
        for data in status_events(app, holidays):
            d._add(kept, d.transition_increments(data, data["at"].date()))
        for alert in app.get("sla", {}).get("alerts", ()):
            kind, _, scope = alert.partition(":")
            if kind != "expiring":  # the permit's notice is no SLA alert
                d._add(kept, d.alert_increments(app["opd"], scope, kind == "breach"))
        if app.get("permit"):
            d._add(kept, d.expiring_increments(app["opd"], date(2031, 12, 13), 1))
            if app["state"] == "revoked":
                d._add(kept, d.expiring_increments(app["opd"], date(2031, 12, 13), -1))
        if app.get("skm"):
            d._add(kept, d.rating_increments(app["opd"], app["type"], app["skm"]["scores"],
                                             NEXT_MON))
    rebuilt = d.recompute(apps, lambda t: t.date(), holidays)
    assert {k: d.comparable(v) for k, v in kept.items() if d.comparable(v)} == \
        {k: d.comparable(v) for k, v in rebuilt.items() if d.comparable(v)}
    assert rebuilt["all"]["states"]["issued"] == 1  # the other two: revoked, collected
    assert rebuilt["all"]["days"] == {"d4": 3}  # Tue, Wed, Fri, Mon: Thursday is a holiday
    asked = []
    by_year = d.recompute(iter(apps), lambda t: t.date(),
                          lambda years: asked.append(years) or holidays)
    assert by_year == rebuilt and asked[0] == {2026}


def test_recompute_refuses_a_timeline_that_disagrees_with_the_state():
    app = application(ISSUED[:2])
    app["state"] = "issued"
    with pytest.raises(ValueError, match="timeline ends in 'registered'"):
        d.recompute([app], lambda t: t.date())


@pytest.mark.parametrize(("histogram", "median", "p90"), [
    ({}, None, None), ({"d3": 1}, 3, 3), ({"d1": 5, "d9": 5}, 1, 9),
    ({"d2": 9, "d30": 1}, 2, 2), ({"d2": 8, "d30": 2}, 2, 30), ({"d4": 2, "d0": 0}, 4, 4)])
def test_median_and_p90_by_nearest_rank(histogram, median, p90):
    assert d.percentile(histogram, 0.5) == median
    assert d.percentile(histogram, 0.9) == p90


def test_processing_compliance():
    p = d.processing({"decided": 4, "within_sla": 3, "days": {"d10": 1, "d2": 3}})
    assert p["sla_compliance_pct"] == 75.0 and p["histogram"] == {2: 3, 10: 1}
    assert d.processing(None)["sla_compliance_pct"] is None


def test_figures_of_a_day():
    apps = [application(ISSUED, permit={"valid_until": (NEXT_MON + timedelta(days=20))
                                        .isoformat()})]
    docs = d.recompute(apps, lambda t: t.date())
    out = d.figures(docs, NEXT_MON, None, {"SIP": "SIP Perawat"}, {"3510.03": "Dinkes"})
    assert out["today"]["issued"] == 1 and out["by_status"] == {"issued": 1}
    assert out["expiring"]["count"] == 1
    assert out["by_type"][0]["name"] == "SIP Perawat"
    assert out["by_opd"][0] == {**out["by_opd"][0], "opd": "3510.03", "name": "Dinkes"}
    assert out["processing"]["median_days"] == 5
    assert out["open"] == 0
    assert d.figures(docs, NEXT_MON + timedelta(days=21), None)["expiring"]["count"] == 0


def test_skm_figures_and_grade():
    sums = dict.fromkeys(domain.SKM_ELEMENTS, 4 * 3 + 3)  # 4 answers: 4, 4, 4, 3
    assert d.skm_figures({"count": 4, "sums": sums}) == {
        "responses": 4, "index": 93.75, "grade": "A", "quality": "Sangat Baik"}
    assert d.skm_figures(None)["index"] is None


def test_open_rows_withhold_small_skm_cells_and_hold_no_person():
    docs = d.recompute([application(ISSUED, skm={"rated_on": NEXT_MON.isoformat(),
                                                 "scores": dict.fromkeys(
                                                     domain.SKM_ELEMENTS, 4)})],
                       lambda t: t.date())
    months = {m: docs.get(f"month:{m}") for m in d.months_between(MON, NEXT_MON)}
    rows = d.open_rows(months, {"SIP": {"name": "SIP Perawat", "opd": "3510.03"}},
                       {"3510.03": "Dinas Kesehatan"})
    assert [r["period"] for r in rows] == ["2026-12"]
    assert rows[0]["submitted"] == 1 and rows[0]["issued"] == 1
    assert rows[0]["skm_responses"] == 1 and rows[0]["skm_index"] is None
    assert d.open_rows(months, {}, {}, min_responses=1)[0]["skm_index"] == 100.0
    parsed = list(csv.DictReader(io.StringIO(d.csv_text(rows))))
    assert list(parsed[0]) == list(d.OPEN_COLUMNS) and parsed[0]["skm_index"] == ""


def test_months_between_crosses_a_year():
    assert d.months_between(date(2025, 11, 5), date(2026, 2, 1)) == [
        "2025-11", "2025-12", "2026-01", "2026-02"]


@pytest.mark.parametrize(("roles", "opd", "asked", "scope"), [
    (("admin",), "3510", None, None), (("admin",), None, "3510.04.01", "3510.04"),
    (("pimpinan",), "3510", "3510.03", "3510.03"), (("petugas",), "3510.03.01", None,
                                                    "3510.03"),
    (("petugas",), "3510.03", "3510.03", "3510.03")])
def test_dashboard_scope(roles, opd, asked, scope):
    assert d.dashboard_scope(Principal("u", roles=roles, opd=opd), asked) == scope


@pytest.mark.parametrize(("roles", "opd", "asked", "status"), [
    (("petugas",), "3510.03", "3510.04", 404), (("pimpinan",), None, None, 403),
    (("pimpinan",), "3510", "3511.01", 404)])
def test_dashboard_scope_refused(roles, opd, asked, status):
    with pytest.raises(Problem) as caught:
        d.dashboard_scope(Principal("u", roles=roles, opd=opd), asked)
    assert caught.value.status == status


def test_the_stream_sends_at_once_on_change_and_beats_when_quiet():
    now = [0.0]
    versions = iter([1, 1, 2] + [2] * 100)
    sent = list(d.stream_events(lambda: next(versions), lambda: {"version": 7}, poll=1,
                                heartbeat=3, max_seconds=10, clock=lambda: now[0],
                                sleep=lambda s: now.__setitem__(0, now[0] + s)))
    assert sent[0].startswith("retry:")
    kinds = [s.split("\n")[0] for s in sent[1:]]
    assert kinds == ["event: dashboard", "event: dashboard", ": keep-alive", ": keep-alive"]
    assert sent[1].endswith("\n\n") and 'data: {"version": 7}' in sent[1]


# -- public --------------------------------------------------------------------------------

APPLICANT = {"nik": "3510034512900001", "phone": "+6281234567890", "name": "Siti Aminah"}


@pytest.mark.parametrize(("last4", "applicant", "expected"), [
    ("0001", APPLICANT, True), ("7890", APPLICANT, True), ("0002", APPLICANT, False),
    ("7890", {"nik": "3510034512900001", "phone": None}, False),
    ("----", {"nik": None, "phone": None}, False)])
def test_digits_match(last4, applicant, expected):
    assert digits_match({"applicant": applicant}, last4) is expected
    assert digits_match(None, last4) is False


def test_phone_match():
    assert phone_match({"applicant": APPLICANT}, "+6281234567890")
    assert not phone_match({"applicant": APPLICANT}, "+6281234567891")
    assert not phone_match({"applicant": {"phone": None}}, None)
    assert not phone_match(None, "+6281234567890")


def test_status_view_shows_the_clock_and_no_person():
    app = {**application(ISSUED[:3]), "registration_number": "REG-2026-000001",
           "applicant": APPLICANT, "missing_items": None}
    view = status_view(app, THU)
    assert view["state"] == "technical_review" and view["stage"] == "teknis"
    assert (view["days_used"], view["days_left"], view["running"]) == (3, 2, True)
    assert view["expected_by"] == date(2026, 12, 14)  # Fri, then Monday
    assert [s["state"] for s in view["timeline"]][:3] == ["draft", "submitted", "registered"]
    assert "Siti" not in repr(view) and "3510034512900001" not in repr(view)


def test_status_view_of_a_returned_file_lists_what_is_missing_masked():
    app = {**application([("submit", "submitted", MON), ("return", "returned_incomplete",
                                                         TUE)]),
           "missing_items": ["KTP 3510034512900001 tidak terbaca", "STR"]}
    view = status_view(app, WED)
    assert view["missing_items"] == ["KTP 3510********0001 tidak terbaca", "STR"]
    assert view["running"] is False and view["expected_by"] is None


def test_status_view_of_a_closed_file_has_no_days_left():
    app = {**application(ISSUED), "registration_number": "REG-2026-000001"}
    assert status_view(app, NEXT_MON + timedelta(days=3))["days_left"] is None


@pytest.mark.parametrize(("state", "until", "today", "verdict"), [
    ("issued", "2031-12-13", TODAY, "valid"), ("collected", None, TODAY, "valid"),
    ("collected", "2026-12-06", TODAY, "expired"), ("expired", "2026-12-06", TODAY, "expired"),
    ("revoked", "2031-12-13", TODAY, "revoked")])
def test_verification(state, until, today, verdict):
    app = {**application(ISSUED), "state": state, "applicant": APPLICANT,
           "permit": {"number": "00001/SIP/DINKES/2026", "valid_from": "2026-12-14",
                      "valid_until": until}}
    answer = verification(app, today)
    assert answer["verification"] == verdict
    assert answer["holder"] == "Si** Am****"


def test_verification_needs_a_permit():
    assert verification({**application(ISSUED[:2]), "permit": None}, TODAY) is None


def test_survey_after_collection_once():
    collected = application(ISSUED + [("collect", "collected", NEXT_MON)])
    assert survey_problem(collected) is None
    assert "once" in survey_problem({**collected, "skm": {"rated_on": "2026-12-14"}})
    assert "collected" in survey_problem(application(ISSUED))
    expired = {**collected, "state": "expired"}
    assert survey_problem(expired) is None


def test_skm_of_a_period_adds_months():
    months = [{"skm": {"count": 1, "sums": dict.fromkeys(domain.SKM_ELEMENTS, 4)},
               "skm_types": {"SIP": {"count": 1, "sums": dict.fromkeys(domain.SKM_ELEMENTS,
                                                                       4)}}},
              {"skm": {"count": 1, "sums": dict.fromkeys(domain.SKM_ELEMENTS, 2)}}]
    overall, types = period_sum(months)
    assert element_figures(overall)["index"] == 75.0
    assert element_figures(overall)["grade"] == "C"
    assert element_figures(types["SIP"])["responses"] == 1

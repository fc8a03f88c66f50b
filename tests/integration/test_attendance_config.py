"""Configuration, holidays, rotas and outage windows over HTTP against the real broker and
database: inheritance down the unit tree, effective dates, closed days, concurrency, and who
may do what."""

from datetime import UTC, datetime, timedelta

import pytest

from pamong.testing import race
from services.attendance import domain
from services.attendance.store import Calendar
from tests.integration.attendance_support import (
    API,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    checkin,
    token,
)

pytestmark = pytest.mark.integration

BIDANG, OPD, ROOT, OTHER_OPD = "3510.03.01", "3510.03", "3510", "3510.04"
SHIFTS = {"P": {"start": "07:00", "end": "14:00"}, "S": {"start": "14:00", "end": "21:00"},
          "M": {"start": "21:00", "end": "07:00"}}
SIX_DAYS = {str(d): {"start": "07:30", "end": "14:45", "break_minutes": 0} for d in range(1, 7)}


def today():
    return domain.local_date(datetime.now(UTC), "Asia/Jakarta")


def admin(client):
    return token(client, roles=("admin",), opd=ROOT, sub="bkd-admin")


def opd_admin(client, unit=OPD):
    return token(client, roles=("opd_admin",), opd=unit, sub=f"admin-{unit}")


def post_config(client, unit, settings, start=None, tok=None, **extra):
    return client.request("POST", f"{API}/units/{unit}/config", token=tok or admin(client),
                          json={"effective_from": (start or today()).isoformat(),
                                "settings": settings, **extra})


def settings_of(client, unit, day=None, tok=None):
    query = f"?date={day.isoformat()}" if day else ""
    r = client.request("GET", f"{API}/units/{unit}/settings{query}", token=tok or admin(client))
    assert r.status_code == 200, r.text
    return r.json()


def close_through(db, unit, day):
    """The closing module's own state: its cursor says ``unit`` is closed through ``day``."""
    db.close_cursor.replace_one({"_id": unit}, {"_id": unit, "last_closed": day.isoformat()},
                                upsert=True)


# -- configuration -------------------------------------------------------------------------------

def test_settings_inherit_down_the_tree_field_by_field(attendance):
    client = attendance.client
    assert post_config(client, ROOT, {"grace_minutes": 5}).status_code == 201
    assert post_config(client, OPD, {"week": SIX_DAYS}).status_code == 201
    got = settings_of(client, BIDANG)
    assert got["settings"]["grace_minutes"] == 5
    assert got["settings"]["week"]["6"] == {"start": "07:30", "end": "14:45",
                                            "break_minutes": 0}
    assert got["sources"]["grace_minutes"] == {"unit": ROOT,
                                               "effective_from": today().isoformat()}
    assert got["sources"]["week"]["unit"] == OPD
    assert got["sources"]["tl_brackets"] == "default"
    assert got["settings"]["tl_brackets"][0] == {"upto": 30, "percent": "0.50"}
    # the other OPD inherits the root only
    other = settings_of(client, OTHER_OPD)
    assert other["settings"]["grace_minutes"] == 5 and other["sources"]["week"] == "default"
    # the unit's own entries
    own = client.request("GET", f"{API}/units/{OPD}/config", token=admin(client)).json()
    assert [e["effective_from"] for e in own["entries"]] == [today().isoformat()]
    assert own["entries"][0]["by"] == "bkd-admin" and own["version"] == 1


def test_an_entry_from_next_week_does_not_change_today(attendance):
    client = attendance.client
    assert post_config(client, ROOT, {"grace_minutes": 5}).status_code == 201
    later = today() + timedelta(days=7)
    assert post_config(client, BIDANG, {"grace_minutes": 10}, start=later).status_code == 201
    assert settings_of(client, BIDANG)["settings"]["grace_minutes"] == 5
    assert settings_of(client, BIDANG, later)["settings"]["grace_minutes"] == 10
    assert settings_of(client, BIDANG, later)["sources"]["grace_minutes"]["unit"] == BIDANG
    # a future entry may be withdrawn; one in force may not
    path = f"{API}/units/{BIDANG}/config/{later.isoformat()}"
    assert client.request("DELETE", path, token=admin(client)).status_code == 200
    assert settings_of(client, BIDANG, later)["settings"]["grace_minutes"] == 5
    assert client.request("DELETE", path, token=admin(client)).status_code == 404
    in_force = f"{API}/units/{ROOT}/config/{today().isoformat()}"
    assert client.request("DELETE", in_force, token=admin(client)).status_code == 409
    audit = attendance.db.unit_config.find_one({"_id": BIDANG})["audit"]
    assert [a["action"] for a in audit] == ["added", "deleted"]


def test_a_change_never_reaches_a_closed_day_or_the_past(attendance):
    client, db = attendance.client, attendance.db
    past = post_config(client, BIDANG, {"grace_minutes": 3}, start=today() - timedelta(days=1))
    assert past.status_code == 422 and "from today" in past.json()["errors"][
        "effective_from"][0]
    # the bidang has closed through the day after tomorrow (its cursor, as the close keeps it)
    close_through(db, BIDANG, today() + timedelta(days=2))
    for unit in (BIDANG, OPD, ROOT):  # a change above reaches the closed subunit too
        r = post_config(client, unit, {"grace_minutes": 3}, start=today() + timedelta(days=2))
        assert r.status_code == 422, (unit, r.text)
        message = r.json()["errors"]["effective_from"][0]
        assert "is closed" in message and BIDANG in message
    assert post_config(client, BIDANG, {"grace_minutes": 3},
                       start=today() + timedelta(days=3)).status_code == 201
    # the other OPD is not held back by the bidang's close
    assert post_config(client, OTHER_OPD, {"grace_minutes": 3}).status_code == 201
    assert db.unit_config.count_documents({"_id": {"$in": [OPD, ROOT]}}) == 0


def test_bad_settings_are_refused_with_field_errors_and_change_nothing(attendance):
    client = attendance.client
    r = post_config(client, BIDANG, {
        "grace_minutes": 99, "week": {"1": {"start": "7 pagi", "end": "16:00"}},
        "tl_brackets": [{"upto": 30, "percent": "1"}, {"upto": 10, "percent": "0.5"}],
        "lunch": True})
    assert r.status_code == 422 and r.headers["Content-Type"] == "application/problem+json"
    errors = r.json()["errors"]
    assert {"settings.grace_minutes", "settings.week.1.start", "settings.tl_brackets",
            "settings.lunch"} <= set(errors)
    assert post_config(client, BIDANG, {}).status_code == 422
    bad_date = client.request("POST", f"{API}/units/{BIDANG}/config", token=admin(client),
                              json={"effective_from": "besok", "settings": {}})
    assert bad_date.status_code == 422 and "effective_from" in bad_date.json()["errors"]
    assert post_config(client, "3510.99", {"grace_minutes": 1}).status_code == 404
    assert attendance.db.unit_config.count_documents({}) == 0


def test_a_repeat_is_a_replay_and_another_entry_on_the_date_needs_replace(attendance):
    client = attendance.client
    first = post_config(client, BIDANG, {"grace_minutes": 5})
    again = post_config(client, BIDANG, {"grace_minutes": 5})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["version"] == 1
    other = post_config(client, BIDANG, {"grace_minutes": 7})
    assert other.status_code == 409 and "replace" in other.json()["detail"]
    replaced = post_config(client, BIDANG, {"grace_minutes": 7}, replace=True)
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert [e["settings"] for e in replaced.json()["entries"]] == [{"grace_minutes": 7}]
    assert settings_of(client, BIDANG)["settings"]["grace_minutes"] == 7


def test_concurrent_posts_for_one_unit(attendance):
    """Same date, different settings: one wins (201), the other is told (409); different
    dates: both are stored (a lost compare-and-set is re-read and re-checked)."""
    client, db = attendance.client, attendance.db
    responses = race([3, 4], lambda grace: post_config(client, BIDANG, {"grace_minutes": grace}))
    assert sorted(r.status_code for r in responses) == [201, 409]
    doc = db.unit_config.find_one({"_id": BIDANG})
    assert len(doc["entries"]) == 1 and doc["version"] == 1
    days = [today() + timedelta(days=n) for n in range(10, 16)]
    responses = race(days, lambda day: post_config(client, OPD, {"grace_minutes": 2},
                                                   start=day))
    assert [r.status_code for r in responses] == [201] * len(days)
    doc = db.unit_config.find_one({"_id": OPD})
    assert sorted(e["effective_from"] for e in doc["entries"]) == [d.isoformat() for d in days]
    assert doc["version"] == len(days) and len(doc["audit"]) == len(days)


def test_a_configuration_change_reaches_the_check_in(attendance):
    client = attendance.client
    two_minutes_off = datetime.now(UTC) - timedelta(minutes=2)
    before = checkin(client, NIP_STAFF, device="dev-1", device_time=two_minutes_off)
    assert before.status_code == 201 and "clock_drift" not in before.json()["flags"]
    # the OPD tightens the tolerated drift from today on: the bidang inherits it
    assert post_config(client, OPD, {"max_clock_drift_seconds": 60}).status_code == 201
    after = checkin(client, NIP_STAFF2, device="dev-2",
                    device_time=datetime.now(UTC) - timedelta(minutes=2))
    assert after.status_code == 201 and "clock_drift" in after.json()["flags"]


# -- holidays ------------------------------------------------------------------------------------

def holidays(client, year, unit=None, tok=None):
    query = f"?year={year}" + (f"&unit={unit}" if unit else "")
    r = client.request("GET", f"{API}/holidays{query}", token=tok or admin(client))
    assert r.status_code == 200, r.text
    return {(d["date"], d["kind"]): d for d in r.json()["items"]}


def add_holiday(client, day, name, kind="regional", unit=None, tok=None):
    return client.request("POST", f"{API}/holidays", token=tok or admin(client),
                          json={"date": day, "name": name, "kind": kind, "unit": unit})


def test_holidays_national_regional_and_scoped_to_a_subtree(attendance):
    client = attendance.client
    national = holidays(client, 2027)
    assert national[("2027-08-17", "national")]["name"].startswith("Hari Kemerdekaan")
    r = add_holiday(client, "2027-12-18", "Hari Jadi Kabupaten Banyuwangi")
    assert r.status_code == 201 and r.json()["by"] == "bkd-admin"
    assert add_holiday(client, "2027-11-12", "Hari Kesehatan Nasional (libur Dinkes)",
                       unit=OPD).status_code == 201
    assert add_holiday(client, "2027-12-24", "Cuti bersama Natal",
                       kind="cuti_bersama").status_code == 201
    bidang = holidays(client, 2027, BIDANG)
    assert ("2027-12-18", "regional") in bidang and ("2027-11-12", "regional") in bidang
    assert bidang[("2027-11-12", "regional")]["unit"] == OPD
    assert ("2027-12-24", "cuti_bersama") in bidang and ("2027-08-17", "national") in bidang
    other = holidays(client, 2027, OTHER_OPD)
    assert ("2027-12-18", "regional") in other and ("2027-11-12", "regional") not in other
    # every day, with its unit, for the admin's overview; an employee reads their calendar
    everything = holidays(client, 2027)
    assert everything[("2027-11-12", "regional")]["unit"] == OPD
    assert holidays(client, 2027, BIDANG, tok=token(client, NIP_STAFF)) == bidang
    # what the day close and the leave counter read
    found = Calendar(attendance.db, 0).holidays(BIDANG, 2027)
    assert found[datetime(2027, 11, 12).date()]["kind"] == "regional"
    # removing one
    path = f"{API}/holidays/2027-11-12?unit={OPD}"
    assert client.request("DELETE", path, token=admin(client)).status_code == 204
    assert ("2027-11-12", "regional") not in holidays(client, 2027, BIDANG)
    assert client.request("DELETE", path, token=admin(client)).status_code == 404
    national_day = f"{API}/holidays/2027-08-17"
    assert client.request("DELETE", national_day, token=admin(client)).status_code == 404
    audit = attendance.db.calendar.find_one({"_id": "regional"})["audit"]
    assert [a["action"] for a in audit] == ["added", "added", "added", "removed"]


def test_holiday_duplicates_repeats_races_and_bad_input(attendance):
    client, db = attendance.client, attendance.db
    assert add_holiday(client, "2027-12-18", "Hari Jadi").status_code == 201
    again = add_holiday(client, "2027-12-18", "Hari Jadi")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert add_holiday(client, "2027-12-18", "Hari lain").status_code == 409
    # the same date for a subtree is another day (a unit may have its own)
    assert add_holiday(client, "2027-12-18", "Hari Jadi", unit=OPD).status_code == 201
    assert add_holiday(client, "2027-08-17", "Kemerdekaan").status_code == 409
    responses = race(["Satu", "Dua", "Tiga"],
                     lambda name: add_holiday(client, "2027-07-07", f"Hari {name}"))
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    days = db.calendar.find_one({"_id": "regional"})["days"]
    assert len([d for d in days if d["date"] == "2027-07-07"]) == 1
    bad = client.request("POST", f"{API}/holidays", token=admin(client),
                         json={"date": "2027-13-01", "name": "x", "kind": "libur"})
    assert bad.status_code == 422 and {"date", "name", "kind"} <= set(bad.json()["errors"])
    unknown = add_holiday(client, "2027-06-02", "Hari X", unit="3510.99")
    assert unknown.status_code == 422 and "unit" in unknown.json()["errors"]
    assert len(db.calendar.find_one({"_id": "regional"})["days"]) == 3


def test_a_closed_day_cannot_become_or_stop_being_a_holiday(attendance):
    client, db = attendance.client, attendance.db
    yesterday, two_ago = today() - timedelta(days=1), today() - timedelta(days=2)
    assert add_holiday(client, two_ago.isoformat(), "Libur daerah").status_code == 201
    close_through(db, BIDANG, yesterday)
    refused = add_holiday(client, yesterday.isoformat(), "Libur mendadak")
    assert refused.status_code == 409 and BIDANG in refused.json()["detail"]
    assert add_holiday(client, yesterday.isoformat(), "Libur Dikbud",
                       unit=OTHER_OPD).status_code == 201  # not closed there
    remove = client.request("DELETE", f"{API}/holidays/{two_ago.isoformat()}",
                            token=admin(client))
    assert remove.status_code == 409
    assert add_holiday(client, today().isoformat(), "Libur hari ini").status_code == 201


# -- rota ----------------------------------------------------------------------------------------

def put_rota(client, nip, body, tok=None):
    return client.request("PUT", f"{API}/people/{nip}/rota", token=tok or admin(client),
                          json=body)


def test_a_rota_uses_the_units_shifts_only(attendance):
    client, db = attendance.client, attendance.db
    anchor = today().isoformat()
    body = {"pattern": {"anchor": anchor, "cycle": ["P", "S", "M", None]}}
    no_shifts = put_rota(client, NIP_STAFF, body)
    assert no_shifts.status_code == 422 and "M, P, S" in str(no_shifts.json()["errors"])
    assert post_config(client, OPD, {"shifts": SHIFTS}).status_code == 201
    ok = put_rota(client, NIP_STAFF, {**body, "roster": {anchor: None}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["rota"]["pattern"]["cycle"] == ["P", "S", "M", None]
    person = db.people.find_one({"_id": NIP_STAFF})
    assert person["unit"] == BIDANG and person["version"] == 1
    assert person["rota"]["by"] == "bkd-admin"
    # the same rota again changes nothing; bad codes are named
    assert put_rota(client, NIP_STAFF, {**body, "roster": {anchor: None}}).json()["version"] == 1
    bad = put_rota(client, NIP_STAFF, {"pattern": {"anchor": anchor, "cycle": ["P", "X"]},
                                       "roster": {anchor: "Z"}})
    assert bad.status_code == 422
    assert "X" in str(bad.json()["errors"]["pattern.cycle"])
    assert "Z" in str(bad.json()["errors"]) and "M, P, S" in str(bad.json()["errors"])
    # a shift set from next week is not there on an earlier anchor
    yesterday = (today() - timedelta(days=1)).isoformat()
    assert put_rota(client, NIP_STAFF, {"pattern": {"anchor": yesterday,
                                                    "cycle": ["P"]}}).status_code == 422
    assert put_rota(client, NIP_STAFF, {}).status_code == 422
    assert put_rota(client, NIP_STAFF, {"pattern": {"anchor": anchor,
                                                    "cycle": []}}).status_code == 422
    assert db.people.find_one({"_id": NIP_STAFF})["version"] == 1
    got = client.request("GET", f"{API}/people/{NIP_STAFF}/rota", token=token(client, NIP_STAFF))
    assert got.status_code == 200 and got.json()["rota"]["pattern"]["anchor"] == anchor


def test_shifts_a_rota_uses_cannot_disappear(attendance):
    client = attendance.client
    next_week = today() + timedelta(days=7)
    assert post_config(client, BIDANG, {"shifts": SHIFTS}).status_code == 201
    body = {"pattern": {"anchor": today().isoformat(), "cycle": ["P", "M"]}}
    assert put_rota(client, NIP_STAFF, body).status_code == 200
    # from next week the night shift is gone, here or (replacing it) above
    only_day = {"P": SHIFTS["P"], "S": SHIFTS["S"]}
    for unit in (BIDANG, OPD):
        r = post_config(client, unit, {"shifts": only_day}, start=next_week)
        expected = 409 if unit == BIDANG else 201  # the bidang's own shifts win below the OPD
        assert r.status_code == expected, (unit, r.text)
    refused = post_config(client, BIDANG, {"shifts": only_day}, start=next_week)
    assert NIP_STAFF in refused.json()["detail"] and "M on" in refused.json()["detail"]
    # a pattern repeats both ways: shifts that exist only from next week are not enough
    assert post_config(client, OTHER_OPD, {"shifts": SHIFTS}, start=next_week).status_code == 201
    later = put_rota(client, NIP_OTHER, {"pattern": {"anchor": next_week.isoformat(),
                                                     "cycle": ["P"]}})
    assert later.status_code == 422 and today().isoformat() in str(later.json()["errors"])
    roster_only = put_rota(client, NIP_OTHER, {"roster": {next_week.isoformat(): "P"}})
    assert roster_only.status_code == 200


def test_a_rota_keeps_closed_days_and_survives_concurrent_writes(attendance):
    client, db = attendance.client, attendance.db
    assert post_config(client, OPD, {"shifts": SHIFTS}).status_code == 201
    day = today().isoformat()
    # concurrent PUTs (and a person document created by one of them): all apply, one wins
    bodies = [{"pattern": {"anchor": day, "cycle": [code]}} for code in ("P", "S", "M")]
    responses = race(bodies, lambda body: put_rota(client, NIP_STAFF2, body))
    assert [r.status_code for r in responses] == [200, 200, 200]
    person = db.people.find_one({"_id": NIP_STAFF2})
    assert person["rota"]["pattern"]["cycle"][0] in ("P", "S", "M")
    assert 1 <= person["version"] <= 3
    # a roster entry of a closed day is final
    tomorrow = (today() + timedelta(days=1)).isoformat()
    assert put_rota(client, NIP_STAFF2, {"roster": {tomorrow: "M"}}).status_code == 200
    close_through(db, BIDANG, today() + timedelta(days=1))
    changed = put_rota(client, NIP_STAFF2, {"roster": {tomorrow: "P"}})
    assert changed.status_code == 422 and "closed" in str(changed.json()["errors"])
    later = (today() + timedelta(days=3)).isoformat()
    kept = put_rota(client, NIP_STAFF2, {"roster": {later: "S"}})
    assert kept.status_code == 200 and kept.json()["rota"]["roster"] == {tomorrow: "M",
                                                                         later: "S"}
    assert client.request("DELETE", f"{API}/people/{NIP_STAFF2}/rota",
                          token=admin(client)).status_code == 204
    assert "rota" not in db.people.find_one({"_id": NIP_STAFF2})


# -- outages -------------------------------------------------------------------------------------

def declare(client, unit=OPD, start=None, end=None, tok=None, key=None, reason="server down"):
    start = start or datetime.now(UTC) - timedelta(hours=1)
    end = end or start + timedelta(hours=2)
    return client.request("POST", f"{API}/outages", token=tok or admin(client),
                          headers={"Idempotency-Key": key} if key else None,
                          json={"unit": unit, "start": start.isoformat(),
                                "end": end.isoformat(), "reason": reason})


def outages(client, unit, tok=None, **query):
    params = "".join(f"&{k}={v}" for k, v in query.items())
    r = client.request("GET", f"{API}/outages?unit={unit}{params}", token=tok or admin(client))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_outage_declare_list_and_cancel(attendance):
    client, db = attendance.client, attendance.db
    r = declare(client, tok=opd_admin(client, OPD), reason="server pusat mati 07:00-08:00")
    assert r.status_code == 201, r.text
    outage = r.json()
    assert outage["declared_by"] == f"admin-{OPD}" and outage["cancelled"] is False
    # it applies to the subtree: the bidang sees it, the OPD too, the other OPD does not
    assert [o["id"] for o in outages(client, BIDANG)] == [outage["id"]]
    assert [o["id"] for o in outages(client, OPD)] == [outage["id"]]
    assert [o["id"] for o in outages(client, ROOT)] == [outage["id"]]  # declared below it
    assert outages(client, OTHER_OPD) == []
    assert len(Calendar(db, 0).outages(BIDANG)) == 1  # what the day close reads
    assert Calendar(db, 0).outages(OTHER_OPD) == []
    far = (today() + timedelta(days=60)).isoformat()
    bad_range = client.request("GET", f"{API}/outages?unit={BIDANG}&from={far}",
                               token=admin(client))
    assert bad_range.status_code == 422
    path = f"{API}/outages/{outage['id']}/cancel"
    cancel = client.request("POST", path, token=admin(client),
                            json={"reason": "salah input, server normal"})
    assert cancel.status_code == 200 and cancel.json()["cancelled"] is True
    assert cancel.json()["cancelled_by"] == "bkd-admin"
    again = client.request("POST", path, token=admin(client), json={"reason": "lagi-lagi"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["cancel_reason"] == "salah input, server normal"
    assert Calendar(db, 0).outages(BIDANG) == []
    assert outages(client, BIDANG)[0]["cancelled"] is True  # kept for the audit
    missing = client.request("POST", f"{API}/outages/nope/cancel", token=admin(client),
                             json={"reason": "tidak ada"})
    assert missing.status_code == 404


def test_outage_bad_input_repeat_and_race(attendance):
    client, db = attendance.client, attendance.db
    start = datetime.now(UTC)
    assert declare(client, start=start, end=start - timedelta(minutes=1)).status_code == 422
    naive = client.request("POST", f"{API}/outages", token=admin(client),
                           json={"unit": OPD, "start": "2026-12-05T07:00:00",
                                 "end": "2026-12-05T08:00:00", "reason": "x"})
    assert naive.status_code == 422 and {"start", "end", "reason"} <= set(naive.json()["errors"])
    assert declare(client, start=start, end=start + timedelta(days=20)).status_code == 422
    assert declare(client, unit="3510.99").status_code == 404
    assert db.outages.count_documents({}) == 0
    first = declare(client, key="outage-key-0001")
    repeat = declare(client, key="outage-key-0001")
    assert first.status_code == 201 and repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]
    responses = race(range(5), lambda _: declare(client, key="outage-key-0002"))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert db.outages.count_documents({}) == 2
    # concurrent cancels: one cancels, the others see it cancelled
    path = f"{API}/outages/{first.json()['id']}/cancel"
    cancels = race(range(4), lambda i: client.request("POST", path, token=admin(client),
                                                      json={"reason": f"batal nomor {i}"}))
    assert {r.status_code for r in cancels} == {200}
    assert len({r.json()["cancel_reason"] for r in cancels}) == 1


def test_an_outage_over_a_closed_day_is_refused(attendance):
    client, db = attendance.client, attendance.db
    yesterday = datetime.now(UTC) - timedelta(days=1)
    created = declare(client, start=yesterday).json()
    close_through(db, BIDANG, today() - timedelta(days=1))
    refused = declare(client, start=yesterday, unit=OPD)
    assert refused.status_code == 409 and "corrections" in refused.json()["detail"]
    assert BIDANG in refused.json()["detail"]
    cancel = client.request("POST", f"{API}/outages/{created['id']}/cancel",
                            token=admin(client), json={"reason": "terlambat dibatalkan"})
    assert cancel.status_code == 409
    assert db.outages.find_one({"_id": created["id"]})["cancelled"] is False
    # today is not closed, nor is the other OPD
    assert declare(client, start=datetime.now(UTC)).status_code == 201
    assert declare(client, start=yesterday, unit=OTHER_OPD).status_code == 201


# -- who may do what -----------------------------------------------------------------------------

def test_authorization_matrix(attendance):
    client, db = attendance.client, attendance.db
    assert post_config(client, OPD, {"shifts": SHIFTS}).status_code == 201
    outage = declare(client).json()
    day = today().isoformat()
    later = (today() + timedelta(days=30)).isoformat()
    staff = token(client, NIP_STAFF)  # pegawai of the bidang
    other_staff = token(client, NIP_OTHER, opd=OTHER_OPD)
    other_admin = opd_admin(client, OTHER_OPD)
    bidang_admin = opd_admin(client, BIDANG)  # reads the OPD, writes the bidang
    boss = admin(client)

    def call(method, path, tok, json=None):
        return client.request(method, f"{API}{path}", token=tok, json=json).status_code

    config = {"effective_from": later, "settings": {"grace_minutes": 1}}
    rota = {"pattern": {"anchor": day, "cycle": ["P"]}}
    cancel = {"reason": "uji otorisasi"}
    cases = [
        # (method, path, body, {token: expected})
        ("GET", f"/units/{BIDANG}/settings", None,
         {staff: 200, other_staff: 404, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("GET", f"/units/{OPD}/settings", None,
         {staff: 404, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("GET", f"/units/{OPD}/config", None,
         {staff: 403, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("POST", f"/units/{OPD}/config", config,
         {staff: 403, other_admin: 404, bidang_admin: 403, boss: 201}),
        ("POST", f"/units/{BIDANG}/config", config,
         {staff: 403, other_admin: 404, bidang_admin: 201}),
        ("DELETE", f"/units/{BIDANG}/config/{later}", None,
         {staff: 403, other_admin: 404, bidang_admin: 200}),
        ("DELETE", f"/units/{OPD}/config/{later}", None,
         {other_admin: 404, bidang_admin: 403, boss: 200}),
        ("GET", "/holidays?year=2027", None, {staff: 200, other_admin: 200, boss: 200}),
        ("POST", "/holidays", {"date": "2027-12-18", "name": "Hari Jadi", "kind": "regional"},
         {staff: 403, other_admin: 403, bidang_admin: 403, boss: 201}),
        ("DELETE", "/holidays/2027-12-18", None,
         {staff: 403, other_admin: 403, bidang_admin: 403, boss: 204}),
        ("GET", f"/people/{NIP_STAFF}/rota", None,
         {staff: 200, other_staff: 404, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("PUT", f"/people/{NIP_STAFF}/rota", rota,
         {staff: 403, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("DELETE", f"/people/{NIP_STAFF}/rota", None,
         {staff: 403, other_admin: 404, bidang_admin: 204}),
        ("POST", "/outages", {"unit": OPD, "start": "2030-01-01T07:00:00+07:00",
                              "end": "2030-01-01T08:00:00+07:00", "reason": "uji otorisasi"},
         {staff: 403, other_admin: 404, bidang_admin: 403, boss: 201}),
        ("GET", f"/outages?unit={OPD}", None,
         {staff: 403, other_admin: 404, bidang_admin: 200, boss: 200}),
        ("POST", f"/outages/{outage['id']}/cancel", cancel,
         {staff: 403, other_admin: 404, bidang_admin: 403, boss: 200}),
    ]
    for method, path, body, expected in cases:
        for tok, status in expected.items():
            got = call(method, path, tok, body)
            assert got == status, (method, path, status, got)
        assert client.request(method, f"{API}{path}", json=body).status_code == 401
    assert db.outages.count_documents({"unit": OPD}) == 2


def test_two_replica_processes_lose_no_configuration_entry(config):
    """Two `pamong serve attendance` processes against one database, entries for one unit
    sent to both at once: each is stored once, none is lost."""
    from pamong.testing import HttpClient, free_port, serve_process
    from tests.integration.attendance_support import seed_directory

    ports = [free_port(), free_port()]
    env = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false", "ATTENDANCE_CONFIG_CACHE_SECONDS": "0"}
    processes = [serve_process(config, "attendance", port, **env) for port in ports]
    try:
        db = seed_directory(config)
        clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
        days = [today() + timedelta(days=n) for n in range(20, 32)]
        jobs = [(clients[i % 2], day) for i, day in enumerate(days)]
        jobs += [(clients[1], days[0])]  # and one repeat, through the other replica
        responses = race(jobs, lambda job: post_config(job[0], OPD, {"grace_minutes": 4},
                                                       start=job[1]))
        assert sorted(r.status_code for r in responses) == [200] + [201] * len(days)
        doc = db.unit_config.find_one({"_id": OPD})
        assert sorted(e["effective_from"] for e in doc["entries"]) == [d.isoformat()
                                                                      for d in days]
        assert doc["version"] == len(days)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)

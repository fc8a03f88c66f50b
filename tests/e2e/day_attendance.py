"""The attendance part of the day (owner: the attendance helper; see tests/e2e/day.py).

Who does what is drawn once, deterministically, from the directory demo's active employees:
two are sent on a surat tugas, two upload offline records, a dozen come late, one tries from
outside the fence and a few never come; everyone else checks in on time. Every write goes
through ``suite.write`` with an Idempotency-Key of its own (retried with the same key while
the module is away), every eventual state is waited for, and every assertion reads
attendance's own API or database.
"""

import json
import random
from collections import Counter
from datetime import UTC, datetime
from math import asin, cos, radians, sin, sqrt

import eventlet

from pamong.events.outbox import OUTBOX
from pamong.replica import EMPLOYEES, UNITS
from pamong.testing import wait_until
from services.attendance.seed import ASSIGNMENT_PLACE  # where a surat tugas sends two
from tests.e2e.suite import WAIT, WIB, at, eventually, retried

API = "/api/attendance/v1"
PEGAWAI = ("pegawai",)
ADMIN = {"roles": ("admin",), "opd": "3510"}
POOL = 10  # phones at once
LATE, OFFLINE, NEVER = 12, 2, 3
DAY_CLOSED_QUEUE = "e2e.attendance.day_closed"


def distance_m(lat1, lon1, lat2, lon2):
    phi1, phi2 = radians(lat1), radians(lat2)
    h = sin((phi2 - phi1) / 2) ** 2 + cos(phi1) * cos(phi2) * sin(radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000 * asin(min(1.0, sqrt(h)))


class AttendanceDay:
    def __init__(self, suite, world, day):
        self.suite, self.world, self.day = suite, world, day
        self.unit_of = {e["nip"]: e["unit"] for e in world.active}
        self.status = {}  # nip -> what happened: on_time, late, offline, assignment
        self.place = None  # the assignment's place, as attendance holds it
        self.outside = None  # (nip, the refusal)
        self.transferred = None
        self._draw()

    # -- who does what -------------------------------------------------------------------

    def _draw(self):
        rng = random.Random(18)
        heads = {p["id"] for p in self.world.positions.values() if p["heads_unit"]}
        staff = sorted(e["nip"] for e in self.world.active if e["position"] not in heads)
        # the two on assignment: staff of one unit that has a head to sign their surat tugas
        by_unit = Counter(self.unit_of[n] for n in staff)
        unit = next(u for u in sorted(by_unit) if by_unit[u] >= 4 and self.world.head_of(u))
        self.assigned = [n for n in staff if self.unit_of[n] == unit][:2]
        rest = [n for n in staff if n not in self.assigned]
        rng.shuffle(rest)
        self.late_ones, rest = rest[:LATE], rest[LATE:]
        self.offline_ones, rest = rest[:OFFLINE], rest[OFFLINE:]
        (self.outsider,), rest = rest[:1], rest[1:]
        self.never, rest = rest[:NEVER], rest[NEVER:]
        self.transfer_nip = rest[0]
        special = {*self.assigned, *self.late_ones, *self.offline_ones, self.outsider,
                   *self.never}
        self.on_time_ones = sorted(n for n in self.unit_of if n not in special)

    def _office(self, nip):
        offices = self.world.offices_of(self.unit_of[nip])
        assert offices, f"no office for {nip}'s unit {self.unit_of[nip]}"
        return offices[0]

    def _reading(self, nip, place, accuracy=12.0, jitter=0.00012, device_time=None):
        """A phone at ``place`` (a few metres off its centre) with a good fix."""
        rng = random.Random(f"{nip}:{device_time}")
        return {"latitude": place["latitude"] + rng.uniform(-jitter, jitter),
                "longitude": place["longitude"] + rng.uniform(-jitter, jitter),
                "accuracy_m": accuracy + rng.uniform(0, 8), "device_id": f"hp-{nip}",
                "device_time": (device_time or self.suite.clock.now()).astimezone(WIB)
                .isoformat(), "mock_location": False}

    def _opd(self, nip):
        unit = self.unit_of[nip]
        return ".".join(unit.split(".")[:2])

    def _record(self, kind, nip, place, expect=201, **reading):
        """``POST /check-<kind>`` from ``nip``'s phone at ``place``: the response."""
        return self.suite.write(
            "attendance", "POST", f"{API}/check-{kind}", key=f"{kind}-{nip}-{self.day}",
            roles=PEGAWAI, nip=nip, opd=self._opd(nip), expect=expect,
            json=self._reading(nip, place, **reading))

    def _check_in_all(self, nips, status, place_of=None, place_kind="office"):
        place_of = place_of or self._office

        def one(nip):
            record = self._record("in", nip, place_of(nip)).json()
            assert (record["kind"], record["date"], record["place_kind"], record["offline"]) \
                == ("in", self.day.isoformat(), place_kind, False), record
            assert record["place"] == place_of(nip)["name"] and record["flags"] == [], record
            self.status[nip] = status

        list(eventlet.GreenPool(POOL).imap(one, nips))

    # -- the steps -----------------------------------------------------------------------

    def set_up(self):
        """06:40: the DOMAIN defaults (07:30-16:00 Monday to Thursday) are the Pemda's hours,
        nothing to configure; attendance knows every unit and office, and watches its
        ``attendance.day_closed`` events on a queue of the test's own."""
        db = self.suite.db("attendance")
        eventually(lambda: db[UNITS].count_documents({}) >= len(self.world.units),
                   timeout=WAIT, interval=0.2, message="attendance's replica holding every unit")
        nip = self.on_time_ones[0]

        def me_today():  # the units reach its per-process cache within its period
            me = self.suite.read("attendance", f"{API}/me/today", roles=PEGAWAI, nip=nip)
            return me["places"] and me

        me = wait_until(me_today, timeout=WAIT, interval=0.5, message=f"{nip}'s office known")
        assert me["date"] == self.day.isoformat(), me
        assert (me["hours"]["start"], me["hours"]["end"]) == ("07:30", "16:00"), me
        assert [p["name"] for p in me["places"]] == [self._office(nip)["name"]], me
        self._day_closed_queue(declare=True)

    def on_time(self):
        """07:10: most active employees check in inside their office's fence."""
        self._check_in_all(self.on_time_ones, "on_time")
        db = self.suite.db("attendance")
        ids = [f"{nip}:{self.day}" for nip in self.on_time_ones]
        docs = retried(lambda: list(db.days.find({"_id": {"$in": ids}},
                                                 {"records": 1, "keys": 1})))
        assert len(docs) == len(ids)
        assert all(len(d["records"]) == 1 and d["keys"] == [d["records"][0]["key"]]
                   for d in docs), "one record per on-time employee"

    def offline(self):
        """07:20: two devices that were offline upload records captured at 07:05."""
        captured = at(self.day, "07:05")
        for nip in self.offline_ones:
            record = {"key": f"offline-in-{nip}-{self.day}", "kind": "in",
                      **self._reading(nip, self._office(nip), device_time=captured)}
            answer = self.suite.write(
                "attendance", "POST", f"{API}/records/offline", key=f"offline-{nip}-{self.day}",
                roles=PEGAWAI, nip=nip, opd=self._opd(nip), expect=200,
                json={"records": [record]}).json()
            (outcome,) = answer["outcomes"]
            # accepted, or (a retry after a lost answer) the same record as a duplicate
            assert outcome["outcome"] in ("accepted", "duplicate"), answer
            assert answer["rejected"] == 0, answer
            stored = outcome["record"]
            assert stored["offline"] and stored["flags"] == ["offline"], stored
            assert stored["place"] == self._office(nip)["name"], stored
            assert _same_minute(stored["at"], captured), stored  # the device's time counts
            day = self.suite.read("attendance", f"{API}/days/{nip}/{self.day}", **ADMIN)
            assert [r["key"] for r in day["records"]] == [record["key"]], day
            self.status[nip] = "offline"

    def assignment_candidates(self):
        """Two employees (NIPs) who have not checked in, for the surat tugas, and the place:
        ``(nips, {"name", "latitude", "longitude", "radius_m"})``."""
        for nip in self.assigned:
            day = self.suite.read("attendance", f"{API}/days/{nip}/{self.day}", **ADMIN)
            assert day["records"] == [], day
        return list(self.assigned), dict(ASSIGNMENT_PLACE)

    def expect_assignment(self, letter):
        """The surat tugas was signed (``letter``: what LettersDay.surat_tugas returned);
        attendance holds the assignment for both employees (its own state)."""
        # LettersDay returns {"letter_id", "nips", "place", "start", "end", ...}
        letter_id = (letter.get("letter_id") or letter.get("id")) if isinstance(letter, dict) \
            else letter
        if isinstance(letter, dict) and "nips" in letter:
            assert sorted(letter["nips"]) == sorted(self.assigned), letter
        db = self.suite.db("attendance")

        def held(nip):
            person = db.people.find_one({"_id": nip}, {"assignments": 1}) or {}
            return next((a for a in person.get("assignments", ())
                         if a["source"] == "letter" and a["status"] == "active"
                         and (letter_id is None or a["letter"] == letter_id)
                         and a["start"] <= self.day.isoformat() <= a["end"]), None)

        for nip in self.assigned:
            entry = eventually(lambda n=nip: held(n), timeout=WAIT, interval=0.2,
                               message=f"attendance holding the surat tugas of {nip}")
            assert entry["id"] == f"letter-{entry['letter']}", entry
            place = entry["place"]
            assert distance_m(place["latitude"], place["longitude"],
                              ASSIGNMENT_PLACE["latitude"], ASSIGNMENT_PLACE["longitude"]) < 50
            self.place = place
            listed = self.suite.read("attendance", f"{API}/assignments/{nip}", **ADMIN)
            assert entry["id"] in [a["id"] for a in listed["items"]], listed
            me = self.suite.read("attendance", f"{API}/me/today", roles=PEGAWAI, nip=nip)
            assert {(p["kind"], p["name"]) for p in me["places"]} >= {
                ("assignment", place["name"])}, me["places"]

    def late(self):
        """07:50: some employees check in late; one is outside the fence and refused."""
        self._check_in_all(self.late_ones, "late")
        nip, office = self.outsider, self._office(self.outsider)
        far = {**office, "latitude": office["latitude"] + 0.03}  # some 3.3 km north
        refused = self._record("in", nip, far, expect=422, jitter=0)
        problem = refused.json()
        assert refused.headers["Content-Type"].startswith("application/problem+json"), \
            refused.headers
        expected = distance_m(far["latitude"], far["longitude"], office["latitude"],
                              office["longitude"])
        assert problem["title"] == "Outside the geofence" and problem["reason"] == "outside", \
            problem
        assert problem["place"] == office["name"] and problem["radius_m"] == office["radius_m"]
        assert abs(problem["distance_m"] - expected) < 0.01 * expected, (problem, expected)
        assert f"{problem['distance_m']:.0f} m" in problem["detail"], problem
        self.outside = (nip, problem)
        day = self.suite.read("attendance", f"{API}/days/{nip}/{self.day}", **ADMIN)
        assert day["records"] == [] and day["refused"], day
        assert day["refused"][-1]["reason"] == "outside", day["refused"]

    def on_assignment(self):
        """The two employees check in at the assignment's place, accepted."""
        assert self.place, "expect_assignment first"
        self._check_in_all(self.assigned, "assignment", place_of=lambda _: self.place,
                           place_kind="assignment")

    def transfer_candidate(self):
        """An employee to transfer (NIP) and the unit code to move them to."""
        nip = self.transfer_nip
        assert self.status.get(nip) == "on_time", nip
        own = self._opd(nip)
        unit = next(code for code, u in sorted(self.world.units.items())
                    if u["kind"] == "opd" and u.get("offices") and code != own
                    and any(self.unit_of[n] == code for n in self.unit_of))
        return nip, unit

    def transfer_seen(self, nip, unit):
        """Attendance judges ``nip`` by ``unit`` now (its replica and its API)."""
        db = self.suite.db("attendance")
        eventually(lambda: (db[EMPLOYEES].find_one({"_id": nip}) or {})
                           .get("unit") == unit, timeout=WAIT, interval=0.2,
                   message=f"attendance's replica holding {nip} in {unit}")
        before, self.unit_of[nip] = self.unit_of[nip], unit
        self.transferred = (nip, before, unit)
        me = self.suite.read("attendance", f"{API}/me/today", roles=PEGAWAI, nip=nip)
        assert me["unit"] == unit, me
        assert [p["name"] for p in me["places"]] == [self._office(nip)["name"]], me["places"]
        assert [r["kind"] for r in me["records"]] == ["in"], me  # this morning's, kept
        assert me["presence"]["status"] == "checked_in", me["presence"]
        today = self.suite.read("attendance", f"{API}/units/{unit}/today", **ADMIN)
        assert nip in {p["nip"] for p in today["people"]}, f"{nip} not in {unit}'s today"

    def check_out(self):
        """16:05: everyone who checked in checks out (at the office of their unit now, or at
        the assignment's place)."""
        def one(nip):
            place = self.place if nip in self.assigned else self._office(nip)
            record = self._record("out", nip, place).json()
            assert record["kind"] == "out" and record["place"] == place["name"], record

        list(eventlet.GreenPool(POOL).imap(one, sorted(self.status)))

    def closed(self):
        """00:05 the next day: every unit's day is closed and each employee's status is what
        happened (present, TL, assignment, absent...), the recap agrees."""
        db = self.suite.db("attendance")
        day = self.day.isoformat()
        active = retried(lambda: {e["_id"]: e["unit"] for e in db[EMPLOYEES].find(
            {"status": "active"}, {"unit": 1})})
        assert active == self.unit_of, ("attendance's replica: the active employees and units",
                                        set(active.items()) ^ set(self.unit_of.items()))
        units = sorted(set(active.values()))

        def all_closed():
            closes = list(db.closes.find({"_id": {"$in": [f"{u}:{day}" for u in units]},
                                          "state": "closed", "absences_done": True}))
            return len(closes) == len(units) and closes

        closes = eventually(all_closed, timeout=WAIT, interval=0.25,
                            message=f"every unit's {day} closed by the timer")
        # the day_closed events left the outbox (published with the close, DESIGN §4)
        eventually(lambda: db.closes.count_documents(
            {"_id": {"$in": [c["_id"] for c in closes]}, f"{OUTBOX}.0": {"$exists": True}})
            == 0, timeout=WAIT, interval=0.25, message="every day_closed published")

        expected = {nip: self._expected(nip) for nip in active}
        want = {u: _counts([expected[n] for n in active if active[n] == u]) for u in units}
        got = {c["unit"]: c["counts"] for c in closes}
        for unit in units:
            assert {k: got[unit][k] for k in want[unit]} == want[unit], (unit, got[unit])
            assert got[unit]["employees"] == sum(1 for n in active if active[n] == unit)
        # each employee's result, as the unit's day report shows it and as stored
        results = {}
        for page in eventlet.GreenPool(POOL).imap(self._unit_day, units):
            results.update(page)
        stored = retried(lambda: {d["nip"]: d for d in db.days.find(
            {"date": day, "result": {"$exists": True}}, {"result": 1, "nip": 1, "unit": 1})})
        for nip, (status, codes, flags) in expected.items():
            result = results[nip]
            assert (result["status"], result["codes"], result["flags"]) == (
                status, codes, flags), (nip, self.status.get(nip), result)
            assert stored[nip]["result"]["status"] == status
            assert stored[nip]["unit"] == active[nip], stored[nip]
        self._check_day_closed_events(got)
        self._check_monthly(expected)

    def _expected(self, nip):
        """(status, codes, flags) of ``nip``'s closed day, from what they did."""
        return {"on_time": ("present", [], []), "late": ("present", ["TL1"], []),
                "offline": ("present", [], ["offline"]),
                "assignment": ("assignment", [], [])}.get(self.status.get(nip),
                                                          ("absent", [], []))

    def _unit_day(self, unit):
        """``GET /units/<unit>/days/<day>`` (every page): ``{nip: result}``."""
        path, results, cursor = f"{API}/units/{unit}/days/{self.day}?limit=200", {}, None
        while True:
            page = self.suite.read("attendance", path + (f"&cursor={cursor}" if cursor else ""),
                                   **ADMIN)
            assert page["state"] == "closed", page
            results.update({item["nip"]: item["result"] for item in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                return results

    def _check_monthly(self, expected):
        """The month's recap of the whole Pemda adds up to the day (and what the close of
        the day before, the first the timer closed, said)."""
        month = f"{self.day:%Y-%m}"
        recap = self.suite.read("attendance", f"{API}/reports/monthly?unit=3510&month={month}"
                                f"&subunits=true", **ADMIN)
        before = Counter()
        db = self.suite.db("attendance")
        for close in retried(lambda: list(db.closes.find(
                {"date": {"$lt": self.day.isoformat(), "$gte": month}, "state": "closed"},
                {"counts": 1}))):
            before.update(close["counts"])
        total = recap["total"]
        statuses = Counter(status for status, _, _ in expected.values())
        late = sum(1 for _, codes, _ in expected.values() if "TL1" in codes)
        assert total["days_present"] == statuses["present"] + before["present"], total
        assert total["absences"] == statuses["absent"] + before["absent"], total
        assert total["assignment_days"] == statuses["assignment"] + before["assignment"], total
        assert total["brackets"]["TL1"]["count"] == late + before["late"], total

    # -- attendance.day_closed, as a consumer sees it ----------------------------------------

    def _day_closed_queue(self, declare=False):
        from kombu import Connection, Queue

        from pamong.events.topology import event_exchange

        queue = Queue(DAY_CLOSED_QUEUE, exchange=event_exchange("attendance"),
                      routing_key="attendance.day_closed", durable=True, auto_delete=False)
        if declare:
            def declared():
                with Connection(self.suite.config["AMQP_URI"]) as conn:
                    queue(conn.default_channel).declare()
                return True

            eventually(declared, timeout=WAIT, interval=0.5,
                       message=f"{DAY_CLOSED_QUEUE} declared")
        return queue

    def _check_day_closed_events(self, counts):
        """One ``attendance.day_closed`` per unit for the day, saying the close's counts;
        the test's queue is drained and deleted afterwards."""
        from kombu import Connection

        seen = {}

        def drain():
            with Connection(self.suite.config["AMQP_URI"]) as conn:
                queue = self._day_closed_queue()(conn.default_channel)
                while (message := queue.get(no_ack=True)) is not None:
                    event = json.loads(message.body)
                    data = event["data"]
                    if data["date"] == self.day.isoformat():
                        seen.setdefault((data["unit"], event["id"]), data)
            return {unit for unit, _ in seen} >= set(counts)

        eventually(drain, timeout=WAIT, interval=0.5,
                   message="a day_closed for every unit")
        per_unit = Counter(unit for unit, _ in seen)
        assert max(per_unit.values()) == 1, f"day_closed twice (other event ids): {per_unit}"
        for (unit, _), data in seen.items():
            assert data["counts"] == counts[unit] and data["revision"] == 0, (unit, data)
        def deleted():
            with Connection(self.suite.config["AMQP_URI"]) as conn:
                self._day_closed_queue()(conn.default_channel).delete()
            return True

        eventually(deleted, timeout=WAIT, interval=0.5,
                   message=f"{DAY_CLOSED_QUEUE} deleted")
        self.day_closed_events = len(seen)

    # -- for the summary -----------------------------------------------------------------

    def present_count(self):
        """How many employees checked in that day (for the permits dashboard's headcount)."""
        db = self.suite.db("attendance")
        present = retried(lambda: db.days.count_documents(
            {"date": self.day.isoformat(), "records.kind": "in"}))
        assert present == len(self.status), (present, len(self.status))
        return present

    def counts(self):
        db = self.suite.db("attendance")
        day = self.day.isoformat()
        records, per_key, results = Counter(), Counter(), Counter()
        duplicated_keys = refused = 0
        for doc in retried(lambda: list(db.days.find(
                {"date": day}, {"records": 1, "keys": 1, "refused": 1, "result": 1}))):
            keys = [r["key"] for r in doc.get("records", ())]
            per_key.update(keys)
            duplicated_keys += len(doc.get("keys", ())) - len(set(doc.get("keys", ())))
            records.update(r["kind"] for r in doc.get("records", ()))
            records["offline"] += sum(1 for r in doc.get("records", ()) if r["offline"])
            refused += len(doc.get("refused", ()))
            result = doc.get("result") or {}
            if result:
                results[result["status"]] += 1
                results["late"] += any(c.startswith("TL") for c in result["codes"])
        return {"check_ins": records["in"], "check_outs": records["out"],
                "records_per_key_max": max(per_key.values(), default=0),
                "duplicate_keys": duplicated_keys, "offline": records["offline"],
                "refused": refused, "present": results["present"], "late": results["late"],
                "assignment": results["assignment"], "absent": results["absent"],
                "day_closed_events": getattr(self, "day_closed_events", None)}


def _counts(expected):
    """A unit's close counts from the expected (status, codes, flags) of its employees."""
    counts = Counter(status for status, _, _ in expected)
    late = sum(1 for status, codes, _ in expected if status == "present" and codes)
    return {"present": counts["present"], "on_time": counts["present"] - late, "late": late,
            "early_leave": 0, "absent": counts["absent"], "leave": 0,
            "assignment": counts["assignment"], "holiday": 0, "day_off": 0, "outage": 0,
            "flagged": sum(1 for _, _, flags in expected if flags)}


def _same_minute(text, when):
    at = datetime.fromisoformat(text)
    return abs(((at if at.tzinfo else at.replace(tzinfo=UTC)) - when).total_seconds()) < 60

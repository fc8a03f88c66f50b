"""Check-in, check-out, offline batches and one employee's day (``pegawai`` and readers)."""

from datetime import UTC, date, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates

from pamong.events.outbox import OUTBOX
from pamong.storage import db_now, to_ms
from pamong.web import Problem, route, unprocessable
from pamong.web.idempotency import IDEMPOTENCY_KEY, idempotency_key
from services.attendance import records as rec
from services.attendance.access import API, STAFF_READERS, active_self, employee_or_404
from services.attendance.domain import zone
from services.attendance.store import DAYS, day_id

TAGS = ["records"]


class AwareDateTime(fields.AwareDateTime):
    """An ISO-8601 time with its offset (a device's local time without one is ambiguous)."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)


class Reading(Schema):
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    accuracy_m = fields.Float(required=True, validate=validate.Range(min=0, max=100_000),
                              metadata={"description": "the device's horizontal accuracy"})
    device_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    device_time = AwareDateTime(required=True, metadata={
        "description": "the device's own clock, with its offset"})
    mock_location = fields.Boolean(load_default=False, metadata={
        "description": "the device reports a mock-location provider"})


class OfflineRecord(Reading):
    key = fields.String(required=True, validate=validate.Regexp(IDEMPOTENCY_KEY), metadata={
        "description": "the record's own id, made on the device (a re-upload is ignored)"})
    kind = fields.String(required=True, validate=validate.OneOf(("in", "out")))


class OfflineBatch(Schema):
    records = fields.List(fields.Nested(OfflineRecord), required=True)

    @validates("records")
    def not_empty(self, value, **kwargs):
        if not value:
            raise ValidationError("at least one record")


class RecordOut(Schema):
    key = fields.String(required=True)
    kind = fields.String(required=True)
    date = fields.String(required=True)
    at = fields.DateTime(required=True, metadata={"description": "the time that counts"})
    received_at = fields.DateTime(required=True)
    device_at = fields.DateTime(allow_none=True)
    place = fields.String(required=True)
    place_kind = fields.String(required=True, metadata={"description": "office | assignment"})
    distance_m = fields.Float(required=True)
    radius_m = fields.Integer(required=True)
    accuracy_m = fields.Float(required=True)
    flags = fields.List(fields.String(), required=True)
    offline = fields.Boolean(required=True)


class Outcome(Schema):
    key = fields.String(required=True)
    outcome = fields.String(required=True, metadata={
        "description": "accepted | duplicate | rejected"})
    reason = fields.String(allow_none=True, metadata={
        "description": "outside | accuracy | no_place | too_old | in_future"})
    detail = fields.String(allow_none=True)
    distance_m = fields.Float(allow_none=True)
    radius_m = fields.Integer(allow_none=True)
    record = fields.Nested(RecordOut, allow_none=True)


class BatchOut(Schema):
    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    outcomes = fields.List(fields.Nested(Outcome), required=True)


class DayOut(Schema):
    nip = fields.String(required=True)
    date = fields.String(required=True)
    unit = fields.String(required=True)
    records = fields.List(fields.Nested(RecordOut), required=True)
    refused = fields.List(fields.Dict(), required=True)
    result = fields.Dict(allow_none=True, metadata={"description": "once the day is closed"})
    correction = fields.Dict(allow_none=True)


REFUSALS = {
    "outside": "You are outside the area where you may record: {distance:.0f} m from {place}, "
               "which accepts {radius} m.",
    "accuracy": "Your position is too imprecise (±{accuracy:.0f} m) for {place}, which accepts "
                "{radius} m: move to open sky or wait for a better fix, then try again.",
    "no_place": "No office or assignment place is set for your unit: ask your OPD admin.",
}


def refusal_detail(fence):
    place = fence["place"] or {}
    return REFUSALS[fence["reason"]].format(
        distance=fence["distance_m"] or 0, place=place.get("name", "your office"),
        radius=fence["radius_m"], accuracy=fence["accuracy_m"] or 0)


def record_out(record, day):
    return {**record, "date": day if isinstance(day, str) else day.isoformat()}


class CheckInEndpoints:
    """Mixed into the attendance service (needs ``db``, ``outbox``, ``config``,
    ``calendar``; ``note_revision`` and ``revise_noted`` from the closing mixin)."""

    @route("POST", f"{API}/check-in", roles=("pegawai",), body=Reading(),
           response=RecordOut(), status=201, tags=TAGS,
           summary="Check in (Idempotency-Key header; a repeat returns the first result)")
    def check_in(self, request, principal, body):
        return self._record_now(request, principal, body, "in")

    @route("POST", f"{API}/check-out", roles=("pegawai",), body=Reading(),
           response=RecordOut(), status=201, tags=TAGS,
           summary="Check out (Idempotency-Key header; a repeat returns the first result)")
    def check_out(self, request, principal, body):
        return self._record_now(request, principal, body, "out")

    @route("POST", f"{API}/records/offline", roles=("pegawai",), body=OfflineBatch(),
           response=BatchOut(), tags=TAGS, max_body=2 * 1024 * 1024,
           summary="Upload records a device captured while offline; each record's outcome")
    def upload_offline(self, request, principal, body):
        limit = int(self.config.get("ATTENDANCE_OFFLINE_MAX_RECORDS", 100))
        if len(body["records"]) > limit:
            raise unprocessable({"records": [f"at most {limit} records per upload"]})
        employee = active_self(self.db, principal)
        outcomes = [self._record_offline(employee, record) for record in
                    sorted(body["records"], key=lambda r: r["device_time"])]
        counts = {kind: sum(1 for o in outcomes if o["outcome"] == kind)
                  for kind in ("accepted", "duplicate", "rejected")}
        order = {r["key"]: i for i, r in enumerate(body["records"])}
        outcomes.sort(key=lambda o: order[o["key"]])
        return {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                "rejected": counts["rejected"], "outcomes": outcomes}

    @route("GET", f"{API}/days/<nip>/<day>", roles=("pegawai", *STAFF_READERS),
           response=DayOut(), tags=TAGS, problems={422: "`day` is not a date YYYY-MM-DD"},
           summary="One employee's day: records, refused attempts, result once closed")
    def get_day(self, request, principal, nip, day):
        employee = employee_or_404(self.db, principal, nip)
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise unprocessable({"day": ["a date as YYYY-MM-DD"]}) from None
        doc = self.db[DAYS].find_one({"_id": day_id(nip, day)}, {OUTBOX: 0}) or {}
        return {"nip": nip, "date": day.isoformat(), "unit": doc.get("unit", employee["unit"]),
                "records": [record_out(r, day) for r in doc.get("records", ())],
                "refused": doc.get("refused", []), "result": doc.get("result"),
                "correction": doc.get("correction")}

    # -- the two paths -----------------------------------------------------------------------

    def _record_now(self, request, principal, body, kind):
        key = idempotency_key(request, required=True)
        employee = active_self(self.db, principal)
        received = db_now()
        unit, nip = employee["unit"], employee["_id"]
        person = rec.person_of(self.db, nip)
        day = rec.day_for(self.calendar, unit, rec.rota_of(person), received)
        reading = reading_of(body, received, received)
        tz = self.calendar.timezone(unit)
        if kind == "in" and not rec.near_midnight(received, tz):
            # the morning peak: most check-ins are their day's first record, stored by one
            # insert without reading the day first; a day that holds anything already (a
            # record, a refusal, this request's first try) takes the general path below
            record, fence = self._judged(employee, person, day, None, reading, kind, key,
                                         False)
            if record is not None and rec.write_first_record(self.outbox, employee, day,
                                                             record):
                return 201, record_out(record, day)
        replay, replay_day, doc = rec.find_replay(self.db, nip, day, key, tz, received)
        if replay is not None:
            return 201, record_out(replay, replay_day), {"Idempotent-Replayed": "true"}
        record, fence = self._judged(employee, person, day, doc, reading, kind, key, False)
        if record is None:
            rec.note_refusal(self.db, employee, day, refusal_of(reading, kind, fence))
            raise Problem(422, refusal_detail(fence), title="Outside the geofence",
                          extensions=fence_extensions(fence))
        stored, written = rec.write_record(self.db, self.outbox, employee, day, record)
        headers = {} if written else {"Idempotent-Replayed": "true"}
        return 201, record_out(stored, day), headers

    def _record_offline(self, employee, body):
        received = db_now()
        at = to_ms(body["device_time"].astimezone(UTC))
        max_age = timedelta(hours=float(self.config.get("ATTENDANCE_OFFLINE_MAX_AGE_HOURS",
                                                        72)))
        drift = timedelta(seconds=int(self.config.get("ATTENDANCE_MAX_CLOCK_DRIFT_SECONDS",
                                                      300)))
        outcome = {"key": body["key"], "outcome": "rejected", "record": None}
        if received - at > max_age:
            return {**outcome, "reason": "too_old", "detail": f"recorded more than "
                    f"{max_age.total_seconds() / 3600:g} hours ago: ask for a correction"}
        if at - received > drift:
            return {**outcome, "reason": "in_future",
                    "detail": "the device clock is ahead of the server's: set it right"}
        unit, nip = employee["unit"], employee["_id"]
        person = rec.person_of(self.db, nip)
        day = rec.day_for(self.calendar, unit, rec.rota_of(person), at)
        doc = self.db[DAYS].find_one({"_id": day_id(nip, day)}, {OUTBOX: 0})
        if (first := rec.stored_record(doc, body["key"])) is not None:
            return {**outcome, "outcome": "duplicate", "record": record_out(first, day)}
        reading = reading_of(body, at, received)
        record, fence = self._judged(employee, person, day, doc, reading, body["kind"],
                                     body["key"], True)
        if record is None:
            rec.note_refusal(self.db, employee, day, refusal_of(reading, body["kind"], fence))
            return {**outcome, "reason": fence["reason"], "detail": refusal_detail(fence),
                    "distance_m": fence["distance_m"], "radius_m": fence["radius_m"]}
        note = self.note_revision(employee, day, day, "offline record")  # a closed day
        stored, written = rec.write_record(self.db, self.outbox, employee, day, record)
        self.revise_noted(employee, note)
        return {**outcome, "outcome": "accepted" if written else "duplicate",
                "record": record_out(stored, day)}

    def _judged(self, employee, person, day, doc, reading, kind, key, offline):
        """(the record to store, fence) or (None, fence) when refused."""
        settings = self.calendar.settings(employee["unit"], day)
        places = rec.places_for(self.calendar, employee["unit"], person, day)
        previous = rec.previous_record(doc, reading["at"])
        fence, flags = rec.judge(reading, places, previous, settings, offline)
        if not fence["inside"]:
            return None, fence
        others = rec.note_device(self.db, reading["device_id"], day, employee["_id"])
        tz = zone(self.calendar.timezone(employee["unit"]))
        if others and reading["at"].astimezone(tz).time() < settings["morning_ends"]:
            flags = sorted({*flags, "shared_device"})
        place = fence["place"]
        record = {"key": key, "kind": kind, "at": reading["at"],
                  "received_at": reading["received_at"], "device_at": reading["device_at"],
                  "latitude": reading["latitude"], "longitude": reading["longitude"],
                  "accuracy_m": reading["accuracy_m"], "device_id": reading["device_id"],
                  "mock": reading["mock"], "place": place["name"], "place_kind": place["kind"],
                  "distance_m": round(fence["distance_m"], 1), "radius_m": place["radius_m"],
                  "flags": flags, "offline": offline}
        return record, fence


def reading_of(body, at, received):
    return {"latitude": body["latitude"], "longitude": body["longitude"],
            "accuracy_m": body["accuracy_m"], "device_id": body["device_id"],
            "device_at": to_ms(body["device_time"].astimezone(UTC)),
            "mock": body["mock_location"],
            "at": at, "received_at": received}


def refusal_of(reading, kind, fence):
    return {"kind": kind, "at": reading["at"], "received_at": reading["received_at"],
            "latitude": reading["latitude"], "longitude": reading["longitude"],
            "accuracy_m": reading["accuracy_m"], "device_id": reading["device_id"],
            "reason": fence["reason"], "distance_m": fence["distance_m"],
            "radius_m": fence["radius_m"], "place": (fence["place"] or {}).get("name")}


def fence_extensions(fence):
    return {"reason": fence["reason"], "place": (fence["place"] or {}).get("name"),
            "distance_m": None if fence["distance_m"] is None else round(fence["distance_m"], 1),
            "radius_m": fence["radius_m"], "accuracy_m": fence["accuracy_m"]}

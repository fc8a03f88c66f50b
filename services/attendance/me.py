"""The signed-in employee's own day (``pegawai``): where they may record today and how today
stands, in one read for the check-in page (which keeps it on the phone for offline use).

Nothing here is new judgement: the places are ``records.places_for`` (what a check-in is
judged against), the day is ``records.day_for`` (a night shift's morning belongs to the
evening before), the presence is the report's ``_presence`` (``domain.presence_now``: never
"absent" before the close).
"""

from marshmallow import Schema, fields

from pamong.storage import db_now
from pamong.web import route
from services.attendance import records as rec
from services.attendance.access import API, active_self
from services.attendance.checkin import RecordOut, record_out
from services.attendance.reports import PresenceLine
from services.attendance.store import DAYS, PEOPLE, day_id, day_window_for

TAGS = ["records"]
PLACE_FIELDS = ("name", "kind", "latitude", "longitude", "radius_m")
PERSON_FIELDS = ("nip", "name", "unit")  # of a presence line: the page knows whose day it is


class PlaceOut(Schema):
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "office | assignment"})
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)
    radius_m = fields.Integer(required=True)
    assignment = fields.String(allow_none=True, metadata={
        "description": "the assignment's id, for an assignment place"})
    purpose = fields.String(allow_none=True)


class HoursOut(Schema):
    start = fields.String(required=True, metadata={"description": "HH:MM, unit time"})
    end = fields.String(required=True)
    break_minutes = fields.Integer(required=True)
    shift = fields.String(allow_none=True)


class MeTodayOut(Schema):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    unit = fields.String(required=True)
    unit_name = fields.String(allow_none=True)
    date = fields.String(required=True, metadata={
        "description": "the working day a record made now belongs to (unit time)"})
    timezone = fields.String(required=True, metadata={"description": "the unit's IANA zone"})
    generated_at = fields.DateTime(required=True)
    hours = fields.Nested(HoursOut, allow_none=True, metadata={
        "description": "planned hours of the day; null: a day off"})
    places = fields.List(fields.Nested(PlaceOut), required=True, metadata={
        "description": "where a record is accepted today: the unit's offices (or the "
                       "nearest unit above with offices) and active assignment places"})
    presence = fields.Nested(PresenceLine, exclude=PERSON_FIELDS, required=True)
    records = fields.List(fields.Nested(RecordOut), required=True)
    refused = fields.Integer(required=True, metadata={
        "description": "refused attempts kept for the day"})


def place_out(place, purposes):
    out = {k: place.get(k) for k in PLACE_FIELDS}
    if place.get("kind") == "assignment":
        out["assignment"] = place.get("assignment")
        out["purpose"] = purposes.get(place.get("assignment"))
    return out


class MeEndpoints:
    """Mixed into the attendance service (needs ``db``, ``calendar`` and ``_presence`` from
    the reports mixin)."""

    @route("GET", f"{API}/me/today", roles=("pegawai",), response=MeTodayOut(), tags=TAGS,
           summary="Your working day now: where you may record (places with radius), "
                   "planned hours, presence so far, your records")
    def me_today(self, request, principal):
        employee = active_self(self.db, principal)
        nip, unit = employee["_id"], employee["unit"]
        person = self.db[PEOPLE].find_one(
            {"_id": nip}, {"leaves": 1, "assignments": 1, "rota": 1}) or {"_id": nip}
        rota = rec.rota_of(person)
        day = rec.day_for(self.calendar, unit, rota, db_now())
        doc = self.db[DAYS].find_one({"_id": day_id(nip, day)},
                                     {"records": 1, "refused": 1, "correction": 1, "unit": 1})
        presence = self._presence(employee, day, doc, person)
        hours, _, _ = day_window_for(self.calendar, unit, day, rota)
        unit_doc = self.calendar.unit(unit) or {}
        purposes = {a["id"]: a.get("purpose") for a in rec.active_assignments(person, day)}
        return {
            "nip": nip, "name": employee.get("name") or employee.get("display_name"),
            "unit": unit, "unit_name": unit_doc.get("name"), "date": day.isoformat(),
            "timezone": self.calendar.timezone(unit), "generated_at": db_now(),
            "hours": hours and hours.to_dict(),
            "places": [place_out(p, purposes)
                       for p in rec.places_for(self.calendar, unit, person, day)],
            "presence": {k: presence[k] for k in PresenceLine._declared_fields
                         if k not in PERSON_FIELDS},
            "records": [record_out(r, day) for r in sorted((doc or {}).get("records", ()),
                                                           key=lambda r: r["at"])],
            "refused": len((doc or {}).get("refused", ())),
        }

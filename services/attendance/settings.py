"""A unit's attendance settings on the wire and in the database (JSON), and in the domain's
form (``Hours``, ``time``, ``Decimal``). One schema does both directions: ``SettingsSchema``
loads JSON into the domain form and dumps it back, so what is stored is exactly what the API
shows.

    {"week": {"1": {"start": "07:30", "end": "16:00", "break_minutes": 60}, ..., "6": null},
     "ramadan": [{"start": "2027-02-08", "end": "2027-03-09"}],
     "shifts": {"P": {"start": "07:00", "end": "14:00"}, "M": {"start": "21:00", "end": "07:00"}},
     "checkin_from": "05:00", "grace_minutes": 0,
     "tl_brackets": [{"upto": 30, "percent": "0.5"}, ..., {"upto": null, "percent": "2"}], ...}
"""

from datetime import date, time
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, post_load, pre_dump, validate

from services.attendance import domain


class Clock(fields.Field):
    """``"HH:MM"`` <-> ``time``."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            parsed = time.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValidationError("a time of day as HH:MM") from None
        return parsed.replace(second=0, microsecond=0)


class HoursSchema(Schema):
    start = Clock(required=True)
    end = Clock(required=True, metadata={"description": "before start: ends the next day"})
    break_minutes = fields.Integer(load_default=0, validate=validate.Range(min=0, max=240))

    @pre_dump
    def from_hours(self, hours, **kwargs):
        return {"start": hours.start, "end": hours.end, "break_minutes": hours.break_minutes}

    @post_load
    def to_hours(self, data, **kwargs):
        hours = domain.Hours(data["start"], data["end"], data["break_minutes"])
        if hours.work_minutes <= 0:
            raise ValidationError("the break is longer than the day", "break_minutes")
        return hours


WEEKDAYS = [str(day) for day in range(1, 8)]


class Week(fields.Field):
    """``{"1".."7": hours | null}`` (ISO weekdays, Monday 1) <-> ``{1..7: Hours | None}``;
    a weekday left out is a day off."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:  # a Ramadan profile without its own week
            return None
        return {str(day): None if hours is None else HoursSchema().dump(hours)
                for day, hours in sorted(value.items())}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict) or set(value) - set(WEEKDAYS):
            raise ValidationError("an object keyed by ISO weekday, \"1\" (Monday) to \"7\"")
        week, errors = {}, {}
        for day in range(1, 8):
            raw = value.get(str(day))
            try:
                week[day] = None if raw is None else HoursSchema().load(raw)
            except ValidationError as exc:
                errors[str(day)] = exc.messages
        if errors:
            raise ValidationError(errors)
        if not any(week.values()):
            raise ValidationError("a week needs at least one working day")
        return week


class RamadanSchema(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    week = Week(load_default=None, dump_default=None, allow_none=True, metadata={
        "description": "the Ramadan week; omitted: DOMAIN's (08:00, 32.5 hours)"})

    @post_load
    def checked(self, data, **kwargs):
        if data["end"] < data["start"]:
            raise ValidationError("before the start", "end")
        return {k: v for k, v in data.items() if v is not None}


class BracketSchema(Schema):
    upto = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1),
                          metadata={"description": "highest minutes of the bracket; null: "
                                                   "open (also a missing record)"})
    percent = fields.Decimal(required=True, as_string=True, places=2,
                             validate=validate.Range(min=0, max=100))


class Brackets(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return [BracketSchema().dump({"upto": upto, "percent": percent})
                for upto, percent in value]

    def _deserialize(self, value, attr, data, **kwargs):
        rows = BracketSchema(many=True).load(value)
        table = tuple((row["upto"], row["percent"]) for row in rows)
        problems = domain.bracket_problems(table)
        if problems:
            raise ValidationError([reason for _, reason in problems])
        return table


class SettingsSchema(Schema):
    """Every field is optional: an entry sets what it names and inherits the rest."""

    week = Week(metadata={"description": "the weekly schedule (5- or 6-day weeks)"})
    ramadan = fields.List(fields.Nested(RamadanSchema))
    shifts = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9]{1,8}$")),
                         values=fields.Nested(HoursSchema), metadata={
                             "description": "the rota's shifts of a 24-hour unit"})
    checkin_from = Clock(metadata={"description": "earliest check-in of an office day"})
    shift_lead_minutes = fields.Integer(validate=validate.Range(min=0, max=600))
    grace_minutes = fields.Integer(validate=validate.Range(min=0, max=60))
    tl_brackets = Brackets()
    psw_brackets = Brackets()
    absent_percent = fields.Decimal(as_string=True, places=2,
                                    validate=validate.Range(min=0, max=100))
    max_clock_drift_seconds = fields.Integer(validate=validate.Range(min=10, max=86_400))
    max_speed_kmh = fields.Integer(validate=validate.Range(min=10, max=2_000))
    morning_ends = Clock()


SETTINGS = SettingsSchema()


def settings_to_json(settings):
    return SETTINGS.dump(settings)


def settings_from_json(data):
    return SETTINGS.load(data)


def entry_from_doc(unit, entry):
    """A stored entry ``{"effective_from": "YYYY-MM-DD", "settings": {...}}`` in the
    domain's form."""
    return {"unit": unit, "effective_from": date.fromisoformat(entry["effective_from"]),
            "settings": settings_from_json(entry["settings"])}


def defaults_json():
    return settings_to_json(domain.DEFAULT_SETTINGS)


def as_decimal(value):
    return Decimal(str(value))

"""Check-in and check-out records: judging one (geofence, flags) and storing it exactly once.

A record lives in its day document (``days``, ``_id "<nip>:<date>"``) with its idempotency
key; the write is one ``update_one`` filtered on the key's absence that also carries the
event (outbox), so two replicas receiving the same request concurrently store one record and
publish one event, and a crash before or after the write repeats or returns the same result.
"""

from datetime import date, timedelta

import pymongo.errors

from pamong.contracts.attendance import CheckedIn, CheckedOut
from pamong.events.outbox import OUTBOX
from pamong.storage import GroupFind, GroupInsert, grouped, insert_each
from services.attendance import domain
from services.attendance.store import DAYS, DEVICES, PEOPLE, day_id

EVENTS = {"in": "attendance.checked_in", "out": "attendance.checked_out"}
CONTRACTS = (CheckedIn, CheckedOut)  # registered on import
PERSON_FIELDS = (("rota", 1), ("assignments", 1))  # what a record is judged with
REFUSALS_KEPT = 20  # refused attempts kept per day (enough to settle "I was there")
# a retry just after midnight (local) still finds a record written just before it
REPLAY_AFTER_MIDNIGHT = timedelta(minutes=15)


def person_of(db, nip):
    """The employee's rota and assignments (not the leave and correction history the same
    document keeps, which grows with the years), read with the concurrent workers' reads."""
    return grouped(GroupFind, db[PEOPLE], PERSON_FIELDS).insert(nip) or {"_id": nip}


def rota_of(person):
    """The employee's shift rota in the domain's form, None for an office worker."""
    rota = person.get("rota")
    if not rota:
        return None
    pattern = rota.get("pattern")
    return {"roster": {date.fromisoformat(k): v for k, v in (rota.get("roster") or {}).items()},
            "pattern": pattern and {"anchor": date.fromisoformat(pattern["anchor"]),
                                    "cycle": pattern["cycle"]}}


def day_for(calendar, unit, rota, at):
    """The working day a record at ``at`` belongs to: the unit's local date, except that a
    night shift's morning check-out belongs to the shift that started the evening before."""
    tz = calendar.timezone(unit)
    today = domain.local_date(at, tz)
    if rota is not None:
        yesterday = today - timedelta(days=1)
        settings = calendar.settings(unit, yesterday)
        hours = domain.hours_on(settings, yesterday, rota)
        if hours is not None and hours.crosses_midnight:
            opens, closes = domain.day_window(yesterday, hours, tz, settings)
            if opens <= at < closes:
                return yesterday
    return today


def active_assignments(person, day):
    return [a for a in person.get("assignments", ())
            if a.get("status", "active") == "active"
            and a["start"] <= day.isoformat() <= a["end"]]


def places_for(calendar, unit, person, day):
    """Where the employee may record on ``day``: their unit's offices (or the nearest
    ancestor's) and the place of every assignment covering the day."""
    places = [dict(office, kind="office") for office in calendar.offices(unit)]
    for assignment in active_assignments(person, day):
        places.append({**assignment["place"], "kind": "assignment",
                       "assignment": assignment["id"]})
    return places


def stored_record(day_doc, key):
    for record in (day_doc or {}).get("records", ()):
        if record.get("key") == key:
            return record
    return None


def find_replay(db, nip, day, key, tz, at):
    """``(record, its day, doc of day)``: the record stored under ``key`` for ``day`` (or for
    the day before, right after midnight); ``(None, day, doc)`` when there is none."""
    doc = db[DAYS].find_one({"_id": day_id(nip, day)})
    record = stored_record(doc, key)
    if record is not None:
        return record, day, doc
    if near_midnight(at, tz):
        before = day - timedelta(days=1)
        record = stored_record(db[DAYS].find_one({"_id": day_id(nip, before)}), key)
        if record is not None:
            return record, before, doc
    return None, day, doc


def near_midnight(at, tz):
    """Whether ``at`` is just after local midnight, when a repeat may belong to the day
    before (``REPLAY_AFTER_MIDNIGHT``)."""
    local = at.astimezone(domain.zone(tz))
    return local - local.replace(hour=0, minute=0, second=0, microsecond=0) \
        < REPLAY_AFTER_MIDNIGHT


def previous_record(doc, at):
    """The employee's record nearest before ``at`` that day (for impossible travel)."""
    earlier = [r for r in (doc or {}).get("records", ()) if r["at"] <= at]
    return max(earlier, key=lambda r: r["at"]) if earlier else None


def judge(reading, places, previous, settings, offline):
    """(geofence answer, flags) for a reading ``{"latitude", "longitude", "accuracy_m",
    "at", "device_at", "mock"}``."""
    fence = domain.geofence(reading["latitude"], reading["longitude"], reading["accuracy_m"],
                            places)
    return fence, domain.record_flags(reading, previous, settings, offline=offline)


def note_device(db, device, day, nip):
    """Record that ``device`` recorded ``nip`` on ``day``; the other employees it recorded
    that day (a shared device is flagged, never refused)."""
    return grouped(GroupDeviceNote, db[DEVICES]).insert((f"{device}:{day.isoformat()}", nip))


class GroupDeviceNote(GroupInsert):
    """``insert((device day id, nip))`` -> the other NIPs that device recorded that day; the
    notes of concurrent workers share one read by ``_id $in`` and one ``insert_many`` of the
    devices new today. A device seen before that has not recorded this NIP yet (a shared one,
    or another replica's insert that won) gets an ``$addToSet``, atomic per document."""

    def _write(self, notes):
        wanted = {}
        for device_day, nip in notes:
            wanted.setdefault(device_day, set()).add(nip)
        known = {d["_id"]: set(d.get("nips", ())) for d in self.collection.find(
            {"_id": {"$in": sorted(wanted)}})}
        new = [{"_id": d, "nips": sorted(nips)} for d, nips in wanted.items() if d not in known]
        if new:
            taken = insert_each(self.collection, new)  # False: another replica's was first
            for doc, inserted in zip(new, taken, strict=True):
                if isinstance(inserted, Exception):
                    raise inserted
                if inserted:
                    known[doc["_id"]] = set(doc["nips"])
        for device_day, nips in wanted.items():
            if device_day not in known or not nips <= known[device_day]:
                doc = self.collection.find_one_and_update(
                    {"_id": device_day}, {"$addToSet": {"nips": {"$each": sorted(nips)}}},
                    upsert=True, return_document=pymongo.ReturnDocument.AFTER)
                known[device_day] = set(doc["nips"])
        return [sorted(known[device_day] - {nip}) for device_day, nip in notes]


def note_refusal(db, employee, day, attempt):
    """Keep a refused attempt on the day (at most ``REFUSALS_KEPT``): a supervisor settling a
    correction sees that the employee tried, where, and how far off they were."""
    guarded = {"_id": day_id(employee["_id"], day),
               f"refused.{REFUSALS_KEPT - 1}": {"$exists": False}}
    update = {"$push": {"refused": attempt}, "$setOnInsert": new_day(employee, day)}
    try:
        db[DAYS].update_one(guarded, update, upsert=True)
    except pymongo.errors.DuplicateKeyError:  # exists (racing insert, or full): see above
        db[DAYS].update_one(guarded, update)


def new_day(employee, day):
    return {"nip": employee["_id"], "date": day.isoformat(), "unit": employee["unit"],
            "opd": employee.get("opd")}


def event_data(employee, day, record):
    return {"nip": employee["_id"], "unit": employee["unit"], "opd": employee.get("opd"),
            "date": day, "at": record["at"], "received_at": record["received_at"],
            "device_at": record["device_at"], "place": record["place"],
            "distance_m": record["distance_m"], "accuracy_m": record["accuracy_m"],
            "flags": record["flags"], "offline": record["offline"]}


def write_first_record(outbox, employee, day, record):
    """Store ``record`` as the first of its day: one insert of the day document with the
    record and its event. False when the day document exists already (a record, a refused
    attempt or a repeat of this one is in it): the caller then reads it and takes the
    general path (``write_record``), which judges against what the day holds."""
    document = {"_id": day_id(employee["_id"], day), **new_day(employee, day),
                "records": [record], "keys": [record["key"]]}
    event = outbox.event(EVENTS[record["kind"]], event_data(employee, day, record),
                         opd=employee.get("opd"))
    return outbox.insert_grouped(DAYS, document, [event])


def write_record(db, outbox, employee, day, record):
    """Store ``record`` (with its ``key``) in the day document and publish its event, once.

    Returns ``(stored, True)`` when this call wrote it, ``(the record stored first, False)``
    when the key was there already (a repeat, or a concurrent twin on another replica)."""
    doc_id = day_id(employee["_id"], day)
    event = outbox.event(EVENTS[record["kind"]], event_data(employee, day, record),
                         opd=employee.get("opd"))
    update = {"$push": {"records": record, "keys": record["key"]},
              "$setOnInsert": new_day(employee, day)}
    guarded = {"_id": doc_id, "keys": {"$ne": record["key"]}}
    try:
        result = outbox.update(DAYS, guarded, update, [event], upsert=True)
    except pymongo.errors.DuplicateKeyError:
        # the day document exists now (a racing first record, or the key is in it): an upsert
        # whose filter is more than `_id` is not retried by MongoDB, so update it
        result = outbox.update(DAYS, guarded, update, [event])
    if result.matched_count or result.upserted_id is not None:
        return record, True
    first = stored_record(db[DAYS].find_one({"_id": doc_id}, {OUTBOX: 0}), record["key"])
    return first, False

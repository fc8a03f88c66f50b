"""Permit types (the published service standards) and the working-day calendar.

A type's standard (name, responsible OPD, legal basis, requirements, stages with their SLA in
working days, fee, validity, site visit, recommending OPDs) is readable by everyone without
login and published by ``admin`` with ``PUT /types/<code>``: a body that changes anything
publishes the next version (``type_versions`` keeps every version, never changed; ``types``
holds the one in force), an identical body answers the version in force. An application
embeds the version it was made under, so a later change never moves its SLA or checklist.

Publishing is two writes by ``_id``: the new version's document (``"<code>:<n>"``, inserted:
two admins publishing at once cannot both create version n), then the type in force,
compare-and-set on the version it replaces. A crash between them leaves version n written and
not in force; the next publication of the same body puts it in force, a different body gets a
409 naming the version to read.

The calendar: national holidays come from the ``holidays`` package (``pamong.calendar``);
``admin`` adds the regional ones and the cuti bersama (``holidays``, ``_id`` ISO date). Every
SLA figure counts with both.
"""

from datetime import date

import pymongo

from pamong.calendar import national_holidays
from pamong.replica import UNITS
from pamong.storage import db_now
from pamong.web import Problem, conflict, not_found, route, unprocessable
from services.permits import domain
from services.permits.access import API
from services.permits.schemas.types import (
    Holiday,
    HolidayBody,
    HolidayList,
    HolidayQuery,
    TypeBody,
    TypeList,
    TypeListQuery,
    TypeOut,
    TypeQuery,
)
from services.permits.store import HOLIDAYS, TYPE_VERSIONS, TYPES, local_today

TAGS = ["types"]
CALENDAR_TAGS = ["calendar"]
META = ("_id", "code", "version", "sla_days", "opd_name", "published_at", "published_by")


def standard_of(code, body, version, opd_name, by, at):
    """The stored standard of ``body`` published as ``version`` (pure)."""
    return {"_id": code, "code": code, "version": version, **body, "opd_name": opd_name,
            "sla_days": sum(stage["sla_days"] for stage in body["stages"]),
            "published_at": at, "published_by": by}


def content_of(standard):
    """What a publication compares: the standard without its version and publication."""
    return {k: v for k, v in standard.items() if k not in META}


def version_id(code, version):
    return f"{code}:{version}"


def type_out(doc):
    return {**doc, "code": doc.get("code", doc["_id"])}


class TypeEndpoints:
    """Mixed into the permits service."""

    # -- reading (also used by the applications) -------------------------------------------

    def _types(self):
        """Every type in force, by code (cached for ``PERMITS_REFERENCE_CACHE_SECONDS``)."""
        return self.cache.get(("types",), lambda: {
            doc["_id"]: doc for doc in self.db[TYPES].find({})})

    def _type(self, code, version=None):
        """The standard in force of ``code`` (or its ``version``); 404 when there is none."""
        if version is None:
            doc = self.db[TYPES].find_one({"_id": code})
        else:
            doc = self.db[TYPE_VERSIONS].find_one({"_id": version_id(code, version)})
        if doc is None:
            raise not_found(f"No permit type {code}" + (f" version {version}." if version
                                                         else "."))
        return type_out(doc)

    @route("GET", f"{API}/types", public=True, query=TypeListQuery(), response=TypeList(),
           tags=TAGS, summary="The permit types and their service standards (no login)")
    def list_types(self, request, principal, query):
        items = [type_out(doc) for doc in self._types().values()
                 if (doc["active"] or query["include_inactive"])
                 and (query["opd"] is None or doc["opd"] == query["opd"])]
        return {"items": sorted(items, key=lambda doc: (doc["name"], doc["code"]))}

    @route("GET", f"{API}/types/<code>", public=True, query=TypeQuery(), response=TypeOut(),
           tags=TAGS, summary="A permit type's service standard in force, or a past version "
                              "(?version=N) (no login)")
    def get_type(self, request, principal, code, query):
        return self._type(code, query["version"])

    # -- publishing --------------------------------------------------------------------------

    def _check_units(self, body):
        """The responsible OPD and the recommenders are OPDs of this Pemda's directory."""
        codes = [body["opd"], *body["recommenders"]]
        units = {u["_id"]: u for u in self.db[UNITS].find({"_id": {"$in": codes}})}
        errors = {}
        named = [("opd", body["opd"])] + [
            (f"recommenders.{n}", c) for n, c in enumerate(body["recommenders"])]
        for field, code in named:
            unit = units.get(code)
            if unit is None or unit.get("active") is False:
                errors[field] = [f"{code} is not an active unit of the directory"]
            elif unit.get("opd") != code:
                errors[field] = [f"{code} is not an OPD (its OPD is {unit.get('opd')})"]
        if errors:
            raise unprocessable(errors)
        return units[body["opd"]].get("name")

    @route("PUT", f"{API}/types/<code>", roles=("admin",), body=TypeBody(),
           response=TypeOut(), tags=TAGS,
           summary="Publish a permit type's service standard (admin)",
           description="A body that changes anything publishes the next version (201); the "
                       "same body again answers the version in force (200). Applications "
                       "keep the version they were made under.")
    def put_type(self, request, principal, code, body):
        if not domain.TYPE_CODE.match(code):
            raise unprocessable({"code": ["2-20 of A-Z, 0-9, _ and -, starting with a "
                                          "letter (e.g. PBG, SIP-PERAWAT)"]})
        opd_name = self._check_units(body)
        current = self.db[TYPES].find_one({"_id": code})
        at = db_now()
        new = standard_of(code, body, (current or {}).get("version", 0) + 1, opd_name,
                          principal.sub, at)
        if current is not None and content_of(current) == content_of(new):
            return 200, type_out(current)
        try:
            self.db[TYPE_VERSIONS].insert_one({**new, "_id": version_id(code, new["version"])})
        except pymongo.errors.DuplicateKeyError:
            # published by someone else meanwhile, or written by a publication that stopped
            # before putting it in force: the same content completes that one
            written = self.db[TYPE_VERSIONS].find_one(
                {"_id": version_id(code, new["version"])})
            if content_of(written) != content_of(new):
                raise self._published_meanwhile(code) from None
            new = {**written, "_id": code}
        if current is None:
            try:
                self.db[TYPES].insert_one(new)
            except pymongo.errors.DuplicateKeyError:
                return self._after_race(code, new)
        else:
            replaced = self.db[TYPES].update_one(
                {"_id": code, "version": current["version"]}, {"$set": new})
            if not replaced.matched_count:
                return self._after_race(code, new)
        self.cache.clear()
        return 201, type_out(new), {"Location": f"{API}/types/{code}?version={new['version']}"}

    def _after_race(self, code, new):
        now = self.db[TYPES].find_one({"_id": code})
        if now is not None and now["version"] == new["version"] and \
                content_of(now) == content_of(new):
            return 200, type_out(now)
        raise self._published_meanwhile(code)

    def _published_meanwhile(self, code):
        now = self.db[TYPES].find_one({"_id": code}) or {}
        return Problem(409, f"Permit type {code} was published meanwhile (version "
                            f"{now.get('version')} is in force): read it and publish again.",
                       extensions={"version": now.get("version")})

    # -- the calendar ------------------------------------------------------------------------

    @route("GET", f"{API}/holidays", public=True, query=HolidayQuery(),
           response=HolidayList(), tags=CALENDAR_TAGS,
           summary="The days the SLA clock does not count in a year: national and regional "
                   "holidays, cuti bersama (no login; weekends are never counted)")
    def list_holidays(self, request, principal, query):
        year = query["year"] or local_today(self.config).year
        days = {day: {"date": day, "name": name, "kind": "national"}
                for day, name in national_holidays(year).items()}
        for doc in self.db[HOLIDAYS].find({"_id": {"$gte": f"{year:04d}-",
                                                   "$lt": f"{year + 1:04d}-"}}):
            day = date.fromisoformat(doc["_id"])
            days[day] = {"date": day, "name": doc["name"], "kind": doc["kind"]}
        items = [{**item, "on_weekend": day.weekday() not in domain.OFFICE_WEEK}
                 for day, item in sorted(days.items())]
        return {"year": year, "items": items}

    @staticmethod
    def _day(day):
        try:
            parsed = date.fromisoformat(day)
        except ValueError:
            parsed = None
        if parsed is None or len(day) != 10 or not 2000 <= parsed.year <= 2100:
            raise unprocessable({"date": ["a date YYYY-MM-DD (2000-2100)"]})
        return parsed

    @route("PUT", f"{API}/holidays/<day>", roles=("admin",), body=HolidayBody(),
           response=Holiday(), tags=CALENDAR_TAGS,
           summary="Declare a regional holiday or cuti bersama (admin); a national holiday "
                   "keeps counting as one")
    def put_holiday(self, request, principal, day, body):
        parsed = self._day(day)
        doc = {"name": body["name"], "kind": body["kind"], "by": principal.sub,
               "at": db_now()}
        self.db[HOLIDAYS].update_one({"_id": parsed.isoformat()}, {"$set": doc}, upsert=True)
        self.cache.clear()
        return {"date": parsed, "name": doc["name"], "kind": doc["kind"],
                "on_weekend": parsed.weekday() not in domain.OFFICE_WEEK}

    @route("DELETE", f"{API}/holidays/<day>", roles=("admin",), status=204,
           tags=CALENDAR_TAGS, problems={422: "`day` is not a date YYYY-MM-DD (2000-2100)",
                                         409: "A national holiday cannot be withdrawn"},
           summary="Withdraw a regional holiday or cuti bersama (admin); national ones stay")
    def delete_holiday(self, request, principal, day):
        parsed = self._day(day)
        removed = self.db[HOLIDAYS].delete_one({"_id": parsed.isoformat()})
        self.cache.clear()
        if not removed.deleted_count:
            if parsed in national_holidays(parsed.year):
                raise conflict(f"{parsed} is a national holiday: it cannot be withdrawn here.")
            raise not_found(f"{parsed} is no regional holiday.")
        return 204, None

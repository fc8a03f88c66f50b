"""Permits storage. Every hot path is an ``_id`` read or write (the only indexed filter on the
local database): a step reads the application by id and writes it once, compare-and-set on its
``version``, with its timeline entry and its events in the same write (outbox).

Collections (``pamong_permits``), besides the directory replica (``units``, ``employees``,
``acting``):

- ``types``: ``_id`` type code (``PBG``); the published service standard in force, with its
  ``version`` (1, 2, ...). ``type_versions``: ``_id "<code>:<version>"``, every version ever
  published, never changed. An application embeds the standard it was submitted under
  (``standard``), so a later change never moves its SLA or checklist.
- ``applications``: ``_id`` application id (uuid hex, or derived from the Idempotency-Key).
  ``state``, ``version``, ``owner`` (the pemohon's ``sub``; None when entered at a counter for
  someone without an account), ``entered_by``, ``opd`` (responsible OPD), ``standard``,
  ``applicant`` (nik, name, phone, email, address, channel, birth_date), ``business``
  (name, nib), ``documents``, ``timeline`` (``{action, from, to, at, on, by, note}``; ``on``
  is the local date the SLA clock counts with), ``registration_number``, ``bill``,
  ``recommendations``, ``site_visit``, ``permit`` (number, valid_from, valid_until, code),
  ``missing_items``, ``reason``, ``sla`` (``alerts``: the alert keys already sent;
  ``next_check``: the day the SLA timer looks again), ``skm`` (once rated).
- ``owners``: ``_id`` a pemohon's ``sub`` (``n``, the first ids) and ``"<sub>\x1f<k>"`` (the
  next ones), oldest first: "my applications" reads these few documents.
- ``queues``: an OPD's work list per state, ``"<opd>:<state>"`` (months) ->
  ``"<opd>:<state>:<YYYY-MM>"`` (places per day) -> ``"<opd>:<state>:<YYYY-MM-DD>:<k>"``
  (the ids, at most ``chunks.CHUNK``), and a claim per entry ``"<opd>:<state>@<id>:<n>"``.
  An officer's work list reads these documents, not the applications collection; a filing
  writes a few small ones (``chunks.py``).
- ``registrations``: ``_id`` registration number -> ``application``; ``codes``: ``_id`` the
  permit's verification code -> ``application``. Public tracking and verification are one
  ``_id`` read each.
- ``counters``: ``_id "<kind>:<year>"`` (``registration``, ``bill``, ``permit:<type>``) with
  ``next``; ``$inc`` at the step that hands the number out.
- ``fs.files`` / ``fs.chunks``: uploaded documents in the GridFS layout (``pamong.files``),
  chunk ``_id "<file id>:<n>"`` so a download reads by ``_id``.
- ``due``: ``_id "sla:<date>"`` / ``"expiry:<date>"`` (``n``, the first ids) and
  ``"<kind>:<date>:<k>"`` (the next ones); the application ids to look at on that day (the
  SLA and expiry timers read the days up to today, not every application).
- ``stats``: the dashboard's aggregates, each one document by ``_id`` (``all``,
  ``month:<YYYY-MM>``, ``day:<date>``, ``expiring:<date>``, each also ``...@<opd>`` for one
  OPD; see ``dashboard.py``), kept by the service's own handlers of its events (exactly once
  per event); ``pamong permits rebuild-stats`` recomputes them from the applications.
- ``holidays``: ``_id`` ISO date; regional holidays and cuti bersama added by ``admin``
  (national ones come from the ``holidays`` package).
- ``limits``: ``_id "<client>:<minute>"``; public tracking requests per client per minute.
- ``presence``: the public dashboard's attendance read model (``presence.py``): ``_id``
  ISO date, today's first check-ins per OPD (``opds``, ``present``), kept from
  ``attendance.checked_in`` once per NIP and day; ``_id "headcount"``, the active employees
  per OPD of the directory replica (a timer). ``presence_<YYYYMMDD>``: that day's claims,
  ``_id`` NIP (which event counted the employee), dropped after a week.
"""

from datetime import UTC, date
from zoneinfo import ZoneInfo

from pamong import localtime
from pamong.calendar import national_holidays
from pamong.storage import Index
from services.permits import domain

TYPES, TYPE_VERSIONS = "types", "type_versions"
APPLICATIONS, OWNERS, QUEUES = "applications", "owners", "queues"
REGISTRATIONS, CODES, COUNTERS = "registrations", "codes", "counters"
DUE, STATS, HOLIDAYS, LIMITS = "due", "stats", "holidays", "limits"
PRESENCE = "presence"

# for the rare scans (rebuild-stats, the open-data export); MongoDB uses them, the local
# database ignores them
INDEXES = [Index(APPLICATIONS, [("state", 1)])]


# -- the working-day calendar ------------------------------------------------------------------

def holidays_of(db, cache, years):
    """``{date: name}`` of the national and regional holidays of ``years``, kept for the
    cache's seconds (every SLA figure asks it)."""
    found = {}
    for year in sorted(set(years)):
        found.update(cache.get(("holidays", year), lambda y=year: _holidays(db, y)))
    return found


def holidays_for(db, cache, application, today):
    """The holidays an application's clock may meet: from the year its timeline starts to the
    year after today (a due date may fall there)."""
    timeline = application.get("timeline") or ()
    first = domain.as_date(timeline[0]["on"]).year if timeline else today.year
    return holidays_of(db, cache, range(min(first, today.year), today.year + 2))


def _holidays(db, year):
    days = national_holidays(year)
    prefix = f"{year:04d}-"
    for doc in db[HOLIDAYS].find({"_id": {"$gte": prefix, "$lt": f"{year + 1:04d}-"}}):
        days[date.fromisoformat(doc["_id"])] = doc["name"]
    return days


def public_url(config):
    """Where the public pages are (``PERMITS_PUBLIC_URL``): the QR code's verification URL."""
    return str(config.get("PERMITS_PUBLIC_URL") or "http://localhost:8004").rstrip("/")


def local_today(config):
    """Today in the Pemda's time zone (``PERMITS_TIMEZONE``, default Asia/Jakarta)."""
    return localtime.local_today(config.get("PERMITS_TIMEZONE", localtime.DEFAULT_ZONE))


def local_date(config, at):
    """The Pemda's local date of a UTC datetime (the day the SLA clock counts)."""
    zone = ZoneInfo(config.get("PERMITS_TIMEZONE", "Asia/Jakarta"))
    return at.replace(tzinfo=at.tzinfo or UTC).astimezone(zone).date()

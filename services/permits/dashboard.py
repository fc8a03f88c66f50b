"""The live dashboard, its Server-Sent Events stream and the open-data export.

**Aggregates kept as events happen.** The service consumes its own events
(``permit.status_changed``, ``permit.issued``, ``permit.sla_warning``, ``permit.sla_breached``,
``permit.rated``) and keeps ``stats`` documents, each read and written by ``_id`` only, each
event applied exactly once per document (``apply_once``: the event id is recorded in the same
atomic write as the counts, so a redelivery or a crash between two documents' writes never
counts twice). Every document exists for the whole Pemda (``all``) and for the responsible
OPD (``all@3510.03``):

- ``all[@opd]``: the current state counts (``states``, per type ``type_states``, per OPD
  ``opds`` in the Pemda document), the tally of every transition since the start (see
  below), the SLA alerts (``sla``: warnings, total breaches, breaches per stage) and the SKM
  answers (``skm``: count and per-element sums; per type ``skm_types``);
- ``month:<YYYY-MM>[@opd]``: the tally and the SKM answers of that month (the open-data
  periods), ``day:<YYYY-MM-DD>[@opd]``: the tally of that day ("today");
- ``expiring:<YYYY-MM-DD>[@opd]``: permits whose last valid day it is (+1 at issue, -1 at
  revocation): "expiring in the next 30 days" reads 31 documents by ``_id``.

A tally is ``{actions: {action: n}, decided, within_sla, days: {"d<n>": n}}`` (``days``:
the histogram of working days used at the decision, issue or rejection) at the top and per
permit type under ``types.<code>``. Transition days are the Pemda's local dates of the
events' ``at``. ``version`` grows with every event a document takes: the SSE stream watches
it.

``recompute(applications, ...)`` is the same arithmetic over the applications themselves
(pure); ``pamong permits rebuild-stats`` writes its result (offline: stop the service and let
its queues drain first), and a test shows the maintained documents equal it.

``GET /dashboard`` reads only these documents by ``_id`` (plus the few type and unit names),
never the applications: its cost does not grow with them. Scope: ``admin`` and staff whose
token names the Pemda itself (``3510``) see the whole Pemda (``?opd=`` narrows it); other
staff see their own OPD.
"""

import csv
import io
import logging
import math
import time
from datetime import date, timedelta

import eventlet
import pymongo.errors
from werkzeug.wrappers import Response

from pamong.events.consumer import apply_once, handles
from pamong.replica import UNITS
from pamong.storage import by_ids, db_now
from pamong.web import Problem, route
from pamong.web.encoding import dumps
from services.permits import domain
from services.permits.access import API
from services.permits.schemas.dashboard import DashboardOut, DashboardQuery, OpenDataQuery
from services.permits.store import APPLICATIONS, STATS, TYPES, local_date, local_today

log = logging.getLogger(__name__)

TAGS = ["dashboard"]
# the refusal of dashboard_scope (documented in OpenAPI)
OTHER_OPD = {404: "The OPD asked for is outside the caller's scope"}
OPEN_TAGS = ["open data"]
DASHBOARD_ROLES = ("admin", "pimpinan", "opd_admin", "petugas")
DECIDED = (domain.ISSUED, domain.REJECTED)  # the states that end the SLA clock
CREATE = "create"  # the "action" of an application's creation (from_state null)
EXPIRING_DAYS = 30
STREAM_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
STREAM_MAX_SECONDS = 600.0  # then the client reconnects (EventSource does it by itself)
LICENCE = "CC BY 4.0"
OPEN_DATA_MIN_RESPONSES = 5  # an SKM figure of fewer answers is withheld (small cells)
BOOKKEEPING = ("_id", "_applied", "_applied_n", "version")
UNBOOKED = {"_applied": 0}  # the event ids a document remembers: not for reading


# -- keys -------------------------------------------------------------------------------------

def scoped(key, opd=None):
    """The stats document ``key`` of the whole Pemda (``opd`` None) or of one OPD."""
    return key if opd is None else f"{key}@{opd}"


def field_key(code):
    """A unit code as a field name (a dot would nest): ``3510.03`` -> ``3510_03``."""
    return code.replace(".", "_")


def unit_code(key):
    return key.replace("_", ".")


def bucket(days):
    return f"d{int(days)}"


# -- what one event adds (pure) -----------------------------------------------------------------

def _tally(inc, prefix, action, decision):
    """Count one transition (``decision``: ``(days used, sla days)`` when it decides)."""
    inc[f"{prefix}actions.{action}"] = inc.get(f"{prefix}actions.{action}", 0) + 1
    if decision is not None:
        used, sla_days = decision
        inc[f"{prefix}decided"] = inc.get(f"{prefix}decided", 0) + 1
        inc[f"{prefix}within_sla"] = inc.get(f"{prefix}within_sla", 0) + (used <= sla_days)
        inc[f"{prefix}days.{bucket(used)}"] = inc.get(f"{prefix}days.{bucket(used)}", 0) + 1


def transition_increments(data, on):
    """``{stats _id: {field: increment}}`` for one ``permit.status_changed`` (``data``) on
    the local day ``on``."""
    action = data["action"] or CREATE
    decision = ((max(int(data["working_days_used"]), 0), data["sla_days"])
                if data["to_state"] in DECIDED else None)
    out = {}
    for opd in (None, data["opd"]):
        current = {f"states.{data['to_state']}": 1,
                   f"type_states.{data['type']}.{data['to_state']}": 1}
        if data["from_state"]:
            current[f"states.{data['from_state']}"] = -1
            current[f"type_states.{data['type']}.{data['from_state']}"] = -1
        if opd is None:
            unit = field_key(data["opd"])
            current[f"opds.{unit}.{data['to_state']}"] = 1
            if data["from_state"]:
                current[f"opds.{unit}.{data['from_state']}"] = -1
        for key in ("all", f"month:{on:%Y-%m}", f"day:{on.isoformat()}"):
            inc = dict(current) if key == "all" else {}
            _tally(inc, "", action, decision)
            _tally(inc, f"types.{data['type']}.", action, decision)
            out[scoped(key, opd)] = inc
    return out


def alert_increments(opd, scope, breach):
    """A ``permit.sla_warning`` (``breach`` False) or ``permit.sla_breached`` of ``scope``
    (``total`` or a stage)."""
    if not breach:
        field = "sla.warnings"
    elif scope == "total":
        field = "sla.breaches"
    else:
        field = f"sla.stages.{scope}"
    return {scoped("all", o): {field: 1} for o in (None, opd)}


def rating_increments(opd, type_code, scores, rated_on):
    inc = {"skm.count": 1, f"skm_types.{type_code}.count": 1}
    for element, score in scores.items():
        inc[f"skm.sums.{element}"] = score
        inc[f"skm_types.{type_code}.sums.{element}"] = score
    return {scoped(key, o): dict(inc)
            for key in ("all", f"month:{rated_on:%Y-%m}") for o in (None, opd)}


def expiring_increments(opd, valid_until, delta):
    return {scoped(f"expiring:{valid_until.isoformat()}", o): {"count": delta}
            for o in (None, opd)}


# -- from scratch (pure) ----------------------------------------------------------------------

def _add(docs, increments):
    for key, inc in increments.items():
        doc = docs.setdefault(key, {})
        for path, value in inc.items():
            *parents, leaf = path.split(".")
            node = doc
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = node.get(leaf, 0) + value


def days_used_at(timeline, index, holidays=()):
    """The working days the SLA clock had used when ``timeline[index]`` happened (what the
    transition's ``permit.status_changed`` says as ``working_days_used``)."""
    steps = domain.timeline_days(timeline[:index + 1])
    return domain.clock(steps, steps[-1]["on"], 0, None, holidays).used


def recompute(applications, day_of, holidays=()):
    """Every stats document computed from the applications alone: ``{_id: fields}`` in the
    shape the event handlers keep (without their bookkeeping). ``applications``: any
    iterable (a cursor: one pass, nothing kept). ``day_of(datetime)``: the Pemda's local
    date of a UTC time. ``holidays``: dates, or a function of a set of years giving them."""
    docs = {}
    for app in applications:
        timeline = app.get("timeline") or []
        opd, type_code = app["opd"], app["type"]
        if not any(entry.get("from") is None for entry in timeline):
            # a creation the timeline does not list: its event was still sent
            timeline = [{"action": None, "from": None, "to": domain.DRAFT,
                         "at": app["created_at"], "on": day_of(app["created_at"])},
                        *timeline]
        state = None
        for index, entry in enumerate(timeline):
            data = {"action": entry.get("action"), "from_state": entry.get("from"),
                    "to_state": entry["to"], "opd": opd, "type": type_code,
                    "sla_days": app["standard"]["sla_days"], "working_days_used": 0}
            if entry["to"] in DECIDED:
                days = holidays({domain.as_date(e["on"]).year for e in timeline[:index + 1]}) \
                    if callable(holidays) else holidays
                data["working_days_used"] = days_used_at(timeline, index, days)
            _add(docs, transition_increments(data, day_of(entry["at"])))
            state = entry["to"]
        if state != app["state"]:
            raise ValueError(f"application {app['_id']}: its timeline ends in {state!r} but "
                             f"its state is {app['state']!r}")
        for alert in (app.get("sla") or {}).get("alerts") or ():
            kind, _, scope = alert.partition(":")
            if kind in ("warning", "breach"):  # not "expiring": the permit's notice
                _add(docs, alert_increments(opd, scope, kind == "breach"))
        skm = app.get("skm")
        if skm and skm.get("scores"):
            _add(docs, rating_increments(opd, type_code, skm["scores"],
                                         domain.as_date(skm["rated_on"])))
        permit = app.get("permit") or {}
        if permit.get("valid_until") and app["state"] != domain.REVOKED:
            _add(docs, expiring_increments(opd, domain.as_date(permit["valid_until"]), 1))
    return docs


def comparable(doc):
    """A stats document without bookkeeping and without zero counts (a state left again
    is 0 in a kept document and absent from a recomputed one)."""
    out = {}
    for key, value in doc.items():
        if key in BOOKKEEPING:
            continue
        if isinstance(value, dict):
            value = comparable(value)
            if value:
                out[key] = value
        elif value:
            out[key] = value
    return out


# -- reading the figures (pure) ---------------------------------------------------------------

def percentile(histogram, fraction):
    """The nearest-rank percentile of ``{"d<n>": count}``; None when empty."""
    counts = sorted((int(key[1:]), n) for key, n in (histogram or {}).items() if n > 0)
    total = sum(n for _, n in counts)
    if not total:
        return None
    rank, seen = max(1, math.ceil(fraction * total)), 0
    for days, n in counts:
        seen += n
        if seen >= rank:
            return days
    return counts[-1][0]


def processing(tally):
    tally = tally or {}
    days = tally.get("days") or {}
    decided, within = tally.get("decided", 0), tally.get("within_sla", 0)
    return {"decided": decided,
            "median_days": percentile(days, 0.5), "p90_days": percentile(days, 0.9),
            "within_sla": within,
            "sla_compliance_pct": round(within * 100 / decided, 1) if decided else None,
            "histogram": {int(k[1:]): n for k, n in sorted(days.items(),
                                                           key=lambda kv: int(kv[0][1:]))
                          if n}}


def skm_figures(skm):
    skm = skm or {}
    count = skm.get("count", 0)
    index = domain.skm_index(skm.get("sums") or {}, count)
    grade, quality = domain.skm_grade(index)
    return {"responses": count, "index": index, "grade": grade, "quality": quality}


def _positive(counts):
    return {k: v for k, v in (counts or {}).items() if v}


def figures(docs, today, opd=None, type_names=None, unit_names=None, days=EXPIRING_DAYS):
    """The dashboard from the stats documents ``docs`` (``{_id: doc}``) of scope ``opd``."""
    type_names, unit_names = type_names or {}, unit_names or {}
    overall = docs.get(scoped("all", opd)) or {}
    month = docs.get(scoped(f"month:{today:%Y-%m}", opd)) or {}
    day = docs.get(scoped(f"day:{today.isoformat()}", opd)) or {}
    year_skm = {"count": 0, "sums": {}}
    for m in range(1, today.month + 1):
        part = (docs.get(scoped(f"month:{today.year}-{m:02d}", opd)) or {}).get("skm") or {}
        year_skm["count"] += part.get("count", 0)
        for element, total in (part.get("sums") or {}).items():
            year_skm["sums"][element] = year_skm["sums"].get(element, 0) + total
    expiring = {}
    for offset in range(days + 1):
        on = today + timedelta(days=offset)
        n = (docs.get(scoped(f"expiring:{on.isoformat()}", opd)) or {}).get("count", 0)
        if n > 0:
            expiring[on.isoformat()] = n
    sla = overall.get("sla") or {}
    types = sorted(set(overall.get("type_states") or {}) | set(overall.get("types") or {}))
    by_type = [{"type": code, "name": type_names.get(code),
                "states": _positive((overall.get("type_states") or {}).get(code)),
                "actions": _positive(((overall.get("types") or {}).get(code) or {}).get(
                    "actions")),
                "processing": processing((overall.get("types") or {}).get(code)),
                "skm": skm_figures((overall.get("skm_types") or {}).get(code))}
               for code in types]
    by_opd = []
    for key, states in sorted((overall.get("opds") or {}).items()):
        code = unit_code(key)
        own = docs.get(scoped("all", code)) or {}
        by_opd.append({"opd": code, "name": unit_names.get(code), "states": _positive(states),
                       "processing": processing(own),
                       "sla_warnings": (own.get("sla") or {}).get("warnings", 0),
                       "sla_breaches": (own.get("sla") or {}).get("breaches", 0),
                       "skm": skm_figures(own.get("skm"))})
    states = _positive(overall.get("states"))
    return {
        "scope": {"opd": opd, "name": unit_names.get(opd) if opd else None},
        "today": {"date": today, "submitted": _actions(day).get("submit", 0),
                  "resubmitted": _actions(day).get("resubmit", 0),
                  "registered": _actions(day).get("register", 0),
                  "issued": _actions(day).get("issue", 0),
                  "rejected": _actions(day).get("reject", 0),
                  "actions": _actions(day)},
        "by_status": states,
        "open": sum(n for s, n in states.items() if s in domain.OPEN),
        "by_type": by_type,
        "by_opd": by_opd,
        "processing": processing(overall),
        "month": {"period": f"{today:%Y-%m}", "actions": _actions(month),
                  "processing": processing(month)},
        "sla": {"warnings": sla.get("warnings", 0), "breaches": sla.get("breaches", 0),
                "stage_breaches": _positive(sla.get("stages"))},
        "skm": {"all_time": skm_figures(overall.get("skm")),
                "year": {"period": str(today.year), **skm_figures(year_skm)},
                "month": {"period": f"{today:%Y-%m}", **skm_figures(month.get("skm"))}},
        "expiring": {"days": days, "count": sum(expiring.values()), "by_date": expiring},
        "version": overall.get("version", 0),
    }


def _actions(doc):
    return _positive((doc or {}).get("actions"))


def dashboard_keys(today, opd=None, days=EXPIRING_DAYS):
    """The stats ``_id``s ``figures`` reads (the OPD ``all@`` documents come second)."""
    keys = ["all", f"month:{today:%Y-%m}", f"day:{today.isoformat()}"]
    keys += [f"month:{today.year}-{m:02d}" for m in range(1, today.month)]
    keys += [f"expiring:{(today + timedelta(days=n)).isoformat()}" for n in range(days + 1)]
    return [scoped(key, opd) for key in keys]


# -- open data (pure) -------------------------------------------------------------------------

def months_between(first, last):
    """``YYYY-MM`` from ``first`` to ``last`` (dates), both included."""
    out, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


OPEN_COLUMNS = ("period", "opd", "opd_name", "type", "type_name", "submitted", "resubmitted",
                "returned", "registered", "rejected", "issued", "collected", "revoked",
                "expired", "decided", "median_days", "p90_days", "sla_compliance_pct",
                "skm_responses", "skm_index", "skm_grade")
OPEN_ACTIONS = {"submitted": "submit", "resubmitted": "resubmit", "returned": "return",
                "registered": "register", "rejected": "reject", "issued": "issue",
                "collected": "collect", "revoked": "revoke", "expired": "expire"}


def open_rows(month_docs, type_info, unit_names, min_responses=OPEN_DATA_MIN_RESPONSES):
    """One row per month and permit type with anything to count: numbers only, no person.
    ``month_docs``: ``{"YYYY-MM": Pemda month document}``; ``type_info``: ``{code: {name,
    opd}}``. An SKM figure of fewer than ``min_responses`` answers is withheld (null): one
    or two answers would say what those people answered."""
    rows = []
    for period, doc in sorted(month_docs.items()):
        doc = doc or {}
        codes = sorted(set(doc.get("types") or {}) | set(doc.get("skm_types") or {}))
        for code in codes:
            tally = (doc.get("types") or {}).get(code) or {}
            actions = tally.get("actions") or {}
            info = type_info.get(code) or {}
            skm = skm_figures((doc.get("skm_types") or {}).get(code))
            shown = skm["responses"] >= min_responses
            proc = processing(tally)
            rows.append({
                "period": period, "opd": info.get("opd"),
                "opd_name": unit_names.get(info.get("opd")), "type": code,
                "type_name": info.get("name"),
                **{column: actions.get(action, 0) for column, action in OPEN_ACTIONS.items()},
                "decided": proc["decided"], "median_days": proc["median_days"],
                "p90_days": proc["p90_days"], "sla_compliance_pct": proc["sla_compliance_pct"],
                "skm_responses": skm["responses"],
                "skm_index": skm["index"] if shown else None,
                "skm_grade": skm["grade"] if shown else None})
    return rows


def open_metadata(config, first, last, generated_at):
    region = config.get("PERMITS_PUBLISHER") or "Pemerintah Daerah"
    return {
        "title": "Statistik perizinan: permohonan, izin terbit, waktu proses, kepatuhan SLA "
                 "dan indeks kepuasan (SKM) per bulan dan jenis izin",
        "description": "Agregat bulanan per jenis izin. Tidak memuat data pribadi: hanya "
                       "jumlah, median dan persentil ke-90 waktu proses (hari kerja), persen "
                       "berkas diputus dalam SLA dan indeks SKM (PermenPANRB 14/2017; "
                       f"ditampilkan bila ada sedikitnya {OPEN_DATA_MIN_RESPONSES} jawaban).",
        "period": {"from": first, "to": last, "granularity": "month"},
        "unit": {"submitted": "berkas", "resubmitted": "berkas", "returned": "berkas",
                 "registered": "berkas", "rejected": "berkas", "issued": "izin",
                 "collected": "izin", "revoked": "izin", "expired": "izin",
                 "decided": "berkas", "median_days": "hari kerja", "p90_days": "hari kerja",
                 "sla_compliance_pct": "persen", "skm_responses": "responden",
                 "skm_index": "indeks (25-100)", "skm_grade": "mutu A-D"},
        "source": f"{region}, layanan perizinan (pamong permits)",
        "publisher": region,
        "licence": LICENCE,
        "licence_url": "https://creativecommons.org/licenses/by/4.0/",
        "generated_at": generated_at,
        "columns": list(OPEN_COLUMNS),
    }


def csv_text(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=OPEN_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in OPEN_COLUMNS})
    return out.getvalue()


# -- the database side ----------------------------------------------------------------------

def apply_increments(collection, increments, event):
    """Each document's increments, once per event (upserted; ``version`` +1)."""
    for key, inc in increments.items():
        apply_once(collection, {"_id": key},
                   {"$inc": {**inc, "version": 1}}, event, upsert=True)


def read_all_applications(db, batch=500):
    """Every application (a scan: rebuild only), without their documents' outboxes."""
    return db[APPLICATIONS].find({}, {"_outbox": 0, "documents": 0}).batch_size(batch)


def rebuild(db, config, cache):
    """``pamong permits rebuild-stats``: recompute every stats document from the
    applications and replace the kept ones. Returns the number written."""
    from services.permits.store import holidays_of

    calendars = {}  # years -> their holidays, read once per run whatever ``cache`` keeps

    def holidays(years):
        key = tuple(sorted(years))
        if key not in calendars:
            calendars[key] = list(holidays_of(db, cache, years))
        return calendars[key]

    docs = recompute(read_all_applications(db), lambda at: local_date(config, at), holidays)
    version = int(time.time())  # above any kept version: the streams see the change
    db[STATS].delete_many({})
    if docs:
        db[STATS].insert_many([{"_id": key, **doc, "version": version, "_applied": [],
                                "_applied_n": 0} for key, doc in docs.items()])
    return len(docs)


def dashboard_scope(principal, asked=None):
    """The OPD whose figures ``principal`` gets (None: the whole Pemda). ``admin`` and a
    token of the Pemda itself (``3510``) read everything and may narrow it to ``asked``;
    other staff read their own OPD (asking for another one is a 404, as for anything they
    may not see)."""
    if not principal.is_pemda_wide and not principal.opd:
        raise Problem(403, "Your token names no unit, so no dashboard is yours.")
    root = principal.read_root()
    if root is None or "." not in root:
        if asked is None:
            return None
        if root is not None and not asked.startswith(root + "."):
            raise Problem(404, "No such OPD in your scope.")
        return ".".join(asked.split(".")[:2])
    if asked is not None and ".".join(asked.split(".")[:2]) != root:
        raise Problem(404, "No such OPD in your scope.")
    return root


def build_dashboard(db, config, cache, opd):
    """The figures of scope ``opd``, read by ``_id`` only."""
    today = local_today(config)
    docs = by_ids(db[STATS], dashboard_keys(today, opd), UNBOOKED)
    overall = docs.get(scoped("all", opd)) or {}
    units = {unit_code(k) for k in overall.get("opds") or {}}
    if opd is None and units:
        docs.update(by_ids(db[STATS], [scoped("all", u) for u in units], UNBOOKED))
    codes = set(overall.get("type_states") or {}) | set(overall.get("types") or {})
    type_names = {code: doc.get("name") for code, doc in
                  by_ids(db[TYPES], codes, {"name": 1}).items()}
    wanted = units | ({opd} if opd else set())
    unit_names = {code: doc.get("name") for code, doc in
                  by_ids(db[UNITS], wanted, {"name": 1}).items()}
    return figures(docs, today, opd, type_names, unit_names)


def stream_events(read_version, read_figures, *, poll=STREAM_POLL_SECONDS,
                  heartbeat=HEARTBEAT_SECONDS, max_seconds=STREAM_MAX_SECONDS,
                  clock=time.monotonic, sleep=eventlet.sleep):
    """The Server-Sent Events of a dashboard: the figures at once, then whenever
    ``read_version()`` changes (checked every ``poll`` seconds, one ``_id`` read), a comment
    line every ``heartbeat`` seconds of quiet (proxies and dead clients notice), and the end
    after ``max_seconds`` (the browser reconnects by itself after ``retry``)."""
    yield "retry: 3000\n\n"
    started = beat = clock()
    last = object()
    while clock() - started < max_seconds:
        version = read_version()
        if version != last:
            last = version
            payload = read_figures()
            yield f"event: dashboard\nid: {payload['version']}\ndata: {dumps(payload)}\n\n"
            beat = clock()
        elif clock() - beat >= heartbeat:
            yield ": keep-alive\n\n"
            beat = clock()
        sleep(poll)


def _period(text, default):
    if text is None:
        return default
    return date(int(text[:4]), int(text[5:7]), 1)


class DashboardEndpoints:
    """Mixed into the permits service (needs ``db``, ``config``, ``cache``)."""

    # -- keeping the aggregates ----------------------------------------------------------

    @handles("permits", "permit.status_changed")
    def stats_on_status_changed(self, event):
        data = event.data
        on = local_date(self.config, data["at"])
        apply_increments(self.db[STATS], transition_increments(data, on), event)
        if data["to_state"] == domain.REVOKED:
            app = self.db[APPLICATIONS].find_one({"_id": data["id"]}, {"permit": 1})
            until = ((app or {}).get("permit") or {}).get("valid_until")
            if until:
                apply_increments(self.db[STATS],
                                 expiring_increments(data["opd"], domain.as_date(until), -1), event)

    @handles("permits", "permit.issued")
    def stats_on_issued(self, event):
        if event.data["valid_until"] is not None:
            apply_increments(self.db[STATS], expiring_increments(
                event.data["opd"], event.data["valid_until"], 1), event)

    @handles("permits", "permit.sla_warning")
    def stats_on_sla_warning(self, event):
        apply_increments(self.db[STATS], alert_increments(
            event.data["opd"], event.data["scope"], False), event)

    @handles("permits", "permit.sla_breached")
    def stats_on_sla_breached(self, event):
        apply_increments(self.db[STATS], alert_increments(
            event.data["opd"], event.data["scope"], True), event)

    @handles("permits", "permit.rated")
    def stats_on_rated(self, event):
        data = event.data
        apply_increments(self.db[STATS], rating_increments(
            data["opd"], data["type"], data["scores"], data["rated_on"]), event)

    # -- reading them --------------------------------------------------------------------

    @route("GET", f"{API}/dashboard", roles=DASHBOARD_ROLES, query=DashboardQuery(),
           response=DashboardOut(), tags=TAGS, problems=OTHER_OPD,
           summary="The live dashboard: today, by status, type and OPD, processing time, "
                   "SLA, SKM, permits expiring",
           description="Read from aggregates kept as events happen (never a scan of the "
                       "applications). `admin` and staff of the Pemda itself see the whole "
                       "Pemda (`?opd=` narrows it to one OPD); other staff see their OPD. "
                       "Processing time: working days the SLA clock ran until the decision "
                       "(issue or rejection); SLA compliance: the share of decisions within "
                       "the type's SLA. `GET /dashboard/stream` pushes the same figures.")
    def get_dashboard(self, request, principal, query):
        opd = dashboard_scope(principal, query.get("opd"))
        return build_dashboard(self.db, self.config, self.cache, opd)

    @route("GET", f"{API}/dashboard/stream", roles=DASHBOARD_ROLES, query=DashboardQuery(),
           tags=TAGS, problems=OTHER_OPD,
           summary="The dashboard as Server-Sent Events (text/event-stream)",
           description="`event: dashboard` with the figures of `GET /dashboard` at once and "
                       "again within a second of every change; a `: keep-alive` comment "
                       "every 15 s of quiet. The stream ends after 10 minutes: EventSource "
                       "reconnects by itself (`retry: 3000`).")
    def get_dashboard_stream(self, request, principal, query):
        opd = dashboard_scope(principal, query.get("opd"))
        db, config, cache = self.db, self.config, self.cache
        key = scoped("all", opd)

        def read_version():
            doc = db[STATS].find_one({"_id": key}, {"version": 1}) or {}
            return doc.get("version", 0), local_today(config)

        # eventlet's server gathers 4 kB before it writes: an event must go out at once
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        events = stream_events(
            read_version, lambda: DashboardOut().dump(build_dashboard(db, config, cache, opd)),
            poll=float(config.get("PERMITS_STREAM_POLL_SECONDS", STREAM_POLL_SECONDS)),
            heartbeat=float(config.get("PERMITS_STREAM_HEARTBEAT_SECONDS",
                                       HEARTBEAT_SECONDS)),
            max_seconds=float(config.get("PERMITS_STREAM_MAX_SECONDS", STREAM_MAX_SECONDS)))
        return Response(_logged(events), content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- open data -----------------------------------------------------------------------

    def _open_data(self, query):
        today = local_today(self.config)
        last = _period(query.get("to"), date(today.year, today.month, 1))
        first = _period(query.get("from"), date(last.year - 1, last.month, 1)
                        if last.month == 12 else date(last.year - 1, last.month + 1, 1))
        periods = months_between(first, last)
        if not periods or len(periods) > 120:
            raise Problem(422, "The period runs from `from` to `to` (YYYY-MM), at most 120 "
                               "months.", errors={"from": ["must not be after `to`, at most "
                                                           "120 months before it"]})
        docs = by_ids(self.db[STATS], [f"month:{p}" for p in periods], UNBOOKED)
        month_docs = {p: docs.get(f"month:{p}") for p in periods}
        codes = {code for doc in month_docs.values() if doc
                 for code in set(doc.get("types") or {}) | set(doc.get("skm_types") or {})}
        type_info = {code: {"name": doc.get("name"), "opd": doc.get("opd")} for code, doc in
                     by_ids(self.db[TYPES], codes, {"name": 1, "opd": 1}).items()}
        unit_names = {code: doc.get("name") for code, doc in by_ids(
            self.db[UNITS], {i["opd"] for i in type_info.values() if i.get("opd")},
            {"name": 1}).items()}
        minimum = int(self.config.get("PERMITS_OPEN_DATA_MIN_RESPONSES",
                                      OPEN_DATA_MIN_RESPONSES))
        rows = open_rows(month_docs, type_info, unit_names, minimum)
        metadata = open_metadata(self.config, periods[0], periods[-1], db_now())
        return metadata, rows

    @route("GET", f"{API}/open-data/permits.json", public=True, query=OpenDataQuery(),
           tags=OPEN_TAGS, summary="Open data (JSON): monthly permit statistics per type, "
                                   "with metadata; no personal data",
           description="`metadata` (title, period, unit of each column, source, licence "
                       "CC BY 4.0) and `data`: one row per month and permit type. Default "
                       "period: the last 12 months. No login.")
    def open_data_json(self, request, principal, query):
        metadata, rows = self._open_data(query)
        return 200, {"metadata": metadata, "data": rows}, {
            "Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}

    @route("GET", f"{API}/open-data/permits.csv", public=True, query=OpenDataQuery(),
           media_types=("text/csv",),
           tags=OPEN_TAGS, summary="Open data (CSV): the rows of permits.json",
           description="UTF-8 CSV with a header row; the metadata (title, units, source, "
                       "licence) is `permits.json`'s `metadata`, linked by the `Link` header "
                       "(rel=describedby).")
    def open_data_csv(self, request, principal, query):
        metadata, rows = self._open_data(query)
        period = metadata["period"]
        name = f"statistik-perizinan-{period['from']}_{period['to']}.csv"
        link = f"{API}/open-data/permits.json?from={period['from']}&to={period['to']}"
        return Response(csv_text(rows), content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Link": f'<{link}>; rel="describedby"; type="application/json"',
            "X-Licence": LICENCE, "Cache-Control": "public, max-age=300",
            "Access-Control-Allow-Origin": "*"})


def _logged(events):
    """The stream, ended (not broken) when the database fails it: the client reconnects."""
    try:
        yield from events
    except pymongo.errors.PyMongoError as error:
        log.warning("dashboard stream ended: %r", error)

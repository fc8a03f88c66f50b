"""The permits module's public pages (no login), rendered on the server from the module's own
functions, readable without JavaScript:

- ``/layanan``: every permit type in force with its service standard (requirements, stages,
  SLA in working days, fee, legal basis, validity, what to bring); ``/layanan/<code>`` one;
- ``/lacak`` (``?nomor=&digit=``, a GET form) and ``/lacak/<number>`` (the number filled in;
  the notify module's messages link there): the timeline of a registered application with
  its stage and working days used and left. The same work as ``GET /track`` (``public.py``):
  the same rate limit per client, the same two reads by ``_id`` and constant-time match, and
  an unknown number and wrong digits render the same page (404). A 429 is a page saying
  when to try again. ``Cache-Control: no-store``;
- ``/verifikasi/izin/<code>`` (the permit's QR code): a verdict readable at arm's length,
  valid / expired / revoked, or unknown (a 404 in the same layout); ``no-store``;
- ``/dasbor``: the public dashboard (aggregates only: applications today, by status and by
  OPD, SLA compliance, processing time, SKM, permits expiring, today's attendance per OPD),
  tables first; ``dasbor.js`` keeps it current from ``/dasbor/stream`` (Server-Sent Events)
  and draws charts with uPlot;
- ``/data``: the open datasets with their metadata, a preview and the CSV/JSON downloads.

**One reading of the dashboard per process.** ``PublicFeed`` keeps the last public figures
with the version they were read at; every page view and every stream asks it, and it reads
the version (four documents by ``_id``) at most once per ``PERMITS_PUBLIC_STREAM_POLL_SECONDS``
and the figures (``dashboard.build_dashboard``: stats documents by ``_id``) only when the
version moved. So a thousand open dashboards cost what one does. A process serves at most
``PERMITS_PUBLIC_STREAMS`` streams at once; one more is told to come back in 30 s (``retry``)
and ended, which EventSource does by itself.
"""

import logging
import time
from datetime import date, datetime
from urllib.parse import urlencode

import eventlet
from eventlet.semaphore import Semaphore
from marshmallow import ValidationError
from nameko.extensions import DependencyProvider
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from pamong.replica import UNITS
from pamong.storage import by_ids
from pamong.web import Problem, route
from pamong.web.pages import Pages, page, request_lang
from services.permits import domain
from services.permits.access import API
from services.permits.dashboard import (
    OPEN_COLUMNS,
    OPEN_DATA_MIN_RESPONSES,
    _logged,
    build_dashboard,
    stream_events,
)
from services.permits.presence import HEADCOUNT, presence_figures, read_presence
from services.permits.public import (
    CODE,
    PUBLIC_FIELDS,
    TRACK_PER_MINUTE,
    VERIFY_FIELDS,
    digits_match,
    status_view,
    verification,
)
from services.permits.schemas.dashboard import OpenDataQuery
from services.permits.schemas.public import TrackQuery
from services.permits.store import (
    APPLICATIONS,
    CODES,
    PRESENCE,
    STATS,
    holidays_for,
    local_today,
)

log = logging.getLogger(__name__)

PAGES = Pages(__file__)
# what `make run` prints beside the module's API URL
PAGE_LINKS = [("/layanan", "layanan: service standards"), ("/lacak", "lacak: tracking"),
              ("/dasbor", "dasbor: live dashboard"), ("/data", "data: open data"),
              ("/verifikasi/izin", "verifikasi izin: the permit QR")]
STREAM_POLL_SECONDS = 0.5
STREAMS_MAX = 200
BUSY_RETRY_MS = 30_000
PREVIEW_ROWS = 24

MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}
STATE_LABELS_EN = {
    "draft": "Draft", "submitted": "Submitted", "returned_incomplete": "Returned, incomplete",
    "resubmitted": "Resubmitted", "registered": "Registered", "technical_review":
    "Technical review", "recommended": "Recommended", "rejected": "Rejected", "billed":
    "Awaiting payment of the fee", "paid": "Fee paid", "signed": "Signed", "issued":
    "Permit issued", "collected": "Permit collected", "expired": "Expired", "revoked":
    "Permit revoked"}
STAGE_NAMES_EN = {"pendaftaran": "Completeness check and registration",
                  "teknis": "Technical review, recommendations and site visit",
                  "keputusan": "Decision and fee", "penerbitan": "Signing and issue"}
DOCUMENT_KINDS = {"application/pdf": "PDF", "image/png": "PNG", "image/jpeg": "JPG"}
VERDICTS = {  # the verification page's big word, its colour and what it means
    "valid": {"word": ("BERLAKU", "VALID"), "css": "status-ok",
              "text": ("Izin ini sah dan masih berlaku.", "This permit is genuine and in force.")},
    "expired": {"word": ("TIDAK BERLAKU LAGI", "EXPIRED"), "css": "status-warn",
                "text": ("Izin ini pernah terbit, tetapi masa berlakunya sudah habis.",
                         "This permit was issued, but its validity has ended.")},
    "revoked": {"word": ("DICABUT", "REVOKED"), "css": "status-bad",
                "text": ("Izin ini sudah dicabut dan tidak berlaku.",
                         "This permit was revoked and is not in force.")},
    "unknown": {"word": ("TIDAK DIKENAL", "UNKNOWN"), "css": "status-unknown",
                "text": ("Tidak ada izin dengan kode ini. Dokumen tidak diterbitkan di sini, "
                         "atau kodenya salah ketik.",
                         "No permit carries this code. The document was not issued here, or "
                         "the code was mistyped.")},
}
COLUMN_LABELS = {  # (Indonesian, English) of every open-data column
    "period": ("Bulan", "Month"), "opd": ("Kode OPD", "OPD code"),
    "opd_name": ("Nama OPD", "OPD name"), "type": ("Kode jenis izin", "Permit type code"),
    "type_name": ("Jenis izin", "Permit type"), "submitted": ("Diajukan", "Submitted"),
    "resubmitted": ("Diajukan ulang", "Resubmitted"),
    "returned": ("Dikembalikan", "Returned"), "registered": ("Didaftarkan", "Registered"),
    "rejected": ("Ditolak", "Rejected"), "issued": ("Izin terbit", "Issued"),
    "collected": ("Izin diambil", "Collected"), "revoked": ("Izin dicabut", "Revoked"),
    "expired": ("Masa berlaku habis", "Expired"), "decided": ("Diputus", "Decided"),
    "median_days": ("Median waktu proses", "Median processing time"),
    "p90_days": ("Persentil ke-90 waktu proses", "90th percentile processing time"),
    "sla_compliance_pct": ("Kepatuhan SLA", "SLA compliance"),
    "skm_responses": ("Responden SKM", "SKM respondents"),
    "skm_index": ("Indeks SKM", "SKM index"), "skm_grade": ("Mutu SKM", "SKM grade"),
}


# -- formatting (template filters) ----------------------------------------------------------

def as_date(value):
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def tanggal(value, lang="id"):
    """``6 Desember 2026`` / ``6 December 2026``; a dash for nothing."""
    day = as_date(value)
    if day is None:
        return "–"
    return f"{day.day} {MONTHS['en' if lang == 'en' else 'id'][day.month - 1]} {day.year}"


def bulan(period, lang="id"):
    """``2026-03`` -> ``Maret 2026``."""
    year, month = str(period).split("-")[:2]
    return f"{MONTHS['en' if lang == 'en' else 'id'][int(month) - 1]} {year}"


def angka(value, lang="id", digits=0):
    """A number with the language's separators: ``2.750.000`` / ``2,750,000``; ``87,5``."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if lang != "en":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def rupiah(value, lang="id"):
    if not value:
        return "Free" if lang == "en" else "Gratis"
    return f"Rp {angka(value, lang)}"


def persen(value, lang="id"):
    return "–" if value is None else f"{angka(value, lang, 1)}%"


def waktu(value, lang="id"):
    """A UTC datetime as a date and time (UTC)."""
    if value is None:
        return "–"
    return f"{tanggal(value, lang)} {value:%H:%M} UTC"


def state_label(state, lang="id"):
    if lang == "en":
        return STATE_LABELS_EN.get(state, state)
    return domain.LABELS.get(state, state)


def stage_name(stage, lang="id", own=None):
    if own:
        return own
    if lang == "en":
        return STAGE_NAMES_EN.get(stage, stage)
    return domain.STAGES.get(stage, stage)


def kinds(types):
    return ", ".join(DOCUMENT_KINDS.get(t, t) for t in types)


def megabytes(n, lang="id"):
    return f"{angka(n / 1_048_576, lang, 1 if n % 1_048_576 else 0)} MB"


for _name, _filter in (("tanggal", tanggal), ("bulan", bulan), ("angka", angka),
                       ("rupiah", rupiah), ("persen", persen), ("waktu", waktu),
                       ("state_label", state_label), ("stage_name", stage_name),
                       ("kinds", kinds), ("megabytes", megabytes)):
    PAGES.env.filters[_name] = _filter


# -- the public dashboard (pure) ------------------------------------------------------------

def _skm(figures, minimum):
    shown = figures["responses"] >= minimum
    return {"responses": figures["responses"], "shown": shown,
            "index": figures["index"] if shown else None,
            "grade": figures["grade"] if shown else None,
            "quality": figures["quality"] if shown else None}


def public_view(figures, attendance, version, minimum=OPEN_DATA_MIN_RESPONSES):
    """What the public dashboard shows of ``dashboard.figures`` (the Pemda's, aggregates
    only) and the attendance section: JSON-ready (dates as ISO text). An SKM index of fewer
    than ``minimum`` answers is withheld, as in open data."""
    states = figures["by_status"]
    by_status = [{"state": s, "label": domain.LABELS[s], "count": states[s]}
                 for s in domain.STATES if states.get(s)]
    by_opd = []
    for row in figures["by_opd"]:
        own = row["states"]
        by_opd.append({
            "opd": row["opd"], "name": row["name"],
            "open": sum(n for s, n in own.items() if s in domain.OPEN),
            "held": sum(n for s, n in own.items() if s in domain.HELD),
            "decided": row["processing"]["decided"],
            "sla_compliance_pct": row["processing"]["sla_compliance_pct"],
            "median_days": row["processing"]["median_days"]})
    proc = figures["processing"]
    today = figures["today"]
    return {
        "version": version,
        "date": today["date"].isoformat(),
        "today": {k: today[k] for k in ("submitted", "resubmitted", "registered", "issued",
                                        "rejected")},
        "open": figures["open"],
        "by_status": by_status,
        "by_opd": by_opd,
        "processing": {"decided": proc["decided"], "within_sla": proc["within_sla"],
                       "median_days": proc["median_days"], "p90_days": proc["p90_days"],
                       "sla_compliance_pct": proc["sla_compliance_pct"],
                       "histogram": [[days, n] for days, n in proc["histogram"].items()]},
        "skm": {"year": {"period": figures["skm"]["year"]["period"],
                         **_skm(figures["skm"]["year"], minimum)},
                "all_time": _skm(figures["skm"]["all_time"], minimum),
                "minimum": minimum},
        "expiring": {"days": figures["expiring"]["days"],
                     "count": figures["expiring"]["count"]},
        "attendance": {**attendance, "date": attendance["date"].isoformat()},
    }


def public_version(db, config):
    """What changes whenever the public figures may: the versions of the Pemda's ``all``
    and today's stats (the handler writes ``all`` first and the day last, so a reading
    between the two is followed by another), today's attendance counts, the headcount,
    and the date (two queries by ``_id``)."""
    today = local_today(config).isoformat()
    stats = by_ids(db[STATS], ["all", f"day:{today}"], {"version": 1})
    presence = by_ids(db[PRESENCE], [today, HEADCOUNT], {"version": 1})
    return ".".join(str(doc.get("version", 0)) for doc in (
        stats.get("all") or {}, stats.get(f"day:{today}") or {},
        presence.get(today) or {}, presence.get(HEADCOUNT) or {})) + f".{today}"


def public_figures(db, config, cache, version):
    figures = build_dashboard(db, config, cache, None)
    today = figures["today"]["date"]
    day_doc, head_doc = read_presence(db, today)
    opds = {k.replace("_", ".") for doc in (day_doc, head_doc) if doc
            for k in (doc.get("opds") or {})}
    names = {row["opd"]: row["name"] for row in figures["by_opd"]}
    missing = opds - set(names)
    if missing:
        names.update({code: doc.get("name") for code, doc in
                      by_ids(db[UNITS], missing, {"name": 1}).items()})
    attendance = presence_figures(day_doc, head_doc, names, today)
    minimum = int(config.get("PERMITS_OPEN_DATA_MIN_RESPONSES", OPEN_DATA_MIN_RESPONSES))
    return public_view(figures, attendance, version, minimum)


class _Feed:
    """The last public figures and their version, shared by a process's pages and streams
    (green threads: one refresh at a time)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lock = Semaphore()
        self.checked = None
        self.version = None
        self.figures = None
        self.html = {}  # (version, lang) -> the rendered figures
        self.streams = 0

    def current(self, read_version, read_figures, max_age):
        """``(version, figures)``, read again when older than ``max_age`` seconds."""
        if self.figures is not None and self.clock() - self.checked < max_age:
            return self.version, self.figures
        with self.lock:
            if self.figures is None or self.clock() - self.checked >= max_age:
                version = read_version()
                if version != self.version or self.figures is None:
                    self.figures = read_figures(version)
                    self.version = version
                    self.html = {}
                self.checked = self.clock()
        return self.version, self.figures

    def rendered(self, version, lang, render):
        key = (version, lang)
        if key not in self.html:
            self.html[key] = render()
        return self.html[key]


def read_public(feed, db, config, cache):
    """``(version, figures)`` of the public dashboard through the process's ``feed``."""
    poll = float(config.get("PERMITS_PUBLIC_STREAM_POLL_SECONDS", STREAM_POLL_SECONDS))
    return feed.current(lambda: public_version(db, config),
                        lambda version: public_figures(db, config, cache, version), poll)


class PublicFeed(DependencyProvider):
    """One ``_Feed`` per service container."""

    def setup(self):
        self.feed = _Feed()

    def get_dependency(self, worker_ctx):
        return self.feed


def counted_stream(feed, events, limit):
    """``events`` while fewer than ``limit`` streams of this process run; otherwise a
    ``retry`` of 30 s and the end (EventSource comes back by itself)."""
    feed.streams += 1
    try:
        if feed.streams > limit:
            yield f"retry: {BUSY_RETRY_MS}\n\n: busy\n\n"
            return
        yield from events
    finally:
        feed.streams -= 1


# -- the pages ------------------------------------------------------------------------------

def _errors(error):
    return {key: True for key in (error.messages or {})}


class PermitPages:
    """Mixed into the permits service (needs ``db``, ``config``, ``cache`` and the public
    functions of ``PublicEndpoints``, ``TypeEndpoints`` and ``DashboardEndpoints``)."""

    public_feed = PublicFeed()

    # -- service standards ----------------------------------------------------------------

    def _unit_names(self, codes):
        return {code: doc.get("name") for code, doc in
                by_ids(self.db[UNITS], set(codes), {"name": 1}).items()}

    @page("/layanan")
    def page_services(self, request):
        types = sorted((doc for doc in self._types().values() if doc.get("active", True)),
                       key=lambda doc: (doc["name"], doc["_id"]))
        units = self._unit_names(code for doc in types for code in doc.get("recommenders", ()))
        return PAGES.render(request, "layanan.html", types=types, units=units,
                            nav="layanan")

    @page("/layanan/<code>")
    def page_service(self, request, code):
        doc = self._types().get(code.strip().upper())
        if doc is None:
            raise Problem(404, "Jenis izin ini tidak ada. Lihat daftar layanan di /layanan.")
        units = self._unit_names(doc.get("recommenders", ()))
        return PAGES.render(request, "layanan_detail.html", kind=doc, units=units,
                            nav="layanan")

    # -- tracking -------------------------------------------------------------------------

    @page("/lacak", cache="no-store")
    def page_track(self, request):
        return self._track_page(request, request.args.get("nomor"), request.args.get("digit"))

    @page("/lacak/<number>", cache="no-store")
    def page_track_number(self, request, number):
        return self._track_page(request, number, request.args.get("digit"))

    def _track_page(self, request, number, last4):
        limit = int(self.config.get("PERMITS_TRACK_PER_MINUTE", TRACK_PER_MINUTE))
        shown = (number or "").strip().upper()[:40]
        context = {"nomor": shown, "limit": limit, "errors": {}, "result": None,
                   "not_found": False, "retry_after": None, "nav": "lacak"}
        if last4 is None:  # the form (with the number of a notification's link)
            return PAGES.render(request, "lacak.html", **context)
        try:
            query = TrackQuery().load({"number": number or "", "last4": last4})
        except ValidationError as error:
            return PAGES.render(request, "lacak.html", status=422,
                                **{**context, "errors": _errors(error)})
        try:
            self._count_request(request)
        except Problem as problem:
            if problem.status != 429:
                raise
            wait = problem.extensions.get("retry_after", 60)
            return PAGES.render(request, "lacak.html", status=429,
                                headers={"Retry-After": str(wait)},
                                **{**context, "retry_after": wait})
        application = self._by_number(query["number"], PUBLIC_FIELDS)
        if not digits_match(application, query["last4"]):
            return PAGES.render(request, "lacak.html", status=404,
                                **{**context, "not_found": True})
        today = local_today(self.config)
        view = status_view(application, today,
                           holidays_for(self.db, self.cache, application, today))
        return PAGES.render(request, "lacak.html", **{**context, "result": view,
                                                      "nomor": view["registration_number"]})

    # -- verification ---------------------------------------------------------------------

    @page("/verifikasi/izin", cache="no-store")
    def page_verify_form(self, request):
        code = (request.args.get("kode") or "").strip().upper()
        if code:
            if CODE.fullmatch(code):
                return redirect(f"/verifikasi/izin/{code}", 303)
            return PAGES.render(request, "verifikasi.html", status=404, verdict="unknown",
                                permit=None, code=code[:40], nav=None, words=VERDICTS)
        return PAGES.render(request, "verifikasi.html", verdict=None, permit=None, code="",
                            nav=None, words=VERDICTS)

    @page("/verifikasi/izin/<code>", cache="no-store")
    def page_verify(self, request, code):
        code = code.strip().upper()
        found = self.db[CODES].find_one({"_id": code}) if CODE.fullmatch(code) else None
        application = self.db[APPLICATIONS].find_one(
            {"_id": found["application"]}, VERIFY_FIELDS) if found else None
        answer = verification(application, local_today(self.config)) if application else None
        if answer is None:
            return PAGES.render(request, "verifikasi.html", status=404, verdict="unknown",
                                permit=None, code=code[:40], nav=None, words=VERDICTS)
        unit = self.db[UNITS].find_one({"_id": application["opd"]}, {"name": 1}) or {}
        return PAGES.render(request, "verifikasi.html", verdict=answer["verification"],
                            permit={**answer, "issued_by_name": unit.get("name")},
                            code=code, nav=None, words=VERDICTS)

    # -- the dashboard --------------------------------------------------------------------

    def _public_dashboard(self):
        return read_public(self.public_feed, self.db, self.config, self.cache)

    @page("/dasbor")
    def page_dashboard(self, request):
        version, figures = self._public_dashboard()
        lang = request_lang(request)
        stream = "/dasbor/stream?" + urlencode({"lang": lang})
        return PAGES.render(request, "dasbor.html", d=figures, version=version,
                            stream_url=stream, nav="dasbor")

    @route("GET", "/dasbor/stream", public=True, document=False)
    def page_dashboard_stream(self, request, principal):
        """The public dashboard as Server-Sent Events: ``event: dashboard`` with
        ``{version, figures, html}`` (``html``: the figures as ``/dasbor`` renders them, in
        the page's language) at once and within ``PERMITS_PUBLIC_STREAM_POLL_SECONDS`` of a
        change, keep-alives, a bounded life (the ``PERMITS_STREAM_*`` settings)."""
        # the stream outlives the worker: it keeps what it needs, not the service instance
        db, config, cache, feed = self.db, self.config, self.cache, self.public_feed
        poll = float(config.get("PERMITS_PUBLIC_STREAM_POLL_SECONDS", STREAM_POLL_SECONDS))
        lang = request_lang(request)

        def payload():
            version, figures = read_public(feed, db, config, cache)
            html = feed.rendered(version, lang, lambda: PAGES.render_fragment(
                request, "_dasbor_isi.html", d=figures))
            return {"version": version, "figures": figures, "html": html}

        request.environ["eventlet.minimum_write_chunk_size"] = 0
        events = stream_events(
            lambda: read_public(feed, db, config, cache)[0], payload, poll=poll,
            heartbeat=float(config.get("PERMITS_STREAM_HEARTBEAT_SECONDS", 15)),
            max_seconds=float(config.get("PERMITS_STREAM_MAX_SECONDS", 600)),
            sleep=eventlet.sleep)
        limit = int(config.get("PERMITS_PUBLIC_STREAMS", STREAMS_MAX))
        return Response(_logged(counted_stream(feed, events, limit)),
                        content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- open data ------------------------------------------------------------------------

    @page("/data")
    def page_data(self, request):
        asked = {k: v for k, v in request.args.items() if k in ("from", "to") and v}
        try:
            query = OpenDataQuery().load(asked)
            metadata, rows = self._open_data(query)
        except ValidationError as error:
            return self._data_page(request, None, [], asked, _errors(error), 422)
        except Problem as problem:
            if problem.status != 422:
                raise
            return self._data_page(request, None, [], asked, {"from": True}, 422)
        return self._data_page(request, metadata, rows, asked, {}, 200)

    def _data_page(self, request, metadata, rows, asked, errors, status):
        period = (metadata or {}).get("period") or {}
        query = urlencode({"from": period["from"], "to": period["to"]}) if period else ""
        return PAGES.render(
            request, "data.html", status=status, metadata=metadata, rows=rows[-PREVIEW_ROWS:],
            row_count=len(rows), asked=asked, errors=errors, columns=OPEN_COLUMNS,
            labels=COLUMN_LABELS, nav="data",
            csv_url=f"{API}/open-data/permits.csv" + (f"?{query}" if query else ""),
            json_url=f"{API}/open-data/permits.json" + (f"?{query}" if query else ""))

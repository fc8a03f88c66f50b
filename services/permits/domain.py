"""Permits' rules as pure functions over plain dicts (no pymongo, nameko or HTTP).

- **Lifecycle** (``ACTIONS``): one table of the allowed actions, the state each leads to, who
  may take it and what it needs (a reason, the missing items). An action that is not allowed
  in the current state is refused naming the state and the actions it allows; ``guard``
  adds the conditions the table cannot express (a free permit is never billed; recommendations
  and the site visit come before ``recommend``; the mandatory documents before submission).
- **SLA in working days** (DOMAIN "Permits"): Monday to Friday (configurable) minus national
  and regional holidays. The clock runs from submission to issuance (or rejection), is paused
  while the file is with the applicant (``returned_incomplete``) or awaits payment
  (``billed``), and counts per stage of the permit type's service standard and in total. A
  working day is used when the clock runs from one day into the next: a file registered on
  the day it was submitted used none.
- **SKM** (PermenPANRB 14/2017): 9 elements rated 1-4; the index is the mean of the elements'
  means x 25, graded A-D.
- **Numbers**: registration, bill and permit numbers from yearly sequences; a verification
  code for the permit's QR code; the holder's name masked for public answers.
"""

import re
import secrets
from collections import namedtuple
from datetime import date, datetime, timedelta

# -- states ---------------------------------------------------------------------------------

DRAFT, SUBMITTED, RETURNED, RESUBMITTED = ("draft", "submitted", "returned_incomplete",
                                           "resubmitted")
REGISTERED, REVIEW, RECOMMENDED, REJECTED = ("registered", "technical_review", "recommended",
                                             "rejected")
BILLED, PAID, SIGNED, ISSUED, COLLECTED = "billed", "paid", "signed", "issued", "collected"
EXPIRED, REVOKED = "expired", "revoked"
STATES = (DRAFT, SUBMITTED, RETURNED, RESUBMITTED, REGISTERED, REVIEW, RECOMMENDED, REJECTED,
          BILLED, PAID, SIGNED, ISSUED, COLLECTED, EXPIRED, REVOKED)

LABELS = {  # what an applicant reads (tracking, WhatsApp)
    DRAFT: "Draf", SUBMITTED: "Diajukan", RETURNED: "Dikembalikan, berkas belum lengkap",
    RESUBMITTED: "Diajukan ulang", REGISTERED: "Terdaftar", REVIEW: "Kajian teknis",
    RECOMMENDED: "Direkomendasikan", REJECTED: "Ditolak", BILLED: "Menunggu pembayaran retribusi",
    PAID: "Retribusi dibayar", SIGNED: "Ditandatangani", ISSUED: "Izin terbit",
    COLLECTED: "Izin diambil", EXPIRED: "Masa berlaku habis", REVOKED: "Izin dicabut",
}

# the clock: running in these states, paused while the file waits for the applicant
RUNNING = (SUBMITTED, RESUBMITTED, REGISTERED, REVIEW, RECOMMENDED, PAID, SIGNED)
PAUSED = (RETURNED, BILLED)
OPEN = RUNNING + PAUSED  # still being processed
HELD = (ISSUED, COLLECTED)  # a permit in force (until expired or revoked)

# the stages of a service standard, and the stage each running state belongs to
STAGES = {"pendaftaran": "Pemeriksaan kelengkapan dan pendaftaran",
          "teknis": "Kajian teknis, rekomendasi dan peninjauan lapangan",
          "keputusan": "Keputusan dan penetapan retribusi",
          "penerbitan": "Penandatanganan dan penerbitan"}
STAGE_OF = {SUBMITTED: "pendaftaran", RESUBMITTED: "pendaftaran", REGISTERED: "teknis",
            REVIEW: "teknis", RECOMMENDED: "keputusan", PAID: "penerbitan", SIGNED: "penerbitan"}

# -- the lifecycle table --------------------------------------------------------------------

# parties: "applicant" (the owning pemohon, or a petugas of the responsible OPD at the
# counter), "officer" (petugas of the responsible OPD), "reviewer" (verifikator or petugas of
# the responsible OPD), "head" (pimpinan of the responsible OPD), "system" (timers)
Action = namedtuple("Action", "sources target parties needs")
ACTIONS = {
    "submit": Action((DRAFT,), SUBMITTED, ("applicant",), ()),
    "return": Action((SUBMITTED, RESUBMITTED), RETURNED, ("officer",), ("missing_items",)),
    "resubmit": Action((RETURNED,), RESUBMITTED, ("applicant",), ()),
    "register": Action((SUBMITTED, RESUBMITTED), REGISTERED, ("officer",), ()),
    "start_review": Action((REGISTERED,), REVIEW, ("officer", "reviewer"), ()),
    "recommend": Action((REVIEW,), RECOMMENDED, ("reviewer",), ()),
    "reject": Action((REGISTERED, REVIEW, RECOMMENDED), REJECTED, ("head",), ("reason",)),
    "bill": Action((RECOMMENDED,), BILLED, ("officer",), ()),
    "pay": Action((BILLED,), PAID, ("officer",), ("payment_reference",)),
    "sign": Action((RECOMMENDED, PAID), SIGNED, ("head",), ()),
    "issue": Action((SIGNED,), ISSUED, ("officer",), ()),
    "collect": Action((ISSUED,), COLLECTED, ("officer", "applicant"), ()),
    "expire": Action((ISSUED, COLLECTED), EXPIRED, ("system",), ()),
    "revoke": Action((ISSUED, COLLECTED), REVOKED, ("head",), ("reason",)),
}


def allowed_actions(state):
    """The actions the table allows from ``state``, in table order."""
    return [name for name, action in ACTIONS.items() if state in action.sources]


def transition_problem(state, action_name):
    """None when ``action_name`` is allowed from ``state``; else the 409 detail naming the
    current state and the allowed actions."""
    action = ACTIONS.get(action_name)
    if action is not None and state in action.sources:
        return None
    allowed = allowed_actions(state)
    return (f"{action_name!r} is not allowed while the application is {state!r}; allowed: "
            f"{', '.join(allowed) if allowed else 'none (the application is closed)'}")


def parties_of(application, *, roles, sub=None, in_opd=False):
    """The parties the caller is for this application. ``in_opd``: the caller's OPD scope
    covers the application's responsible OPD (the caller looks it up)."""
    roles = set(roles)
    found = set()
    if "pemohon" in roles and sub is not None and sub == application.get("owner"):
        found.add("applicant")
    if in_opd:
        if "petugas" in roles:
            found |= {"officer", "reviewer", "applicant"}
        if "verifikator" in roles:
            found.add("reviewer")
        if "pimpinan" in roles:
            found.add("head")
    if "service" in roles:
        found.add("system")
    return found


def actions_for(application, parties):
    """The actions these parties may take now (what a client shows as buttons)."""
    return [name for name in allowed_actions(application["state"])
            if set(ACTIONS[name].parties) & parties and not guard(application, name)]


def missing_documents(application):
    """The mandatory requirements of its standard with no document uploaded."""
    have = {d["requirement"] for d in application.get("documents", ())}
    return [r["key"] for r in application["standard"]["requirements"]
            if r["mandatory"] and r["key"] not in have]


def guard(application, action_name):
    """Reasons (a list, empty: fine) the action cannot be taken although the table allows it
    from the current state."""
    standard = application["standard"]
    fee = standard.get("fee", 0)
    problems = []
    if action_name in ("submit", "resubmit") and (missing := missing_documents(application)):
        problems.append(f"mandatory documents missing: {', '.join(missing)}")
    if action_name == "bill" and not fee:
        problems.append("the permit is free (fee 0): the head signs it without a bill")
    if action_name == "sign" and application["state"] == RECOMMENDED and fee:
        problems.append(f"the fee of Rp{fee:,} is billed and paid before signing")
    if action_name == "recommend":
        pending = [r["opd"] for r in application.get("recommendations", ())
                   if r.get("status") == "requested"]
        if pending:
            problems.append(f"recommendations still awaited from: {', '.join(pending)}")
        if standard.get("site_visit") and not (application.get("site_visit") or {}).get(
                "done_on"):
            problems.append("the site visit is not recorded yet")
    return problems


# -- working days and the SLA clock ---------------------------------------------------------

OFFICE_WEEK = (0, 1, 2, 3, 4)  # Monday to Friday


def is_working_day(day, holidays=(), weekdays=OFFICE_WEEK):
    return day.weekday() in weekdays and day not in holidays


def working_days_between(start, end, holidays=(), weekdays=OFFICE_WEEK):
    """The working days ``d`` with ``start < d <= end`` (0 when ``end <= start``)."""
    if end <= start:
        return 0
    # whole weeks at once, then the rest day by day: a year costs a few steps, not 365
    span = (end - start).days
    weeks, rest = divmod(span, 7)
    count = weeks * len(weekdays)
    day = start + timedelta(days=weeks * 7)
    for _ in range(rest):
        day += timedelta(days=1)
        count += day.weekday() in weekdays
    return count - sum(1 for h in holidays if start < h <= end and h.weekday() in weekdays)


def add_working_days(start, n, holidays=(), weekdays=OFFICE_WEEK):
    """The day on which ``n`` working days after ``start`` have been used (``start`` itself
    for ``n <= 0``): the smallest ``d`` with ``working_days_between(start, d) >= n``."""
    if not weekdays:
        raise ValueError("a week with no working day")
    day = start
    while n > 0:
        day += timedelta(days=1)
        n -= is_working_day(day, holidays, weekdays)
    return day


Clock = namedtuple("Clock", "running used stages left")


def as_date(value):
    """A stored day (ISO text, a date, or a datetime) as a date."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def timeline_days(timeline):
    """A stored timeline (``on``: the local day as ISO text) as ``clock`` reads it."""
    return [{"to": entry["to"], "on": as_date(entry["on"])} for entry in timeline]


def stage_sla(standard):
    """``{stage: sla_days}`` of a service standard."""
    return {stage["key"]: stage["sla_days"] for stage in standard.get("stages") or ()}


def clock_of(application, today, holidays=(), weekdays=OFFICE_WEEK):
    """``clock`` of a stored application under the standard it was submitted under."""
    standard = application["standard"]
    return clock(timeline_days(application.get("timeline") or ()), today,
                 standard["sla_days"], stage_sla(standard), holidays, weekdays)


def clock(timeline, today, sla_days, stage_sla=None, holidays=(), weekdays=OFFICE_WEEK):
    """The SLA clock of an application from its ``timeline`` (``[{"to": state, "on": local
    date}, ...]`` in order). ``used``: working days the clock ran; ``stages``: ``{stage:
    used}``; ``left``: ``sla_days - used`` (negative once breached); ``running``: whether it
    runs today."""
    used, stages = 0, {}
    for entry, following in zip(timeline, list(timeline[1:]) + [None], strict=False):
        if entry["to"] not in RUNNING:
            continue
        end = following["on"] if following else today
        days = working_days_between(entry["on"], end, holidays, weekdays)
        used += days
        stage = STAGE_OF[entry["to"]]
        stages[stage] = stages.get(stage, 0) + days
    running = bool(timeline) and timeline[-1]["to"] in RUNNING
    return Clock(running, used, stages, sla_days - used)


def alerts_due(timeline, today, sla_days, stage_sla, warn_days, holidays=(),
               weekdays=OFFICE_WEEK):
    """The SLA alerts an application has reached today: keys ``warning:total``,
    ``breach:total`` and ``breach:<stage>`` (a stage over its own SLA), each once in the life
    of the file (the caller keeps the ones already sent)."""
    c = clock(timeline, today, sla_days, stage_sla, holidays, weekdays)
    due = []
    if c.used > 0 and c.left <= warn_days:
        due.append("warning:total")
    if c.left < 0:
        due.append("breach:total")
    for stage, used in c.stages.items():
        if stage in (stage_sla or {}) and used > stage_sla[stage]:
            due.append(f"breach:{stage}")
    return due


def next_alert_day(timeline, today, sla_days, stage_sla, warn_days, holidays=(),
                   weekdays=OFFICE_WEEK):
    """The first day after ``today`` on which a new alert can fall due if the clock keeps
    running (None when it does not run): the timers look at the file again on that day."""
    c = clock(timeline, today, sla_days, stage_sla, holidays, weekdays)
    if not c.running:
        return None
    stage = STAGE_OF[timeline[-1]["to"]]
    # the warning needs a day used (alerts_due), also when the SLA is no longer than it
    candidates = [max(sla_days - warn_days, 1) - c.used, sla_days + 1 - c.used]
    if stage in (stage_sla or {}):
        candidates.append(stage_sla[stage] + 1 - c.stages.get(stage, 0))
    ahead = [n for n in candidates if n > 0]
    return add_working_days(today, min(ahead), holidays, weekdays) if ahead else \
        add_working_days(today, 1, holidays, weekdays)


# -- SKM ------------------------------------------------------------------------------------

SKM_ELEMENTS = {  # PermenPANRB 14/2017, the 9 elements
    "persyaratan": "Persyaratan", "prosedur": "Sistem, mekanisme dan prosedur",
    "waktu": "Waktu penyelesaian", "biaya": "Biaya/tarif", "produk": "Produk spesifikasi "
    "jenis pelayanan", "kompetensi": "Kompetensi pelaksana", "perilaku": "Perilaku pelaksana",
    "pengaduan": "Penanganan pengaduan, saran dan masukan", "sarana": "Sarana dan prasarana",
}
SKM_GRADES = (  # (lowest index, grade, quality)
    (88.31, "A", "Sangat Baik"), (76.61, "B", "Baik"), (65.00, "C", "Kurang Baik"),
    (25.00, "D", "Tidak Baik"),
)


def skm_index(sums, count):
    """The index (25.00-100.00, two decimals) from the per-element sums of ``count``
    responses; None without responses."""
    if not count:
        return None
    means = [sums.get(element, 0) / count for element in SKM_ELEMENTS]
    return round(sum(means) / len(SKM_ELEMENTS) * 25, 2)


def skm_grade(index):
    """``(grade, quality)`` of an index, ``(None, None)`` for none."""
    if index is None:
        return None, None
    for lowest, grade, quality in SKM_GRADES:
        if index >= lowest:
            return grade, quality
    return "D", "Tidak Baik"


# -- numbers and codes ----------------------------------------------------------------------

TYPE_CODE = re.compile(r"^[A-Z][A-Z0-9_-]{1,19}$")
NIB = re.compile(r"^\d{13}$")
REGISTRATION = re.compile(r"^REG-\d{4}-\d{6}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or retyped


def registration_number(year, n):
    return f"REG-{year}-{n:06d}"


def bill_number(year, n):
    return f"SKRD-{year}-{n:06d}"


def permit_number(type_code, opd_short, year, n):
    return f"{n:05d}/{type_code}/{opd_short}/{year}"


def verification_code(length=12):
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def verification_url(public_url, code):
    """What the permit's QR code carries: its public verification page."""
    return f"{public_url}/verifikasi/izin/{code}"


def validity(issued_on, months):
    """``(valid_from, valid_until)`` of a permit issued on ``issued_on`` for ``months`` (0:
    no end); the last valid day is the day before the same date ``months`` later."""
    if not months:
        return issued_on, None
    month = issued_on.month - 1 + months
    year, month = issued_on.year + month // 12, month % 12 + 1
    if issued_on.day > _days_in(year, month):  # no such date (31 Feb): to the month's end
        return issued_on, date(year, month, _days_in(year, month))
    return issued_on, date(year, month, issued_on.day) - timedelta(days=1)


def _days_in(year, month):
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def mask_name(name):
    """``Budi Santoso`` -> ``Bu** Sa*****``: enough to recognise, not to identify."""
    return " ".join(word[:2] + "*" * max(len(word) - 2, 0) for word in name.split())

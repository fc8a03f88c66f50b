"""Letters' rules as pure functions over plain dicts (no pymongo, nameko or HTTP).

- **Reference data**: document kinds (the naskah dinas kinds of Permendagri 1/2023), security
  classes (SR, R, T, B), urgency, and classification codes (kode klasifikasi arsip,
  Permendagri 83/2022: dotted and hierarchical, ``000.8.3.3``) each with its retention.
- **Flow** (``TRANSITIONS``): one table of the allowed steps, the state each leads to, and who
  may take it (the letter's drafter, its current verifier, its signer). A step that is not in
  the table for the current state is refused naming the state and the steps it allows.
- **Numbering**: a number is given at signing from a sequence that resets every calendar year
  (per unit, optionally per kind), rendered through the unit's template
  (``render_number``). The year and month are those of the signing day in the unit's time
  zone.
- **Retention** (JRA): a record is active for ``active_years`` after the year it was finished,
  then inactive for ``inactive_years``, then due for its final disposition.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pamong.auth.principal import in_subtree

# -- reference data ------------------------------------------------------------------------

KINDS = {  # code -> (name, group, printed heading)
    "instruksi": ("Instruksi", "arahan", "INSTRUKSI"),
    "surat_edaran": ("Surat Edaran", "arahan", "SURAT EDARAN"),
    "surat_perintah": ("Surat Perintah", "arahan", "SURAT PERINTAH"),
    "surat_tugas": ("Surat Tugas", "arahan", "SURAT TUGAS"),
    "keputusan": ("Keputusan", "arahan", "KEPUTUSAN"),
    "surat_dinas": ("Surat Dinas", "korespondensi", None),
    "nota_dinas": ("Nota Dinas", "korespondensi", "NOTA DINAS"),
    "surat_undangan": ("Surat Undangan", "korespondensi", None),
    "memo": ("Memo", "korespondensi", "MEMO"),
    "berita_acara": ("Berita Acara", "khusus", "BERITA ACARA"),
    "surat_keterangan": ("Surat Keterangan", "khusus", "SURAT KETERANGAN"),
    "surat_pengantar": ("Surat Pengantar", "khusus", "SURAT PENGANTAR"),
    "pengumuman": ("Pengumuman", "khusus", "PENGUMUMAN"),
    "surat_kuasa": ("Surat Kuasa", "khusus", "SURAT KUASA"),
    "laporan": ("Laporan", "khusus", "LAPORAN"),
    "notula": ("Notula", "khusus", "NOTULA"),
    "telaahan_staf": ("Telaahan Staf", "khusus", "TELAAHAN STAF"),
}
KIND_GROUPS = ("arahan", "korespondensi", "khusus", "lainnya")
KIND_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

SECURITY = {"SR": "Sangat Rahasia", "R": "Rahasia", "T": "Terbatas", "B": "Biasa"}
CONFIDENTIAL = ("SR", "R", "T")  # visible only to the named people and their leadership
URGENCY = {"sangat_segera": "Sangat Segera", "segera": "Segera", "biasa": "Biasa"}
DISPOSITIONS = ("destroy", "review", "permanent")  # musnah / dinilai kembali / permanen

CLASSIFICATION_CODE = re.compile(r"^\d{3}(\.\d{1,3}){0,4}$")


def classification_parent(code):
    """``000.8.3.3`` -> ``000.8.3``; a top-level code (``000``) has none."""
    return code.rsplit(".", 1)[0] if "." in code else None


def classification_chain(code):
    """The code and its ancestors, nearest first: the nearest one with a retention rules."""
    chain = [code]
    while (parent := classification_parent(chain[-1])) is not None:
        chain.append(parent)
    return chain


# -- the flow ------------------------------------------------------------------------------

DRAFT, IN_REVIEW, RETURNED = "draft", "in_review", "returned"
AWAITING_SIGNATURE, SIGNED, WITHDRAWN = "awaiting_signature", "signed", "withdrawn"
SENT, ARCHIVED = "sent", "archived"  # sealed and delivered; filed under its classification
RECEIVED = "received"  # an incoming letter from outside, registered by a mail clerk
SIGNED_ON = (SIGNED, SENT, ARCHIVED)  # the states of a letter once signed
STATES = (DRAFT, IN_REVIEW, RETURNED, AWAITING_SIGNATURE, SIGNED, WITHDRAWN, SENT, ARCHIVED,
          RECEIVED)
EDITABLE = (DRAFT, RETURNED)

# step -> (states it may be taken from, who may take it)
TRANSITIONS = {
    "submit": ((DRAFT, RETURNED), "drafter"),
    "approve": ((IN_REVIEW,), "verifier"),
    "return": ((IN_REVIEW, AWAITING_SIGNATURE), "reviewer"),  # the current verifier or signer
    "sign": ((AWAITING_SIGNATURE,), "signer"),
    "withdraw": ((DRAFT, RETURNED), "drafter"),
}
NOTE_REQUIRED = ("return",)  # a return says what to fix


class IllegalStep(Exception):
    """A step the letter's state does not allow; ``allowed`` are the steps it does."""

    def __init__(self, step, state):
        self.step, self.state = step, state
        self.allowed = allowed_steps(state)
        super().__init__(f"'{step}' is not allowed while the letter is {state}; allowed: "
                         f"{', '.join(self.allowed) or 'none (the letter is final)'}")


def allowed_steps(state):
    return [step for step, (states, _) in TRANSITIONS.items() if state in states]


def current_verifier(letter):
    """The verifier whose paraf is awaited (``step`` counts the approvals so far)."""
    if letter["state"] != IN_REVIEW:
        return None
    return letter["verifiers"][letter["step"]]["nip"]


def roles_in(letter, nip):
    """The parts ``nip`` plays in the letter's flow right now."""
    parts = set()
    if nip == letter["drafter"]["nip"]:
        parts.add("drafter")
    if nip == current_verifier(letter):
        parts |= {"verifier", "reviewer"}
    if letter["state"] == AWAITING_SIGNATURE and nip == letter["signer"]["nip"]:
        parts |= {"signer", "reviewer"}
    return parts


def next_state(letter, step):
    """The state ``step`` leads to from the letter's state (IllegalStep when not allowed)."""
    states, _ = TRANSITIONS[step]
    if letter["state"] not in states:
        raise IllegalStep(step, letter["state"])
    if step == "submit":
        return IN_REVIEW if letter["verifiers"] else AWAITING_SIGNATURE
    if step == "approve":
        return IN_REVIEW if letter["step"] + 1 < len(letter["verifiers"]) else AWAITING_SIGNATURE
    return {"return": RETURNED, "sign": SIGNED, "withdraw": WITHDRAWN}[step]


def after_write(letter, update):
    """The letter as a step's ``update`` (``$set`` with dotted paths, ``$inc``, ``$push``)
    leaves it, without reading it back."""
    after = {**letter, "verifiers": [dict(v) for v in letter["verifiers"]],
             "timeline": list(letter["timeline"])}
    for path, value in update.get("$set", {}).items():
        *parents, last = path.split(".")
        target = after
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    for field, by in update.get("$inc", {}).items():
        after[field] = after.get(field, 0) + by
    for field, value in update.get("$push", {}).items():
        after[field] = [*after.get(field, []), value]
    return after


def step_changes(letter, step, nip, note, at):
    """``$set`` of the fields a step changes (besides ``state``), given who takes it."""
    verifiers = letter["verifiers"]
    if step == "submit":  # a resubmission starts the paraf round again from the first
        return {"step": 0, "verifiers": [{**v, "status": "pending", "at": None, "note": None}
                                         for v in verifiers], "submitted_at": at}
    if step in ("approve", "return") and nip == current_verifier(letter):
        i = letter["step"]
        mark = {"status": "approved" if step == "approve" else "returned", "at": at,
                "note": note}
        changes = {f"verifiers.{i}.{k}": v for k, v in mark.items()}
        if step == "approve":
            changes["step"] = i + 1
        return changes
    return {}


# -- the signer rule -----------------------------------------------------------------------

def covers(acting, day):
    """An acting assignment (Plt/Plh) in force on ``day`` (an early end is its last day)."""
    last = min(acting["end"], acting["ended_on"]) if acting.get("ended_on") else acting["end"]
    return acting["start"] <= day.isoformat() <= last


def signing_capacity(employee, actings, day):
    """How ``employee`` may sign on ``day``: ``{"position", "title", "acting"}`` from their own
    position when it may sign, else from an acting assignment in force that day (``acting``
    is ``plt``/``plh``; the caller fills ``title`` of a vacant position), else None."""
    if employee is None or employee.get("status") != "active":
        return None
    position = employee.get("position") or {}
    if position.get("may_sign"):
        return {"position": position["id"], "title": position["title"], "acting": None}
    for acting in actings:
        if acting["nip"] == employee["_id"] and covers(acting, day):
            return {"position": acting["position"], "title": None, "acting": acting["kind"],
                    "unit": acting["unit"]}
    return None


def signer_title(capacity):
    """The title above the signature: ``Plt. Kepala Dinas ...`` for an acting official."""
    prefix = {"plt": "Plt. ", "plh": "Plh. "}.get(capacity.get("acting"), "")
    return prefix + capacity["title"]


# -- numbering -----------------------------------------------------------------------------

PLACEHOLDERS = ("klasifikasi", "urut", "unit", "bulan", "bulan_romawi", "tahun", "derajat",
                "jenis")
_FIELD = re.compile(r"\{([a-z_]+)(?::(\d))?\}")
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
DEFAULT_TEMPLATE = "{klasifikasi}/{urut}/{unit}/{tahun}"


def check_template(template):
    """Problems of a numbering template (empty: usable). ``{urut}`` may carry a zero-padding
    width: ``{urut:3}`` prints 7 as ``007``."""
    problems = []
    names = [m.group(1) for m in _FIELD.finditer(template)]
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    if unknown:
        problems.append(f"unknown placeholder(s) {', '.join(unknown)}; known: "
                        f"{', '.join(PLACEHOLDERS)}")
    if names.count("urut") != 1:
        problems.append("the template must contain {urut} exactly once")
    for m in _FIELD.finditer(template):
        if m.group(2) and m.group(1) != "urut":
            problems.append(f"only {{urut}} takes a width, not {{{m.group(1)}}}")
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        problems.append("unbalanced or malformed braces")
    if len(template) > 120:
        problems.append("at most 120 characters")
    return problems


def roman_month(month):
    return ROMAN[month - 1]


def render_number(template, *, seq, day, unit_code, classification, security, kind):
    """The printed number: ``{klasifikasi}/{urut}/{unit}`` with 15 -> ``000.8.3.3/15/OR``."""
    values = {"klasifikasi": classification, "unit": unit_code, "bulan": f"{day.month:02d}",
              "bulan_romawi": roman_month(day.month), "tahun": str(day.year),
              "derajat": security, "jenis": kind}

    def fill(match):
        name, width = match.group(1), match.group(2)
        if name == "urut":
            return str(seq).zfill(int(width)) if width else str(seq)
        return values[name]

    return _FIELD.sub(fill, template)


def sequence_id(owner, kind, year, per_kind):
    """The counter a number comes from: the configured unit, the kind (or every kind), year."""
    return f"{owner}:{kind if per_kind else '*'}:{year}"


def scheme_for(configs, unit_chain, kind):
    """The numbering scheme of a letter of ``kind`` from ``unit``: the nearest unit up the tree
    (``unit_chain``, the unit first) with a configuration; ``(owner, template, per_kind,
    unit_code)``, or None when no unit up the tree is configured."""
    for code in unit_chain:
        config = configs.get(code)
        if config:
            template = (config.get("kinds") or {}).get(kind) or config["template"]
            return code, template, bool(config.get("per_kind")), config["unit_code"]
    return None


# -- retention -----------------------------------------------------------------------------

def retention_dates(finished, active_years, inactive_years):
    """``(inactive_from, disposition_due)``: the active period runs to the end of the
    ``active_years``-th year after the year the record was finished (JRA counts whole years),
    the inactive period for ``inactive_years`` more."""
    inactive_from = date(finished.year + active_years + 1, 1, 1)
    return inactive_from, date(inactive_from.year + inactive_years, 1, 1)


# -- search words ---------------------------------------------------------------------------

_WORD = re.compile(r"[0-9a-z]+")


def words(*texts):
    """Lower-case word tokens of ``texts`` (a two-letter word is too common to search by)."""
    found = set()
    for text in texts:
        found.update(w for w in _WORD.findall((text or "").lower()) if len(w) > 2)
    return sorted(found)


# -- delivery and dispositions (mail.py, dispositions.py) ----------------------------------

def units_led(employee, actings, day):
    """The units ``employee`` heads on ``day``, each with how: None by their own position
    (``heads_unit`` in the directory), ``plt``/``plh`` by an acting assignment in force that
    day (the acting's ``unit``)."""
    if employee is None or employee.get("status") != "active":
        return {}
    led = {a["unit"]: a["kind"] for a in actings
           if a["nip"] == employee["_id"] and covers(a, day)}
    if (employee.get("position") or {}).get("heads_unit"):
        led[employee["unit"]] = None
    return led


def recipient_problems(employees, nips, scope, path):
    """Why ``nips`` may not be sent a disposition by someone whose reach is unit ``scope``
    and the units below it (empty: all may). ``path``: the disposition's author and everyone
    above it, who cannot get it back (no cycles)."""
    problems = []
    for nip in nips:
        employee = employees.get(nip)
        if employee is None or employee.get("status") != "active":
            problems.append(f"{nip} is not an active employee")
        elif nip in path:
            problems.append(f"{nip} is already on this disposition's path")
        elif not in_subtree(employee["unit"], scope):
            problems.append(f"{nip} is not in unit {scope} or a unit below it")
    return problems


def overdue_at(due, zone):
    """When a disposition due on ``due`` is overdue: the next day's start in the unit's zone."""
    return datetime.combine(due + timedelta(days=1), time(), ZoneInfo(zone)).astimezone(UTC)


OVERDUE_SETTLE_LAG = timedelta(days=2)  # a bucket is settled only this far behind today


def overdue_round(checked, now, buckets, dispositions):
    """One round of the overdue timer over the due-day buckets (``{UTC day: [disposition
    ids]}``) after ``checked``, the last day settled, up to today: ``(report, settled)``, the
    dispositions to report as overdue now and the last day now settled (every disposition of
    its bucket and the ones before finished, cancelled or reported; at least
    ``OVERDUE_SETTLE_LAG`` behind today, so a disposition made around midnight cannot land in
    a bucket already settled)."""
    today, report, settled = now.date(), [], checked
    for n in range(1, (today - checked).days + 1):
        day, waiting = checked + timedelta(days=n), False
        for d in filter(None, map(dispositions.get, buckets.get(day, ()))):
            if d["overdue_sent"] or d["cancelled"] or d["completed_at"]:
                continue
            if d["overdue_at"] > now:
                waiting = True
            else:
                report.append(d)
        if not waiting and settled == day - timedelta(days=1) \
                and day <= today - OVERDUE_SETTLE_LAG:
            settled = day
    return report, settled


def disposition_state(disposition):
    """cancelled | completed | read | unread."""
    if disposition.get("cancelled"):
        return "cancelled"
    if disposition.get("completed_at"):
        return "completed"
    return "read" if disposition.get("read_at") else "unread"


def disposition_tree(dispositions, parent=None):
    """The dispositions under ``parent`` (None: the roots), each with its ``children``, in the
    order they were made."""
    below = {}
    for d in sorted(dispositions, key=lambda d: d["created_at"]):
        below.setdefault(d.get("parent"), []).append(d)

    def grow(d):
        return {**d, "children": [grow(c) for c in below.get(d["_id"], [])]}

    return [grow(d) for d in below.get(parent, [])]


# -- lists, search and the archive (lists.py, archive.py) ----------------------------------

def opd_of(unit):
    """The OPD a unit belongs to: ``<pemda>.<opd>`` of its code (the Pemda root is its own)."""
    return ".".join(unit.split(".")[:2])


def letter_date(letter):
    """The date lists and search file a letter under: sent (or signed) for an outgoing letter,
    registered for an incoming one."""
    return letter.get("sent_at") or letter.get("signed_at") or letter["created_at"]


def sender_text(letter, unit_name):
    """Who a letter is from: the party outside for an incoming letter, else its unit's name."""
    if letter.get("direction") == "incoming":
        sender = letter.get("sender") or {}
        return " - ".join(filter(None, (sender.get("name"), sender.get("organisation"))))
    return unit_name


def named_nips(letter):
    """The people a letter names (and whom search finds it for): drafter, verifiers, signer,
    who signed it, its disposition chain."""
    nips = [(letter.get("drafter") or {}).get("nip"), (letter.get("signer") or {}).get("nip"),
            (letter.get("signed_by") or {}).get("nip"),
            *(v["nip"] for v in letter.get("verifiers", ())), *letter.get("chain", ())]
    return sorted({n for n in nips if n})


def index_scopes(letter, people_opd):
    """The search scopes a letter is posted to: ``all`` (Pemda-wide roles), the OPD of its
    unit, of each unit that received it and of each person it names (``people_opd``: nip ->
    OPD, from the directory), so whoever reads one of those OPDs finds it in one stream."""
    units = [letter["unit"], *letter.get("receivers", ())]
    opds = {opd_of(u) for u in units} | {people_opd[n] for n in named_nips(letter)
                                          if people_opd.get(n)}
    return ["all", *sorted(opds)]


def card_tokens(card):
    """The posting lists a card goes to within a scope: ``*`` (every letter), each subject
    word ``w.``, each sender word ``f.``, the classification and its ancestors ``c.``."""
    return (["*"] + [f"w.{w}" for w in card["w"]] + [f"f.{w}" for w in card["f"]]
            + [f"c.{c}" for c in classification_chain(card["c"])])


def query_tokens(q_words, sender_words, classification):
    return ([f"w.{w}" for w in q_words] + [f"f.{w}" for w in sender_words]
            + ([f"c.{classification}"] if classification else []))


def card_matches(card, q_words, sender_words, classification, start, end):
    """A card against a search: every word in its subject, every sender word in its sender,
    its classification the one asked or below it, its date within ``[start, end)``."""
    return (set(q_words) <= set(card["w"]) and set(sender_words) <= set(card["f"])
            and (not classification or card["c"] == classification
                 or card["c"].startswith(classification + "."))
            and (start is None or card["a"] >= start) and (end is None or card["a"] < end))


def normal_number(number):
    """A letter number as search looks it up: case and spacing do not matter."""
    return " ".join(number.upper().split())


# archive decisions: what may be recorded for each final disposition of the schedule (a
# permanent record is never destroyed)
DECISIONS = ("destroyed", "kept_permanent", "reviewed_extended")


def extended(due, years):
    """The new due date of a record kept ``years`` longer on review (29 February: the 28th)."""
    try:
        return due.replace(year=due.year + years)
    except ValueError:
        return due.replace(year=due.year + years, day=28)


def allowed_decisions(final_disposition):
    if final_disposition == "permanent":
        return ("kept_permanent",)
    return DECISIONS


def effective_retention(code, found):
    """``(code whose retention applies, retention)`` for classification ``code`` from the
    classification docs ``found`` (code -> doc) of its chain: its own, else the nearest
    ancestor's; None when no code up the chain has one."""
    for c in classification_chain(code):
        if (found.get(c) or {}).get("retention"):
            return c, found[c]["retention"]
    return None


# -- the sealed document and its verification (signed.py) ---------------------------------

REVOCABLE = (SIGNED, SENT, ARCHIVED)  # a letter once signed can be revoked, once
_GOVERNMENT = re.compile(r"^(pemerintah\s+)?(provinsi|kabupaten|kota)\s+", re.IGNORECASE)


def letterhead(units, unit, opd):
    """The kop of a letter of ``unit`` (of OPD ``opd``) from the directory's units by code
    (the unit, the units above it, its OPD): the Pemda's name over the OPD's (the Pemda's
    own when the unit belongs to no OPD), the nearest office up the chain as the address and
    the Pemda's city from its name ("Pemerintah Kabupaten Banyuwangi" -> "Banyuwangi"). The
    directory keeps no postal address nor contact of a unit, so the kop has none."""
    codes = unit.split(".")
    chain = [units[c] for c in (".".join(codes[:i]) for i in range(len(codes), 0, -1))
             if c in units]
    pemda = chain[-1] if chain else {"name": unit}
    issuer = units.get(opd) or pemda
    office = next((o["name"] for u in chain for o in u.get("offices") or ()), None)
    return {"government": pemda["name"], "name": issuer["name"],
            "address": office or issuer["name"], "contact": None,
            "city": _GOVERNMENT.sub("", pemda["name"]).strip() or pemda["name"]}


def delivery(letter):
    """``(internal unit codes, external names)`` of the addressees and copy holders, each
    once, in the letter's order."""
    parties = [*letter["addressees"], *letter["copies"]]
    internal = [p["unit"] for p in parties if p["type"] == "internal"]
    external = [p["name"] for p in parties if p["type"] == "external"]
    return list(dict.fromkeys(internal)), list(dict.fromkeys(external))


def public_view(letter, unit_name):
    """What the public verification says of a signed letter: never its subject, body or
    addressees (whoever holds the printout reads those; the API is open to anyone with a
    code). A Sangat Rahasia or Rahasia letter shows only that it exists, its number and date;
    others also who signed it, as what, for which unit and the kind. A revocation shows when,
    not why (the reason may be internal)."""
    revoked = letter.get("revoked")
    view = {"status": "revoked" if revoked else "valid", "number": letter["number"],
            "date": letter["signed_at"], "revoked_at": revoked["at"] if revoked else None,
            "security": SECURITY[letter["security"]]}
    if letter["security"] in ("SR", "R"):
        return view | {"note": f"Surat {SECURITY[letter['security']]}: only its existence "
                               "and number are confirmed here."}
    signer = letter["signed_by"]
    return view | {"kind": letter["kind"], "signer": {"name": signer["name"],
                                                       "title": signer["title"]},
                   "unit": {"code": letter["unit"], "name": unit_name},
                   "sha256": (letter.get("document") or {}).get("sha256")}

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
from datetime import date

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

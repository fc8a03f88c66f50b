"""Message templates: one YAML file per template, rendered per channel with a sandboxed
Jinja2 environment (pure: no database, no nameko).

A template file (``services/notify/templates/<name>.yaml``)::

    description: what the message says, for the admin's list
    whatsapp:                 # an approved WhatsApp template: its name and ordered parameters
      name: izin_terdaftar
      language: id            # optional (NOTIFY_WHATSAPP_LANGUAGE otherwise)
      body: "Izin {{1}} ..."  # optional: the approved text, {{n}} = parameter n (preview only)
      parameters: ["{{ type_name }}", "{{ registration_number }}"]
    # or free-form text (allowed only inside the 24 h window):  whatsapp: {text: "..."}
    sms: "..."                # one text, at most 918 characters (6 GSM-7 segments)
    email: {subject: "...", html: "...", text: "..."}
    inapp: {title: "...", body: "..."}
    sample: {...}             # event data for the preview and the start-up check

Rendering: ``jinja2.sandbox.ImmutableSandboxedEnvironment`` with ``StrictUndefined`` (a
missing placeholder raises ``RenderError`` naming it, never renders as ""); HTML autoescape
only for ``email.html``. ``None`` renders as "" (a field that may be null, such as a note, is
present but empty; templates test it with ``{% if note %}``). Filters: ``tanggal`` (date in
Indonesian: ``20 Desember 2026``), ``waktu`` (date and time in the recipient's zone:
``20 Desember 2026 14.30 WIB``), ``rupiah`` (``Rp1.500.000``), ``daftar`` (a list in words:
``KTP, NPWP dan denah``), ``cuti`` (a leave type code in words: ``cuti tahunan``),
``kalimat`` (free text as one sentence ending with a full stop).

The context: the event's data fields, ``recipient`` ({name, timezone}), ``event``
({type, occurred_at}) and ``links`` ({tracking}).
"""

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

SHIPPED_DIR = Path(__file__).resolve().parent / "templates"
CHANNELS = ("whatsapp", "sms", "email", "inapp")
CONTEXT_NAMES = {"recipient": ("name", "timezone"), "event": ("type", "occurred_at"),
                 "links": ("tracking",)}
SMS_MAX = 918  # 6 concatenated GSM-7 segments of 153 characters
WHATSAPP_PARAMETER_MAX = 1024  # the Cloud API's limit for a body parameter
DEFAULT_TIMEZONE = "Asia/Jakarta"
ZONE_ABBREVIATIONS = {"Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_WA_SLOT = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class TemplateError(Exception):
    """A template file that cannot be used (syntax, shape); raised at load."""


class RenderError(Exception):
    """Rendering failed: ``placeholder`` names the missing value when that is the cause."""

    def __init__(self, message, *, template=None, channel=None, placeholder=None):
        super().__init__(message)
        self.template = template
        self.channel = channel
        self.placeholder = placeholder


# -- filters --------------------------------------------------------------------------------

def _as_date_or_time(value):
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _zone(context):
    recipient = context.get("recipient") if context is not None else None
    name = (recipient or {}).get("timezone") if isinstance(recipient, dict) else None
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _local(value, context):
    if isinstance(value, datetime):
        zone = _zone(context)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    return value


def tanggal_of(value, zone=None):
    """``2026-12-20`` (a date, datetime or ISO text) -> ``20 Desember 2026``; other values
    as they are."""
    parsed = _as_date_or_time(value)
    if parsed is None:
        return "" if value is None else str(value)
    if isinstance(parsed, datetime) and zone is not None:
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(zone)
    return f"{parsed.day} {MONTHS[parsed.month - 1]} {parsed.year}"


@pass_context
def _tanggal(context, value):
    return tanggal_of(value, _zone(context))


@pass_context
def _waktu(context, value):
    parsed = _as_date_or_time(value)
    if not isinstance(parsed, datetime):
        return tanggal_of(value)
    local = _local(parsed, context)
    zone = ZONE_ABBREVIATIONS.get(str(local.tzinfo), str(local.tzinfo))
    return f"{tanggal_of(local)} {local:%H.%M} {zone}"


def rupiah(value):
    """``1500000`` -> ``Rp1.500.000`` (PUEBI: no space, dots between thousands)."""
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{abs(amount):,}".replace(",", ".")


def daftar(values):
    """``["KTP", "NPWP", "denah"]`` -> ``KTP, NPWP dan denah``."""
    items = [str(v) for v in (values or []) if v not in (None, "")]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} dan {items[-1]}"


LEAVE_NAMES = {"CT": "cuti tahunan", "CB": "cuti besar", "CS": "cuti sakit",
               "CM": "cuti melahirkan", "CAP": "cuti karena alasan penting",
               "CBer": "cuti bersama", "CLTN": "cuti di luar tanggungan negara"}


def cuti(code):
    """A leave type code (PP 11/2017) in words: ``CT`` -> ``cuti tahunan``."""
    return LEAVE_NAMES.get(code, "" if code is None else str(code))


def kalimat(text):
    """Free text (a note, a reason) as one sentence: trimmed, ending with one full stop."""
    text = "" if text is None else " ".join(str(text).split())
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


def _finalize(value):
    return "" if value is None else value


def _environment(autoescape):
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape,
                                       finalize=_finalize, keep_trailing_newline=False)
    env.filters.update(tanggal=_tanggal, waktu=_waktu, rupiah=rupiah, daftar=daftar, cuti=cuti,
                       kalimat=kalimat)
    return env


PLAIN = _environment(autoescape=False)
HTML = _environment(autoescape=True)


# -- the template ---------------------------------------------------------------------------

@dataclass(repr=False)
class Part:
    """One Jinja source of a template (``sms``, ``email.subject``, ``whatsapp.parameters.1``)."""

    path: str
    source: str
    compiled: object
    names: set  # root names it reads (undeclared variables)
    attributes: set  # (root name, attribute) pairs it reads

    def __repr__(self):
        return f"Part({self.path})"


@dataclass(repr=False)
class Template:
    name: str
    file: str
    description: str
    whatsapp: dict | None  # {name, language|None, body|None, parameters: [Part]} | {text: Part}
    sms: Part | None
    email: dict | None  # {subject, html, text: Part}
    inapp: dict | None  # {title, body: Part}
    sample: dict
    parts: list = field(default_factory=list)

    def __repr__(self):
        return f"Template({self.name}: {', '.join(self.channels)})"

    @property
    def channels(self):
        return tuple(c for c in CHANNELS if getattr(self, c) is not None)

    def placeholders(self):
        """Every root name the template reads, with the parts reading it."""
        found = {}
        for part in self.parts:
            for name in part.names:
                found.setdefault(name, []).append(part.path)
        return found


def _compile(template_name, path, source, env=PLAIN):
    if not isinstance(source, str) or not source.strip():
        raise TemplateError(f"template {template_name}: {path} must be non-empty text")
    try:
        parsed = env.parse(source)
        compiled = env.from_string(source)
        # Jinja chains a template's globals to the environment's (a ChainMap) and copies
        # them into every render's context: flattened once here, as nothing adds globals
        # later, that copy no longer walks the chain (a twentieth of notify's CPU under load)
        compiled.globals = dict(compiled.globals)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template {template_name}: {path} line {exc.lineno}: "
                            f"{exc.message}") from exc
    names = set(meta.find_undeclared_variables(parsed))
    attributes = {(node.node.name, node.attr) for node in parsed.find_all(nodes.Getattr)
                  if isinstance(node.node, nodes.Name) and node.node.name in names}
    attributes |= {(node.node.name, node.arg.value) for node in parsed.find_all(nodes.Getitem)
                   if isinstance(node.node, nodes.Name) and node.node.name in names
                   and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)}
    return Part(path, source, compiled, names, attributes)


def _mapping(template_name, value, key, required):
    if not isinstance(value, dict):
        raise TemplateError(f"template {template_name}: {key} must be a mapping with "
                            f"{', '.join(required)}")
    missing = [k for k in required if k not in value]
    unknown = sorted(set(value) - set(required) - {"language", "body"})
    if missing:
        raise TemplateError(f"template {template_name}: {key} lacks {', '.join(missing)}")
    if unknown:
        raise TemplateError(f"template {template_name}: {key} has unknown keys "
                            f"{', '.join(unknown)}")
    return value


def parse_template(name, text, file="<string>"):
    """A ``Template`` from a YAML text; ``TemplateError`` naming the file and the problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"template {name} ({file}): not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TemplateError(f"template {name} ({file}): the top level must be a mapping")
    unknown = sorted(set(raw) - {*CHANNELS, "sample", "description"})
    if unknown:
        raise TemplateError(f"template {name} ({file}): unknown keys {', '.join(unknown)} "
                            f"(expected {', '.join(CHANNELS)}, sample, description)")
    if not any(raw.get(c) for c in CHANNELS):
        raise TemplateError(f"template {name} ({file}): no channel text at all")
    parts = []

    def part(path, source, env=PLAIN):
        compiled = _compile(name, path, source, env)
        parts.append(compiled)
        return compiled

    whatsapp = sms = email = inapp = None
    if raw.get("whatsapp") is not None:
        given = raw["whatsapp"]
        if isinstance(given, dict) and "text" in given:
            _mapping(name, given, "whatsapp", ("text",))
            whatsapp = {"text": part("whatsapp.text", given["text"])}
        else:
            _mapping(name, given, "whatsapp", ("name", "parameters"))
            if not isinstance(given["name"], str) or not _NAME.fullmatch(given["name"]):
                raise TemplateError(f"template {name}: whatsapp.name must be a WhatsApp "
                                    f"template name (lower case, digits, _)")
            params = given["parameters"] or []
            if not isinstance(params, list):
                raise TemplateError(f"template {name}: whatsapp.parameters must be a list")
            body = given.get("body")
            if body is not None:
                slots = sorted({int(n) for n in _WA_SLOT.findall(body)})
                if slots != list(range(1, len(params) + 1)):
                    raise TemplateError(
                        f"template {name}: whatsapp.body has slots {slots} but "
                        f"{len(params)} parameters (expected {{{{1}}}}..{{{{{len(params)}}}}})")
            whatsapp = {"name": given["name"], "language": given.get("language"),
                        "body": body,
                        "parameters": [part(f"whatsapp.parameters.{i + 1}", p)
                                       for i, p in enumerate(params)]}
    if raw.get("sms") is not None:
        sms = part("sms", raw["sms"])
    if raw.get("email") is not None:
        given = _mapping(name, raw["email"], "email", ("subject", "html", "text"))
        email = {"subject": part("email.subject", given["subject"]),
                 "html": part("email.html", given["html"], HTML),
                 "text": part("email.text", given["text"])}
    if raw.get("inapp") is not None:
        given = _mapping(name, raw["inapp"], "inapp", ("title", "body"))
        inapp = {"title": part("inapp.title", given["title"]),
                 "body": part("inapp.body", given["body"])}
    sample = raw.get("sample") or {}
    if not isinstance(sample, dict):
        raise TemplateError(f"template {name}: sample must be a mapping of event data")
    return Template(name=name, file=file, description=str(raw.get("description") or ""),
                    whatsapp=whatsapp, sms=sms, email=email, inapp=inapp, sample=sample,
                    parts=parts)


def template_dirs(templates_dir=None):
    """The directories templates are read from, base first: the shipped one, then
    ``templates_dir`` (or ``NOTIFY_TEMPLATES_DIR``; several joined by ``os.pathsep``), whose
    files replace the shipped ones of the same name."""
    given = templates_dir if templates_dir is not None \
        else os.environ.get("NOTIFY_TEMPLATES_DIR")
    extra = [] if not given else [given] if isinstance(given, str | Path) else list(given)
    dirs = [SHIPPED_DIR]
    for item in extra:
        for piece in str(item).split(os.pathsep):
            if piece and Path(piece).resolve() not in [d.resolve() for d in dirs]:
                dirs.append(Path(piece))
    return dirs


def load_templates(templates_dir=None):
    """``{name: Template}`` from every ``*.yaml`` of the template directories (a later
    directory's file replaces an earlier one's)."""
    found = {}
    for directory in template_dirs(templates_dir):
        if not directory.is_dir():
            raise TemplateError(f"templates directory {directory} does not exist")
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = parse_template(path.stem, path.read_text(encoding="utf-8"),
                                              str(path))
    return found


# -- rendering ------------------------------------------------------------------------------

def context_of(data, *, recipient=None, event=None, links=None):
    """The names a template sees: the event's data fields plus the context names."""
    return {**(data or {}), "recipient": dict(recipient or {"name": None}),
            "event": dict(event or {}), "links": dict(links or {})}


def _render(template, part, context, channel):
    try:
        return part.compiled.render(context)
    except UndefinedError as exc:
        message = str(exc)
        match = _UNDEFINED.match(message) or _NO_ATTRIBUTE.search(message)
        placeholder = match.group(1) if match else None
        raise RenderError(f"template {template.name}: {part.path}: missing placeholder "
                          f"{placeholder or message!r}", template=template.name,
                          channel=channel, placeholder=placeholder) from exc
    except SecurityError as exc:
        raise RenderError(f"template {template.name}: {part.path}: not allowed: {exc}",
                          template=template.name, channel=channel) from exc
    except Exception as exc:  # noqa: BLE001 - a filter on a wrong value: name the part
        raise RenderError(f"template {template.name}: {part.path}: {type(exc).__name__}: "
                          f"{exc}", template=template.name, channel=channel) from exc


def one_line(text):
    """WhatsApp refuses parameters with new lines, tabs or runs of spaces; an empty one too."""
    flat = " ".join(text.split())
    return (flat or "-")[:WHATSAPP_PARAMETER_MAX]


def fit_sms(text):
    """SMS text without trailing blanks, cut to ``SMS_MAX`` characters ending in "..." (GSM-7:
    a real ellipsis would make the whole message UCS-2, 67 characters a part)."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return text if len(text) <= SMS_MAX else text[:SMS_MAX - 3].rstrip() + "..."


def raw_sms(template, context):
    """The SMS text as rendered, before ``fit_sms`` (the start-up length check)."""
    return _render(template, template.sms, context, "sms").strip()


def render_channel(template, channel, context, *, language="id"):
    """The content of one channel as a notification stores it."""
    if channel == "whatsapp":
        spec = template.whatsapp
        if "text" in spec:
            return {"text": _render(template, spec["text"], context, channel).strip()}
        return {"template": spec["name"], "language": spec.get("language") or language,
                "parameters": [one_line(_render(template, p, context, channel))
                               for p in spec["parameters"]]}
    if channel == "sms":
        return {"text": fit_sms(_render(template, template.sms, context, channel))}
    if channel == "email":
        return {"subject": one_line(_render(template, template.email["subject"], context,
                                            channel)),
                "html": _render(template, template.email["html"], context, channel).strip(),
                "text": _render(template, template.email["text"], context, channel).strip()}
    if channel == "inapp":
        return {"title": one_line(_render(template, template.inapp["title"], context,
                                          channel)),
                "body": _render(template, template.inapp["body"], context, channel).strip()}
    raise RenderError(f"unknown channel {channel!r}", template=template.name, channel=channel)


def render(template, context, channels=None, *, language="id"):
    """``{channel: content}`` for ``channels`` (default: every channel the template has);
    ``RenderError`` for a missing placeholder or a channel the template has no text for."""
    wanted = template.channels if channels is None else tuple(channels)
    content = {}
    for channel in wanted:
        if channel not in template.channels:
            raise RenderError(f"template {template.name} has no {channel} text",
                              template=template.name, channel=channel)
        content[channel] = render_channel(template, channel, context, language=language)
    return content


# GSM 03.38: the basic set (1 septet each) and the extension table (2 septets each)
GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text):
    """How many SMS ``text`` takes: GSM-7 160 (153 per part when concatenated), else UCS-2
    70 (67 per part)."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text):
        septets = sum(2 if ch in GSM_EXTENDED else 1 for ch in text)
        return 1 if septets <= 160 else -(-septets // 153)
    units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
    return 1 if units <= 70 else -(-units // 67)


def whatsapp_preview(template, content):
    """The approved WhatsApp body with the parameters put in (for the preview), or None."""
    body = (template.whatsapp or {}).get("body")
    if content is None or body is None or "parameters" not in content:
        return content.get("text") if content else None
    params = content["parameters"]
    return _WA_SLOT.sub(lambda m: params[int(m.group(1)) - 1], body)

"""Notification rules: which event reaches whom, with which template, over which channels.

``rules.yaml`` (``NOTIFY_RULES_FILE`` replaces it for a deployment)::

    rules:
      - id: permit_registered                 # [a-z0-9_], unique
        event: permit.registered              # a type with a contract in pamong/contracts/
        recipients: [applicant]               # see below
        template: permit_registered           # templates/<name>.yaml
        channels: [whatsapp, sms, email, inapp]   # order of preference (fallback order)
        priority: normal                      # critical: ignores quiet hours and opt-outs
        when: {awaiting.role: signer}         # optional: equality (a list: one of)
        description: ...

Recipients: ``applicant`` (the event's ``contact``: phone, email, preferred channel, and the
account ``sub`` for the in-app inbox), ``employee: <field holding a NIP>``, ``supervisor_of:
<field holding a NIP>``, ``head_of: <field holding a unit code>`` (the official acting as the
unit's head today, else the employee whose position heads it), ``person: <field holding a
sub>`` (a NIP known to the replica is that employee; any other sub gets in-app only). Fields
are dotted paths into the event's data; a list field gives one recipient per item.

``load`` checks everything at start-up and raises ``RulesError`` naming the rule and the
problem: an event type without a contract, an unknown template, a template without text for
one of the rule's channels, a placeholder that is neither a field of the event's contract nor
a context name (``recipient``, ``event``, ``links``), a sample that does not fit the contract
or fails to render, an SMS longer than 918 characters on its sample.

Pure, except ``load`` (reads files) and ``handler_methods`` (builds nameko entrypoints).
"""

import importlib
import logging
import os
import pkgutil
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from marshmallow import ValidationError, fields

from pamong.events import contracts
from pamong.events.consumer import handles
from pamong.privacy import normalize_phone
from services.notify import templates as tpl
from services.notify.settings import send_concurrency

log = logging.getLogger(__name__)

SHIPPED_RULES = Path(__file__).resolve().parent / "rules.yaml"
CHANNELS = tpl.CHANNELS
PRIORITIES = ("normal", "critical")
RECIPIENT_KINDS = ("applicant", "employee", "supervisor_of", "head_of", "person")
RULE_KEYS = {"id", "event", "version", "recipients", "template", "channels", "priority",
             "when", "description"}
PHONE_CHANNELS = ("whatsapp", "sms")
NIP = re.compile(r"^\d{18}$")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SAMPLE_RECIPIENT = {"name": "Budi Santoso", "timezone": tpl.DEFAULT_TIMEZONE}
SAMPLE_PUBLIC_URL = "https://layanan.example.go.id"
DEFAULT_PUBLIC_URL = "http://localhost:8004"  # the permits module under `make run`
INACTIVE = ("retired", "transferred_out")  # directory statuses that are not reached


class RulesError(Exception):
    """The rules or templates cannot be used; the message names the rule and the problem."""


@dataclass(frozen=True)
class RecipientSpec:
    kind: str
    field: str | None = None  # dotted path into the event's data; None for the applicant

    def describe(self):
        return self.kind if self.field is None else {self.kind: self.field}


@dataclass(frozen=True)
class Rule:
    id: str
    event: str
    source: str
    version: int
    recipients: tuple
    template: str
    channels: tuple
    priority: str = "normal"
    when: dict = field(default_factory=dict)
    description: str = ""

    def matches(self, data):
        """Whether the event's ``data`` passes the rule's ``when`` conditions."""
        for path, wanted in self.when.items():
            values = field_values(data, path)
            value = values[0] if len(values) == 1 else (values or None)
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if value not in allowed:
                return False
        return True

    def describe(self):
        return {"id": self.id, "event": self.event, "version": self.version,
                "source": self.source, "recipients": [r.describe() for r in self.recipients],
                "template": self.template, "channels": list(self.channels),
                "priority": self.priority, "when": dict(self.when),
                "description": self.description}


@dataclass(repr=False)
class Ruleset:
    rules: list
    templates: dict
    rules_file: str
    template_dirs: list

    def __repr__(self):
        return f"Ruleset({len(self.rules)} rules, {len(self.templates)} templates)"

    def __iter__(self):
        return iter(self.rules)

    def __len__(self):
        return len(self.rules)

    def by_event(self):
        """``{(source, event type, version): [rules]}`` in file order."""
        grouped = {}
        for rule in self.rules:
            grouped.setdefault((rule.source, rule.event, rule.version), []).append(rule)
        return grouped

    def rules_of_template(self, name):
        return [r for r in self.rules if r.template == name]


# -- pure helpers ---------------------------------------------------------------------------

def field_values(data, path):
    """The values at dotted ``path`` in ``data`` (lists are walked into), Nones dropped."""
    current = [data]
    for key in path.split("."):
        following = []
        for item in current:
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, list | tuple):
                following.extend(value)
            elif value is not None:
                following.append(value)
        current = following
    return [v for v in current if v is not None]


def phone_or_none(raw):
    """An E.164 mobile number, or None when absent or not a mobile number."""
    if not raw:
        return None
    try:
        return normalize_phone(raw)
    except ValueError:
        return None


def applicant_recipient(contact, timezone):
    """The applicant as a recipient, from a permits event's ``contact``."""
    contact = contact or {}
    return {"key": "applicant", "person": contact.get("sub"), "name": None,
            "phone": phone_or_none(contact.get("phone")),
            "email": (contact.get("email") or None), "timezone": timezone}


def employee_recipient(employee, timezone):
    """An employee of the replica (``_id`` is the NIP) as a recipient."""
    nip = employee["_id"]
    return {"key": nip, "person": nip,
            "name": employee.get("display_name") or employee.get("name"),
            "phone": phone_or_none(employee.get("phone")),
            "email": employee.get("email") or None, "timezone": timezone}


def account_recipient(sub, timezone):
    """A person known only by their account ``sub``: the in-app inbox reaches them."""
    return {"key": sub, "person": sub, "name": None, "phone": None, "email": None,
            "timezone": timezone}


def channels_for(rule_channels, recipient, preferred=None):
    """The rule's channels that can reach ``recipient`` (a phone for WhatsApp and SMS, an
    address for email, a person for in-app), the ``preferred`` one (the applicant's choice)
    first."""
    def reachable(channel):
        if channel in PHONE_CHANNELS:
            return bool(recipient.get("phone"))
        if channel == "email":
            return bool(recipient.get("email"))
        return bool(recipient.get("person"))

    ordered = list(rule_channels)
    if preferred in ordered:
        ordered.remove(preferred)
        ordered.insert(0, preferred)
    return [c for c in ordered if reachable(c)]


def acting_in_force(acting, day):
    """An acting assignment (Plt/Plh) in force on ``day`` (an early end is its last day)."""
    last = min(acting["end"], acting["ended_on"]) if acting.get("ended_on") else acting["end"]
    return acting["start"] <= day.isoformat() <= last


def head_of_unit(unit, employees, actings, day):
    """The NIP of who acts as ``unit``'s head on ``day``: an acting official (Plt/Plh) in
    force, else the active employee whose position heads the unit; None when nobody does."""
    for acting in sorted(actings, key=lambda a: a["start"], reverse=True):
        if acting.get("unit") == unit and acting_in_force(acting, day):
            return acting["nip"]
    for employee in employees:
        if employee.get("unit") == unit and employee.get("status") == "active" \
                and (employee.get("position") or {}).get("heads_unit"):
            return employee["_id"]
    return None


def links_for(data, public_url):
    """Links a message may carry: ``tracking`` (the public page of the application, by its
    registration number when it has one)."""
    base = (public_url or DEFAULT_PUBLIC_URL).rstrip("/")
    number = data.get("registration_number") if isinstance(data, dict) else None
    return {"tracking": f"{base}/lacak/{number}" if number else f"{base}/lacak"}


def event_summary(event):
    """What a notification keeps of its source event."""
    return {"id": str(event.id), "type": event.type, "source": event.source,
            "occurred_at": event.occurred_at, "opd": event.opd}


def context_for(data, recipient, event_type, occurred_at, public_url):
    return tpl.context_of(data, recipient={"name": recipient.get("name"),
                                           "timezone": recipient.get("timezone")},
                          event={"type": event_type, "occurred_at": occurred_at},
                          links=links_for(data, public_url))


# -- loading and validation -----------------------------------------------------------------

def import_contracts():
    """Register every contract of ``pamong/contracts/`` (each module registers on import)."""
    import pamong.contracts as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def source_of(event_type, version):
    """The publishing module of an event type: the module its contract lives in."""
    schema_cls = contracts.registered()[(event_type, version)]
    return schema_cls.__module__.rsplit(".", 1)[-1]


def _fields_of(event_type, version):
    return contracts.schema_for(event_type, version).fields


def _nested_fields(field_obj):
    """The fields below a Nested (or a List of Nested) field, else None."""
    if isinstance(field_obj, fields.List):
        field_obj = field_obj.inner
    if isinstance(field_obj, fields.Nested):
        return field_obj.schema.fields
    return None


def _path_problem(path, schema_fields):
    """None when dotted ``path`` names a field of the contract, else why not."""
    current = schema_fields
    for depth, key in enumerate(path.split(".")):
        if current is None or key not in current:
            where = ".".join(path.split(".")[:depth]) or "the event"
            return f"{where} has no field {key!r}"
        current = _nested_fields(current[key])
    return None


def _fail(rule_id, message):
    raise RulesError(f"rule {rule_id}: {message}")


def _parse_recipient(rule_id, raw, schema_fields):
    if raw == "applicant":
        if "contact" not in schema_fields:
            _fail(rule_id, "recipient applicant needs an event with a contact field")
        return RecipientSpec("applicant")
    if not (isinstance(raw, dict) and len(raw) == 1):
        _fail(rule_id, f"recipient {raw!r} must be 'applicant' or one of "
                       f"{', '.join(RECIPIENT_KINDS[1:])} with a field")
    (kind, path), = raw.items()
    if kind not in RECIPIENT_KINDS[1:] or not isinstance(path, str):
        _fail(rule_id, f"unknown recipient {raw!r} (expected applicant, "
                       f"{', '.join(f'{k}: <field>' for k in RECIPIENT_KINDS[1:])})")
    if problem := _path_problem(path, schema_fields):
        _fail(rule_id, f"recipient {kind}: {path}: {problem}")
    return RecipientSpec(kind, path)


def _check_placeholders(rule_id, template, schema_fields):
    for name, parts in sorted(template.placeholders().items()):
        if name not in schema_fields and name not in tpl.CONTEXT_NAMES:
            _fail(rule_id, f"template {template.name}: unknown placeholder {name!r} in "
                           f"{', '.join(parts)} (neither a field of the event nor one of "
                           f"{', '.join(tpl.CONTEXT_NAMES)})")
    for part in template.parts:
        for root, attribute in sorted(part.attributes):
            if root in tpl.CONTEXT_NAMES and root not in schema_fields:
                known = tpl.CONTEXT_NAMES[root]
            else:
                below = _nested_fields(schema_fields[root]) if root in schema_fields else None
                if below is None:
                    continue  # a plain value: attribute access is the template's business
                known = tuple(below)
            if attribute not in known:
                _fail(rule_id, f"template {template.name}: unknown placeholder "
                               f"'{root}.{attribute}' in {part.path} ({root} has "
                               f"{', '.join(known)})")


def _check_renders(owner, template, context, channels):
    """Render ``channels`` of ``template`` on ``context``; SMS within the limit."""
    try:
        content = tpl.render(template, context, channels)
        if "sms" in channels:
            raw = tpl.raw_sms(template, context)
            if len(raw) > tpl.SMS_MAX:
                raise RulesError(f"{owner}: template {template.name}: the SMS is "
                                 f"{len(raw)} characters on its sample (at most "
                                 f"{tpl.SMS_MAX})")
        return content
    except tpl.RenderError as exc:
        raise RulesError(f"{owner}: the sample does not render: {exc}") from exc


def sample_data(template, event_type, version):
    """The template's sample as the handler would see it (loaded by the event's contract)."""
    return contracts.load_data(event_type, version, template.sample)


def _parse_rule(raw, templates, seen):
    if not isinstance(raw, dict):
        raise RulesError(f"every rule must be a mapping, got {raw!r}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise RulesError(f"rule {rule_id!r}: id must be lower case letters, digits and _")
    if rule_id in seen:
        _fail(rule_id, "the id is used by another rule")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        _fail(rule_id, f"unknown keys {', '.join(unknown)}")
    for key in ("event", "recipients", "template", "channels"):
        if not raw.get(key):
            _fail(rule_id, f"{key} is required")
    event_type, version = raw["event"], raw.get("version", 1)
    if (event_type, version) not in contracts.registered():
        _fail(rule_id, f"unknown event type {event_type!r} v{version}: no contract in "
                       f"pamong/contracts/ publishes it")
    schema_fields = _fields_of(event_type, version)
    template = templates.get(raw["template"])
    if template is None:
        _fail(rule_id, f"unknown template {raw['template']!r} (known: "
                       f"{', '.join(sorted(templates)) or 'none'})")
    channels = raw["channels"]
    if not isinstance(channels, list) or len(set(channels)) != len(channels) \
            or any(c not in CHANNELS for c in channels):
        _fail(rule_id, f"channels must be distinct ones of {', '.join(CHANNELS)}: {channels!r}")
    for channel in channels:
        if channel not in template.channels:
            _fail(rule_id, f"template {template.name} has no {channel} text (it has "
                           f"{', '.join(template.channels)})")
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        _fail(rule_id, f"priority must be one of {', '.join(PRIORITIES)}")
    recipients = raw["recipients"] if isinstance(raw["recipients"], list) \
        else [raw["recipients"]]
    specs = tuple(_parse_recipient(rule_id, r, schema_fields) for r in recipients)
    if len(set(specs)) != len(specs):
        _fail(rule_id, "a recipient is listed twice")
    when = raw.get("when") or {}
    if not isinstance(when, dict):
        _fail(rule_id, "when must map fields to values")
    for path in when:
        if problem := _path_problem(path, schema_fields):
            _fail(rule_id, f"when {path}: {problem}")
    _check_placeholders(rule_id, template, schema_fields)
    try:
        data = sample_data(template, event_type, version)
    except ValidationError as exc:
        raise RulesError(f"rule {rule_id}: template {template.name}'s sample does not fit "
                         f"{event_type} v{version}: {exc.messages}") from exc
    context = context_for(data, SAMPLE_RECIPIENT, event_type, datetime.now(UTC),
                          SAMPLE_PUBLIC_URL)
    _check_renders(f"rule {rule_id}", template, context, channels)
    return Rule(id=rule_id, event=event_type, source=source_of(event_type, version),
                version=version, recipients=specs, template=template.name,
                channels=tuple(channels), priority=priority, when=dict(when),
                description=str(raw.get("description") or ""))


def rules_path(rules_file=None):
    return Path(rules_file or os.environ.get("NOTIFY_RULES_FILE") or SHIPPED_RULES)


def load(rules_file=None, templates_dir=None):
    """The validated ``Ruleset``; ``RulesError`` naming the first problem."""
    import_contracts()
    path = rules_path(rules_file)
    try:
        templates = tpl.load_templates(templates_dir)
    except tpl.TemplateError as exc:
        raise RulesError(str(exc)) from exc
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"the rules file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise RulesError(f"the rules file {path} must hold 'rules:' with a list of rules")
    seen, loaded = set(), []
    try:
        for item in raw["rules"]:
            rule = _parse_rule(item, templates, seen)
            seen.add(rule.id)
            loaded.append(rule)
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from exc
    used = {r.template for r in loaded}
    for template in templates.values():  # the ad-hoc ones too: their sample must render
        if template.name in used:
            continue
        context = context_for(dict(template.sample), SAMPLE_RECIPIENT, "notification.adhoc",
                              datetime.now(UTC), SAMPLE_PUBLIC_URL)
        _check_renders(f"template {template.name} ({template.file})", template, context,
                       template.channels)
    return Ruleset(rules=loaded, templates=templates, rules_file=str(path),
                   template_dirs=[str(d) for d in tpl.template_dirs(templates_dir)])


# -- the generated handlers -----------------------------------------------------------------

def handler_name(event_type):
    return "intake_" + event_type.replace(".", "_")


def handler_methods(ruleset):
    """``{method name: function}`` to set on the service class: one ``@handles`` consumer
    per event type the rules use (each hands its event and rules to ``RuleIntake.intake``),
    plus ``ruleset`` (the loaded rules and templates, for the preview and ad-hoc sends)."""
    concurrency = send_concurrency()  # the delivering handlers' (NOTIFY_SEND_CONCURRENCY)
    methods = {"ruleset": ruleset}
    for (source, event_type, version), rules in ruleset.by_event().items():
        name = handler_name(event_type) + ("" if version == 1 else f"_v{version}")
        methods[name] = _handler(name, source, event_type, version, tuple(rules), concurrency)
    return methods


def _handler(name, source, event_type, version, rules, concurrency):
    def handler(self, event):
        return self.intake(event, rules)

    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = f"{event_type} v{version} -> rules {', '.join(r.id for r in rules)}"
    # no inbox: the notifications' ids derive from the event id, and create_and_deliver
    # resumes the stored ones, so a redelivered event sends nothing twice by itself
    return handles(source, event_type, version, concurrency=concurrency, inbox=False)(handler)



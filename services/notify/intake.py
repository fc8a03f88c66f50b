"""From other modules' events to notifications (``RuleIntake``), and the admin's view of the
rules and templates (``PreviewEndpoints``).

``rules.handler_methods`` gives the service one ``@handles`` consumer per event type the
rules use; each calls ``intake(event, rules)``: for every rule whose ``when`` matches, every
recipient is resolved (the applicant from the event's ``contact``; employees, supervisors and
unit heads from the directory replica), the content is rendered once for the channels that
can reach them, and the documents go to ``create_and_deliver`` (CORE), which inserts each
under its deterministic id (event, rule, recipient): a redelivered event inserts nothing new
and resumes what exists.

What is never silently dropped:
- a recipient the replica does not know (or no longer active) is skipped with a log line and
  ``pamong_notify_recipients_skipped_total{rule, reason}``; nothing to notify is no error;
- a recipient with no address for any of the rule's channels gets a notification in state
  ``cancelled`` with reason ``no_address`` (kept, shown to admin, ``notification.failed``);
- content that fails to render (a value the sample did not foresee) gives a notification in
  state ``technical_failure`` with the reason (the other recipients are still served).
"""

import logging

from prometheus_client import Counter

from pamong.events import contracts
from pamong.localtime import local_today
from pamong.replica import ACTING, EMPLOYEES, UNITS
from pamong.storage import db_now
from pamong.web import not_found, route, unprocessable
from services.notify import domain, rules, templates
from services.notify.access import ADMINS, API
from services.notify.schemas.preview import PreviewBody, PreviewOut, RulesOut, TemplatesOut

log = logging.getLogger(__name__)

TAGS = ("rules",)
DEFAULT_TIMEZONE = "Asia/Jakarta"

RECIPIENTS_SKIPPED = Counter(
    "pamong_notify_recipients_skipped_total",
    "Recipients a rule named but notify could not resolve (unknown or inactive in the "
    "directory replica, a unit without a head, no supervisor)", ["rule", "reason"])
RENDER_FAILURES = Counter(
    "pamong_notify_render_failures_total",
    "Notifications that could not be rendered for an event (technical_failure)", ["rule"])


class RuleIntake:
    """Mixed into the notify service (needs ``db``, ``config``, ``cache``, ``ruleset`` and
    CORE's ``create_and_deliver``)."""

    def intake(self, event, rules_of_event):
        """Create and deliver the notifications ``event`` calls for; their ids."""
        docs, seen = [], set()
        for rule in rules_of_event:
            if not rule.matches(event.data):
                continue
            for recipient, preferred in self._recipients(rule, event):
                doc = self._notification(rule, event, recipient, preferred)
                if doc["_id"] not in seen:  # one person named twice (e.g. to == by)
                    seen.add(doc["_id"])
                    docs.append(doc)
        if docs:
            self.create_and_deliver(docs)
        return [doc["_id"] for doc in docs]

    # -- recipients ----------------------------------------------------------------------

    def _recipients(self, rule, event):
        """``[(recipient, preferred channel)]`` of ``rule`` for ``event``."""
        data, found = event.data, []
        for spec in rule.recipients:
            if spec.kind == "applicant":
                contact = data.get("contact") or {}
                zone = self._unit_timezone(data.get("opd") or event.opd)
                found.append((rules.applicant_recipient(contact, zone), contact.get("channel")))
                continue
            values = rules.field_values(data, spec.field)
            if not values:
                self._skipped(rule, event, spec, "no_value")
            for value in values:
                recipient = self._resolve(rule, event, spec, str(value))
                if recipient is not None:
                    found.append((recipient, None))
        return found

    def _resolve(self, rule, event, spec, value):
        if spec.kind == "person":
            employee = self._employee(value) if rules.NIP.fullmatch(value) else None
            if employee is None:  # a citizen's or an officer's account: their inbox
                return rules.account_recipient(value, self._default_timezone())
            return self._active(rule, event, spec, employee)
        if spec.kind == "head_of":
            nip = self._head_of(value)
            if nip is None:
                return self._skipped(rule, event, spec, "no_head")
            value = nip
        elif spec.kind == "supervisor_of":
            employee = self._employee(value)
            if employee is None:
                return self._skipped(rule, event, spec, "unknown_employee")
            if not employee.get("supervisor"):
                return self._skipped(rule, event, spec, "no_supervisor")
            value = employee["supervisor"]
        employee = self._employee(value)
        if employee is None:
            return self._skipped(rule, event, spec, "unknown_employee")
        return self._active(rule, event, spec, employee)

    def _active(self, rule, event, spec, employee):
        if employee.get("status") in rules.INACTIVE:
            return self._skipped(rule, event, spec, "inactive_employee")
        return rules.employee_recipient(employee, self._unit_timezone(employee.get("unit")))

    def _skipped(self, rule, event, spec, reason):
        # no value in the log line: an event's fields may hold personal data
        log.warning("rule %s: recipient %s of event %s skipped (%s)", rule.id,
                    spec.kind if spec.field is None else f"{spec.kind}: {spec.field}",
                    event.id, reason)
        RECIPIENTS_SKIPPED.labels(rule.id, reason).inc()
        return None

    def _employee(self, nip):
        return self.db[EMPLOYEES].find_one({"_id": nip})

    def _head_of(self, unit):
        """Who acts as ``unit``'s head today (in the unit's zone)."""
        today = local_today(self._unit_timezone(unit))
        actings = list(self.db[ACTING].find({"unit": unit}))
        heads = list(self.db[EMPLOYEES].find({"unit": unit, "position.heads_unit": True}))
        return rules.head_of_unit(unit, heads, actings, today)

    def _default_timezone(self):
        return str(self.config.get("NOTIFY_TIMEZONE") or DEFAULT_TIMEZONE)

    def _unit_timezone(self, unit):
        """The IANA zone of ``unit`` from the replica, else ``NOTIFY_TIMEZONE``."""
        if not unit:
            return self._default_timezone()

        def load():
            found = self.db[UNITS].find_one({"_id": unit}, {"timezone": 1})
            return (found or {}).get("timezone") or ""

        return self.cache.get(("unit_timezone", unit), load) or self._default_timezone()

    # -- the document --------------------------------------------------------------------

    def _notification(self, rule, event, recipient, preferred):
        template = self.ruleset.templates[rule.template]
        channels = rules.channels_for(rule.channels, recipient, preferred)
        content = state = reason = None
        if channels:
            context = rules.context_for(event.data, recipient, event.type, event.occurred_at,
                                        self.config.get("NOTIFY_PUBLIC_URL"))
            try:
                content = templates.render(template, context, channels,
                                           language=self._whatsapp_language())
            except templates.RenderError as exc:
                log.error("rule %s: event %s: %s", rule.id, event.id, exc)
                RENDER_FAILURES.labels(rule.id).inc()
                state, reason = "technical_failure", f"template: {exc}"[:500]
        else:
            state, reason = "cancelled", "no_address"
        doc = domain.new_notification(
            id=domain.notification_id(event.id, rule.id, recipient["key"]), rule=rule.id,
            priority=rule.priority, template=rule.template, event=rules.event_summary(event),
            recipient=recipient, channels=channels or list(rule.channels), content=content,
            now=db_now())
        if state is not None:  # ends here: kept for admin, notification.failed published
            doc.update(state=state, reason=reason, channels=channels, channel=None)
        return doc

    def _whatsapp_language(self):
        return str(self.config.get("NOTIFY_WHATSAPP_LANGUAGE") or "id")


class PreviewEndpoints:
    """The admin's view of rules and templates (needs ``config`` and ``ruleset``)."""

    @route("GET", f"{API}/rules", roles=ADMINS, response=RulesOut(), tags=TAGS,
           summary="The notification rules in force (admin)",
           description="Every rule: the event it listens to, its recipients, template, "
                       "channels in order, priority and conditions; and the files they were "
                       "loaded from (`NOTIFY_RULES_FILE`, `NOTIFY_TEMPLATES_DIR`).")
    def list_rules(self, request, principal):
        ruleset = self.ruleset
        return {"rules_file": ruleset.rules_file, "template_dirs": ruleset.template_dirs,
                "rules": [rule.describe() for rule in ruleset.rules]}

    @route("GET", f"{API}/templates", roles=ADMINS, response=TemplatesOut(), tags=TAGS,
           summary="The message templates (admin)",
           description="Each template's channels, WhatsApp template name, the rules using "
                       "it and the placeholders it reads.")
    def list_templates(self, request, principal):
        ruleset = self.ruleset
        return {"templates": [_template_view(t, ruleset)
                              for _, t in sorted(ruleset.templates.items())]}

    @route("POST", f"{API}/templates/<name>/preview", roles=ADMINS, body=PreviewBody(),
           response=PreviewOut(), tags=TAGS,
           summary="Render a template for every channel (admin)",
           description="With `data` (the event's data fields), else the template's sample. "
                       "`event` names the event type whose contract reads the data (dates "
                       "become dates), by default the one of the first rule using the "
                       "template. A missing placeholder is 422 naming it (`data.<name>`); "
                       "nothing is sent or stored.")
    def preview_template(self, request, principal, body, name):
        template = self.ruleset.templates.get(name)
        if template is None:
            raise not_found(f"There is no template {name!r}.")
        given = body.get("data")
        data = dict(template.sample) if given is None else dict(given)
        event_type = body.get("event") or next(
            (r.event for r in self.ruleset.rules_of_template(name)), None)
        if event_type is not None:
            if (event_type, 1) not in contracts.registered():
                raise unprocessable({"event": [f"no contract for event type {event_type}"]})
            data = _as_contract_reads(event_type, data)
        recipient = {"name": (body.get("recipient") or {}).get("name")
                     or rules.SAMPLE_RECIPIENT["name"],
                     "timezone": str(self.config.get("NOTIFY_TIMEZONE") or DEFAULT_TIMEZONE)}
        context = rules.context_for(data, recipient, event_type or "notification.preview",
                                    db_now(), self.config.get("NOTIFY_PUBLIC_URL"))
        language = str(self.config.get("NOTIFY_WHATSAPP_LANGUAGE") or "id")
        try:
            content = templates.render(template, context, language=language)
        except templates.RenderError as exc:
            field = f"data.{exc.placeholder}" if exc.placeholder else "data"
            raise unprocessable({field: [str(exc)]}, detail=str(exc)) from None
        return {"template": name, "event": event_type,
                "data_source": "sample" if given is None else "request",
                "rules": [r.id for r in self.ruleset.rules_of_template(name)],
                "channels": _preview_channels(template, content)}


def _as_contract_reads(event_type, data):
    """``data`` as a handler would see it when it fits the event's contract (dates as dates);
    as given otherwise, so a preview of partial data shows what is missing."""
    from marshmallow import ValidationError

    try:
        return contracts.load_data(event_type, 1, data)
    except ValidationError:
        return data


def _template_view(template, ruleset):
    whatsapp = template.whatsapp or {}
    return {"name": template.name, "description": template.description,
            "channels": list(template.channels), "file": template.file,
            "whatsapp_template": whatsapp.get("name"),
            "rules": [r.id for r in ruleset.rules_of_template(template.name)],
            "placeholders": sorted(template.placeholders())}


def _preview_channels(template, content):
    views = {}
    for channel, rendered in content.items():
        view = dict(rendered)
        if channel == "whatsapp":
            view["text"] = templates.whatsapp_preview(template, rendered)
        elif channel == "sms":
            view["length"] = len(rendered["text"])
            view["segments"] = templates.sms_segments(rendered["text"])
        views[channel] = view
    return views

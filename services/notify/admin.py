"""The ad-hoc send and what ``admin`` needs to answer "I never got the message".

- ``POST /notifications`` (``service``, ``admin``; ``Idempotency-Key`` required): one
  notification to one recipient, from a template of the module (rendered now, once) or from
  the texts themselves. Its id derives from the caller and the key, so a repeat (or a
  concurrent twin) finds the first and answers it; the same key with another body is 422. It
  is inserted with ``notification.requested`` in its outbox (``request_delivery``): the
  delivery runs in an event handler, so a crash after the 202 still delivers it.
- ``GET /notifications``: a filtered list, newest first (a scan: rare and interactive).
- ``GET /notifications/<id>``: the notification, its rule, each attempt and status, the
  addresses' opt-out and pacing, the person's preferences, the quiet hours, the pending
  entry and an explanation in words (``explain``, pure).
Phone numbers and email addresses are masked in every answer, except the one the admin
looked up (``?phone=`` / ``?email=``): they know it already.
"""

import hashlib
import json
import re
import uuid
from datetime import UTC
from zoneinfo import ZoneInfo

from pamong.events.outbox import OUTBOX
from pamong.privacy import mask_text, normalize_phone
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import db_now
from pamong.web import decode_cursor, encode_cursor, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.notify import domain, rules, templates
from services.notify.access import ADMINS, API, SENDERS
from services.notify.preferences import opted_out_channels
from services.notify.schemas.admin import (
    LookupQuery,
    NotificationOut,
    NotificationPage,
    NotificationQuery,
    SendBody,
    WhyOut,
)
from services.notify.settings import Settings
from services.notify.store import ADDRESSES, NOTIFICATIONS, PENDING
from services.notify.store import PEOPLE as PEOPLE_COLLECTION

TAGS = ("notifications",)
ADHOC = "adhoc"  # the rule id of an ad-hoc send
ADHOC_EVENT_TYPE = "notification.adhoc"  # what a template's `event.type` says for one
KEY_IDS = uuid.UUID("6f1d0c52-7a3e-4b8e-9c41-0d2b5e8a7f13")
NOTIFICATION_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_TIMEZONE = "Asia/Jakarta"
DEFAULT_QUIET_HOURS = "21:00-06:00"
WAITING = {"quiet_hours": "deferred by the quiet hours",
           "paced": "queued behind earlier messages to the same address (pacing)",
           "rate": "queued: the channel's global rate limit was reached",
           "retry": "a temporary failure: retried with backoff",
           "unknown_outcome": "the provider did not answer in time (outcome unknown): "
                              "waiting for its status webhook before any new attempt"}


# -- pure helpers ---------------------------------------------------------------------------

def body_digest(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def adhoc_ids(sub, key):
    """(event id, notification id) of an ad-hoc send: from the caller and its key only, so
    every repeat of the request names the same notification whatever its body."""
    event_id = uuid.uuid5(KEY_IDS, f"{sub}:{key}").hex
    return event_id, domain.notification_id(event_id, ADHOC, "request")


def _masked_content(value):
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked_content(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_content(v) for v in value]
    return value


class Shown:
    """Which personal data an answer may show in full: what the admin gave us."""

    def __init__(self, phone=None, email=None):
        self.phone = phone
        self.email = email.lower() if email else None

    def address(self, channel, address):
        if not address or channel == "inapp":
            return address  # in-app: the person (a NIP or a sub), not a secret
        if address in (self.phone, self.email) or address.lower() == self.email:
            return address
        return domain.mask_address(channel, address)

    def recipient(self, recipient):
        recipient = dict(recipient or {})
        recipient["phone"] = self.address("sms", recipient.get("phone"))
        recipient["email"] = self.address("email", recipient.get("email"))
        return recipient


def notification_out(doc, shown):
    """A stored notification as the API shows it (personal data masked)."""
    out = {k: v for k, v in doc.items() if k not in (OUTBOX, "idempotency")}
    out["id"] = doc["_id"]
    out["recipient"] = shown.recipient(doc.get("recipient"))
    out["deliveries"] = [{**d, "address": shown.address(d.get("channel"), d.get("address")),
                          "attempts": d.get("attempts") or [],
                          "statuses": d.get("statuses") or []}
                         for d in doc.get("deliveries") or []]
    out["content"] = _masked_content(doc.get("content"))
    return out


def item_out(doc, shown):
    event = doc.get("event") or {}
    return {"id": doc["_id"], "rule": doc.get("rule"), "priority": doc.get("priority"),
            "event_type": event.get("type"), "event_id": event.get("id"),
            "recipient": shown.recipient(doc.get("recipient")),
            "channels": doc.get("channels") or [], "state": doc.get("state"),
            "channel": doc.get("channel"), "reason": doc.get("reason"),
            "attempts": sum(len(d.get("attempts") or ()) for d in doc.get("deliveries") or ()),
            "due_at": doc.get("due_at"), "created_at": doc.get("created_at"),
            "updated_at": doc.get("updated_at")}


def address_of(recipient, channel):
    """The address a channel uses for ``recipient`` (normalised; None when it has none)."""
    return domain.address_of({"recipient": recipient or {}}, channel)


def recipient_key(recipient):
    """Who an ad-hoc notification is for, as the notification's ``recipient.key``: the
    person, else a digest of the phone or email (no personal data in keys)."""
    if recipient.get("person"):
        return recipient["person"]
    for kind in ("phone", "email"):
        if recipient.get(kind):
            return f"{kind}:{hashlib.sha256(recipient[kind].encode()).hexdigest()[:16]}"
    return "none"


def _when(at):
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "?"


def _attempt_line(channel, attempt, now):
    line = f"{channel}: attempt {attempt.get('n')} at {_when(attempt.get('at'))}"
    outcome = attempt.get("outcome")
    if outcome is None:
        lease = attempt.get("lease_until")
        if lease and lease > now:
            return line + ": sending now"
        return line + (": no result recorded (the sender stopped mid-send): the outcome is "
                       "unknown, it is settled by a status webhook or retried as a new attempt")
    line += f": {outcome}"
    if attempt.get("error"):
        line += f" ({mask_text(str(attempt['error']))})"
    return line


def explain(doc, *, preferences, addresses, pending, quiet, now):
    """What happened to a notification, in words, step by step (pure).

    ``preferences``: ``{channel: opted out}`` of the person; ``addresses``: ``{channel:
    address document or None}``; ``pending``: the pending entry or None; ``quiet``: the
    ``quiet_hours`` block of the view."""
    lines = []
    event = doc.get("event") or {}
    critical = doc.get("priority") == "critical"
    if doc.get("rule") == ADHOC:
        lines.append(f"Sent ad hoc through the API at {_when(doc.get('created_at'))}.")
    elif doc.get("rule") == "desk":
        lines.append(f"A reply of the WhatsApp service desk at {_when(doc.get('created_at'))}"
                     " to an inbound message.")
    else:
        lines.append(f"Created at {_when(doc.get('created_at'))} by rule {doc.get('rule')} "
                     f"for event {event.get('type')} ({event.get('id')}).")
    if critical:
        lines.append("The rule is critical: quiet hours and opt-outs do not hold it back.")
    recipient = doc.get("recipient") or {}
    deliveries = {d.get("channel"): d for d in doc.get("deliveries") or []}
    for channel in doc.get("channels") or []:
        address_doc = addresses.get(channel) or {}
        if not address_of(recipient, channel):
            lines.append(f"{channel}: the recipient has no address for it.")
        if preferences.get(channel):
            lines.append(f"{channel}: the person opted out of it"
                         + (" (ignored: critical)." if critical else "."))
        if address_doc.get("opted_out"):
            lines.append(f"{channel}: the address opted out at "
                         f"{_when(address_doc.get('opted_at'))} by "
                         f"{address_doc.get('opted_by') or 'an inbound BERHENTI'}"
                         + (" (ignored: critical)." if critical else "."))
        delivery = deliveries.get(channel)
        if delivery is None:
            continue
        for attempt in delivery.get("attempts") or []:
            lines.append(_attempt_line(channel, attempt, now))
        for status in delivery.get("statuses") or []:
            line = (f"{channel}: the provider reported {status.get('status')} at "
                    f"{_when(status.get('at'))}")
            if status.get("error"):
                line += f" ({mask_text(str(status['error']))})"
            lines.append(line + ".")
        reason = delivery.get("reason")
        lines.append(f"{channel}: {delivery.get('state')}"
                     + (f" ({mask_text(str(reason))})." if reason else "."))
    untried = [c for c in doc.get("channels") or [] if c not in deliveries]
    if untried and doc.get("state") in ("sent", "delivered", "read"):
        lines.append(f"Not tried (an earlier channel reached the person): {', '.join(untried)}.")
    if not doc.get("channels"):
        lines.append("No channel was left after the rule's channels and the recipient's "
                     "addresses.")
    lines.append(_state_line(doc, pending, quiet))
    if doc.get("purged_at"):
        lines.append(f"Its texts were purged at {_when(doc['purged_at'])} (retention); the "
                     "delivery record is kept.")
    return lines


def _state_line(doc, pending, quiet):
    state, reason = doc.get("state"), doc.get("reason")
    if state in ("sent", "delivered", "read"):
        return f"Now {state} on {doc.get('channel')}."
    if state == "cancelled":
        why = {"opted_out": "the person opted out of every channel of the rule",
               "no_address": "there was no phone number, email address or account to reach"
               }.get(reason, reason)
        return f"Cancelled: {why}."
    if state in ("permanent_failure", "technical_failure"):
        kind = "a technical failure on our side (configuration)" if (
            state == "technical_failure") else "failed permanently on every channel"
        return f"Ended: {kind}; last reason: {reason}."
    wait_reason = (pending or {}).get("reason") or reason
    if pending or wait_reason in WAITING:
        due = (pending or {}).get("due_at") or doc.get("due_at")
        line = f"Waiting ({state}): {WAITING.get(wait_reason, wait_reason)}; due at {_when(due)}"
        if wait_reason == "quiet_hours":
            line += f" (quiet hours {quiet['window']} in {quiet['timezone']})"
        if not pending:
            line += "; no timer entry yet (it is being written)"
        return line + "."
    return f"Now {state}" + (f" ({reason})" if reason else "") + "."


def quiet_block(doc, window, timezone, pending, now, quiet_channels=("whatsapp", "sms")):
    """The quiet hours as they bear on ``doc``: they hold back non-critical messages on the
    ``quiet_channels`` (NOTIFY_QUIET_CHANNELS) only."""
    critical = doc.get("priority") == "critical"
    applies = not critical and bool(set(doc.get("channels") or ()) & set(quiet_channels))
    try:
        local_now = now.astimezone(ZoneInfo(timezone))
        until = domain.quiet_until(local_now, "" if window == "none" else window)
    except (ValueError, KeyError):
        until = None
    reasons = {doc.get("reason"), (pending or {}).get("reason")}
    return {"window": window, "timezone": timezone, "applies": applies,
            "now_quiet_until": until, "deferred": "quiet_hours" in reasons}


# -- endpoints --------------------------------------------------------------------------------

class AdminEndpoints:
    """Ad-hoc send (``service``, ``admin``), the list and the "why" view (``admin``)."""

    # -- send --------------------------------------------------------------------------------

    @route("POST", f"{API}/notifications", roles=SENDERS, body=SendBody(),
           response=NotificationOut(), status=202, tags=TAGS,
           summary="Send one notification now, from a template or from given texts "
                   "(Idempotency-Key header required: a repeat answers the first)",
           description="202: accepted, delivered by the module's sending path (preferences, "
                       "quiet hours, pacing, retries and fallback as for any rule). 422 for "
                       "a phone that is not an Indonesian mobile, a channel the recipient "
                       "has no address for, an unknown template, a missing placeholder "
                       "(named), or a key reused with another body.")
    def send_notification(self, request, principal, body):
        key = idempotency_key(request, required=True)
        event_id, notification_id = adhoc_ids(principal.sub, key)
        digest = body_digest(body)
        first = self.db[NOTIFICATIONS].find_one({"_id": notification_id}, {OUTBOX: 0})
        if first is not None:
            return self._replayed(first, digest)
        recipient, opd = self._adhoc_recipient(body)
        now = db_now()
        event = {"id": event_id, "type": None, "source": "notify", "occurred_at": now,
                 "opd": opd or principal.opd}
        content = (adhoc_content(body["content"], self._language())
                   if body["content"] is not None else self._rendered(body, recipient, event))
        doc = domain.new_notification(
            id=notification_id, rule=ADHOC, priority=body["priority"],
            template=body["template"], event=event, recipient=recipient,
            channels=body["channels"], content=content, now=now)
        attempt = uuid.uuid4().hex  # tells this request's insert from a concurrent twin's
        doc["idempotency"] = {"by": principal.sub, "body_sha256": digest, "request": attempt}
        stored = self.request_delivery(doc)
        if (stored.get("idempotency") or {}).get("request") != attempt:
            return self._replayed(stored, digest)  # a concurrent twin inserted it first
        return 202, notification_out(stored, Shown())

    def _language(self):
        return str(self.config.get("NOTIFY_WHATSAPP_LANGUAGE", "id"))

    def _replayed(self, first, digest):
        if (first.get("idempotency") or {}).get("body_sha256") != digest:
            raise unprocessable({"Idempotency-Key": [
                "this key was used for another notification: send a new key"]},
                detail="The Idempotency-Key was used before with another body.")
        return 202, notification_out(first, Shown()), {"Idempotent-Replayed": "true"}

    def _adhoc_recipient(self, body):
        """The recipient document (addresses normalised, completed from the directory
        replica for a NIP) and its OPD; 422 naming what is wrong."""
        given = body["recipient"]
        errors = {}
        phone = given["phone"]
        if phone:
            try:
                phone = normalize_phone(phone)
            except ValueError as exc:
                errors["recipient.phone"] = [str(exc)]
        employee = given["person"] and self.db[EMPLOYEES].find_one({"_id": given["person"]})
        unit = employee and self.db[UNITS].find_one({"_id": employee.get("unit")})
        if employee:
            if not phone and employee.get("phone"):
                try:
                    phone = normalize_phone(employee["phone"])
                except ValueError:
                    phone = None
            email = given["email"] or employee.get("email")
            name = given["name"] or employee.get("display_name") or employee.get("name")
        else:
            email, name = given["email"], given["name"]
        recipient = {"person": given["person"], "name": name, "phone": phone or None,
                     "email": _email(email),
                     "timezone": (unit or {}).get("timezone")
                     or self.config.get("NOTIFY_TIMEZONE") or DEFAULT_TIMEZONE}
        for channel in body["channels"]:
            if not errors.get("recipient.phone") and not address_of(recipient, channel):
                errors.setdefault("channels", []).append(
                    f"{channel}: the recipient has no "
                    + {"whatsapp": "phone number", "sms": "phone number",
                       "email": "email address", "inapp": "person (NIP or account)"}[channel])
        if errors:
            raise unprocessable(errors)
        recipient["key"] = recipient_key(recipient)
        return recipient, (employee or {}).get("opd")

    def _rendered(self, body, recipient, event):
        """The template rendered now for every channel named (422 naming a missing
        placeholder, an unknown template, or a channel it has no text for)."""
        template = self.ruleset.templates.get(body["template"])
        if template is None:
            raise unprocessable({"template": [f"there is no template {body['template']}"]})
        context = rules.context_for(body["data"], recipient, ADHOC_EVENT_TYPE,
                                    event["occurred_at"], self.config.get("NOTIFY_PUBLIC_URL"))
        try:
            return templates.render(template, context, body["channels"],
                                    language=self._language())
        except templates.RenderError as exc:
            field = f"data.{exc.placeholder}" if exc.placeholder else (
                "channels" if exc.channel and exc.channel not in template.channels
                else "template")
            raise unprocessable({field: [str(exc)]}, detail=str(exc)) from None

    # -- list --------------------------------------------------------------------------------

    @route("GET", f"{API}/notifications", roles=ADMINS, query=NotificationQuery(),
           response=NotificationPage(), tags=TAGS,
           summary="Notifications, newest first, filtered by person, phone, email, state, "
                   "event (type or id) and rule; phone numbers masked unless looked up")
    def list_notifications(self, request, principal, query):
        phone = _normalized_phone(query["phone"])
        email = _email(query["email"])
        filters = [f for f in (
            query["person"] and {"recipient.person": query["person"]},
            phone and {"recipient.phone": phone},
            email and {"recipient.email": email},
            query["state"] and {"state": query["state"]},
            query["rule"] and {"rule": query["rule"]},
            query["event"] and {"$or": [{"event.type": query["event"]},
                                        {"event.id": query["event"]}]}) if f]
        if after := decode_cursor(query["cursor"]):
            filters.append({"$or": [{"created_at": {"$lt": after["created_at"]}},
                                    {"created_at": after["created_at"],
                                     "_id": {"$lt": after["_id"]}}]})
        found = list(self.db[NOTIFICATIONS].find(
            {"$and": filters} if filters else {}, {OUTBOX: 0, "content": 0})
            .sort([("created_at", -1), ("_id", -1)]).limit(query["limit"] + 1))
        shown = Shown(phone, email)
        items, next_cursor = found[:query["limit"]], None
        if len(found) > query["limit"]:
            next_cursor = encode_cursor({"created_at": items[-1]["created_at"],
                                         "_id": items[-1]["_id"]})
        return {"items": [item_out(doc, shown) for doc in items], "next_cursor": next_cursor}

    # -- why -------------------------------------------------------------------------------

    @route("GET", f"{API}/notifications/<notification_id>", roles=ADMINS, query=LookupQuery(),
           response=WhyOut(), tags=TAGS,
           summary="Why did this person (not) get it: the notification, its rule, each "
                   "attempt and status, opt-outs, pacing, quiet hours, the pending entry and "
                   "an explanation in words")
    def why_notification(self, request, principal, notification_id, query):
        if not NOTIFICATION_ID.fullmatch(notification_id):
            raise not_found()
        doc = self.db[NOTIFICATIONS].find_one({"_id": notification_id}, {OUTBOX: 0})
        if doc is None:
            raise not_found("No such notification.")
        recipient = doc.get("recipient") or {}
        shown = Shown(_normalized_phone(query["phone"]), _email(query["email"]))
        person_doc = recipient.get("person") and self.db[PEOPLE_COLLECTION].find_one(
            {"_id": recipient["person"]})
        preferences = opted_out_channels(person_doc)
        keys = {c: f"{c}:{a}" for c in doc.get("channels") or []
                if c != "inapp" and (a := address_of(recipient, c))}
        found = {d["_id"]: d for d in self.db[ADDRESSES].find({"_id": {"$in": list(
            set(keys.values()))}})} if keys else {}
        addresses = {c: found.get(k) for c, k in keys.items()}
        pending = self.db[PENDING].find_one({"_id": notification_id})
        now = db_now()
        settings = Settings.of(self.config)
        window = self.config.get("NOTIFY_QUIET_HOURS", DEFAULT_QUIET_HOURS) or "none"
        quiet = quiet_block(doc, window, recipient.get("timezone") or settings.timezone,
                            pending, now, settings.quiet_channels)
        return {
            "notification": notification_out(doc, shown),
            "rule": self._rule_view(doc.get("rule")),
            "pending": pending,
            "addresses": [{"channel": c, "address": shown.address(c, address_of(recipient, c)),
                           "opted_out": bool((addresses.get(c) or {}).get("opted_out")),
                           **{k: (addresses.get(c) or {}).get(k) for k in (
                               "opted_at", "opted_by", "next_at", "last_inbound_at")}}
                          for c in keys],
            "preferences": preferences,
            "quiet_hours": quiet,
            "explanation": explain(doc, preferences=preferences, addresses=addresses,
                                   pending=pending, quiet=quiet, now=now),
        }

    def _rule_view(self, rule_id):
        """The rule as configured now (None: ad hoc, the desk's replies, or removed)."""
        return next((rule.describe() for rule in self.ruleset.rules if rule.id == rule_id),
                    None)


def adhoc_content(content, language):
    """The given texts in the stored content shape (``email.html`` optional)."""
    out = {}
    for channel, value in content.items():
        out[channel] = dict(value)
        if channel == "whatsapp" and "template" in value:
            out[channel].setdefault("parameters", [])
            out[channel].setdefault("language", language)
    return out


def _email(email):
    if not email:
        return None
    try:
        return domain.normalize_address("email", email)
    except ValueError:
        return email.strip().lower()


def _normalized_phone(phone):
    if not phone:
        return None
    try:
        return normalize_phone(phone)
    except ValueError as exc:
        raise unprocessable({"phone": [str(exc)]}) from None

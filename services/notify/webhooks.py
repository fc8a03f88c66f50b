"""Provider webhooks: WhatsApp's verification handshake and its signed event webhook
(statuses and inbound messages), and the SMS gateway's signed delivery reports.

- ``GET /webhooks/whatsapp``: Meta's handshake. ``hub.mode=subscribe`` with
  ``hub.verify_token`` equal to ``NOTIFY_WHATSAPP_VERIFY_TOKEN`` answers ``hub.challenge`` as
  text/plain; anything else 403.
- ``POST /webhooks/whatsapp``: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body
  with NOTIFY_WHATSAPP_APP_SECRET>`` is checked on the raw bytes before anything is parsed
  (``hmac.compare_digest``); a missing or wrong signature is 401 and nothing is stored. Then
  each ``statuses[]`` item goes to ``status.apply_provider_status`` (forward only; the
  notification is found through ``biz_opaque_callback_data``), and each ``messages[]`` item is
  stored in ``inbound`` by its ``wamid`` with a ``notification.inbound_received`` event in
  the same write (a webhook retry inserts nothing new, so the service desk answers once) after
  the sender's address has its ``last_inbound_at`` moved forward (the 24-hour window the
  desk's free-form reply needs). It answers 200 at once: the reply is sent by the desk's
  event handler, off the webhook.
- ``POST /webhooks/sms``: the gateway's delivery report ``{id, reference, status, timestamp,
  error}`` signed with ``X-Signature: sha256=<HMAC-SHA256 of the raw body with
  NOTIFY_SMS_SECRET, hex>`` (the bare hex is accepted too); ``reference`` is the callback data
  our send carried.

A signed body that is not what the provider sends is 400 (nothing stored); a change for
another phone number id than ``NOTIFY_WHATSAPP_PHONE_NUMBER_ID`` is ignored. Without a
configured secret every webhook is refused with 401 (logged): nothing unsigned gets in.
"""

import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime

import pymongo.errors
from marshmallow import Schema, fields
from prometheus_client import Counter
from werkzeug.wrappers import Response

from pamong.privacy import mask_phone, normalize_phone
from pamong.storage import db_now
from pamong.web.problem import Problem, bad_request, forbidden
from pamong.web.route import read_body, route
from services.notify import status as statuses
from services.notify.access import API
from services.notify.domain import address_key
from services.notify.store import ADDRESSES, INBOUND

log = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "pamong_notify_webhooks_total",
    "Provider webhook items by provider, kind (status, inbound, report) and result (applied, "
    "ignored, duplicate, refused)",
    ["provider", "kind", "result"])

WEBHOOK_MAX_BYTES = 1024 * 1024
# the refusals of a signed webhook (documented in OpenAPI)
SIGNED_BODY = {401: "The signature is missing or does not match the body",
               400: "The body is not the provider's JSON"}
# what a desk can read from an inbound message that is not plain text
_TEXT_OF = {
    "button": lambda m: (m.get("button") or {}).get("text"),
    "interactive": lambda m: ((m.get("interactive") or {}).get("button_reply") or
                              (m.get("interactive") or {}).get("list_reply") or {}).get("title"),
}
SMS_STATUSES = {"sent": "sent", "delivered": "delivered", "failed": "failed",
                "undelivered": "failed", "rejected": "failed", "expired": "failed"}


class WebhookOk(Schema):
    received = fields.Integer(metadata={"description": "items taken from the body"})


def signature_valid(secret, raw, header):
    """Whether ``header`` (``sha256=<hex>`` or ``<hex>``) is the HMAC-SHA256 of the raw body
    ``raw`` under ``secret``; constant-time."""
    if not secret or not header:
        return False
    value = header.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256="):]
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), value.lower().encode())


def parse_whatsapp(body, phone_number_id=None):
    """``(statuses, messages)`` of a WhatsApp webhook body: plain dicts ready to apply.

    statuses: ``{provider_id, status, at, callback_data, recipient, error}``; messages:
    ``{id, from (E.164), text, type, at}``. Raises ValueError when the body is not Meta's
    envelope. Changes for another phone number id are left out."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account" \
            or not isinstance(body.get("entry"), list):
        raise ValueError("not a whatsapp_business_account webhook")
    found_statuses, found_messages = [], []
    for entry in body["entry"]:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value") or {}
            if not isinstance(value, dict):
                raise ValueError("a change without a value object")
            number = (value.get("metadata") or {}).get("phone_number_id")
            if phone_number_id and number and str(number) != str(phone_number_id):
                continue
            for item in value.get("statuses") or []:
                found_statuses.append(_status_item(item))
            for item in value.get("messages") or []:
                found_messages.append(_message_item(item))
    return found_statuses, found_messages


def _status_item(item):
    if not isinstance(item, dict) or not item.get("id") or not item.get("status"):
        raise ValueError("a status without id or status")
    errors = item.get("errors") or []
    error = None
    if errors:
        first = errors[0] or {}
        error = f"{first.get('code')}: {first.get('title') or first.get('message') or 'error'}"
    return {"provider_id": str(item["id"]), "status": str(item["status"]),
            "at": _epoch(item.get("timestamp")),
            "callback_data": item.get("biz_opaque_callback_data"),
            "recipient": item.get("recipient_id"), "error": error}


def _message_item(item):
    if not isinstance(item, dict) or not item.get("id") or not item.get("from"):
        raise ValueError("a message without id or from")
    kind = item.get("type") or "text"
    text = (item.get("text") or {}).get("body") if kind == "text" else \
        _TEXT_OF.get(kind, lambda m: None)(item)
    return {"id": str(item["id"]), "from": e164_of(str(item["from"])), "type": kind,
            "text": text if isinstance(text, str) else "", "at": _epoch(item.get("timestamp"))}


def e164_of(wa_id):
    """WhatsApp's ``6281234567890`` -> ``+6281234567890`` (an Indonesian number normalised;
    another country's kept as ``+<digits>``)."""
    digits = re.sub(r"[^0-9]", "", wa_id)
    try:
        return normalize_phone("+" + digits)
    except ValueError:
        return "+" + digits


def _epoch(value):
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_sms_report(body):
    """``{provider_id, callback_data, status, at, error}`` of a gateway delivery report, the
    status mapped to ours (None for one we do not track, e.g. ``accepted``)."""
    if not isinstance(body, dict) or not body.get("status"):
        raise ValueError("not a delivery report")
    error = body.get("error")
    if isinstance(error, dict):
        error = f"{error.get('code')}: {error.get('message') or 'error'}"
    at = None
    if isinstance(body.get("timestamp"), str):
        try:
            at = datetime.fromisoformat(body["timestamp"])
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
        except ValueError:
            at = None
    return {"provider_id": body.get("id"), "callback_data": body.get("reference"),
            "status": SMS_STATUSES.get(str(body["status"]).lower()), "at": at,
            "error": error if isinstance(error, str) else None}


class WebhookEndpoints:
    @route("GET", f"{API}/webhooks/whatsapp", public=True, tags=["webhooks"],
           problems={403: "`hub.verify_token` does not match"},
           summary="WhatsApp webhook verification (Meta's handshake)",
           description="Answers `hub.challenge` as text/plain when `hub.mode` is `subscribe` "
                       "and `hub.verify_token` equals NOTIFY_WHATSAPP_VERIFY_TOKEN; else 403.")
    def whatsapp_handshake(self, request, principal):
        expected = self.config.get("NOTIFY_WHATSAPP_VERIFY_TOKEN")
        given = request.args.get("hub.verify_token") or ""
        if not expected or request.args.get("hub.mode") != "subscribe" \
                or not hmac.compare_digest(given.encode(), str(expected).encode()):
            raise forbidden("The verification token does not match.")
        return Response(request.args.get("hub.challenge") or "", mimetype="text/plain")

    @route("POST", f"{API}/webhooks/whatsapp", public=True, response=WebhookOk(),
           tags=["webhooks"], max_body=WEBHOOK_MAX_BYTES, problems=SIGNED_BODY,
           summary="WhatsApp statuses and inbound messages (signed by Meta)",
           description="Checked with `X-Hub-Signature-256` on the raw body (401 and nothing "
                       "stored when it is missing or wrong). Statuses move deliveries forward "
                       "only; inbound messages are stored once by their id and answered by "
                       "the service desk.")
    def whatsapp_webhook(self, request, principal):
        raw = read_body(request, WEBHOOK_MAX_BYTES)
        self._check_signature("whatsapp", "NOTIFY_WHATSAPP_APP_SECRET", raw,
                              request.headers.get("X-Hub-Signature-256"))
        try:
            found_statuses, found_messages = parse_whatsapp(
                json.loads(raw), self.config.get("NOTIFY_WHATSAPP_PHONE_NUMBER_ID"))
        except ValueError as exc:
            WEBHOOKS.labels("whatsapp", "body", "refused").inc()
            raise bad_request(f"Not a WhatsApp webhook body: {exc}") from None
        for message in found_messages:
            self._store_inbound(message)
        for item in found_statuses:
            self._apply_status("whatsapp", "status", item)
        return {"received": len(found_statuses) + len(found_messages)}

    @route("POST", f"{API}/webhooks/sms", public=True, response=WebhookOk(),
           tags=["webhooks"], max_body=WEBHOOK_MAX_BYTES, problems=SIGNED_BODY,
           summary="SMS gateway delivery reports (signed)",
           description="Checked with `X-Signature` (HMAC-SHA256 of the raw body with "
                       "NOTIFY_SMS_SECRET) before anything is read; 401 otherwise.")
    def sms_report(self, request, principal):
        raw = read_body(request, WEBHOOK_MAX_BYTES)
        self._check_signature("sms", "NOTIFY_SMS_SECRET", raw,
                              request.headers.get("X-Signature"))
        try:
            body = json.loads(raw)
            reports = body if isinstance(body, list) else [body]
            items = [parse_sms_report(report) for report in reports]
        except ValueError as exc:
            WEBHOOKS.labels("sms", "body", "refused").inc()
            raise bad_request(f"Not a delivery report: {exc}") from None
        for item in items:
            if item["status"] is None:
                WEBHOOKS.labels("sms", "report", "ignored").inc()
                continue
            self._apply_status("sms", "report", item)
        return {"received": len(items)}

    # -- helpers ----------------------------------------------------------------------------
    def _check_signature(self, provider, setting, raw, header):
        secret = self.config.get(setting)
        if not secret:
            log.error("%s webhook refused: %s is not set, so no signature can be checked",
                      provider, setting)
        if not signature_valid(secret, raw, header):
            WEBHOOKS.labels(provider, "body", "refused").inc()
            raise Problem(401, "The signature is missing or does not match the body.")

    def _apply_status(self, provider, kind, item):
        after = statuses.apply_provider_status(
            self.db, self.outbox, item["callback_data"], item["provider_id"], item["status"],
            item["at"], error=item["error"])
        WEBHOOKS.labels(provider, kind, "applied" if after is not None else "ignored").inc()

    def _store_inbound(self, message):
        """The sender's 24-hour window first (so the desk's reply may be free text), then the
        message with its event in one insert; a retried webhook finds it there."""
        now = db_now()
        at = message["at"] or now
        self.db[ADDRESSES].update_one({"_id": address_key("whatsapp", message["from"])},
                                      {"$max": {"last_inbound_at": at}}, upsert=True)
        document = {"_id": message["id"], "from": message["from"], "type": message["type"],
                    "text": message["text"], "at": at, "received_at": now, "handled": False}
        event = self.outbox.event("notification.inbound_received", {"id": message["id"]})
        try:
            self.outbox.insert(INBOUND, document, [event])
        except pymongo.errors.DuplicateKeyError:
            WEBHOOKS.labels("whatsapp", "inbound", "duplicate").inc()
            return False
        WEBHOOKS.labels("whatsapp", "inbound", "applied").inc()
        log.info("inbound WhatsApp message %s from %s", message["id"],
                 _masked(message["from"]))
        return True


def _masked(e164):
    try:
        return mask_phone(e164)
    except ValueError:
        return "+***"

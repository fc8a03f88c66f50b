"""A local stand-in for an HTTP SMS gateway (the shape Indonesian aggregators share).

Send: ``POST {url}/messages`` (the stand-in accepts any path but ``/_standin/...``) with
``Authorization: Bearer <token>`` (401 without; any token when built without ``token``) and a
JSON body ``{"to": "+62...", "text": "...", "reference": "<our id>"}``. It answers 202
``{"id": "sms-<hex>", "status": "accepted", "to", "reference", "parts"}``; errors answer
``{"error": {"code", "message"}}``: 400 ``invalid_number`` (``to`` not E.164, or in
``invalid_numbers``), 400 ``invalid_request`` (no text), 401, 429 ``rate_limited``, 500
``gateway_error``, and whatever ``plan(...)`` queued.

Delivery reports go to ``report_url``: ``POST`` JSON ``{"id", "reference", "to", "status":
"sent" | "delivered" | "failed", "timestamp": ISO-8601 UTC, "error": {"code", "message"} |
null}`` with ``X-Signature: sha256=<HMAC-SHA256 of the raw body with the secret, hex>``.
"""

import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime

import requests

from pamong.privacy import mask_phone, mask_text
from services.notify.standins.http import HOLD, StandinHttpServer, bearer, next_outcome

log = logging.getLogger("pamong.standins.sms")

_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")
ERRORS = {400: "invalid_request", 401: "unauthorized", 429: "rate_limited",
          500: "gateway_error", 503: "unavailable"}


def signature(secret, raw):
    """The ``X-Signature`` header value of ``raw`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def parts(text):
    """How many SMS a text takes (GSM-7: 160, or 153 per part; else UCS-2: 70, or 67)."""
    if set(text) <= _GSM7:
        return 1 if len(text) <= 160 else -(-len(text) // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


class SmsStandin(StandinHttpServer):
    name = "sms"

    def __init__(self, secret="sms-secret", token=None, host="127.0.0.1", port=0,  # noqa: S107 - a stand-in's test secret
                 report_url=None):
        super().__init__(host, port)
        self.secret = secret
        self.token = token
        self.report_url = report_url
        self.clock = time.time  # the gateway's clock (epoch seconds); see WhatsAppStandin
        self.requests = []  # accepted sends: {"body", "id", "at", "to", "reference"}
        self.calls = []  # every send call: {"body", "outcome", "status", "id"|None, "at"}
        self.posted = []  # every report post: {"body", "status" (HTTP)|None, "error"|None}
        self._planned = []
        self.auto_report = []  # reports posted after each accepted send, in order
        self.report_delay = 0.0
        self.invalid_numbers = set()  # E.164 numbers the gateway refuses: 400 invalid_number

    def plan(self, *outcomes):
        """Queue outcomes for the next sends: ``"ok"``, an HTTP status (500, 429, 400...),
        ``("error", "<code>")`` (400 with that code) or ``"timeout"``."""
        with self._lock:
            self._planned.extend(outcomes)

    def received(self, to=None):
        with self._lock:
            return [r["body"] for r in self.requests if to is None or r["to"] == to]

    def handle(self, request):
        if request.method != "POST":
            return 405, {"error": {"code": "method_not_allowed", "message": request.method}}
        token = bearer(request)
        if token is None or (self.token is not None and token != self.token):
            return 401, {"error": {"code": "unauthorized", "message": "bad or missing token"}}
        try:
            body = request.json()
        except ValueError:
            return 400, {"error": {"code": "invalid_request", "message": "body is not JSON"}}
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) \
                or not body["text"]:
            return 400, {"error": {"code": "invalid_request", "message": "text is required"}}
        to = body.get("to")
        if not isinstance(to, str) or not _E164.match(to) or to in self.invalid_numbers:
            return self._refuse(body, 400, "invalid_number", "to is not a valid number")
        outcome = next_outcome(self._planned, self._lock)
        now = self._now()
        if outcome in ("ok", "timeout"):
            message_id = f"sms-{uuid.uuid4().hex[:20]}"
            record = {"body": body, "id": message_id, "at": now, "to": to,
                      "reference": body.get("reference")}
            with self._lock:
                self.requests.append(record)
                self.calls.append({"body": body, "outcome": outcome, "id": message_id,
                                   "status": 202 if outcome == "ok" else None, "at": now})
            log.info("SMS to %s: %s (%s)%s", mask_phone(to) if to.startswith("+62") else to,
                     mask_text(body["text"][:160]), message_id,
                     "" if outcome == "ok" else " [reply withheld: timeout]")
            if outcome == "timeout":
                return HOLD
            self._reports_later(record)
            return 202, {"id": message_id, "status": "accepted", "to": to,
                         "reference": body.get("reference"), "parts": parts(body["text"])}
        if isinstance(outcome, tuple):
            return self._refuse(body, 400, outcome[1], outcome[1].replace("_", " "))
        return self._refuse(body, outcome, ERRORS.get(outcome, "error"), "planned failure")

    def _now(self):
        return datetime.fromtimestamp(self.clock(), UTC)

    def _refuse(self, body, status, code, message):
        with self._lock:
            self.calls.append({"body": body, "outcome": code, "id": None, "status": status,
                               "at": self._now()})
        return status, {"error": {"code": code, "message": message}}

    def _reports_later(self, record):
        reports = list(self.auto_report)
        if not reports:
            return

        def run():
            if self.report_delay:
                time.sleep(self.report_delay)
            for status in reports:
                self._post(self._report(record, status))

        threading.Thread(target=run, name="sms-reports", daemon=True).start()

    def _report(self, record, status, error=None):
        if status == "failed" and error is None:
            error = {"code": "undeliverable", "message": "the handset did not accept it"}
        elif isinstance(error, str):
            error = {"code": error, "message": error.replace("_", " ")}
        return {"id": record["id"], "reference": record["reference"], "to": record["to"],
                "status": status, "timestamp": self._now().isoformat(), "error": error}

    def post_report(self, reference, status, error=None):
        """Post a delivery report for the (latest) send with ``reference`` (or the gateway
        ``id``), signed; the HTTP response (None when the webhook did not answer)."""
        with self._lock:
            record = next((r for r in reversed(self.requests)
                           if reference in (r["reference"], r["id"])), None)
        record = record or {"id": None, "reference": reference, "to": None}
        return self._post(self._report(record, status, error))

    def post_raw(self, body_bytes, signature_header):
        headers = {"Content-Type": "application/json"}
        if signature_header is not None:
            headers["X-Signature"] = signature_header
        return requests.post(self._target(), data=body_bytes, headers=headers, timeout=10)

    def _target(self):
        if not self.report_url:
            raise RuntimeError("SmsStandin.report_url is not set")
        return self.report_url

    def _post(self, body):
        raw = json.dumps(body, separators=(",", ":")).encode()
        entry = {"body": body, "status": None, "error": None}
        response = None
        try:
            response = requests.post(self._target(), data=raw, timeout=10, headers={
                "Content-Type": "application/json", "X-Signature": signature(self.secret, raw)})
            entry["status"] = response.status_code
        except requests.RequestException as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("SMS stand-in: report URL %s unreachable: %s", self.report_url,
                        type(exc).__name__)
        with self._lock:
            self.posted.append(entry)
        return response

    def messages_view(self):
        with self._lock:
            return [{"at": r["at"].isoformat(), "to": r["to"], "id": r["id"],
                     "reference": r["reference"], "text": r["body"]["text"]}
                    for r in self.requests]

    def configure(self, settings):
        for key in ("report_url", "auto_report", "report_delay"):
            if key in settings:
                setattr(self, key, settings[key])
        return {"report_url": self.report_url, "auto_report": self.auto_report}

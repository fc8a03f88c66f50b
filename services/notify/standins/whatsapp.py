"""A local stand-in for the WhatsApp Business Cloud API: it accepts sends the way Meta's
Graph API does, answers with ``wamid`` ids or Meta's error shapes, and calls our webhook with
signed status callbacks and inbound messages.

Sends: ``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer <token>``
(401, code 190, without one; any token when the stand-in was built without ``token``) and a
body ``{"messaging_product": "whatsapp", "to": "628...", "type": "template" | "text",
"template": {"name", "language": {"code"}, "components": [...]}, "text": {"body"},
"biz_opaque_callback_data": "..."}``. A success answers ``{"messaging_product": "whatsapp",
"contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid.<...>"}]}``. Errors answer
``{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}``: 400 with 131026 for a
number in ``non_users`` (not on WhatsApp), 400 with 131047 for a ``text`` message outside the
24 hours after the number's last inbound message (``post_inbound`` opens the window), 400 with
100 for a malformed body, and whatever ``plan(...)`` queued.

Statuses go to ``webhook_url`` in Meta's envelope (``object: whatsapp_business_account``,
``entry[].changes[].value.statuses[]`` with ``id``, ``status``, ``timestamp``,
``recipient_id``, ``biz_opaque_callback_data`` (echoed from the send), ``errors`` when
failed), inbound messages under ``value.messages[]``; every post carries
``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>``.

    wa = WhatsAppStandin(app_secret="test-app-secret", phone_number_id="100200300").start()
    wa.plan("timeout", 500, ("error", 131026))   # the next three sends
    wa.auto_status = ["sent", "delivered"]        # after each accepted send
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime

import requests

from pamong.privacy import mask_phone, mask_text
from services.notify.standins.http import HOLD, StandinHttpServer, bearer, next_outcome

log = logging.getLogger("pamong.standins.whatsapp")

_SEND_PATH = re.compile(r"^/(v[0-9]+(?:\.[0-9]+)?)/([^/]+)/messages/?$")

# Meta's titles for the codes the stand-in answers with
ERRORS = {
    0: ("AuthException", 401, "Unable to authenticate the app user"),
    1: ("OAuthException", 500, "An unknown error occurred"),
    2: ("OAuthException", 503, "Service temporarily unavailable"),
    100: ("OAuthException", 400, "Invalid parameter"),
    190: ("OAuthException", 401, "Invalid OAuth access token"),
    130429: ("OAuthException", 429, "Rate limit hit"),
    131000: ("OAuthException", 500, "Something went wrong"),
    131008: ("OAuthException", 400, "Required parameter is missing"),
    131026: ("OAuthException", 400, "Message undeliverable"),
    131047: ("OAuthException", 400, "Re-engagement message"),
    131048: ("OAuthException", 429, "Spam rate limit hit"),
    131056: ("OAuthException", 429, "(Business Account, Consumer Account) pair rate limit hit"),
    132001: ("OAuthException", 404, "Template does not exist"),
}
_HTTP_CODE = {500: 131000, 503: 2, 429: 130429, 400: 100, 401: 190, 404: 132001}


def signature(secret, raw):
    """The ``X-Hub-Signature-256`` header value of ``raw`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def new_wamid():
    raw = b"\x15\x02\x00\x11\x18\x12" + os.urandom(18)
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def error_body(code, details=None):
    kind, _, title = ERRORS.get(code, ("OAuthException", 400, "Error"))
    return {"error": {"message": f"(#{code}) {title}", "type": kind, "code": code,
                      "error_data": {"messaging_product": "whatsapp",
                                     "details": details or title},
                      "fbtrace_id": base64.b64encode(os.urandom(12)).decode()}}


def error_reply(code, details=None):
    return ERRORS.get(code, (None, 400, None))[1], error_body(code, details)


class WhatsAppStandin(StandinHttpServer):
    name = "whatsapp"

    def __init__(self, app_secret="test-app-secret", phone_number_id="100200300", token=None,  # noqa: S107
                 host="127.0.0.1", port=0, webhook_url=None,
                 display_phone_number="6281100000000", waba_id="200300400",
                 templates_dir=None):
        super().__init__(host, port)
        # approved template texts by name (``whatsapp: {name, body}`` of notify's template
        # files), to show a send as the citizen would read it; unknown names are still sent
        self.template_bodies = load_template_bodies(templates_dir) if templates_dir else {}
        self.app_secret = app_secret
        self.phone_number_id = str(phone_number_id)
        self.token = token
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        self.webhook_url = webhook_url
        self.requests = []  # accepted sends: {"body", "wamid", "at", "to", "callback_data"}
        self.calls = []  # every send call: {"body", "outcome", "status", "wamid"|None, "at"}
        self.posted = []  # every webhook post: {"body", "status" (HTTP)|None, "error"|None}
        self.inbound = []  # what post_inbound sent: {"from", "text", "wamid", "at"}
        self._planned = []
        self.auto_status = []  # statuses posted after each accepted send, in order
        self.status_delay = 0.0  # seconds between the reply and the first auto status
        self.duplicate_statuses = False  # post every auto status twice
        self.reverse_order = False  # post the auto statuses last first
        self.status_before_reply = False  # post the first auto status before answering
        self.status_on_timeout = False  # a held ("timeout") send gets its statuses too
        self.webhook_retries = 0  # retries of a webhook post that failed (Meta retries)
        self.non_users = set()  # digits that are not on WhatsApp: 131026
        self.enforce_window = True  # free-form text only within 24 h of an inbound message
        self.window_seconds = 24 * 3600
        self._last_inbound = {}  # digits -> epoch seconds
        # Meta's clock (epoch seconds): a test whose services live on a moved clock (the
        # suite's day) moves this one with them, or its timestamps and windows disagree
        self.clock = time.time

    # -- test controls ------------------------------------------------------------------
    def plan(self, *outcomes):
        """Queue outcomes for the next sends, in order: ``"ok"``, an HTTP status (500, 503,
        429, 400, 401), ``("error", <Meta code>)`` or ``"timeout"`` (accepted and counted,
        but the reply is held longer than the client waits and the connection then
        dropped). Sends past the plan are ``"ok"``."""
        with self._lock:
            self._planned.extend(outcomes)

    def received(self, to=None):
        """The bodies of the accepted sends, optionally only those to ``to`` (digits or
        E.164)."""
        digits = _digits(to) if to else None
        with self._lock:
            return [r["body"] for r in self.requests if digits is None or r["to"] == digits]

    def request_of(self, wamid):
        with self._lock:
            return next((r for r in self.requests if r["wamid"] == wamid), None)

    # -- the Cloud API --------------------------------------------------------------------
    def handle(self, request):
        if request.path == "/_standin/inbound" and request.method == "POST":
            return self._inbound_on_demand(request)
        match = _SEND_PATH.match(request.path)
        if request.method != "POST" or not match:
            return 400, error_body(100, f"Unsupported {request.method} request")
        token = bearer(request)
        if token is None or (self.token is not None and token != self.token):
            return error_reply(190)
        if match.group(2) != self.phone_number_id:
            return 400, error_body(100, f"Unsupported post request. Object with ID "
                                        f"'{match.group(2)}' does not exist")
        try:
            body = request.json()
        except ValueError:
            return 400, error_body(100, "The request body is not JSON")
        problem = _invalid(body)
        if problem:
            return 400, error_body(*problem)
        to = _digits(body["to"])
        outcome = next_outcome(self._planned, self._lock)
        if outcome == "ok":
            if to in self.non_users:
                outcome = ("error", 131026)
            elif body["type"] == "text" and self.enforce_window and not self._in_window(to):
                outcome = ("error", 131047)
        now = self._now()
        call = {"body": body, "outcome": outcome, "status": None, "wamid": None, "at": now}
        if outcome in ("ok", "timeout"):
            wamid = new_wamid()
            record = {"body": body, "wamid": wamid, "at": now, "to": to,
                      "callback_data": body.get("biz_opaque_callback_data")}
            call.update(wamid=wamid, status=200 if outcome == "ok" else None)
            with self._lock:
                self.calls.append(call)
                self.requests.append(record)
            log.info("WhatsApp to %s: %s (%s)%s", _masked(to),
                     _describe(body, self.template_bodies),
                     wamid, "" if outcome == "ok" else " [reply withheld: timeout]")
            if outcome == "timeout":
                if self.status_on_timeout:
                    self._statuses_later(record)
                return HOLD
            statuses = self._auto_statuses()
            if self.status_before_reply and statuses:
                first = statuses.pop(0)
                self._post(self._status_body(record, first, self.auto_status.index(first)))
            self._statuses_later(record, statuses)
            return 200, {"messaging_product": "whatsapp",
                         "contacts": [{"input": body["to"], "wa_id": to}],
                         "messages": [{"id": wamid}]}
        status, reply = _failure(outcome)
        call["status"] = status
        with self._lock:
            self.calls.append(call)
        log.info("WhatsApp to %s refused: %s %s", _masked(to), status,
                 reply["error"]["code"])
        return status, reply

    def _inbound_on_demand(self, request):
        """``POST /_standin/inbound {"from": "6281...", "text": "STATUS REG-..."}``: a citizen
        writes to our number (a developer under ``make run`` plays one)."""
        try:
            body = request.json() or {}
        except ValueError:
            body = {}
        if not _digits(body.get("from")) or not isinstance(body.get("text"), str):
            return 400, {"error": "give from (a phone number) and text"}
        if not self.webhook_url:
            return 409, {"error": "no webhook_url configured"}
        wamid = self.post_inbound(body["from"], body["text"], name=body.get("name") or "Warga")
        with self._lock:
            posted = self.posted[-1] if self.posted else {}
        return 200, {"wamid": wamid, "webhook_status": posted.get("status")}

    def _now(self):
        return datetime.fromtimestamp(self.clock(), UTC)

    def _in_window(self, digits):
        at = self._last_inbound.get(digits)
        return at is not None and self.clock() - at < self.window_seconds

    # -- webhooks -------------------------------------------------------------------------
    def _auto_statuses(self):
        statuses = list(self.auto_status)
        if self.reverse_order:
            statuses.reverse()
        if self.duplicate_statuses:
            statuses = [s for status in statuses for s in (status, status)]
        return statuses

    def _statuses_later(self, record, statuses=None):
        statuses = self._auto_statuses() if statuses is None else statuses
        if not statuses:
            return
        # timestamps follow the logical order (sent before delivered) whatever the posting
        # order, as Meta's do
        order = {s: i for i, s in enumerate(self.auto_status)}

        def run():
            if self.status_delay:
                time.sleep(self.status_delay)
            for status in statuses:
                self._post(self._status_body(record, status, order.get(status, 0)))

        threading.Thread(target=run, name="whatsapp-statuses", daemon=True).start()

    def _status_body(self, record, status, step, error=None, timestamp=None):
        sent_at = record["at"].timestamp() if record else self.clock()
        item = {"id": record["wamid"] if record else None, "status": status,
                "timestamp": str(int(timestamp if timestamp is not None else sent_at + step)),
                "recipient_id": record["to"] if record else None}
        callback = record.get("callback_data") if record else None
        if callback is not None:
            item["biz_opaque_callback_data"] = callback
        if status in ("sent", "delivered", "read") and record and record.get("to"):
            item["conversation"] = {"id": hashlib.sha1(record["to"].encode()).hexdigest()[:32],  # noqa: S324 - an id, not security
                                    "origin": {"type": "utility"}}
            item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
        if status == "failed":
            code = error if isinstance(error, int) else 131026
            detail = error if isinstance(error, dict) else {
                "code": code, "title": ERRORS.get(code, (None, None, "Error"))[2],
                "message": ERRORS.get(code, (None, None, "Error"))[2],
                "error_data": {"details": ERRORS.get(code, (None, None, "Error"))[2]}}
            item["errors"] = [detail]
        return self._envelope({"statuses": [item]})

    def _envelope(self, value):
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": self.display_phone_number,
                                 "phone_number_id": self.phone_number_id},
                    **value}}]}]}

    def post_status(self, wamid, status, callback_data=None, error=None, timestamp=None):
        """Post one status of the send ``wamid`` (signed) now; the HTTP response (None when
        the webhook did not answer). ``callback_data`` defaults to what the send carried;
        ``error`` (a Meta code or an error dict) goes with ``failed``."""
        record = self.request_of(wamid) or {"wamid": wamid, "to": None, "at": self._now()}
        if callback_data is not None:
            record = {**record, "callback_data": callback_data}
        return self._post(self._status_body(record, status, 0, error=error,
                                            timestamp=timestamp or self.clock()))

    def post_inbound(self, from_digits, text, name="Warga"):
        """A text message from ``from_digits`` to our number, posted (signed) now; opens the
        24-hour window for free-form replies. Returns its ``wamid``. A local Indonesian
        number (``0812...``) is written as WhatsApp names it (``62812...``)."""
        digits = _digits(from_digits)
        if digits.startswith("0"):
            digits = "62" + digits[1:]
        wamid = new_wamid()
        now = self.clock()
        self.open_window(digits, now)
        with self._lock:
            self.inbound.append({"from": digits, "text": text, "wamid": wamid,
                                 "at": self._now()})
        self._post(self._envelope({
            "contacts": [{"profile": {"name": name}, "wa_id": digits}],
            "messages": [{"from": digits, "id": wamid, "timestamp": str(int(now)),
                          "type": "text", "text": {"body": text}}]}))
        return wamid

    def open_window(self, digits, at=None):
        """Note an inbound message from ``digits`` at ``at`` (epoch seconds, default now): the
        24-hour window for free-form text to it is open from then."""
        digits = _digits(digits)
        at = self.clock() if at is None else float(at)
        with self._lock:
            self._last_inbound[digits] = max(at, self._last_inbound.get(digits, at))

    def post_raw(self, body_bytes, signature_header):
        """Post ``body_bytes`` as they are with ``signature_header`` (None: no header). An
        inbound message in them opens its sender's window, as one through Meta would."""
        self._windows_of(body_bytes)
        headers = {"Content-Type": "application/json"}
        if signature_header is not None:
            headers["X-Hub-Signature-256"] = signature_header
        return requests.post(self._webhook(), data=body_bytes, headers=headers, timeout=10)

    def _windows_of(self, raw):
        try:
            body = json.loads(raw)
            for entry in body["entry"]:
                for change in entry["changes"]:
                    for message in change["value"].get("messages") or []:
                        self.open_window(message["from"], message.get("timestamp"))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # not a webhook body: a test of what notify does with garbage

    def handshake(self, verify_token, challenge="1158201444"):
        """Meta's verification request (``GET`` with ``hub.mode=subscribe``)."""
        return requests.get(self._webhook(), params={
            "hub.mode": "subscribe", "hub.verify_token": verify_token,
            "hub.challenge": challenge}, timeout=10)

    def _webhook(self):
        if not self.webhook_url:
            raise RuntimeError("WhatsAppStandin.webhook_url is not set")
        return self.webhook_url

    def _post(self, body):
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": signature(self.app_secret, raw)}
        entry = {"body": body, "status": None, "error": None}
        response = None
        for attempt in range(self.webhook_retries + 1):
            if attempt:
                time.sleep(min(2 ** attempt, 30))
            try:
                response = requests.post(self._webhook(), data=raw, headers=headers, timeout=10)
                entry.update(status=response.status_code, error=None)
                if response.ok:
                    break
            except requests.RequestException as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                log.warning("WhatsApp stand-in: webhook %s unreachable: %s", self.webhook_url,
                            type(exc).__name__)
        with self._lock:
            self.posted.append(entry)
        return response

    # -- make run ---------------------------------------------------------------------------
    def messages_view(self):
        with self._lock:
            sent = [{"at": r["at"].isoformat(), "direction": "out", "to": r["to"],
                     "wamid": r["wamid"], "callback_data": r["callback_data"],
                     "message": r["body"], "reads": readable(r["body"], self.template_bodies)}
                    for r in self.requests]
            received = [{"at": m["at"].isoformat(), "direction": "in", "from": m["from"],
                         "wamid": m["wamid"], "text": m["text"]} for m in self.inbound]
        return sorted(sent + received, key=lambda m: m["at"])

    def configure(self, settings):
        for key in ("webhook_url", "auto_status", "status_delay", "webhook_retries"):
            if key in settings:
                setattr(self, key, settings[key])
        return {"webhook_url": self.webhook_url, "auto_status": self.auto_status}


def _digits(value):
    return re.sub(r"[^0-9]", "", str(value or ""))


def _invalid(body):
    """(code, details) when ``body`` is not a send the Cloud API accepts, else None."""
    if not isinstance(body, dict):
        return 100, "The body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return 100, "The parameter messaging_product is required and must be 'whatsapp'"
    to = body.get("to")
    if not isinstance(to, str) or not re.fullmatch(r"\+?[0-9]{8,15}", to):
        return 100, "The parameter to is required and must be a phone number"
    kind = body.get("type", "text")
    if kind == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name") \
                or not (template.get("language") or {}).get("code"):
            return 131008, "template.name and template.language.code are required"
        for component in template.get("components") or []:
            for parameter in component.get("parameters") or []:
                if parameter.get("type") == "text" and not isinstance(parameter.get("text"),
                                                                      str):
                    return 100, "a text parameter needs text"
    elif kind == "text":
        if not isinstance((body.get("text") or {}).get("body"), str) or not body["text"]["body"]:
            return 131008, "text.body is required"
        body.setdefault("type", "text")
    else:
        return 100, f"message type {kind!r} is not supported by the stand-in"
    return None


def _failure(outcome):
    if isinstance(outcome, tuple) and outcome and outcome[0] == "error":
        return error_reply(outcome[1], outcome[2] if len(outcome) > 2 else None)
    if isinstance(outcome, int):
        code = _HTTP_CODE.get(outcome, 100)
        return outcome, error_body(code)
    raise ValueError(f"unknown planned outcome {outcome!r}")


def load_template_bodies(directory):
    """``{template name: body}`` from notify's template files (``whatsapp: {name, body}``)."""
    from pathlib import Path

    import yaml

    bodies = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            whatsapp = (yaml.safe_load(path.read_text()) or {}).get("whatsapp") or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(whatsapp, dict) and whatsapp.get("name") and whatsapp.get("body"):
            bodies[whatsapp["name"]] = str(whatsapp["body"])
    return bodies


def readable(body, template_bodies):
    """A send as the recipient reads it: the text, or the template's body with its
    parameters in place (``{{1}}``...) when the template is known, else its name and
    parameters."""
    if body.get("type") != "template":
        return body["text"]["body"]
    template = body["template"]
    parameters = [p.get("text") for c in template.get("components") or []
                  for p in c.get("parameters") or []]
    text = template_bodies.get(template["name"])
    if text is None:
        return f"[{template['name']}] " + " | ".join(str(p) for p in parameters)
    return re.sub(r"\{\{\s*(\d+)\s*\}\}",
                  lambda m: str(parameters[int(m.group(1)) - 1])
                  if 0 < int(m.group(1)) <= len(parameters) else m.group(0), text)


def _describe(body, template_bodies=None):
    kind = f"template {body['template']['name']}" if body.get("type") == "template" else "text"
    text = readable(body, template_bodies or {}).replace("\n", " / ")
    return mask_text(f"{kind}: {text[:300]}")


def _masked(digits):
    try:
        return mask_phone("+" + digits)
    except ValueError:
        return "+" + digits[:4] + "***" if digits else "?"

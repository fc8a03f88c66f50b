"""Notify's rules as plain functions: identities, the status machine, error classes, backoff,
quiet hours and the transitions of a notification (no nameko, pymongo or HTTP here).

A notification is one document per (source event, rule, recipient). The transition functions
take the document and return a changed copy (plus the events to publish and the pending entry
to write), so the caller writes the whole change in one compare-and-set on ``version``.

Two levels of state:
- the notification's ``state``: ``created`` -> ``queued`` -> (``deferred``) -> ``sending`` ->
  ``sent`` -> ``delivered`` -> ``read``; or ``temporary_failure`` (a retry is scheduled),
  ``permanent_failure``, ``technical_failure``, ``cancelled``;
- each delivery's ``state`` (one delivery per channel tried): ``sending`` < ``sent`` <
  ``delivered`` < ``read``, or ``failed`` / ``temporary_failure`` / ``permanent_failure`` /
  ``technical_failure``. Provider statuses only move a delivery forward (``advance``).
"""

import hashlib
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pamong.privacy import mask_phone, normalize_phone

CHANNELS = ("whatsapp", "sms", "email", "inapp")
PRIORITIES = ("normal", "critical")
STATES = ("created", "queued", "deferred", "sending", "sent", "delivered", "read", "cancelled",
          "temporary_failure", "permanent_failure", "technical_failure")
FINAL = frozenset({"sent", "delivered", "read", "cancelled", "permanent_failure",
                   "technical_failure"})  # nothing left to send (sent may still move forward)
WAITING = frozenset({"created", "queued", "deferred", "temporary_failure"})  # may be sent
FAILED = ("permanent_failure", "technical_failure", "cancelled")
PENDING_REASONS = ("quiet_hours", "paced", "rate", "retry", "unknown_outcome")

# a delivery's progress as providers report it: only forward
RANK = {"sending": 1, "sent": 2, "delivered": 3, "read": 4}
PROVIDER_STATUSES = ("sent", "delivered", "read", "failed")

# the result classes of one provider call
OK, TEMPORARY, UNKNOWN, PERMANENT, TECHNICAL = "ok", "temporary", "unknown", "permanent", \
    "technical"

# WhatsApp Cloud API error codes
WA_RATE_LIMITED = {130429, 131048, 131056, 80007, 4, 80008}  # throughput / spam / app limits
WA_TEMPORARY = {131000, 131016, 1, 2}  # "something went wrong", service unavailable
WA_TECHNICAL = {0, 3, 10, 190, 200, 131005, 131031, 132000, 132001, 132005, 132007, 132012,
                132015, 132016, 133010}  # our token, permissions, template setup, account
NOT_WHATSAPP_USER, OUTSIDE_WINDOW = 131026, 131047

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WINDOW = timedelta(hours=24)  # WhatsApp free-form text after the citizen's last message


# -- identities ---------------------------------------------------------------------------

def notification_id(event_id, rule_id, recipient_key):
    """The notification of (event, rule, recipient): the same inputs always give the same id,
    so a redelivered event finds the document it created (no personal data in the id)."""
    raw = f"{event_id}\x1f{rule_id}\x1f{recipient_key}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def callback_data(notification_id, channel, attempt):
    """What a provider echoes back with its statuses: ``<id>:<channel>:<attempt n>``."""
    return f"{notification_id}:{channel}:{attempt}"


def parse_callback(data):
    """``(id, channel, n)`` of ``callback_data``'s text; None when it is not one of ours."""
    if not isinstance(data, str):
        return None
    parts = data.split(":")
    if len(parts) != 3 or parts[1] not in CHANNELS or not parts[2].isdigit():
        return None
    if not re.fullmatch(r"[0-9a-zA-Z_.-]{1,64}", parts[0]):
        return None
    return parts[0], parts[1], int(parts[2])


def normalize_address(channel, raw):
    """An address as notify keeps it: E.164 for WhatsApp and SMS, a lower-case address for
    email, the person (NIP or sub) for in-app. ValueError names what is wrong."""
    if channel in ("whatsapp", "sms"):
        return normalize_phone(raw)
    if channel == "email":
        value = str(raw or "").strip()
        if not EMAIL.fullmatch(value) or len(value) > 254:
            raise ValueError("not an email address")
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}"
    if channel == "inapp":
        value = str(raw or "").strip()
        if not value:
            raise ValueError("no person for the in-app inbox")
        return value
    raise ValueError(f"unknown channel {channel!r}")


def address_key(channel, address):
    """``_id`` of an address's document: ``whatsapp:+62812...``, ``email:a@b.id``."""
    return f"{channel}:{address}"


def address_of(notification, channel):
    """The recipient's address on ``channel`` (normalised), or None when it has none."""
    recipient = notification["recipient"]
    raw = {"whatsapp": recipient.get("phone"), "sms": recipient.get("phone"),
           "email": recipient.get("email"), "inapp": recipient.get("person")}.get(channel)
    if not raw:
        return None
    try:
        return normalize_address(channel, raw)
    except ValueError:
        return None


def mask_address(channel, address):
    """An address fit for logs and events: a phone's middle digits and an email's local part
    hidden; in-app has none (the person is said separately)."""
    if not address or channel == "inapp":
        return None
    if channel in ("whatsapp", "sms"):
        try:
            return mask_phone(address)
        except ValueError:
            return "***"
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


# -- a new notification -------------------------------------------------------------------

def new_notification(*, id, rule, priority, template, event, recipient, channels, content,
                     now):
    """The document of a new notification (state ``created``, version 1, no delivery yet).

    ``event``: ``{id, type, source, occurred_at, opd}`` of the cause; ``recipient``: ``{key,
    person, name, phone, email, timezone}``; ``content``: the rendered text per channel."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {PRIORITIES}")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise ValueError(f"channels must be some of {CHANNELS}, got {channels!r}")
    return {
        "_id": id, "version": 1, "rule": rule, "priority": priority, "template": template,
        "event": dict(event), "recipient": dict(recipient), "channels": list(channels),
        "content": content, "state": "created", "channel": channels[0], "reason": None,
        "deliveries": [], "round": 0, "due_at": None, "slot": None, "created_at": now,
        "updated_at": now, "purged_at": None,
    }


# -- the status machine -------------------------------------------------------------------

def advance(delivery_state, provider_status):
    """The delivery's state after a provider status, or None when the status changes
    nothing (a duplicate, an older status arriving late, anything after a failure).

    Forward only: sending < sent < delivered < read (``delivered`` may be skipped); ``failed``
    only before ``delivered``."""
    if provider_status == "failed":
        return "failed" if delivery_state in ("sending", "sent", "temporary_failure") else None
    new = RANK.get(provider_status)
    old = RANK.get(delivery_state)
    if new is None or old is None or new <= old:
        return None
    return provider_status


@dataclass(frozen=True)
class Result:
    """What one provider call came to: ``kind`` one of ok / temporary / unknown / permanent /
    technical, the provider's message id when accepted, and an error text otherwise."""

    kind: str
    provider_id: str | None = None
    error: str | None = None
    code: int | None = None
    latency_ms: float | None = None
    extra: dict = field(default_factory=dict)


def classify(*, status=None, code=None, failure=None):
    """The class of a provider call's outcome.

    ``status``: the HTTP status of the reply; ``code``: the provider's error code (WhatsApp's
    ``error.code``); ``failure``: a failure without a reply: ``refused`` (nothing went out),
    ``timeout`` / ``lost`` (the request went out, the answer did not come back), ``config``
    (our configuration), ``invalid`` (a bad address)."""
    if failure is not None:
        return {"refused": TEMPORARY, "timeout": UNKNOWN, "lost": UNKNOWN, "config": TECHNICAL,
                "invalid": PERMANENT}.get(failure, TEMPORARY)
    if status is not None and 200 <= status < 300 and code is None:
        return OK
    if code in WA_RATE_LIMITED or code in WA_TEMPORARY:
        return TEMPORARY
    if code in WA_TECHNICAL:
        return TECHNICAL
    if code is not None and status is not None and 400 <= status < 500:
        return PERMANENT
    if status == 429 or status in (408, 425) or (status is not None and status >= 500):
        return TEMPORARY
    if status in (401, 403):
        return TECHNICAL  # our credentials
    if status is not None and 400 <= status < 500:
        return PERMANENT
    return TEMPORARY


def backoff_seconds(attempt, delays, jitter, rand=random.random):
    """Seconds before the retry after failed attempt ``attempt`` (1 for the first): the
    schedule's step for that attempt (exponential by configuration), spread by +-``jitter``
    so a burst of failures does not come back at one instant. None after the last step."""
    if attempt < 1 or attempt > len(delays):
        return None
    base = float(delays[attempt - 1])
    return max(0.0, base * (1 + jitter * (2 * rand() - 1)))


# -- quiet hours --------------------------------------------------------------------------

def parse_quiet_hours(text):
    """``"21:00-06:00"`` -> ``(time(21), time(6))`` (seconds may be given: ``21:00:30``);
    None for an empty setting (no quiet hours). ValueError for anything else."""
    if text in (None, "", "none", "off"):
        return None
    clock_time = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
    match = re.fullmatch(rf"\s*{clock_time}\s*-\s*{clock_time}\s*", str(text))
    if not match:
        raise ValueError(f"quiet hours must look like 21:00-06:00, got {text!r}")
    h1, m1, s1, h2, m2, s2 = (int(g or 0) for g in match.groups())
    try:
        return time(h1, m1, s1), time(h2, m2, s2)
    except ValueError:
        raise ValueError(f"quiet hours must look like 21:00-06:00, got {text!r}") from None


def quiet_until(local_now, quiet_hours):
    """When the quiet hours around ``local_now`` (an aware local datetime) end, as a local
    datetime; None when ``local_now`` is outside them. ``quiet_hours``: ``(start, end)`` or
    its text; a window may wrap midnight (21:00-06:00)."""
    if isinstance(quiet_hours, str) or quiet_hours is None:
        quiet_hours = parse_quiet_hours(quiet_hours)
    if quiet_hours is None:
        return None
    start, end = quiet_hours
    if start == end:
        return None
    now_t = local_now.timetz().replace(tzinfo=None)
    day = local_now.date()

    def at(d, t):
        return datetime.combine(d, t, tzinfo=local_now.tzinfo)

    if start < end:  # same day, e.g. 12:00-13:00
        return at(day, end) if start <= now_t < end else None
    if now_t >= start:  # evening part: until tomorrow's end
        return at(day + timedelta(days=1), end)
    if now_t < end:  # morning part
        return at(day, end)
    return None


def quiet_until_utc(now, timezone, quiet_hours):
    """``quiet_until`` for a UTC ``now`` in the recipient's ``timezone``, in UTC."""
    zone = ZoneInfo(timezone)
    until = quiet_until(now.astimezone(zone), quiet_hours)
    return None if until is None else until.astimezone(UTC)


# -- preferences --------------------------------------------------------------------------

def person_opted_out(person_prefs, channel):
    """Whether the person's preferences (``people`` document) turn ``channel`` off."""
    channels = (person_prefs or {}).get("channels") or {}
    return bool((channels.get(channel) or {}).get("opted_out"))


def within_window(address_doc, now):
    """Whether free-form WhatsApp text may go to this address now (the citizen wrote to us
    within the last 24 hours)."""
    last = (address_doc or {}).get("last_inbound_at")
    return last is not None and _aware(last) > now - WINDOW


def kept_slot(doc, channel, now, pace_seconds):
    """The pacing slot the notification reserved on ``channel`` when it is still usable: its
    time has not passed by more than one pace (released late by a timer round). A slot
    left long behind (the service was down) is not used: the message takes a new one, so
    a backlog released at once still goes out one pace apart."""
    slot = doc.get("slot") or {}
    if slot.get("channel") != channel or slot.get("at") is None:
        return None
    if (now - _aware(slot["at"])).total_seconds() > pace_seconds:
        return None
    return slot


def _aware(at):
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# -- transitions (each returns a changed copy) ---------------------------------------------

def copy_of(doc):
    """A copy a transition may change: the document's own fields and its deliveries (with
    their attempts and statuses) are copied; what transitions never change (content,
    recipient, event) is shared."""
    copied = {k: v for k, v in doc.items() if k != "_outbox"}
    copied["deliveries"] = [
        {**d, "attempts": [dict(a) for a in d.get("attempts") or ()],
         "statuses": [dict(s) for s in d.get("statuses") or ()]}
        for d in doc.get("deliveries") or ()]
    if isinstance(doc.get("slot"), dict):
        copied["slot"] = dict(doc["slot"])
    return copied


def delivery_index(doc, channel):
    """Index of the delivery on ``channel`` in ``doc["deliveries"]``, or None."""
    for i, delivery in enumerate(doc.get("deliveries") or ()):
        if delivery["channel"] == channel:
            return i
    return None


def current_attempt(doc):
    """``(delivery, attempt)`` of the last attempt on the current channel, or (delivery|None,
    None)."""
    i = delivery_index(doc, doc.get("channel"))
    if i is None:
        return None, None
    delivery = doc["deliveries"][i]
    attempts = delivery.get("attempts") or []
    return delivery, (attempts[-1] if attempts else None)


def in_flight(doc):
    """The current attempt when the notification is being sent and no outcome is known."""
    if doc.get("state") != "sending":
        return None
    _, attempt = current_attempt(doc)
    return attempt if attempt is not None and attempt.get("outcome") is None else None


def next_channel(doc, channel):
    """The rule's channel after ``channel`` that was not tried yet, or None."""
    channels = doc["channels"]
    tried = {d["channel"] for d in doc.get("deliveries") or ()}
    after = channels[channels.index(channel) + 1:] if channel in channels else channels
    for candidate in after:
        if candidate not in tried:
            return candidate
    return None


def _delivery(doc, channel, address):
    i = delivery_index(doc, channel)
    if i is None:
        doc["deliveries"].append({"channel": channel, "address": address, "state": None,
                                  "provider_id": None, "reason": None, "attempts": [],
                                  "statuses": []})
        i = len(doc["deliveries"]) - 1
    return doc["deliveries"][i]


def start_attempt(doc, channel, address, now, lease_seconds):
    """The claim before a provider call: state ``sending`` and a new attempt ``{n, at,
    lease_until, outcome: None}`` on the channel's delivery (a crash leaves it so: whoever
    resumes after the lease knows the outcome is unknown). Returns (doc, n)."""
    doc = copy_of(doc)
    delivery = _delivery(doc, channel, address)
    n = len(delivery["attempts"]) + 1
    delivery["attempts"].append({"n": n, "at": now,
                                 "lease_until": now + timedelta(seconds=lease_seconds),
                                 "outcome": None, "error": None, "latency_ms": None})
    delivery["state"] = "sending"
    delivery["address"] = address
    doc.update(state="sending", channel=channel, reason=None, due_at=None, slot=None,
               updated_at=now)
    return doc, n


def defer(doc, reason, due_at, now, slot=None):
    """Waiting for a time: state ``deferred`` (quiet hours, pacing, rate, unknown outcome)
    or ``temporary_failure`` (a retry), ``due_at`` set."""
    doc = copy_of(doc)
    doc.update(state="temporary_failure" if reason == "retry" else "deferred", reason=reason,
               due_at=due_at, updated_at=now)
    if slot is not None:
        doc["slot"] = slot
    return doc


def skip_channel(doc, channel, address, state, reason, now):
    """``channel`` is not used (opted out, no address, outside the 24 h window): its delivery
    records why, and the notification moves to the next channel or ends."""
    doc = copy_of(doc)
    delivery = _delivery(doc, channel, address)
    delivery.update(state=state, reason=reason)
    return _fall_back(doc, channel, reason, now, final_state=None)


def _fall_back(doc, channel, reason, now, final_state):
    """After ``channel`` failed for good: the next channel (state ``queued``) or the end
    (``final_state``, or ``cancelled`` when no channel was tried at all / all were skipped,
    else ``permanent_failure``)."""
    following = next_channel(doc, channel)
    if following is not None:
        doc.update(state="queued", channel=following, reason=reason, due_at=None, slot=None,
                   updated_at=now)
        return doc
    if final_state is None:
        states = {d["state"] for d in doc["deliveries"]}
        if states & {"permanent_failure", "failed"}:
            final_state = "permanent_failure"
        elif "technical_failure" in states:
            final_state = "technical_failure"
        elif states <= {"skipped"}:  # nothing tried: opted out, no address
            final_state = "cancelled"
        else:
            final_state = "permanent_failure"
    doc.update(state=final_state, reason=reason, due_at=None, slot=None, updated_at=now)
    return doc


def cancel(doc, reason, now):
    doc = copy_of(doc)
    doc.update(state="cancelled", reason=reason, due_at=None, slot=None, updated_at=now)
    return doc


@dataclass
class Step:
    """What a transition asks of the caller besides writing ``doc``: publish ``events``
    (``[(type, extra data)]``), write the ``pending`` entry ``(due_at, reason)``, delete the
    pending entry, or keep delivering (the next channel) in this worker."""

    doc: dict
    events: list = field(default_factory=list)
    pending: tuple | None = None
    unpend: bool = False
    continue_now: bool = False


def record_result(doc, channel, n, result, now, *, delays, jitter, unknown_window,
                  rand=random.random):
    """Apply the outcome of attempt ``n`` on ``channel``. Never moves a delivery backwards:
    when a provider status already settled the attempt (it arrived before the reply), the
    result only fills in what is missing (the provider id, the latency)."""
    doc = copy_of(doc)
    i = delivery_index(doc, channel)
    delivery = doc["deliveries"][i]
    attempt = next((a for a in delivery["attempts"] if a["n"] == n), None)
    if attempt is None:
        return Step(doc)
    settled = attempt.get("outcome") not in (None, UNKNOWN) or \
        RANK.get(delivery["state"], 0) >= RANK["sent"] or delivery["state"] == "failed"
    attempt["latency_ms"] = result.latency_ms
    if result.provider_id and not delivery.get("provider_id"):
        delivery["provider_id"] = result.provider_id
    if settled:
        if attempt.get("outcome") in (None, UNKNOWN):
            attempt["outcome"] = result.kind
        doc["updated_at"] = now
        return Step(doc)
    attempt["outcome"] = result.kind
    attempt["error"] = result.error
    current = doc.get("channel") == channel
    if result.kind == OK:
        final = channel in ("email", "inapp")  # no status follows: delivered there
        delivery["state"] = "sent"
        events = [("notification.sent", {})]
        if current:
            doc.update(state="sent", reason=None, due_at=None, updated_at=now)
        if final:
            delivery["statuses"].append({"status": "sent", "at": now, "received_at": now,
                                         "error": None})
        return Step(doc, events, unpend=True)
    if result.kind == UNKNOWN:
        if _retries(delivery) > len(delays):
            delivery["state"] = "permanent_failure"
            delivery["reason"] = "retries_exhausted"
            return _failed(doc, channel, "retries_exhausted", now, unpend=True)
        delivery["state"] = "sending"
        due = now + timedelta(seconds=unknown_window)
        doc.update(state="deferred", reason="unknown_outcome", due_at=due, updated_at=now)
        return Step(doc, pending=(due, "unknown_outcome"))
    if result.kind == TEMPORARY:
        wait = backoff_seconds(_retries(delivery), delays, jitter, rand)
        if wait is not None:
            delivery["state"] = "temporary_failure"
            due = now + timedelta(seconds=wait)
            doc.update(state="temporary_failure", reason=result.error or "temporary",
                       due_at=due, updated_at=now)
            return Step(doc, pending=(due, "retry"))
        delivery["state"] = "permanent_failure"
        delivery["reason"] = "retries_exhausted"
        return _failed(doc, channel, "retries_exhausted", now, unpend=True)
    state = "technical_failure" if result.kind == TECHNICAL else "permanent_failure"
    delivery["state"] = state
    delivery["reason"] = result.error
    return _failed(doc, channel, result.error or state, now, unpend=True)


def _retries(delivery):
    """Attempts of a delivery that ended without an answer to act on (each earns a retry)."""
    return sum(1 for a in delivery["attempts"] if a.get("outcome") in (TEMPORARY, UNKNOWN))


def _failed(doc, channel, reason, now, unpend=False):
    doc = _fall_back(doc, channel, reason, now, final_state=None)
    if doc["state"] == "queued":
        return Step(doc, unpend=unpend, continue_now=True)
    return Step(doc, [("notification.failed", {})], unpend=unpend)


def record_status(doc, channel, n, provider_id, status, at, received_at, error=None):
    """Apply a provider status to the delivery on ``channel`` (attempt ``n``, from the
    callback data). Returns a ``Step`` or None when it changes nothing (a duplicate; an older
    status after a newer one is recorded in ``statuses`` but moves nothing).

    A status for an attempt whose reply never came (unknown outcome, or a status before the
    reply) settles that attempt: the message went out, nothing is sent again. ``failed``
    before ``delivered`` makes the channel fail: the next channel is requested (``continue``
    through a ``notification.requested``) or the notification fails."""
    i = delivery_index(doc, channel)
    if i is None or status not in PROVIDER_STATUSES:
        return None
    doc = copy_of(doc)
    delivery = doc["deliveries"][i]
    seen = {s["status"] for s in delivery.get("statuses") or ()}
    new_state = advance(delivery.get("state"), status)
    if new_state is None and status in seen:
        return None  # an exact duplicate
    delivery.setdefault("statuses", []).append(
        {"status": status, "at": at, "received_at": received_at, "error": error})
    doc["updated_at"] = received_at
    if new_state is None:
        return Step(doc)  # recorded, moves nothing (out of order)
    before = delivery["state"]
    delivery["state"] = new_state
    if provider_id and not delivery.get("provider_id"):
        delivery["provider_id"] = provider_id
    attempt = next((a for a in delivery.get("attempts") or () if a["n"] == n), None)
    was_waiting = doc.get("state") in ("deferred", "temporary_failure") and \
        doc.get("channel") == channel
    if attempt is not None and attempt.get("outcome") in (None, UNKNOWN):
        attempt["outcome"] = OK if new_state != "failed" else PERMANENT
        attempt["settled_by"] = "status"
    current = doc.get("channel") == channel
    if new_state == "failed":
        delivery["reason"] = error or "failed"
        if not current or doc.get("state") in ("cancelled", "permanent_failure",
                                               "technical_failure"):
            return Step(doc)
        step = _failed(doc, channel, error or "failed", received_at, unpend=True)
        return step
    events = []
    if RANK.get(before, 0) < RANK["sent"]:
        events.append(("notification.sent", {}))
    if new_state in ("delivered", "read") and RANK.get(before, 0) < RANK["delivered"]:
        events.append(("notification.delivered", {}))
    if current and doc.get("state") not in ("cancelled", "permanent_failure",
                                            "technical_failure"):
        if RANK.get(doc.get("state"), 0) < RANK[new_state]:
            doc.update(state=new_state, reason=None, due_at=None)
    return Step(doc, events, unpend=was_waiting)


def event_data(doc, channel, now, **extra):
    """Data of ``notification.sent`` / ``.delivered`` / ``.failed`` (no full address)."""
    address = None
    if channel is not None:
        i = delivery_index(doc, channel)
        address = doc["deliveries"][i].get("address") if i is not None else \
            address_of(doc, channel)
    data = {"id": doc["_id"], "rule": doc["rule"],
            "event_type": (doc.get("event") or {}).get("type"), "channel": channel,
            "person": (doc.get("recipient") or {}).get("person"),
            "address_masked": mask_address(channel, address), "at": now}
    data.update(extra)
    return data

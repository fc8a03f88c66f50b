"""Delivering a notification, one channel at a time in the rule's order (``Dispatcher``).

Every send runs inside an event handler, so a crash is followed by the broker delivering the
event again (these handlers have no inbox: a repeat runs at once, and a redelivered event
whose notification exists resumes it); every step below is safe to repeat, also by two
workers at once:

1. preferences (``people``, through the cache) and the address's opt-out (``addresses``): an
   opted-out channel is skipped unless the rule is ``critical``; none left: ``cancelled``;
2. quiet hours (the recipient's time zone): a non-critical WhatsApp or SMS message
   (``NOTIFY_QUIET_CHANNELS``) waits for the morning (``deferred``, a ``pending`` entry);
3. pacing (one slot per ``NOTIFY_PACE_<CHANNEL>_SECONDS`` per address, reserved with a
   compare-and-set on the address: the message keeps its slot, first come first served) and
   the channel's global rate (``NOTIFY_RATE_<CHANNEL>`` per second, counted in ``rates``):
   over either, the message waits for its time (``deferred``), never dropped;
4. the claim: state ``sending`` with a new attempt ``{n, at, lease_until}``, written before
   the provider call (a new notification is *inserted* already claimed: one write). Another
   worker meeting a claimed attempt leaves it alone until its lease ends; after that the
   outcome is unknown (step 5);
5. the provider call and its result in one compare-and-set with its events: ``ok`` ->
   ``sent`` (``notification.sent``); ``temporary`` -> a retry after ``NOTIFY_RETRY_DELAYS``
   (jittered), the last one failing for good; ``unknown`` (a timeout after the request went
   out) -> wait ``NOTIFY_UNKNOWN_WINDOW_SECONDS`` for a status webhook to settle it (no second
   send), then a new attempt; ``permanent`` / ``technical`` -> the next channel (fallback) in
   the same worker, none left -> ``notification.failed``.

A status that lands between the claim and the result (it can arrive before the reply) moves
the document on; the result is then merged without moving anything back
(``domain.record_result``).
"""

import logging

import pymongo.errors

from pamong.contracts import notify as contracts  # noqa: F401 - registers the contracts
from pamong.events.consumer import handles
from pamong.storage import GroupCount, GroupFind, GroupInsert, by_ids, db_now, grouped
from services.notify import domain, metrics, store
from services.notify.channels import Channels
from services.notify.settings import send_concurrency

log = logging.getLogger(__name__)

SEND_CONCURRENCY = send_concurrency()
MAX_STEPS = 24  # transitions one delivery run makes at most (channels x conflicts)
EARLY = 0.05  # seconds: a slot or due time this close counts as now
PROJECTION = tuple(store.WITHOUT_OUTBOX.items())  # hashable: grouped() keys on its arguments


class Dispatcher:
    """Mixed into the notify service: creates and delivers notifications."""

    channels = Channels()

    # -- what the others call ------------------------------------------------------------

    def create_and_deliver(self, docs):
        """Insert each new notification (built by ``domain.new_notification``) and deliver it
        in this worker; the documents after.

        The stored ones are read first (one read by ``_id``): a redelivered event (the rules'
        handlers have no inbox) resumes each where it stands, reserving no pacing slot again
        and never sending twice. A new one is inserted by its first write, which stays the
        arbiter when two deliveries of one event race: the loser re-reads and resumes."""
        existing = self._stored([doc["_id"] for doc in docs])
        return [self._drive(existing[doc["_id"]], existing[doc["_id"]])
                if doc["_id"] in existing else self._drive(None, doc) for doc in docs]

    def _stored(self, ids):
        """``{_id: document}`` of the notifications among ``ids`` that exist. One id (an
        event for one recipient, the usual case) shares its read with the concurrent
        workers' (``GroupFind``)."""
        if len(ids) == 1:
            found = grouped(GroupFind, self.db[store.NOTIFICATIONS], PROJECTION).insert(ids[0])
            return {} if found is None else {found["_id"]: found}
        return by_ids(self.db[store.NOTIFICATIONS], ids, store.WITHOUT_OUTBOX)

    def request_delivery(self, doc):
        """Insert a notification ready to send (state ``queued``) with a
        ``notification.requested`` in the outbox: a handler delivers it. A notification
        with that ``_id`` already (a repeated request) is returned as it stands."""
        doc = {**doc, "state": "queued", "round": doc.get("round", 0)}
        event = self.outbox.event("notification.requested", {"id": doc["_id"],
                                                             "round": doc["round"]})
        try:
            self.outbox.insert(store.NOTIFICATIONS, doc, [event])
        except pymongo.errors.DuplicateKeyError:
            return store.notification(self.db, doc["_id"])
        return {k: v for k, v in doc.items() if k != "_outbox"}

    def deliver(self, notification_id, round=None):  # noqa: A002 - the event's field
        """Deliver (or look again at) a stored notification; ``round``: the round of the
        request (a request of an older round changes nothing). Returns the document after,
        None when there is none."""
        doc = store.notification(self.db, notification_id)
        if doc is None:
            log.warning("notification %s to deliver does not exist", notification_id)
            return None
        if round is not None and doc.get("round", 0) != round:
            return doc  # a newer request exists (or this one is a stale duplicate)
        return self._drive(doc, doc)

    # No inbox (``inbox=False``): the effect is idempotent without it. A request names its
    # notification and round; one of another round changes nothing, and every write of the
    # delivery run is a compare-and-set on the notification's version (above all the claim
    # written before the provider call), so a second run of one request, at once or after a
    # crash, finds the attempt claimed (waits for its lease: unknown outcome, no blind
    # resend) or done, and sends nothing again. A request of one round under another event
    # id was never filtered by the inbox, and the tests send such twins (three at once; over
    # two processes): their run is the path a redelivered request now takes.
    @handles("notify", "notification.requested", concurrency=SEND_CONCURRENCY, inbox=False)
    def deliver_requested(self, event):
        self.deliver(event.data["id"], event.data["round"])

    # -- the delivery run ----------------------------------------------------------------

    def _drive(self, stored, doc):
        """Move ``doc`` on until it is sent, waits, or ends; the document after. ``stored``:
        the document as the database holds it (None: not inserted yet, the first write
        inserts it). Transitions that need no write of their own (a skipped channel) are
        carried to the next write."""
        settings = self.channels.settings
        for _ in range(MAX_STEPS):
            now = db_now()
            state = doc["state"]
            if state in domain.FINAL:
                if stored is not None and not store.changes(stored, doc):
                    return doc
                events = [("notification.failed", {})] if state in domain.FAILED else []
                written = self._commit(stored, doc, self._events(doc, events, now))
                if written is None:
                    stored = doc = store.notification(self.db, doc["_id"])
                    if doc is None:
                        return None
                    continue
                self._count(written[1])
                return written[1]
            if state == "sending":
                attempt = domain.in_flight(doc)
                if attempt is None:
                    return doc
                if _aware(attempt["lease_until"]) > now:
                    # another worker is sending it (a duplicate of its event runs at once:
                    # no inbox): look again when its claim runs out
                    store.watch_claim(self.db, doc["_id"], attempt["lease_until"],
                                      doc.get("round", 0), now)
                    return doc
                step = domain.record_result(
                    doc, doc["channel"], attempt["n"],
                    domain.Result(domain.UNKNOWN, error="no outcome recorded (stopped)"),
                    now, delays=settings.delays, jitter=settings.jitter,
                    unknown_window=settings.unknown_window)
                written = self._apply(stored, doc, step, now)
                if written is None:
                    return None
                stored, doc = written
                continue
            if state in ("deferred", "temporary_failure") and doc.get("due_at") is not None \
                    and (_aware(doc["due_at"]) - now).total_seconds() > EARLY:
                return doc  # its pending entry brings it back
            stored, doc, more = self._attempt(stored, doc, now, settings)
            if not more:
                return doc
        log.error("notification %s: no progress after %d steps (state %s)", doc["_id"],
                  MAX_STEPS, doc["state"])
        return doc

    def _attempt(self, stored, doc, now, settings):
        """One channel's gates, claim, call and result: ``(stored, doc, go on)``."""
        channel = doc["channel"]
        critical = doc.get("priority") == "critical"
        address = domain.address_of(doc, channel)
        if address is None:
            metrics.FAILURES.labels(channel, "no_address").inc()
            return stored, domain.skip_channel(doc, channel, None, "skipped", "no_address",
                                               now), True
        person = (doc.get("recipient") or {}).get("person")
        if not critical and domain.person_opted_out(
                store.person_prefs(self.db, self.cache, person), channel):
            return self._skip(stored, doc, channel, address, "skipped", "opted_out", now)
        if not critical and channel in settings.quiet_channels:
            until = domain.quiet_until_utc(now, _timezone(doc, settings), settings.quiet_hours)
            if until is not None:
                return self._wait(stored, doc, "quiet_hours", until, now)
        if channel != "inapp":
            key = domain.address_key(channel, address)
            pace = settings.paces.get(channel, 0)
            slot = domain.kept_slot(doc, channel, now, pace)
            content = (doc.get("content") or {}).get("whatsapp") or {}
            free_text = channel == "whatsapp" and content.get("text") is not None \
                and not content.get("template")  # needs the address's 24 h window
            if slot is None and pace > 0:
                slot_at, address_doc = store.reserve_slot(self.db, key, now, pace)
                slot = {"channel": channel, "at": slot_at}
            else:
                address_doc = grouped(GroupFind, self.db[store.ADDRESSES]).insert(key)
            if not critical and (address_doc or {}).get("opted_out"):
                return self._skip(stored, doc, channel, address, "skipped", "opted_out", now)
            if free_text and not domain.within_window(address_doc, now):
                return self._skip(stored, doc, channel, address, "permanent_failure",
                                  "outside_24h_window", now)
            if slot is not None and (_aware(slot["at"]) - now).total_seconds() > EARLY:
                return self._wait(stored, doc, "paced", slot["at"], now, slot=slot)
            later = store.take_rate(self.db, channel, now, settings.rates.get(channel, 0),
                                    grouped(GroupCount, self.db[store.RATES]))
            if later is not None:
                return self._wait(stored, doc, "rate", later, now, slot=slot)
        claimed, n = domain.start_attempt(doc, channel, address, now, settings.lease_seconds)
        if channel == "inapp":  # the inbox write is exactly-once by itself: no claim write
            result = self.channels["inapp"].send_to(self.db, claimed, address, now)
            return self._result(stored, claimed, channel, n, result, settings)
        written = self._commit(stored, claimed, [])
        if written is None:  # somebody else moved it: look again
            return self._reread(doc)
        stored, claimed = written
        callback = domain.callback_data(doc["_id"], channel, n)
        result = self.channels[channel].send(claimed, address, callback)
        return self._result(stored, claimed, channel, n, result, settings)

    def _skip(self, stored, doc, channel, address, state, reason, now):
        metrics.FAILURES.labels(channel, reason).inc()
        return stored, domain.skip_channel(doc, channel, address, state, reason, now), True

    def _result(self, stored, doc, channel, n, result, settings):
        metrics.PROVIDER_LATENCY.labels(channel, result.kind).observe(
            (result.latency_ms or 0) / 1000)
        if result.kind != domain.OK:
            metrics.FAILURES.labels(channel, result.error or result.kind).inc()
            log.info("notification %s: %s attempt %d %s (%s)", doc["_id"], channel, n,
                     result.kind, result.error)
        for _ in range(MAX_STEPS):
            now = db_now()
            step = domain.record_result(doc, channel, n, result, now, delays=settings.delays,
                                        jitter=settings.jitter,
                                        unknown_window=settings.unknown_window)
            written = self._apply(stored, doc, step, now, quiet=True)
            if written is not None:
                return (*written, step.continue_now)
            stored = doc = store.notification(self.db, doc["_id"])
            if doc is None:
                return None, None, False
        raise RuntimeError(f"notification {doc['_id']}: the result could not be written")

    # -- writing -------------------------------------------------------------------------

    def _wait(self, stored, doc, reason, due_at, now, slot=None):
        """Defer until ``due_at``: the pending entry first, then the notification."""
        after = domain.defer(doc, reason, due_at, now, slot=slot)
        store.put_pending(self.db, doc["_id"], due_at, reason, doc.get("round", 0), now)
        written = self._commit(stored, after, [])
        if written is None:
            return self._reread(doc)
        metrics.MESSAGES.labels(doc["channel"], "deferred").inc()
        return (*written, False)

    def _apply(self, stored, doc, step, now, quiet=False):
        """Write a transition's ``step`` (its pending entry first). Returns the next
        ``(stored, doc)``; on a conflict the re-read document (or None when ``quiet``)."""
        if step.pending is not None:
            due, reason = step.pending
            store.put_pending(self.db, doc["_id"], due, reason, doc.get("round", 0), now)
        written = self._commit(stored, step.doc, self._events(step.doc, step.events, now))
        if written is None:
            if quiet:
                return None
            fresh = store.notification(self.db, doc["_id"])
            return None if fresh is None else (fresh, fresh)
        self._count(step.doc)
        return written

    def _commit(self, stored, after, events):
        """Insert (``stored`` None) or compare-and-set ``after``; ``(stored, doc)`` after the
        write, None when another worker got there first."""
        if stored is None:
            document = {**after, "version": 1}
            if events:
                try:
                    self.outbox.insert(store.NOTIFICATIONS, document, events)
                except pymongo.errors.DuplicateKeyError:
                    return None
            elif not grouped(GroupInsert, self.db[store.NOTIFICATIONS]).insert(document):
                return None
            document.pop("_outbox", None)
            return document, dict(document)
        if not store.write_transition(self.db, self.outbox, stored, after, events):
            return None
        return after, dict(after)

    def _reread(self, doc):
        """``(stored, doc, go on)`` from the database after a lost compare-and-set."""
        fresh = store.notification(self.db, doc["_id"])
        return (None, doc, False) if fresh is None else (fresh, fresh, True)

    def _events(self, doc, events, now):
        built = []
        for event_type, extra in events:
            data = domain.event_data(doc, doc.get("channel"), now, **extra)
            if event_type == "notification.failed":
                data.update(state=doc["state"], reason=doc.get("reason"))
            built.append(self.outbox.event(event_type, data,
                                           opd=(doc.get("event") or {}).get("opd")))
        return built

    def _count(self, doc):
        if doc["state"] in ("sent", "permanent_failure", "technical_failure", "cancelled",
                            "temporary_failure"):
            metrics.MESSAGES.labels(doc.get("channel") or "none", doc["state"]).inc()


def _timezone(doc, settings):
    return (doc.get("recipient") or {}).get("timezone") or settings.timezone


def _aware(at):
    return domain._aware(at)

"""Provider statuses (WhatsApp status webhooks, SMS delivery reports) applied to their
notification, forward only.

A status names its notification, channel and attempt through the callback data every send
carries (``<id>:<channel>:<attempt>``), so it is one read and at most one write by ``_id``,
also when the send's reply never came. Per delivery, sending < sent < delivered < read
(``delivered`` may be skipped); ``failed`` counts only before ``delivered``. A duplicate
changes nothing (no write); an older status arriving late is recorded in the delivery's
``statuses`` and moves nothing. A status that arrives before the send call returned is
applied at once (the send's result then only fills in the provider id and latency).
A status for an attempt whose outcome was unknown (a provider timeout) settles it: no second
send. ``failed`` moves the notification to the rule's next channel (requested through a
``notification.requested`` with the round bumped, written with the status) or fails it.
"""

import logging

from pamong.storage import db_now
from services.notify import domain, metrics, store

log = logging.getLogger(__name__)

CAS_TRIES = 20


def apply_provider_status(db, outbox, callback_data, provider_id, status, at, error=None):
    """Apply one provider status; the notification after, or None when the status is not
    ours, names no known notification, or changes nothing (duplicate)."""
    parsed = domain.parse_callback(callback_data)
    if parsed is None:
        log.info("status %s without our callback data ignored", status)
        return None
    notification_id, channel, n = parsed
    for _ in range(CAS_TRIES):
        doc = store.notification(db, notification_id)
        if doc is None:
            log.info("status %s for unknown notification %s ignored", status, notification_id)
            return None
        now = db_now()
        step = domain.record_status(doc, channel, n, provider_id, status, at or now, now,
                                    error)
        if step is None:
            return None
        after = step.doc
        events = []
        if step.continue_now:
            # the channel failed after the send: the next channel is tried by a handler
            after["round"] = doc.get("round", 0) + 1
            events.append(outbox.event("notification.requested",
                                       {"id": notification_id, "round": after["round"]}))
        for event_type, extra in step.events:
            data = domain.event_data(after, channel, now, **extra)
            if event_type == "notification.failed":
                data.update(state=after["state"], reason=after.get("reason"))
            events.append(outbox.event(event_type, data,
                                       opd=(after.get("event") or {}).get("opd")))
        update = {"$set": store.changes(doc, after), "$inc": {"version": 1}}
        if step.continue_now:
            update["$set"]["round"] = after["round"]
        result = outbox.update(store.NOTIFICATIONS,
                               {"_id": notification_id, "version": doc["version"]}, update,
                               events)
        if not result.matched_count:
            continue  # a send result or another status landed first: read again
        after["version"] = doc["version"] + 1
        if step.unpend:
            store.drop_pending(db, notification_id)
        new_state = after["deliveries"][domain.delivery_index(after, channel)]["state"]
        metrics.MESSAGES.labels(channel, new_state).inc()
        return after
    raise RuntimeError(f"status for notification {notification_id} could not be written "
                       "(contended)")

"""The pending timer (notifications whose time has come are requested again) and the
retention purge.

**Pending** (``NOTIFY_PENDING_INTERVAL_SECONDS``, default 1; 0 turns it off): a round reads
the ``pending`` entries due by now (oldest first, at most ``NOTIFY_PENDING_BATCH``) and their
notifications by ``_id``. For each one still waiting, one compare-and-set on the
notification's ``version`` bumps its ``round`` with a ``notification.requested`` ``{id,
round}`` in the outbox (a handler delivers it); then the entry is deleted if it was not
rewritten meanwhile. Two replicas' rounds: the compare-and-set lets one win; the loser's
request never exists. A notification that no longer waits (sent, failed, cancelled) just
loses its entry. A crash between the bump and the delete leaves the entry: the next round
finds the notification moved on (the request is handled) or requests it once more, which
the round check makes harmless. The round also refreshes the gauges (pending depth, oldest
wait) at most every ``NOTIFY_GAUGE_SECONDS`` (10) and deletes the rate counters of past
seconds by ``_id``.

**Retention** (``NOTIFY_PURGE_INTERVAL_SECONDS``, default 3600): the content of notifications
created more than ``NOTIFY_RETENTION_DAYS`` (30) ago is removed (``content: null``,
``purged_at``); the delivery metadata (states, attempts, statuses, masked addresses in
events) is kept for audit. Inbound WhatsApp texts older than that lose their text too.
"""

import logging
import time as clock
from datetime import timedelta

from pamong.storage import by_ids, db_now
from pamong.timers import setting_timer
from services.notify import domain, metrics, store

log = logging.getLogger(__name__)

WAITING = ("created", "queued", "deferred", "temporary_failure", "sending")
RATE_KEEP_SECONDS = 5  # rate counters of the last seconds are kept (a late sender counts)


class PendingTimers:
    """Mixed into the notify service (with ``Dispatcher``)."""

    _gauges_at = 0.0
    _rates_from = None

    @setting_timer("NOTIFY_PENDING_INTERVAL_SECONDS", 1)
    def pending_timer(self, now=None):
        """Request the notifications due by ``now`` (default: the database's now); how many
        were requested."""
        now = now or db_now()
        settings = self.channels.settings
        entries = store.due_pending(self.db, now, settings.pending_batch)
        requested = 0
        if entries:
            docs = by_ids(self.db[store.NOTIFICATIONS], [e["_id"] for e in entries],
                          store.WITHOUT_OUTBOX)
            for entry in entries:
                try:
                    requested += self._release(entry, docs.get(entry["_id"]))
                except Exception:  # noqa: BLE001 - one entry must not hold up the others
                    log.exception("pending notification %s could not be requested; the next "
                                  "round tries again", entry["_id"])
        self._upkeep(now)
        return requested

    def _release(self, entry, doc):
        if doc is None or doc["state"] not in WAITING:
            self.db[store.PENDING].delete_one({"_id": entry["_id"], "due_at": entry["due_at"]})
            return 0
        round_ = doc.get("round", 0) + 1
        event = self.outbox.event("notification.requested", {"id": doc["_id"],
                                                             "round": round_})
        result = self.outbox.update(
            store.NOTIFICATIONS, {"_id": doc["_id"], "version": doc["version"]},
            {"$set": {"round": round_}, "$inc": {"version": 1}}, [event])
        if not result.matched_count:
            return 0  # it moved meanwhile: the next round reads it again
        self.db[store.PENDING].delete_one({"_id": entry["_id"], "due_at": entry["due_at"]})
        return 1

    def _upkeep(self, now):
        """Gauges every ``NOTIFY_GAUGE_SECONDS``; rate counters of past seconds deleted."""
        second = int(now.timestamp())
        start = self._rates_from if self._rates_from is not None else second - 120
        end = second - RATE_KEEP_SECONDS
        if end > start:
            store.drop_rates(self.db, ("whatsapp", "sms", "email"), max(start, end - 3600),
                             end)
            type(self)._rates_from = end
        every = float(self.config.get("NOTIFY_GAUGE_SECONDS", 10))
        if clock.monotonic() - PendingTimers._gauges_at < every:
            return
        PendingTimers._gauges_at = clock.monotonic()
        self.refresh_gauges(now)

    def refresh_gauges(self, now=None):
        """Pending depth, overdue count and the oldest wait (a scan of the backlog)."""
        now = now or db_now()
        depth = overdue = 0
        oldest = None
        for entry in self.db[store.PENDING].find({}, {"since": 1, "due_at": 1}):
            depth += 1
            if entry.get("due_at") is not None and domain._aware(entry["due_at"]) <= now:
                overdue += 1
            since = entry.get("since")
            if since is not None and (oldest is None or since < oldest):
                oldest = since
        metrics.PENDING_DEPTH.set(depth)
        metrics.PENDING_OVERDUE.set(overdue)
        metrics.PENDING_OLDEST.set(
            0 if oldest is None else max(0.0, (now - domain._aware(oldest)).total_seconds()))
        return {"depth": depth, "overdue": overdue}

    @setting_timer("NOTIFY_PURGE_INTERVAL_SECONDS", 3600)
    def purge_timer(self, now=None):
        """Remove the bodies of notifications older than the retention; how many."""
        now = now or db_now()
        cutoff = now - timedelta(days=self.channels.settings.retention_days)
        result = self.db[store.NOTIFICATIONS].update_many(
            {"created_at": {"$lt": cutoff}, "purged_at": None},
            {"$set": {"content": None, "purged_at": now}})
        self.db[store.INBOUND].update_many(
            {"received_at": {"$lt": cutoff}, "text": {"$ne": None}},
            {"$set": {"text": None, "purged_at": now}})
        if result.modified_count:
            metrics.PURGED.inc(result.modified_count)
            log.info("purged the content of %d notification(s) created before %s",
                     result.modified_count, cutoff.date())
        return result.modified_count

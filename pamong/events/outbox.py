"""The transactional outbox (DESIGN §4): state and its events in one document write.

Writing: ``outbox.insert(...)`` / ``outbox.update(...)`` put the new events into the
document's ``_outbox`` array in the same single-document write that changes its state, then
hand them to this process's relay.

Every envelope is validated whole when it is written (``check_event``), so the relay only
meets one it cannot publish when it was written around this module; it moves such an event to
``_outbox_quarantine`` (logged, counted) instead of failing every round.

Relaying: the relay publishes with publisher confirms and ``mandatory=True``; what the broker
returns (no queue bound) is parked in ``<service>.unroutable`` (``pamong dlq list`` shows it,
``pamong dlq replay`` sends it again); then it pulls exactly the published events out of their
documents (``$pullAll``, one ``update_many`` per 100 documents: ``_id $in``, which FerretDB is
patched to look up by key). A crash anywhere repeats a publish, never loses one:
- a state write that fails may have been applied (a timeout or a dropped connection after
  the server applied it: FerretDB has no retryable writes; a worker killed while waiting):
  the writer tells the relay, which reads the document back (by ``_id``) until it can and
  queues what its outbox holds;
- crash after the state write, before publishing: the events are still in the document. A
  writer first holds a lease in ``_outbox_writers`` naming the collections it writes events
  to (renewed by its relay, which names them all each time; deleted only by a clean stop
  that left nothing pending or in doubt, never by a kill). When a lease runs
  out, one replica's sweep claims it and publishes what those collections hold. So the
  periodic sweep reads only the leases and the batches (its cost follows what is pending, not
  the data); a collection is scanned only after a writer died. A marker per write would spare
  even that scan, but it costs one more round trip per event on the hot path;
- crash after publishing, before the pull: they are published again, and consumers are
  idempotent by event id. The relay defers its pulls while writes keep coming (until it has
  been idle ``OUTBOX_PULL_IDLE_SECONDS``, at most ``OUTBOX_PULL_DEFER_SECONDS`` or
  ``PULL_DEFER_DOCUMENTS`` documents): a pull rewrites the whole document, so pulling during
  a burst (a signing or check-in peak) doubled the writes of the busiest collection. A crash
  republishes what was published but not yet pulled, which consumers deduplicate;
- a writer adding events while the relay works: ``$pullAll`` removes only what was published,
  and the writer has queued its own events for the next round;
- two replicas: each relays its own writes; one that takes a live but paused writer for dead
  publishes its events too, which consumers deduplicate.
A clean stop publishes what is left (for at most ``STOP_SECONDS``) before it returns.
The sweep moves what it cannot read (a batch that does not unpack, an outbox entry without
an event id) to ``_outbox_quarantine``, as the relay does with an event it cannot publish,
so one bad item never holds up the others.
Documents with pending events must not be deleted (mark them deleted instead) until the relay
has emptied their outbox, or those events are lost.

Bulk inserts (``outbox.insert_many``, an import of thousands of records) keep their events in
one *batch document* (``_outbox_batches``) instead of one outbox per document, so the relay
publishes and deletes one document per batch instead of pulling from each record:
1. the batch is inserted with each event's owner ``_id`` (events and owners packed in one
   BSON binary, ``batch_document``);
2. the documents are inserted in one ``insert_many``, each stamped ``_batch: <batch id>``;
3. a small marker ``{_id: batch}`` is inserted into ``_outbox_ready`` (a batch whose documents
   partly existed already first loses those events), and the batch is relayed like any
   outbox, then both are deleted. The marker spares rewriting a batch of hundreds of events
   just to flag it.
A crash before 3 leaves a batch without marker: once it is older than
``OUTBOX_BATCH_LEASE_SECONDS`` the sweep claims it (inserts the marker flagged ``settling``),
then keeps the events of the owners this batch wrote (their document carries its stamp) and
drops the others (never written, or written later by someone else with events of their own),
so no event is lost and none goes out twice under two ids. Claiming first matters: a writer
that was only slow either released the batch before the claim (the sweep leaves it alone) or
finds the marker taken and queues its events again in a new batch (the same event ids, which
consumers deduplicate). A sweep that dies while settling leaves the flag: the next one settles
again.
"""

import json
import logging
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import bson
import eventlet
import pymongo
from amqp import Message, spec
from amqp.method_framing import frame_writer
from kombu import Connection
from nameko.extensions import DependencyProvider

from pamong import metrics
from pamong.events import contracts
from pamong.events.envelope import check_event, new_event
from pamong.events.topology import (
    CONFIRM_TIMEOUT,
    QueueOptions,
    event_exchange,
    unroutable_queue,
)
from pamong.storage import GroupInsert, by_ids, grouped

log = logging.getLogger(__name__)

OUTBOX = "_outbox"
BATCH = 500
PULL_CHUNK = 100  # documents per update_many that empties published outboxes
PULL_DEFER_DOCUMENTS = 5000  # published documents awaiting their pull, at most
BATCHES = "_outbox_batches"
READY = "_outbox_ready"
WRITERS = "_outbox_writers"
QUARANTINE = "_outbox_quarantine"
STOP_SECONDS = 5.0  # a clean stop starts publish rounds for this long (each waits its confirms)


def _tracked(entry):
    """Whether an outbox entry can be queued (the relay keys what it holds by event id)."""
    return isinstance(entry, dict) and isinstance(entry.get("id"), str)


def with_events(update, events):
    """Add ``events`` to a MongoDB update document (same write, so atomic with the state)."""
    update = {op: dict(fields) for op, fields in update.items()}
    push = update.setdefault("$push", {})
    if OUTBOX in push:
        raise ValueError("the update already pushes to the outbox")
    push[OUTBOX] = {"$each": list(events)}
    return update


def batch_document(batch_id, collection, owners, events):
    """A batch's events and their owners' ``_id``s, packed as one BSON binary: the database
    stores and returns it as a single value instead of converting hundreds of nested
    documents (with FerretDB, an eighth of the time)."""
    packed = bson.encode({"owners": owners, "events": events})
    return {"_id": batch_id, "collection": collection, "packed": bson.Binary(packed),
            "at": datetime.now(UTC)}


def unpack(batch):
    """``{"owners": [...], "events": [...]}`` of a batch document (also of one written
    unpacked, as releases before 2026-11-28 did, so an upgrade relays what they left)."""
    if "packed" not in batch:
        return {"owners": batch["owners"], "events": batch[OUTBOX]}
    return bson.decode(batch["packed"])


class OutboxWriter:
    """What a service method gets from ``Outbox``: build events and write them with state."""

    def __init__(self, db, source, relay, correlation_id=None, actor=None):
        self.db = db
        self.source = source
        self.relay = relay
        self.correlation_id = correlation_id
        self.actor = actor

    def event(self, event_type, data, *, version=1, opd=None):
        """An envelope whose ``data`` is validated and dumped by the registered contract."""
        return new_event(
            self.source, event_type, contracts.dump_data(event_type, version, data),
            version=version, opd=opd, correlation_id=self.correlation_id, actor=self.actor,
        )

    def _check(self, events, collection=None):
        """Refuse what the relay could not publish (the envelope, not only its data), and
        hold the writer lease that covers ``collection`` should this process die."""
        for envelope in events:
            check_event(envelope, self.source)
            contracts.load_data(envelope["type"], envelope["version"], envelope["data"])
        if events and collection is not None:
            self.relay.guard(collection)

    def _write(self, collection, doc_id, write):
        """``write()``, the state write of events. A refusal (duplicate key, write error)
        wrote nothing; any other failure may come after the server applied it (a timeout, a
        dropped connection: FerretDB has no retryable writes; the worker killed while it
        waited), so the relay reads the document back and queues what it holds."""
        try:
            return write()
        except pymongo.errors.WriteError:
            raise
        except BaseException:
            self.relay.doubt(collection, doc_id)
            raise

    def insert(self, collection, document, events):
        self._check(events, collection)
        document = dict(document)
        document[OUTBOX] = list(events)
        if not events:
            return self.db[collection].insert_one(document)
        document.setdefault("_id", bson.ObjectId())  # known even if the insert fails
        result = self._write(collection, document["_id"],
                             lambda: self.db[collection].insert_one(document))
        self.relay.enqueue(collection, result.inserted_id, events)
        return result

    def insert_grouped(self, collection, document, events):
        """``insert`` on a path many workers of the process take at once (a check-in at the
        morning peak): the inserts of concurrent workers share one ``insert_many`` (group
        commit, ``pamong.storage.GroupInsert``), each document with its own outbox as
        ``insert`` writes it. True when written; False when a document with its ``_id``
        exists (nothing written, its events dropped)."""
        self._check(events, collection)
        return grouped(GroupOutboxInsert, self.db[collection], self.relay).insert(
            {**document, OUTBOX: list(events)})

    def insert_many(self, collection, documents):
        """``documents``: [(document with its ``_id``, events)]: new documents in one request,
        their events in one batch document (see the module docstring).

        Returns the ``_id``s that already existed (not written, their events dropped); other
        errors raise, leaving the batch unready for the sweep to settle.
        """
        self._check([envelope for _, events in documents for envelope in events])
        batch_id = uuid.uuid4().hex
        docs = [{**document, "_batch": batch_id} for document, _ in documents]
        owners = [document["_id"] for document, events in documents for _ in events]
        events = [envelope for _, events in documents for envelope in events]
        if events:
            self.db[BATCHES].insert_one(batch_document(batch_id, collection, owners, events))
        duplicates = set()
        try:
            self.db[collection].insert_many(docs, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise
            duplicates = {docs[error["index"]]["_id"] for error in errors}
        if events:
            self._release(batch_id, collection, owners, events, duplicates)
        return sorted(duplicates)

    def _release(self, batch_id, collection, owners, events, duplicates):
        """Mark the batch ready, without the events of ``duplicates`` (documents that
        existed already, so not written by us)."""
        pairs = [(owner, e) for owner, e in zip(owners, events, strict=True)
                 if owner not in duplicates]
        owners, events = [owner for owner, _ in pairs], [e for _, e in pairs]
        if not events:
            self.db[BATCHES].delete_one({"_id": batch_id})
            return
        if duplicates:
            self.db[BATCHES].replace_one({"_id": batch_id}, batch_document(
                batch_id, collection, owners, events))
        try:
            self.db[READY].insert_one({"_id": batch_id})
        except pymongo.errors.DuplicateKeyError:
            # the sweep took us for dead and settled the batch: queue our events once more
            # (same ids: consumers deduplicate) so none is lost whatever it kept
            batch_id = uuid.uuid4().hex
            self.db[BATCHES].insert_one(batch_document(batch_id, collection, owners, events))
            self.db[READY].insert_one({"_id": batch_id})
        self.relay.enqueue(BATCHES, batch_id, events)

    def update(self, collection, filter, update, events, upsert=False):
        """``update_one`` plus events; ``filter`` must name the document's ``_id`` value (the
        relay is told, and reads back after a failed write, that one document)."""
        doc_id = _plain_id(filter)
        if not events:
            return self.db[collection].update_one(filter, update, upsert=upsert)
        self._check(events, collection)
        result = self._write(collection, doc_id, lambda: self.db[collection].update_one(
            filter, with_events(update, events), upsert=upsert))
        if result.matched_count or result.upserted_id is not None:
            self.relay.enqueue(collection, doc_id, events)
        return result


    def update_grouped(self, collection, filter, update, events):
        """``update`` on a path many workers of the process take at once (a signing peak):
        the writes of concurrent workers share one multi-statement ``update`` request (group
        commit, ``GroupOutboxUpdate``), each a single-document write of its own. True when
        it matched, False when not (a compare-and-set that lost); a ``WriteError`` raises in
        its caller only. ``events`` must not be empty: they tell which statements matched."""
        _plain_id(filter)
        if not events:
            raise ValueError("update_grouped needs events: they identify the writes that "
                             "matched")
        self._check(events, collection)
        return grouped(GroupOutboxUpdate, self.db[collection], self.relay).insert(
            (filter, with_events(update, events), events))


def _plain_id(filter):
    doc_id = filter.get("_id")
    if "_id" not in filter or (isinstance(doc_id, dict)
                               and any(str(key).startswith("$") for key in doc_id)):
        raise ValueError("outbox updates address one document by _id, a plain value "
                         f"(not an operator such as $in), got _id={doc_id!r}")
    return doc_id


class GroupOutboxInsert(GroupInsert):
    """The group commit behind ``OutboxWriter.insert_grouped``: the written documents' events
    go to the relay; after a failure that may have been applied (see ``OutboxWriter._write``)
    the relay reads every document of the batch back."""

    def __init__(self, collection, relay):
        super().__init__(collection)
        self.relay = relay

    def _write(self, documents):
        name = self.collection.name
        try:
            written = super()._write(documents)
        except BaseException:
            for document in documents:
                self.relay.doubt(name, document["_id"])
            raise
        for document, outcome in zip(documents, written, strict=True):
            if outcome is True:
                self.relay.enqueue(name, document["_id"], document[OUTBOX])
        return written


class GroupOutboxUpdate(GroupOutboxInsert):
    """The group commit behind ``OutboxWriter.update_grouped``: one ``update`` command with
    the batch's statements (unordered: each stands alone). FerretDB's reply counts
    the matches but does not say which statements they were, so when fewer matched than were
    sent the documents are read back (one ``_id $in``): a statement matched when its first
    event is in its document's outbox (the relay has not been told of it yet, so it is
    still there). A statement the database refused raises in its caller only. A failure that
    may have been applied puts every document in doubt."""

    def _write(self, items):
        name = self.collection.name
        try:
            # the command itself, not bulk_write: pymongo's merging of a reply with write
            # errors expects counts that FerretDB leaves out
            reply = self.collection.database.command(bson.SON([
                ("update", name), ("ordered", False),
                ("updates", [{"q": where, "u": update} for where, update, _ in items])]))
            refused = bool(reply.get("writeErrors"))
            outcomes = [True] * len(items)
            if refused or reply.get("n", 0) < len(items):
                found = by_ids(self.collection, {where["_id"] for where, _, _ in items},
                               {OUTBOX: 1})
                for i, (where, update, events) in enumerate(items):
                    held = (found.get(where["_id"]) or {}).get(OUTBOX) or ()
                    if not any(e.get("id") == events[0]["id"] for e in held):
                        # FerretDB ends even an unordered update at its first error, and
                        # names the wrong statement: after an error, what did not land runs
                        # again alone (its own answer is exact)
                        outcomes[i] = self._alone(where, update) if refused else False
        except BaseException:
            for where, _, _ in items:
                self.relay.doubt(name, where["_id"])
            raise
        for (where, _, events), outcome in zip(items, outcomes, strict=True):
            if outcome is True:
                self.relay.enqueue(name, where["_id"], events)
        return outcomes

    def _alone(self, where, update):
        try:
            return bool(self.collection.update_one(where, update).matched_count)
        except pymongo.errors.WriteError as error:
            return error


_JSON = json.JSONEncoder(separators=(",", ":"))


class _Cork:
    """The publisher connection's frame writer: inside ``with cork:`` the frames of
    ``basic.publish`` gather and go out in one send when the block ends (one system call per
    publish round instead of one per event). Any other frame (a channel reopening itself,
    say) first flushes what gathered and goes straight out, in order, so a method that waits
    for its answer is never stuck in the buffer."""

    def __init__(self, connection):
        self.transport = connection.transport
        self.parts = None
        self._direct = frame_writer(connection, connection.transport)
        self._gathering = frame_writer(connection, self)  # writes through self.write

    def write(self, data):
        self.parts.append(bytes(data))  # py-amqp hands over a view of a buffer it reuses

    def __call__(self, frame_type, channel, method_sig, args, content):
        if self.parts is not None and method_sig == spec.Basic.Publish:
            return self._gathering(frame_type, channel, method_sig, args, content)
        self.flush()
        return self._direct(frame_type, channel, method_sig, args, content)

    def flush(self):
        if self.parts:
            data, self.parts = b"".join(self.parts), []
            self.transport.write(data)

    def __enter__(self):
        self.parts = []

    def __exit__(self, *exc):
        if exc[0] is None:
            self.flush()
        self.parts = None  # after an error the caller closes the connection


def message_of(envelope, body):
    """The AMQP message of an envelope (``body``: its JSON, encoded once by the caller)."""
    return Message(body, content_type="application/json", content_encoding="utf-8",
                   delivery_mode=2, message_id=envelope["id"],
                   correlation_id=envelope.get("correlation_id"), type=envelope["type"])


class ConfirmingPublisher:
    """Publishes a batch on one channel in confirm mode and waits for all confirms at once."""

    def __init__(self, amqp_uri, timeout=CONFIRM_TIMEOUT, queues=()):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.queues = queues  # declared on every (re)connection
        self.connection = None
        self.channel = None
        self.declared = set()

    def _connect(self):
        if self.connection is None:
            self.connection = Connection(self.amqp_uri, heartbeat=0)
            self.connection.connect()
            raw = self.connection.connection
            self.channel = raw.channel()
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)
            self.channel.events["basic_return"].add(self._on_return)
            self.cork = raw.frame_writer = _Cork(raw)
            self.next_tag = 1
            self.declared = set()
            for queue in self.queues:
                queue(self.channel).declare()

    def close(self):
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("closing publisher connection failed", exc_info=True)
        self.connection = self.channel = None

    def _on_ack(self, tag, multiple):
        self._settle(tag, multiple, ok=True)

    def _on_nack(self, tag, multiple):
        self._settle(tag, multiple, ok=False)

    def _settle(self, tag, multiple, ok):
        tags = [t for t in self.unconfirmed if t <= tag] if multiple else [tag]
        for t in tags:
            if self.unconfirmed.pop(t, None) is not None and not ok:
                self.nacked.add(t)

    def _on_return(self, exc, exchange, routing_key, message):
        self.returned.append(message.properties.get("message_id"))

    def publish(self, items):
        """``items``: [(source, envelope)]. Returns ids the broker returned as unroutable."""
        return self.send([(event_exchange(source).name, envelope["type"],
                           message_of(envelope, _JSON.encode(envelope)))
                          for source, envelope in items])

    def send(self, messages):
        """``messages``: [(exchange, routing key, amqp Message)], published mandatory.
        Returns the message ids the broker returned as unroutable.

        Raises when the broker nacks or the confirms do not arrive within ``timeout``; the
        caller then keeps what it sent and tries again.
        """
        self._connect()
        self.unconfirmed, self.nacked, self.returned = {}, set(), []
        for name in {exchange for exchange, _, _ in messages} - self.declared - {""}:
            self.channel.exchange_declare(name, "topic", durable=True, auto_delete=False)
            self.declared.add(name)  # (before corking: a declare waits for its answer)
        with self.cork:  # the round's frames leave in one send
            for exchange, routing_key, message in messages:
                self.channel.basic_publish(message, exchange, routing_key, mandatory=True)
                self.unconfirmed[self.next_tag] = message
                self.next_tag += 1
        deadline = time.monotonic() + self.timeout
        while self.unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.unconfirmed)} publishes not confirmed")
            self.connection.connection.drain_events(timeout=remaining)
        if self.nacked:
            raise RuntimeError(f"broker refused {len(self.nacked)} publishes")
        return self.returned


class Relay:
    """Moves events from documents' outboxes to the bus. One per service process.

    Writers in this process hand over (collection, _id, events) after their write, so the
    normal path reads nothing back: publish a confirmed batch, then ``$pullAll`` exactly those
    events by ``_id`` once the writes pause (``pull_published``). The sweep, at start and every
    ``OUTBOX_SWEEP_SECONDS``, queues the events of dead writers (expired leases) and of outbox
    batches. Writes that failed are in
    doubt: each round reads their documents back. ``stop`` lets the relay thread publish what
    is left and close its own connection.
    """

    def __init__(self, db, amqp_uri, service_name, config):
        self.db = db
        self.service_name = service_name
        self.unroutable = unroutable_queue(service_name, QueueOptions.from_config(config))
        self.publisher = ConfirmingPublisher(amqp_uri, queues=[self.unroutable])
        # a parked unroutable event expires: an event type nobody subscribes to (yet, or any
        # more: a module retired) must not fill its queue for ever
        self.unroutable_ttl_ms = str(int(float(config.get("UNROUTABLE_RETENTION_HOURS", 72))
                                         * 3_600_000))
        self.poll = float(config.get("OUTBOX_POLL_SECONDS", 0.5))
        self.sweep_every = float(config.get("OUTBOX_SWEEP_SECONDS", 60))
        self.batch_lease = float(config.get("OUTBOX_BATCH_LEASE_SECONDS", 60))
        self.writer_lease = float(config.get("OUTBOX_WRITER_LEASE_SECONDS", 60))
        self.linger = float(config.get("OUTBOX_LINGER_SECONDS", 0.02))
        self.pull_idle = float(config.get("OUTBOX_PULL_IDLE_SECONDS", 0.5))
        self.pull_defer = float(config.get("OUTBOX_PULL_DEFER_SECONDS", 10))
        self.pending = {}  # (collection, _id) -> {event id: envelope}, in arrival order
        self.published = {}  # the same, published and still in their documents
        self.published_since = None  # monotonic time of the oldest in ``published``
        self.last_enqueue = 0.0
        self.in_flight = False
        self.in_doubt = set()  # (collection, _id) of failed writes that may have been applied
        # a write in doubt may still be applied after we read its document back (a slow
        # server): once there was one, the lease is never released, so a replica sweeps
        self.ever_in_doubt = False
        self.writer_id = f"{service_name}:{uuid.uuid4().hex}"
        self.leased = set()  # collections our lease names
        self.lease_until = 0.0
        self.unroutable_types = set()
        self._wake = eventlet.event.Event()
        self._next_sweep = 0.0
        self.running = False
        self._stopped = None  # an Event while run() runs, sent when it has returned

    # -- the writer lease --------------------------------------------------------------

    def guard(self, collection):
        """Before events are written to ``collection``: our lease must name it and stay
        valid a third of its length more (so a replica never takes us for dead mid-write)."""
        now = time.time()
        if collection not in self.leased or now > self.lease_until - self.writer_lease / 3:
            self._renew(now, collection)

    def _renew(self, now, collection=None):
        """Extend the lease, naming every collection we write to: a replica that took us
        for dead (we stalled) deleted it, and this upsert then writes it anew."""
        leased = self.leased | ({collection} if collection is not None else set())
        update = {"$set": {"until": now + self.writer_lease}}
        if leased:
            update["$addToSet"] = {"collections": {"$each": sorted(leased)}}
        self.db[WRITERS].update_one({"_id": self.writer_id}, update, upsert=True)
        self.lease_until = now + self.writer_lease
        self.leased = leased

    def _release_lease(self):
        """On a clean stop with nothing left to publish, nobody needs to recover us."""
        if self.leased and not (self.pending or self.published or self.in_flight
                                or self.ever_in_doubt):
            self.db[WRITERS].delete_one({"_id": self.writer_id})
            self.leased = set()

    # -- the loop ------------------------------------------------------------------------

    def enqueue(self, collection, doc_id, events):
        out = self.published.get((collection, doc_id), {})
        fresh = [envelope for envelope in events if envelope["id"] not in out]
        if fresh:  # a document read back (doubt) still holds what went out unpulled
            queued = self.pending.setdefault((collection, doc_id), {})
            for envelope in fresh:
                queued.setdefault(envelope["id"], envelope)
        self.last_enqueue = time.monotonic()
        self.wake()

    def doubt(self, collection, doc_id):
        """A write of events to this document failed, perhaps after it was applied."""
        self.in_doubt.add((collection, doc_id))
        self.ever_in_doubt = True
        self.wake()

    def _resolve_doubts(self):
        """Read back the documents of writes in doubt and queue what their outbox holds; one
        that cannot be read now stays in doubt (and the lease stays) until it can."""
        for key in list(self.in_doubt):
            collection, doc_id = key
            doc = self.db[collection].find_one({"_id": doc_id}, {OUTBOX: 1})
            self.in_doubt.discard(key)
            if doc is not None:
                self._queue_found(collection, doc)

    def _queue_found(self, collection, doc):
        """Queue the outbox of a document read back; an entry without an event id (written
        around the writer) cannot be tracked, so it is quarantined and pulled."""
        tracked = []
        for entry in doc.get(OUTBOX) or []:
            if _tracked(entry):
                tracked.append(entry)
                continue
            self._quarantine_event(collection, doc["_id"], entry,
                                   ValueError("outbox entry without an event id"))
            self.db[collection].update_one({"_id": doc["_id"]}, {"$pullAll": {OUTBOX: [entry]}})
        if tracked:
            self.enqueue(collection, doc["_id"], tracked)

    def wake(self):
        if not self._wake.ready():
            self._wake.send(True)

    def run(self):
        self.running = True
        self._stopped = eventlet.event.Event()
        try:
            self._loop()
            self._finish()
        finally:
            # here, not in stop(): only this thread reads from the connection
            self.publisher.close()
            self._stopped.send(True)

    def _loop(self):
        backoff = self.poll
        while self.running:
            try:
                if self.leased and time.time() > self.lease_until - 2 * self.writer_lease / 3:
                    self._renew(time.time())
                if time.monotonic() >= self._next_sweep:
                    # set first: a sweep that fails is tried again next period, not every
                    # round (the rounds after this one still publish)
                    self._next_sweep = time.monotonic() + self.sweep_every
                    self.sweep()
                self._resolve_doubts()
                published = self.publish_pending(defer_pull=True)
                if self._pull_due():
                    self.pull_published()
                backoff = self.poll
            except Exception:  # noqa: BLE001 - the relay must outlive broker/db outages
                log.warning("outbox relay round failed; retrying in %.1fs", backoff,
                            exc_info=True)
                self.publisher.close()
                published = 0
                backoff = min(backoff * 2, 10.0)
            if published == 0:
                wait = backoff if not self.published else min(backoff, self.pull_idle)
                with eventlet.Timeout(wait, False):
                    self._wake.wait()
                self._wake = eventlet.event.Event()
            if self.linger and len(self.pending) < BATCH:
                # let more writes join: one publish round and one pull request then serve
                # many events (a few ms of latency against far fewer database writes)
                eventlet.sleep(self.linger)

    def _finish(self):
        """The last rounds of a clean stop: publish what is left, starting rounds for at
        most ``STOP_SECONDS``. What remains after keeps the lease, so a replica's sweep
        publishes it once the lease runs out."""
        deadline = time.monotonic() + STOP_SECONDS
        try:
            while (self.pending or self.in_doubt or self.published) \
                    and time.monotonic() < deadline:
                self._resolve_doubts()
                self.publish_pending()
                self.pull_published()
        except Exception:  # noqa: BLE001 - stopping anyway; the lease covers what is left
            log.warning("outbox relay stopped with events unpublished; a replica publishes "
                        "them once its lease runs out", exc_info=True)

    def stop(self):
        """Let the relay thread publish what is left and end (bounded: a round waits at
        most the confirm timeout), then drop the lease if nothing is left."""
        self.running = False
        self.wake()
        if self._stopped is not None:
            with eventlet.Timeout(STOP_SECONDS + self.publisher.timeout, False):
                self._stopped.wait()
        try:
            self._release_lease()
        except Exception:  # noqa: BLE001 - the lease then runs out: a replica recovers us
            log.warning("could not release the outbox writer lease", exc_info=True)

    # -- the sweep -----------------------------------------------------------------------

    def sweep(self):
        """Queue what dead writers left in their documents, and the outbox batches."""
        now = time.time()
        for writer in self.db[WRITERS].find({"until": {"$lt": now}}):
            if writer["_id"] != self.writer_id:
                try:
                    self._recover(writer, now)
                except Exception:  # noqa: BLE001 - the other writers still get recovered
                    log.warning("outbox writer %s not recovered; its claim runs out and a "
                                "later sweep tries again", writer["_id"], exc_info=True)
        self.sweep_batches()

    def _recover(self, writer, now):
        """Claim a dead writer's lease (one replica wins), queue the events in the
        collections it named, then drop its lease: ours now names them."""
        until = now + self.writer_lease
        claimed = self.db[WRITERS].update_one({"_id": writer["_id"], "until": writer["until"]},
                                              {"$set": {"until": until}})
        if not claimed.modified_count:
            return  # another replica recovers it, or the writer lives after all
        found = 0
        for name in writer.get("collections", []):
            self.guard(name)
            for doc in self.db[name].find({f"{OUTBOX}.0": {"$exists": True}}, {OUTBOX: 1}):
                self._queue_found(name, doc)
                found += 1
        log.warning("outbox writer %s died: %d document(s) with events queued", writer["_id"],
                    found)
        self.db[WRITERS].delete_one({"_id": writer["_id"], "until": until})

    def sweep_batches(self):
        """Queue ready batches; settle unready ones whose writer must have died, and ones a
        sweep began to settle."""
        stale = datetime.now(UTC) - timedelta(seconds=self.batch_lease)
        ready = {marker["_id"]: marker for marker in self.db[READY].find({})}
        for batch in self.db[BATCHES].find({}):
            try:
                self._sweep_batch(batch, ready.get(batch["_id"]), stale)
            except pymongo.errors.PyMongoError:  # the database, not the batch: next sweep
                log.warning("outbox batch %s not swept", batch["_id"], exc_info=True)
            except Exception as exc:  # noqa: BLE001 - it cannot be read: keep it aside
                self._quarantine(f"{BATCHES}:{batch['_id']}", exc, collection=BATCHES,
                                 document=batch["_id"], batch=batch)
                self.db[READY].delete_one({"_id": batch["_id"]})
                self.db[BATCHES].delete_one({"_id": batch["_id"]})
        for orphan in set(ready) - {b["_id"] for b in self.db[BATCHES].find({}, {"_id": 1})}:
            self.db[READY].delete_one({"_id": orphan})  # its batch was published and deleted

    def _sweep_batch(self, batch, marker, stale):
        """Queue a ready batch; settle one whose writer must have died."""
        if marker is not None and not marker.get("settling"):
            events = unpack(batch)["events"]
            if not all(_tracked(envelope) for envelope in events):
                raise ValueError("batch event without an event id")
            self.enqueue(BATCHES, batch["_id"], events)
        elif marker is not None or batch["at"].replace(tzinfo=UTC) < stale:
            self._settle(batch, claimed=marker is not None)

    def _settle(self, batch, claimed=False):
        """Keep the events of the owners this batch wrote (stamped with its id). Claim the
        batch first (its ready marker, flagged ``settling``): a writer that releases it
        before the claim keeps it whole, one that releases it after requeues its events."""
        if not claimed:
            try:
                self.db[READY].insert_one({"_id": batch["_id"], "settling": True})
            except pymongo.errors.DuplicateKeyError:
                return  # its writer was alive after all and released it
        collection = self.db[batch["collection"]]
        packed = unpack(batch)
        written = {owner for owner in set(packed["owners"])
                   if collection.find_one({"_id": owner, "_batch": batch["_id"]}, {"_id": 1})}
        pairs = [(e, owner) for e, owner in zip(packed["events"], packed["owners"], strict=True)
                 if owner in written]
        kept = [e for e, _ in pairs]
        log.warning("outbox batch %s of a dead writer settled: %d of %d events kept",
                    batch["_id"], len(kept), len(packed["events"]))
        if not kept:
            self.db[BATCHES].delete_one({"_id": batch["_id"]})
            self.db[READY].delete_one({"_id": batch["_id"]})
            return
        self.db[BATCHES].replace_one({"_id": batch["_id"]}, batch_document(
            batch["_id"], batch["collection"], [owner for _, owner in pairs], kept))
        self.db[READY].update_one({"_id": batch["_id"]}, {"$unset": {"settling": ""}})
        self.enqueue(BATCHES, batch["_id"], kept)

    # -- publishing ----------------------------------------------------------------------

    def publish_pending(self, defer_pull=False):
        """Publish a batch of what is pending; then pull it from its documents, or with
        ``defer_pull`` leave that to ``pull_published``. How many events went out."""
        batch, events = [], 0
        while self.pending and events < BATCH:  # events, not documents: a batch holds many
            key = next(iter(self.pending))
            batch.append((key, list(self.pending.pop(key).values())))
            events += len(batch[-1][1])
        metrics.OUTBOX_PENDING.labels(self.service_name).set(len(self.pending) + len(batch))
        if not batch:
            return 0
        self.in_flight = True
        try:
            items = self._encode(batch)
            returned = set(self.publisher.send([item[1:] for item in items]))
            self._park_unroutable([item for item in items if item[0]["id"] in returned])
            self._drop_batches(batch)
        except Exception:
            for (collection, doc_id), events in batch:  # still in the documents: try again
                self.enqueue(collection, doc_id, events)
            raise
        finally:
            self.in_flight = False
        for key, events in batch:
            if key[0] != BATCHES:
                self.published.setdefault(key, {}).update((e["id"], e) for e in events)
        if self.published_since is None and self.published:
            self.published_since = time.monotonic()
        if not defer_pull:
            self.pull_published()
        self._record([envelope for envelope, _, _, _ in items], returned)
        metrics.OUTBOX_PENDING.labels(self.service_name).set(len(self.pending))
        return len(items)

    def _encode(self, batch):
        """``[(envelope, exchange, routing key, message)]`` of the batch's publishable
        events; any other is quarantined (and pulled with the rest)."""
        exchange = event_exchange(self.service_name).name
        items = []
        for (collection, doc_id), events in batch:
            for envelope in events:
                try:
                    check_event(envelope, self.service_name)
                    body = _JSON.encode(envelope)
                except Exception as exc:  # noqa: BLE001 - whatever it is, it cannot go out
                    self._quarantine_event(collection, doc_id, envelope, exc)
                    continue
                items.append((envelope, exchange, envelope["type"], message_of(envelope, body)))
        return items

    def _quarantine_event(self, collection, doc_id, envelope, exc):
        event_id = envelope.get("id") if isinstance(envelope, dict) else None
        # an entry without an id gets a key of its own: two in one document both stay
        self._quarantine(f"{collection}:{doc_id}:{event_id or uuid.uuid4().hex}", exc,
                         collection=collection, document=doc_id, event=envelope)

    def _quarantine(self, key, exc, **record):
        """Keep what cannot be relayed (``event=`` an envelope or ``batch=`` a batch
        document, with where it was) in ``_outbox_quarantine`` for an operator."""
        self.db[QUARANTINE].replace_one(
            {"_id": key}, {**record, "error": str(exc)[:2000], "at": datetime.now(UTC)},
            upsert=True)
        metrics.OUTBOX_QUARANTINED.labels(self.service_name).inc()
        log.error("outbox %s cannot be published, moved to %s: %s", key, QUARANTINE, exc)

    def _park_unroutable(self, items):
        """Events no queue took go to ``<service>.unroutable``, where they stay visible and
        can be replayed for ``UNROUTABLE_RETENTION_HOURS``, before they leave the outbox."""
        if not items:
            return
        parked = []
        for _, exchange, routing_key, message in items:
            headers = {"x-pamong-reason": "unroutable", "x-pamong-exchange": exchange,
                       "x-pamong-routing-key": routing_key}
            parked.append(("", self.unroutable.name,
                           Message(message.body, application_headers=headers,
                                   **{**message.properties,
                                      "expiration": self.unroutable_ttl_ms})))
        if self.publisher.send(parked):
            raise RuntimeError(f"{self.unroutable.name} is missing: unroutable events kept")

    def _drop_batches(self, batch):
        """A published batch document exists only for its events: delete it (its ready
        marker first: a crash in between only repeats the publish)."""
        for (collection, doc_id), _ in batch:
            if collection == BATCHES:
                self.db[READY].delete_one({"_id": doc_id})
                self.db[BATCHES].delete_one({"_id": doc_id})

    def _pull_due(self):
        """Pull once the writes pause, or when the published set is old or large."""
        if not self.published:
            return False
        now = time.monotonic()
        return (now - self.last_enqueue >= self.pull_idle
                or now - self.published_since >= self.pull_defer
                or len(self.published) >= PULL_DEFER_DOCUMENTS)

    def pull_published(self):
        """Take the published events out of their documents: per collection, one
        ``update_many`` per ``PULL_CHUNK`` documents, ``$pullAll`` of their events together
        (each document holds only its own, so pulling the union takes exactly those). A
        chunk that fails stays for the next call."""
        by_collection = {}
        for (collection, doc_id), events in self.published.items():
            by_collection.setdefault(collection, []).append((doc_id, list(events.values())))
        for collection, docs in by_collection.items():
            for start in range(0, len(docs), PULL_CHUNK):
                chunk = docs[start:start + PULL_CHUNK]
                self.db[collection].update_many(
                    {"_id": {"$in": [doc_id for doc_id, _ in chunk]}},
                    {"$pullAll": {OUTBOX: [e for _, events in chunk for e in events]}})
                for doc_id, _ in chunk:
                    del self.published[(collection, doc_id)]
        self.published_since = None

    def _record(self, envelopes, returned):
        if not envelopes:
            return
        now = datetime.now(UTC)
        oldest = min(datetime.fromisoformat(env["occurred_at"]) for env in envelopes)
        metrics.OUTBOX_LAG.labels(self.service_name).set((now - oldest) / timedelta(seconds=1))
        source = self.service_name
        for event_type, count in Counter(envelope["type"] for envelope in envelopes).items():
            metrics.EVENTS_PUBLISHED.labels(source, event_type).inc(count)
        for envelope in envelopes:
            if envelope["id"] in returned:
                metrics.EVENTS_UNROUTABLE.labels(source, envelope["type"]).inc()
                if envelope["type"] not in self.unroutable_types:  # once per type: no flood
                    self.unroutable_types.add(envelope["type"])
                    log.warning("event %s %s had no subscriber queue: parked in %s (further "
                                "ones are only counted in pamong_events_unroutable_total)",
                                envelope["type"], envelope["id"], self.unroutable.name)


class Outbox(DependencyProvider):
    """``outbox = Outbox()`` on a service that also has ``db = Mongo(...)``.

    Injects an OutboxWriter; runs the relay in a green thread for the container's lifetime.
    """

    def setup(self):
        from pamong.storage import mongo_of

        self.mongo = mongo_of(self.container, "Outbox")
        self.relay = None

    def start(self):
        self.relay = Relay(self.mongo.db, self.container.config["AMQP_URI"],
                           self.container.service_name, self.container.config)
        self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self):
        if self.relay:
            self.relay.stop()

    def kill(self):
        """No lease release: a killed worker may have died mid-write. The lease runs out and
        a replica's sweep publishes what this process left; the container then kills the
        relay thread (its publisher is closed on the way out)."""

    def get_dependency(self, worker_ctx):
        return OutboxWriter(
            self.mongo.db, self.container.service_name, self.relay,
            correlation_id=worker_ctx.data.get("correlation_id"),
            actor=worker_ctx.data.get("actor"),
        )

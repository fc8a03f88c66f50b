"""MongoDB access for a service: one MongoClient per process, one database per service.

Declare indexes next to the repository code and pass them to ``Mongo``; they are created
idempotently when the container starts. Code must stay inside what both MongoDB 7 and FerretDB
1.24 support (see DESIGN §3). On FerretDB's SQLite backend only a filter that is exactly
``{"_id": <str|ObjectId>}`` is answered from an index, so hot paths look documents up by
string ``_id``.
"""

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime

import eventlet
import eventlet.event
import pymongo
import pymongo.database
import pymongo.errors
from nameko.extensions import DependencyProvider

from pamong.config import DEFAULTS

_clients = {}


def client_timeouts(config=None):
    """pymongo's timeout options from ``MONGO_*_TIMEOUT_SECONDS``.

    Server selection is short so a request fails fast (503) while the database is down;
    the socket timeout ends an operation on a database that accepted it and then hung, so a
    hung server cannot stall the relay, a consumer or a request forever.
    """
    config = config or DEFAULTS

    def ms(key):
        return int(float(config.get(key, DEFAULTS[key])) * 1000)

    return {"serverSelectionTimeoutMS": ms("MONGO_SERVER_SELECTION_TIMEOUT_SECONDS"),
            "connectTimeoutMS": ms("MONGO_CONNECT_TIMEOUT_SECONDS"),
            "socketTimeoutMS": ms("MONGO_SOCKET_TIMEOUT_SECONDS")}


def client_for(uri, config=None):
    """The process-wide client for ``uri`` (pymongo pools connections inside it), with the
    timeouts of ``config`` (defaults when None)."""
    timeouts = client_timeouts(config)
    key = (uri, *sorted(timeouts.items()))
    if key not in _clients:
        _clients[key] = pymongo.MongoClient(uri, tz_aware=True, **timeouts)
    return _clients[key]


def database_name(config, service_name):
    return f"{config.get('MONGO_DB_PREFIX', 'pamong_')}{service_name}"


@dataclass(frozen=True)
class Index:
    collection: str
    keys: list  # [(field, direction)]
    unique: bool = False
    sparse: bool = False
    name: str | None = None
    options: dict = field(default_factory=dict)

    def model(self):
        kwargs = {"unique": self.unique, **self.options}
        if self.sparse:
            kwargs["sparse"] = True
        if self.name:
            kwargs["name"] = self.name
        return pymongo.IndexModel(self.keys, **kwargs)


def ensure_indexes(db, indexes):
    # one createIndexes request per index: FerretDB 1.24 drops the connection (a recovered
    # server panic) when one request names several indexes that all exist, as on a restart
    for index in indexes:
        db[index.collection].create_indexes([index.model()])


class CollectionCache(pymongo.database.Database):
    """A database whose ``db[name]`` is made once per name: pymongo builds a new
    ``Collection`` (names, codec and read/write options) on every lookup, which was a few
    per cent of a check-in's CPU at the morning peak."""

    def __init__(self, client, name):
        super().__init__(client, name)
        self._made = {}

    def __getitem__(self, name):
        collection = self._made.get(name)
        if collection is None:
            collection = self._made[name] = super().__getitem__(name)
        return collection


class Mongo(DependencyProvider):
    """Injects the service's ``pymongo.database.Database``.

    ``Mongo(indexes=[Index("letters", [("number", 1)], unique=True)])``
    """

    def __init__(self, indexes=(), **kwargs):
        self.indexes = list(indexes)
        self.db = None
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        self.db = CollectionCache(client_for(config["MONGO_URI"], config),
                                  database_name(config, self.container.service_name))

    def start(self):
        # the kernel's own collections (the inbox day buckets, outbox batches) are read by _id
        # only
        ensure_indexes(self.db, self.indexes)

    def ping(self):
        """Raise when the database does not answer (used by /health/ready)."""
        self.db.client.admin.command("ping")

    def get_dependency(self, worker_ctx):
        return self.db


def mongo_of(container, needed_by):
    """The service's one ``Mongo`` provider, for extensions that write through it."""
    found = [d for d in container.dependencies if isinstance(d, Mongo)]
    if len(found) != 1:
        raise RuntimeError(f"{needed_by} needs exactly one Mongo dependency on the service")
    return found[0]


def to_ms(at):
    """A time as the database keeps it (BSON: milliseconds), so what an answer shows is what
    a repeat of the request shows."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def db_now():
    """Now (UTC) as the database will keep it."""
    return to_ms(datetime.now(UTC))


IN_BATCH = 500  # the local FerretDB looks ``_id $in`` up by key for at most 500 values


def by_ids(collection, ids, projection=None, keep=None):
    """``{_id: document}`` of those ``ids`` that exist, read by key in batches (indexed
    everywhere; ``keep``, a lock's renewal, runs between them)."""
    ids, found = sorted(set(ids)), {}
    for start in range(0, len(ids), IN_BATCH):
        found.update((d["_id"], d) for d in collection.find(
            {"_id": {"$in": ids[start:start + IN_BATCH]}}, projection))
        if keep:
            keep()
    return found


_groups = {}


def grouped(kind, collection, *args):
    """The process's group ``kind`` (``GroupInsert``, ``GroupFind``, ``GroupCount`` or a
    subclass) on ``collection`` (``args``: the rest of its constructor's): every worker of the
    process that asks gets the same one, so their single-document operations share a request.
    """
    key = (kind, id(collection.database.client), collection.full_name, args)
    group = _groups.get(key)
    if group is None:
        group = _groups[key] = kind(collection, *args)
    return group


class GroupInsert:
    """Insert single documents, written together (group commit).

    ``insert(doc)`` blocks the calling green thread until its document is written and returns
    True, or False when a document with that ``_id`` already exists. Callers that arrive while a
    write is in flight share the next ``insert_many(ordered=False)``: one round trip for many
    concurrent workers. FerretDB spends most of a write on the request itself (measured here:
    about 1,200 ``insert_one``/s against 7,400 documents/s in batches of 10), so this is what
    keeps the inbox cheap. For green threads (eventlet) only, as every nameko service is.
    Subclasses group other single-document operations the same way (``_write``: the items of
    a batch -> each caller's outcome, an exception instance to raise in that caller); a
    worker killed while it waits does not stop its batch, so what it asked for is done.
    """

    def __init__(self, collection, max_batch=100):
        self.collection = collection
        self.max_batch = max_batch
        self.pending = []
        self.flushing = False

    def insert(self, document):
        waiter = eventlet.event.Event()
        self.pending.append((document, waiter))
        if not self.flushing:
            self.flushing = True
            eventlet.spawn_n(self._flush)
        return waiter.wait()

    def _flush(self):
        try:
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                try:
                    outcomes = self._write([document for document, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiter gets the error
                    outcomes = [exc] * len(batch)
                for (_, waiter), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        waiter.send_exception(outcome)
                    else:
                        waiter.send(outcome)
        finally:
            self.flushing = False

    def _write(self, documents):
        return insert_each(self.collection, documents)


def insert_each(collection, documents):
    """Insert ``documents`` in one ``insert_many(ordered=False)``; each one's outcome: True
    (written), False (its ``_id`` exists) or the ``WriteError`` that refused it."""
    outcomes = [True] * len(documents)
    try:
        collection.insert_many(documents, ordered=False)
    except pymongo.errors.BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            duplicate = error.get("code") == 11000
            outcomes[error["index"]] = False if duplicate else pymongo.errors.WriteError(
                error.get("errmsg", "write failed"), error.get("code"), error)
    return outcomes


class GroupFind(GroupInsert):
    """``insert(_id)`` -> the document with that ``_id`` (``projection`` applied) or None: the
    reads of concurrent workers share one ``_id $in`` find (one round trip instead of one
    each; measured on FerretDB: a tenth of its time per document in batches of ten)."""

    def __init__(self, collection, projection=None):
        super().__init__(collection)
        self.projection = dict(projection) if projection else None

    def _write(self, ids):
        found = {d["_id"]: d for d in self.collection.find({"_id": {"$in": sorted(set(ids))}},
                                                           self.projection)}
        given, answers = set(), []
        for i in ids:  # two callers of one _id get a document each (either may change it)
            answers.append(copy.deepcopy(found.get(i)) if i in given else found.get(i))
            given.add(i)
        return answers


class GroupCount(GroupInsert):
    """``insert(counter id)`` -> this caller's count on that counter document (``n``, created
    at the first use): concurrent workers counting on one document share one ``$inc`` by how
    many they are, each getting its own value in the order they asked."""

    def _write(self, ids):
        counts = {}
        for counter in ids:
            counts[counter] = counts.get(counter, 0) + 1
        last = {counter: count(self.collection, counter, k) - k  # before this batch
                for counter, k in counts.items()}
        positions = []
        for counter in ids:
            last[counter] += 1
            positions.append(last[counter])
        return positions


def count(collection, counter, k):
    """Add ``k`` to a counter document's ``n`` (created at the first use); its count after."""
    for _ in range(3):
        try:
            return collection.find_one_and_update(
                {"_id": counter}, {"$inc": {"n": k}}, upsert=True,
                return_document=pymongo.ReturnDocument.AFTER)["n"]
        except pymongo.errors.DuplicateKeyError:
            continue  # two replicas created it at once: it exists now
    raise RuntimeError(f"counter {counter} could not be counted")


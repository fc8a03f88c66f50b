"""MongoDB access for a service: one MongoClient per process, one database per service.

Declare indexes next to the repository code and pass them to ``Mongo``; they are created
idempotently when the container starts. Code must stay inside what both MongoDB 7 and FerretDB
1.24 support (see DESIGN §3). On FerretDB's SQLite backend only a filter that is exactly
``{"_id": <str|ObjectId>}`` is answered from an index, so hot paths look documents up by
string ``_id``.
"""

from dataclasses import dataclass, field

import pymongo
from nameko.extensions import DependencyProvider

_clients = {}


def client_for(uri):
    """The process-wide client for ``uri`` (pymongo pools connections inside it)."""
    if uri not in _clients:
        _clients[uri] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True
        )
    return _clients[uri]


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
    by_collection = {}
    for index in indexes:
        by_collection.setdefault(index.collection, []).append(index.model())
    for collection, models in by_collection.items():
        db[collection].create_indexes(models)


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
        self.db = client_for(config["MONGO_URI"])[
            database_name(config, self.container.service_name)
        ]

    def start(self):
        # the kernel's own collections (_inbox) and outbox reads go by _id: no extra indexes
        ensure_indexes(self.db, self.indexes)

    def ping(self):
        """Raise when the database does not answer (used by /health/ready)."""
        self.db.client.admin.command("ping")

    def get_dependency(self, worker_ctx):
        return self.db

"""A service that exercises the pinned libraries together: HTTP, pymongo, RPC and events."""

import json

from nameko.events import EventDispatcher, event_handler
from nameko.rpc import rpc
from nameko.web.handlers import http

from pamong.storage import Mongo


class SmokeService:
    name = "smoke"
    db = Mongo()
    dispatch = EventDispatcher()

    @http("POST", "/smoke/items/<string:key>")
    def put_item(self, request, key):
        self.db.items.insert_one({"_id": key, "body": request.get_data(as_text=True)})
        self.dispatch("smoke.stored", {"key": key})
        return 201, json.dumps({"key": key})

    @http("GET", "/smoke/ping")
    def ping(self, request):
        return 200, json.dumps({"items": self.db.items.estimated_document_count()})

    @rpc
    def echo(self, value):
        return {"echo": value, "items": self.db.items.estimated_document_count()}

    @event_handler("smoke", "smoke.stored")
    def on_stored(self, payload):
        self.db.seen.update_one({"_id": payload["key"]}, {"$inc": {"n": 1}}, upsert=True)

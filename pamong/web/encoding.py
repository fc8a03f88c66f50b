"""JSON for response bodies: what pymongo hands back must encode without per-service code."""

import datetime
import json
import uuid
from decimal import Decimal

from bson import ObjectId


def _default(value):
    if isinstance(value, datetime.datetime):
        # stored times are UTC; a naive one (never from our tz_aware client) is taken as UTC
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (ObjectId, uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(payload):
    return json.dumps(payload, default=_default, ensure_ascii=False)

"""The event envelope every pamong event travels in (DESIGN §4)."""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from pamong.events.fastschema import Unsure, compile_schema

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class ActorSchema(Schema):
    class Meta:
        unknown = RAISE

    sub = fields.String(required=True)
    role = fields.String(required=True, allow_none=True)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(TYPE_PATTERN))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    source = fields.String(required=True, validate=validate.Length(min=1))
    occurred_at = fields.AwareDateTime(required=True)
    opd = fields.String(required=True, allow_none=True)
    correlation_id = fields.String(required=True)
    actor = fields.Nested(ActorSchema, required=True, allow_none=True)
    data = fields.Dict(required=True)


@dataclass(frozen=True)
class Event:
    """A validated event as handlers see it; ``data`` is already loaded by its contract."""

    id: str
    type: str
    version: int
    source: str
    occurred_at: datetime
    opd: str | None
    correlation_id: str
    actor: dict | None
    data: dict


def new_event(source, type, data, *, version=1, opd=None, correlation_id=None, actor=None):
    """Build an envelope (a plain JSON-ready dict) for ``type`` with ``data`` dumped already."""
    return {
        "id": str(uuid.uuid4()),
        "type": type,
        "version": version,
        "source": source,
        "occurred_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "opd": opd,
        "correlation_id": correlation_id or uuid.uuid4().hex,
        "actor": actor,
        "data": data,
    }


ENVELOPE = EnvelopeSchema()
FAST_ENVELOPE = compile_schema(ENVELOPE)


def load_envelope(body):
    """Validate the envelope part of ``body``; raise ValidationError with field messages."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["event body must be a JSON object"]})
    try:
        loaded = FAST_ENVELOPE.load(body)
    except Unsure:  # marshmallow decides, with its messages
        loaded = ENVELOPE.load(body)
    loaded["id"] = str(loaded["id"])
    return loaded


def check_event(envelope, source):
    """Refuse, before it is written, an envelope the relay could not publish or a consumer
    would park: invalid, claiming another source, or not JSON."""
    load_envelope(envelope)
    if envelope["source"] != source:
        raise ValidationError({"source": [f"{source} can only publish its own events"]})
    try:
        json.dumps(envelope)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"_schema": [f"event is not JSON: {exc}"]}) from None

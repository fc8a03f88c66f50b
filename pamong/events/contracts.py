"""The registry of event contracts: one marshmallow schema per (type, version).

Publishers dump ``data`` through the contract before it enters the outbox; consumers load it
through the same contract, so both ends agree on the published language. Plain data takes
``fastschema``'s path, which gives marshmallow's answer without marshmallow's overhead.
Product contracts live in ``pamong/contracts/<service>.py`` and register themselves on import.
"""

from marshmallow import RAISE, Schema, ValidationError

from pamong.events.fastschema import Unsure, compile_schema

_registry: dict[tuple[str, int], type[Schema]] = {}
_instances: dict[type[Schema], Schema] = {}
_fast: dict[type[Schema], object] = {}  # schema class -> FastSchema, or None (marshmallow only)


class UnknownContract(ValidationError):
    pass


def contract(event_type, version=1):
    """Class decorator: ``@contract("permit.status_changed", 1) class StatusChanged(Schema)``."""

    def register(schema_cls):
        key = (event_type, version)
        if key in _registry and _registry[key] is not schema_cls:
            # a second schema for the same contract would make publishers and consumers disagree
            raise ValueError(f"contract {event_type} v{version} is already registered")
        _registry[key] = schema_cls
        return schema_cls

    return register


def schema_for(event_type, version=1):
    """The contract's schema instance (built once: marshmallow schemas keep no per-call state,
    and building one per event cost as much as using it)."""
    try:
        schema_cls = _registry[(event_type, version)]
    except KeyError:
        raise UnknownContract(
            {"type": [f"no contract registered for {event_type} v{version}"]}
        ) from None
    schema = _instances.get(schema_cls)
    if schema is None:
        schema = _instances[schema_cls] = schema_cls(unknown=RAISE)
        _fast[schema_cls] = compile_schema(schema)
    return schema


def _fast_for(schema):
    return _fast.get(type(schema))


def registered():
    """All registered (type, version) -> schema class pairs, for docs and contract tests."""
    return dict(_registry)


def dump_data(event_type, version, data):
    """Validate outgoing ``data`` against its contract and return its JSON-ready form."""
    schema = schema_for(event_type, version)
    fast = _fast_for(schema)
    if fast is not None:
        try:
            return fast.dump(data)
        except Unsure:  # marshmallow decides, with its messages
            pass
    try:
        dumped = schema.dump(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            {"_schema": [f"data does not fit contract {event_type} v{version}: {exc}"]}
        ) from exc
    schema.load(dumped)  # raises ValidationError when a publisher breaks its own contract
    return dumped


def load_data(event_type, version, data):
    """Validate incoming ``data``; raise ValidationError naming the bad fields."""
    schema = schema_for(event_type, version)
    fast = _fast_for(schema)
    if fast is not None:
        try:
            return fast.load(data)
        except Unsure:
            pass
    return schema.load(data)

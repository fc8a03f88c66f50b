"""An AsyncAPI 3.0 document of the published language, generated from the contracts."""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter

from pamong.events.compat import load_all_contracts
from pamong.events.envelope import EnvelopeSchema


def _converter():
    spec = APISpec("pamong", "1", "3.1.0", plugins=[MarshmallowPlugin()])
    return OpenAPIConverter("3.1.0", lambda schema: None, spec)


def build(version="1"):
    converter = _converter()
    envelope = converter.schema2jsonschema(EnvelopeSchema)
    channels, operations, messages = {}, {}, {}
    for (event_type, event_version), schema_cls in sorted(load_all_contracts().items()):
        source = schema_cls.__module__.rsplit(".", 1)[-1]
        key = f"{event_type.replace('.', '_')}_v{event_version}"
        payload = dict(envelope)
        payload["properties"] = dict(envelope["properties"],
                                     data=converter.schema2jsonschema(schema_cls),
                                     type={"const": event_type},
                                     version={"const": event_version})
        messages[key] = {"name": event_type, "title": f"{event_type} v{event_version}",
                         "summary": (schema_cls.__doc__ or "").strip().split("\n")[0],
                         "contentType": "application/json", "payload": payload}
        channels[key] = {
            "address": event_type,
            "description": f"routing key {event_type} on exchange {source}.events (topic)",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {
                "name": f"{source}.events", "type": "topic", "durable": True}}},
        }
        operations[f"publish_{key}"] = {"action": "send",
                                        "channel": {"$ref": f"#/channels/{key}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "pamong events", "version": version,
                 "description": "Events published by pamong services. Every message is the "
                                "envelope below with the contract's data."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }

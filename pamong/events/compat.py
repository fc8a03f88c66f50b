"""Contract compatibility: the published language may grow, never break (DESIGN §4).

``pamong/contracts/published.json`` records every (type, version) contract as published.
Adding an optional field keeps the version; removing a field, changing its type, or making
it required is a breaking change and needs a new version. ``check()`` lists breaking changes
(the contract test fails on any); ``pamong contracts lock`` records the current shape.
"""

import importlib
import json
import pkgutil
from pathlib import Path

from marshmallow import fields

from pamong.events import contracts

LOCK_FILE = Path(__file__).resolve().parent.parent / "contracts" / "published.json"


def load_all_contracts():
    """Import every module of ``pamong.contracts`` so their schemas register."""
    import pamong.contracts as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"pamong.contracts.{info.name}")
    return contracts.registered()


def describe(schema_cls):
    """``{field: {"type": ..., "required": bool, ...}}``, nested schemas described too."""
    shape = {}
    for name, field in schema_cls().fields.items():
        entry = {"type": type(field).__name__, "required": bool(field.required),
                 "nullable": bool(field.allow_none)}
        if isinstance(field, fields.Nested):
            entry["fields"] = describe(type(field.schema))
        if isinstance(field, fields.List):
            entry["items"] = type(field.inner).__name__
        shape[field.data_key or name] = entry
    return shape


def breaking_changes(old, new, path=""):
    problems = []
    for name, before in old.items():
        where = f"{path}{name}"
        after = new.get(name)
        if after is None:
            problems.append(f"{where}: removed")
            continue
        if before["type"] != after["type"] or before.get("items") != after.get("items"):
            problems.append(f"{where}: type changed from {before['type']} to {after['type']}")
        if after["required"] and not before["required"]:
            problems.append(f"{where}: became required")
        if before.get("nullable") and not after.get("nullable"):
            problems.append(f"{where}: no longer accepts null")
        if "fields" in before:
            problems += breaking_changes(before["fields"], after.get("fields", {}), where + ".")
    for name, after in new.items():
        if name not in old and after["required"]:
            problems.append(f"{path}{name}: new required field")
    return problems


def current_shapes():
    return {f"{event_type} v{version}": describe(schema_cls)
            for (event_type, version), schema_cls in sorted(load_all_contracts().items())}


def check(lock_file=LOCK_FILE):
    """Breaking changes between the lock file and the code, as readable strings."""
    published = json.loads(lock_file.read_text()) if lock_file.exists() else {}
    shapes = current_shapes()
    problems = []
    for key, old in published.items():
        if key not in shapes:
            problems.append(f"{key}: contract removed (keep it while consumers may use it)")
        else:
            problems += [f"{key}: {p}" for p in breaking_changes(old, shapes[key])]
    return problems


def lock(lock_file=LOCK_FILE):
    lock_file.write_text(json.dumps(current_shapes(), indent=2, sort_keys=True) + "\n")

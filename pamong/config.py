"""Configuration: a YAML file with ``${VAR:default}`` interpolation, merged over defaults.

The result is the plain dict nameko hands to every extension as ``container.config``.
"""

import os
import re
from pathlib import Path

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")

DEFAULTS = {
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/",
    "MONGO_URI": "mongodb://127.0.0.1:27017/",
    "MONGO_DB_PREFIX": "pamong_",
    # retry schedule for event handlers: delay before attempt 2, 3, ... (seconds)
    "RETRY_DELAYS": [1, 5, 30, 120, 600],
    "RETRY_JITTER": 0.2,
    # classic (a laptop, RabbitMQ 3.10+) or quorum (production, RabbitMQ 4.x): every queue of
    # the topology (handler, delay, DLQ, unroutable) is declared with this type
    "QUEUE_TYPE": "classic",
    # quorum handler queues: a message returned this often is parked in its DLQ
    "QUEUE_DELIVERY_LIMIT": 500,
    "OUTBOX_POLL_SECONDS": 0.5,
    "OUTBOX_SWEEP_SECONDS": 60,
    # how old an unfinished bulk-insert batch must be before the sweep settles it
    "OUTBOX_BATCH_LEASE_SECONDS": 60,
    # an event no queue took is kept this long in <service>.unroutable for a replay, then
    # expires (event types nobody subscribes to, e.g. a retired module's, are not kept for ever)
    "UNROUTABLE_RETENTION_HOURS": 72,
    # how long the relay lets writes gather before a round (fewer, larger publishes and pulls)
    "OUTBOX_LINGER_SECONDS": 0.02,
    # the relay pulls published events out of their documents once writes pause this long,
    # or when the oldest was published this long ago (a pull rewrites the whole document)
    "OUTBOX_PULL_IDLE_SECONDS": 0.5,
    "OUTBOX_PULL_DEFER_SECONDS": 10,
    # a request waits this long for a reachable database before it is refused with 503
    "MONGO_SERVER_SELECTION_TIMEOUT_SECONDS": 2,
    "MONGO_CONNECT_TIMEOUT_SECONDS": 3,
    # longest a single database operation may wait for its answer (a hung server)
    "MONGO_SOCKET_TIMEOUT_SECONDS": 30,
    # an RPC caller waits this long; its request expires in the queue at the same moment
    "RPC_TIMEOUT_SECONDS": 10,
    # a crashed worker's claim on an event blocks a redelivery this long
    "INBOX_LEASE_SECONDS": 60,
    # done marks of handled events are kept this long: an older duplicate runs again
    "INBOX_DONE_RETENTION_HOURS": 168,
    # a process that writes events holds a lease this long; then a sweep publishes its leftovers
    "OUTBOX_WRITER_LEASE_SECONDS": 60,
    "HTTP_MAX_BODY_BYTES": 1024 * 1024,
    # a bearer token verified this recently (same settings, not expired) is not verified again
    "JWT_VERIFIED_CACHE_SECONDS": 60,
    # requests and events one process works on at once (nameko's ``max_workers``, whose
    # default of 10 left a check-in peak waiting on the database round trips of only 10)
    "MAX_WORKERS": 100,
    # Python's cyclic collector: collect the youngest objects after this many more
    # allocations than frees (Python's 700 ran it ~7 times per notification under load)
    "GC_THRESHOLD": 10000,
    "LOG_LEVEL": "INFO",
}


# read from the environment too (typed like YAML: RETRY_DELAYS="[1, 5]" is a list); the
# README's configuration table lists these (tests/unit/test_config.py holds them together)
ENV_KEYS = (*DEFAULTS, "JWT_SECRET", "JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE",
            "WEB_SERVER_ADDRESS")
# a module's own settings (``ATTENDANCE_CLOSE_INTERVAL_SECONDS``, ...) come from the
# environment too, so a Deployment's env or ConfigMap sets them without a YAML file
ENV_PREFIXES = ("DIRECTORY_", "ATTENDANCE_", "LETTERS_", "PERMITS_", "NOTIFY_", "PAGES_",
                "OIDC_")


class ConfigError(ValueError):
    pass


def interpolate(value):
    """Replace ``${VAR}`` / ``${VAR:default}`` in strings, recursively through lists and dicts.

    A whole-string reference keeps YAML typing of the substituted text (``${PORT:8000}`` -> 8000).
    A variable without a default that is not set is an error, not an empty string.
    """
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(match):
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"environment variable {name} is not set and has no default")
        return default

    whole = _VAR.fullmatch(value)
    if whole:
        text = lookup(whole)
        return yaml.safe_load(text) if text else ""
    return _VAR.sub(lookup, value)


def _typed(text):
    if text.lower() in ("true", "false"):  # a switch such as DIRECTORY_SNAPSHOT_ON_EMPTY
        return text.lower() == "true"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # otherwise only numbers and lists change type; "yes"/"on" and the like stay strings
    return value if isinstance(value, int | float | list) and not isinstance(value, bool) \
        else text


def load_config(path=None, overrides=None):
    """Defaults, then the YAML file (``PAMONG_CONFIG`` if no path), then ``overrides``."""
    config = dict(DEFAULTS)
    for key, value in os.environ.items():
        if key in ENV_KEYS or key.startswith(ENV_PREFIXES):
            config[key] = _typed(value)
    path = path or os.environ.get("PAMONG_CONFIG")
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        config.update(interpolate(loaded))
    config.update(overrides or {})
    config["max_workers"] = config["MAX_WORKERS"]  # the key nameko reads
    return config


def service_section(config, service_name):
    """The per-service section (``services: {name: {...}}``) of a loaded config, or {}."""
    return (config.get("services") or {}).get(service_name) or {}

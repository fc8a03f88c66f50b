"""Notify's delivery settings, read once per process from the service's config (see the
README's table for each one's meaning and default)."""

import json
import os
from dataclasses import dataclass

from services.notify import domain

DEFAULT_DELAYS = (10, 60, 300, 1800)
# events per delivering handler at once: bigger groups of the grouped writes; measured in the
# notify bench (6,000 events): 60 against 20 took a fifth less CPU per message, in notify and
# in the database, and delivered 12-15 % more per second
DEFAULT_SEND_CONCURRENCY = 60


def _list(value, default):
    if value is None or value == "":
        return list(default)
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    return [item.strip() if isinstance(item, str) else item for item in value]


def _int(config, key, default):
    value = config.get(key)
    return default if value in (None, "") else int(value)


def _float(config, key, default):
    value = config.get(key)
    return default if value in (None, "") else float(value)


def send_concurrency():
    """Events of one delivering handler a process works on at once (its prefetch); read from
    the environment when the service module is imported (a decorator's argument)."""
    return int(os.environ.get("NOTIFY_SEND_CONCURRENCY", DEFAULT_SEND_CONCURRENCY))


@dataclass(frozen=True)
class Settings:
    timezone: str
    quiet_hours: tuple | None
    quiet_channels: tuple
    delays: tuple
    jitter: float
    unknown_window: float
    lease_seconds: float
    rates: dict
    paces: dict
    pending_batch: int
    retention_days: float

    @classmethod
    def of(cls, config):
        timeout = _float(config, "NOTIFY_PROVIDER_TIMEOUT_SECONDS", 10.0)
        return cls(
            timezone=str(config.get("NOTIFY_TIMEZONE") or "Asia/Jakarta"),
            quiet_hours=domain.parse_quiet_hours(config.get("NOTIFY_QUIET_HOURS",
                                                            "21:00-06:00")),
            quiet_channels=tuple(_list(config.get("NOTIFY_QUIET_CHANNELS"),
                                       ("whatsapp", "sms"))),
            delays=tuple(float(d) for d in _list(config.get("NOTIFY_RETRY_DELAYS"),
                                                 DEFAULT_DELAYS)),
            jitter=_float(config, "NOTIFY_RETRY_JITTER", 0.2),
            unknown_window=_float(config, "NOTIFY_UNKNOWN_WINDOW_SECONDS", 300.0),
            # an attempt's claim outlives the provider call (its timeout) by a margin
            lease_seconds=timeout + _float(config, "NOTIFY_ATTEMPT_LEASE_MARGIN_SECONDS", 5.0),
            rates={"whatsapp": _int(config, "NOTIFY_RATE_WHATSAPP", 80),
                   "sms": _int(config, "NOTIFY_RATE_SMS", 30),
                   "email": _int(config, "NOTIFY_RATE_EMAIL", 20), "inapp": 0},
            paces={"whatsapp": _float(config, "NOTIFY_PACE_WHATSAPP_SECONDS", 6.0),
                   "sms": _float(config, "NOTIFY_PACE_SMS_SECONDS", 6.0),
                   "email": _float(config, "NOTIFY_PACE_EMAIL_SECONDS", 0.0), "inapp": 0.0},
            pending_batch=_int(config, "NOTIFY_PENDING_BATCH", 500),
            retention_days=_float(config, "NOTIFY_RETENTION_DAYS", 30.0),
        )

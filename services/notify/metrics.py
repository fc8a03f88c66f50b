"""Notify's business metrics (``pamong_notify_*``), registered once per process."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "pamong_notify_messages_total",
    "Notification outcomes by channel and state (sent, delivered, read, deferred, "
    "temporary_failure, permanent_failure, technical_failure, cancelled)",
    ["channel", "state"])
FAILURES = Counter(
    "pamong_notify_failures_total", "Failed provider calls and skipped channels by reason",
    ["channel", "reason"])
PENDING_DEPTH = Gauge(
    "pamong_notify_pending_depth",
    "Notifications waiting for a time (quiet hours, pacing, rate, retry, unknown outcome)")
PENDING_OLDEST = Gauge(
    "pamong_notify_pending_oldest_seconds",
    "How long the oldest waiting notification has waited")
PENDING_OVERDUE = Gauge(
    "pamong_notify_pending_overdue", "Waiting notifications whose time has come")
PROVIDER_LATENCY = Histogram(
    "pamong_notify_provider_seconds", "Provider call latency by channel and result class",
    ["channel", "result"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                    30))
PURGED = Counter(
    "pamong_notify_purged_total", "Notification bodies purged by the retention timer")

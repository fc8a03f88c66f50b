"""The standard ``pamong_`` metrics (DESIGN §7), registered once per process."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "pamong_http_requests_total", "HTTP requests", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "pamong_http_request_seconds", "HTTP request latency", ["service", "route", "method"]
)
EVENTS_PUBLISHED = Counter(
    "pamong_events_published_total", "Events published by the outbox relay", ["source", "type"]
)
EVENTS_UNROUTABLE = Counter(
    "pamong_events_unroutable_total",
    "Events the broker returned because no queue was bound (no module subscribes); the relay "
    "parks them in <service>.unroutable",
    ["source", "type"],
)
EVENTS_CONSUMED = Counter(
    "pamong_events_consumed_total", "Events handled", ["handler", "type", "outcome"]
)
EVENTS_RETRIED = Counter(
    "pamong_events_retried_total", "Events sent to a delay queue", ["handler", "type"]
)
EVENTS_HELD_BACK = Counter(
    "pamong_events_held_back_total",
    "Deliveries given back to their queue after a pause without counting an attempt (the "
    "database or broker failed, or another worker holds the event)",
    ["handler"],
)
EVENTS_DEAD_LETTERED = Counter(
    "pamong_events_dead_lettered_total", "Events parked in a DLQ", ["handler", "type", "reason"]
)
HANDLER_LATENCY = Histogram(
    "pamong_event_handler_seconds", "Event handler latency", ["handler", "type"]
)
OUTBOX_PENDING = Gauge(
    "pamong_outbox_pending_documents", "Documents with unpublished events", ["service"]
)
OUTBOX_QUARANTINED = Counter(
    "pamong_outbox_quarantined_total",
    "Outbox events the relay cannot publish (invalid or not JSON), moved to _outbox_quarantine",
    ["service"],
)
OUTBOX_LAG = Gauge(
    "pamong_outbox_relay_lag_seconds", "Age of the oldest event published in the last batch",
    ["service"],
)

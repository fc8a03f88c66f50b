"""The in-app inbox: the item is written to the person's inbox of the month exactly once
(``store.inbox_write``); delivered there and then."""

from services.notify import domain, store


class InappChannel:
    name = "inapp"

    def send_to(self, db, notification, person, now):
        content = (notification.get("content") or {}).get("inapp")
        if not content:
            return domain.Result(domain.PERMANENT, error="no_content")
        item = {"title": content.get("title"), "body": content.get("body"), "at": now,
                "read_at": None, "event_type": (notification.get("event") or {}).get("type")}
        month_of = notification.get("created_at") or now  # a retry lands in the same month
        store.inbox_write(db, person, notification["_id"], item, month_of)
        return domain.Result(domain.OK, provider_id=store.inbox_month_id(person, month_of),
                             latency_ms=0.0)

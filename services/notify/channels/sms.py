"""An HTTP SMS gateway: ``POST {NOTIFY_SMS_URL}/messages`` with a bearer token and ``{to,
text, reference}`` (``reference``: ``<notification id>:sms:<attempt>``, echoed in the delivery
reports); a 2xx reply carries the gateway's ``id``. Errors: 5xx and 429 temporary,
``invalid_number`` and other 4xx permanent, 401 technical, a timeout unknown."""

from services.notify import domain
from services.notify.channels.http import json_of, post, session


class SmsChannel:
    name = "sms"

    def __init__(self, config, timeout):
        self.url = str(config.get("NOTIFY_SMS_URL") or "").rstrip("/")
        self.token = config.get("NOTIFY_SMS_TOKEN")
        self.timeout = timeout
        self.http = session(config)

    def close(self):
        self.http.close()

    def send(self, notification, address, callback):
        content = (notification.get("content") or {}).get("sms")
        if not content or not content.get("text"):
            return domain.Result(domain.PERMANENT, error="no_content")
        if not self.url:
            return domain.Result(domain.TECHNICAL, error="sms_not_configured")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response, failed, latency = post(
            self.http, f"{self.url}/messages", timeout=self.timeout, headers=headers,
            json={"to": address, "text": content["text"], "reference": callback})
        if failed is not None:
            return failed
        reply = json_of(response)
        if 200 <= response.status_code < 300:
            if reply.get("id"):
                return domain.Result(domain.OK, provider_id=str(reply["id"]),
                                     latency_ms=latency)
            return domain.Result(domain.UNKNOWN, error="no message id in the reply",
                                 latency_ms=latency)
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        code = error.get("code")
        kind = domain.classify(status=response.status_code)
        text = str(code) if code else f"http {response.status_code}"
        return domain.Result(kind, error=text, latency_ms=latency)

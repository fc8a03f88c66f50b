"""WhatsApp Cloud API: ``POST {url}/{version}/{phone number id}/messages`` with a bearer token.

A template message (``content.whatsapp = {template, language, parameters}``) is sent as
``type: template`` with the parameters as the body component's text parameters; free-form
text (``{text}``: the service desk's replies) as ``type: text``, which WhatsApp accepts only
within 24 hours of the citizen's last message (else error 131047). Every send carries
``biz_opaque_callback_data`` (``<notification id>:whatsapp:<attempt>``), echoed in the status
webhooks. Errors by class (``domain.classify``): 5xx, 429 / 130429 temporary; 131026 (not a
WhatsApp user), 131047 and other 4xx permanent; 401 / token and template setup errors
technical; a timeout after the request went out: unknown outcome.
"""

from pamong.privacy import whatsapp_digits
from services.notify import domain
from services.notify.channels.http import json_of, post, session


class WhatsAppChannel:
    name = "whatsapp"

    def __init__(self, config, timeout):
        self.base = str(config.get("NOTIFY_WHATSAPP_URL") or "https://graph.facebook.com") \
            .rstrip("/")
        self.version = str(config.get("NOTIFY_WHATSAPP_VERSION") or "v21.0")
        self.phone_number_id = config.get("NOTIFY_WHATSAPP_PHONE_NUMBER_ID")
        self.token = config.get("NOTIFY_WHATSAPP_TOKEN")
        self.language = str(config.get("NOTIFY_WHATSAPP_LANGUAGE") or "id")
        self.timeout = timeout
        self.http = session(config)

    def close(self):
        self.http.close()

    def body(self, content, address, callback):
        """The request body for ``content`` (``{template, language, parameters}`` or
        ``{text}``) to ``address`` (E.164)."""
        base = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": whatsapp_digits(address), "biz_opaque_callback_data": callback}
        if content.get("text") is not None and not content.get("template"):
            return {**base, "type": "text",
                    "text": {"preview_url": False, "body": content["text"]}}
        parameters = [{"type": "text", "text": str(p)} for p in content.get("parameters") or ()]
        template = {"name": content["template"],
                    "language": {"code": content.get("language") or self.language}}
        if parameters:
            template["components"] = [{"type": "body", "parameters": parameters}]
        return {**base, "type": "template", "template": template}

    def send(self, notification, address, callback):
        content = (notification.get("content") or {}).get("whatsapp")
        if not content:
            return domain.Result(domain.PERMANENT, error="no_content")
        if not (self.phone_number_id and self.token):
            return domain.Result(domain.TECHNICAL, error="whatsapp_not_configured")
        try:
            body = self.body(content, address, callback)
        except ValueError:
            return domain.Result(domain.PERMANENT, error="invalid_address")
        url = f"{self.base}/{self.version}/{self.phone_number_id}/messages"
        response, failed, latency = post(self.http, url, json=body, timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {self.token}"})
        if failed is not None:
            return failed
        reply = json_of(response)
        if 200 <= response.status_code < 300:
            messages = reply.get("messages") or [{}]
            wamid = messages[0].get("id") if isinstance(messages[0], dict) else None
            if wamid:
                return domain.Result(domain.OK, provider_id=wamid, latency_ms=latency)
            return domain.Result(domain.UNKNOWN, error="no message id in the reply",
                                 latency_ms=latency)
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        code = error.get("code")
        code = code if isinstance(code, int) else None
        kind = domain.classify(status=response.status_code, code=code)
        label = {domain.NOT_WHATSAPP_USER: "not_whatsapp_user",
                 domain.OUTSIDE_WINDOW: "outside_24h_window"}.get(code)
        text = label or f"http {response.status_code}" + (f" code {code}" if code else "")
        return domain.Result(kind, error=text, code=code, latency_ms=latency)

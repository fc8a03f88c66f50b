"""Email over SMTP (``smtplib``): a multipart/alternative message with the plain text and the
HTML part, STARTTLS when ``NOTIFY_SMTP_STARTTLS`` (default true), login when a user is set.
The ``Message-ID`` is derived from the notification and attempt, so a repeat after an unknown
outcome is recognisable as the same message. Errors: the server refusing the recipient
(5xx) permanent, 4xx and a refused connection temporary, a connection lost after ``DATA``
unknown, no ``NOTIFY_SMTP_HOST`` or a failed login technical."""

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate

from services.notify import domain


def truthy(value, default=True):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class EmailChannel:
    name = "email"

    def __init__(self, config, timeout):
        self.host = config.get("NOTIFY_SMTP_HOST")
        self.port = int(config.get("NOTIFY_SMTP_PORT") or 587)
        self.starttls = truthy(config.get("NOTIFY_SMTP_STARTTLS"), default=True)
        self.user = config.get("NOTIFY_SMTP_USER")
        self.password = config.get("NOTIFY_SMTP_PASSWORD")
        self.sender = config.get("NOTIFY_SMTP_FROM") or "notifikasi@pamong.local"
        self.timeout = timeout

    def message(self, content, address, callback):
        message = EmailMessage()
        message["Subject"] = content.get("subject") or ""
        message["From"] = self.sender
        message["To"] = address
        message["Date"] = formatdate(usegmt=True)
        domain_part = self.sender.rsplit("@", 1)[-1]
        message["Message-ID"] = f"<{callback.replace(':', '.')}@{domain_part}>"
        message["X-Pamong-Notification"] = callback
        message.set_content(content.get("text") or "")
        if content.get("html"):
            message.add_alternative(content["html"], subtype="html")
        return message

    def send(self, notification, address, callback):
        content = (notification.get("content") or {}).get("email")
        if not content:
            return domain.Result(domain.PERMANENT, error="no_content")
        if not self.host:
            return domain.Result(domain.TECHNICAL, error="smtp_not_configured")
        message = self.message(content, address, callback)
        started = time.monotonic()
        stage = "connect"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                stage = "session"
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                stage = "data"
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            return self._result(domain.TECHNICAL, f"smtp login refused ({exc.smtp_code})",
                                started)
        except smtplib.SMTPNotSupportedError:
            return self._result(domain.TECHNICAL, "smtp server does not offer STARTTLS",
                                started)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            kind = domain.TEMPORARY if codes and all(400 <= c < 500 for c in codes) \
                else domain.PERMANENT
            return self._result(kind, f"recipient refused ({codes[0] if codes else '?'})",
                                started)
        except smtplib.SMTPResponseException as exc:
            kind = domain.TEMPORARY if 400 <= exc.smtp_code < 500 else domain.PERMANENT
            if stage != "data":
                kind = domain.TEMPORARY if kind == domain.TEMPORARY else domain.TECHNICAL
            return self._result(kind, f"smtp {exc.smtp_code}", started)
        except (ssl.SSLError, smtplib.SMTPHeloError) as exc:
            return self._result(domain.TECHNICAL, f"smtp {type(exc).__name__}", started)
        except OSError as exc:  # disconnected, refused, timed out
            kind = domain.UNKNOWN if stage == "data" else domain.TEMPORARY
            return self._result(kind, f"smtp {type(exc).__name__} ({stage})", started)
        if refused:
            return self._result(domain.PERMANENT, "recipient refused", started)
        return domain.Result(domain.OK, provider_id=message["Message-ID"],
                             latency_ms=round((time.monotonic() - started) * 1000, 1))

    def _result(self, kind, error, started):
        return domain.Result(kind, error=error,
                             latency_ms=round((time.monotonic() - started) * 1000, 1))

"""What the notify integration tests share: the third-party stand-ins, the settings that
point a notify service at them, a running notify (in the test's process or as a child
process), and small helpers.

    def test_x(notify):                       # fixture from tests/integration/conftest.py
        notify.wa.plan(500)
        ... publish an event / call notify.client ...
        wait_until(lambda: notify.wa.received(to="6281234567890"))

    def test_two(config, notify):             # a second replica on the same database
        other = start_notify_process(config, notify.settings)
        ...
        other.stop()

The fixture's defaults make tests deterministic: no quiet hours, no per-recipient pacing,
timers off (``NOTIFY_PENDING_INTERVAL_SECONDS: 0``; a test runs a timer round itself), a
provider timeout of 1 s (the stand-ins hold a "timeout" reply for 5 s). ``notify_with(**settings)``
starts one with other settings.
"""

import signal
import subprocess
from dataclasses import dataclass, field

from pamong.config import ENV_KEYS, ENV_PREFIXES
from pamong.testing import HttpClient, free_port, serve_process

API = "/api/notify/v1"

WA_APP_SECRET = "test-app-secret"
WA_PHONE_NUMBER_ID = "100200300"
WA_TOKEN = "test-wa-token"
WA_VERIFY_TOKEN = "test-verify-token"
SMS_SECRET = "sms-secret"
SMS_TOKEN = "test-sms-token"
SMTP_FROM = "Pamong <notifikasi@pamong.test>"


def start_standins():
    """A WhatsApp, an SMTP and an SMS stand-in, started: ``(wa, smtp, sms)``."""
    from services.notify.standins import SmsStandin, SmtpStandin, WhatsAppStandin

    wa = WhatsAppStandin(app_secret=WA_APP_SECRET, phone_number_id=WA_PHONE_NUMBER_ID,
                         token=WA_TOKEN).start()
    smtp = SmtpStandin().start()
    sms = SmsStandin(secret=SMS_SECRET, token=SMS_TOKEN).start()
    return wa, smtp, sms


def notify_settings(config, port, wa, smtp, sms, **overrides):
    """A notify service's settings: ``config`` (the test's broker and database) pointed at
    the stand-ins, serving on ``port``."""
    return {
        **config,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "DIRECTORY_SNAPSHOT_ON_EMPTY": False,
        "NOTIFY_WHATSAPP_URL": wa.url,
        "NOTIFY_WHATSAPP_VERSION": "v21.0",
        "NOTIFY_WHATSAPP_PHONE_NUMBER_ID": WA_PHONE_NUMBER_ID,
        "NOTIFY_WHATSAPP_TOKEN": WA_TOKEN,
        "NOTIFY_WHATSAPP_APP_SECRET": WA_APP_SECRET,
        "NOTIFY_WHATSAPP_VERIFY_TOKEN": WA_VERIFY_TOKEN,
        "NOTIFY_WHATSAPP_LANGUAGE": "id",
        "NOTIFY_SMTP_HOST": smtp.host,
        "NOTIFY_SMTP_PORT": smtp.port,
        "NOTIFY_SMTP_STARTTLS": False,
        "NOTIFY_SMTP_FROM": SMTP_FROM,
        "NOTIFY_SMS_URL": sms.url,
        "NOTIFY_SMS_TOKEN": SMS_TOKEN,
        "NOTIFY_SMS_SECRET": SMS_SECRET,
        "NOTIFY_PROVIDER_TIMEOUT_SECONDS": 1,
        "NOTIFY_RETRY_DELAYS": [1, 2, 4],
        "NOTIFY_RETRY_JITTER": 0,
        "NOTIFY_UNKNOWN_WINDOW_SECONDS": 2,
        "NOTIFY_QUIET_HOURS": "",  # none: a test must not depend on the hour it runs at
        "NOTIFY_PACE_WHATSAPP_SECONDS": 0,
        "NOTIFY_PACE_SMS_SECONDS": 0,
        "NOTIFY_PACE_EMAIL_SECONDS": 0,
        "NOTIFY_PENDING_INTERVAL_SECONDS": 0,  # timers off: a test runs a round itself
        "NOTIFY_PURGE_INTERVAL_SECONDS": 0,
        "NOTIFY_REFERENCE_CACHE_SECONDS": 0,
        "NOTIFY_PUBLIC_URL": "https://layanan.pamong.test",
        **overrides,
    }


@dataclass
class NotifyRunning:
    """A notify service under test and its stand-ins."""

    client: HttpClient
    db: object
    settings: dict
    wa: object
    smtp: object
    sms: object
    container: object = None
    port: int = 0

    @property
    def webhook_url(self):
        return f"http://127.0.0.1:{self.port}{API}/webhooks/whatsapp"

    @property
    def report_url(self):
        return f"http://127.0.0.1:{self.port}{API}/webhooks/sms"


@dataclass
class NotifyProcess:
    """``pamong serve notify`` in a child process (``start_notify_process``)."""

    process: subprocess.Popen
    port: int
    client: HttpClient
    extra: dict = field(default_factory=dict)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self):
        return f"{self.url}{API}/webhooks/whatsapp"

    def poll(self):
        return self.process.poll()

    def kill(self):
        """SIGKILL (a crash: in-flight work is left as it was) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self):
        """SIGTERM (a graceful stop) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def start_notify_process(config, settings, port=None, **env):
    """A notify replica in a child process with ``settings`` (a ``notify`` fixture's, or
    ``notify_settings(...)``'s; its broker, database, stand-ins and NOTIFY_* switches) plus
    ``env``; returns a ``NotifyProcess`` once it answers ``/health/ready``. The caller stops
    it (``stop()``, or ``kill()`` for a crash)."""
    port = port or free_port()
    passed = {key: _env_value(value) for key, value in {**settings, **env}.items()
              if (key in ENV_KEYS or key.startswith(ENV_PREFIXES))
              and key != "WEB_SERVER_ADDRESS" and value is not None}
    process = serve_process(config, "notify", port, **passed)
    return NotifyProcess(process, port, HttpClient(f"http://127.0.0.1:{port}", config))


def _env_value(value):
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def wa_digits(phone):
    """``+6281234567890`` -> ``6281234567890`` (how WhatsApp names a number)."""
    return phone.lstrip("+")


# -- notifications through the ad-hoc send API ------------------------------------------------

CONTENT = {
    "whatsapp": {"template": "pamong_uji", "language": "id", "parameters": ["Siti", "REG-1"]},
    "sms": {"text": "Pesan uji dari Pamong."},
    "email": {"subject": "Pesan uji", "text": "Pesan uji dari Pamong.",
              "html": "<p>Pesan uji dari <b>Pamong</b>.</p>"},
    "inapp": {"title": "Pesan uji", "body": "Pesan uji dari Pamong."},
}


def service_token(client, sub="svc-test"):
    return client.token(roles=("service",), opd=None, sub=sub)


def adhoc(running, phone="+6281234567890", channels=("whatsapp",), priority="normal",
          key=None, email=None, person=None, content=None):
    """``POST /notifications`` (role service) with the test texts of ``CONTENT``; the
    notification as the API answers it (202)."""
    import uuid

    body = {"recipient": {"phone": phone, "email": email, "person": person, "name": "Siti"},
            "channels": list(channels), "priority": priority,
            "content": content or {c: CONTENT[c] for c in channels}}
    r = running.client.request("POST", f"{API}/notifications", token=service_token(
        running.client), headers={"Idempotency-Key": key or uuid.uuid4().hex}, json=body)
    assert r.status_code == 202, r.text
    return r.json()


def stored(running, notification_id):
    """The notification document as notify keeps it."""
    return running.db.notifications.find_one({"_id": notification_id})


def wait_state(running, notification_id, *states, timeout=15):
    """Wait until the notification is in one of ``states``; the document."""
    from pamong.testing import wait_until

    return wait_until(lambda: (doc := stored(running, notification_id)) is not None
                      and doc["state"] in states and doc, timeout=timeout,
                      message=f"notification {notification_id} in {states}")

"""``make run`` for notify: ``before_start`` starts the stand-ins in a child process and points
the environment (which the modules started afterwards inherit) at them; ``seed`` points the
stand-ins back at notify and sends the demo messages once."""

import os
import re

import pytest
import requests

from pamong.testing import wait_until
from services.notify import seed
from tests.integration.notify_support import start_notify_process

pytestmark = pytest.mark.integration


@pytest.fixture
def environment():
    """``os.environ`` as it was, back after the test (before_start changes it, as it must)."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("NOTIFY_")]:
        del os.environ[key]
    yield os.environ
    seed.stop_standins()
    os.environ.clear()
    os.environ.update(saved)


def test_before_start_and_seed_show_messages_flowing(config, environment, tmp_path):
    environment["NOTIFY_STANDIN_MAILDIR"] = str(tmp_path / "mail")
    settings = seed.before_start(config)
    process = seed._running["process"]
    assert process.poll() is None
    for key in ("NOTIFY_WHATSAPP_URL", "NOTIFY_WHATSAPP_TOKEN", "NOTIFY_WHATSAPP_APP_SECRET",
                "NOTIFY_SMTP_HOST", "NOTIFY_SMTP_PORT", "NOTIFY_SMS_URL", "NOTIFY_SMS_SECRET"):
        assert environment[key] == settings[key]
    assert environment["NOTIFY_SMTP_STARTTLS"] == "false"
    urls = seed._running["urls"]

    # notify started afterwards inherits the environment, as under `pamong run`
    notify = start_notify_process(config, config)
    try:
        sent = seed.seed(notify.url, config)
        assert len(sent) == 2
        wa_view = f"{urls['whatsapp']}/_standin/messages"
        messages = wait_until(lambda: requests.get(wa_view, timeout=5).json(),
                              message="the demo WhatsApp message at the stand-in")
        assert messages[0]["message"]["template"]["name"] == "pamong_demo"
        assert messages[0]["to"] == seed.DEMO_PHONE[1:]
        wait_until(lambda: list((tmp_path / "mail").glob("*.eml")),
                   message="the demo email on disk")
        # the stand-in's statuses reach notify (its webhook URL was corrected by seed)
        token = notify.client.token(roles=("admin",), opd="3510", sub="admin-1")
        whatsapp_id = sent[0]["id"]

        def state():
            r = notify.client.request("GET", f"{seed.API}/notifications/{whatsapp_id}",
                                      token=token)
            return r.ok and r.json()["notification"]["state"] == "read"

        wait_until(state, timeout=20, message="the demo message read")
        # a second run sends nothing new
        assert [m["id"] for m in seed.seed(notify.url, config)] == [m["id"] for m in sent]
        assert len(requests.get(wa_view, timeout=5).json()) == 1
    finally:
        notify.stop()
    seed.stop_standins()
    assert process.poll() is not None


def test_configured_providers_are_left_alone(config, environment):
    environment.update({"NOTIFY_WHATSAPP_URL": "https://graph.facebook.com",
                        "NOTIFY_SMTP_HOST": "smtp.example.id",
                        "NOTIFY_SMS_URL": "https://sms.example.id"})
    assert seed.before_start(config) is None
    assert "process" not in seed._running
    environment["NOTIFY_STANDINS"] = "false"
    del environment["NOTIFY_SMS_URL"]
    assert seed.before_start(config) is None


def test_only_the_missing_channels_get_stand_ins(config, environment, tmp_path):
    environment["NOTIFY_STANDIN_MAILDIR"] = str(tmp_path)
    environment["NOTIFY_SMTP_HOST"] = "smtp.example.id"
    settings = seed.before_start(config)
    assert "NOTIFY_SMTP_HOST" not in settings and environment["NOTIFY_SMTP_HOST"] == \
        "smtp.example.id"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", settings["NOTIFY_WHATSAPP_URL"])
    assert "NOTIFY_SMS_URL" in settings

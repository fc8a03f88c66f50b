"""Notify under ``make run`` (``pamong run --demo``): local stand-ins instead of WhatsApp, an
SMTP server and an SMS gateway, so a newcomer sees messages flow without any account.

``before_start(config)`` (the launcher calls it before any module starts) starts
``python -m services.notify.standins`` as a child process and puts the ``NOTIFY_*`` settings
that point at it into this process's environment, which the modules started afterwards
inherit: WhatsApp Cloud API stand-in on 127.0.0.1:8090, SMS gateway on 8091, SMTP on 8025
(another free port when one is taken), secrets and tokens fresh for each run, emails
written to ``.run/notify/mail/`` (``NOTIFY_STANDIN_MAILDIR`` elsewhere). A channel whose
settings the environment already has (``NOTIFY_WHATSAPP_URL``, ``NOTIFY_SMTP_HOST``,
``NOTIFY_SMS_URL``: a real provider) is left alone; ``NOTIFY_STANDINS=false`` starts none.
The stand-ins log every message they receive on the terminal, answer
``GET /_standin/messages`` (WhatsApp and SMS), write each email to ``.run/notify/mail/``, and
post signed ``sent``, ``delivered`` and ``read`` statuses back to notify. They stop with the
launcher (and by themselves when it is gone).

``seed(base_url, config)`` (once notify answers) points the stand-ins' callbacks at notify's
real port and sends two demo messages through the ad-hoc send API (a WhatsApp template with
SMS as its fallback, and an email), each with a fixed ``Idempotency-Key``, so a second run
sends nothing new. They are ``critical`` so that they show at any hour (quiet hours would
hold a normal one until the morning).
"""

import atexit
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import requests

from pamong.auth import mint_token
from pamong.modules import PROJECT_ROOT

API = "/api/notify/v1"
PORTS = {"whatsapp": 8090, "sms": 8091, "smtp": 8025}
# notify's port under `pamong run` with the default first port (8001 + its place, 4); seed()
# corrects it when --first-port moved it
DEFAULT_NOTIFY_URL = "http://127.0.0.1:8005"
MAILDIR = PROJECT_ROOT / ".run" / "notify" / "mail"
DEMO_PHONE = "+6281100000001"
DEMO_EMAIL = "warga.demo@example.id"
START_SECONDS = 20

_running = {}  # what before_start started: {"process", "urls"}


def before_start(config):
    """Start the stand-ins (unless real providers are configured) and point notify at them;
    the settings set, or None when nothing was started."""
    if str(os.environ.get("NOTIFY_STANDINS", "true")).lower() in ("false", "0", "no"):
        print("notify demo: NOTIFY_STANDINS=false, no stand-ins started")
        return None
    wanted = {"whatsapp": "NOTIFY_WHATSAPP_URL", "smtp": "NOTIFY_SMTP_HOST",
              "sms": "NOTIFY_SMS_URL"}
    missing = [channel for channel, key in wanted.items() if not _configured(config, key)]
    if not missing:
        print("notify demo: WhatsApp, SMTP and SMS providers are configured; no stand-ins")
        return None
    urls = start_standins(maildir=os.environ.get("NOTIFY_STANDIN_MAILDIR") or MAILDIR)
    settings = standin_settings(urls, missing)
    for key, value in settings.items():
        os.environ[key] = value
    print(f"notify demo: stand-ins for {', '.join(missing)} started: WhatsApp "
          f"{urls['whatsapp']}/_standin/messages, SMS {urls['sms']}/_standin/messages, "
          f"SMTP {urls['smtp_host']}:{urls['smtp_port']} (emails in {urls['maildir']})",
          flush=True)
    return settings


def _configured(config, key):
    return bool(os.environ.get(key) or (config or {}).get(key))


def start_standins(notify_url=DEFAULT_NOTIFY_URL, maildir=MAILDIR):
    """``python -m services.notify.standins`` in a process group of its own (the terminal's
    Ctrl-C goes to the launcher, which stops notify first); the URLs it reports."""
    secrets_ = {"app_secret": secrets.token_hex(16), "sms_secret": secrets.token_hex(16),
                "token": secrets.token_hex(16), "sms_token": secrets.token_hex(16),
                "verify_token": secrets.token_hex(8)}
    process = subprocess.Popen(  # noqa: S603 - our interpreter and module
        [sys.executable, "-m", "services.notify.standins",
         "--whatsapp-port", str(PORTS["whatsapp"]), "--sms-port", str(PORTS["sms"]),
         "--smtp-port", str(PORTS["smtp"]),
         "--app-secret", secrets_["app_secret"], "--token", secrets_["token"],
         "--sms-secret", secrets_["sms_secret"], "--sms-token", secrets_["sms_token"],
         "--webhook-url", f"{notify_url}{API}/webhooks/whatsapp",
         "--report-url", f"{notify_url}{API}/webhooks/sms",
         "--maildir", str(maildir), "--parent-pid", str(os.getpid())],
        cwd=str(PROJECT_ROOT), stdout=subprocess.PIPE, text=True, process_group=0)
    line = _first_line(process)
    if not line:
        process.kill()
        process.wait()
        raise SystemExit("notify demo: the stand-ins (python -m services.notify.standins) did "
                         f"not start within {START_SECONDS} s; see the lines above")
    urls = {**json.loads(line), **secrets_, "maildir": str(maildir)}
    _running.update(process=process, urls=urls)
    atexit.register(stop_standins)
    return urls


def _first_line(process):
    """The ready line, or None when the process ended or took too long."""
    import select

    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            return process.stdout.readline().strip() or None
    return None


def stop_standins():
    process = _running.pop("process", None)
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def standin_settings(urls, channels=("whatsapp", "smtp", "sms")):
    """The ``NOTIFY_*`` environment that points notify at the stand-ins (strings)."""
    settings = {}
    if "whatsapp" in channels:
        settings.update({
            "NOTIFY_WHATSAPP_URL": urls["whatsapp"],
            "NOTIFY_WHATSAPP_PHONE_NUMBER_ID": "100200300",
            "NOTIFY_WHATSAPP_TOKEN": urls["token"],
            "NOTIFY_WHATSAPP_APP_SECRET": urls["app_secret"],
            "NOTIFY_WHATSAPP_VERIFY_TOKEN": urls["verify_token"]})
    if "smtp" in channels:
        settings.update({"NOTIFY_SMTP_HOST": urls["smtp_host"],
                         "NOTIFY_SMTP_PORT": str(urls["smtp_port"]),
                         "NOTIFY_SMTP_STARTTLS": "false",
                         "NOTIFY_SMTP_FROM": "Pemerintah Daerah (demo) <notifikasi@pamong.local>"})
    if "sms" in channels:
        settings.update({"NOTIFY_SMS_URL": urls["sms"], "NOTIFY_SMS_TOKEN": urls["sms_token"],
                         "NOTIFY_SMS_SECRET": urls["sms_secret"]})
    return settings


def seed(base_url, config):
    """Point the stand-ins at notify's port, then send the demo messages (once)."""
    urls = _running.get("urls")
    if urls:
        for standin, key, path in (("whatsapp", "webhook_url", "whatsapp"),
                                   ("sms", "report_url", "sms")):
            requests.post(f"{urls[standin]}/_standin/config",
                          json={key: f"{base_url}{API}/webhooks/{path}"}, timeout=5)
    token = mint_token(config, "notify-demo", ["service"])
    sent = []
    for key, body in demo_messages():
        r = requests.post(f"{base_url}{API}/notifications", json=body, timeout=30, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": key})
        if r.status_code >= 300:
            print(f"notify demo: {key} refused ({r.status_code}): {r.text[:300]}")
            continue
        sent.append(r.json())
    print(f"notify demo: {len(sent)} demo messages requested; watch the stand-in lines "
          f"(\"WhatsApp to ...\", \"email to ...\") and GET {base_url}{API}/notifications "
          "with an admin token")
    return sent


def demo_messages():
    """``(Idempotency-Key, body)`` of the demo messages."""
    return [
        ("notify-demo-whatsapp-1", {
            "recipient": {"phone": DEMO_PHONE, "name": "Warga Demo"},
            "channels": ["whatsapp", "sms"], "priority": "critical",
            "content": {
                "whatsapp": {"template": "pamong_demo", "language": "id",
                             "parameters": ["Warga Demo", "make run"]},
                "sms": {"text": "Pamong demo: notifikasi berjalan. Balas tidak diperlukan."}}}),
        ("notify-demo-email-1", {
            "recipient": {"email": DEMO_EMAIL, "name": "Warga Demo"},
            "channels": ["email"], "priority": "critical",
            "content": {"email": {
                "subject": "Pamong demo: notifikasi email berjalan",
                "text": "Yth. Warga Demo,\n\nEmail ini dikirim oleh modul notify saat "
                        "make run, ke server SMTP lokal.\n\nTerima kasih.",
                "html": "<p>Yth. Warga Demo,</p><p>Email ini dikirim oleh modul "
                        "<strong>notify</strong> saat <code>make run</code>, ke server SMTP "
                        "lokal.</p><p>Terima kasih.</p>"}}}),
    ]

"""``python -m services.notify.standins``: the three stand-ins in one process, for ``make run``.

Prints one JSON line on stdout once all three listen (``{"whatsapp": url, "sms": url,
"smtp_host", "smtp_port"}``), then logs every message it receives on stderr. Stops on
SIGTERM/SIGINT, and by itself when ``--parent-pid`` is gone (the launcher was killed).
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from services.notify.standins import SmsStandin, SmtpStandin, WhatsAppStandin

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _port_or_free(port):
    """``port`` when nothing listens there, else 0 (a free one)."""
    import socket

    if not port:
        return 0
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.notify.standins")
    parser.add_argument("--whatsapp-port", type=int, default=8090)
    parser.add_argument("--sms-port", type=int, default=8091)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--app-secret", default="dev-whatsapp-app-secret")
    parser.add_argument("--phone-number-id", default="100200300")
    parser.add_argument("--token", default=None, help="the bearer token sends must carry")
    parser.add_argument("--sms-secret", default="dev-sms-secret")
    parser.add_argument("--sms-token", default=None)
    parser.add_argument("--webhook-url", default=None, help="notify's WhatsApp webhook")
    parser.add_argument("--report-url", default=None, help="notify's SMS report webhook")
    parser.add_argument("--auto-status", default="sent,delivered,read",
                        help="statuses posted after each WhatsApp send (comma-separated)")
    parser.add_argument("--status-delay", type=float, default=1.0)
    parser.add_argument("--maildir", default=None, help="write received emails here")
    parser.add_argument("--templates-dir", default=str(TEMPLATES),
                        help="notify's templates: a WhatsApp send is logged as it reads")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s stand-in %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: every SMTP verb

    wa = WhatsAppStandin(app_secret=args.app_secret, phone_number_id=args.phone_number_id,
                         token=args.token, port=_port_or_free(args.whatsapp_port),
                         webhook_url=args.webhook_url, templates_dir=args.templates_dir)
    wa.auto_status = [s for s in args.auto_status.split(",") if s]
    wa.status_delay = args.status_delay
    wa.status_on_timeout = True
    wa.webhook_retries = 5
    sms = SmsStandin(secret=args.sms_secret, token=args.sms_token,
                     port=_port_or_free(args.sms_port), report_url=args.report_url)
    sms.auto_report = ["delivered"]
    sms.report_delay = args.status_delay
    smtp = SmtpStandin(port=_port_or_free(args.smtp_port), maildir=args.maildir)
    started = [wa.start(), sms.start(), smtp.start()]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps({"whatsapp": wa.url, "sms": sms.url, "smtp_host": smtp.host,
                      "smtp_port": smtp.port}), flush=True)
    try:
        while not stop.wait(1.0):
            if args.parent_pid and not _alive(args.parent_pid):
                break
    finally:
        for standin in reversed(started):
            standin.stop()
    return 0


def _alive(pid):
    if os.getppid() != pid:  # re-parented: the launcher is gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    sys.exit(main())

"""A local SMTP server (aiosmtpd) that keeps what it receives.

    smtp = SmtpStandin().start()        # 127.0.0.1, a free port: smtp.host, smtp.port
    smtp.messages                       # email.message.EmailMessage objects, in arrival order
    smtp.envelopes                      # {"mail_from", "rcpt_tos", "message", "at"}
    smtp.plan(451, "ok", 550)           # the next DATA commands: 4xx temporary, 5xx permanent
    smtp.rejected.add("x@example.id")   # RCPT TO that address: 550 5.1.1

With ``user`` and ``password`` it requires AUTH (PLAIN or LOGIN, allowed without TLS: it is
local); with ``maildir`` it also writes every message as an ``.eml`` file there (``make run``
keeps them under ``.run/notify/mail/``).
"""

import asyncio
import email
import email.policy
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from pamong.privacy import mask_text

log = logging.getLogger("pamong.standins.smtp")


REPLIES = {"ok": "250 2.0.0 Message accepted for delivery",
           421: "421 4.3.2 Service not available, closing transmission channel",
           450: "450 4.2.1 Mailbox busy, try again later",
           451: "451 4.3.0 Temporary failure, try again later",
           452: "452 4.3.1 Insufficient system storage",
           550: "550 5.1.1 Mailbox unavailable",
           552: "552 5.3.4 Message too big",
           554: "554 5.7.1 Message rejected"}


class _Handler:
    def __init__(self, standin):
        self.standin = standin

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # AUTH required (when the stand-in has a user) is checked here rather than by
        # aiosmtpd's auth_required, which warns about AUTH without TLS on every connection
        if self.standin.user is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in {a.lower() for a in self.standin.rejected}:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        standin = self.standin
        with standin._lock:
            outcome = standin._planned.pop(0) if standin._planned else "ok"
        if outcome == "timeout":
            await asyncio.sleep(standin.hold_seconds)
            return REPLIES[451]
        if outcome != "ok":
            return REPLIES.get(outcome, f"{outcome} planned failure")
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        entry = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                 "message": message, "at": datetime.now(UTC)}
        with standin._lock:
            standin.envelopes.append(entry)
            standin.messages.append(message)
            number = len(standin.messages)
        if standin.maildir is not None:
            name = f"{entry['at']:%Y%m%dT%H%M%S}-{number:05d}.eml"
            (standin.maildir / name).write_bytes(envelope.original_content or envelope.content)
        log.info("email to %s: %s", mask_text(", ".join(envelope.rcpt_tos)),
                 mask_text(str(message.get("Subject", ""))))
        return REPLIES["ok"]


class SmtpStandin:
    def __init__(self, host="127.0.0.1", port=0, user=None, password=None, maildir=None):
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.maildir = Path(maildir) if maildir else None
        self.messages = []
        self.envelopes = []
        self.rejected = set()
        self.hold_seconds = 5.0
        self._planned = []
        self._lock = threading.Lock()
        self._controller = None

    def plan(self, *outcomes):
        """Queue replies to the next DATA commands: ``"ok"``, an SMTP code (451, 550...) or
        ``"timeout"`` (held ``hold_seconds``, then 451)."""
        with self._lock:
            self._planned.extend(outcomes)

    def received(self, to=None):
        with self._lock:
            return [e["message"] for e in self.envelopes
                    if to is None or to.lower() in (r.lower() for r in e["rcpt_tos"])]

    def start(self):
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        kwargs = {}
        if self.user is not None:
            kwargs.update(auth_require_tls=False, authenticator=self._authenticate)
        last_error = None
        for _ in range(5):  # a free port may be taken between the probe and the bind
            port = self.port or _free_port(self.host)
            controller = Controller(_Handler(self), hostname=self.host, port=port,
                                    server_hostname="smtp.standin.local", ready_timeout=10,
                                    enable_SMTPUTF8=True, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:
                last_error = exc
                if self.port:
                    raise
                time.sleep(0.05)
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"the SMTP stand-in could not start: {last_error}")

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"") or b""
        password = getattr(auth_data, "password", b"") or b""
        ok = (login.decode(errors="replace") == self.user
              and password.decode(errors="replace") == self.password)
        return AuthResult(success=ok, handled=False)

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def messages_view(self):
        with self._lock:
            return [{"at": e["at"].isoformat(), "from": e["mail_from"], "to": e["rcpt_tos"],
                     "subject": str(e["message"].get("Subject", ""))} for e in self.envelopes]


def _free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

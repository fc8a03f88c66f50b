"""The WhatsApp service desk: what a citizen writes to the Pemda's number is answered here.

The webhook stores each inbound message once (by its ``wamid``) with a
``notification.inbound_received`` event; ``ServiceDesk.answer_inbound`` handles that event:

- ``BERHENTI`` / ``STOP`` (the whole message): that number is opted out of WhatsApp
  (``addresses`` ``whatsapp:<E.164>``) and gets a confirmation;
- ``MULAI`` / ``START``: opted back in, with a confirmation;
- ``STATUS <registration number>`` (or ``CEK <number>``): the permit's public status through
  the permits module's RPC ``public_status(number, phone)``, which answers only for the
  applicant's own phone; not found and not theirs get the same neutral answer (nobody learns
  that a number exists); permits unreachable (RPC timeout, not installed, an error) gets
  "try again later", never an exception loop;
- ``BANTUAN`` / ``HELP``: what the desk understands; anything else: a short menu.

Each reply is a free-form WhatsApp text (the inbound message just opened the 24-hour window)
sent through ``request_delivery`` as a notification of rule ``desk``, priority ``critical``
(an answer the citizen asked for: quiet hours do not hold it back, and the opt-out
confirmation still reaches the number that just opted out). Its ``_id`` comes from the
inbound ``wamid``, so a redelivered event or a handler re-run after a crash sends one reply.

An opt-out or opt-in is recorded with the message's own time (``opted_at``; within one
second, the time notify received it) and only over an older choice, so "BERHENTI" then
"MULAI" handled out of order still ends opted in.

The pure part (``parse``, ``reply_text``, ``status_text``) has no nameko, pymongo or HTTP.
"""

import logging
import re
from dataclasses import dataclass
from datetime import date

import pymongo.errors
from nameko.exceptions import ContainerBeingKilled

from pamong.contracts import notify as contracts  # noqa: F401 - registers the contracts
from pamong.events.consumer import handles
from pamong.privacy import mask_phone
from pamong.rpc import Rpc
from pamong.storage import db_now
from services.notify import domain
from services.notify.store import ADDRESSES, INBOUND

log = logging.getLogger(__name__)

RULE = "desk"

# -- the pure part ----------------------------------------------------------------------------

STOP, START, STATUS, HELP, MENU = "stop", "start", "status", "help", "menu"
_WHOLE = {"BERHENTI": STOP, "STOP": STOP, "MULAI": START, "START": START,
          "BANTUAN": HELP, "HELP": HELP, "MENU": MENU}
_STATUS_WORDS = ("STATUS", "CEK")
MAX_NUMBER_LENGTH = 40
MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")


@dataclass(frozen=True)
class Command:
    kind: str  # stop | start | status | help | menu
    number: str | None = None  # STATUS: the registration number as written (normalised)


def parse(text):
    """What an inbound message asks for. Case, surrounding spaces and trailing punctuation do
    not matter; an opt-out or opt-in must be the whole message (a sentence that happens to
    start with "stop" gets the menu, which explains the keyword)."""
    words = re.sub(r"[^\w\s/-]", " ", str(text or "")).upper().split()
    if not words:
        return Command(MENU)
    whole = " ".join(words)
    if whole in _WHOLE:
        return Command(_WHOLE[whole])
    if words[0] in _STATUS_WORDS:
        rest = words[1:]
        if rest and rest[0] == "STATUS" and words[0] == "CEK":  # "CEK STATUS REG-..."
            rest = rest[1:]
        return Command(STATUS, normalize_number(" ".join(rest)) or None)
    return Command(MENU)


def normalize_number(raw):
    """``reg 2026 000123`` / ``REG-2026-000123`` -> ``REG-2026-000123``."""
    return re.sub(r"-{2,}", "-", re.sub(r"[\s_/]+", "-", raw.strip().upper())).strip("-")


HELP_TEXT = (
    "Layanan WhatsApp Pemerintah Daerah. Perintah yang bisa dikirim:\n"
    "• STATUS <nomor pendaftaran>: status permohonan izin Anda, contoh STATUS REG-2026-000123 "
    "(hanya dari nomor WhatsApp yang tercatat pada permohonan)\n"
    "• BERHENTI: berhenti menerima notifikasi WhatsApp\n"
    "• MULAI: menerima notifikasi WhatsApp lagi\n"
    "• BANTUAN: pesan ini\n"
    "Untuk pertanyaan lain, silakan hubungi loket pelayanan.")
MENU_TEXT = ("Maaf, pesan Anda belum kami pahami. Kirim:\n"
             "STATUS <nomor pendaftaran> untuk cek status permohonan,\n"
             "BANTUAN untuk daftar perintah,\n"
             "BERHENTI untuk berhenti menerima notifikasi.")
STOP_TEXT = ("Anda tidak akan menerima notifikasi WhatsApp lagi dari layanan ini. "
             "Kirim MULAI kapan saja untuk berlangganan kembali.")
START_TEXT = ("Notifikasi WhatsApp aktif kembali. Kirim BERHENTI kapan saja untuk "
              "berhenti.")
ASK_NUMBER_TEXT = ("Kirim STATUS diikuti nomor pendaftaran permohonan Anda, contoh: "
                   "STATUS REG-2026-000123.")
NOT_FOUND_TEXT = ("Permohonan dengan nomor pendaftaran {number} tidak ditemukan untuk nomor "
                  "WhatsApp ini. Periksa kembali nomornya (lihat tanda terima pendaftaran), "
                  "atau hubungi loket pelayanan.")
UNAVAILABLE_TEXT = ("Maaf, layanan cek status sedang tidak dapat diakses. Silakan coba lagi "
                    "beberapa saat lagi.")


def reply_text(command, status=None, unavailable=False):
    """The desk's answer to ``command``; for STATUS, ``status`` is the permits module's
    ``PublicStatus`` (None when it was not asked) and ``unavailable`` says it did not answer."""
    if command.kind == STOP:
        return STOP_TEXT
    if command.kind == START:
        return START_TEXT
    if command.kind == HELP:
        return HELP_TEXT
    if command.kind == STATUS:
        if not command.number:
            return ASK_NUMBER_TEXT
        if unavailable:
            return UNAVAILABLE_TEXT
        if not status or not status.get("found"):
            return NOT_FOUND_TEXT.format(number=command.number[:MAX_NUMBER_LENGTH])
        return status_text(status)
    return MENU_TEXT


def status_text(status, last_steps=3):
    """A found ``PublicStatus`` as a WhatsApp message: state, days left, the last steps."""
    number = status.get("registration_number") or ""
    kind = status.get("type_name")
    lines = [f"Permohonan {number}" + (f" ({kind})" if kind else "") + ":",
             f"Status: {status.get('label') or status.get('state') or '-'}"]
    days_left = status.get("days_left")
    if days_left is not None:
        if days_left >= 0:
            lines.append(f"Sisa waktu layanan: {days_left} hari kerja.")
        else:
            lines.append(f"Melewati batas waktu layanan {-days_left} hari kerja; petugas kami "
                         "sedang menindaklanjuti.")
    steps = (status.get("timeline") or [])[-last_steps:]
    if steps:
        lines.append("Riwayat terakhir:")
        lines.extend(f"• {_day(step.get('on'))}: {step.get('label') or step.get('state')}"
                     for step in steps)
    return "\n".join(lines)


def _day(value):
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


# -- the handler ----------------------------------------------------------------------------

class ServiceDesk:
    """Mixed into the notify service: answers inbound WhatsApp messages."""

    permits_rpc = Rpc("permits")  # RPC_TIMEOUT_SECONDS (default 10) bounds a STATUS lookup

    @handles("notify", "notification.inbound_received")
    def answer_inbound(self, event):
        wamid = event.data["id"]
        inbound = self.db[INBOUND].find_one({"_id": wamid})
        if inbound is None:
            log.warning("inbound message %s to answer is not stored; nothing to answer", wamid)
            return None
        command = parse(inbound.get("text"))
        phone = inbound["from"]
        if command.kind in (STOP, START):
            changed = set_opt_out(self.db, phone, command.kind == STOP,
                                  inbound.get("at") or inbound["received_at"],
                                  inbound["received_at"])
            log.info("WhatsApp %s by %s%s", "opt-out" if command.kind == STOP else "opt-in",
                     _masked(phone), "" if changed else " (a later choice stands)")
        status, unavailable = None, False
        if command.kind == STATUS and command.number:
            status, unavailable = self._public_status(command.number, phone)
        doc = reply_notification(event, inbound, command,
                                 reply_text(command, status, unavailable),
                                 self.config.get("NOTIFY_TIMEZONE", "Asia/Jakarta"), db_now())
        reply = self.request_delivery(doc)
        self.db[INBOUND].update_one({"_id": wamid}, {"$set": {
            "handled": True, "command": command.kind, "reply": doc["_id"]}})
        return reply

    def _public_status(self, number, phone):
        """``(PublicStatus or None, unavailable)``; a number too long to be one is not asked
        about (not found)."""
        if len(number) > MAX_NUMBER_LENGTH:
            return None, False
        try:
            status = self.permits_rpc.public_status(number, phone)
        except ContainerBeingKilled:
            raise
        except Exception as exc:  # timeout, permits not installed, its error: "try later"
            log.warning("permits.public_status did not answer for the service desk: %s",
                        type(exc).__name__)
            return None, True
        if not isinstance(status, dict):
            log.warning("permits.public_status answered %s, not a PublicStatus",
                        type(status).__name__)
            return None, True
        return status, False


def reply_notification(event, inbound, command, text, timezone, now):
    """The reply's notification: rule ``desk``, one per inbound message (its ``_id`` from the
    ``wamid``), free-form WhatsApp text, critical (see the module docstring)."""
    phone = inbound["from"]
    key = domain.address_key("whatsapp", phone)
    return domain.new_notification(
        id=domain.notification_id(inbound["_id"], RULE, key), rule=RULE, priority="critical",
        template=f"desk.{command.kind}",
        event={"id": event.id, "type": event.type, "source": event.source,
               "occurred_at": event.occurred_at, "opd": None},
        recipient={"key": key, "person": None, "name": None, "phone": phone, "email": None,
                   "timezone": timezone},
        channels=["whatsapp"], content={"whatsapp": {"text": text}}, now=now)


def set_opt_out(db, phone, opted_out, at, received_at):
    """Record a number's WhatsApp opt-out (or opt-in) written at ``at`` (the message's time,
    in whole seconds) unless a later choice is recorded already (the same second: the one
    received later wins); True when recorded."""
    key = domain.address_key("whatsapp", phone)
    change = {"$set": {"opted_out": opted_out, "opted_at": at,
                       "opted_received_at": received_at}}
    later = {"_id": key, "$or": [{"opted_at": {"$lt": at}},
                                 {"opted_at": at, "opted_received_at": {"$lt": received_at}}]}
    for _ in range(3):
        if db[ADDRESSES].update_one(later, change).matched_count:
            return True
        try:
            db[ADDRESSES].update_one({"_id": key, "opted_at": None}, change, upsert=True)
            return True
        except pymongo.errors.DuplicateKeyError:
            # a choice was recorded between our two writes (or was there, as late or later):
            # compare with it again, as it may be older than ours
            continue
    return False  # a choice as late or later is recorded


def _masked(e164):
    try:
        return mask_phone(e164)
    except ValueError:
        return "+***"

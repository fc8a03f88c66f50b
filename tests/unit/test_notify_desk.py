"""The WhatsApp service desk's pure part: what a message asks for, and the answers."""

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from services.notify import desk
from services.notify.desk import Command, parse, reply_text, status_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, expected", [
    ("BERHENTI", Command("stop")),
    ("  berhenti! ", Command("stop")),
    ("Stop.", Command("stop")),
    ("MULAI", Command("start")),
    ("start", Command("start")),
    ("Bantuan", Command("help")),
    ("HELP?", Command("help")),
    ("menu", Command("menu")),
    ("STATUS REG-2026-000123", Command("status", "REG-2026-000123")),
    ("status reg-2026-000123", Command("status", "REG-2026-000123")),
    ("Status   REG 2026 000123", Command("status", "REG-2026-000123")),
    ("cek status REG-2026-000123", Command("status", "REG-2026-000123")),
    ("CEK REG-2026-000123.", Command("status", "REG-2026-000123")),
    ("STATUS", Command("status", None)),
    ("stop kirim pesan terus", Command("menu")),  # an opt-out is the whole message only
    ("selamat pagi, izin saya bagaimana?", Command("menu")),
    ("", Command("menu")),
    (None, Command("menu")),
    ("🙏", Command("menu")),
])
def test_parse(text, expected):
    assert parse(text) == expected


FOUND = {"found": True, "registration_number": "REG-2026-000123",
         "type_name": "Izin Usaha Mikro", "state": "in_review", "label": "Sedang diperiksa",
         "days_used": 2, "days_left": 3,
         "timeline": [{"state": "submitted", "label": "Diajukan", "on": "2026-12-01"},
                      {"state": "registered", "label": "Terdaftar", "on": "2026-12-01"},
                      {"state": "verified", "label": "Berkas lengkap", "on": "2026-12-02"},
                      {"state": "in_review", "label": "Sedang diperiksa", "on": "2026-12-03"}]}


def test_status_text_has_state_days_left_and_the_last_steps():
    text = status_text(FOUND)
    assert text.splitlines()[0] == "Permohonan REG-2026-000123 (Izin Usaha Mikro):"
    assert "Status: Sedang diperiksa" in text
    assert "Sisa waktu layanan: 3 hari kerja." in text
    assert "• 3 Des 2026: Sedang diperiksa" in text
    assert "Diajukan" not in text  # only the last three steps
    assert "Berkas lengkap" in text


def test_status_text_over_the_sla_and_closed():
    assert "Melewati batas waktu layanan 2 hari kerja" in status_text({**FOUND, "days_left": -2})
    closed = status_text({**FOUND, "days_left": None, "label": "Izin terbit", "timeline": []})
    assert "hari kerja" not in closed and "Riwayat" not in closed
    assert "Status: Izin terbit" in closed
    assert "• 1 Des 2026" in status_text({**FOUND, "timeline": [
        {"state": "submitted", "label": "Diajukan", "on": date(2026, 12, 1)}]})


def test_replies():
    assert reply_text(Command("stop")) == desk.STOP_TEXT
    assert "MULAI" in desk.STOP_TEXT
    assert reply_text(Command("start")) == desk.START_TEXT
    assert "STATUS <nomor pendaftaran>" in reply_text(Command("help"))
    assert reply_text(Command("menu")) == desk.MENU_TEXT
    assert reply_text(Command("status", None)) == desk.ASK_NUMBER_TEXT
    assert reply_text(Command("status", "REG-1"), unavailable=True) == desk.UNAVAILABLE_TEXT
    assert reply_text(Command("status", "REG-2026-000123"), FOUND) == status_text(FOUND)


def test_not_found_and_not_theirs_read_the_same():
    """The answer never tells whether the number exists for someone else."""
    unknown = reply_text(Command("status", "REG-2026-999999"), {"found": False})
    assert unknown == reply_text(Command("status", "REG-2026-999999"), None)
    assert "REG-2026-999999" in unknown and "tidak ditemukan" in unknown


def test_reply_notification_is_one_per_inbound_message():
    event = SimpleNamespace(id="e1", type="notification.inbound_received", source="notify",
                            occurred_at=datetime(2026, 12, 6, tzinfo=UTC))
    inbound = {"_id": "wamid.A", "from": "+6281234567890"}
    now = datetime(2026, 12, 6, 1, tzinfo=UTC)
    first = desk.reply_notification(event, inbound, Command("help"), "x", "Asia/Jakarta", now)
    again = desk.reply_notification(SimpleNamespace(**{**vars(event), "id": "e2"}), inbound,
                                    Command("help"), "x", "Asia/Jakarta", now)
    other = desk.reply_notification(event, {**inbound, "_id": "wamid.B"}, Command("help"), "x",
                                    "Asia/Jakarta", now)
    assert first["_id"] == again["_id"] != other["_id"]
    assert "6281234567890" not in first["_id"]
    assert first["rule"] == "desk" and first["priority"] == "critical"
    assert first["channels"] == ["whatsapp"]
    assert first["content"] == {"whatsapp": {"text": "x"}}
    assert first["recipient"]["phone"] == "+6281234567890"

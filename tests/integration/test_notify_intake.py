"""Notify's rules at work: other modules' events on the real bus become notifications (one
per rule and recipient), sent through the WhatsApp / SMTP stand-ins or the in-app inbox; a
redelivered or re-run event creates none more; recipients come from the event's contact or
the directory replica (employee, supervisor, head of a unit or the official acting as head);
the preview and rules endpoints; a bad rules file stops the service at start-up."""

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY

from pamong.events.contracts import dump_data, load_data
from pamong.events.envelope import Event, new_event
from pamong.testing import EventRecorder, publish_raw, race, wait_until
from services.notify import domain, rules
from tests.integration.attendance_support import (
    NIP_HEAD,
    NIP_KABID,
    NIP_STAFF,
    publish_directory,
)
from tests.integration.notify_support import API, wa_digits

pytestmark = pytest.mark.integration

EMPLOYEE_PHONE = "+6281234567890"  # every seeded employee's (attendance_support)
SENT = ("sent", "delivered", "read")


def a_phone():
    return f"+62813{uuid.uuid4().int % 10**8:08d}"


def publish(config, source, event_type, data, opd=None):
    """An event as its module publishes it (contract-dumped, enveloped); the envelope."""
    envelope = new_event(source, event_type, dump_data(event_type, 1, data), opd=opd)
    publish_raw(config, source, event_type, envelope)
    return envelope


def as_event(envelope):
    """The envelope as a handler receives it (data loaded by its contract)."""
    return Event(**{**envelope, "occurred_at": datetime.fromisoformat(envelope["occurred_at"]),
                    "data": load_data(envelope["type"], 1, envelope["data"])})


def permit(contact, number=None, **more):
    return {"id": uuid.uuid4().hex, "registration_number": number or
            f"REG-2026-{uuid.uuid4().int % 10**6:06d}", "type": "PBG",
            "type_name": "Persetujuan Bangunan Gedung", "opd": "3510.03", "contact": contact,
            **more}


def registered(contact, **more):
    return permit(contact, registered_at=datetime.now(UTC), sla_days=12,
                  due_on=date(2026, 12, 23), **more)


def contact(phone=None, email=None, channel="whatsapp", sub=None):
    return {"phone": phone, "email": email, "channel": channel, "sub": sub}


def notifications(notify, event_id):
    return list(notify.db.notifications.find({"event.id": event_id}, {"_outbox": 0}))


def settled(notify, event_id, count, states=SENT + ("cancelled",)):
    """Wait until the event has ``count`` notifications, each in one of ``states``."""
    return wait_until(lambda: (docs := notifications(notify, event_id)) and len(docs) == count
                      and all(d["state"] in states for d in docs) and docs, timeout=20,
                      message=f"{count} notification(s) of event {event_id} in {states}")


def handled(event_type, outcome="ok"):
    """How many ``event_type`` events the rules' handler has handled in the test's process
    (the ``notify`` fixture's container): the kernel's counter, as these handlers have no
    inbox whose done marks could tell."""
    return REGISTRY.get_sample_value("pamong_events_consumed_total", {
        "handler": f"notify.{rules.handler_name(event_type)}", "type": event_type,
        "outcome": outcome}) or 0


def parameters(body):
    (component,) = body["template"]["components"]
    return [p["text"] for p in component["parameters"]]


def admin(client):
    return client.token(roles=("admin",), opd=None, sub="admin-1")


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "notify")
    yield recorder
    recorder.close()


# -- to the applicant -------------------------------------------------------------------------

def test_a_registered_permit_reaches_the_applicant_once_under_redelivery(notify):
    before = handled("permit.registered")
    phone = a_phone()
    data = registered(contact(phone, "warga@contoh.id", sub="warga-1"))
    envelope = publish(notify.settings, "permits", "permit.registered", data, opd="3510.03")
    (doc,) = settled(notify, envelope["id"], 1)
    assert doc["_id"] == domain.notification_id(envelope["id"], "permit_registered",
                                                "applicant")
    assert doc["rule"] == "permit_registered" and doc["priority"] == "normal"
    assert doc["channels"] == ["whatsapp", "sms", "email", "inapp"]
    assert doc["recipient"] == {"key": "applicant", "person": "warga-1", "name": None,
                                "phone": phone, "email": "warga@contoh.id",
                                "timezone": "Asia/Jakarta"}
    assert doc["event"]["type"] == "permit.registered" and doc["event"]["source"] == "permits"
    assert set(doc["content"]) == {"whatsapp", "sms", "email", "inapp"}  # rendered once
    (sent,) = notify.wa.received(to=wa_digits(phone))
    assert sent["template"]["name"] == "izin_terdaftar"
    assert parameters(sent) == ["Persetujuan Bangunan Gedung", data["registration_number"],
                                "23 Desember 2026", "https://layanan.pamong.test/lacak/"
                                + data["registration_number"]]

    # the broker delivers it again, twice at once: each copy runs (no inbox) and resumes the
    # stored notification
    race([1, 2], lambda _: publish_raw(notify.settings, "permits", "permit.registered",
                                       envelope))
    wait_until(lambda: handled("permit.registered") == before + 3, message="all three handled")
    # and the handler runs again as after a crash, twice at once

    def rerun(_):
        with entrypoint_hook(notify.container, "intake_permit_registered") as hook:
            return hook(as_event(envelope))

    assert race([1, 2], rerun) == [[doc["_id"]], [doc["_id"]]]
    assert len(notifications(notify, envelope["id"])) == 1
    assert len(notify.wa.received(to=wa_digits(phone))) == 1


def test_the_applicants_choice_of_email_goes_first(notify):
    phone, email = a_phone(), f"{uuid.uuid4().hex[:8]}@contoh.id"
    data = permit(contact(phone, email, channel="email"), decision="rejected",
                  reason="Lokasi berada di sempadan sungai")
    envelope = publish(notify.settings, "permits", "permit.decided", data)
    (doc,) = settled(notify, envelope["id"], 1)
    assert doc["priority"] == "critical" and doc["channels"][0] == "email"
    message = wait_until(lambda: next((m for m in notify.smtp.messages if m["To"] == email),
                                      None), message="the email in the SMTP stand-in")
    assert message["Subject"] == (f"Permohonan Persetujuan Bangunan Gedung ditolak: "
                                  f"{data['registration_number']}")
    parts = {p.get_content_type(): p.get_content() for p in message.walk()
             if not p.is_multipart()}
    assert "DITOLAK" in parts["text/plain"] and "sempadan sungai." in parts["text/plain"]
    assert "<strong>DITOLAK</strong>" in parts["text/html"]
    assert notify.wa.received(to=wa_digits(phone)) == []  # email worked: no fallback


def test_a_landline_number_is_not_used_for_whatsapp_or_sms(notify):
    email = f"{uuid.uuid4().hex[:8]}@contoh.id"
    data = registered(contact("+62215550123", email))  # a Jakarta landline: E.164, no mobile
    envelope = publish(notify.settings, "permits", "permit.registered", data)
    (doc,) = settled(notify, envelope["id"], 1)
    assert doc["recipient"]["phone"] is None and doc["channels"] == ["email"]
    assert doc["state"] in SENT and notify.wa.requests == []


def test_an_applicant_without_phone_or_email_gets_the_in_app_inbox(notify):
    sub = f"warga-{uuid.uuid4().hex[:6]}"
    data = permit(contact(sub=sub), permit_number="503/PBG/0001/2026",
                  valid_from=date(2026, 12, 20), valid_until=None,
                  verification_url="https://layanan.pamong.test/verifikasi/izin/X1")
    envelope = publish(notify.settings, "permits", "permit.issued", data)
    (doc,) = settled(notify, envelope["id"], 1)
    assert doc["channels"] == ["inapp"] and doc["state"] in SENT
    token = notify.client.token(roles=("pemohon",), opd=None, sub=sub)
    r = notify.client.request("GET", f"{API}/inbox", token=token)
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert item["id"] == doc["_id"] and item["title"] == "Izin terbit: 503/PBG/0001/2026"
    assert "tanpa batas waktu" in item["body"]


def test_an_applicant_who_cannot_be_reached_is_recorded_cancelled(notify, events):
    data = registered(contact())  # entered at the counter without phone, email or account
    envelope = publish(notify.settings, "permits", "permit.registered", data)
    (doc,) = settled(notify, envelope["id"], 1, states=("cancelled",))
    assert doc["reason"] == "no_address" and doc["channels"] == [] and doc["content"] is None
    failed = wait_until(lambda: [e for e in events.of("notification.failed")
                                 if e["data"]["id"] == doc["_id"]], message="failed event")
    assert failed[0]["data"]["state"] == "cancelled"
    assert failed[0]["data"]["reason"] == "no_address"
    assert failed[0]["data"]["rule"] == "permit_registered"


# -- to employees, from the directory replica --------------------------------------------------

def letter_submitted(nip, role, subject="Undangan rapat koordinasi"):
    return {"id": uuid.uuid4().hex, "kind": "surat_dinas", "unit": "3510.03",
            "opd": "3510.03", "security": "B", "urgency": "segera", "subject": subject,
            "drafter": NIP_STAFF, "awaiting": {"nip": nip, "role": role}}


def test_a_letter_awaiting_a_signature_reaches_the_signer(notify):
    envelope = publish(notify.settings, "letters", "letter.submitted",
                       letter_submitted(NIP_HEAD, "signer"))
    (doc,) = settled(notify, envelope["id"], 1)
    assert doc["rule"] == "letter_awaiting_signature"
    assert doc["recipient"]["person"] == NIP_HEAD and doc["recipient"]["name"] == \
        "dr. Hadi Santoso"
    assert doc["channels"] == ["whatsapp", "inapp"]  # no email address in the directory
    (sent,) = [b for b in notify.wa.received(to=wa_digits(EMPLOYEE_PHONE))
               if b["template"]["name"] == "surat_menunggu_ttd"]
    assert parameters(sent)[:3] == ["dr. Hadi Santoso", "Surat dinas",
                                    '"Undangan rapat koordinasi"']

    paraf = publish(notify.settings, "letters", "letter.submitted",
                    letter_submitted(NIP_KABID, "verifier"))
    (doc,) = settled(notify, paraf["id"], 1)
    assert doc["rule"] == "letter_awaiting_paraf" and doc["recipient"]["person"] == NIP_KABID


def test_an_absence_threshold_reaches_the_employee_and_the_supervisor(notify):
    data = {"nip": NIP_STAFF, "unit": "3510.03.01", "opd": "3510.03", "year": 2026,
            "days": 4, "consecutive": 2, "level": "written_warning",
            "text": "written warning", "text_id": "teguran tertulis"}
    envelope = publish(notify.settings, "attendance", "attendance.absence_threshold_reached",
                       data)
    docs = settled(notify, envelope["id"], 2)
    assert {(d["rule"], d["recipient"]["person"]) for d in docs} == {
        ("absence_threshold_employee", NIP_STAFF), ("absence_threshold_supervisor", NIP_KABID)}
    bodies = notify.wa.received(to=wa_digits(EMPLOYEE_PHONE))
    assert sorted(b["template"]["name"] for b in bodies) == ["presensi_ambang_atasan",
                                                             "presensi_ambang_pegawai"]


def sla_breached(officer, opd="3510.03"):
    return {"id": uuid.uuid4().hex, "registration_number": "REG-2026-000777", "type": "PBG",
            "type_name": "Persetujuan Bangunan Gedung", "opd": opd, "scope": "total",
            "state": "technical_review", "sla_days": 12, "days_used": 13, "days_left": -1,
            "officer": officer}


def test_an_sla_breach_reaches_the_officer_and_whoever_heads_the_opd_today(notify, config):
    envelope = publish(notify.settings, "permits", "permit.sla_breached",
                       sla_breached("petugas-7"))
    docs = {d["recipient"]["key"]: d for d in settled(notify, envelope["id"], 2)}
    assert docs["petugas-7"]["channels"] == ["inapp"]  # an account only: its inbox
    assert docs[NIP_HEAD]["recipient"]["name"] == "dr. Hadi Santoso"

    # the head is away: a Plh acts for the unit today, and is the one told
    today = datetime.now(UTC).date()
    publish_directory(config, "acting.assigned", {
        "id": "plh-1", "kind": "plh", "position": "pos-1001", "unit": "3510.03",
        "nip": NIP_KABID, "start": today - timedelta(days=1), "end": today + timedelta(days=1),
        "version": 1})
    wait_until(lambda: notify.db.acting.find_one({"_id": "plh-1"}), message="the acting")
    again = publish(notify.settings, "permits", "permit.sla_breached",
                    sla_breached(NIP_STAFF))  # an officer who is an employee: by the replica
    docs = {d["recipient"]["key"]: d for d in settled(notify, again["id"], 2)}
    assert set(docs) == {NIP_KABID, NIP_STAFF}
    assert docs[NIP_STAFF]["channels"] == ["whatsapp", "inapp"]


def test_an_unknown_employee_is_skipped_without_a_retry_loop(notify):
    unknown = "199912312020121999"
    data = {"id": uuid.uuid4().hex, "letter": "l-1", "receipt": "l-1:3510.03",
            "unit": "3510.03", "opd": "3510.03", "by": NIP_HEAD, "to": unknown, "due":
            date(2026, 12, 11)}
    failed = handled("disposition.overdue", "error")
    before = handled("disposition.overdue")
    envelope = publish(notify.settings, "letters", "disposition.overdue", data)
    (doc,) = settled(notify, envelope["id"], 1)  # to the author; the unknown one skipped
    assert doc["recipient"]["person"] == NIP_HEAD
    # handled (a handler that raised would be retried, then parked)
    wait_until(lambda: handled("disposition.overdue") == before + 1, message="handled")
    assert handled("disposition.overdue", "error") == failed


def test_a_rule_whose_condition_does_not_match_creates_nothing(notify):
    data = letter_submitted(NIP_HEAD, "verifier")
    data["awaiting"] = {"nip": "199912312020121999", "role": "verifier"}  # nobody known
    before = handled("letter.submitted")
    envelope = publish(notify.settings, "letters", "letter.submitted", data)
    wait_until(lambda: handled("letter.submitted") == before + 1, message="the event handled")
    assert notifications(notify, envelope["id"]) == []


# -- preview and rules ------------------------------------------------------------------------

def test_the_preview_renders_every_channel_from_the_sample_or_given_data(notify):
    client = notify.client
    path = f"{API}/templates/permit_registered/preview"
    r = client.request("POST", path, token=admin(client), json={})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data_source"] == "sample" and body["rules"] == ["permit_registered"]
    assert body["event"] == "permit.registered"
    channels = body["channels"]
    assert set(channels) == {"whatsapp", "sms", "email", "inapp"}
    assert "REG-2026-000123" in channels["whatsapp"]["text"]
    assert channels["whatsapp"]["template"] == "izin_terdaftar"
    assert channels["sms"]["length"] == len(channels["sms"]["text"]) <= 918
    assert channels["sms"]["segments"] == 1
    assert "https://layanan.pamong.test/lacak/REG-2026-000123" in channels["email"]["html"]

    data = {"registration_number": "REG-2026-000999", "type_name": "Izin <Usaha>",
            "due_on": "2027-01-04", "sla_days": 5}
    r = client.request("POST", path, token=admin(client), json={"data": data})
    assert r.status_code == 200, r.text
    channels = r.json()["channels"]
    assert "4 Januari 2027" in channels["sms"]["text"] and "Izin <Usaha>" in \
        channels["sms"]["text"]
    assert "Izin &lt;Usaha&gt;" in channels["email"]["html"]

    del data["registration_number"]
    r = client.request("POST", path, token=admin(client), json={"data": data})
    assert r.status_code == 422
    assert "missing placeholder 'registration_number'" in \
        r.json()["errors"]["data.registration_number"][0]


def test_the_preview_and_the_rules_are_for_admin(notify):
    client = notify.client
    staff = client.token(roles=("opd_admin",), opd="3510.03", sub="x")
    for method, path in (("POST", f"{API}/templates/permit_registered/preview"),
                         ("GET", f"{API}/rules"), ("GET", f"{API}/templates")):
        assert client.request(method, path, token=staff, json={}).status_code == 403
        assert client.request(method, path, json={}).status_code == 401
    r = client.request("POST", f"{API}/templates/nothing/preview", token=admin(client),
                       json={})
    assert r.status_code == 404
    r = client.request("POST", f"{API}/templates/permit_registered/preview",
                       token=admin(client), json={"data": [1]})
    assert r.status_code == 422


def test_the_rules_in_force_are_listed(notify):
    r = notify.client.request("GET", f"{API}/rules", token=admin(notify.client))
    assert r.status_code == 200, r.text
    listed = {rule["id"]: rule for rule in r.json()["rules"]}
    assert listed["permit_decided"]["priority"] == "critical"
    assert listed["letter_awaiting_signature"]["when"] == {"awaiting.role": "signer"}
    assert listed["permit_sla_breached"]["recipients"] == [{"person": "officer"},
                                                           {"head_of": "opd"}]
    assert r.json()["rules_file"].endswith("services/notify/rules.yaml")
    r = notify.client.request("GET", f"{API}/templates", token=admin(notify.client))
    names = {t["name"]: t for t in r.json()["templates"]}
    assert names["permit_registered"]["whatsapp_template"] == "izin_terdaftar"
    assert "registration_number" in names["permit_registered"]["placeholders"]


# -- start-up ---------------------------------------------------------------------------------

BAD_RULES = {
    "event": ("rules:\n  - {id: salah, event: permit.teleported, recipients: [applicant], "
              "template: permit_registered, channels: [sms]}\n",
              "rule salah: unknown event type 'permit.teleported'"),
    "template": ("rules:\n  - {id: salah, event: permit.registered, recipients: [applicant], "
                 "template: tidak_ada, channels: [sms]}\n",
                 "rule salah: unknown template 'tidak_ada'"),
    "recipient": ("rules:\n  - {id: salah, event: permit.registered, recipients: "
                  "[{employee: pejabat}], template: permit_registered, channels: [sms]}\n",
                  "rule salah: recipient employee: pejabat: the event has no field"),
}


@pytest.mark.parametrize("case", sorted(BAD_RULES))
def test_a_bad_rules_file_stops_the_service_at_start_up_with_the_reason(case, tmp_path,
                                                                          config):
    text, expected = BAD_RULES[case]
    (tmp_path / "rules.yaml").write_text(text)
    env = {**os.environ, "NOTIFY_RULES_FILE": str(tmp_path / "rules.yaml"),
           "AMQP_URI": config["AMQP_URI"], "MONGO_URI": config["MONGO_URI"],
           "MONGO_DB_PREFIX": config["MONGO_DB_PREFIX"]}
    done = subprocess.run([sys.executable, "-m", "pamong.cli.main", "serve", "notify",  # noqa: S603
                           "--port", "0"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "the notification rules do not validate" in done.stderr and expected in done.stderr


def test_a_missing_placeholder_stops_build_service(tmp_path):
    from services.notify import templates
    from services.notify.service import build_service

    text = (templates.SHIPPED_DIR / "permit_registered.yaml").read_text()
    (tmp_path / "permit_registered.yaml").write_text(  # a deployment's copy with a typo
        text.replace("{{ due_on | tanggal }}", "{{ due_date | tanggal }}", 1))
    with pytest.raises(SystemExit) as caught:
        build_service(templates_dir=str(tmp_path))
    assert "unknown placeholder 'due_date'" in str(caught.value)
    assert "rule permit_registered" in str(caught.value)

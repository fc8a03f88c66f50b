"""The third-party stand-ins notify is tested against speak their providers' wire protocols:
the WhatsApp Cloud API (sends, errors, signed status and inbound webhooks), an SMTP server,
an SMS gateway (sends, signed delivery reports), and the process ``make run`` starts."""

import hashlib
import hmac
import json
import smtplib
import subprocess
import sys
from email.message import EmailMessage

import pytest
import requests

from pamong.testing import wait_until
from services.notify.standins import SmsStandin, SmtpStandin, WhatsAppStandin
from services.notify.standins.http import StandinHttpServer

pytestmark = pytest.mark.integration

SECRET = "test-app-secret"
TOKEN = "test-wa-token"
PHONE = "6281234567890"


class Receiver(StandinHttpServer):
    """Our side of a webhook, for these tests: keeps every request, answers 200."""

    name = "receiver"

    def __init__(self):
        super().__init__()
        self.got = []

    def handle(self, request):
        with self._lock:
            self.got.append(request)
        return 200, {}

    def bodies(self):
        with self._lock:
            return [r.json() for r in self.got]


@pytest.fixture
def receiver(request):
    rec = Receiver().start()
    request.addfinalizer(rec.stop)
    return rec


@pytest.fixture
def wa(request, receiver):
    standin = WhatsAppStandin(app_secret=SECRET, phone_number_id="100200300",
                              token=TOKEN).start()
    standin.webhook_url = receiver.url + "/hook"
    request.addfinalizer(standin.stop)
    return standin


def send(wa, body=None, token=TOKEN, timeout=10, path="/v21.0/100200300/messages"):
    body = body or template_body()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(wa.url + path, json=body, headers=headers, timeout=timeout)


def template_body(to=PHONE, callback="n1:whatsapp:1"):
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "biz_opaque_callback_data": callback,
            "template": {"name": "permit_registered", "language": {"code": "id"},
                         "components": [{"type": "body", "parameters": [
                             {"type": "text", "text": "Siti"},
                             {"type": "text", "text": "IMB-2026-000123"}]}]}}


def text_body(to=PHONE, text="Halo"):
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": text}}


def statuses(bodies):
    return [(s["id"], s["status"]) for b in bodies for e in b["entry"] for c in e["changes"]
            for s in c["value"].get("statuses", [])]


# -- WhatsApp -------------------------------------------------------------------------------

def test_whatsapp_accepts_a_template_send_and_answers_a_wamid(wa):
    r = send(wa)
    assert r.status_code == 200
    reply = r.json()
    assert reply["messaging_product"] == "whatsapp"
    assert reply["contacts"] == [{"input": PHONE, "wa_id": PHONE}]
    wamid = reply["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert wa.requests[0]["wamid"] == wamid
    assert wa.requests[0]["callback_data"] == "n1:whatsapp:1"
    assert wa.received(to="+" + PHONE) == [template_body()]
    assert wa.received(to="6280000000000") == []


def test_whatsapp_refuses_without_token_wrong_number_id_or_bad_body(wa):
    r = send(wa, token=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == 190
    assert send(wa, token="wrong").status_code == 401
    r = send(wa, path="/v21.0/999/messages")
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = send(wa, {"messaging_product": "whatsapp", "to": PHONE, "type": "template",
                  "template": {"name": "x"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == 131008
    r = send(wa, {"to": PHONE, "type": "text", "text": {"body": "x"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    assert wa.requests == [] and wa.calls == []


def test_whatsapp_planned_failures_answer_metas_error_shapes(wa):
    wa.plan(500, 429, ("error", 131026), "ok")
    first, second, third, fourth = (send(wa) for _ in range(4))
    assert first.status_code == 500 and first.json()["error"]["code"] == 131000
    assert second.status_code == 429 and second.json()["error"]["code"] == 130429
    assert third.status_code == 400
    error = third.json()["error"]
    assert error["code"] == 131026 and set(error) == {"message", "type", "code", "error_data",
                                                      "fbtrace_id"}
    assert fourth.status_code == 200
    assert [c["status"] for c in wa.calls] == [500, 429, 400, 200]
    assert len(wa.requests) == 1  # only the accepted one


def test_whatsapp_non_user_and_the_24_hour_window(wa):
    wa.non_users.add("6289999999999")
    r = send(wa, template_body(to="6289999999999"))
    assert r.status_code == 400 and r.json()["error"]["code"] == 131026
    r = send(wa, text_body())
    assert r.status_code == 400 and r.json()["error"]["code"] == 131047
    wa.post_inbound(PHONE, "STATUS IMB-1")
    assert send(wa, text_body()).status_code == 200


def test_whatsapp_timeout_holds_the_reply_but_counts_the_send(wa):
    wa.plan("timeout")
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(wa, timeout=0.5)
    assert len(wa.requests) == 1 and wa.requests[0]["wamid"].startswith("wamid.")
    assert wa.calls[0]["outcome"] == "timeout"


def test_whatsapp_posts_signed_statuses_after_a_send(wa, receiver):
    wa.auto_status = ["sent", "delivered", "read"]
    wamid = send(wa).json()["messages"][0]["id"]
    wait_until(lambda: len(receiver.got) == 3, message="three statuses")
    for request in receiver.got:
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body,
                                        hashlib.sha256).hexdigest()
        assert request.headers["x-hub-signature-256"] == expected
    bodies = receiver.bodies()
    assert statuses(bodies) == [(wamid, "sent"), (wamid, "delivered"), (wamid, "read")]
    body = bodies[0]
    assert body["object"] == "whatsapp_business_account"
    value = body["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == "100200300"
    item = value["statuses"][0]
    assert item["recipient_id"] == PHONE
    assert item["biz_opaque_callback_data"] == "n1:whatsapp:1"
    stamps = [int(b["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"])
              for b in bodies]
    assert stamps == sorted(stamps)


def test_whatsapp_statuses_duplicated_reversed_and_before_the_reply(wa, receiver):
    wa.auto_status = ["sent", "delivered"]
    wa.duplicate_statuses = wa.reverse_order = wa.status_before_reply = True
    r = send(wa)
    # the first status was posted (and answered) before the send's reply went out
    assert statuses(receiver.bodies())[:1] == [(r.json()["messages"][0]["id"], "delivered")]
    wait_until(lambda: len(receiver.got) == 4, message="four statuses")
    assert [s for _, s in statuses(receiver.bodies())] == ["delivered", "delivered", "sent",
                                                           "sent"]
    # the timestamps still tell the true order: sent before delivered
    by_status = {s["status"]: int(s["timestamp"]) for b in receiver.bodies()
                 for s in b["entry"][0]["changes"][0]["value"]["statuses"]}
    assert by_status["sent"] < by_status["delivered"]


def test_whatsapp_on_demand_failed_status_inbound_and_raw_posts(wa, receiver):
    wamid = send(wa).json()["messages"][0]["id"]
    assert wa.post_status(wamid, "failed", error=131026).status_code == 200
    item = receiver.bodies()[0]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert item["status"] == "failed" and item["errors"][0]["code"] == 131026
    assert item["biz_opaque_callback_data"] == "n1:whatsapp:1"
    wa.post_status("wamid.other", "delivered", callback_data="n2:whatsapp:3")
    item = receiver.bodies()[1]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert item["biz_opaque_callback_data"] == "n2:whatsapp:3"
    inbound = wa.post_inbound("+" + PHONE, "BERHENTI")
    message = receiver.bodies()[2]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message == {"from": PHONE, "id": inbound, "timestamp": message["timestamp"],
                       "type": "text", "text": {"body": "BERHENTI"}}
    wa.post_raw(b'{"object": "x"}', "sha256=00")
    assert receiver.got[3].body == b'{"object": "x"}'
    assert receiver.got[3].headers["x-hub-signature-256"] == "sha256=00"
    wa.post_raw(b"{}", None)
    assert "x-hub-signature-256" not in receiver.got[4].headers


def test_whatsapp_handshake_and_developer_view(wa, receiver):
    wa.handshake("verify-me", challenge="42")
    assert receiver.got[0].method == "GET"
    assert "hub.verify_token=verify-me" in receiver.got[0].query
    send(wa)
    view = requests.get(wa.url + "/_standin/messages", timeout=5).json()
    assert view[0]["to"] == PHONE and view[0]["message"]["template"]["name"] == \
        "permit_registered"
    r = requests.post(wa.url + "/_standin/config", json={"webhook_url": "http://x/y"},
                      timeout=5)
    assert r.json()["webhook_url"] == "http://x/y" == wa.webhook_url


def test_concurrent_sends_get_distinct_wamids(wa):
    from pamong.testing import race

    replies = race(range(20), lambda _: send(wa))
    ids = {r.json()["messages"][0]["id"] for r in replies}
    assert len(ids) == 20 and len(wa.requests) == 20


# -- SMTP -----------------------------------------------------------------------------------

def email_message(to="budi@example.id"):
    message = EmailMessage()
    message["From"] = "notifikasi@pamong.test"
    message["To"] = to
    message["Subject"] = "Permohonan IMB-2026-000123 diterima"
    message.set_content("Permohonan Anda telah kami terima.")
    message.add_alternative("<p>Permohonan Anda telah <b>kami terima</b>.</p>", subtype="html")
    return message


def test_smtp_keeps_what_it_receives_with_its_parts(request):
    smtp = SmtpStandin().start()
    request.addfinalizer(smtp.stop)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.send_message(email_message())
    wait_until(lambda: smtp.messages, message="the email kept")
    message = smtp.messages[0]
    assert message["Subject"] == "Permohonan IMB-2026-000123 diterima"
    assert message.get_body(("plain",)).get_content().strip() == \
        "Permohonan Anda telah kami terima."
    assert "<b>kami terima</b>" in message.get_body(("html",)).get_content()
    assert smtp.envelopes[0]["rcpt_tos"] == ["budi@example.id"]
    assert smtp.received(to="BUDI@example.id") == [message]


def test_smtp_planned_replies_rejected_recipients_and_auth(request, tmp_path):
    smtp = SmtpStandin(user="pamong", password="rahasia", maildir=tmp_path / "mail").start()
    request.addfinalizer(smtp.stop)
    smtp.plan(451, 550)
    smtp.rejected.add("nobody@example.id")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):  # AUTH first
            client.send_message(email_message())
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("pamong", "salah")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.login("pamong", "rahasia")
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            client.send_message(email_message())
        assert temporary.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPDataError) as permanent:
            client.send_message(email_message())
        assert permanent.value.smtp_code == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(email_message(to="nobody@example.id"))
        client.send_message(email_message())
    assert len(smtp.messages) == 1
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


# -- SMS ------------------------------------------------------------------------------------

@pytest.fixture
def sms(request, receiver):
    standin = SmsStandin(secret="sms-secret", token="sms-token").start()
    standin.report_url = receiver.url + "/reports"
    request.addfinalizer(standin.stop)
    return standin


def sms_send(sms, to="+6281234567890", text="Permohonan diterima", token="sms-token",
             reference="n1:sms:1", timeout=10):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(sms.url + "/messages", json={"to": to, "text": text,
                                                      "reference": reference},
                         headers=headers, timeout=timeout)


def test_sms_send_errors_and_signed_reports(sms, receiver):
    assert sms_send(sms, token=None).status_code == 401
    r = sms_send(sms, to="0812345")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_number"
    sms.plan(500, 429, "timeout")
    assert sms_send(sms).status_code == 500
    assert sms_send(sms).status_code == 429
    with pytest.raises(requests.exceptions.ReadTimeout):
        sms_send(sms, timeout=0.5)
    sms.auto_report = ["delivered"]
    r = sms_send(sms, text="x" * 200)
    assert r.status_code == 202
    reply = r.json()
    assert reply["status"] == "accepted" and reply["parts"] == 2
    assert reply["reference"] == "n1:sms:1"
    assert len(sms.requests) == 2  # the held one went out too
    wait_until(lambda: receiver.got, message="a delivery report")
    report = receiver.got[0]
    expected = "sha256=" + hmac.new(b"sms-secret", report.body, hashlib.sha256).hexdigest()
    assert report.headers["x-signature"] == expected
    body = json.loads(report.body)
    assert body["id"] == reply["id"] and body["status"] == "delivered"
    assert body["reference"] == "n1:sms:1" and body["error"] is None
    sms.post_report("n1:sms:1", "failed")
    assert json.loads(receiver.got[1].body)["error"]["code"] == "undeliverable"


# -- the process make run starts ----------------------------------------------------------

def test_the_standins_process_starts_serves_and_stops(tmp_path, receiver):
    process = subprocess.Popen(
        [sys.executable, "-m", "services.notify.standins", "--whatsapp-port", "0",
         "--sms-port", "0", "--smtp-port", "0", "--token", TOKEN, "--status-delay", "0",
         "--webhook-url", receiver.url + "/hook", "--maildir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(process.stdout.readline())
        r = requests.post(ready["whatsapp"] + "/v21.0/100200300/messages",
                          json=template_body(), headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10)
        assert r.status_code == 200
        wait_until(lambda: len(receiver.got) == 3, message="sent, delivered, read posted")
        view = requests.get(ready["whatsapp"] + "/_standin/messages", timeout=5).json()
        assert len(view) == 1
        r = requests.post(ready["whatsapp"] + "/_standin/inbound", timeout=10,
                          json={"from": "081234567890", "text": "STATUS REG-2026-000001"})
        assert r.status_code == 200 and r.json()["webhook_status"] == 200
        message = receiver.bodies()[-1]["entry"][0]["changes"][0]["value"]["messages"][0]
        assert message["text"]["body"] == "STATUS REG-2026-000001"
        assert message["from"] == "6281234567890"
        with smtplib.SMTP(ready["smtp_host"], ready["smtp_port"], timeout=10) as client:
            client.send_message(email_message())
        wait_until(lambda: list(tmp_path.glob("*.eml")), message="the email on disk")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
    assert "WhatsApp to +62812****7890: template permit_registered" in process.stderr.read()


def test_a_known_template_is_shown_as_the_recipient_reads_it(tmp_path):
    from services.notify.standins.whatsapp import readable

    (tmp_path / "t.yaml").write_text(
        "whatsapp:\n  name: permit_registered\n  body: |-\n"
        "    Yth. {{1}}, permohonan Anda terdaftar dengan nomor {{ 2 }}.\n")
    standin = WhatsAppStandin(templates_dir=tmp_path)
    assert readable(template_body(), standin.template_bodies) == \
        "Yth. Siti, permohonan Anda terdaftar dengan nomor IMB-2026-000123."
    assert readable(template_body(), {}) == "[permit_registered] Siti | IMB-2026-000123"
    assert readable(text_body(), {}) == "Halo"

"""The permits (and notify's WhatsApp) part of the day (owner: the permits helper; see
tests/e2e/day.py).

A citizen applies for an Izin Penyelenggaraan Reklame (the demo seed's REKLAME: a fee, a site
visit and the kecamatan's recommendation) at the DPMPTSP: the front office returns the file,
the citizen completes and resubmits it, it is registered, reviewed, billed, paid, signed and
issued, each step by the role the lifecycle names. notify's rules send the applicant five
WhatsApp templates on the way (returned, registered, decided, billed, issued); each must reach
the stand-in once. At noon the citizen asks "STATUS <number>"; after midnight the dashboard
and the open data must tell the same day.

Every write goes through ``suite.write`` (an action carries the version it was taken on, so a
repeat of a landed one answers 200 without a second step; creation and uploads are keyed);
everything asynchronous is waited for, never slept on, and a read that meets a module or the
database away is tried again (the reliability run)."""

import csv
import io
import json
from collections import Counter
from datetime import timedelta

import requests

from pamong.testing import wait_until
from services.notify import desk
from services.notify.standins.whatsapp import signature
from services.permits import domain
from services.permits.access import API
from services.permits.seed import BUSINESSES, applicant, permit_types, pick_units, sample_pdf
from tests.e2e.suite import WAIT, at, eventually

TYPE = "REKLAME"
PEMDA = "3510"
PERSON = "hendra"  # the seed's applicant with a billboard business (CV Muncar Media Reklame)
PHONE = "+6285730012345"  # the seed's 085730012345 as WhatsApp knows it
PAYMENT = "BJI-SKRD-E2E-0001"  # the bank's reference of the retribusi payment

# what notify's rules.yaml sends the applicant for this journey: rule -> WhatsApp template
WHATSAPP = {"permit_returned": "izin_dikembalikan", "permit_registered": "izin_terdaftar",
            "permit_decided": "izin_diputuskan", "permit_billed": "izin_tagihan",
            "permit_issued": "izin_terbit"}
# the lifecycle the timeline must show: (from, to, action, role)
STEPS = [(None, "draft", "create", "pemohon"),
         ("draft", "submitted", "submit", "pemohon"),
         ("submitted", "returned_incomplete", "return", "petugas"),
         ("returned_incomplete", "resubmitted", "resubmit", "pemohon"),
         ("resubmitted", "registered", "register", "petugas"),
         ("registered", "technical_review", "start_review", "verifikator"),
         ("technical_review", "recommended", "recommend", "verifikator"),
         ("recommended", "billed", "bill", "petugas"),
         ("billed", "paid", "pay", "petugas"),
         ("paid", "signed", "sign", "pimpinan"),
         ("signed", "issued", "issue", "petugas")]
# the day's tally of actions (the dashboard's day and month, the open data's month)
ACTIONS = Counter(action for _, _, action, _ in STEPS)
OPEN_DATA = {"submitted": 1, "resubmitted": 1, "returned": 1, "registered": 1, "rejected": 0,
             "issued": 1, "collected": 0, "revoked": 0, "expired": 0, "decided": 1}
class PermitsDay:
    def __init__(self, suite, world, day):
        self.suite, self.world, self.day = suite, world, day
        self.digits = PHONE[1:]
        self.app_id = self.app = self.number = self.units = None
        self.today_figures = self.attendance_seen = None
        self.files = {}

    # -- who acts ------------------------------------------------------------------------

    def _as(self, role, opd=None):
        """``{"token": ...}`` of each actor (fixed ``sub``s: a retried action is the same
        caller's)."""
        ptsp, s = self.units["ptsp"], self.suite
        if role == "pemohon":
            person = applicant(PERSON)
            return {"token": s.token(("pemohon",), sub=f"warga-{person['nik']}",
                                     nik=person["nik"], name=person["name"])}
        if role == "admin":
            return {"token": s.token(("admin",), opd=PEMDA, sub="admin-pemda")}
        opd = opd or ptsp
        return {"token": s.token((role,), opd=opd, sub=f"{role}-{opd}",
                                 name=f"{role.capitalize()} {opd}")}

    def _write(self, method, path, key, who, **kwargs):
        """A keyed write; an answer with the application is kept (``self.app``: the
        version the next action is taken on)."""
        answer = self.suite.write("permits", method, f"{API}{path}", key=key, **who,
                                  **kwargs).json()
        if self.app_id and answer.get("id") == self.app_id:
            self.app = answer
        return answer

    def _app(self, who=None):
        return self.suite.read("permits", f"{API}/applications/{self.app_id}",
                               **(who or self._as("petugas")))

    def _act(self, action, role, **body):
        """Take ``action`` on the version the last answer showed (a repeat after a lost
        answer lands on that same version: 200, no second step)."""
        version = self.app["version"]
        return self._write("POST", f"/applications/{self.app_id}/actions/{action}",
                           f"e2e-{action}-{version}", self._as(role),
                           json={"version": version, **body}, expect=200)

    # -- 06:40 ---------------------------------------------------------------------------

    def set_up(self):
        """06:40: the DPMPTSP's REKLAME service standard, as the demo seed defines it, with
        the kecamatan as its recommending OPD (picked by name from permits' replica)."""
        self.units = eventually(lambda: pick_units(self.suite.db("permits")),
                                "the DPMPTSP and the recommending OPDs in permits' replica")
        assert self.units["ptsp"] == "3510.05", self.units
        body = permit_types(self.units)[TYPE]
        self._write("PUT", f"/types/{TYPE}", "e2e-type-reklame", self._as("admin"), json=body,
                    expect=(200, 201))
        standard = self.suite.read("permits", f"{API}/types/{TYPE}", token=False)
        assert standard["opd"] == "3510.05" and standard["fee"] == 1_200_000
        assert standard["recommenders"] == [self.units["district"]] and standard["site_visit"]
        assert standard["sla_days"] == 7

    # -- 09:30 ---------------------------------------------------------------------------

    def citizen_journey(self):
        """09:30: apply, returned, resubmitted, reviewed, billed, paid, issued; each WhatsApp
        message reaches the stand-in once."""
        s, pemohon = self.suite, self._as("pemohon")
        person = {**applicant(PERSON), "phone": PHONE, "channel": "whatsapp"}
        app = self._write("POST", "/applications", "e2e-reklame-hendra", pemohon,
                          json={"type": TYPE, "applicant": person,
                                "business": BUSINESSES[PERSON]}, expect=(200, 201))
        self.app_id, self.app = app["id"], app
        for req in app["standard"]["requirements"]:
            if req["mandatory"]:
                self._upload(req, "scan")
        assert not self.app["missing_documents"], self.app["missing_documents"]
        self._act("submit", "pemohon")

        # 09:45 the front office finds the landowner's consent without its duty stamp
        s.move_clock(at(self.day, "09:45"))
        missing = ["Izin pemilik lahan belum bermeterai"]
        app = self._act("return", "petugas", missing_items=missing,
                        note="Mohon unggah ulang izin pemilik lahan yang sudah bermeterai.")
        assert app["state"] == "returned_incomplete" and app["missing_items"] == missing
        assert not app["clock"]["running"]  # paused while the file is with the citizen

        # 10:30 the citizen uploads the stamped consent and resubmits
        s.move_clock(at(self.day, "10:30"))
        self._upload({"key": "izin_pemilik", "name": "Izin pemilik lahan (bermeterai)"},
                     "bermeterai")
        self._act("resubmit", "pemohon")
        app = self._act("register", "petugas")
        self.number = app["registration_number"]
        assert domain.REGISTRATION.match(self.number), self.number

        # technical review: the kecamatan's recommendation and the site visit
        app = self._act("start_review", "verifikator")
        district = self.units["district"]
        assert [(r["opd"], r["status"]) for r in app["recommendations"]] == [
            (district, "requested")]
        self._write("POST", f"/applications/{self.app_id}/recommendations/{district}",
                    "e2e-recommendation", self._as("verifikator", district), expect=200,
                    json={"recommendation": "positive",
                          "note": "Titik reklame di luar ruang milik jalan; tidak menutup "
                                  "rambu."})
        self._write("POST", f"/applications/{self.app_id}/site-visit", "e2e-site-visit",
                    self._as("verifikator"), expect=200,
                    json={"done_on": self.day.isoformat(),
                          "findings": "Konstruksi 4x6 m sesuai desain; izin pemilik ada."})
        self._act("recommend", "verifikator")
        app = self._act("bill", "petugas")
        assert app["bill"]["amount"] == 1_200_000 and app["bill"]["number"].startswith("SKRD-")

        # 11:15 the bank's transfer is confirmed; the head signs, the office issues
        s.move_clock(at(self.day, "11:15"))
        self._act("pay", "petugas", payment_reference=PAYMENT)
        self._act("sign", "pimpinan")
        self._act("issue", "petugas")
        self._assert_issued()
        self._assert_whatsapp()
        self._assert_dashboard_today()

    def _upload(self, requirement, version):
        """A PDF for ``requirement`` (the same bytes for the same ``version``: a repeat is
        200)."""
        key = (requirement["key"], version)
        if key not in self.files:  # the PDF carries its creation time: made once
            self.files[key] = sample_pdf(f"{requirement['name']} ({version})",
                                         applicant(PERSON)["name"])
        data = self.files[key]
        self._write("POST", f"/applications/{self.app_id}/documents/{requirement['key']}",
                    f"e2e-doc-{requirement['key']}-{version}", self._as("pemohon"),
                    expect=(200, 201), data=data, params={"name": f"{requirement['key']}.pdf"},
                    headers={"Content-Type": "application/pdf"})

    def _assert_issued(self):
        """permits' own state: the API's view and the stored application."""
        app = self._app()
        assert app["state"] == "issued", app["state"]
        assert app["registration_number"] == self.number
        timeline = [(e["from"], e["to"], e["action"], e["by"]["role"]) for e in app["timeline"]]
        assert timeline == STEPS, timeline
        assert all(e["on"] == self.day.isoformat() for e in app["timeline"])
        permit = app["permit"]
        year = self.day.year
        assert permit["number"] == f"00001/{TYPE}/3510.05/{year}", permit
        assert permit["valid_from"] == self.day.isoformat()
        assert (permit["valid_from"], permit["valid_until"]) == tuple(
            d.isoformat() for d in domain.validity(self.day, 12))
        assert len(permit["code"]) == 12 and permit["verification_url"].endswith(permit["code"])
        assert app["bill"]["payment_reference"] == PAYMENT
        assert app["site_visit"]["done_on"] == self.day.isoformat()
        assert app["recommendations"][0]["status"] == "positive"
        # the QR's verification answers for the code, to anyone
        verified = self.suite.read("permits", f"{API}/verify/{permit['code']}", token=False)
        assert verified["verification"] == "valid" and verified["permit_number"] == \
            permit["number"]
        db = self.suite.db("permits")
        stored = db.applications.find_one({"_id": self.app_id}, {"_outbox": 0, "documents": 0})
        assert stored["state"] == "issued" and stored["registration_number"] == self.number
        assert db.registrations.find_one({"_id": self.number})["application"] == self.app_id
        assert db.codes.find_one({"_id": permit["code"]})["application"] == self.app_id
        eventually(lambda: not (db.applications.find_one({"_id": self.app_id},
                                                         {"_outbox": 1}) or {}).get("_outbox"),
                   "the application's events relayed (its outbox empty)")

    # -- WhatsApp, on the stand-in and in notify's data -------------------------------------

    def _templates(self):
        return Counter(body["template"]["name"] for body in self.suite.wa.received(to=self.digits)
                       if body.get("type") == "template")

    def _notifications(self):
        """notify's notifications to the applicant's number (a scan: a test's few)."""
        return list(self.suite.db("notify").notifications.find(
            {"recipient.phone": PHONE}, {"content": 0}))

    def _assert_whatsapp(self):
        """Each template of the rules reached the stand-in once, notify holds one sent
        notification per (event, rule, recipient, channel), and nothing else went out."""
        eventually(lambda: set(self._templates()) >= set(WHATSAPP.values()),
                   "every WhatsApp message of the journey on the stand-in")

        def settled():
            docs = [d for d in self._notifications() if d["rule"] in WHATSAPP]
            done = [d for d in docs if d["state"] in ("sent", "delivered", "read")]
            return len(docs) == len(WHATSAPP) and len(done) == len(docs) and docs
        docs = eventually(settled, "notify's notifications of the journey sent")
        assert Counter(d["rule"] for d in docs) == Counter(list(WHATSAPP)), docs
        assert {d["channel"] for d in docs} == {"whatsapp"}
        assert self._templates() == Counter(WHATSAPP.values()), self._templates()
        # and each says what happened: what is missing, the numbers, the bill
        said = {b["template"]["name"]: " | ".join(
                    p["text"] for c in b["template"].get("components") or ()
                    for p in c["parameters"])
                for b in self.suite.wa.received(to=self.digits) if b.get("type") == "template"}
        assert "Izin pemilik lahan belum bermeterai" in said["izin_dikembalikan"], said
        assert self.number in said["izin_terdaftar"], said
        assert self.app["bill"]["number"] in said["izin_tagihan"], said
        assert self.app["permit"]["number"] in said["izin_terbit"], said
        assert self.app["permit"]["code"] in said["izin_terbit"], said
        self._assert_once()

    def _assert_once(self):
        """No message twice: one stand-in send per notification, one notification per
        (event, rule, recipient, channel)."""
        counts = self.counts()
        assert counts["duplicates"] == 0 and counts["whatsapp_per_key_max"] == 1, counts

    # -- the dashboard of the day ----------------------------------------------------------

    def _dashboard(self):
        return self.suite.read("permits", f"{API}/dashboard", **self._as("admin"))

    def _assert_dashboard_today(self):
        """The live dashboard counts the day's steps (its handlers are asynchronous)."""
        want = {"date": self.day.isoformat(), "submitted": 1, "resubmitted": 1,
                "registered": 1, "issued": 1, "rejected": 0}

        def counted():
            figures = self._dashboard()
            today = {k: figures["today"][k] for k in want}
            return today == want and figures["by_status"] == {"issued": 1} and figures
        figures = eventually(counted, "the dashboard counting the day's application")
        assert figures["today"]["actions"] == dict(ACTIONS), figures["today"]["actions"]
        assert figures["open"] == 0 and figures["processing"]["decided"] == 1
        assert figures["processing"]["within_sla"] == 1
        self.today_figures = figures["today"]

    # -- 12:00 ---------------------------------------------------------------------------

    def status_question(self):
        """12:00: the citizen writes "STATUS <number>" and gets the answer."""
        answers = self._ask(f"STATUS {self.number}")
        assert answers[0].startswith(f"Permohonan {self.number}"), answers
        assert "Status: Izin terbit" in answers[0], answers[0]
        self._assert_once()
        # the public dashboard shows today's attendance (checked in before 08:00) as the
        # attendance module holds it: kept here, the day's close compares it with `present`
        self.attendance_seen = self._attendance_now()

    def _texts(self):
        return [b["text"]["body"] for b in self.suite.wa.received(to=self.digits)
                if b.get("type") == "text"]

    def _ask(self, text, tries=5):
        """Post ``text`` from the citizen until the desk's answer names the status: a
        "try again later" (permits unreachable for the RPC) is asked again, as a citizen
        would (any other answer is final). Returns the answers naming it (exactly one)."""
        for _ in range(tries):
            before = len(self._texts())
            self._post_inbound(text)
            answer = eventually(lambda n=before: len(self._texts()) > n and self._texts()[n],
                                "the desk's answer on the stand-in")
            if answer != desk.UNAVAILABLE_TEXT:
                break
        naming = [t for t in self._texts() if t.startswith(f"Permohonan {self.number}")]
        assert len(naming) == 1, self._texts()
        return naming

    def _post_inbound(self, text):
        """The stand-in posts the message; until notify's webhook took it (a restarting
        notify, the database away), it posts the same message again, as Meta retries."""
        wa = self.suite.wa
        wamid = wa.post_inbound(self.digits, text)
        entry = next(p for p in reversed(wa.posted)
                     if wamid in str(p["body"]))
        raw = _raw(entry["body"])

        def taken():
            if entry["status"] == 200:
                return True
            try:
                return wa.post_raw(raw, signature(wa.app_secret, raw)).status_code == 200
            except requests.RequestException:
                return False
        wait_until(taken, timeout=WAIT, interval=0.5, message="notify took the inbound message")
        return wamid

    def _public_dashboard(self):
        """The public dashboard's figures (``/dasbor/stream``'s first event: the JSON the
        page renders)."""
        with requests.get(f"{self.suite.url('permits')}/dasbor/stream", stream=True,
                          timeout=10) as response:
            response.raise_for_status()
            event = None
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "dashboard":
                    return json.loads(line[5:])["figures"]
        raise AssertionError("the public dashboard stream ended without its figures")

    def _checked_in_at_attendance(self):
        """Employees with a check-in on the day in the attendance module's own records."""
        days = self.suite.db("attendance").days.find({"date": self.day.isoformat()},
                                                     {"records.kind": 1})
        return sum(any(r.get("kind") == "in" for r in d.get("records") or ()) for d in days)

    def _attendance_now(self):
        def caught_up():
            seen = self._public_dashboard()["attendance"]
            return seen["date"] == self.day.isoformat() and \
                seen["present"] == self._checked_in_at_attendance() and seen
        return eventually(caught_up, "the public dashboard's attendance caught up")

    # -- after the close ---------------------------------------------------------------

    def agree_with(self, present):
        """After the close: the dashboard and the open data agree with the day (``present``:
        employees who checked in).

        The dashboards count "today", and at 00:06 today is the next day: neither the API nor
        the page takes a date. So the day's figures were read on the day (``today_figures``
        after the issue, ``attendance_seen`` at noon) and are compared now with the stats
        documents they came from (permits' ``day:<date>`` and ``presence`` ``<date>``), the
        month (the dashboard's and the open data's period: the test's databases hold this
        day only) and ``present``; the dashboards themselves must show the new day empty."""
        db, day, nxt = self.suite.db("permits"), self.day, self.day + timedelta(days=1)
        # the day as the dashboard showed it, still in its stats document
        assert self.today_figures["actions"] == dict(ACTIONS)
        kept = eventually(lambda: db.stats.find_one({"_id": f"day:{day.isoformat()}"}),
                          "the day's stats document")
        assert {k: v for k, v in (kept.get("actions") or {}).items() if v} == dict(ACTIONS)
        figures = self._dashboard()
        assert figures["today"]["date"] == nxt.isoformat(), figures["today"]
        assert not figures["today"]["actions"]  # nothing happened after midnight
        assert figures["by_status"] == {"issued": 1} and figures["open"] == 0
        if nxt.month == day.month:
            assert figures["month"]["actions"] == dict(ACTIONS), figures["month"]
        # the open data of the day's month, JSON and CSV
        period = f"{day:%Y-%m}"
        data = self.suite.read("permits", f"{API}/open-data/permits.json", token=False,
                               params={"from": period, "to": period})
        rows = [r for r in data["data"] if r["period"] == period]
        assert [(r["type"], r["opd"]) for r in rows] == [(TYPE, "3510.05")], rows
        assert {k: rows[0][k] for k in OPEN_DATA} == OPEN_DATA, rows[0]
        assert rows[0]["sla_compliance_pct"] == 100.0
        csv_rows = self._open_data_csv(period)
        assert len(csv_rows) == 1 and {k: int(csv_rows[0][k]) for k in OPEN_DATA} == OPEN_DATA
        assert "Hendra" not in str(data) and PHONE not in str(data)  # no personal data
        # attendance: what the dashboard showed on the day, the read model, `present`
        assert self.attendance_seen["present"] == present, (self.attendance_seen, present)
        # over the active employees of the OPDs (the Pemda's own unit is in none); the
        # headcount timer must have run since the import (PERMITS_HEADCOUNT_SECONDS)
        staff = sum(e["unit"] != PEMDA for e in self.world.active)
        assert self.attendance_seen["employees"] == staff, (self.attendance_seen, staff)
        counted = db.presence.find_one({"_id": day.isoformat()}) or {}
        assert counted.get("present", 0) == present, counted
        assert sum((counted.get("opds") or {}).values()) == present
        public = eventually(lambda: self._public_dashboard(), "the public dashboard")
        assert public["date"] == nxt.isoformat() and public["today"]["submitted"] == 0
        assert public["attendance"]["present"] == 0  # a new day: nobody yet
        self._assert_once()

    def _open_data_csv(self, period):
        response = self.suite.call("permits", "GET", f"{API}/open-data/permits.csv",
                                   token=False, params={"from": period, "to": period},
                                   expect=200)
        return list(csv.DictReader(io.StringIO(response.text)))

    # -- the counts ----------------------------------------------------------------------

    def counts(self):
        """From permits' and notify's own data (and the stand-in's log of what it got)."""
        permits, notify = self.suite.db("permits"), self.suite.db("notify")
        states = Counter(d["state"] for d in permits.applications.find({}, {"state": 1}))
        docs = list(notify.notifications.find({"recipient.phone": PHONE}, {"content": 0}))
        keys = Counter((d["event"]["id"], d["rule"], d["recipient"]["key"], delivery["channel"])
                       for d in docs for delivery in d.get("deliveries") or ())
        sent = [d for d in docs if d["channel"] == "whatsapp"
                and d["state"] in ("sent", "delivered", "read")]
        accepted = Counter(r["callback_data"].split(":")[0]
                           for r in list(self.suite.wa.requests)
                           if r["to"] == self.digits and r.get("callback_data"))
        per_rule = Counter(d["rule"] for d in docs if d["rule"] in WHATSAPP)
        per_key = max([*keys.values(), *accepted.values()], default=0)
        return {
            "applications": sum(states.values()),
            "issued": states.get("issued", 0),
            "whatsapp_sent": len(sent),
            "whatsapp_on_standin": sum(accepted.values()),
            "whatsapp_per_key_max": per_key,
            "duplicates": sum(n - 1 for n in [*keys.values(), *accepted.values(),
                                              *per_rule.values()] if n > 1),
            "status_replies": sum(d["rule"] == "desk" for d in docs),
        }


def _raw(body):
    return json.dumps(body, separators=(",", ":")).encode()

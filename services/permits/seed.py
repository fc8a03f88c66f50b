"""Demo permits for ``make run`` (``pamong run --demo``), written through the permits API once
the directory replica holds the demo Pemda's licensing office (DPMPTSP, ``3510.05``):

- four permit types modelled on real Pemda services, all of the DPMPTSP:
  **PBG** (Persetujuan Bangunan Gedung: fee, site visit, a technical recommendation of the
  public works office, or of Bappeda where the directory has no Dinas PUPR), **SIP** (Surat
  Izin Praktik for doctors: free, recommended by Dinas Kesehatan), **REKLAME** (izin
  penyelenggaraan reklame: fee, site visit, valid a year, recommended by the kecamatan where
  the billboard stands) and **TDUP** (Tanda Daftar Usaha Pariwisata: free, a business with
  its NIB, no recommendation);
- a regional day off (cuti bersama) in the holiday calendar;
- about twenty applications by citizens (their own ``pemohon`` token) or entered at the
  counter, taken by the roles each step requires (petugas, verifikator, pimpinan, the
  recommending OPDs' staff) to every state of the lifecycle: draft, submitted, returned,
  resubmitted, registered, in technical review (one waiting for its recommendation, one for
  its site visit), recommended, rejected, billed, paid, signed, issued, collected (three with
  an SKM survey), expired and revoked;
- the open ones are then dated back (their timeline's days, ``submitted_at``), as if
  submitted days or weeks ago, so their SLA clocks show days used: some are near their SLA
  (``permit.sla_warning``) and some over it (``permit.sla_breached``). The seed lists them
  for today's SLA check; the service's own SLA timer sends the alerts within a minute. The
  closed files keep today's dates (processed the day they came; the dashboard's figures were
  counted from their events).

Idempotent and resumable: every application is created with a fixed ``Idempotency-Key``; a
repeat finds it and only takes the steps it still lacks (a run stopped half-way is
completed by the next), so a second ``make run`` creates and changes nothing.
"""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from fpdf import FPDF

from pamong.auth import mint_token
from pamong.cache import TimedCache
from pamong.events.outbox import OUTBOX
from pamong.replica import UNITS
from pamong.storage import client_for, database_name
from services.permits import domain
from services.permits.access import API
from services.permits.lifecycle import schedule
from services.permits.store import APPLICATIONS, holidays_of, local_today

WAIT_SECONDS = 120
PEMDA = "3510"
OFFICE_HOURS = 9  # the back-dated steps happen from 09:00 local time, a minute apart

# -- the permit types --------------------------------------------------------------------------

PDF_ONLY = ("application/pdf",)
SCAN = ("application/pdf", "image/jpeg", "image/png")


def requirement(key, name, mandatory=True, types=PDF_ONLY, max_bytes=5_000_000):
    return {"key": key, "name": name, "mandatory": mandatory, "types": list(types),
            "max_bytes": max_bytes}


def stages(pendaftaran, teknis, keputusan, penerbitan):
    days = {"pendaftaran": pendaftaran, "teknis": teknis, "keputusan": keputusan,
            "penerbitan": penerbitan}
    return [{"key": key, "name": domain.STAGES[key], "sla_days": n} for key, n in days.items()]


def permit_types(units):
    """``{code: PUT /types body}`` for the DPMPTSP and the recommending OPDs of ``units``."""
    ptsp, health, works, district = (units[k] for k in ("ptsp", "health", "works", "district"))
    return {
        "PBG": {
            "name": "Persetujuan Bangunan Gedung (PBG)",
            "opd": ptsp, "legal_basis": "UU 28/2002 tentang Bangunan Gedung jo. UU 6/2023; "
                                       "PP 16/2021; Perda tentang Retribusi PBG",
            "description": "Persetujuan untuk membangun baru, mengubah, memperluas atau "
                           "merawat bangunan gedung sesuai standar teknis. Retribusi dihitung "
                           "dari luas dan fungsi bangunan; peninjauan lapangan oleh tim "
                           "teknis.",
            "requirements": [
                requirement("ktp", "KTP pemilik bangunan", types=SCAN),
                requirement("bukti_tanah", "Bukti kepemilikan atau penguasaan tanah "
                                           "(sertifikat)"),
                requirement("kkpr", "Konfirmasi Kesesuaian Kegiatan Pemanfaatan Ruang "
                                    "(KKPR)"),
                requirement("gambar_arsitektur", "Gambar rencana arsitektur",
                            max_bytes=10_000_000),
                requirement("gambar_struktur", "Gambar dan perhitungan struktur",
                            max_bytes=10_000_000),
                requirement("foto_lokasi", "Foto lokasi", mandatory=False,
                            types=("image/jpeg", "image/png")),
            ],
            "stages": stages(3, 18, 4, 3), "fee": 2_750_000, "validity_months": 0,
            "site_visit": True, "recommenders": [works], "needs_business": False,
            "active": True,
        },
        "SIP": {
            "name": "Surat Izin Praktik Dokter (SIP)",
            "opd": ptsp, "legal_basis": "UU 17/2023 tentang Kesehatan; PP 28/2024; Permenkes "
                                       "2052/2011 tentang Izin Praktik dan Pelaksanaan "
                                       "Praktik Kedokteran",
            "description": "Izin bagi dokter dan dokter gigi untuk berpraktik di fasilitas "
                           "pelayanan kesehatan atau praktik mandiri. Tanpa biaya; "
                           "rekomendasi Dinas Kesehatan.",
            "requirements": [
                requirement("ktp", "KTP pemohon", types=SCAN),
                requirement("str", "Surat Tanda Registrasi (STR) yang masih berlaku"),
                requirement("rekomendasi_idi", "Rekomendasi organisasi profesi (IDI/PDGI)"),
                requirement("surat_fasyankes", "Surat keterangan dari fasilitas pelayanan "
                                               "kesehatan tempat praktik"),
                requirement("pas_foto", "Pas foto 4x6 berlatar merah", mandatory=False,
                            types=("image/jpeg", "image/png"), max_bytes=1_000_000),
            ],
            "stages": stages(1, 2, 1, 1), "fee": 0, "validity_months": 60,
            "site_visit": False, "recommenders": [health], "needs_business": False,
            "active": True,
        },
        "REKLAME": {
            "name": "Izin Penyelenggaraan Reklame",
            "opd": ptsp, "legal_basis": "UU 1/2022 tentang Hubungan Keuangan antara Pemerintah "
                                       "Pusat dan Pemerintahan Daerah; Perda tentang "
                                       "Penyelenggaraan Reklame",
            "description": "Izin memasang reklame papan, billboard atau videotron pada titik "
                           "yang ditetapkan. Berlaku satu tahun; retribusi menurut ukuran dan "
                           "lokasi.",
            "requirements": [
                requirement("ktp", "KTP penanggung jawab", types=SCAN),
                requirement("desain", "Desain dan ukuran reklame", types=SCAN),
                requirement("denah_lokasi", "Denah titik lokasi pemasangan"),
                requirement("izin_pemilik", "Izin pemilik lahan atau bangunan"),
            ],
            "stages": stages(1, 3, 2, 1), "fee": 1_200_000, "validity_months": 12,
            "site_visit": True, "recommenders": [district], "needs_business": True,
            "active": True,
        },
        "TDUP": {
            "name": "Tanda Daftar Usaha Pariwisata (TDUP)",
            "opd": ptsp, "legal_basis": "UU 10/2009 tentang Kepariwisataan; PP 5/2021; "
                                       "Permenparekraf 4/2021",
            "description": "Pendaftaran usaha pariwisata (homestay, rumah makan, biro "
                           "perjalanan, jasa pramuwisata). Tanpa biaya.",
            "requirements": [
                requirement("ktp", "KTP pemilik usaha", types=SCAN),
                requirement("nib", "Nomor Induk Berusaha (NIB) dari OSS"),
                requirement("foto_usaha", "Foto tempat usaha", mandatory=False,
                            types=("image/jpeg", "image/png")),
            ],
            "stages": stages(1, 1, 1, 1), "fee": 0, "validity_months": 0,
            "site_visit": False, "recommenders": [], "needs_business": True, "active": True,
        },
    }


# -- the applicants --------------------------------------------------------------------------

# (key, name, NIK: Banyuwangi districts, birth date and sex consistent, phone, village,
#  district)
PEOPLE = {
    "rina": ("Rina Puspitasari", "3510036304880003", "081233450012", "Penganjuran",
             "Banyuwangi"),
    "agus": ("Agus Setiawan", "3510171205790004", "085236781234", "Gambiran", "Gambiran"),
    "dewi": ("dr. Dewi Lestari", "3510195708900002", "081335557890", "Genteng Kulon",
             "Genteng"),
    "bambang": ("Bambang Hariyanto", "3510062110750001", "082145671122", "Kertosari",
                "Banyuwangi"),
    "yusuf": ("dr. Muhammad Yusuf", "3510140302910005", "087755501234", "Rogojampi",
              "Rogojampi"),
    "sri": ("Sri Wahyuni", "3510105612820006", "081559871200", "Kemiren", "Glagah"),
    "hendra": ("Hendra Kurniawan", "3510082809860007", "085730012345", "Muncar", "Muncar"),
    "lilis": ("Lilis Suryani", "3510125011930008", "089612345678", "Tembokrejo", "Muncar"),
    "fajar": ("Fajar Nugroho", "3510190101950009", "081332224455", "Kembiritan", "Genteng"),
    "nur": ("dr. Nur Aini Rahmawati", "3510154409920010", "081234009988", "Srono", "Srono"),
}
BUSINESSES = {  # NIB: 13 digits, as OSS issues them
    "sri": {"name": "Homestay Kampung Osing Kemiren", "nib": "9120301122334"},
    "hendra": {"name": "CV Muncar Media Reklame", "nib": "8120005566771"},
    "lilis": {"name": "Rumah Makan Pecel Pitik Bu Lilis", "nib": "9120207788990"},
    "fajar": {"name": "Ijen Blue Fire Tour", "nib": "9120104455667"},
    "agus": {"name": "UD Gambiran Advertising", "nib": "8120009988776"},
}


def applicant(key):
    name, nik, phone, village, district = PEOPLE[key]
    day, month, year = int(nik[6:8]) % 40, int(nik[8:10]), 1900 + int(nik[10:12])
    return {"nik": nik, "name": name,
            "birth_date": f"{year:04d}-{month:02d}-{day:02d}", "phone": phone,
            "email": f"{name.split()[-1].lower()}.{key}@contoh.id",
            "address": {"street": f"Jl. Raya {village} No. {len(name)}", "village": village,
                        "district": district, "regency": "Kabupaten Banyuwangi",
                        "province": "Jawa Timur", "region_code": f"35.10.{nik[4:6]}.2001"},
            "channel": "whatsapp" if len(name) % 3 else "email"}


# -- the files: (key, type, applicant, counter?, the steps, age) ------------------------------
# A step is (action, days ago) with its extras; ``age``-less files keep today's dates.
# Steps other than actions: "recommendation" (positive|negative, note), "visit" (scheduled
# or done with findings), "survey" (scores).

POSITIVE = ("recommendation", "positive", "Sesuai ketentuan teknis; direkomendasikan.")
VISITED = ("visit", "done", "Lokasi sesuai gambar rencana dan KKPR; tidak ada keberatan "
                            "tetangga.")
SCHEDULED = ("visit", "scheduled", None)
SURVEY = ("survey",)

FILES = [
    # drafts and the front office
    ("draft-sip", "SIP", "nur", False, [], None),
    ("submitted-tdup", "TDUP", "lilis", False, [("submit", 0)], 0),
    ("submitted-counter-reklame", "REKLAME", "agus", True, [("submit", 1)], 1),
    ("returned-pbg", "PBG", "bambang", False,
     [("submit", 6), ("return", 5, ["Gambar struktur belum ditandatangani perencana "
                                    "bersertifikat", "KKPR tidak sesuai alamat persil"])], 6),
    ("resubmitted-reklame", "REKLAME", "hendra", False,
     [("submit", 5), ("return", 4, ["Izin pemilik lahan belum bermeterai"]),
      ("resubmit", 1)], 5),
    ("registered-sip", "SIP", "yusuf", False, [("submit", 2), ("register", 1)], 2),
    # technical review
    ("review-pbg-awaiting-recommendation", "PBG", "rina", False,
     [("submit", 9), ("register", 8), ("start_review", 7), SCHEDULED], 9),
    ("review-pbg-near-breach", "PBG", "agus", True,
     [("submit", 26), ("register", 24), ("start_review", 22), POSITIVE, SCHEDULED], 26),
    ("review-sip-breached", "SIP", "dewi", False,
     [("submit", 7), ("register", 6), ("start_review", 5)], 7),
    ("recommended-tdup", "TDUP", "fajar", False,
     [("submit", 3), ("register", 3), ("start_review", 2), ("recommend", 1)], 3),
    ("rejected-reklame", "REKLAME", "hendra", False,
     [("submit", 0), ("register", 0), ("start_review", 0),
      ("recommendation", "negative", "Titik berada di ruang milik jalan dan menutup rambu "
                                     "lalu lintas."),
      ("reject", 0, "Lokasi reklame berada di ruang milik jalan (Perda Reklame pasal 12).")],
     None),
    # the decision, payment and the permit
    ("billed-pbg", "PBG", "bambang", False,
     [("submit", 20), ("register", 19), ("start_review", 17), POSITIVE, VISITED,
      ("recommend", 5), ("bill", 4)], 20),
    ("paid-reklame-near-breach", "REKLAME", "hendra", True,
     [("submit", 9), ("register", 8), ("start_review", 7), POSITIVE, VISITED,
      ("recommend", 4), ("bill", 3), ("pay", 1, "BJI-20261201-0042")], 9),
    ("signed-sip", "SIP", "nur", False,
     [("submit", 3), ("register", 3), ("start_review", 2), POSITIVE, ("recommend", 1),
      ("sign", 0)], 3),
    ("issued-tdup", "TDUP", "sri", False,
     [("submit", 0), ("register", 0), ("start_review", 0), ("recommend", 0), ("sign", 0),
      ("issue", 0)], None),
    ("collected-sip", "SIP", "dewi", False,
     [("submit", 0), ("register", 0), ("start_review", 0), POSITIVE, ("recommend", 0),
      ("sign", 0), ("issue", 0), ("collect", 0), SURVEY], None),
    ("collected-tdup", "TDUP", "lilis", False,
     [("submit", 0), ("register", 0), ("start_review", 0), ("recommend", 0), ("sign", 0),
      ("issue", 0), ("collect", 0), SURVEY], None),
    ("collected-pbg-counter", "PBG", "rina", True,
     [("submit", 0), ("register", 0), ("start_review", 0), POSITIVE, VISITED,
      ("recommend", 0), ("bill", 0), ("pay", 0, "TELLER-BPD-7781"), ("sign", 0), ("issue", 0),
      ("collect", 0), SURVEY], None),
    ("expired-reklame", "REKLAME", "agus", False,
     [("submit", 0), ("register", 0), ("start_review", 0), POSITIVE, VISITED,
      ("recommend", 0), ("bill", 0), ("pay", 0, "BJI-20261205-0007"), ("sign", 0),
      ("issue", 0), ("expire", 0)], None),
    ("revoked-reklame", "REKLAME", "hendra", False,
     [("submit", 0), ("register", 0), ("start_review", 0), POSITIVE, VISITED,
      ("recommend", 0), ("bill", 0), ("pay", 0, "BJI-20261205-0011"), ("sign", 0),
      ("issue", 0), ("revoke", 0, "Reklame dipasang di luar titik yang diizinkan setelah "
                                  "dua kali teguran.")], None),
]
SURVEYS = {  # the nine SKM elements, 1-4
    "collected-sip": {"persyaratan": 4, "prosedur": 4, "waktu": 3, "biaya": 4, "produk": 4,
                      "kompetensi": 4, "perilaku": 4, "pengaduan": 3, "sarana": 3},
    "collected-tdup": {"persyaratan": 3, "prosedur": 3, "waktu": 4, "biaya": 4, "produk": 3,
                       "kompetensi": 3, "perilaku": 4, "pengaduan": 3, "sarana": 3},
    "collected-pbg-counter": {"persyaratan": 3, "prosedur": 3, "waktu": 3, "biaya": 3,
                              "produk": 4, "kompetensi": 3, "perilaku": 3, "pengaduan": 2,
                              "sarana": 3},
}
HOLIDAY = ("12-24", "Cuti bersama Hari Raya Natal", "cuti_bersama")


def seed(base_url, config):
    """Load the demo; ``{"types", "applications": {"created", "present"}, "dated"}``, or None
    when the directory replica never held the DPMPTSP."""
    db = client_for(config["MONGO_URI"])[database_name(config, "permits")]
    units = wait_for_units(db)
    if units is None:
        print(f"permits demo: the directory replica holds no DPMPTSP after {WAIT_SECONDS} s; "
              "no demo permits")
        return None
    demo = Demo(base_url, config, db, units)
    counts = demo.run()
    print(f"permits demo: {counts['types']} permit types published, "
          f"{counts['applications']['created']} applications created "
          f"({counts['applications']['present']} already there), {counts['dated']} open "
          "files dated back (SLA alerts follow from the SLA timer)")
    return counts


def wait_for_units(db, seconds=WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while True:
        if found := pick_units(db):
            return found
        if time.monotonic() > deadline:
            return None
        time.sleep(1)


def pick_units(db):
    """The DPMPTSP and the recommending OPDs from the replica (by name, as a Pemda names
    them): ``{"ptsp", "health", "works", "district"}`` unit codes, or None."""
    units = [u for u in db[UNITS].find({}) if u.get("active", True)]
    opds = sorted((u for u in units if u.get("opd") == u["_id"] and u["_id"] != PEMDA),
                  key=lambda u: u["_id"])

    def named(*words):
        for word in words:
            for unit in opds:
                if word.lower() in unit.get("name", "").lower():
                    return unit["_id"]
        return None

    ptsp = named("Pelayanan Terpadu Satu Pintu", "PTSP", "Perizinan")
    health = named("Dinas Kesehatan")
    works = named("Pekerjaan Umum", "Cipta Karya", "Tata Ruang", "Perencanaan Pembangunan")
    district = named("Kecamatan") or works
    if not (ptsp and health and works):
        return None
    return {"ptsp": ptsp, "health": health, "works": works, "district": district}


class Demo:
    def __init__(self, base_url, config, db, units):
        self.base_url, self.config, self.db, self.units = base_url, config, db, units
        self.session = requests.Session()
        self.today = local_today(config)
        self.zone = ZoneInfo(config.get("PERMITS_TIMEZONE", "Asia/Jakarta"))
        self.created = self.present = self.dated = 0
        self.cache = TimedCache(60)

    # -- HTTP ----------------------------------------------------------------------------------

    def token(self, who):
        """A development token: ``("pemohon", key)``, ``(role, opd)`` of staff, ``admin``,
        ``service``."""
        kind, arg = who
        if kind == "pemohon":
            name, nik = PEOPLE[arg][:2]
            return mint_token(self.config, f"demo-warga-{arg}", ["pemohon"], name=name,
                              nik=nik)
        if kind == "admin":
            return mint_token(self.config, "demo-admin", ["admin"], opd=PEMDA,
                              name="Admin Pemda")
        if kind == "service":
            return mint_token(self.config, "demo-system", ["service"], name="Timer")
        return mint_token(self.config, f"demo-{kind}-{arg}", [kind], opd=arg,
                          name=f"{kind.capitalize()} {arg}")

    def call(self, method, path, who, expect=(200, 201), **kwargs):
        response = self.session.request(
            method, f"{self.base_url}{API}{path}", timeout=60,
            headers={"Authorization": f"Bearer {self.token(who)}",
                     **kwargs.pop("headers", {})}, **kwargs)
        if response.status_code not in expect:
            raise RuntimeError(f"permits demo: {method} {path} answered "
                               f"{response.status_code}: {response.text[:400]}")
        return response

    # -- the demo ------------------------------------------------------------------------------

    def run(self):
        types = permit_types(self.units)
        for code, body in types.items():
            self.call("PUT", f"/types/{code}", ("admin", None), json=body)
        day, name, kind = HOLIDAY
        self.call("PUT", f"/holidays/{self.today.year}-{day}", ("admin", None),
                  json={"name": name, "kind": kind})
        for file in FILES:
            self.file(*file)
        return {"types": len(types), "applications": {"created": self.created,
                                                      "present": self.present},
                "dated": self.dated}

    def file(self, key, code, person, counter, steps, age):
        ptsp = self.units["ptsp"]
        owner = ("petugas", ptsp) if counter else ("pemohon", person)
        body = {"type": code, "applicant": applicant(person)}
        if code in ("TDUP", "REKLAME"):
            body["business"] = BUSINESSES.get(person, BUSINESSES["agus"])
        r = self.call("POST", "/applications", owner, json=body,
                      headers={"Idempotency-Key": f"demo-permits-{key}"})
        if r.status_code == 201:
            self.created += 1
        else:
            self.present += 1
        app = r.json()
        if app["state"] == domain.DRAFT:
            self.documents(app, owner)
        for step in steps[self.done_steps(app["id"], steps):]:
            self.step(key, app["id"], step, owner)
        if age is not None:
            self.date_back(app["id"], steps)

    def documents(self, app, owner):
        """A PDF for every requirement that takes one and has no document yet."""
        have = {d["requirement"] for d in app.get("documents") or ()}
        for req in app["standard"]["requirements"]:
            if req["key"] not in have and "application/pdf" in req["types"]:
                self.call("POST", f"/applications/{app['id']}/documents/{req['key']}", owner,
                          data=sample_pdf(req["name"], app["applicant"]["name"]),
                          params={"name": f"{req['key']}.pdf"},
                          headers={"Content-Type": "application/pdf"})

    def read(self, app_id):
        """The application as stored (what the steps need: version, timeline,
        recommendations, visit, survey)."""
        return self.db[APPLICATIONS].find_one({"_id": app_id}, {OUTBOX: 0})

    def done_steps(self, app_id, steps):
        """How many of a file's ``steps`` it has taken already (a repeat, or a run stopped
        half-way): its actions on the timeline, and the recommendations, visit and survey it
        carries."""
        app = self.read(app_id)
        actions = [e["action"] for e in app["timeline"] if e.get("action") in domain.ACTIONS]
        n = 0
        for step in steps:
            kind = step[0]
            if kind in domain.ACTIONS:
                if not actions or actions[0] != kind:
                    break
                actions.pop(0)
            elif kind == "recommendation":
                if any(r["status"] == "requested" for r in app.get("recommendations") or ()):
                    break
            elif kind == "visit":
                visit = app.get("site_visit") or {}
                if not (visit.get("done_on") if step[1] == "done" else visit):
                    break
            elif kind == "survey" and not app.get("skm"):
                break
            n += 1
        return n

    def step(self, key, app_id, step, owner):
        ptsp, kind = self.units["ptsp"], step[0]
        app = self.read(app_id)
        if kind == "recommendation":
            for asked in app.get("recommendations") or ():
                if asked["status"] == "requested":
                    self.call("POST", f"/applications/{app_id}/recommendations/{asked['opd']}",
                              ("verifikator", asked["opd"]),
                              json={"recommendation": step[1], "note": step[2]})
            return
        if kind == "visit":
            if step[1] == "scheduled":
                visit = {"scheduled_on": domain.add_working_days(self.today, 2).isoformat()}
            else:
                visit = {"done_on": self.today.isoformat(), "findings": step[2]}
            self.call("POST", f"/applications/{app_id}/site-visit", ("verifikator", ptsp),
                      json=visit)
            return
        if kind == "survey":
            self.call("POST", f"/applications/{app_id}/survey", owner,
                      json={"scores": SURVEYS[key]})
            return
        action, _ago, *extra = step
        who = {"applicant": owner, "officer": ("petugas", ptsp),
               "reviewer": ("verifikator", ptsp), "head": ("pimpinan", ptsp),
               "system": ("service", None)}[domain.ACTIONS[action].parties[0]]
        body = {"version": app["version"]}
        need = domain.ACTIONS[action].needs
        if "missing_items" in need:
            body["missing_items"] = extra[0]
        elif "reason" in need:
            body["reason"] = extra[0]
        elif "payment_reference" in need:
            body["payment_reference"] = extra[0]
        self.call("POST", f"/applications/{app_id}/actions/{action}", who, json=body)

    # -- dating back ---------------------------------------------------------------------------

    def date_back(self, app_id, steps):
        """Give an open file the days of its steps (``days ago`` in working days) instead of
        today, and list it for today's SLA check. Only when a step is dated later than
        planned (a file this run or an earlier one stopped half-way took today)."""
        app = self.db[APPLICATIONS].find_one({"_id": app_id}, {OUTBOX: 0})
        if app is None or app["state"] not in domain.OPEN:
            return
        agos = [step[1] for step in steps if step[0] in domain.ACTIONS]
        days = [self.working_days_ago(n) for n in agos]
        timeline = [dict(e) for e in app["timeline"]]
        acted = [e for e in timeline if e.get("action") in domain.ACTIONS]
        if len(acted) != len(days):
            return
        if all(e.get("on") <= d.isoformat() for e, d in zip(acted, days, strict=True)):
            return
        for minute, (entry, day) in enumerate(zip(acted, days, strict=True)):
            entry["on"] = day.isoformat()
            entry["at"] = self.at(day, minute)
        for entry in timeline:  # the creation (and anything before the first action)
            if entry.get("action") not in domain.ACTIONS:
                entry["on"], entry["at"] = days[0].isoformat(), self.at(days[0], 0)
            else:
                break
        first = timeline[0]["at"]
        changes = {"timeline": timeline, "created_at": first,
                   "submitted_at": acted[0]["at"], "sla.next_check": self.today.isoformat()}
        written = self.db[APPLICATIONS].update_one(
            {"_id": app_id, "version": app["version"]},
            {"$set": changes, "$inc": {"version": 1}})
        if written.matched_count:
            schedule(self.db, "sla", self.today, [app_id])
            self.dated += 1

    def working_days_ago(self, n):
        """The day ``n`` working days before today, or before the last working day when
        today is none (the service's holiday calendar): the clock shows ``n`` days used."""
        holidays = holidays_of(self.db, self.cache, (self.today.year - 1, self.today.year))
        day = self.today
        while not domain.is_working_day(day, holidays):
            day -= timedelta(days=1)
        if n <= 0:
            return self.today
        while n > 0:
            day -= timedelta(days=1)
            n -= domain.is_working_day(day, holidays)
        return day

    def at(self, day, minute):
        local = datetime(day.year, day.month, day.day, OFFICE_HOURS, minute, tzinfo=self.zone)
        return local.astimezone(UTC)


def sample_pdf(title, holder):
    """A one-page PDF standing in for the scanned document."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, f"{title}\n\nAtas nama: {holder}\n\n(dokumen contoh untuk demo)")
    return bytes(pdf.output())

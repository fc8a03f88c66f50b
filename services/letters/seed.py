"""Demo letters for ``make run`` (``pamong run --demo``), written through the letters API once
the directory replica holds the demo Pemda:

- a numbering template for every OPD (its code from the OPD's name);
- in one OPD: letters in every state of the flow (draft, in review, returned, awaiting the
  signature, withdrawn, signed and sent to another OPD, archived, revoked), with their
  timelines;
- a signed **surat tugas** that sends two staff of that OPD on dinas luar from today for three
  days (attendance turns it into their assignment: they may check in at the place);
- an incoming letter from outside, registered by the OPD's mail clerk with its scan, disposed
  by the head to a head of bidang and by them to a staff member, who completed it;
- a block of reserved numbers with one used on paper.

Idempotent: every letter is created with a fixed ``Idempotency-Key``, and its steps are taken
only when it was created by this run, so a second ``make run`` adds nothing.
"""

import time

import requests
from fpdf import FPDF

from pamong.auth import mint_token
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import client_for, database_name

API = "/api/letters/v1"
WAIT_SECONDS = 120
PLACE = {"name": "Kantor Gubernur Jawa Timur, Surabaya", "latitude": -7.2458,
         "longitude": 112.7378, "radius_m": 200}


def seed(base_url, config):
    db = client_for(config["MONGO_URI"])[database_name(config, "letters")]
    people = wait_for_people(db)
    if people is None:
        print("letters demo: the directory replica holds no OPD with a head, a head of bidang "
              f"and two staff after {WAIT_SECONDS} s; no demo letters")
        return None
    demo = Demo(base_url, config, people)
    demo.numbering(db)
    counts = demo.letters()
    print(f"letters demo: {counts['created']} letters created ({counts['present']} already "
          f"there) in {people['opd']['name']}; a surat tugas sends "
          f"{' and '.join(people['staff'])} on dinas luar")
    return counts


def wait_for_people(db):
    """The OPD the demo writes in: its head (who may sign), a head of bidang and two of that
    bidang's staff, from the replica once it has them."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if found := pick_people(db):
            return found
        time.sleep(1)
    return None


def pick_people(db):
    employees = [e for e in db[EMPLOYEES].find({"status": "active"})]
    units = {u["_id"]: u for u in db[UNITS].find({})}
    heads = {e["unit"]: e for e in employees if (e.get("position") or {}).get("heads_unit")
             and (e.get("position") or {}).get("may_sign")}
    for opd in sorted(code for code, u in units.items() if u.get("kind") == "opd"):
        if opd not in heads:
            continue
        for bidang in sorted(c for c, u in units.items() if u.get("parent") == opd):
            staff = sorted(e["_id"] for e in employees if e["unit"] == bidang
                           and not (e.get("position") or {}).get("heads_unit"))
            if bidang in heads and len(staff) >= 2:
                other = next(c for c in sorted(units) if units[c].get("kind") == "opd"
                             and c != opd)
                return {"opd": {"code": opd, "name": units[opd]["name"]}, "bidang": bidang,
                        "head": heads[opd]["_id"], "kabid": heads[bidang]["_id"],
                        "staff": staff[:2], "other_opd": units[other],
                        "opds": {c: u["name"] for c, u in units.items()
                                 if u.get("kind") == "opd"}}
    return None


def unit_code(name):
    """``Dinas Kesehatan`` -> ``DK``; the code an OPD's numbers carry."""
    words = [w for w in name.replace(",", " ").split() if w[0].isupper()]
    return "".join(w[0] for w in words)[:8] or "OPD"


class Demo:
    def __init__(self, base_url, config, people):
        self.base_url, self.config, self.people = base_url, config, people
        self.session = requests.Session()
        self.created = self.present = 0

    def call(self, method, path, nip=None, roles=("pegawai",), unit=None, expect=(200, 201),
             **kwargs):
        opd = self.people["opd"]["code"]
        token = mint_token(self.config, f"demo-{nip or roles[0]}", list(roles),
                           opd=unit or (self.people["bidang"] if nip else opd), nip=nip,
                           name="make run")
        response = self.session.request(method, f"{self.base_url}{API}{path}", timeout=60,
                                        headers={"Authorization": f"Bearer {token}",
                                                 **kwargs.pop("headers", {})}, **kwargs)
        if response.status_code not in expect:
            raise RuntimeError(f"letters demo: {method} {path} answered "
                               f"{response.status_code}: {response.text[:300]}")
        return response

    def numbering(self, db):
        for code, name in sorted(self.people["opds"].items()):
            if db["numbering"].find_one({"_id": code}) is None:
                self.call("PUT", f"/numbering/{code}", roles=("admin",), unit="3510",
                          json={"unit_code": unit_code(name),
                                "template": "{klasifikasi}/{urut:3}/{unit}/{tahun}",
                                "kinds": {"surat_tugas": "{urut:3}/ST/{unit}/"
                                                         "{bulan_romawi}/{tahun}"}})

    # -- the letters ---------------------------------------------------------------------------

    def letters(self):
        p = self.people
        head, kabid, staff = p["head"], p["kabid"], p["staff"][0]
        other = p["other_opd"]

        def body(subject, **changes):
            return {"kind": "nota_dinas", "classification": "000.8.3.3", "security": "B",
                    "urgency": "biasa", "subject": subject,
                    "body": "Dengan hormat,\n\nSehubungan dengan " + subject.lower()
                            + ", bersama ini kami sampaikan untuk menjadi perhatian.\n\n"
                              "Demikian disampaikan, atas perhatiannya diucapkan terima kasih.",
                    "addressees": [{"type": "internal", "unit": other["_id"],
                                    "name": f"Kepala {other['name']}"}],
                    "copies": [], "verifiers": [kabid], "signer": head, **changes}

        steps = {
            "draft": [],
            "in-review": [("submit", staff)],
            "returned": [("submit", staff), ("return", kabid, "Mohon lengkapi dasar hukum.")],
            "awaiting": [("submit", staff), ("approve", kabid)],
            "withdrawn": [("withdraw", staff)],
            "sent": [("submit", staff), ("approve", kabid), ("sign", head)],
            "archived": [("submit", staff), ("approve", kabid), ("sign", head)],
            "revoked": [("submit", staff), ("approve", kabid), ("sign", head)],
        }
        subjects = {
            "draft": "Rencana rapat evaluasi pelayanan publik triwulan IV",
            "in-review": "Permohonan data pegawai untuk SPBE",
            "returned": "Usulan kegiatan sosialisasi aplikasi pamong",
            "awaiting": "Undangan rapat koordinasi anggaran",
            "withdrawn": "Pemberitahuan libur cuti bersama (dibatalkan)",
            "sent": "Laporan capaian kinerja bulan November",
            "archived": "Penyampaian laporan keuangan semester I",
            "revoked": "Undangan rapat yang dijadwalkan ulang",
        }
        done = {}
        for name, path in steps.items():
            done[name] = self.letter(name, body(subjects[name]), path)
        assignment = {"employees": p["staff"], "start": time.strftime("%Y-%m-%d"),
                      "end": time.strftime("%Y-%m-%d", time.localtime(time.time() + 2 * 86400)),
                      "place": PLACE, "purpose": "Rapat koordinasi SPBE tingkat provinsi"}
        self.letter("surat-tugas", body(
            "Penugasan rapat koordinasi SPBE di Surabaya", kind="surat_tugas",
            classification="000.1.2", assignment=assignment, verifiers=[]),
            [("submit", staff), ("sign", head)])
        if done["archived"]:
            self.when_sent(done["archived"], lambda letter: self.call(
                "POST", f"/letters/{letter}/archive", roles=("opd_admin",), json={}))
        if done["revoked"]:
            self.when_sent(done["revoked"], lambda letter: self.call(
                "POST", f"/letters/{letter}/revoke", head, roles=("pimpinan",),
                unit=p["opd"]["code"], json={"reason": "Jadwal rapat diubah; diganti surat "
                                                       "baru."}))
        self.incoming()
        self.reserved_block()
        return {"created": self.created, "present": self.present}

    def letter(self, name, body, path):
        """The letter of ``name`` (created once) taken along ``path``; its id when this run
        created it, else None."""
        drafter = self.people["staff"][0]
        r = self.call("POST", "/letters", drafter, headers={"Idempotency-Key": f"demo-{name}"},
                      json=body)
        if r.status_code == 200:
            self.present += 1
            return None
        self.created += 1
        letter = r.json()["id"]
        for step, nip, *note in path:
            roles = ("pimpinan",) if step == "sign" else ("pegawai",)
            unit = self.people["opd"]["code"] if nip == self.people["head"] else None
            self.call("POST", f"/letters/{letter}/{step}", nip, roles=roles, unit=unit,
                      json={"note": note[0]} if note else {})
        return letter

    def when_sent(self, letter, then):
        """``then(letter)`` once the letter is sealed and sent (the service does that after the
        signature, on its own event)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.call("GET", f"/letters/{letter}", roles=("admin",),
                              unit="3510").json()["state"]
            if state == "sent":
                then(letter)
                return
            time.sleep(0.5)
        print(f"letters demo: letter {letter} was not sent within 60 s (is the sealing "
              "failing? see the service's log)")

    def incoming(self):
        p = self.people
        opd = p["opd"]["code"]
        r = self.call("POST", "/incoming", roles=("sekretariat",), unit=opd,
                      headers={"Idempotency-Key": "demo-incoming"},
                      json={"unit": opd, "sender": {"name": "Kepala Dinas Kominfo Provinsi",
                                                    "organisation": "Pemerintah Provinsi "
                                                                    "Jawa Timur"},
                            "sender_number": "000.1.2/4512/114.3/2026",
                            "sender_date": time.strftime("%Y-%m-%d"),
                            "classification": "000.1.2", "urgency": "segera",
                            "subject": "Undangan rapat koordinasi SPBE tingkat provinsi",
                            "summary": "Undangan bagi kepala OPD dan dua staf teknis."})
        if r.status_code == 200:
            self.present += 1
            return
        self.created += 1
        letter = r.json()["id"]
        scan = _scan(r.json()["subject"])
        self.call("POST", f"/letters/{letter}/attachments", roles=("sekretariat",), unit=opd,
                  params={"name": "undangan-provinsi.pdf"}, data=scan,
                  headers={"Content-Type": "application/pdf"})
        receipt = f"{letter}:{opd}"
        first = self.call("POST", f"/receipts/{receipt}/dispositions", p["head"],
                          roles=("pimpinan",), unit=opd,
                          json={"to": [p["kabid"]], "instruction": "Hadiri dan laporkan.",
                                "urgency": "segera",
                                "due": time.strftime("%Y-%m-%d",
                                                     time.localtime(time.time() + 3 * 86400))})
        (kabid_disposition,) = first.json()["items"]
        self.call("POST", f"/dispositions/{kabid_disposition['id']}/read", p["kabid"],
                  roles=("pimpinan",), json={})
        second = self.call("POST", f"/dispositions/{kabid_disposition['id']}/dispositions",
                           p["kabid"], roles=("pimpinan",),
                           json={"to": [p["staff"][0]], "instruction": "Siapkan bahan paparan."})
        (staff_disposition,) = second.json()["items"]
        self.call("POST", f"/dispositions/{staff_disposition['id']}/complete", p["staff"][0],
                  json={"note": "Bahan paparan sudah dikirim ke Kabid."})

    def reserved_block(self):
        p = self.people
        opd = p["opd"]["code"]
        r = self.call("POST", "/numbering/reservations", roles=("opd_admin",), unit=opd,
                      headers={"Idempotency-Key": "demo-reserved"},
                      json={"unit": opd, "count": 5, "reason": "Cadangan nomor untuk "
                                                               "pemadaman server"})
        block = r.json()
        if block["numbers"][0]["status"] == "reserved":
            self.call("POST", f"/numbering/reservations/{block['id']}/numbers/"
                              f"{block['first']}", roles=("opd_admin",), unit=opd,
                      json={"used_on": time.strftime("%Y-%m-%d"), "classification": "000.8.3.3",
                            "subject": "Surat pengantar berkas (ditulis tangan saat server "
                                       "mati)", "signer": f"Kepala OPD ({p['head']})"})


def _scan(subject):
    """A one-page PDF standing in for the paper letter's scan."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, f"PEMERINTAH PROVINSI JAWA TIMUR\n\n{subject}\n\n(hasil pindai)")
    return bytes(pdf.output())

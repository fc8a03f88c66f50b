"""A fictional Pemda for demos and tests: Pemerintah Kabupaten Banyuwangi (BPS 3510, WIB).

The regency, its town and its districts are real; the organisation is simplified and every
person, number and address in it is invented. ``demo_pemda()`` returns the three CSV files
(``csvio`` layouts) and is deterministic: a seeded generator, no clock.

- Unit ``3510`` (the Pemda) with the positions Bupati (elected, so no employee holds it: it
  stays vacant) and Sekretaris Daerah; eight OPDs ``3510.01``-``3510.08``, each with 3-5
  bidang/bagian/sekretariat/seksi/UPTD (two Puskesmas, a school) below, and one more level
  in two places (a subbagian, a seksi). The Sekretaris Daerah sits at ``3510``, so the head
  position of the Sekretariat Daerah (``3510.01``) is its Asisten Administrasi Umum.
- A head position for every unit, superiors explicit: staff -> head of the unit -> head of
  the unit above -> ... -> OPD head -> Sekretaris Daerah -> Bupati.
- 300 employees, about 15% PPPK; every head position is filled except the Bupati and
  ``VACANT_HEAD_POSITION`` (an OPD head, for the acting-head (Plt) demo); a few employees on
  unpaid leave (CLTN) or retired. Phones are +628..., e-mails use ``EMAIL_DOMAIN``, a domain
  under the reserved ``.example`` top-level domain, so nothing can reach a real mailbox.
"""

import itertools
import random
from datetime import date

from services.directory.csvio import export

__all__ = ["EMAIL_DOMAIN", "EMPLOYEES", "PEMDA", "VACANT_HEAD_POSITION", "demo_pemda"]

PEMDA = "3510"
EMPLOYEES = 300
VACANT_HEAD_POSITION = "KEPALA.3510.07"  # Kepala Bappeda: vacant, an acting head fills in
EMAIL_DOMAIN = "banyuwangikab.example"
_SEED = 3510
_PPPK_SHARE = 0.15
_LATEST = date(2024, 12, 31)  # nothing in the demo is later: valid whatever the clock says

# (code, kind, name, head title, offices, staff positions: (position slug, weight) ...)
_UNITS = (
    ("3510", "pemda", "Pemerintah Kabupaten Banyuwangi", "Bupati Banyuwangi",
     [("Kantor Bupati Banyuwangi", -8.2192, 114.3691, 150)], ()),
    ("3510.01", "opd", "Sekretariat Daerah", "Asisten Administrasi Umum",
     [("Gedung Sekretariat Daerah", -8.2187, 114.3684, 100)], ()),
    ("3510.01.01", "bidang", "Bagian Pemerintahan", "Kepala Bagian Pemerintahan", [],
     (("ANALIS-KEBIJAKAN", 3), ("PENGADMINISTRASI-UMUM", 2))),
    ("3510.01.02", "bidang", "Bagian Organisasi", "Kepala Bagian Organisasi", [],
     (("ANALIS-KEBIJAKAN", 2), ("PRANATA-KOMPUTER", 1))),
    ("3510.01.03", "bidang", "Bagian Umum", "Kepala Bagian Umum", [],
     (("PENGADMINISTRASI-UMUM", 4), ("PENGEMUDI", 2))),
    ("3510.02", "opd", "Dinas Pendidikan", "Kepala Dinas Pendidikan",
     [("Kantor Dinas Pendidikan", -8.2251, 114.3598, 100)], ()),
    ("3510.02.01", "bidang", "Sekretariat Dinas Pendidikan", "Sekretaris Dinas Pendidikan", [],
     (("PENGADMINISTRASI-UMUM", 3), ("PRANATA-KOMPUTER", 1))),
    ("3510.02.02", "bidang", "Bidang Pembinaan Sekolah Dasar",
     "Kepala Bidang Pembinaan Sekolah Dasar", [], (("PENGAWAS-SEKOLAH", 2),)),
    ("3510.02.03", "bidang", "Bidang Pembinaan Sekolah Menengah Pertama",
     "Kepala Bidang Pembinaan Sekolah Menengah Pertama", [], (("PENGAWAS-SEKOLAH", 2),)),
    ("3510.02.04", "uptd", "UPTD SMP Negeri 1 Genteng", "Kepala UPTD SMP Negeri 1 Genteng",
     [("Gedung SMP Negeri 1 Genteng", -8.3652, 114.1468, 120)],
     (("GURU", 40), ("PENGADMINISTRASI-UMUM", 3))),
    ("3510.03", "opd", "Dinas Kesehatan", "Kepala Dinas Kesehatan",
     [("Kantor Dinas Kesehatan", -8.2303, 114.3619, 100)], ()),
    ("3510.03.01", "bidang", "Sekretariat Dinas Kesehatan", "Sekretaris Dinas Kesehatan", [],
     (("PENGADMINISTRASI-UMUM", 2), ("PRANATA-KOMPUTER", 1))),
    ("3510.03.01.01", "subbidang", "Subbagian Umum dan Kepegawaian",
     "Kepala Subbagian Umum dan Kepegawaian", [],
     (("PENGADMINISTRASI-UMUM", 2), ("ANALIS-KEPEGAWAIAN", 1))),
    ("3510.03.02", "bidang", "Bidang Pelayanan Kesehatan", "Kepala Bidang Pelayanan Kesehatan",
     [], (("ADMINISTRATOR-KESEHATAN", 2),)),
    ("3510.03.03", "bidang", "Bidang Pencegahan dan Pengendalian Penyakit",
     "Kepala Bidang Pencegahan dan Pengendalian Penyakit", [],
     (("EPIDEMIOLOG-KESEHATAN", 2), ("SANITARIAN", 2))),
    ("3510.03.04", "uptd", "UPTD Puskesmas Genteng", "Kepala UPTD Puskesmas Genteng",
     [("Gedung Puskesmas Genteng", -8.3689, 114.1531, 100)],
     (("DOKTER", 4), ("PERAWAT", 14), ("BIDAN", 10), ("APOTEKER", 2),
      ("PENGADMINISTRASI-UMUM", 3))),
    ("3510.03.05", "uptd", "UPTD Puskesmas Rogojampi", "Kepala UPTD Puskesmas Rogojampi",
     [("Gedung Puskesmas Rogojampi", -8.3103, 114.2885, 100)],
     (("DOKTER", 3), ("PERAWAT", 12), ("BIDAN", 8), ("PENGADMINISTRASI-UMUM", 2))),
    ("3510.04", "opd", "Dinas Kependudukan dan Pencatatan Sipil",
     "Kepala Dinas Kependudukan dan Pencatatan Sipil",
     [("Kantor Dinas Kependudukan dan Pencatatan Sipil", -8.2106, 114.3652, 100),
      ("Layanan Adminduk Mal Pelayanan Publik", -8.2164, 114.3703, 60)], ()),
    ("3510.04.01", "bidang", "Sekretariat Dinas Kependudukan dan Pencatatan Sipil",
     "Sekretaris Dinas Kependudukan dan Pencatatan Sipil", [],
     (("PENGADMINISTRASI-UMUM", 3),)),
    ("3510.04.02", "bidang", "Bidang Pelayanan Pendaftaran Penduduk",
     "Kepala Bidang Pelayanan Pendaftaran Penduduk", [],
     (("ADMINISTRATOR-DATABASE-KEPENDUDUKAN", 4), ("PENGOLAH-DATA", 2))),
    ("3510.04.02.01", "seksi", "Seksi Identitas Penduduk", "Kepala Seksi Identitas Penduduk",
     [], (("PENGOLAH-DATA", 3),)),
    ("3510.04.03", "bidang", "Bidang Pelayanan Pencatatan Sipil",
     "Kepala Bidang Pelayanan Pencatatan Sipil", [], (("PENGOLAH-DATA", 4),)),
    ("3510.05", "opd", "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu",
     "Kepala Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu",
     [("Mal Pelayanan Publik Banyuwangi", -8.2164, 114.3703, 100)], ()),
    ("3510.05.01", "bidang", "Sekretariat Dinas Penanaman Modal dan PTSP",
     "Sekretaris Dinas Penanaman Modal dan PTSP", [], (("PENGADMINISTRASI-UMUM", 3),)),
    ("3510.05.02", "bidang", "Bidang Pelayanan Perizinan dan Nonperizinan",
     "Kepala Bidang Pelayanan Perizinan dan Nonperizinan", [],
     (("PENATA-PERIZINAN", 5), ("PENGADMINISTRASI-UMUM", 3))),
    ("3510.05.03", "bidang", "Bidang Penanaman Modal", "Kepala Bidang Penanaman Modal", [],
     (("PENATA-KELOLA-PENANAMAN-MODAL", 3),)),
    ("3510.06", "opd", "Badan Kepegawaian dan Pengembangan Sumber Daya Manusia",
     "Kepala Badan Kepegawaian dan Pengembangan Sumber Daya Manusia",
     [("Kantor BKPSDM", -8.2176, 114.3667, 100)], ()),
    ("3510.06.01", "bidang", "Sekretariat BKPSDM", "Sekretaris BKPSDM", [],
     (("PENGADMINISTRASI-UMUM", 3), ("PRANATA-KOMPUTER", 2))),
    ("3510.06.02", "bidang", "Bidang Pengadaan, Pemberhentian dan Informasi Kepegawaian",
     "Kepala Bidang Pengadaan, Pemberhentian dan Informasi Kepegawaian", [],
     (("ANALIS-KEPEGAWAIAN", 4), ("PRANATA-KOMPUTER", 1))),
    ("3510.06.03", "bidang", "Bidang Mutasi dan Promosi", "Kepala Bidang Mutasi dan Promosi",
     [], (("ANALIS-KEPEGAWAIAN", 3),)),
    ("3510.06.04", "bidang", "Bidang Pengembangan Kompetensi Aparatur",
     "Kepala Bidang Pengembangan Kompetensi Aparatur", [], (("ANALIS-KEPEGAWAIAN", 3),)),
    ("3510.07", "opd", "Badan Perencanaan Pembangunan Daerah",
     "Kepala Badan Perencanaan Pembangunan Daerah",
     [("Kantor Bappeda", -8.2158, 114.3679, 100)], ()),
    ("3510.07.01", "bidang", "Sekretariat Bappeda", "Sekretaris Bappeda", [],
     (("PENGADMINISTRASI-UMUM", 2),)),
    ("3510.07.02", "bidang", "Bidang Perencanaan Pemerintahan dan Pembangunan Manusia",
     "Kepala Bidang Perencanaan Pemerintahan dan Pembangunan Manusia", [],
     (("PERENCANA", 4),)),
    ("3510.07.03", "bidang", "Bidang Perekonomian, Infrastruktur dan Kewilayahan",
     "Kepala Bidang Perekonomian, Infrastruktur dan Kewilayahan", [], (("PERENCANA", 4),)),
    ("3510.08", "kecamatan", "Kecamatan Genteng", "Camat Genteng",
     [("Kantor Kecamatan Genteng", -8.3667, 114.1497, 100)], ()),
    ("3510.08.01", "bidang", "Sekretariat Kecamatan Genteng", "Sekretaris Camat Genteng", [],
     (("PENGADMINISTRASI-UMUM", 3),)),
    ("3510.08.02", "seksi", "Seksi Pemerintahan", "Kepala Seksi Pemerintahan", [],
     (("PENGOLAH-DATA", 2),)),
    ("3510.08.03", "seksi", "Seksi Pelayanan Umum", "Kepala Seksi Pelayanan Umum", [],
     (("PENGADMINISTRASI-UMUM", 3),)),
)

# position slug -> (title, kind, degrees: (before the name, after it) ...)
_STAFF = {
    "ADMINISTRATOR-DATABASE-KEPENDUDUKAN": ("Administrator Database Kependudukan",
                                            "fungsional", ((None, "S.Kom."), (None, "S.T."))),
    "ADMINISTRATOR-KESEHATAN": ("Administrator Kesehatan", "fungsional",
                                ((None, "S.K.M."), (None, "S.K.M., M.Kes."))),
    "ANALIS-KEBIJAKAN": ("Analis Kebijakan", "fungsional",
                         ((None, "S.Sos., M.Si."), (None, "S.IP."), (None, "S.H."))),
    "ANALIS-KEPEGAWAIAN": ("Analis Kepegawaian", "fungsional",
                           ((None, "S.Sos."), (None, "S.AP."), (None, "S.H."), (None, "S.Psi."))),
    "APOTEKER": ("Apoteker", "fungsional", (("apt.", "S.Farm."),)),
    "BIDAN": ("Bidan", "fungsional", ((None, "A.Md.Keb."), (None, "S.Tr.Keb."))),
    "DOKTER": ("Dokter", "fungsional", (("dr.", None), ("dr.", None), ("dr.", "M.Kes."))),
    "EPIDEMIOLOG-KESEHATAN": ("Epidemiolog Kesehatan", "fungsional", ((None, "S.K.M."),)),
    "GURU": ("Guru", "fungsional",
             ((None, "S.Pd."), (None, "S.Pd."), (None, "S.Pd., M.Pd."), (None, "S.Pd.I."))),
    "PENATA-KELOLA-PENANAMAN-MODAL": ("Penata Kelola Penanaman Modal", "fungsional",
                                      ((None, "S.E."), (None, "S.E., M.M."))),
    "PENATA-PERIZINAN": ("Penata Perizinan", "fungsional",
                         ((None, "S.H."), (None, "S.E."), (None, "S.T."))),
    "PENGADMINISTRASI-UMUM": ("Pengadministrasi Umum", "pelaksana",
                              ((None, None), (None, None), (None, "A.Md."), (None, "S.E."))),
    "PENGAWAS-SEKOLAH": ("Pengawas Sekolah", "fungsional", ((None, "S.Pd., M.Pd."),)),
    "PENGEMUDI": ("Pengemudi", "pelaksana", ((None, None),)),
    "PENGOLAH-DATA": ("Pengolah Data", "pelaksana",
                      ((None, None), (None, "A.Md."), (None, "S.Kom."))),
    "PERAWAT": ("Perawat", "fungsional", ((None, "A.Md.Kep."), ("Ns.", "S.Kep."))),
    "PERENCANA": ("Perencana", "fungsional",
                  ((None, "S.T., M.T."), (None, "S.E., M.Si."), (None, "S.P."))),
    "PRANATA-KOMPUTER": ("Pranata Komputer", "fungsional", ((None, "S.Kom."), (None, "A.Md.Kom."))),
    "SANITARIAN": ("Sanitarian", "fungsional", ((None, "A.Md.K.L."), (None, "S.K.M."))),
}
_HEAD_DEGREES = (("Drs.", "M.Si."), (None, "S.Sos., M.Si."), (None, "S.E., M.M."),
                 (None, "S.H., M.H."), (None, "S.STP., M.Si."), (None, "S.T., M.T."),
                 ("Dr.", "S.Sos., M.Si."))
_DOCTOR_DEGREES = (("dr.", "M.Kes."), ("dr.", "M.M.Kes."), ("dr.", None))
_DOCTOR_HEADS = ("3510.03", "3510.03.04", "3510.03.05")
_PHONE_PREFIXES = ("811", "812", "813", "821", "822", "852", "853", "856", "857", "858", "877",
                   "878", "881", "895", "896")

_NAMES = {
    "L": (["Agus", "Bambang", "Joko", "Slamet", "Hadi", "Ahmad", "Muhammad", "Moh.", "Imam",
           "Rudi", "Eko", "Dwi", "Yusuf", "Fajar", "Rizky", "Hendra", "Wahyu", "Teguh", "Sugeng",
           "Abdul", "Nur", "Suparman", "Sahuri", "Misnadi", "Hasan", "Fathur", "Yoga", "Andik"],
          ["Setiawan", "Wibowo", "Santoso", "Prasetyo", "Hidayat", "Nugroho", "Susanto",
           "Purnomo", "Wijaya", "Maulana", "Hakim", "Fauzi", "Ramadhan", "Utomo", "Syaifullah",
           "Rokhim", "Zainuri", "Sugiarto", "Mujiono", "Efendi", "Arifin", "Kurniawan"]),
    "P": (["Siti", "Sri", "Dewi", "Endang", "Wulan", "Ratna", "Nurul", "Fitri", "Ayu", "Rina",
           "Indah", "Kartika", "Yuliana", "Sulastri", "Suharti", "Lilik", "Umi", "Fatimah",
           "Anis", "Erna", "Dian", "Novita", "Eka", "Mardiyah", "Sunarti", "Khusnul"],
          ["Rahayu", "Lestari", "Wahyuni", "Handayani", "Kurniawati", "Rahmawati", "Susanti",
           "Puspitasari", "Hidayah", "Aini", "Setyowati", "Mulyani", "Anggraini", "Fitriani",
           "Nurhayati", "Safitri", "Azizah", "Maghfiroh", "Oktaviani", "Purwanti"]),
}


def demo_pemda():
    """``{"units": csv, "positions": csv, "employees": csv}`` for the demo Pemda."""
    units, positions, staff = _organisation()
    employees = _Staffing(random.Random(_SEED)).employees(positions, staff)
    return {"units": export("units", units), "positions": export("positions", positions),
            "employees": export("employees", employees)}


def _parent(code):
    return code.rsplit(".", 1)[0]


def _head_id(code):
    return {PEMDA: "BUPATI"}.get(code, f"KEPALA.{code}")


def _organisation():
    """Units, positions, and the staff positions with their weights."""
    units, staff = [], []
    positions = [_position(_head_id(PEMDA), _UNITS[0][3], "struktural", PEMDA, True, None),
                 _position("SEKDA", "Sekretaris Daerah", "struktural", PEMDA, False, "BUPATI")]
    for code, kind, name, head_title, offices, staffing in _UNITS:
        units.append({"code": code, "name": name, "kind": kind, "timezone": "Asia/Jakarta",
                      "offices": [{"name": n, "latitude": lat, "longitude": lon, "radius_m": r}
                                  for n, lat, lon, r in offices],
                      "active": True})
        if code != PEMDA:
            superior = "SEKDA" if _parent(code) == PEMDA else _head_id(_parent(code))
            positions.append(_position(_head_id(code), head_title, "struktural", code, True,
                                       superior))
        for slug, weight in staffing:
            title, position_kind = _STAFF[slug][:2]
            positions.append(_position(f"{slug}.{code}", title, position_kind, code, False,
                                       _head_id(code)))
            staff.append((f"{slug}.{code}", weight))
    return units, positions, staff


def _position(position_id, title, kind, unit, heads, superior):
    return {"id": position_id, "title": title, "kind": kind, "unit": unit, "heads_unit": heads,
            "may_sign": heads or position_id == "SEKDA", "superior": superior, "active": True}


class _Staffing:
    """Invents the people; every draw comes from one seeded generator, in a fixed order."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()

    def employees(self, positions, staff):
        by_id = {p["id"]: p for p in positions}
        heads = [p["id"] for p in positions if p["kind"] == "struktural"
                 and p["id"] not in ("BUPATI", VACANT_HEAD_POSITION)]
        ids, weights = zip(*staff, strict=True)
        staff_ids = self.rng.choices(ids, weights, k=EMPLOYEES - len(heads))
        pppk = set(self.rng.sample(range(len(staff_ids)), round(EMPLOYEES * _PPPK_SHARE)))
        away = self.rng.sample(sorted(set(range(len(staff_ids))) - pppk), 3)
        statuses = dict(zip(away, ("unpaid_leave", "retired", "retired"), strict=True))
        people = [self.person(by_id[pid], head=True) for pid in heads]
        people += [self.person(by_id[pid], head=False, pppk=i in pppk,
                               status=statuses.get(i, "active"))
                   for i, pid in enumerate(staff_ids)]
        return people

    def person(self, position, head, pppk=False, status="active"):
        rng = self.rng
        slug = position["id"].split(".")[0]
        gender = "P" if slug == "BIDAN" else rng.choice("LP")
        first, last = _NAMES[gender]
        name = " ".join([rng.choice(first)] + rng.sample(last, rng.choice((1, 1, 2))))
        if not head:
            degrees = _STAFF[slug][2]
        else:
            degrees = _DOCTOR_DEGREES if position["unit"] in _DOCTOR_HEADS else _HEAD_DEGREES
        front, back = rng.choice(degrees)
        if front == "Drs." and gender == "P":
            front = "Dra."
        oldest, youngest = (1964, 1966) if status == "retired" else (
            (1967, 1982) if head else (1968, 2000))
        birth = date(rng.randint(oldest, youngest), rng.randint(1, 12), rng.randint(1, 28))
        nip, appointed = self.nip(birth, gender, pppk, latest_age=30 if head else 35)
        return {
            "nip": nip, "kind": "pppk" if pppk else "pns", "name": name,
            "title_front": front, "title_back": back, "gender": gender,
            "birth_date": birth, "unit": position["unit"], "position": position["id"],
            "phone": self.phone() if rng.random() < 0.92 else None,
            "email": self.email(name) if rng.random() < 0.8 else None, "status": status,
            "nik": self.nik(birth, gender) if rng.random() < 0.6 else None, "supervisor": None,
            "effective_date": (date.fromordinal(rng.randint(appointed.toordinal(),
                                                            _LATEST.toordinal()))
                               if rng.random() < 0.7 else None),
        }

    def fresh(self, make):
        """``make()`` until it gives a value not used before (NIPs, NIKs, phones, e-mails)."""
        while (value := make()) in self.used:
            pass
        self.used.add(value)
        return value

    def nip(self, birth, gender, pppk, latest_age):
        """A fresh NIP (appointed at 22 to ``latest_age``, by 2024) or NI PPPK (2021-2024)."""
        rng, g = self.rng, "1" if gender == "L" else "2"
        if pppk:
            year = rng.randint(max(2021, birth.year + 22), _LATEST.year)
            appointed, middle = date(year, 1, 1), f"{year}21"
        else:
            year = rng.randint(birth.year + 22, min(birth.year + latest_age, _LATEST.year))
            appointed = date(year, rng.randint(1, 12), 1)
            middle = f"{appointed:%Y%m}"
        nip = self.fresh(lambda: f"{birth:%Y%m%d}{middle}{g}{rng.randint(1, 999):03d}")
        return nip, appointed

    def phone(self):
        rng = self.rng
        return self.fresh(lambda: f"+62{rng.choice(_PHONE_PREFIXES)}{rng.randrange(10**8):08d}")

    def email(self, name):
        words = [w.strip(".").lower() for w in name.split()]
        suffixes = itertools.chain([""], map(str, itertools.count(2)))
        return self.fresh(lambda: f"{words[0]}.{words[-1]}{next(suffixes)}@{EMAIL_DOMAIN}")

    def nik(self, birth, gender):
        """A Banyuwangi NIK (35 10, one of its 25 districts) matching birth date and gender."""
        day, rng = birth.day + (40 if gender == "P" else 0), self.rng
        return self.fresh(lambda: f"3510{rng.randint(1, 25):02d}{day:02d}{birth:%m%y}"
                                  f"{rng.randint(1, 2500):04d}")

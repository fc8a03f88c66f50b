"""A realistic subset of the archive classification codes (kode klasifikasi arsip, after
Permendagri 83/2022) with retention periods in the style of a regional JRA. Enough to draft
and number the demo's letters; a Pemda imports its full table from CSV
(``POST /classifications/import``). A code without retention inherits its parent's.
"""


def _r(active, inactive, disposition):
    return {"active_years": active, "inactive_years": inactive, "disposition": disposition}


SEED = [
    ("000", "Umum", _r(2, 3, "destroy")),
    ("000.1", "Ketatausahaan dan Kerumahtanggaan", None),
    ("000.1.1", "Telekomunikasi", _r(1, 1, "destroy")),
    ("000.1.2", "Perjalanan Dinas", _r(2, 3, "destroy")),
    ("000.1.3", "Kendaraan Dinas", _r(2, 3, "destroy")),
    ("000.1.5", "Penggunaan Fasilitas Kantor", _r(2, 3, "destroy")),
    ("000.1.6", "Rapat Pimpinan", _r(2, 5, "review")),
    ("000.2", "Perlengkapan", _r(2, 3, "destroy")),
    ("000.3", "Pengadaan", _r(2, 8, "review")),
    ("000.4", "Perpustakaan", _r(2, 3, "destroy")),
    ("000.5", "Kearsipan", None),
    ("000.5.2", "Pengelolaan Arsip Dinamis", _r(2, 5, "review")),
    ("000.5.3", "Penyusutan Arsip", _r(5, 5, "permanent")),
    ("000.6", "Persandian", _r(2, 3, "destroy")),
    ("000.7", "Perencanaan Pembangunan", _r(2, 5, "permanent")),
    ("000.8", "Organisasi dan Tata Laksana", None),
    ("000.8.1", "Organisasi", _r(5, 10, "permanent")),
    ("000.8.3", "Tata Laksana", None),
    ("000.8.3.3", "Tata Naskah Dinas", _r(2, 5, "review")),
    ("000.9", "Penelitian, Pengkajian dan Pengembangan", _r(2, 5, "review")),
    ("100", "Pemerintahan", None),
    ("100.1", "Otonomi Daerah", _r(5, 10, "permanent")),
    ("100.2", "Pemerintahan Desa", _r(3, 7, "review")),
    ("100.3", "Hukum", _r(5, 10, "permanent")),
    ("200", "Politik", _r(2, 5, "review")),
    ("300", "Ketenteraman, Ketertiban Umum dan Perlindungan Masyarakat", None),
    ("300.1", "Ketenteraman dan Ketertiban Umum", _r(2, 3, "destroy")),
    ("300.2", "Penanggulangan Bencana", _r(3, 7, "permanent")),
    ("400", "Kesejahteraan Rakyat", None),
    ("400.5", "Pendidikan", _r(3, 5, "review")),
    ("400.7", "Kesehatan", _r(3, 5, "review")),
    ("500", "Perekonomian", None),
    ("500.16", "Perizinan dan Penanaman Modal", _r(5, 10, "permanent")),
    ("600", "Pekerjaan Umum dan Penataan Ruang", _r(5, 10, "review")),
    ("700", "Pengawasan", None),
    ("700.1", "Pemeriksaan", _r(5, 5, "review")),
    ("800", "Kepegawaian", None),
    ("800.1", "Sumber Daya Manusia", None),
    ("800.1.2", "Pengadaan Pegawai", _r(2, 3, "destroy")),
    ("800.1.3", "Pembinaan Pegawai", _r(2, 3, "destroy")),
    ("800.1.11", "Cuti", _r(1, 1, "destroy")),
    ("800.2", "Pendidikan dan Pelatihan Pegawai", _r(2, 3, "destroy")),
    ("900", "Keuangan", None),
    ("900.1", "Keuangan Daerah", None),
    ("900.1.1", "Anggaran", _r(2, 10, "permanent")),
    ("900.1.3", "Perbendaharaan", _r(2, 10, "review")),
    ("900.1.4", "Akuntansi", _r(2, 10, "permanent")),
]

"""A letter rendered to PDF, sealed with a development CA's key, and checked: the seal holds on
the untouched file, breaks on one changed byte, and means nothing against another CA."""

import hashlib
import io
import re
import shutil
from datetime import UTC, date, datetime

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from services.letters import sealing
from services.letters.document import indonesian_date, render_letter

pytestmark = pytest.mark.unit

VERIFY_URL = "https://pamong.contohkab.go.id/verifikasi/7Q2XK9"
NIP = "198001012006041001"
SIGNER = {"name": "Dr. Budi Santoso, S.Kom., M.T.",
          "title": "KEPALA DINAS KOMUNIKASI DAN INFORMATIKA", "nip": NIP}


def a_letter(**changes):
    letter = {
        "letterhead": {"government": "PEMERINTAH KABUPATEN CONTOH",
                       "name": "DINAS KOMUNIKASI DAN INFORMATIKA",
                       "address": "Jalan Merdeka Nomor 1, Contoh 12345",
                       "contact": "Telepon (0123) 456789, Laman diskominfo.contohkab.go.id",
                       "city": "Contoh"},
        "kind_title": "SURAT",
        "number": "000.8.3.3/15/OR",
        # 20:00 UTC is already the next morning in Jakarta
        "signed_at": datetime(2026, 12, 5, 20, 0, tzinfo=UTC),
        "zone": "Asia/Jakarta",
        "security": "B",
        "urgency": "segera",
        "classification": "000.8.3.3",
        "subject": "Undangan Rapat Koordinasi Satu Data",
        "body": "Dengan hormat,\n\nKami mengundang Bapak/Ibu pada rapat koordinasi.\n\n"
                "Demikian, atas perhatiannya kami ucapkan terima kasih.",
        "attachments": 1,
        "addressees": ["Kepala Perangkat Daerah se-Kabupaten Contoh"],
        "copies": ["Bupati Contoh (sebagai laporan)"],
        "signer": SIGNER,
    }
    return letter | changes


def shown_text(pdf):
    """Each page's shown strings, run together (fpdf2 writes a line as one or a few
    ``(...) Tj``, in cp1252)."""
    pages = PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Kids"]
    streams = [page.get_object()["/Contents"].data for page in pages]
    return ["".join(re.sub(rb"\\(.)", rb"\1", shown).decode("cp1252")
                    for shown in re.findall(rb"\(((?:[^\\)]|\\.)*)\) Tj", stream))
            for stream in streams]


def seal(sealer, pdf, signer=SIGNER):
    return sealer.seal(pdf, signer_name=signer["name"], signer_nip=signer["nip"],
                       reason="Surat dinas 000.8.3.3/15/OR", location="Contoh")


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("development-ca")


@pytest.fixture(scope="module")
def root(ca_dir):
    return sealing.development_trust_root(ca_dir)


@pytest.fixture(scope="module")
def sealed(ca_dir):
    return seal(sealing.DevelopmentSealer(ca_dir), render_letter(a_letter(), VERIFY_URL))


# -- rendering ------------------------------------------------------------------------------

def test_the_letter_shows_its_number_date_sifat_signer_and_footer():
    [page] = shown_text(render_letter(a_letter(), VERIFY_URL))
    assert "000.8.3.3/15/OR" in page
    assert "Contoh, 6 Desember 2026" in page
    assert "Biasa, Segera" in page and "1 berkas" in page
    assert "Yth. Kepala Perangkat Daerah se-Kabupaten Contoh" in page
    assert SIGNER["name"] in page and f"NIP. {NIP}" in page
    assert "Tembusan:" in page and "Bupati Contoh (sebagai laporan)" in page
    assert VERIFY_URL in page
    assert "Halaman 1 dari 1" in page


def test_an_acting_signer_is_plt_and_no_copies_means_no_tembusan():
    letter = a_letter(signer=SIGNER | {"title": "Plt. KEPALA DINAS KOMUNIKASI DAN INFORMATIKA"},
                      copies=[], attachments=0)
    [page] = shown_text(render_letter(letter, VERIFY_URL))
    assert "Plt. KEPALA DINAS" in page
    assert "Tembusan:" not in page
    assert "Lampiran:-" in page


def test_a_long_body_flows_over_pages_each_with_the_footer():
    body = "\n\n".join(f"Paragraf {n}. " + "Isi surat yang panjang sekali. " * 4
                       for n in range(120))
    pages = shown_text(render_letter(a_letter(body=body), VERIFY_URL))
    assert len(pages) >= 3
    for number, page in enumerate(pages, 1):
        assert f"Halaman {number} dari {len(pages)}" in page
    # the signature block is never split over two pages
    assert any("KEPALA DINAS" in page and SIGNER["name"] in page and f"NIP. {NIP}" in page
               for page in pages)


def test_characters_outside_the_core_fonts_do_not_break_rendering():
    body = "“kutipan” – 测试 ✓ Ā\u200b\tselesai…"
    [page] = shown_text(render_letter(a_letter(body=body, subject="Hal “khusus” — 日本"),
                                      VERIFY_URL))
    assert "“kutipan” – ?? ? A selesai…" in page   # cp1252 kept, the rest replaced
    assert "Hal “khusus” — ??" in page


def test_a_surat_tugas_has_its_heading_assignees_table_and_purpose():
    assignment = {
        "employees": [{"name": "Siti Aminah, S.T.", "nip": "199002022015032002",
                       "title": "Pranata Komputer Ahli Pertama"},
                      {"name": "Andi Wijaya", "nip": "198505052010011003",
                       "title": "Analis Sistem Informasi"}],
        "start": date(2026, 12, 7), "end": date(2026, 12, 9),
        "place": {"name": "Hotel Santika, Kota Contoh"},
        "purpose": "Mengikuti Bimbingan Teknis Satu Data Indonesia",
    }
    letter = a_letter(kind_title="SURAT TUGAS", assignment=assignment,
                      body="Dasar: Peraturan Bupati Contoh Nomor 1 Tahun 2026.")
    [page] = shown_text(render_letter(letter, VERIFY_URL))
    assert "SURAT TUGAS" in page and "NOMOR 000.8.3.3/15/OR" in page
    assert "MEMERINTAHKAN:" in page and "Kepada:" in page
    for employee in assignment["employees"]:
        assert employee["name"] in page and employee["nip"] in page
    assert "Mengikuti Bimbingan Teknis Satu Data Indonesia" in page
    assert "7 Desember 2026 s.d. 9 Desember 2026" in page
    assert "Hotel Santika, Kota Contoh" in page
    assert "Contoh, 6 Desember 2026" in page        # dated in the signature block


def test_indonesian_dates():
    assert indonesian_date(date(2026, 1, 31)) == "31 Januari 2026"
    assert indonesian_date(date(2026, 8, 17)) == "17 Agustus 2026"


# -- sealing and checking ---------------------------------------------------------------------

def test_a_sealed_letter_checks_out(sealed, root):
    result = sealing.check_signature(sealed, [root])
    assert result | {"signed_at": None} == {
        "signed": True, "intact": True, "valid": True, "signer": SIGNER["name"], "serial": NIP,
        "signed_at": None, "covers_whole_file": True, "problem": None}
    assert abs(result["signed_at"] - datetime.now(UTC)).total_seconds() < 600


def test_one_changed_byte_breaks_the_seal(sealed, root):
    at = sealed.index(b"(D:2026") + 3        # the creation date, inside the signed range
    tampered = sealed[:at] + b"3" + sealed[at + 1:]
    assert hashlib.sha256(tampered).digest() != hashlib.sha256(sealed).digest()
    result = sealing.check_signature(tampered, [root])
    assert result["signed"] and not result["intact"] and not result["valid"]
    assert result["problem"] == "the document was changed after it was signed"


def test_another_ca_does_not_vouch_for_the_seal(sealed, tmp_path):
    stranger = sealing.development_trust_root(tmp_path)
    result = sealing.check_signature(sealed, [stranger])
    assert result["intact"] and not result["valid"]
    assert "trusted root" in result["problem"]


def test_a_page_changed_in_an_update_after_the_seal_is_not_valid(sealed, root):
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    forged = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 30 Tf 100 100 Td (PALSU) Tj ET"))
    writer.add_stream_to_page(0, forged)
    updated = io.BytesIO()
    writer.write(updated)
    result = sealing.check_signature(updated.getvalue(), [root])
    assert result["intact"] and not result["covers_whole_file"] and not result["valid"]


@pytest.mark.parametrize("garbage", [b"", b"not a pdf at all", b"%PDF-1.7\n%%EOF",
                                     b"%PDF-1.4\n" + bytes(range(256)) * 4])
def test_garbage_is_unsigned_not_an_error(garbage, root):
    result = sealing.check_signature(garbage, [root])
    assert not result["signed"] and not result["valid"] and result["problem"]


def test_a_truncated_seal_is_not_valid(sealed, root):
    result = sealing.check_signature(sealed[: len(sealed) * 3 // 4], [root])
    assert not result["valid"] and result["problem"]


def test_an_unsealed_letter_is_unsigned(root):
    result = sealing.check_signature(render_letter(a_letter(), VERIFY_URL), [root])
    assert result["signed"] is False and result["problem"] == "the PDF carries no signature"


def test_the_development_ca_is_made_once_with_a_private_key(ca_dir, root):
    path = sealing.ensure_development_ca(ca_dir)
    assert sealing.ensure_development_ca(ca_dir) == path
    assert sealing.development_trust_root(ca_dir).dump() == root.dump()
    assert (ca_dir / sealing.CA_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert root.subject.native["common_name"] == "PAMONG DEVELOPMENT CA - NOT FOR PRODUCTION"


def test_pkcs12_sealer_without_a_key_file_refuses(tmp_path):
    sealer = sealing.Pkcs12Sealer(tmp_path, passphrase=None)
    with pytest.raises(sealing.SealingError, match="neither"):
        seal(sealer, b"%PDF-1.4")
    with pytest.raises(sealing.SealingError, match="not a NIP"):
        seal(sealer, b"%PDF-1.4", SIGNER | {"nip": "../../etc/secret"})
    (tmp_path / "pemda.p12").write_bytes(b"damaged")
    with pytest.raises(sealing.SealingError, match="cannot load"):
        seal(sealer, b"%PDF-1.4")


def test_pkcs12_sealer_falls_back_to_the_pemda_seal(sealed, ca_dir, root, tmp_path):
    # the Pemda's one seal: here the file the development CA issued for SIGNER (for `sealed`)
    shutil.copy(ca_dir / f"{NIP}.p12", tmp_path / "pemda.p12")
    sealer = sealing.Pkcs12Sealer(tmp_path, passphrase=None)
    other = SIGNER | {"name": "Rina Lestari", "nip": "199103032019032004"}
    result = sealing.check_signature(seal(sealer, render_letter(a_letter(), VERIFY_URL), other),
                                     [root])
    assert result["valid"] and result["serial"] == NIP


def test_a_signers_later_seals_reserve_what_the_first_measured_and_still_validate(tmp_path):
    sealer = sealing.DevelopmentSealer(tmp_path)
    root = sealing.development_trust_root(tmp_path)
    first = seal(sealer, render_letter(a_letter(), VERIFY_URL))
    signer = sealer._signer(NIP)
    reserved = sealing._RESERVED[signer]
    [contents] = sealing.SIGNATURE_CONTENTS.findall(first)
    assert reserved == len(contents) > 0

    body = "Dengan hormat,\n\n" + "Isi yang lain sama sekali. " * 40
    later = seal(sealer, render_letter(a_letter(number="000/16/OR", body=body), VERIFY_URL))
    assert len(sealing.SIGNATURE_CONTENTS.findall(later)[0]) == reserved
    assert sealing.check_signature(later, [root])["valid"]
    assert sealing.check_signature(first, [root])["valid"]


def test_a_reserve_too_small_for_the_signature_is_measured_again(tmp_path):
    sealer = sealing.DevelopmentSealer(tmp_path)
    root = sealing.development_trust_root(tmp_path)
    seal(sealer, render_letter(a_letter(), VERIFY_URL))
    signer = sealer._signer(NIP)
    measured = sealing._RESERVED[signer]
    sealing._RESERVED[signer] = 64  # as if the signer's chain had grown since

    pdf = seal(sealer, render_letter(a_letter(), VERIFY_URL))
    assert sealing.check_signature(pdf, [root])["valid"]
    # measured again (pyHanko's estimate varies by a few digits: an ECDSA signature's length)
    assert abs(sealing._RESERVED[signer] - measured) < measured // 10

"""The letters module's pages over HTTP, with the real broker and database: the QR's
verification page (valid, revoked, unknown as a 404 page, nothing confidential, never cached),
the PDF upload form (the genuine file, one changed byte, not a PDF, no file, too large, the
file of another letter than the QR's), and the staff shell ``/surat`` with its script."""

import re

import pytest

from pamong.testing import wait_until
from tests.integration.letters_support import (
    NIP_HEAD,
    call,
    configure_numbering,
    create,
    draft,
    step,
)

pytestmark = pytest.mark.integration
HEAD = ("pimpinan",)
HTML = {"Accept": "text/html,application/xhtml+xml"}
SUBJECT = "Undangan rapat koordinasi SPBE"


def signed(client, **changes):
    configure_numbering(client)
    letter = create(client, body=draft(verifiers=(), **changes))
    step(client, letter["id"], "submit", "198609262015051001")
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    return r.json()


def sealed(letters, letter):
    """``(verification code, sealed PDF)`` once the letter is sent."""
    db = letters.db
    stored = wait_until(lambda: (lambda found: found if found["state"] == "sent" else None)(
        db.letters.find_one({"_id": letter["id"]})), timeout=20, message="letter sent")
    r = call(letters.client, "GET", f"/letters/{letter['id']}/document", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    return stored["verify_code"], r.content


def page(client, path, **kwargs):
    headers = {**HTML, **kwargs.pop("headers", {})}
    return client.request("GET", path, headers=headers, **kwargs)


def check_upload(client, pdf, code=None, name="surat.pdf", lang=None):
    data = {"kode": code} if code else {}
    return client.request("POST", "/verifikasi/surat" + (f"?lang={lang}" if lang else ""),
                          headers=HTML, data=data,
                          files={"file": (name, pdf, "application/pdf")})


def main_text(r):
    """The page's ``<main>`` as text (tags dropped, spaces squeezed)."""
    html = r.text[r.text.index("<main"):r.text.index("</main>")]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def assert_strict_page(r, status=200, cache="no-store"):
    assert r.status_code == status, r.text[:500]
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == cache
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["X-Request-ID"]
    assert " style=" not in r.text and not re.search(r"<script(?![^>]*\bsrc=)", r.text)


def test_a_valid_letters_page_shows_the_verdict_and_nothing_confidential(letters):
    client = letters.client
    letter = signed(client)
    code, _ = sealed(letters, letter)

    r = page(client, f"/verifikasi/surat/{code}")
    assert_strict_page(r)
    text = main_text(r)
    assert "SAH" in text and letter["number"] in text
    assert "dr. Hadi Santoso" in text and "Kepala Dinas" in text
    assert "Bidang Pelayanan Kesehatan" in text and "Nota Dinas" in text
    assert "Biasa" in text and "WIB" in text
    for secret in (SUBJECT, "Dengan hormat", "Kepala Dinas Pendidikan"):
        assert secret not in r.text
    # the upload form, posting the QR's code with the file, no JavaScript needed
    assert 'action="/verifikasi/surat"' in r.text and 'enctype="multipart/form-data"' in r.text
    assert f'name="kode" value="{code}"' in r.text

    english = page(client, f"/verifikasi/surat/{code}?lang=en")
    assert "VALID" in main_text(english) and "Signed by" in english.text
    assert english.headers["Set-Cookie"].startswith("lang=en")


def test_a_confidential_letter_shows_only_that_it_exists_its_number_and_date(letters):
    client = letters.client
    letter = signed(client, security="R", subject="Pemeriksaan khusus pegawai")
    code, pdf = sealed(letters, letter)

    r = page(client, f"/verifikasi/surat/{code}")
    assert_strict_page(r)
    text = main_text(r)
    assert "SAH" in text and letter["number"] in text and "Rahasia" in text
    assert "hanya keberadaan, nomor, dan tanggalnya" in text
    for secret in ("Pemeriksaan", "Hadi", "Kepala Dinas", "Bidang Pelayanan", "Nota Dinas"):
        assert secret not in r.text, secret

    # the genuine file uploaded: genuine, still without the letter's details
    r = check_upload(client, pdf)
    assert_strict_page(r)
    assert "ASLI DAN SAH" in main_text(r) and letter["number"] in r.text
    assert "Pemeriksaan" not in r.text and "Bidang Pelayanan" not in r.text


def test_a_revoked_letter_says_revoked_without_the_reason(letters):
    client = letters.client
    letter = signed(client)
    code, pdf = sealed(letters, letter)
    r = call(client, "POST", f"/letters/{letter['id']}/revoke", NIP_HEAD, roles=HEAD,
             json={"reason": "Salah alamat tujuan internal"})
    assert r.status_code == 200, r.text

    r = page(client, f"/verifikasi/surat/{code}")
    assert_strict_page(r)
    text = main_text(r)
    assert "DICABUT" in text and "Dicabut pada" in text and letter["number"] in text
    assert "alamat" not in r.text
    assert 'class="card verdict status-bad"' in r.text

    r = check_upload(client, pdf, code=code)
    assert_strict_page(r)
    assert "DICABUT" in main_text(r) and "alamat" not in r.text


@pytest.mark.parametrize("code", ["UnknownCode12345", "x", "a" * 200])
def test_an_unknown_code_is_a_404_page_in_the_same_layout(letters, code):
    r = page(letters.client, f"/verifikasi/surat/{code}")
    assert_strict_page(r, 404)
    text = main_text(r)
    assert "TIDAK DIKENAL" in text and "status-unknown" in r.text
    assert 'action="/verifikasi/surat"' in r.text and 'name="kode"' not in r.text


def test_uploading_the_genuine_pdf_and_a_tampered_one(letters):
    client = letters.client
    letter = signed(client)
    code, pdf = sealed(letters, letter)

    r = check_upload(client, pdf, code=code)
    assert_strict_page(r)
    text = main_text(r)
    assert "ASLI DAN SAH" in text and "status-ok" in r.text
    assert "Sama persis, byte demi byte" in text and "utuh" in text
    assert letter["number"] in text and "dr. Hadi Santoso" in text
    assert SUBJECT not in r.text
    assert f'href="/verifikasi/surat/{code}"' in r.text  # back to the QR's page

    changed = bytearray(pdf)
    changed[len(pdf) // 3] ^= 0x01
    r = check_upload(client, bytes(changed), code=code)
    assert_strict_page(r)
    text = main_text(r)
    assert "DITOLAK" in text and "status-bad" in r.text and "ASLI" not in text
    assert "Tidak sama dengan surat mana pun" in text
    assert "Tanda tangan elektronik tidak sah" in text
    assert letter["number"] not in text

    english = check_upload(client, bytes(changed), lang="en")
    assert "REFUSED" in main_text(english)

    r = check_upload(client, b"this is not a pdf at all", lang="id")  # the cookie said en
    assert_strict_page(r)
    assert "DITOLAK" in main_text(r) and "bukan PDF yang dapat dibaca" in main_text(r)


def test_the_file_of_another_letter_than_the_qrs_is_named_so(letters):
    client = letters.client
    first, second = signed(client), signed(client)
    code, _ = sealed(letters, first)
    _, other_pdf = sealed(letters, second)
    r = check_upload(client, other_pdf, code=code)
    assert_strict_page(r)
    assert "SURAT LAIN" in main_text(r) and "status-warn" in r.text


def test_the_form_page_and_refusals_of_the_upload(letters):
    client = letters.client
    r = page(client, "/verifikasi/surat")
    assert_strict_page(r)
    assert 'type="file"' in r.text and 'name="file"' in r.text and "20 MB" in r.text

    r = client.request("POST", "/verifikasi/surat", headers=HTML, data={"kode": "x"},
                       files={"file": ("kosong.pdf", b"", "application/pdf")})
    assert_strict_page(r, 422)
    assert "Pilih berkas PDF surat" in r.text and 'aria-invalid="true"' in r.text

    big = b"%PDF-1.7\n" + b"0" * (20 * 1024 * 1024)
    r = check_upload(client, big)
    assert r.status_code == 413 and r.headers["Content-Type"].startswith("text/html")
    assert "Berkas terlalu besar" in r.text and r.headers["Cache-Control"] == "no-store"

    r = client.request("POST", "/verifikasi/surat", headers=HTML,
                       data=b"x" * (21 * 1024 * 1024 + 65536))  # refused before reading
    assert r.status_code == 413 and "Berkas terlalu besar" in r.text


def test_the_staff_page_is_a_shell_for_its_script(letters):
    client = letters.client
    r = page(client, "/surat")
    assert_strict_page(r, cache="no-cache")
    assert "Surat untuk ditindaklanjuti" in r.text
    for section in ("signer", "verifier", "drafter", "disposisi"):
        assert f'id="daftar-{section}"' in r.text
    scripts = re.findall(r'<script src="(/aset/[^"]+)"', r.text)
    assert [s.split("?")[0] for s in scripts] == ["/aset/pamong.js", "/aset/letters/surat.js"]
    asset = client.request("GET", scripts[1])
    assert asset.status_code == 200 and "Pamong.api" in asset.text
    assert asset.headers["Content-Type"] in ("application/javascript; charset=utf-8",
                                             "text/javascript; charset=utf-8")
    assert "immutable" in asset.headers["Cache-Control"]
    css = re.search(r'href="(/aset/letters/letters.css[^"]*)"', r.text).group(1)
    assert client.request("GET", css).status_code == 200
    assert page(client, "/masuk?next=/surat").status_code == 200

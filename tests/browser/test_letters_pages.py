"""The letters module's pages in headless Chromium, used like a person uses them: the QR's
verification page of a valid and of a revoked letter, the genuine PDF uploaded (valid) and a
copy with one byte changed (refused), and a signer who signs in through the development
sign-in and signs the letter awaiting them on /surat, then opens its sealed PDF; a verifier
returns a draft with a note and sees a refusal in plain words; a disposition read and
completed. Every page at 360x740 and 1280x800 with screenshots, axe-clean, no console
error, no failed request, no other origin."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from pamong.testing import wait_until
from tests.browser import harness
from tests.integration.letters_support import (
    NIP_HEAD,
    NIP_KABID,
    NIP_STAFF,
    call,
    configure_numbering,
    create,
    dispose,
    draft,
    register,
    step,
)

pytestmark = pytest.mark.browser
HEAD = ("pimpinan",)
SUBJECT = "Undangan rapat koordinasi SPBE"


@pytest.fixture
def site(request, config, tmp_path_factory):
    """The letters service with its pages and the development sign-in, on a free port, with
    the test Pemda in its directory replica."""
    from services.letters.service import LettersService
    from tests.integration.attendance_support import seed_directory

    served = harness.serve(
        request, config, LettersService, PAGES_DEV_SIGNIN=True,
        DIRECTORY_SNAPSHOT_ON_EMPTY=False, LETTERS_REFERENCE_CACHE_SECONDS=0,
        LETTERS_SETTLE_INTERVAL_SECONDS=0, LETTERS_OVERDUE_INTERVAL_SECONDS=0,
        LETTERS_KEYS_DIR=str(tmp_path_factory.getbasetemp() / "letters-ca"))
    seed_directory(config, service="letters")
    configure_numbering(served.client)
    return served


def awaiting(client, subject=SUBJECT, verifiers=(), signer=NIP_HEAD):
    """A letter submitted by its drafter, listed for its first verifier or its signer."""
    letter = create(client, body=draft(verifiers=verifiers, signer=signer, subject=subject))
    assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
    who, roles = (verifiers[0], HEAD) if verifiers else (signer, HEAD)
    wait_until(lambda: any(i["id"] == letter["id"] for i in call(
        client, "GET", "/awaiting", who, roles=roles).json()["items"]),
        timeout=15, message="the letter on the to-do list")
    return letter


def sealed(site, letter):
    """``(verification code, sealed PDF)`` of a letter signed through the API; ``letter``
    gains its ``number``."""
    if letter["state"] != "signed":
        r = step(site.client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
        assert r.status_code == 200, r.text
    stored = wait_until(lambda: (lambda found: found if found["state"] == "sent" else None)(
        site.db.letters.find_one({"_id": letter["id"]})), timeout=20, message="letter sent")
    r = call(site.client, "GET", f"/letters/{letter['id']}/document", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    letter["number"] = stored["number"]
    return stored["verify_code"], r.content


def verdict(driver):
    return driver.find_element(By.ID, "putusan").text


def upload(driver, path):
    driver.find_element(By.ID, "berkas").send_keys(str(path))
    harness.submit(driver, driver.find_element(By.CSS_SELECTOR, "#unggah button[type=submit]"))


def test_verification_pages_and_the_pdf_upload(browser, page_check, site, tmp_path):
    letter = awaiting(site.client)
    code, pdf = sealed(site, letter)
    url = f"{site.url}/verifikasi/surat/{code}"

    page_check(url, "letters-verify-valid")
    page_check(f"{site.url}/verifikasi/surat", "letters-verify-form")
    page_check(f"{site.url}/verifikasi/surat/NoSuchCode1234", "letters-verify-unknown",
               allow_failed=[f"{site.url}/verifikasi/surat/NoSuchCode1234 404"])

    harness.open_page(browser, url)
    assert verdict(browser) == "SAH"
    main = browser.find_element(By.TAG_NAME, "main").text
    assert letter["number"] in main and "dr. Hadi Santoso" in main and SUBJECT not in main

    genuine = tmp_path / "surat.pdf"
    genuine.write_bytes(pdf)
    upload(browser, genuine)
    harness.wait_for_text(browser, "#putusan", "ASLI DAN SAH")
    assert "Sama persis, byte demi byte" in browser.find_element(By.TAG_NAME, "main").text
    harness.assert_page_clean(browser)
    harness.assert_axe_clean(browser, "upload: genuine")
    harness.screenshot(browser, "letters-verify-upload-genuine")

    changed = bytearray(pdf)
    changed[len(pdf) // 3] ^= 0x01
    tampered = tmp_path / "surat-diubah.pdf"
    tampered.write_bytes(bytes(changed))
    harness.open_page(browser, url)
    upload(browser, tampered)
    harness.wait_for_text(browser, "#putusan", "DITOLAK")
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "ASLI" not in main and letter["number"] not in main
    assert "Tanda tangan elektronik tidak sah" in main
    assert "status-bad" in browser.find_element(By.CSS_SELECTOR, "section.verdict") \
        .get_attribute("class")
    harness.assert_page_clean(browser)
    harness.assert_axe_clean(browser, "upload: tampered")
    harness.screenshot(browser, "letters-verify-upload-tampered")


def test_a_revoked_letter_shows_revoked(browser, page_check, site):
    letter = awaiting(site.client)
    code, _ = sealed(site, letter)
    r = call(site.client, "POST", f"/letters/{letter['id']}/revoke", NIP_HEAD, roles=HEAD,
             json={"reason": "Salah alamat tujuan"})
    assert r.status_code == 200, r.text
    url = f"{site.url}/verifikasi/surat/{code}"
    page_check(url, "letters-verify-revoked")
    assert verdict(browser) == "DICABUT"
    assert "alamat" not in browser.find_element(By.TAG_NAME, "main").text


def test_a_signer_signs_in_and_signs_from_surat(browser, page_check, site):
    letter = awaiting(site.client)

    # not signed in: /surat sends to the sign-in, which comes back to /surat
    harness.open_page(browser, f"{site.url}/surat")
    harness.wait_for_path(browser, "/masuk")
    assert "next=%2Fsurat" in browser.current_url or "next=/surat" in browser.current_url
    Select(browser.find_element(By.ID, "dev-role")).select_by_value("pimpinan")
    Select(browser.find_element(By.ID, "dev-nip")).select_by_value(NIP_HEAD)
    browser.find_element(By.CSS_SELECTOR, "#dev-form button[type=submit]").click()
    harness.wait_for_path(browser, "/surat")
    item = harness.wait_for_text(browser, "#daftar-signer li", SUBJECT)
    assert harness.local_storage(browser, harness.TOKEN_KEY)

    page_check(f"{site.url}/surat", "letters-surat-signer")
    item = harness.wait_for_text(browser, "#daftar-signer li", SUBJECT)
    # the letter itself, in place
    item.find_element(By.XPATH, ".//button[normalize-space()='Lihat surat']").click()
    harness.wait_for_text(browser, "#daftar-signer .letter-detail", "Dengan hormat")

    # window.open is stubbed (a headless tab of a PDF is not what we test); the blob is kept
    harness.execute(browser, """
        window.__opened = [];
        window.open = function (url) { window.__opened.push(url); return null; };
        var make = URL.createObjectURL.bind(URL);
        URL.createObjectURL = function (blob) { window.__blob = blob; return make(blob); };
    """)
    item.find_element(By.XPATH, ".//button[normalize-space()='Tandatangani']").click()
    status = harness.wait_for_text(browser, "#surat-status", "Surat ditandatangani dengan nomor")
    signed = site.db.letters.find_one({"_id": letter["id"]})
    assert signed["number"] in status.text and signed["signed_by"]["nip"] == NIP_HEAD
    harness.wait_for_element(browser, "#kosong-signer")  # the lists were read again

    done = harness.wait_for_text(browser, "#daftar-selesai li", signed["number"])
    done.find_element(By.XPATH, ".//button[normalize-space()='PDF surat']").click()
    link = harness.wait_for_element(browser, "#daftar-selesai a.blob-link", timeout=30)
    assert link.get_attribute("href").startswith("blob:")
    assert harness.execute(browser, "return window.__opened") == [link.get_attribute("href")] \
        or harness.execute(browser, "return window.__opened.length") == 0  # sealed later
    head = browser.execute_async_script("""
        var done = arguments[arguments.length - 1];
        window.__blob.slice(0, 5).text().then(done, function (e) { done(String(e)); });
    """)
    assert head == "%PDF-"
    # the first answer may be 404 "being sealed" (Retry-After): the page asks again
    harness.assert_page_clean(browser, allow_failed=[f"/letters/{letter['id']}/document 404"])
    harness.assert_axe_clean(browser, "after signing")
    harness.screenshot(browser, "letters-surat-signed")


def test_a_verifier_returns_a_draft_and_sees_a_refusal_in_plain_words(browser, site):
    returned = awaiting(site.client, subject="Laporan triwulan gizi", verifiers=(NIP_KABID,))
    gone = awaiting(site.client, subject="Surat edaran jam kerja", verifiers=(NIP_KABID,))
    harness.sign_in(browser, site.url, site.client.token(
        roles=HEAD, opd="3510.03.01", sub=f"u-{NIP_KABID}", nip=NIP_KABID, name="Sri Wahyuni"))
    harness.open_page(browser, f"{site.url}/surat")
    item = harness.wait_for_text(browser, "#daftar-verifier li", "Laporan triwulan gizi")

    item.find_element(By.XPATH, ".//button[normalize-space()='Kembalikan']").click()
    note = item.find_element(By.TAG_NAME, "textarea")
    note.send_keys("Lengkapi data bulan Oktober")
    item.find_element(By.XPATH, ".//button[normalize-space()='Kembalikan ke penyusun']").click()
    harness.wait_for_text(browser, "#surat-status", "Dikembalikan ke penyusun")
    wait_until(lambda: site.db.letters.find_one({"_id": returned["id"]})["state"] == "returned",
               timeout=10, message="returned")
    assert site.db.letters.find_one({"_id": returned["id"]})["timeline"][-1]["note"] == \
        "Lengkapi data bulan Oktober"

    harness.wait_for(browser, lambda d: "Laporan triwulan gizi" not in d.find_element(
        By.ID, "daftar-verifier").text, message="the lists read again")
    # meanwhile the verifier approved the other one elsewhere: the page's button is refused
    other = harness.wait_for_text(browser, "#daftar-verifier li", "Surat edaran jam kerja")
    assert step(site.client, gone["id"], "approve", NIP_KABID, roles=HEAD).status_code == 200
    other.find_element(By.XPATH, ".//button[normalize-space()='Setujui (paraf)']").click()
    harness.wait_for_text(browser, "#surat-status", "Tidak dapat dilakukan sekarang")
    harness.wait_for_element(browser, "#kosong-verifier")  # read again: nothing left
    harness.assert_page_clean(browser, allow_failed=[f"/letters/{gone['id']}/approve 409"])
    harness.assert_axe_clean(browser, "after a refusal")
    harness.screenshot(browser, "letters-surat-refused")


def test_a_disposition_is_read_and_completed(browser, site):
    letter = register(site.client)
    r = dispose(site.client, f"/receipts/{letter['id']}:3510.03", NIP_HEAD, [NIP_KABID],
                instruction="Siapkan data imunisasi")
    assert r.status_code == 201, r.text
    wait_until(lambda: call(site.client, "GET", "/dispositions/mine?open=true", NIP_KABID,
                            roles=HEAD).json()["items"], timeout=15, message="disposition listed")
    harness.sign_in(browser, site.url, site.client.token(
        roles=HEAD, opd="3510.03.01", sub=f"u-{NIP_KABID}", nip=NIP_KABID, name="Sri Wahyuni"))
    harness.open_page(browser, f"{site.url}/surat")
    item = harness.wait_for_text(browser, "#daftar-disposisi li", "Siapkan data imunisasi")
    assert "Permintaan data imunisasi" in item.text and "belum dibaca" in item.text

    item.find_element(By.XPATH, ".//button[normalize-space()='Tandai sudah dibaca']").click()
    harness.wait_for_text(browser, "#surat-status", "sudah dibaca")
    item = harness.wait_for_text(browser, "#daftar-disposisi li", "sudah dibaca")
    item.find_element(By.XPATH, ".//button[normalize-space()='Selesaikan']").click()
    item.find_element(By.TAG_NAME, "textarea").send_keys("Data sudah dikirim ke provinsi")
    item.find_element(By.XPATH, ".//button[normalize-space()='Kirim tindak lanjut']").click()
    harness.wait_for_text(browser, "#surat-status", "Disposisi selesai")
    harness.wait_for_element(browser, "#kosong-disposisi")
    stored = site.db.dispositions.find_one({"to.nip": NIP_KABID})
    assert stored["completed_at"] and stored["note"] == "Data sudah dikirim ke provinsi"
    harness.assert_page_clean(browser)
    harness.assert_axe_clean(browser, "disposition completed")

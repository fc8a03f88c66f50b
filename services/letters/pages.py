"""The letters module's pages (served on its own port beside ``/api/letters/v1``).

- ``/verifikasi/surat/<code>``: the target of the QR on every sealed letter. A verdict readable
  at arm's length (valid / revoked / unknown: 404 in the same layout) with exactly what the
  public verification API shows (``domain.public_view``): number, date, and except for Sangat
  Rahasia / Rahasia letters the signer, unit and kind. Never the subject, addressees, body or
  why a letter was revoked. ``no-store``: a revocation shows at once.
- ``/verifikasi/surat`` (GET: the form; POST multipart ``file``, at most 20 MB): is this PDF
  byte for byte a letter sealed here, and is its signature intact? The same checks as
  ``POST /api/letters/v1/verify`` (the SHA-256 in ``hashes``, ``Sealing.check``). From a
  QR's page the form also sends its code (``kode``): the answer then says whether the file is
  that letter. Rendered on the server: works without JavaScript.
- ``/surat``: "letters to act on", a staff page. An HTML shell; ``surat.js`` calls the
  letters API with the signed-in person's bearer token (``Pamong.api``).

The rules (verdicts, plain words for a signature's problem, dates in the unit's zone) are the
module-level functions below; templates only lay them out.
"""

from datetime import UTC
from zoneinfo import ZoneInfo

from werkzeug.exceptions import RequestEntityTooLarge

from pamong.replica import UNITS
from pamong.web import Problem
from pamong.web.pages import Pages, page, request_lang
from services.letters import domain
from services.letters.signed import CODE, VERIFY_MAX_BYTES
from services.letters.store import CODES, KINDS

PAGES = Pages(__file__)
# what `make run` prints beside the module's API URL
PAGE_LINKS = [("/surat", "surat: letters to act on"),
              ("/verifikasi/surat", "verifikasi surat: the letter QR, check a PDF"),
              ("/masuk", "masuk: sign in")]
NO_STORE = "no-store"
# room for the multipart envelope around a file of VERIFY_MAX_BYTES
FORM_OVERHEAD = 64 * 1024

MONTHS_ID = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
             "September", "Oktober", "November", "Desember")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")
ZONE_NAMES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA",
              "Asia/Jayapura": "WIT"}
SECURITY_EN = {"Sangat Rahasia": "Top secret", "Rahasia": "Secret", "Terbatas": "Restricted",
               "Biasa": "Ordinary"}

# verdict -> (css class, word in Indonesian, word in English, explanation id, explanation en)
CODE_VERDICTS = {
    "valid": ("status-ok", "SAH", "VALID",
              "Surat ini ditandatangani secara elektronik dan tercatat di sistem Pemda.",
              "This letter was signed electronically and is on record with the Pemda."),
    "revoked": ("status-bad", "DICABUT", "REVOKED",
                "Surat ini pernah ditandatangani, tetapi sudah dicabut dan tidak berlaku lagi.",
                "This letter was signed, but it has been revoked and is no longer in force."),
    "unknown": ("status-unknown", "TIDAK DIKENAL", "UNKNOWN",
                "Tidak ada surat dengan kode verifikasi ini. Dokumen ini bukan surat yang "
                "ditandatangani Pemda ini, atau kodenya salah ketik.",
                "No letter carries this verification code. The document is not one this Pemda "
                "signed, or the code was mistyped."),
}

# what sealing.check_signature says (its ``problem``) -> plain words
SIGNATURE_PROBLEMS = (
    ("not a readable PDF", "Berkas ini bukan PDF yang dapat dibaca.",
     "This file is not a readable PDF."),
    ("carries no signature", "Berkas ini tidak memuat tanda tangan elektronik.",
     "This file carries no electronic signature."),
    ("cannot be read", "Tanda tangan elektronik di berkas ini rusak dan tidak dapat dibaca.",
     "The electronic signature in this file is damaged and cannot be read."),
    ("changed after it was signed", "Isi berkas telah diubah setelah ditandatangani.",
     "The file was changed after it was signed."),
    ("does not match the document", "Tanda tangan tidak cocok dengan isi berkas.",
     "The signature does not match the file's content."),
    ("certificate is revoked", "Sertifikat penanda tangan telah dicabut.",
     "The signer's certificate has been revoked."),
    ("does not chain to a trusted root",
     "Sertifikat penanda tangan tidak berasal dari penerbit yang dipercaya.",
     "The signer's certificate was not issued by a trusted authority."),
    ("in a way the signature does not allow",
     "Berkas diubah setelah ditandatangani dengan cara yang tidak diizinkan tanda tangannya.",
     "The file was changed after signing in a way its signature does not allow."),
    ("updated after it was signed", "Berkas ditambah atau diperbarui setelah ditandatangani.",
     "The file was added to or updated after it was signed."),
)


def signature_reason(problem):
    """``(Indonesian, English)`` plain words for a signature check's ``problem`` (None: no
    problem)."""
    if not problem:
        return None
    for marker, id_text, en_text in SIGNATURE_PROBLEMS:
        if marker in problem:
            return id_text, en_text
    return ("Tanda tangan elektronik tidak dapat dipastikan.",
            "The electronic signature cannot be confirmed.")


def upload_verdict(view, hash_match, signature, code_letter=None, file_letter=None):
    """The answer to an uploaded PDF: ``(css class, word id, word en, explanation id,
    explanation en)``. ``code_letter``/``file_letter``: the letter id of the QR code the form
    came from and of the file (when both are known)."""
    if not hash_match:
        return ("status-bad", "DITOLAK", "REFUSED",
                "Berkas ini tidak sama persis dengan surat mana pun yang disegel Pemda ini. "
                "Jangan percayai isinya.",
                "This file is not byte for byte any letter this Pemda sealed. Do not trust "
                "its content.")
    if code_letter and file_letter and code_letter != file_letter:
        return ("status-warn", "SURAT LAIN", "ANOTHER LETTER",
                "Berkas ini surat yang disegel Pemda ini, tetapi bukan surat dari kode QR "
                "yang Anda pindai.",
                "This file is a letter this Pemda sealed, but not the letter of the QR code "
                "you scanned.")
    if view["status"] == "revoked":
        return ("status-bad", "DICABUT", "REVOKED",
                "Berkas ini memang surat yang disegel Pemda ini, tetapi surat itu sudah "
                "dicabut dan tidak berlaku lagi.",
                "This file is indeed a letter this Pemda sealed, but the letter has been "
                "revoked and is no longer in force.")
    if not signature["valid"]:
        return ("status-warn", "ASLI, TANDA TANGAN BELUM TERPASTIKAN",
                "GENUINE, SIGNATURE NOT CONFIRMED",
                "Berkas ini sama persis dengan surat yang disegel, tetapi tanda tangannya tidak "
                "dapat dipastikan di server ini.",
                "This file is byte for byte a sealed letter, but its signature cannot be "
                "confirmed on this server.")
    return ("status-ok", "ASLI DAN SAH", "GENUINE AND VALID",
            "Berkas ini sama persis, byte demi byte, dengan surat yang disegel Pemda ini, dan "
            "tanda tangan elektroniknya utuh.",
            "This file is byte for byte the letter this Pemda sealed, and its electronic "
            "signature is intact.")


def as_utc(moment):
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def local_time(moment, zone):
    """``(date text id, date text en)`` of a moment in the unit's zone, with its name (WIB,
    WITA, WIT)."""
    moment = as_utc(moment)
    if moment is None:
        return None
    here = moment.astimezone(ZoneInfo(zone or "Asia/Jakarta"))
    label = ZONE_NAMES.get(zone or "Asia/Jakarta") or here.strftime("%Z")
    return (f"{here.day} {MONTHS_ID[here.month - 1]} {here.year}, pukul "
            f"{here:%H.%M} {label}",
            f"{here.day} {MONTHS_EN[here.month - 1]} {here.year}, {here:%H:%M} {label}")


def security_text(name):
    return (name, SECURITY_EN.get(name, name)) if name else None


def shown_letter(view, unit, kind_name):
    """What a page shows of a letter: ``domain.public_view`` laid out for the template (no
    field the public view does not have)."""
    zone = (unit or {}).get("timezone")
    shown = {"status": view["status"], "number": view["number"],
             "date": local_time(view["date"], zone),
             "revoked_at": local_time(view.get("revoked_at"), zone),
             "security": security_text(view["security"]), "secret": "note" in view}
    if not shown["secret"]:
        signer, letter_unit = view["signer"], view["unit"]
        shown |= {"signer": signer["name"], "title": signer["title"],
                  "unit": letter_unit["name"] or letter_unit["code"],
                  "kind": kind_name or view["kind"]}
    return shown


class LetterPages:
    """Mixed into the letters service (uses DocumentEndpoints' ``_verifiable`` and
    ``sealer``)."""

    # -- reading -----------------------------------------------------------------------------

    def _letter_by_code(self, code):
        """The verifiable letter (signed, sent or archived) behind a QR code, or None."""
        found = self.db[CODES].find_one({"_id": code}) if CODE.fullmatch(code or "") else None
        return self._verifiable(found["letter"]) if found else None

    def _shown(self, letter):
        """``domain.public_view`` of ``letter`` with its unit (name and zone) and kind name."""
        unit = self.db[UNITS].find_one({"_id": letter["unit"]}, {"name": 1, "timezone": 1})
        view = domain.public_view(letter, (unit or {}).get("name"))
        kind_name = None
        if "kind" in view:
            kind = self.cache.get(("kind", view["kind"]), lambda: self.db[KINDS].find_one(
                {"_id": view["kind"]})) or {}
            kind_name = kind.get("name")
        return shown_letter(view, unit, kind_name)

    # -- pages -------------------------------------------------------------------------------

    @page("/verifikasi/surat/<code>", cache=NO_STORE)
    def verify_letter_page(self, request, code):
        letter = self._letter_by_code(code)
        if letter is None:
            return PAGES.render(request, "verifikasi.html", status=404, code=None,
                                letter=None, verdict=CODE_VERDICTS["unknown"], upload=None)
        shown = self._shown(letter)
        return PAGES.render(request, "verifikasi.html", code=code, letter=shown,
                            verdict=CODE_VERDICTS[shown["status"]], upload=None)

    @page("/verifikasi/surat", cache=NO_STORE)
    def verify_form_page(self, request):
        return PAGES.render(request, "verifikasi.html", code=None, letter=None, verdict=None,
                            upload=None)

    @page("/verifikasi/surat", method="POST", cache=NO_STORE,
          max_body=VERIFY_MAX_BYTES + FORM_OVERHEAD)
    def verify_upload_page(self, request):
        pdf, code = _form_upload(request)
        if not pdf:  # the form again, saying what is missing
            return PAGES.render(request, "verifikasi.html", status=422, code=code, letter=None,
                                verdict=None, upload=None, missing_file=True)
        letter, signature = self._check_pdf(pdf)  # the checks of POST /verify
        code_letter = self._letter_by_code(code) if code else None
        shown = self._shown(letter) if letter else None
        verdict = upload_verdict(shown or {"status": "unknown"}, letter is not None, signature,
                                 code_letter and code_letter["_id"], letter and letter["_id"])
        upload = {"verdict": verdict, "hash_match": letter is not None,
                  "intact": signature["intact"], "signed": signature["signed"],
                  "valid": signature["valid"], "reason": signature_reason(signature["problem"])}
        return PAGES.render(request, "verifikasi.html", code=code if code_letter else None,
                            letter=shown, verdict=None, upload=upload)

    @page("/surat")
    def letters_to_act_on_page(self, request):
        return PAGES.render(request, "surat.html")


def _form_upload(request):
    """The PDF's bytes from the form's ``file`` field (empty: none chosen) and the QR code the
    form came from (``kode``, None unless shaped like a code). Too large: 413, shown as this
    site's error page."""
    request.max_content_length = VERIFY_MAX_BYTES + FORM_OVERHEAD  # a chunked body too
    try:
        upload = request.files.get("file") if request.mimetype == "multipart/form-data" \
            else None
        code = (request.form.get("kode") or "").strip()
        data = upload.read(VERIFY_MAX_BYTES + 1) if upload else b""
    except RequestEntityTooLarge:
        data = None
    if data is None or len(data) > VERIFY_MAX_BYTES:
        mb = VERIFY_MAX_BYTES // 2**20
        raise Problem(413, f"The file is larger than {mb} MB; a sealed letter is tens of kB."
                      if request_lang(request) == "en" else
                      f"Berkas lebih besar dari {mb} MB; surat yang disegel hanya puluhan kB.")
    return data, code if CODE.fullmatch(code) else None

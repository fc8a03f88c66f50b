"""An official letter (naskah dinas) rendered to PDF: a pure function from the letter's data to
bytes (no I/O); sealing the result is ``sealing.py``'s job.

- **Page.** A4, margins 3 cm left and 2 cm elsewhere, Helvetica (Arial's metrics) 12 pt, the
  letterhead (kop) on the first page only, as in the regional tata naskah dinas
  (Permendagri 1/2023).
- **Surat dinas** (``kind_title`` "SURAT"): the place and date at the right, Nomor / Sifat /
  Lampiran / Hal at the left, the "Yth." addressees, the body, the signature block, Tembusan.
- **Other kinds** (SURAT TUGAS, NOTA DINAS, ...): the kind as a centred heading over
  "NOMOR ...", the place and date moved into the signature block. A nota dinas-like letter
  lists Yth. / Sifat / Lampiran / Hal under the heading; a surat tugas (``assignment``) instead
  follows its body (the "Dasar") with "MEMERINTAHKAN:", the Kepada table and Untuk.
- **Signature.** Where the wet signature would go, a QR code of ``verify_url``; every page's
  footer says the document is signed electronically, where to check it, and "Halaman X dari Y".
- **Characters.** Only the PDF core fonts are used, so there is no font file to ship or to find
  on the machine. Their text is WinAnsi (cp1252: Latin-1 plus curly quotes, dashes, the
  ellipsis and the euro sign); any other character becomes its unaccented form (``ā`` -> ``a``,
  ``ﬁ`` -> ``fi``) or ``?``, never an error. The number is also part of the PDF's title, which
  keeps full Unicode.
"""

import functools
import io
import re
import unicodedata
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
SECURITY = {"SR": "Sangat Rahasia", "R": "Rahasia", "T": "Terbatas", "B": "Biasa"}
URGENCY = {"sangat_segera": "Sangat Segera", "segera": "Segera", "biasa": None}

FONT = "Helvetica"
LINE = 6            # mm: one 12 pt line
LABEL_WIDTH = 25    # mm: "Lampiran" and its colon
SIGNATURE_X = 115   # mm from the page's left edge: the signature block's column
QR_SIZE = 25        # mm: scannable from a printout


def indonesian_date(day):
    """``date(2026, 12, 5)`` -> ``"5 Desember 2026"``."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def render_letter(letter, verify_url):
    """The letter as PDF bytes. ``letter``: ``letterhead`` {government, name, address, contact,
    city}, ``kind_title``, ``number``, ``signed_at`` (aware; dated in ``zone``, an IANA name),
    ``security`` (SR/R/T/B), ``urgency``, ``subject``, ``body`` (paragraphs apart by a blank
    line), ``attachments`` (a count), ``addressees``, ``copies``, ``signer`` {name, title (as
    printed: an acting official's says "Plt." or "Plh."), nip} and, for a surat tugas,
    ``assignment`` {employees [{name, nip, title}], start, end, place {name}, purpose}.
    ``verify_url`` goes into the QR code and the footer."""
    head = letter["letterhead"]
    signed_on = letter["signed_at"].astimezone(ZoneInfo(letter["zone"])).date()
    place_date = f"{head['city']}, {indonesian_date(signed_on)}"
    kind = letter.get("kind_title") or "SURAT"

    pdf = _LetterPdf(verify_url)
    pdf.set_title(f"{kind} {letter['number']}")
    pdf.set_subject(letter["subject"])
    pdf.set_author(head["name"])
    pdf.set_lang("id")
    pdf.set_creation_date(letter["signed_at"])
    pdf.add_page()
    _letterhead(pdf, head)

    sifat = ", ".join(filter(None, (SECURITY[letter["security"]], URGENCY[letter["urgency"]])))
    lampiran = f"{letter['attachments']} berkas" if letter["attachments"] else "-"
    if kind == "SURAT":
        pdf.text_block(place_date, x=SIGNATURE_X)
        pdf.ln(LINE / 2)
        _fields(pdf, [("Nomor", letter["number"]), ("Sifat", sifat), ("Lampiran", lampiran),
                      ("Hal", letter["subject"])])
        pdf.ln(LINE)
        _addressees(pdf, letter["addressees"])
        pdf.ln(LINE)
        _body(pdf, letter["body"])
        _signature(pdf, letter["signer"], verify_url, place_date=None)
    else:
        pdf.set_font(style="BU")
        pdf.text_block(kind, align="C")
        pdf.set_font(style="")
        pdf.text_block(f"NOMOR {letter['number']}", align="C")
        pdf.ln(LINE)
        if letter.get("assignment"):
            _body(pdf, letter["body"])
            _assignment(pdf, letter["assignment"])
        else:
            rows = [("Sifat", sifat), ("Lampiran", lampiran), ("Hal", letter["subject"])]
            if letter["addressees"]:
                rows.insert(0, ("Yth.", "\n".join(letter["addressees"])))
            _fields(pdf, rows)
            pdf.ln(LINE)
            _body(pdf, letter["body"])
        _signature(pdf, letter["signer"], verify_url, place_date=place_date)
    _copies(pdf, letter["copies"])
    return bytes(pdf.output())


class _LetterPdf(FPDF):
    def __init__(self, verify_url):
        super().__init__(format="A4")
        self.verify_url = verify_url
        # what the core fonts' /WinAnsiEncoding really is (fpdf2 assumes Latin-1)
        self.core_fonts_encoding = "cp1252"
        self.set_margins(30, 20, 20)
        self.set_auto_page_break(True, margin=25)   # room for the footer
        self.set_font(FONT, size=12)

    def normalize_text(self, text):
        # every piece of text passes here (cells, tables, the footer): the one place to make
        # it printable in a core font
        return super().normalize_text(_winansi(text))

    def footer(self):
        self.set_y(-20)
        self.set_font(FONT, "I", 8)
        self.text_block("Dokumen ini ditandatangani secara elektronik. Periksa keasliannya di "
                        f"{self.verify_url}", h=3.5, align="C")
        self.text_block(f"Halaman {self.page_no()} dari {{nb}}", h=3.5, align="C")

    def text_block(self, text, *, x=None, w=0, h=LINE, align="L"):
        """Wrapped text from ``x`` (default: where the cursor is) to ``w`` mm wide (0: to the
        right margin); afterwards the cursor is at the next line's left margin."""
        if x is not None:
            self.set_x(x)
        self.multi_cell(w, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _winansi(text):
    return "".join(_winansi_char(ch) for ch in unicodedata.normalize("NFC", text))


@functools.cache
def _winansi_char(ch):
    if ch == "\n":
        return ch
    category = unicodedata.category(ch)
    if category == "Cc":
        return " "      # a tab or a stray control byte
    if category == "Cf" and ch != "\xad":
        return ""       # invisible: zero-width spaces, direction marks (keep the soft hyphen)
    for form in (ch, unicodedata.normalize("NFKD", ch)):
        plain = "".join(c for c in form if not unicodedata.combining(c))
        try:
            plain.encode("cp1252")
        except UnicodeEncodeError:
            continue
        return plain
    return "?"


def _letterhead(pdf, head):
    pdf.set_font(style="B", size=14)
    if head["government"] != head["name"]:  # a letter of the Pemda itself: one name
        pdf.text_block(head["government"].upper(), h=6.5, align="C")
    pdf.set_font(size=16)
    pdf.text_block(head["name"].upper(), h=7.5, align="C")
    pdf.set_font(style="", size=10)
    pdf.text_block(head["address"], h=5, align="C")
    if head.get("contact"):
        pdf.text_block(head["contact"], h=5, align="C")
    # the kop's closing rule: a thick line over a thin one
    y = pdf.get_y() + 1.5
    right = pdf.w - pdf.r_margin
    pdf.set_line_width(0.8)
    pdf.line(pdf.l_margin, y, right, y)
    pdf.set_line_width(0.2)
    pdf.line(pdf.l_margin, y + 1.2, right, y + 1.2)
    pdf.set_y(y + 6)
    pdf.set_font(size=12)


def _fields(pdf, rows):
    """``Label : value`` rows, the values aligned and wrapping under themselves."""
    for label, value in rows:
        pdf.cell(LABEL_WIDTH, LINE, label)
        pdf.cell(5, LINE, ":")
        pdf.text_block(value)


def _numbered(pdf, items, indent=0):
    for number, item in enumerate(items, 1):
        pdf.set_x(pdf.l_margin + indent)
        pdf.cell(8, LINE, f"{number}.")
        pdf.text_block(item)


def _addressees(pdf, names):
    if len(names) == 1:
        pdf.text_block(f"Yth. {names[0]}")
    else:
        pdf.text_block("Yth.")
        _numbered(pdf, names, indent=9)


def _body(pdf, body):
    for paragraph in re.split(r"\n\s*\n", body.strip()):
        if paragraph.strip():
            pdf.text_block(paragraph.strip(), align="J")
            pdf.ln(2)


def _assignment(pdf, assignment):
    pdf.ln(LINE / 2)
    pdf.set_font(style="B")
    pdf.text_block("MEMERINTAHKAN:", align="C")
    pdf.set_font(style="")
    pdf.ln(LINE / 2)
    pdf.text_block("Kepada:")
    with pdf.table(col_widths=(10, 55, 45, 50), text_align=("C", "L", "L", "L"),
                   line_height=LINE, padding=1) as table:
        table.row(("No.", "Nama", "NIP", "Jabatan"))
        for number, employee in enumerate(assignment["employees"], 1):
            table.row((f"{number}.", employee["name"], employee["nip"], employee["title"]))
    pdf.ln(LINE)
    start, end = assignment["start"], assignment["end"]
    when = indonesian_date(start)
    if end != start:
        when += f" s.d. {indonesian_date(end)}"
    _fields(pdf, [("Untuk", assignment["purpose"]), ("Tanggal", when),
                  ("Tempat", assignment["place"]["name"])])


def _signature(pdf, signer, verify_url, place_date):
    title = signer["title"]
    width = pdf.w - pdf.r_margin - SIGNATURE_X
    title_lines = len(pdf.multi_cell(width, LINE, title, dry_run=True, output="LINES"))
    height = LINE * (title_lines + 2 + bool(place_date)) + QR_SIZE + 4
    if pdf.will_page_break(LINE * 2 + height):
        pdf.add_page()     # a signature block is never split across pages
    else:
        pdf.ln(LINE * 2)
    if place_date:
        pdf.text_block(place_date, x=SIGNATURE_X, w=width)
    pdf.text_block(title, x=SIGNATURE_X, w=width)
    qr = io.BytesIO()
    segno.make(verify_url, error="m", micro=False).save(qr, kind="png", scale=4, border=0)
    top = pdf.get_y() + 2
    pdf.image(qr, x=SIGNATURE_X, y=top, w=QR_SIZE, h=QR_SIZE)
    pdf.set_y(top + QR_SIZE + 2)
    pdf.set_font(style="BU")
    pdf.text_block(signer["name"], x=SIGNATURE_X, w=width)
    pdf.set_font(style="")
    pdf.text_block(f"NIP. {signer['nip']}", x=SIGNATURE_X, w=width)


def _copies(pdf, copies):
    if not copies:
        return
    pdf.ln(LINE)
    pdf.text_block("Tembusan:")
    _numbered(pdf, copies)

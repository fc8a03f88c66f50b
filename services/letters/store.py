"""Letters storage. Every hot path is an ``_id`` read or write (the only indexed filter on the
local database): a step reads the letter by id and writes it once, compare-and-set on its
``version``; signing adds the counter ``$inc`` and the number's claim.

Collections (``pamong_letters``), besides the directory replica (``units``, ``employees``,
``acting``):

- ``letters``: ``_id`` letter id; the letter, its flow state, verifiers, signer, number once
  signed and its ``timeline`` (every step: who, when, from which state to which, note).
  A busy Pemda writes some 100,000 a year.
- ``kinds``: ``_id`` kind code; document kinds (seeded with Permendagri 1/2023's).
- ``classifications``: ``_id`` classification code (``000.8.3.3``); name and retention.
- ``numbering``: ``_id`` unit code; the unit's numbering template and letter code, inherited
  by the units below it.
- ``counters``: ``_id "<unit>:<kind or *>:<year>"``; ``next`` (the last number handed out)
  and ``checked`` (every number up to it is accounted for). A few hundred a year.
- ``numbers``: ``_id "<counter id>:<n>"``; the claim of each number handed out: ``used``
  (its letter) or ``cancelled`` (with the reason). Exactly one per number, so the register of
  a year has no gaps and a claim can never be taken twice (a unique ``_id``). One per letter.
"""

from pamong.storage import Index

LETTERS, KINDS, CLASSIFICATIONS = "letters", "kinds", "classifications"
NUMBERING, COUNTERS, NUMBERS = "numbering", "counters", "numbers"
RESERVATIONS = "reservations"  # reserved blocks of numbers (reserved.py)
DOCUMENTS, CODES, HASHES = "documents", "codes", "hashes"  # sealed PDFs (signed.py)
RECEIPTS, FILES = "receipts", "files"  # inboxes, attachments (mail.py, attachments.py)
DISPOSITIONS = "dispositions"  # (dispositions.py)
LISTS, ARCHIVE = "lists", "archive"  # lists and search (lists.py), archive (archive.py)

# for the rare scans (lists); MongoDB uses them, the local database ignores them
INDEXES = [Index(CLASSIFICATIONS, [("parent", 1)])]


def claim_id(counter, n):
    return f"{counter}:{n}"

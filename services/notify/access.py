"""Who may do what in notify (roles from the token; pure).

- ``admin`` (the whole Pemda): every notification, preview, rules, anyone's preferences and
  any address's opt-out;
- ``service`` (a machine) and ``admin`` send ad-hoc notifications;
- every signed-in person (``PEOPLE``) reads their own in-app inbox and sets their own
  preferences (the person is the token's ``nip`` when present, else its ``sub``).
"""

API = "/api/notify/v1"
ADMINS = ("admin",)
SENDERS = ("service", "admin")
PEOPLE = ("admin", "opd_admin", "pimpinan", "verifikator", "pegawai", "petugas", "sekretariat",
          "pemohon")


def person_of(principal):
    """The person a token speaks for: its NIP when it has one (an employee), else its sub."""
    return getattr(principal, "nip", None) or principal.sub

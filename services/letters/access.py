"""Who may see a letter.

- the people named in it: its drafter, verifiers, signer and whoever signed it;
- for a Biasa (B) letter also the staff who read its unit (``opd_admin``, ``pimpinan`` and
  ``verifikator`` of the OPD: ``Principal.can_read``) and the Pemda-wide roles;
- a Sangat Rahasia, Rahasia or Terbatas letter only the people named in it.
Everyone else gets 404, as for a letter that does not exist.
"""

from services.letters import domain

API = "/api/letters/v1"
DRAFTERS = ("pegawai", "verifikator", "pimpinan", "opd_admin")  # staff who write letters
READERS = ("opd_admin", "pimpinan", "verifikator")


def named_in(letter, nip):
    if not nip:
        return False
    return nip in ({letter["drafter"]["nip"], letter["signer"]["nip"],
                    (letter.get("signed_by") or {}).get("nip")}
                   | {v["nip"] for v in letter["verifiers"]})


def may_see(principal, letter):
    if named_in(letter, principal.nip):
        return True
    if letter["security"] in domain.CONFIDENTIAL:
        return False
    return principal.is_pemda_wide or (principal.has_any(READERS)
                                       and principal.can_read(letter["unit"]))

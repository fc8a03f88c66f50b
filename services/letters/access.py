"""Who may see a letter (pure: the caller looks up what the rules need and passes it in).

- the people named in it: its drafter (on an incoming letter: the clerk who registered it),
  verifiers, signer, whoever signed it, and its disposition chain (``chain``: everyone who
  disposed it or was sent a disposition of it, in any receiving unit);
- its leadership chain: whoever heads, on the day, the letter's unit, a unit that received
  it, or a unit above one of those (``led``: the units the caller heads by position or acts
  in as Plt/Plh today; unit codes are paths, so "above" is a prefix);
- a Biasa (B) letter also the staff who read the letter's unit or a receiving unit (its
  internal addressees and copy holders once it is sent, ``receivers`` once delivered, the
  receiving unit of an incoming letter): ``opd_admin``, ``pimpinan``, ``verifikator`` and
  ``sekretariat`` of that OPD (``Principal.can_read``), and the Pemda-wide roles.
A Sangat Rahasia, Rahasia or Terbatas letter is seen only by the named people and the
leadership chain. Everyone else gets 404, as for a letter that does not exist. An addressee
unit sees an outgoing letter once it is sent, not while it is drafted or awaits sealing.
"""

from pamong.auth.principal import in_subtree
from services.letters import domain

API = "/api/letters/v1"
DRAFTERS = ("pegawai", "verifikator", "pimpinan", "opd_admin")  # staff who write letters
READERS = ("opd_admin", "pimpinan", "verifikator")
CLERKS = ("opd_admin", "sekretariat")  # register incoming mail, record dispatches
MAIL_READERS = READERS + ("sekretariat",)  # read a unit's B letters and its inbox


def named_in(letter, nip):
    if not nip:
        return False
    return nip in ({(letter.get("drafter") or {}).get("nip"),
                    (letter.get("signer") or {}).get("nip"),
                    (letter.get("signed_by") or {}).get("nip")}
                   | {v["nip"] for v in letter.get("verifiers", ())}
                   | set(letter.get("chain", ())))


def units_of(letter):
    """The letter's own unit and the units that received it: once it is sent, its internal
    addressees and copy holders at once (their receipts follow, ``receivers``)."""
    units = [letter["unit"], *letter.get("receivers", ())]
    if letter.get("state") in (domain.SENT, domain.ARCHIVED):
        units += [party["unit"] for party in (*letter.get("addressees", ()),
                                              *letter.get("copies", ()))
                  if party["type"] == "internal"]
    return units


def leads(letter, led):
    return any(in_subtree(unit, head) for unit in units_of(letter) for head in led)


def may_see(principal, letter, led=()):
    if named_in(letter, principal.nip) or leads(letter, led):
        return True
    if letter["security"] in domain.CONFIDENTIAL:
        return False
    return principal.is_pemda_wide or (principal.has_any(MAIL_READERS) and any(
        principal.can_read(unit) for unit in units_of(letter)))


def may_see_receipt(principal, receipt, letter, led=()):
    """A receipt and its disposition tree belong to the receiving unit: seen by who may see
    the letter and reads that unit, leads it, or is in the letter's disposition chain (the
    sending OPD sees its letter, not the receiver's instructions)."""
    return may_see(principal, letter, led) and (
        principal.is_pemda_wide or principal.can_read(receipt["unit"])
        or principal.nip in letter.get("chain", ())
        or any(in_subtree(receipt["unit"], head) for head in led))

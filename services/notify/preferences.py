"""Preferences and opt-outs: who does not want which channel.

- ``people`` (``_id`` the person: a NIP, or a citizen account's ``sub``): ``{channels:
  {whatsapp: {opted_out}, sms: {...}, email: {...}, inapp: {...}}, updated_at, updated_by}``,
  set by the person themselves (``/preferences``) or by ``admin``
  (``/people/<person>/preferences``);
- ``addresses`` (``_id "<channel>:<address>"``, e.g. ``whatsapp:+6281234567890``):
  ``opted_out`` is set by an inbound BERHENTI / MULAI (the service desk) or by ``admin``
  (``/addresses/<channel>/<address>``), for numbers no account speaks for.

Delivery skips an opted-out channel (person or address) unless the rule is ``critical``,
and moves to the rule's next channel; with none left the notification is ``cancelled`` with
reason ``opted_out``. Each channel is its own field, set with ``$set`` (upsert), so two
concurrent changes of different channels both land and a repeat changes nothing.
"""

import re

import pymongo.errors

from pamong.contracts.notify import CHANNELS
from pamong.storage import db_now
from pamong.web import not_found, route, unprocessable
from services.notify import domain
from services.notify.access import ADMINS, API, PEOPLE, person_of
from services.notify.schemas.admin import PERSON
from services.notify.schemas.preferences import (
    AddressBody,
    AddressOut,
    PreferencesBody,
    PreferencesOut,
)
from services.notify.store import ADDRESSES
from services.notify.store import PEOPLE as PEOPLE_COLLECTION

TAGS = ("preferences",)
CRITICAL_NOTE = ("Critical rules (a permit decision) reach the person on every channel even "
                 "when they opted out of it.")


def preferences_out(person, doc):
    """The stored document as the API shows it: every channel, opted in unless set."""
    doc = doc or {}
    channels = doc.get("channels") or {}
    return {"person": person,
            "channels": {c: {"opted_out": bool((channels.get(c) or {}).get("opted_out"))}
                         for c in CHANNELS},
            "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by"),
            "note": CRITICAL_NOTE}


def opted_out_channels(doc):
    """``{channel: opted out}`` of a ``people`` document (None: nothing set)."""
    return {c: v["opted_out"] for c, v in preferences_out(None, doc)["channels"].items()}


def address_out(channel, address, doc):
    doc = doc or {}
    return {"channel": channel, "address": address, "opted_out": bool(doc.get("opted_out")),
            "opted_at": doc.get("opted_at"), "opted_by": doc.get("opted_by"),
            "next_at": doc.get("next_at"), "last_inbound_at": doc.get("last_inbound_at"),
            "person": doc.get("person"), "note": CRITICAL_NOTE}


def _upsert(collection, doc_id, update):
    """``update_one`` with upsert; a concurrent first insert of the same ``_id`` loses with
    a duplicate key on some servers: the document exists then, so the update applies."""
    try:
        collection.update_one({"_id": doc_id}, update, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        collection.update_one({"_id": doc_id}, update)


class PreferenceEndpoints:
    """The person's own preferences, anyone's for ``admin``, and an address's opt-out."""

    def _set_preferences(self, person, channels, by):
        update = {f"channels.{c}.opted_out": v["opted_out"] for c, v in channels.items()}
        if update:
            _upsert(self.db[PEOPLE_COLLECTION], person,
                    {"$set": {**update, "updated_at": db_now(), "updated_by": by}})
            # this process's sends see it at once; other replicas within
            # NOTIFY_REFERENCE_CACHE_SECONDS
            self.cache.clear()
        return preferences_out(person, self.db[PEOPLE_COLLECTION].find_one({"_id": person}))

    @route("GET", f"{API}/preferences", roles=PEOPLE, response=PreferencesOut(), tags=TAGS,
           summary="My channel preferences (every channel, opted in unless I opted out)")
    def my_preferences(self, request, principal):
        person = person_of(principal)
        return preferences_out(person, self.db[PEOPLE_COLLECTION].find_one({"_id": person}))

    @route("PUT", f"{API}/preferences", roles=PEOPLE, body=PreferencesBody(),
           response=PreferencesOut(), tags=TAGS,
           summary="Opt out of (or back into) channels; channels left out keep their "
                   "setting. Critical messages still arrive.")
    def set_my_preferences(self, request, principal, body):
        return self._set_preferences(person_of(principal), body["channels"], principal.sub)

    @route("GET", f"{API}/people/<person>/preferences", roles=ADMINS,
           response=PreferencesOut(), tags=TAGS, summary="A person's channel preferences")
    def person_preferences(self, request, principal, person):
        _check_person(person)
        return preferences_out(person, self.db[PEOPLE_COLLECTION].find_one({"_id": person}))

    @route("PUT", f"{API}/people/<person>/preferences", roles=ADMINS, body=PreferencesBody(),
           response=PreferencesOut(), tags=TAGS,
           summary="Set a person's channel preferences (e.g. on their request by phone)")
    def set_person_preferences(self, request, principal, person, body):
        _check_person(person)
        return self._set_preferences(person, body["channels"], principal.sub)

    def _address(self, channel, address):
        if channel not in CHANNELS or channel == "inapp":
            raise not_found("No such channel: whatsapp, sms or email.")
        try:
            normalized = domain.normalize_address(channel, address)
        except ValueError as exc:
            raise unprocessable({"address": [str(exc)]}) from None
        return normalized, f"{channel}:{normalized}"

    @route("GET", f"{API}/addresses/<channel>/<address>", roles=ADMINS,
           response=AddressOut(), tags=TAGS,
           summary="An address's opt-out, pacing slot and WhatsApp window (phone numbers in "
                   "any usual form, shown as E.164)")
    def get_address(self, request, principal, channel, address):
        address, key = self._address(channel, address)
        return address_out(channel, address, self.db[ADDRESSES].find_one({"_id": key}))

    @route("PUT", f"{API}/addresses/<channel>/<address>", roles=ADMINS,
           body=AddressBody(), response=AddressOut(), tags=TAGS,
           summary="Opt an address out of (or back into) a channel, for a number or email "
                   "no account speaks for. Critical messages still arrive.")
    def set_address(self, request, principal, channel, address, body):
        address, key = self._address(channel, address)
        current = self.db[ADDRESSES].find_one({"_id": key}) or {}
        if bool(current.get("opted_out")) != body["opted_out"] or not current:
            _upsert(self.db[ADDRESSES], key, {"$set": {
                "opted_out": body["opted_out"], "opted_at": db_now(),
                "opted_by": principal.sub}})
        return address_out(channel, address, self.db[ADDRESSES].find_one({"_id": key}))


def _check_person(person):
    if not re.fullmatch(PERSON, person):
        raise not_found()

"""Schemas of preferences and opt-outs (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, fields

from pamong.contracts.notify import CHANNELS

_CRITICAL = ("Critical rules (a permit decision) reach the person on every channel even when "
             "they opted out of it.")


def _strict_boolean(**kwargs):
    """true or false, nothing else ("yes", 1 or "on" are not an answer here)."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


class ChannelPreference(Schema):
    opted_out = _strict_boolean(required=True, metadata={
        "description": "true: no non-critical message on this channel"})


def _channels(required):
    return {channel: fields.Nested(ChannelPreference, required=required)
            for channel in CHANNELS}


ChannelsIn = Schema.from_dict(_channels(False), name="ChannelsIn")
ChannelsOut = Schema.from_dict(_channels(True), name="ChannelsOut")


class PreferencesBody(Schema):
    channels = fields.Nested(ChannelsIn, required=True, metadata={
        "description": "the channels to change; those left out keep their setting. "
                       + _CRITICAL})


class PreferencesOut(Schema):
    person = fields.String(required=True, metadata={
        "description": "a NIP (employee) or an account's sub (citizen)"})
    channels = fields.Nested(ChannelsOut, required=True)
    updated_at = fields.DateTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
    note = fields.String(required=True, metadata={"description": _CRITICAL})


class AddressBody(Schema):
    opted_out = _strict_boolean(required=True)


class AddressOut(Schema):
    channel = fields.String(required=True)
    address = fields.String(required=True, metadata={
        "description": "E.164 phone number or email address, as stored"})
    opted_out = fields.Boolean(required=True)
    opted_at = fields.DateTime(allow_none=True)
    opted_by = fields.String(allow_none=True, metadata={
        "description": "who set it: an admin's sub, or `inbound` (BERHENTI / MULAI)"})
    next_at = fields.DateTime(allow_none=True, metadata={
        "description": "the next free pacing slot of this address"})
    last_inbound_at = fields.DateTime(allow_none=True, metadata={
        "description": "WhatsApp: the last message from this number (free text is allowed "
                       "for 24 hours after it)"})
    person = fields.String(allow_none=True)
    note = fields.String(required=True, metadata={"description": _CRITICAL})

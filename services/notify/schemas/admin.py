"""Schemas of the ad-hoc send and the admin views (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.notify import CHANNELS
from pamong.web.pagination import PageQuery

STATES = ("created", "queued", "deferred", "sending", "sent", "delivered", "read",
          "cancelled", "temporary_failure", "permanent_failure", "technical_failure")
PRIORITIES = ("normal", "critical")
PERSON = r"^[A-Za-z0-9_.:@-]{1,128}$"  # a NIP or an account's sub
SMS_MAX = 918  # 6 concatenated segments of 153 GSM-7 characters


def _text(high, **kwargs):
    return fields.String(validate=validate.Length(min=1, max=high), **kwargs)


# -- the ad-hoc send --------------------------------------------------------------------------

class RecipientIn(Schema):
    person = fields.String(load_default=None, allow_none=True,
                           validate=validate.Regexp(PERSON), metadata={
                               "description": "a NIP (phone, email and name come from the "
                                              "directory when not given) or an account's "
                                              "sub (in-app)"})
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30),
                          metadata={"description": "any usual form; stored as E.164"})
    email = fields.Email(load_default=None, allow_none=True)
    name = _text(200, load_default=None, allow_none=True)


class WhatsAppContent(Schema):
    """Either an approved template (``template``, ``language``, ``parameters``) or free
    ``text`` (delivered only within 24 hours of the person's last message to us)."""

    template = _text(512, metadata={"description": "the approved template's name"})
    language = fields.String(validate=validate.Length(min=2, max=10))
    parameters = fields.List(_text(1024), validate=validate.Length(max=20))
    text = _text(4096)

    @validates_schema
    def _one(self, data, **kwargs):
        if ("text" in data) == ("template" in data):
            raise ValidationError("give either `template` (with `parameters`) or `text`")
        if "text" in data and ("parameters" in data or "language" in data):
            raise ValidationError("`parameters` and `language` go with a `template`")


class SmsContent(Schema):
    text = _text(SMS_MAX, required=True)


class EmailContent(Schema):
    subject = _text(300, required=True)
    text = _text(100_000, required=True)
    html = _text(200_000, metadata={"description": "optional HTML part"})


class InappContent(Schema):
    title = _text(200, required=True)
    body = _text(4000, required=True)


class ContentIn(Schema):
    whatsapp = fields.Nested(WhatsAppContent)
    sms = fields.Nested(SmsContent)
    email = fields.Nested(EmailContent)
    inapp = fields.Nested(InappContent)


class SendBody(Schema):
    recipient = fields.Nested(RecipientIn, required=True)
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), required=True,
                           validate=validate.Length(min=1, max=len(CHANNELS)), metadata={
                               "description": "in order of preference: the next is tried "
                                              "when one fails permanently"})
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES),
                             metadata={"description": "critical ignores quiet hours and "
                                                      "opt-outs"})
    template = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(r"^[a-z0-9_.-]{1,100}$"), metadata={
                                 "description": "a template of the module (GET /rules lists "
                                                "the rules and their templates); or `content`"})
    data = fields.Dict(load_default=dict, metadata={
        "description": "the template's placeholders (its sample shows them)"})
    content = fields.Nested(ContentIn, load_default=None, allow_none=True, metadata={
        "description": "the texts themselves, one per channel named, instead of a template"})

    @validates_schema
    def _shape(self, data, **kwargs):
        if len(set(data["channels"])) != len(data["channels"]):
            raise ValidationError("each channel at most once", "channels")
        if (data.get("template") is None) == (data.get("content") is None):
            raise ValidationError("give either `template` (with `data`) or `content`",
                                  "_schema")
        if data.get("content") is not None:
            missing = [c for c in data["channels"] if c not in data["content"]]
            if missing:
                raise ValidationError({c: ["no text for this channel"] for c in missing},
                                      "content")
            extra = sorted(set(data["content"]) - set(data["channels"]))
            if extra:
                raise ValidationError({c: ["not one of `channels`"] for c in extra},
                                      "content")
        elif data.get("data") and not isinstance(data["data"], dict):
            raise ValidationError("an object", "data")


# -- out ------------------------------------------------------------------------------------

class EventOut(Schema):
    id = fields.String(required=True)
    type = fields.String(allow_none=True, metadata={"description": "null: an ad-hoc send"})
    source = fields.String(allow_none=True)
    occurred_at = fields.DateTime(allow_none=True)
    opd = fields.String(allow_none=True)


class RecipientOut(Schema):
    key = fields.String(allow_none=True)
    person = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={
        "description": "masked (+62812****7890) unless the admin looked it up by this number"})
    email = fields.String(allow_none=True, metadata={
        "description": "masked unless the admin looked it up by this address"})
    timezone = fields.String(allow_none=True)


class AttemptOut(Schema):
    n = fields.Integer(required=True)
    at = fields.DateTime(allow_none=True)
    lease_until = fields.DateTime(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={
        "description": "ok, temporary, permanent, unknown, technical; null: no result "
                       "recorded (the process died mid-send: an unknown outcome)"})
    error = fields.Raw(allow_none=True)
    latency_ms = fields.Float(allow_none=True)


class StatusOut(Schema):
    status = fields.String(required=True)
    at = fields.DateTime(allow_none=True, metadata={"description": "the provider's time"})
    received_at = fields.DateTime(allow_none=True)
    error = fields.Raw(allow_none=True)


class DeliveryOut(Schema):
    channel = fields.String(required=True)
    address = fields.String(allow_none=True, metadata={"description": "masked like the "
                                                                      "recipient's"})
    state = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={
        "description": "why this channel failed or was skipped (opted_out, ...)"})
    provider_id = fields.String(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptOut), required=True)
    statuses = fields.List(fields.Nested(StatusOut), required=True)


class NotificationOut(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    rule = fields.String(required=True, metadata={"description": "`adhoc` for POST "
                                                                 "/notifications"})
    priority = fields.String(required=True)
    template = fields.String(allow_none=True)
    event = fields.Nested(EventOut, required=True)
    recipient = fields.Nested(RecipientOut, required=True)
    channels = fields.List(fields.String(), required=True)
    state = fields.String(required=True)
    channel = fields.String(allow_none=True, metadata={"description": "the channel in use"})
    reason = fields.String(allow_none=True, metadata={
        "description": "why it failed, waits or was cancelled (opted_out, no_address, "
                       "quiet_hours, paced, rate, retry, unknown_outcome, ...)"})
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True)
    round = fields.Integer(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    content = fields.Raw(allow_none=True, metadata={
        "description": "what was rendered per channel (numbers in it masked); null once "
                       "purged by retention"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(allow_none=True)
    purged_at = fields.DateTime(allow_none=True)


class NotificationItem(Schema):
    id = fields.String(required=True)
    rule = fields.String(required=True)
    priority = fields.String(required=True)
    event_type = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    recipient = fields.Nested(RecipientOut, required=True)
    channels = fields.List(fields.String(), required=True)
    state = fields.String(required=True)
    channel = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    attempts = fields.Integer(required=True, metadata={"description": "in all channels"})
    due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(allow_none=True)


class NotificationPage(Schema):
    items = fields.List(fields.Nested(NotificationItem), required=True, metadata={
        "description": "newest first"})
    next_cursor = fields.String(required=True, allow_none=True)


class NotificationQuery(PageQuery):
    person = fields.String(load_default=None, validate=validate.Regexp(PERSON), metadata={
        "description": "a NIP or an account's sub"})
    phone = fields.String(load_default=None, validate=validate.Length(max=30), metadata={
        "description": "any usual form (0812..., +62812...); answers show it unmasked"})
    email = fields.Email(load_default=None, metadata={"description": "answers show it "
                                                                     "unmasked"})
    state = fields.String(load_default=None, validate=validate.OneOf(STATES))
    event = fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                          metadata={"description": "an event type (permit.decided) or an "
                                                   "event id"})
    rule = fields.String(load_default=None, validate=validate.Length(min=1, max=100))


class LookupQuery(Schema):
    phone = fields.String(load_default=None, validate=validate.Length(max=30), metadata={
        "description": "the number the admin was given: shown unmasked when it is the "
                       "recipient's"})
    email = fields.Email(load_default=None)


# -- "why did this person not get it" -------------------------------------------------------

class AddressStateOut(Schema):
    channel = fields.String(required=True)
    address = fields.String(allow_none=True)
    opted_out = fields.Boolean(required=True)
    opted_at = fields.DateTime(allow_none=True)
    opted_by = fields.String(allow_none=True)
    next_at = fields.DateTime(allow_none=True, metadata={"description": "pacing: the next "
                                                                        "free slot"})
    last_inbound_at = fields.DateTime(allow_none=True)


class PendingOut(Schema):
    due_at = fields.DateTime(allow_none=True)
    reason = fields.String(allow_none=True)
    round = fields.Integer(allow_none=True)


class QuietHoursOut(Schema):
    window = fields.String(required=True, metadata={"description": "e.g. 21:00-06:00"})
    timezone = fields.String(required=True)
    applies = fields.Boolean(required=True, metadata={
        "description": "false for a critical rule and for in-app"})
    now_quiet_until = fields.DateTime(allow_none=True, metadata={
        "description": "the end of the quiet hours the recipient is in now, if any"})
    deferred = fields.Boolean(required=True, metadata={
        "description": "whether this notification waits (or waited) for the morning"})


class WhyOut(Schema):
    notification = fields.Nested(NotificationOut, required=True)
    rule = fields.Raw(allow_none=True, metadata={
        "description": "the rule as configured now (null for an ad-hoc send or a rule "
                       "removed since)"})
    pending = fields.Nested(PendingOut, allow_none=True, metadata={
        "description": "the timer entry it waits on, if any"})
    addresses = fields.List(fields.Nested(AddressStateOut), required=True, metadata={
        "description": "per channel of the rule: the address's opt-out and pacing"})
    preferences = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True,
                              metadata={"description": "the person's opt-out per channel"})
    quiet_hours = fields.Nested(QuietHoursOut, required=True)
    explanation = fields.List(fields.String(), required=True, metadata={
        "description": "what happened, step by step, in words"})

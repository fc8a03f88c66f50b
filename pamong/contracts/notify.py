"""Events published by ``notify``.

``notification.requested`` is internal (notify to itself): a notification is ready to be
delivered (the ad-hoc send API, a service desk reply, the pending timer when a deferred one is
due). ``sent`` / ``delivered`` / ``failed`` tell subscribers what became of a notification;
they carry the person (a NIP or an account's ``sub``) when known and the address masked,
never a full phone number or email address.
"""

from marshmallow import Schema, fields, validate

from pamong.events.contracts import contract

CHANNELS = ("whatsapp", "sms", "email", "inapp")
FAILED_STATES = ("permanent_failure", "technical_failure", "cancelled")


@contract("notification.requested", 1)
class NotificationRequested(Schema):
    """Deliver notification ``id`` (internal). ``round`` is the notification's round when it
    was requested: a stale request (the round moved on) changes nothing."""

    id = fields.String(required=True)
    round = fields.Integer(required=True)


class _Outcome(Schema):
    id = fields.String(required=True, metadata={"description": "the notification's id"})
    rule = fields.String(required=True)
    event_type = fields.String(required=True, allow_none=True, metadata={
        "description": "the type of the event that caused it (null for an ad-hoc send)"})
    channel = fields.String(required=True, allow_none=True,
                            validate=validate.OneOf(CHANNELS))
    person = fields.String(required=True, allow_none=True, metadata={
        "description": "the recipient's NIP or account sub, when known"})
    address_masked = fields.String(required=True, allow_none=True)
    at = fields.DateTime(required=True)


@contract("notification.sent", 1)
class NotificationSent(_Outcome):
    """The provider accepted the message (email and in-app: it is delivered there)."""


@contract("notification.delivered", 1)
class NotificationDelivered(_Outcome):
    """The provider reported the message delivered to the recipient's device."""


@contract("notification.failed", 1)
class NotificationFailed(_Outcome):
    """No channel reached the recipient: ``state`` says how it ended, ``reason`` why."""

    state = fields.String(required=True, validate=validate.OneOf(FAILED_STATES))
    reason = fields.String(required=True, allow_none=True)


@contract("notification.inbound_received", 1)
class InboundReceived(Schema):
    """An inbound WhatsApp message was stored (internal: the service desk answers it)."""

    id = fields.String(required=True, metadata={"description": "the inbound message's wamid"})

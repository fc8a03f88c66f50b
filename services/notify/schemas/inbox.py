"""Schemas of the in-app inbox (marshmallow; unknown fields rejected)."""

from marshmallow import Schema, fields

from pamong.web.pagination import PageQuery


class InboxQuery(PageQuery):
    unread = fields.Boolean(load_default=False, metadata={
        "description": "only the messages not read yet"})


class InboxItem(Schema):
    id = fields.String(required=True, metadata={"description": "the notification's id"})
    title = fields.String(required=True, allow_none=True)
    body = fields.String(required=True, allow_none=True)
    event_type = fields.String(allow_none=True, metadata={
        "description": "the event that caused it (null for an ad-hoc message)"})
    at = fields.DateTime(required=True, metadata={"description": "when it arrived"})
    read_at = fields.DateTime(required=True, allow_none=True)


class InboxPage(Schema):
    items = fields.List(fields.Nested(InboxItem), required=True, metadata={
        "description": "newest first: this month, then earlier months"})
    next_cursor = fields.String(required=True, allow_none=True)
    unread = fields.Integer(required=True, metadata={"description": "unread messages in all"})


class UnreadOut(Schema):
    unread = fields.Integer(required=True)


class ReadOut(Schema):
    id = fields.String(required=True)
    read_at = fields.DateTime(required=True)
    unread = fields.Integer(required=True, metadata={"description": "unread messages left"})

"""Schemas of the rules and templates views and the template preview (admin)."""

from marshmallow import Schema, fields, validate

from pamong.contracts.notify import CHANNELS


class PreviewRecipient(Schema):
    name = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=200))


class PreviewBody(Schema):
    data = fields.Dict(keys=fields.String(), load_default=None, allow_none=True, metadata={
        "description": "the event's data fields; absent: the template's sample"})
    event = fields.String(load_default=None, allow_none=True,
                          validate=validate.Length(max=100), metadata={
                              "description": "the event type whose contract reads `data` "
                                             "(default: the first rule's using the template)"})
    recipient = fields.Nested(PreviewRecipient, load_default=None, allow_none=True)


class WhatsAppPreview(Schema):
    template = fields.String(metadata={"description": "the approved template's name"})
    language = fields.String()
    parameters = fields.List(fields.String())
    text = fields.String(allow_none=True, metadata={
        "description": "the approved body with the parameters filled in (when the template "
                       "file records the body), or the free-form text"})


class SmsPreview(Schema):
    text = fields.String()
    length = fields.Integer()
    segments = fields.Integer(metadata={"description": "SMS parts it takes (GSM-7 or UCS-2)"})


class EmailPreview(Schema):
    subject = fields.String()
    html = fields.String()
    text = fields.String()


class InappPreview(Schema):
    title = fields.String()
    body = fields.String()


class ChannelsPreview(Schema):
    whatsapp = fields.Nested(WhatsAppPreview)
    sms = fields.Nested(SmsPreview)
    email = fields.Nested(EmailPreview)
    inapp = fields.Nested(InappPreview)


class PreviewOut(Schema):
    template = fields.String()
    event = fields.String(allow_none=True)
    data_source = fields.String(validate=validate.OneOf(("sample", "request")))
    rules = fields.List(fields.String(), metadata={"description": "rules using the template"})
    channels = fields.Nested(ChannelsPreview)


class RuleOut(Schema):
    id = fields.String()
    event = fields.String()
    version = fields.Integer()
    source = fields.String(metadata={"description": "the module publishing the event"})
    recipients = fields.List(fields.Raw(), metadata={
        "description": "'applicant' or {employee|supervisor_of|head_of|person: field}"})
    template = fields.String()
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)))
    priority = fields.String()
    when = fields.Dict(keys=fields.String())
    description = fields.String()


class RulesOut(Schema):
    rules_file = fields.String()
    template_dirs = fields.List(fields.String())
    rules = fields.List(fields.Nested(RuleOut))


class TemplateOut(Schema):
    name = fields.String()
    description = fields.String()
    channels = fields.List(fields.String())
    file = fields.String()
    whatsapp_template = fields.String(allow_none=True)
    rules = fields.List(fields.String())
    placeholders = fields.List(fields.String())


class TemplatesOut(Schema):
    templates = fields.List(fields.Nested(TemplateOut))

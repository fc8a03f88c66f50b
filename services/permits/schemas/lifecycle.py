"""Request schemas of the lifecycle (actions, recommendations, the site visit); the answer is
``schemas.applications.ApplicationOut``."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

_text = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class ActionBody(Schema):
    """``POST /applications/<id>/actions/<action>``: what the action needs besides the
    version (the table in ``domain.ACTIONS`` says which)."""

    version = fields.Integer(required=True, metadata={
        "description": "the version you read: an application changed since answers 409"})
    reason = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=2000), metadata={
                               "description": "required by reject and revoke"})
    missing_items = fields.List(
        fields.String(validate=validate.Length(min=1, max=300)), load_default=None,
        allow_none=True, validate=validate.Length(max=50),
        metadata={"description": "required by return: what the applicant must add or fix"})
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=2000))
    payment_reference = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(max=100), metadata={
                                          "description": "required by pay: the bank's or "
                                                         "the cashier's reference"})


class RecommendationBody(Schema):
    recommendation = fields.String(required=True,
                                   validate=validate.OneOf(("positive", "negative")))
    note = _text

    @validates_schema
    def _negative_says_why(self, data, **kwargs):
        if data["recommendation"] == "negative" and not (data.get("note") or "").strip():
            raise ValidationError("a negative recommendation says why", "note")


class SiteVisitBody(Schema):
    """Schedule the visit (``scheduled_on``), or record it done (``done_on`` + ``findings``)."""

    scheduled_on = fields.Date(load_default=None, allow_none=True)
    officer = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=200), metadata={
                                "description": "who visits (a sub; default: the caller)"})
    done_on = fields.Date(load_default=None, allow_none=True)
    findings = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(max=5000))
    version = fields.Integer(load_default=None, allow_none=True, metadata={
        "description": "the version you read (optional): a changed application answers 409"})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if data.get("done_on") is None and data.get("scheduled_on") is None:
            raise ValidationError("give scheduled_on to schedule the visit, or done_on and "
                                  "findings to record it", "scheduled_on")
        if data.get("done_on") is not None and not (data.get("findings") or "").strip():
            raise ValidationError("a recorded visit says what was found", "findings")

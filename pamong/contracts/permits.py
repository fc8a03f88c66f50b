"""Events published by ``permits``, and the RPC the notify module calls for a WhatsApp
"STATUS <number>" question.

Every event names the application (``id``), its permit type and the responsible OPD.
``registration_number`` is null until the file is registered. Events meant to reach the
applicant carry ``contact`` (phone, email, preferred channel) and nothing more of them: no
NIK, no address, no name. ``permit.status_changed`` accompanies every transition (the live
dashboard and any subscriber that mirrors states use it); the other events say what happened
in the words of the step.
"""

from marshmallow import Schema, fields, validate

from pamong.contracts.directory import UNIT_CODE
from pamong.events.contracts import contract

CHANNELS = ("whatsapp", "sms", "email")
STATES = ("draft", "submitted", "returned_incomplete", "resubmitted", "registered",
          "technical_review", "recommended", "rejected", "billed", "paid", "signed", "issued",
          "collected", "expired", "revoked")
E164 = r"^\+[1-9]\d{7,14}$"


class Contact(Schema):
    """How to reach the applicant: only in events whose purpose is to reach them."""

    phone = fields.String(required=True, allow_none=True, validate=validate.Regexp(E164))
    email = fields.String(required=True, allow_none=True, validate=validate.Length(max=254),
                          metadata={"description": "checked as an address when it was given"})
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    sub = fields.String(allow_none=True, metadata={
        "description": "the applicant's account (token sub), for their in-app inbox; null "
                       "for a file entered at the counter (optional: absent from events "
                       "before 2026-12)"})


class _Application(Schema):
    id = fields.String(required=True)
    registration_number = fields.String(required=True, allow_none=True)
    type = fields.String(required=True, metadata={"description": "permit type code, e.g. PBG"})
    type_name = fields.String(required=True)
    opd = fields.String(required=True, validate=validate.Regexp(UNIT_CODE),
                        metadata={"description": "the responsible OPD's unit code"})


class _ToApplicant(_Application):
    contact = fields.Nested(Contact, required=True)


@contract("permit.status_changed", 1)
class PermitStatusChanged(_Application):
    """Every transition of an application (``from_state`` null at creation)."""

    from_state = fields.String(required=True, allow_none=True,
                               validate=validate.OneOf(STATES))
    to_state = fields.String(required=True, validate=validate.OneOf(STATES))
    action = fields.String(required=True, allow_none=True)
    at = fields.DateTime(required=True)
    submitted_on = fields.Date(required=True, allow_none=True)
    working_days_used = fields.Integer(required=True)
    sla_days = fields.Integer(required=True)


@contract("permit.submitted", 1)
class PermitSubmitted(_ToApplicant):
    """An application was submitted (``resubmission``: again, after it was returned)."""

    resubmission = fields.Boolean(required=True)
    submitted_at = fields.DateTime(required=True)


@contract("permit.returned", 1)
class PermitReturned(_ToApplicant):
    """The front office found the file incomplete and returned it to the applicant."""

    missing_items = fields.List(fields.String(), required=True,
                                validate=validate.Length(min=1))
    note = fields.String(required=True, allow_none=True)


@contract("permit.registered", 1)
class PermitRegistered(_ToApplicant):
    """The file is complete and registered: the receipt's number and the SLA's due date."""

    registered_at = fields.DateTime(required=True)
    sla_days = fields.Integer(required=True)
    due_on = fields.Date(required=True, metadata={
        "description": "the last working day of the SLA if the clock is not paused"})


@contract("permit.recommendation_requested", 1)
class PermitRecommendationRequested(_Application):
    """A technical recommendation is asked of an OPD."""

    recommender = fields.String(required=True, metadata={"description": "the OPD asked"})
    due_on = fields.Date(required=True)


@contract("permit.recommendation_given", 1)
class PermitRecommendationGiven(_Application):
    recommender = fields.String(required=True)
    recommendation = fields.String(required=True,
                                   validate=validate.OneOf(("positive", "negative")))
    given_by = fields.String(required=True, metadata={"description": "the reviewer's sub"})


@contract("permit.decided", 1)
class PermitDecided(_ToApplicant):
    """The decision: approved (billed, or signed when free) or rejected with the reason."""

    decision = fields.String(required=True, validate=validate.OneOf(("approved", "rejected")))
    reason = fields.String(required=True, allow_none=True)


@contract("permit.billed", 1)
class PermitBilled(_ToApplicant):
    bill_number = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "rupiah"})
    due_on = fields.Date(required=True)


@contract("permit.paid", 1)
class PermitPaid(_Application):
    bill_number = fields.String(required=True)
    amount = fields.Integer(required=True)
    paid_at = fields.DateTime(required=True)


@contract("permit.issued", 1)
class PermitIssued(_ToApplicant):
    permit_number = fields.String(required=True)
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(required=True, allow_none=True)
    verification_url = fields.String(required=True)


class _Sla(_Application):
    scope = fields.String(required=True, metadata={
        "description": "'total' or the stage (pendaftaran, teknis, keputusan, penerbitan)"})
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    sla_days = fields.Integer(required=True)
    days_used = fields.Integer(required=True)
    days_left = fields.Integer(required=True)
    officer = fields.String(required=True, allow_none=True, metadata={
        "description": "the sub of the officer who registered the file, to warn them"})


@contract("permit.sla_warning", 1)
class PermitSlaWarning(_Sla):
    """Few working days are left (``PERMITS_SLA_WARNING_DAYS``); once per application."""


@contract("permit.sla_breached", 1)
class PermitSlaBreached(_Sla):
    """The SLA (total or a stage) is exceeded; once per application and scope."""


@contract("permit.expiring", 1)
class PermitExpiring(_ToApplicant):
    """An issued permit ends within ``PERMITS_EXPIRING_DAYS``; once per permit."""

    permit_number = fields.String(required=True)
    valid_until = fields.Date(required=True)
    days_left = fields.Integer(required=True)


@contract("permit.expired", 1)
class PermitExpired(_ToApplicant):
    permit_number = fields.String(required=True)
    valid_until = fields.Date(required=True)


@contract("permit.revoked", 1)
class PermitRevoked(_ToApplicant):
    permit_number = fields.String(required=True)
    reason = fields.String(required=True)


SKM_ELEMENTS = ("persyaratan", "prosedur", "waktu", "biaya", "produk", "kompetensi",
                "perilaku", "pengaduan", "sarana")


def _score():
    return fields.Integer(required=True, validate=validate.Range(min=1, max=4))


class SkmScores(Schema):
    """The 9 elements of PermenPANRB 14/2017, each rated 1-4."""

    persyaratan = _score()
    prosedur = _score()
    waktu = _score()
    biaya = _score()
    produk = _score()
    kompetensi = _score()
    perilaku = _score()
    pengaduan = _score()
    sarana = _score()


@contract("permit.rated", 1)
class PermitRated(_Application):
    """The applicant answered the satisfaction survey (SKM, 9 elements rated 1-4) after
    collecting the permit; once per application, anonymous."""

    scores = fields.Nested(SkmScores, required=True)
    rated_on = fields.Date(required=True)


# -- RPC: the WhatsApp status lookup --------------------------------------------------------

STATUS_RPC = ("permits", "public_status")  # service, method: public_status(number, phone)


class StatusStep(Schema):
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    label = fields.String(required=True)
    on = fields.Date(required=True)


class PublicStatus(Schema):
    """The reply of ``permits.public_status(registration_number, phone)``: ``found`` false
    (and nothing else) unless the number exists and the phone is the applicant's."""

    found = fields.Boolean(required=True)
    registration_number = fields.String(allow_none=True)
    type_name = fields.String(allow_none=True)
    state = fields.String(allow_none=True, validate=validate.OneOf(STATES))
    label = fields.String(allow_none=True)
    days_used = fields.Integer(allow_none=True)
    days_left = fields.Integer(allow_none=True, metadata={
        "description": "working days left of the SLA (negative: over it); null once closed"})
    timeline = fields.List(fields.Nested(StatusStep), load_default=list)

"""The satisfaction survey (SKM, PermenPANRB 14/2017) and its index per period.

- ``GET /survey`` (public): the 9 elements and the 1-4 scale, for a form.
- ``POST /applications/<id>/survey``: the owning pemohon, or a petugas of the responsible
  OPD at the counter on their behalf, rates the 9 elements once the permit was collected.
  One compare-and-set write of the application (its ``version``, and ``skm`` still unset)
  sets ``skm: {rated_on, scores, channel}`` and carries ``permit.rated``: the second answer,
  a retried one included, is a 409. The dashboard counts it from the event (exactly once);
  the scores stay on the application so ``rebuild-stats`` can count them again, and no
  endpoint shows them per application.
- ``GET /skm?period=2026|2026-03[&opd=]`` (dashboard roles): the index and grade of a year
  or a month, overall and per type, from the dashboard's ``month:`` documents (by ``_id``).
"""

from pamong.contracts.permits import SKM_ELEMENTS
from pamong.storage import by_ids, db_now
from pamong.web import Problem, route
from services.permits import access, domain
from services.permits.dashboard import DASHBOARD_ROLES, OTHER_OPD, dashboard_scope, scoped
from services.permits.schemas.public import SkmOut, SkmQuery, SurveyBody, SurveyForm, SurveyOut
from services.permits.store import APPLICATIONS, STATS, TYPES, local_today

TAGS = ["survey"]
SCALE = {"1": "Tidak baik", "2": "Kurang baik", "3": "Baik", "4": "Sangat baik"}
ATTEMPTS = 5  # compare-and-set rounds before a busy application is a 409


def survey_problem(application):
    """Why the application cannot be rated now (None: it can): after collection, once."""
    if application.get("skm"):
        return "The survey of this application was answered already; it is answered once."
    collected = any(e.get("to") == domain.COLLECTED for e in application.get("timeline") or ())
    if not collected:
        return (f"The survey opens once the permit is collected; the application is "
                f"{application['state']!r}.")
    return None


def element_figures(skm):
    skm = skm or {}
    count, sums = skm.get("count", 0), skm.get("sums") or {}
    index = domain.skm_index(sums, count)
    grade, quality = domain.skm_grade(index)
    return {"responses": count, "index": index, "grade": grade, "quality": quality,
            "elements": {e: round(sums.get(e, 0) / count, 2) if count else None
                         for e in SKM_ELEMENTS}}


def period_sum(docs):
    """The SKM parts of several month documents added up: ``(overall, {type: part})``."""
    overall, types = {"count": 0, "sums": {}}, {}
    for doc in docs:
        parts = [(overall, doc.get("skm"))] + [
            (types.setdefault(code, {"count": 0, "sums": {}}), part)
            for code, part in (doc.get("skm_types") or {}).items()]
        for target, part in parts:
            part = part or {}
            target["count"] += part.get("count", 0)
            for element, total in (part.get("sums") or {}).items():
                target["sums"][element] = target["sums"].get(element, 0) + total
    return overall, types


class SurveyEndpoints:
    """Mixed into the permits service (needs ``db``, ``outbox``, ``config``)."""

    @route("GET", f"{access.API}/survey", public=True,
           response=SurveyForm(), tags=TAGS, summary="The SKM survey's 9 elements and scale")
    def survey_form(self, request, principal):
        return {"elements": [{"key": k, "name": v} for k, v in domain.SKM_ELEMENTS.items()],
                "scale": SCALE}

    @route("POST", f"{access.API}/applications/<application_id>/survey",
           roles=("pemohon", "petugas"), body=SurveyBody(), response=SurveyOut(), status=201,
           tags=TAGS, summary="Answer the satisfaction survey (SKM) once, after collection",
           description="The owning pemohon, or a petugas of the responsible OPD at the "
                       "counter. All 9 elements, each 1-4. 409 when answered already or "
                       "before the permit was collected; 404 for an application the caller "
                       "may not see.")
    def answer_survey(self, request, principal, application_id, body):
        for _ in range(ATTEMPTS):
            application = self.db[APPLICATIONS].find_one(
                {"_id": application_id}, {"_outbox": 0, "documents": 0})
            if application is None or not access.may_see(application, principal):
                raise Problem(404, "No such application.")
            if "applicant" not in access.parties(application, principal):
                raise Problem(403, "Only the applicant, or a petugas of the responsible OPD "
                                   "at the counter, answers the survey.")
            if problem := survey_problem(application):
                raise Problem(409, problem, extensions={
                    "state": application["state"], "version": application["version"],
                    "answered": bool(application.get("skm"))})
            rated_on = local_today(self.config)
            skm = {"rated_on": rated_on.isoformat(), "scores": dict(body["scores"]),
                   "channel": "online" if principal.has_any(("pemohon",)) and
                   application.get("owner") == principal.sub else "counter",
                   "at": db_now()}
            event = self.outbox.event("permit.rated", {
                "id": application["_id"],
                "registration_number": application.get("registration_number"),
                "type": application["type"], "type_name": application["standard"]["name"],
                "opd": application["opd"], "scores": skm["scores"], "rated_on": rated_on},
                opd=application["opd"])
            result = self.outbox.update(
                APPLICATIONS, {"_id": application_id, "version": application["version"],
                               "skm": None},
                {"$set": {"skm": skm, "updated_at": skm["at"]}, "$inc": {"version": 1}},
                [event])
            if result.matched_count:
                return 201, {"id": application_id, "rated_on": rated_on,
                             "scores": skm["scores"]}
        raise Problem(409, "The application changed while the answer was saved; try again.")

    @route("GET", f"{access.API}/skm", roles=DASHBOARD_ROLES, query=SkmQuery(),
           response=SkmOut(), tags=TAGS, problems=OTHER_OPD,
           summary="The SKM index and grade of a year or month, overall and per type",
           description="From the dashboard's monthly aggregates. `admin` and staff of the "
                       "Pemda itself see the Pemda (`opd=` narrows it), other staff their "
                       "OPD.")
    def skm_of_period(self, request, principal, query):
        opd = dashboard_scope(principal, query.get("opd"))
        period = query["period"]
        months = [period] if len(period) == 7 else [f"{period}-{m:02d}" for m in range(1, 13)]
        docs = by_ids(self.db[STATS], [scoped(f"month:{m}", opd) for m in months],
                      {"_applied": 0})
        overall, types = period_sum(docs.values())
        names = {code: doc.get("name") for code, doc in
                 by_ids(self.db[TYPES], types, {"name": 1}).items()}
        return {"period": period, "opd": opd, "overall": element_figures(overall),
                "by_type": [{"type": code, "name": names.get(code), **element_figures(part)}
                            for code, part in sorted(types.items())]}

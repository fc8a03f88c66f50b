"""The SLA and expiry timers: alerts exactly once each, also after a restart, without scanning
the applications.

Every transition stores the day the SLA clock can next reach an alert (``sla.next_check``,
``domain.next_alert_day``) and lists the application in that day's ``due`` document
(``sla:<date>``); an issued permit with an end date is listed in ``expiry:<date>`` for its
expiring notice (``PERMITS_EXPIRING_DAYS`` before its last day) and for the day after it.
``<kind>:checked`` holds the last day whose document was settled. A round reads the documents
of the days after it up to *today* and their applications by ``_id``, so its cost follows
the files falling due, not all of them.

- **SLA** (``PERMITS_SLA_INTERVAL_SECONDS``, default 60): for an open file, the alerts
  ``domain.alerts_due`` finds on that day that are not in ``sla.alerts`` yet are written
  with their events (``permit.sla_warning``, ``permit.sla_breached`` per scope: total or a
  stage) in one write whose filter requires the version read and none of those keys in
  ``sla.alerts``: two replicas' timers, a round repeated after a crash or a restart send each
  alert once. The write does not move ``version`` (an officer acting on the file meanwhile is
  not turned away); a transition in between voids it and the round reads the file again. The
  file is then listed for its next check (none once every alert of its stage was sent, or
  while the clock is paused: the transition that resumes it lists it again).
- **Expiry** (``PERMITS_EXPIRY_INTERVAL_SECONDS``, default 300): ``permit.expiring`` once (the
  key ``expiring`` in ``sla.alerts``), and from the day after ``valid_until`` the action
  ``expire`` taken by the system (``permit.status_changed`` + ``permit.expired``), a
  transition like any other. A revoked permit is left alone.

The round is a function of an explicit day: the timers pass the Pemda's local today (there
is no fake clock setting); a test calls the entrypoint with a later day on the service's own
database. A day is a head document with its first ids and chunks of the rest, at most
``chunks.CHUNK`` ids each (``chunks.due_add``). Processed ids are pulled from their day's
documents (emptied chunks of days before today are deleted; a head with its count stays);
the watermark stays a day behind today, and before the first day whose file failed (logged,
retried by the next round).
"""

import logging
from datetime import date, timedelta

from pamong.events.outbox import OUTBOX
from pamong.storage import by_ids
from pamong.timers import setting_timer
from services.permits import chunks, domain
from services.permits.lifecycle import (
    CAS_TRIES,
    EXPIRING_DAYS,
    SYSTEM,
    WARNING_DAYS,
    contact,
    due_id,
    identity,
    schedule,
    setting,
)
from services.permits.store import APPLICATIONS, DUE, local_today

log = logging.getLogger(__name__)

EXPIRING = "expiring"  # the key of the expiring notice in ``sla.alerts``


def sla_event(application, key, clock):
    """``(type, data)`` of the alert ``key`` (``warning:total``, ``breach:<scope>``)."""
    kind, scope = key.split(":", 1)
    standard = application["standard"]
    if scope == "total":
        sla_days, used = standard["sla_days"], clock.used
    else:
        sla_days, used = domain.stage_sla(standard)[scope], clock.stages.get(scope, 0)
    return ("permit.sla_warning" if kind == "warning" else "permit.sla_breached", {
        **identity(application), "scope": scope, "state": application["state"],
        "sla_days": sla_days, "days_used": used, "days_left": sla_days - used,
        "officer": application.get("officer")})


def _alerts(application):
    sla = application.get("sla")
    return list((sla or {}).get("alerts") or []) if isinstance(sla, dict) else []


class SlaTimers:
    """Mixed into the permits service (with ``LifecycleEndpoints``)."""

    @setting_timer("PERMITS_SLA_INTERVAL_SECONDS", 60)
    def sla_timer(self, today=None):
        """Send the SLA alerts due up to ``today`` (default: the local today)."""
        sent = self._due_round("sla", today or local_today(self.config), self._sla_check)
        if sent:
            log.info("%d permit SLA alert(s) sent", sent)
        return sent

    @setting_timer("PERMITS_EXPIRY_INTERVAL_SECONDS", 300)
    def expiry_timer(self, today=None):
        """Send the expiring notices and expire the permits due up to ``today``."""
        done = self._due_round("expiry", today or local_today(self.config),
                               self._expiry_check)
        if done:
            log.info("%d permit expiry notice(s) or expiries", done)
        return done

    # -- the round -----------------------------------------------------------------------

    def _due_round(self, kind, today, check):
        mark = self.db[DUE].find_one({"_id": f"{kind}:checked"})
        if mark is None:  # nothing was ever listed
            return 0
        checked = date.fromisoformat(mark["day"])
        days = [checked + timedelta(days=n) for n in range(1, (today - checked).days + 1)]
        if not days:
            return 0
        heads = by_ids(self.db[DUE], [due_id(kind, day) for day in days])
        buckets = chunks.due_buckets(self.db[DUE], by_ids, heads)
        ids = sorted({i for _, listed in buckets.values() for i in listed})
        found = by_ids(self.db[APPLICATIONS], ids, {OUTBOX: 0})
        done, failed = 0, set()
        for application_id in ids:
            if application_id not in found:  # listed by a create that never landed
                continue
            try:
                done += check(found[application_id], today)
            except Exception:  # noqa: BLE001 - one file must not hold up the others
                log.exception("permit %s: the %s check failed; the next round retries it",
                              application_id, kind)
                failed.add(application_id)
        oldest_failed = None
        for bucket_id, (head_id, listed) in buckets.items():
            day = date.fromisoformat(head_id.split(":", 1)[1])
            settled = [i for i in listed if i not in failed]
            if settled:
                self.db[DUE].update_one({"_id": bucket_id}, {"$pullAll": {"ids": settled}})
            if len(settled) < len(listed):
                oldest_failed = min(oldest_failed or day, day)
            elif day < today:  # an emptied chunk (a day's head with its count stays)
                self.db[DUE].delete_one({"_id": bucket_id, "ids": []} if bucket_id != head_id
                                        else {"_id": bucket_id, "ids": [],
                                              "n": {"$exists": False}})
        watermark = min(today, oldest_failed or today) - timedelta(days=1)
        if watermark > checked:
            self.db[DUE].update_one({"_id": mark["_id"], "day": mark["day"]},
                                    {"$set": {"day": watermark.isoformat()}})
        return done

    # -- SLA -------------------------------------------------------------------------------

    def _sla_check(self, application, today):
        for _ in range(CAS_TRIES):
            if application["state"] not in domain.OPEN:
                return 0
            standard = application["standard"]
            clock, holidays = self._lc_clock(application, today)
            due = domain.alerts_due(domain.timeline_days(application["timeline"]), today,
                                    standard["sla_days"], domain.stage_sla(standard),
                                    setting(self.config, WARNING_DAYS), holidays)
            sent = _alerts(application)
            new = [key for key in due if key not in sent]
            next_check = self._lc_next_check(application, application["timeline"], today,
                                             holidays, sent + new)
            if next_check:
                schedule(self.db, "sla", next_check, [application["_id"]])
            check = next_check.isoformat() if next_check else None
            where = {"_id": application["_id"], "version": application["version"]}
            if isinstance(application.get("sla"), dict):
                update = {"$set": {"sla.next_check": check}}
                if new:
                    where["sla.alerts"] = {"$nin": new}
                    update["$push"] = {"sla.alerts": {"$each": new}}
            else:  # no SLA record yet: the write requires there still is none
                where["sla"] = application.get("sla")
                update = {"$set": {"sla": {"alerts": new, "next_check": check}}}
            events = [self.outbox.event(event_type, data, opd=application["opd"])
                      for event_type, data in (sla_event(application, key, clock)
                                               for key in new)]
            if self.outbox.update(APPLICATIONS, where, update, events).matched_count:
                return len(new)
            application = self.db[APPLICATIONS].find_one({"_id": application["_id"]},
                                                          {OUTBOX: 0})
            if application is None:
                return 0
        raise RuntimeError(f"application {application['_id']} kept changing")

    # -- expiry ----------------------------------------------------------------------------

    def _expiry_check(self, application, today):
        for _ in range(CAS_TRIES):
            permit = application.get("permit") or {}
            if application["state"] not in domain.HELD or not permit.get("valid_until"):
                return 0
            until = date.fromisoformat(permit["valid_until"])
            if today > until:
                if self._lc_take(application, "expire", SYSTEM,
                                 {"version": application["version"]}) is not None:
                    return 1
            elif today < until - timedelta(days=setting(self.config, EXPIRING_DAYS)) \
                    or EXPIRING in _alerts(application):
                return 0
            else:
                event = self.outbox.event("permit.expiring", {
                    **identity(application), "contact": contact(application),
                    "permit_number": permit["number"], "valid_until": until,
                    "days_left": (until - today).days}, opd=application["opd"])
                written = self.outbox.update(
                    APPLICATIONS, {"_id": application["_id"],
                                   "version": application["version"],
                                   "sla.alerts": {"$nin": [EXPIRING]}},
                    {"$push": {"sla.alerts": EXPIRING}}, [event])
                if written.matched_count:
                    return 1
            application = self.db[APPLICATIONS].find_one({"_id": application["_id"]},
                                                          {OUTBOX: 0})
            if application is None:
                return 0
        raise RuntimeError(f"application {application['_id']} kept changing")

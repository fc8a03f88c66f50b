"""Scenario ``permits`` (issue 14, "Performance"): the dashboard against a raw pymongo
computation of the same numbers with 100,000 applications stored, and submissions through
the HTTP API at 100 concurrent clients with 1,000 and with 100,000 applications stored.

Each size has a database of its own, served by its own ``pamong serve permits`` process
(timers at their defaults), with the bench Pemda in its directory replica and the four demo
permit types of ``services/permits/seed.py`` published through ``PUT /types`` (all of one
OPD, the licensing office, as a Pemda's DPMPTSP has them: its work lists are the longest).

The stored applications are **written directly in the service's document shape**, as a
year of the service would have left them: each one walks the lifecycle of its type from a
submission day in the past 400 days (returned and resubmitted now and then, rejected now and
then, billed and paid where the type has a fee, collected, expired once past its validity,
a few revoked), step by step in working days with the calendar's holidays, stopping where
today falls; with its timeline, numbers, recommendations, visit, bill, permit and SLA alerts
(``domain.alerts_due``, what the SLA timer would have sent); some rated (SKM). Beside them,
what the service keeps for them: the owners' and the OPD's lists (``owners``, ``queues``,
the shape the list keeper writes), the registration and verification lookups, the counters,
the SLA and expiry due lists, and the dashboard's ``stats`` recomputed by the module's own
``dashboard.rebuild`` (what ``pamong permits rebuild-stats`` runs). Nothing is left out that
the measured requests read or write, so the large store is not cheaper than a real one.

Rows, one after the other in the same process run, against the same broker and database:

(a) dashboard    ``GET /dashboard`` as the Pemda's admin, R requests one after the other
                 (after a warm-up): p50, p99;
(b) raw          the same figures computed straight from the applications with pymongo:
                 states by OPD and type, today's and this month's actions, the working days
                 used at each decision (median, p90, within the SLA), SLA alerts, SKM index,
                 permits expiring in 30 days. On the local database an aggregation pipeline
                 is a full scan in the server whose ``$unwind``/``$group`` do not follow
                 nested paths, and no accumulator counts working days, so the cheapest
                 correct computation is **one** pass over the applications with a
                 projection of the fields needed, counted in Python (``domain.clock`` for the
                 working days): that is the baseline (one scan, not one per figure); K runs
                 (3, or 1 above 20,000 stored: a run reads every application), p50. The
                 figures are compared with the dashboard's (``same``): both compute the same
                 numbers, or the comparison says where they differ;
(c) submissions  S citizens (their own ``pemohon`` tokens) each ``POST /applications`` with
                 an Idempotency-Key (201) by 100 concurrent clients, then each submits it
                 (``POST /applications/<id>/actions/submit``; the TDUP type, whose two
                 mandatory PDFs are uploaded in between, not timed) by 100 clients: per
                 second, p50, p99, errors; with 1,000 and with 100,000 stored, both
                 services up at once and S/2 at a time in four rounds: small, large, large,
                 small (a slow spell of the shared machine weighs on both sizes alike).
                 Afterwards each dashboard counts its S submissions (the service's own
                 handlers kept up).

Targets (issue 14): (a) p50 <= 0.5 x (b) p50 with the figures the same; (c) per second with
100,000 stored >= 0.8 x per second with 1,000 stored, both rows, zero errors.
"""

import random
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bench.attendance import PEMDA, TZ, figures, fill_replica, fire, pemda_units, stop
from bench.common import machine_line, run_scenario
from pamong.auth import mint_token
from pamong.cache import TimedCache
from pamong.storage import by_ids, client_for, database_name
from pamong.testing import EventRecorder, broker, drop_databases, free_port, serve_process
from services.permits import chunks, dashboard, domain
from services.permits.access import API
from services.permits.applications import QUEUED
from services.permits.lifecycle import all_alerts_sent
from services.permits.seed import applicant as demo_applicant
from services.permits.seed import permit_types, sample_pdf
from services.permits.store import (
    APPLICATIONS,
    CODES,
    COUNTERS,
    DUE,
    OWNERS,
    QUEUES,
    REGISTRATIONS,
    TYPES,
    holidays_of,
)

TARGETS = {  # key: (what, bound, lower is better)
    "dashboard_over_raw": ("GET /dashboard p50 / raw pymongo computation p50, 100,000 stored",
                           0.5, True),
    "create_large_over_small": ("POST /applications per second, 100,000 / 1,000 stored",
                                0.8, False),
    "submit_large_over_small": ("POST .../actions/submit per second, 100,000 / 1,000 stored",
                                0.8, False),
}
UNITS = {"ptsp": f"{PEMDA}.01", "health": f"{PEMDA}.02", "works": f"{PEMDA}.03",
         "district": f"{PEMDA}.04"}
OPD = UNITS["ptsp"]
SHARES = {"PBG": 0.25, "SIP": 0.2, "REKLAME": 0.2, "TDUP": 0.35}
DAYS_BACK = 400
WARN_DAYS = 2  # the service's default PERMITS_SLA_WARNING_DAYS
EXPIRING_DAYS = 30  # and PERMITS_EXPIRING_DAYS
DASHBOARD_REQUESTS = 40
CITIZENS = 700_000  # most citizens apply once or twice
SUBMIT_TYPE = "TDUP"
BATCH = 2000
FIRST = ("Siti", "Agus", "Dewi", "Budi", "Rina", "Bambang", "Sri", "Hendra", "Lilis", "Fajar",
         "Nur", "Yusuf", "Wahyu", "Ratna", "Joko", "Indah", "Made", "Putu", "Eko", "Ani")
LAST = ("Santoso", "Wahyuni", "Lestari", "Setiawan", "Hariyanto", "Kurniawan", "Suryani",
        "Nugroho", "Rahmawati", "Prasetyo", "Hidayat", "Saputra", "Utami", "Purnomo")


# -- the stored applications ----------------------------------------------------------------

class Store:
    """Generates N applications of the published ``standards`` and what the service keeps
    for them (lists, lookups, counters, due lists)."""

    def __init__(self, standards, today, holidays, zone, seed):
        self.standards, self.today, self.holidays, self.zone = standards, today, holidays, zone
        self.rng = random.Random(seed)
        self.counters = {}
        self.due = {}
        self.registrations, self.codes = [], []

    # numbers, as the lifecycle hands them out
    def next(self, counter):
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]

    def at(self, day, minute):
        local = datetime(day.year, day.month, day.day, 8, 0, tzinfo=self.zone) + timedelta(
            minutes=minute)
        return local.astimezone(UTC)

    def working(self, day, n):
        return domain.add_working_days(day, n, self.holidays)

    def person(self, i):
        rng = self.rng
        female = rng.random() < 0.5
        birth = date(rng.randint(1960, 2003), rng.randint(1, 12), rng.randint(1, 28))
        nik = (f"3510{rng.randint(1, 25):02d}{birth.day + (40 if female else 0):02d}"
               f"{birth:%m%y}{i % 9999 + 1:04d}")
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        return {"nik": nik, "name": name, "birth_date": birth.isoformat(),
                "phone": f"+62812{rng.randrange(10**8):08d}",
                "email": None if rng.random() < 0.4 else f"{name.split()[0].lower()}{i}@contoh.id",
                "address": {"street": f"Jl. Bench No. {i % 200 + 1}", "village": "Genteng",
                            "district": "Genteng", "regency": "Kabupaten Banyuwangi",
                            "province": "Jawa Timur", "region_code": "35.10.19.2001"},
                "channel": "whatsapp" if rng.random() < 0.8 else "email"}

    def path(self, standard):
        """The actions this file will take if nothing stops it, with the working days each
        one comes after the previous."""
        rng, stages = self.rng, {s["key"]: s["sla_days"] for s in standard["stages"]}

        def around(sla):  # mostly within the stage's SLA, now and then over it
            return rng.randint(0, sla) if rng.random() < 0.85 else sla + rng.randint(1, 4)

        steps = [("submit", 0)]
        if rng.random() < 0.12:
            steps += [("return", rng.randint(0, 1)), ("resubmit", rng.randint(1, 6))]
        steps += [("register", around(stages["pendaftaran"])),
                  ("start_review", rng.randint(0, 1))]
        if rng.random() < 0.06:
            return [*steps, ("reject", around(stages["teknis"]))]
        steps.append(("recommend", around(stages["teknis"])))
        if standard["fee"]:
            steps += [("bill", around(stages["keputusan"])), ("pay", rng.randint(1, 10)),
                      ("sign", around(stages["penerbitan"]))]
        else:
            steps.append(("sign", around(stages["keputusan"])))
        steps += [("issue", rng.randint(0, 1)), ("collect", rng.randint(0, 5))]
        if rng.random() < 0.01:
            steps.append(("revoke", rng.randint(10, 120)))
        return steps

    def application(self, i):
        rng = self.rng
        code = rng.choices(list(SHARES), weights=list(SHARES.values()))[0]
        standard = self.standards[code]
        app_id = f"bench{i:07d}"
        counter = rng.random() < 0.2
        owner = None if counter else f"bench-warga-{rng.randrange(CITIZENS)}"
        by_applicant = ({"sub": "bench-petugas", "role": "petugas"} if counter
                        else {"sub": owner, "role": "pemohon"})
        roles = {"applicant": by_applicant,
                 "officer": {"sub": "bench-petugas", "role": "petugas"},
                 "reviewer": {"sub": "bench-verifikator", "role": "verifikator"},
                 "head": {"sub": "bench-kepala", "role": "pimpinan"},
                 "system": {"sub": "system", "role": "service"}}
        day = self.today - timedelta(days=rng.randrange(DAYS_BACK))
        created = self.at(day, rng.randrange(480))
        business = ({"name": f"Usaha Bench {i}", "nib": f"91{i:011d}"}
                    if standard["needs_business"] else None)
        app = {
            "_id": app_id, "version": 1, "state": domain.DRAFT, "owner": owner,
            "entered_by": by_applicant, "opd": standard["opd"], "type": code,
            "standard": standard, "applicant": self.person(i), "business": business,
            "nik_warnings": [], "documents": [
                {"requirement": r["key"], "file_id": f"{app_id}{n:02d}", "name":
                 f"{r['key']}.pdf", "content_type": "application/pdf", "size": 180_000,
                 "sha256": f"{i:064x}", "uploaded_at": created}
                for n, r in enumerate(standard["requirements"]) if r["mandatory"]],
            "timeline": [{"action": "create", "from": None, "to": domain.DRAFT, "at": created,
                          "on": day.isoformat(), "by": by_applicant, "note": None}],
            "created_at": created, "updated_at": created, "submitted_at": None,
            "registration_number": None, "officer": None, "missing_items": None,
            "reason": None, "recommendations": [], "site_visit": None, "bill": None,
            "permit": None, "sla": {"alerts": [], "next_check": None}, "skm": None,
            "changes": [], "idempotency": None,
        }
        if rng.random() < 0.03:  # a draft never submitted
            return self.keep(app)
        minute = 0
        for action, after in self.path(standard):
            day = self.working(day, after) if after else day
            if day > self.today:
                break
            minute += 1
            self.take(app, action, day, self.at(day, minute), roles)
        if app["state"] in domain.HELD and (app["permit"] or {}).get("valid_until"):
            until = date.fromisoformat(app["permit"]["valid_until"])
            if until < self.today:
                day = until + timedelta(days=1)
                self.take(app, "expire", day, self.at(day, 0), roles)
        return self.keep(app)

    def take(self, app, action, day, at, roles):
        spec = domain.ACTIONS[action]
        standard, state = app["standard"], app["state"]
        entry = {"action": action, "from": state, "to": spec.target, "at": at,
                 "on": day.isoformat(), "by": roles[spec.parties[0]], "note": None,
                 "version": app["version"] + 1}
        app["timeline"].append(entry)
        app["state"], app["version"], app["updated_at"] = spec.target, app["version"] + 1, at
        if action == "submit":
            app["submitted_at"] = at
        elif action == "return":
            app["missing_items"] = ["Dokumen kurang jelas"]
        elif action == "resubmit":
            app["missing_items"] = None
        elif action == "register":
            number = domain.registration_number(day.year, self.next(f"registration:{day.year}"))
            app.update(registration_number=number, officer=roles["officer"]["sub"],
                       registered_at=at)
            self.registrations.append({"_id": number, "application": app["_id"], "at": at})
        elif action == "start_review":
            due_on = self.working(day, {s["key"]: s["sla_days"]
                                        for s in standard["stages"]}["teknis"]).isoformat()
            app["recommendations"] = [{"opd": opd, "status": "requested", "note": None,
                                       "by": None, "at": None, "due_on": due_on}
                                      for opd in standard["recommenders"]]
        elif action in ("recommend", "reject"):
            app["recommendations"] = [{**r, "status": "positive" if action == "recommend"
                                       else self.rng.choice(("positive", "negative")),
                                       "note": "Sesuai.", "by": "bench-rekomendasi", "at": at}
                                      for r in app["recommendations"]]
            if standard["site_visit"]:
                app["site_visit"] = {"scheduled_on": day.isoformat(), "officer": "bench",
                                     "done_on": day.isoformat(), "findings": "Sesuai."}
            if action == "reject":
                app["reason"] = "Tidak memenuhi ketentuan teknis."
        elif action == "bill":
            number = domain.bill_number(day.year, self.next(f"bill:{day.year}"))
            app["bill"] = {"number": number, "amount": standard["fee"],
                           "issued_on": day.isoformat(),
                           "due_on": (day + timedelta(days=30)).isoformat(),
                           "paid_at": None, "payment_reference": None}
        elif action == "pay":
            app["bill"].update(paid_at=at, payment_reference=f"BANK-{app['_id']}")
        elif action == "sign":
            app.update(signed_at=at, signed_by=roles["head"]["sub"])
        elif action == "issue":
            n = self.next(f"permit:{app['type']}:{day.year}")
            valid_from, valid_until = domain.validity(day, standard["validity_months"])
            code = f"B{int(app['_id'][5:]):011d}"  # 12 characters, distinct
            app["permit"] = {"number": domain.permit_number(app["type"], app["opd"], day.year,
                                                            n),
                             "valid_from": valid_from.isoformat(),
                             "valid_until": valid_until.isoformat() if valid_until else None,
                             "code": code, "issued_at": at}
            self.codes.append({"_id": code, "application": app["_id"], "at": at})
        elif action == "collect":
            app["collected_at"] = at
            if self.rng.random() < 0.3:
                scores = {e: self.rng.choices((1, 2, 3, 4), (1, 4, 12, 8))[0]
                          for e in domain.SKM_ELEMENTS}
                app["skm"] = {"rated_on": day.isoformat(), "scores": scores,
                              "channel": "web"}
        elif action == "revoke":
            app["reason"] = "Izin disalahgunakan."
            app["revoked"] = {"at": at, "by": roles["head"]["sub"], "reason": app["reason"]}

    def keep(self, app):
        """The SLA alerts the timer would have sent, the next check and the due days (the
        owners' and work lists: ``chunks.lists_layout`` in ``store``)."""
        standard = app["standard"]
        timeline = domain.timeline_days(app["timeline"])
        stage_sla = domain.stage_sla(standard)
        if app["state"] != domain.DRAFT:
            app["sla"]["alerts"] = domain.alerts_due(timeline, self.today,
                                                     standard["sla_days"], stage_sla,
                                                     WARN_DAYS, self.holidays)
            check = None if all_alerts_sent(app, app["sla"]["alerts"]) else \
                domain.next_alert_day(timeline, self.today, standard["sla_days"], stage_sla,
                                      WARN_DAYS, self.holidays)
            if check is not None:
                app["sla"]["next_check"] = check.isoformat()
                self.due.setdefault(f"sla:{check.isoformat()}", []).append(app["_id"])
        permit = app.get("permit") or {}
        if app["state"] in domain.HELD and permit.get("valid_until"):
            until = date.fromisoformat(permit["valid_until"])
            notice = until - timedelta(days=EXPIRING_DAYS)
            if notice < self.today:  # the expiry timer sent the notice on its day
                app["sla"]["alerts"].append("expiring")
            else:
                self.due.setdefault(f"expiry:{notice.isoformat()}", []).append(app["_id"])
            self.due.setdefault(f"expiry:{(until + timedelta(days=1)).isoformat()}",
                                []).append(app["_id"])
        return app


def store(db, standards, count, today, holidays, zone, config, seed):
    """Write ``count`` applications and what the service keeps for them; seconds taken and
    the states' counts."""
    started = time.perf_counter()
    gen = Store(standards, today, holidays, zone, seed)
    states = {}
    batch, listed = [], []
    for i in range(count):
        app = gen.application(i)
        states[app["state"]] = states.get(app["state"], 0) + 1
        batch.append(app)
        listed.append({"_id": app["_id"], "owner": app["owner"], "state": app["state"],
                       "opd": app["opd"], "timeline": [{"to": e["to"], "on": e["on"],
                                                        "at": e["at"]} for e in app["timeline"]]})
        if len(batch) == BATCH:
            db[APPLICATIONS].insert_many(batch, ordered=False)
            batch = []
    if batch:
        db[APPLICATIONS].insert_many(batch, ordered=False)
    for collection, docs in ((REGISTRATIONS, gen.registrations), (CODES, gen.codes)):
        for start in range(0, len(docs), BATCH):
            db[collection].insert_many(docs[start:start + BATCH], ordered=False)
    owners, queues = chunks.lists_layout(listed, QUEUED)  # the service's shape (chunks.py)
    lists = (owners, OWNERS), (queues, QUEUES), (chunks.due_layout(gen.due), DUE)
    for docs, collection in lists:
        for start in range(0, len(docs), BATCH):
            db[collection].insert_many(docs[start:start + BATCH], ordered=False)
    yesterday = (today - timedelta(days=1)).isoformat()
    db[DUE].insert_many([{"_id": "sla:checked", "day": yesterday},
                         {"_id": "expiry:checked", "day": yesterday}])
    db[COUNTERS].insert_many([{"_id": k, "next": n} for k, n in gen.counters.items()])
    written = dashboard.rebuild(db, config, TimedCache(0))
    return {"count": count, "seconds": round(time.perf_counter() - started, 1),
            "stats_docs": written, "states": dict(sorted(states.items())),
            "queue_ids_max": max((len(v.get("ids", ())) for v in queues), default=0)}


# -- the raw computation ----------------------------------------------------------------------

RAW_FIELDS = {"state": 1, "opd": 1, "type": 1, "sla.alerts": 1, "skm.scores": 1,
              "permit.valid_until": 1, "timeline.action": 1, "timeline.to": 1,
              "timeline.on": 1, "standard.sla_days": 1}


def raw_figures(db, today, holidays):
    """The dashboard's numbers (the whole Pemda) straight from the applications: one pass
    over them with pymongo (a projection of the fields the figures need), computed in
    Python. On the local database every aggregation pipeline is a full scan in the server
    and its ``$unwind``/``$group`` do not follow nested paths (``sla.alerts``,
    ``skm.scores.*`` come back empty), and no accumulator counts working days: one read of
    each application is the cheapest correct computation there is, so it is the baseline."""
    month, on_today = f"{today:%Y-%m}", today.isoformat()
    soon = (today + timedelta(days=dashboard.EXPIRING_DAYS)).isoformat()
    by_status, by_type, by_opd, today_actions, month_actions = {}, {}, {}, {}, {}
    sla = {"warnings": 0, "breaches": 0, "stage_breaches": {}}
    skm_count, skm_sums, expiring, days, decided, within = 0, {}, 0, {}, 0, 0

    def add(counts, key, n=1):
        counts[key] = counts.get(key, 0) + n

    for app in db[APPLICATIONS].find({}, RAW_FIELDS).batch_size(1000):
        state = app["state"]
        add(by_status, state)
        add(by_type.setdefault(app["type"], {}), state)
        add(by_opd.setdefault(app["opd"], {}), state)
        steps = []
        for entry in app["timeline"]:
            action = entry.get("action") or dashboard.CREATE
            if entry["on"] >= f"{month}-01":
                add(month_actions, action)
                if entry["on"] == on_today:
                    add(today_actions, action)
            steps.append({"to": entry["to"], "on": date.fromisoformat(entry["on"])})
            if entry["to"] in dashboard.DECIDED:  # the working days used at the decision
                used = domain.clock(steps, steps[-1]["on"], 0, None, holidays).used
                add(days, f"d{used}")
                decided += 1
                within += used <= app["standard"]["sla_days"]
        for alert in (app.get("sla") or {}).get("alerts") or ():
            kind, _, scope = alert.partition(":")
            if kind == "warning":
                sla["warnings"] += 1
            elif kind == "breach" and scope == "total":
                sla["breaches"] += 1
            elif kind == "breach":
                add(sla["stage_breaches"], scope)
        scores = (app.get("skm") or {}).get("scores")
        if scores:
            skm_count += 1
            for element, score in scores.items():
                add(skm_sums, element, score)
        until = (app.get("permit") or {}).get("valid_until")
        if until and on_today <= until <= soon and state != domain.REVOKED:
            expiring += 1
    return {"by_status": by_status, "by_type": by_type, "by_opd": by_opd,
            "today": today_actions, "month": month_actions, "sla": sla,
            "processing": {"decided": decided, "within_sla": within,
                           "median_days": dashboard.percentile(days, 0.5),
                           "p90_days": dashboard.percentile(days, 0.9)},
            "skm": {"responses": skm_count, "index": domain.skm_index(skm_sums, skm_count)},
            "expiring": expiring}


def dashboard_numbers(d):
    """The dashboard's answer in the shape of ``raw_figures``."""
    return {"by_status": d["by_status"],
            "by_type": {t["type"]: t["states"] for t in d["by_type"] if t["states"]},
            "by_opd": {o["opd"]: o["states"] for o in d["by_opd"] if o["states"]},
            "today": d["today"]["actions"], "month": d["month"]["actions"],
            "sla": {"warnings": d["sla"]["warnings"], "breaches": d["sla"]["breaches"],
                    "stage_breaches": d["sla"]["stage_breaches"]},
            "processing": {k: d["processing"][k] for k in ("decided", "within_sla",
                                                           "median_days", "p90_days")},
            "skm": {"responses": d["skm"]["all_time"]["responses"],
                    "index": d["skm"]["all_time"]["index"]},
            "expiring": d["expiring"]["count"]}


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{path}.{key}")
        return out
    return [] if a == b else [f"{path}: dashboard {a!r}, raw {b!r}"]


# -- the rows -------------------------------------------------------------------------------

def raw_runs(count):
    return 3 if count <= 20_000 else 1


def publish_types(url, config):
    admin = mint_token(config, "bench-admin", ["admin"], opd=PEMDA)
    calls = [("PUT", f"{API}/types/{code}", {"token": admin, "json": body})
             for code, body in permit_types(UNITS).items()]
    row, _ = fire(url, config, calls, 1, 201)
    if row["errors"]:
        raise RuntimeError(f"publishing the permit types failed: {row['first_error']}")


def submission_rows(url, config, db, n, clients, tag):
    """``(create row, submit row)``: N citizens' applications created, then submitted."""
    tokens = [mint_token(config, f"bench-new-{tag}-{i}", ["pemohon"],
                         name=demo_applicant("sri")["name"], nik=None) for i in range(n)]
    body = {"type": SUBMIT_TYPE, "applicant": demo_applicant("sri"),
            "business": {"name": "Homestay Bench", "nib": "9120301122334"}}
    creates = [("POST", f"{API}/applications",
                {"token": t, "json": body, "headers": {"Idempotency-Key": f"bench-{tag}-{i:06d}"}})
               for i, t in enumerate(tokens)]
    warm = [("POST", f"{API}/applications",
             {"token": t, "json": body, "headers": {"Idempotency-Key": f"warm-{tag}-{i:06d}"}})
            for i, t in enumerate(tokens[:50])]
    fire(url, config, warm, clients, 201)
    create, answers = fire(url, config, creates, clients, 201)
    ids = [a["id"] if a else None for a in answers]
    pdf = sample_pdf("Dokumen bench", "Bench")
    uploads = [("POST", f"{API}/applications/{i}/documents/{key}",
                {"token": t, "data": pdf, "headers": {"Content-Type": "application/pdf"}})
               for i, t in zip(ids, tokens, strict=True) if i for key in ("ktp", "nib")]
    fire(url, config, uploads, clients, 201)
    versions = {i: a["version"] for i, a in by_ids(db[APPLICATIONS], [i for i in ids if i],
                                                    {"version": 1}).items()}
    submits = [("POST", f"{API}/applications/{i}/actions/submit",
                {"token": t, "json": {"version": versions.get(i, 0)}})
               for i, t in zip(ids, tokens, strict=True) if i]
    submit, _ = fire(url, config, submits, clients, 200)
    return create, submit


def wait_counted(url, config, expected, seconds=300):
    """Until the dashboard counts ``expected`` submitted applications (the handlers kept
    up): ``{"counted", "seconds"}``."""
    admin = mint_token(config, "bench-admin", ["admin"], opd=PEMDA)
    started = time.perf_counter()
    counted = None
    while time.perf_counter() - started < seconds:
        _, answers = fire(url, config, [("GET", f"{API}/dashboard", {"token": admin})], 1, 200)
        counted = (answers[0] or {}).get("by_status", {}).get(domain.SUBMITTED, 0)
        if counted >= expected:
            break
        time.sleep(1)
    return {"counted": counted, "expected": expected,
            "seconds": round(time.perf_counter() - started, 1)}


# the submission rounds, small and large alternating (a b b a): a slow spell of the shared
# machine (another process, a disk flush) falls on both sizes alike instead of on one row
ROUNDS = ("small", "large", "large", "small")


def open_size(config, size, count, measure_dashboard):
    """A database of ``count`` stored applications served by its own process on a vhost of
    its own (both sizes run at once: on one vhost each process would consume the other's
    events): ``(state, rows)``; the dashboard rows (a), (b) are measured here when asked."""
    vhost = broker.create_vhost(f"pamong-bench-{size}")
    sized = {**config, "MONGO_DB_PREFIX": f"{config['MONGO_DB_PREFIX']}{size}_",
             "AMQP_URI": broker.amqp_uri_for(vhost)}
    db = client_for(sized["MONGO_URI"])[database_name(sized, "permits")]
    fill_replica(db, pemda_units(), [])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = {"config": sized, "db": db, "url": url, "vhost": vhost,
             "processes": [serve_process(sized, "permits", port,
                                         DIRECTORY_SNAPSHOT_ON_EMPTY="false")]}
    rows = {}
    publish_types(url, sized)
    zone = ZoneInfo(TZ)
    today = datetime.now(zone).date()
    holidays = holidays_of(db, TimedCache(0), range(today.year - 2, today.year + 3))
    standards = {t["_id"]: {**t, "code": t["_id"]} for t in db[TYPES].find({})}
    rows["store"] = store(db, standards, count, today, holidays, zone, sized, size)
    state["before"] = rows["store"]["states"].get(domain.SUBMITTED, 0)
    print(f"  {f'store {count:,}':<22} {rows['store']}", flush=True)
    if measure_dashboard:
        admin = mint_token(config, "bench-admin", ["admin"], opd=PEMDA)
        calls = [("GET", f"{API}/dashboard", {"token": admin})] * DASHBOARD_REQUESTS
        fire(url, sized, calls[:5], 1, 200)  # warm up
        rows["dashboard"], answers = fire(url, sized, calls, 1, 200)
        print(f"  {'(a) dashboard':<22} {rows['dashboard']}", flush=True)
        seconds, raw = [], None
        for _ in range(raw_runs(count)):
            started = time.perf_counter()
            raw = raw_figures(db, today, holidays)
            seconds.append(time.perf_counter() - started)
        rows["raw"] = figures(seconds, sum(seconds), [])
        diff = differences(dashboard_numbers(answers[-1]), raw)
        rows["raw"]["same"] = not diff
        rows["raw"]["differences"] = diff[:10]
        rows["raw"]["figures"] = {k: raw[k] for k in ("by_status", "sla", "processing",
                                                      "skm", "expiring")}
        print(f"  {'(b) raw':<22} {rows['raw']}", flush=True)
    return state, rows


def merged(parts):
    """One row from the rounds of a size: requests and seconds added up (so per second is
    over all of them), p50 the mean of the rounds', p99 the worst."""
    requests = sum(p["requests"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    errors = [p["first_error"] for p in parts if p["first_error"]]
    return {"requests": requests, "seconds": round(seconds, 3),
            "per_s": round(requests / seconds, 1) if seconds else 0.0,
            "p50_ms": round(sum(p["p50_ms"] for p in parts) / len(parts), 1),
            "p99_ms": max(p["p99_ms"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "first_error": errors[0] if errors else None,
            "rounds": [p["per_s"] for p in parts]}


def run_rows(config, large, small, submissions, clients):
    states, rows, recorders = {}, {}, []
    try:
        for size, count in (("small", small), ("large", large)):
            states[size], rows[size] = open_size(config, size, count, size == "large")
            # a subscriber, as notify is: nothing parked
            recorders.append(EventRecorder(states[size]["config"], "permits"))
        per_round = submissions // 2
        parts = {size: {"create": [], "submit": []} for size in states}
        for number, size in enumerate(ROUNDS):
            state = states[size]
            create, submit = submission_rows(state["url"], state["config"], state["db"],
                                             per_round, clients, f"{size}{number}")
            parts[size]["create"].append(create)
            parts[size]["submit"].append(submit)
            print(f"  {f'(c) round {number + 1} {size}':<22} create {create['per_s']}/s, "
                  f"submit {submit['per_s']}/s", flush=True)
        for size, state in states.items():
            rows[size]["create"] = merged(parts[size]["create"])
            rows[size]["submit"] = merged(parts[size]["submit"])
            print(f"  {f'(c) create {size}':<22} {rows[size]['create']}", flush=True)
            print(f"  {f'(c) submit {size}':<22} {rows[size]['submit']}", flush=True)
            rows[size]["counted"] = wait_counted(state["url"], state["config"],
                                                 state["before"] + 2 * per_round)
            print(f"  {'':<22} {rows[size]['counted']}", flush=True)
    finally:
        for recorder in recorders:
            recorder.close()
        for state in states.values():
            stop(state["processes"])
            drop_databases(state["config"])
            broker.delete_vhost(state["vhost"])
    return rows


# -- verdicts and the report ----------------------------------------------------------------

def verdicts(rows):
    small, large = rows["small"], rows["large"]
    out = {}
    dash, raw = large["dashboard"], large["raw"]
    value = dash["p50_ms"] / raw["p50_ms"] if raw["p50_ms"] else 0.0
    what, bound, _ = TARGETS["dashboard_over_raw"]
    what = what.replace("100,000", f"{large['store']['count']:,}")
    out["dashboard_over_raw"] = {
        "what": what, "target": bound, "value": round(value, 4), "same": raw["same"],
        "verdict": "PASS" if value <= bound and raw["same"] and not dash["errors"]
        else "FAIL"}
    for row in ("create", "submit"):
        what, bound, _ = TARGETS[f"{row}_large_over_small"]
        what = what.replace("100,000", f"{large['store']['count']:,}").replace(
            "1,000", f"{small['store']['count']:,}")
        value = large[row]["per_s"] / small[row]["per_s"] if small[row]["per_s"] else 0.0
        ok = value >= bound and not small[row]["errors"] and not large[row]["errors"] \
            and small["counted"]["counted"] >= small["counted"]["expected"] \
            and large["counted"]["counted"] >= large["counted"]["expected"]
        out[f"{row}_large_over_small"] = {"what": what, "target": bound,
                                          "value": round(value, 3),
                                          "verdict": "PASS" if ok else "FAIL"}
    return out


def table(rows):
    large = rows["large"]
    lines = ["| row | stored | requests | per s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    r = large["dashboard"]
    lines.append(f"| (a) `GET /dashboard` | {large['store']['count']:,} | {r['requests']} | "
                 f"{r['per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")
    r = large["raw"]
    lines.append(f"| (b) raw pymongo computation | {large['store']['count']:,} | "
                 f"{r['requests']} runs | {r['per_s']} | {r['p50_ms']} | {r['p99_ms']} | - |")
    for row, label in (("create", "(c) `POST /applications`"),
                       ("submit", "(c) `POST .../actions/submit`")):
        for size in ("small", "large"):
            r, count = rows[size][row], rows[size]["store"]["count"]
            lines.append(f"| {label} | {count:,} | {r['requests']} | {r['per_s']} | "
                         f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")
    return lines


def verdict_lines(out):
    return [f"- {v['what']}: {v['value']} (target {'<=' if TARGETS[k][2] else '>='} "
            f"{v['target']}) **{v['verdict']}**" for k, v in out.items()]


def section(result):
    rows = result["rows"]
    large, small = rows["large"], rows["small"]
    return [
        "With N applications stored (written in the service's document shape as a year of "
        "the service leaves them, with their lists, lookups, counters and due lists, and the "
        "dashboard's aggregates recomputed by the module's own `dashboard.rebuild`): (a) "
        f"`GET /dashboard` as the Pemda's admin, {DASHBOARD_REQUESTS} requests one after "
        "the other; (b) the same figures computed from the applications with raw pymongo "
        "(one pass over the applications with a projection of the fields needed, counted "
        "in Python: on the local database every pipeline is a full scan whose `$unwind`/"
        "`$group` miss nested paths, and no accumulator counts working days), "
        f"{raw_runs(large['store']['count'])} run(s); (c) S citizens create an application "
        "(`POST /applications`, Idempotency-Key) and, after uploading its two PDFs (not "
        "timed), submit it, by C concurrent clients, with 1,000 and with N stored, each size "
        "in its own database and `pamong serve permits` process; S/2 at a time in four "
        "rounds, small, large, large, small, so that a slow spell of the shared machine "
        "weighs on both sizes alike.",
        "",
        f"Latest run: {result['timestamp']}, N = {large['store']['count']:,}, small = "
        f"{small['store']['count']:,}, S = {result['submissions']}, C = {result['clients']}, "
        f"total wall {result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(rows),
        "",
        f"Stored in {large['store']['seconds']} s (states {large['store']['states']}; the "
        f"longest work list holds {large['store']['queue_ids_max']:,} ids). The dashboard "
        f"and the raw computation agree: {large['raw']['same']}"
        + (f" (differences: {large['raw']['differences']})" if not large['raw']['same']
           else "")
        + f". The dashboard counted every submission after {small['counted']['seconds']} s "
          f"(small) and {large['counted']['seconds']} s (large).",
        "",
        "Targets:",
        "",
        *verdict_lines(result["verdicts"]),
    ]


def run(n=100_000, small=1000, submissions=2000, clients=100, write=True):
    return run_scenario(
        "permits", {"stored": n, "small": small, "submissions": submissions, "clients": clients},
        lambda config: run_rows(config, n, small, submissions, clients), verdicts,
        lambda rows, out: [*table(rows), *verdict_lines(out)], section, write)

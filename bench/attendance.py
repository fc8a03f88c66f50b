"""Scenario ``attendance`` (issue 12, "Performance"): the 07:30 peak through the HTTP API
against a bare nameko endpoint, the same peak over a year of stored records, and the monthly
recap against raw pymongo.

Rows, one after the other in the same process run, against the same broker and database:

(a) bare         ``GET /hello`` of ``tests.launcher_service:HelloService`` (a nameko ``@http``
                 returning a constant) in a ``pamong serve`` process: N requests by C
                 concurrent clients (green threads, one ``requests`` session each, all
                 released together), each request timed;
(b) peak         the same client code against a ``pamong serve attendance`` process whose
                 directory replica holds a generated Pemda (units with offices, N active
                 employees, written with ``pamong.replica.apply_full``, the replica's own
                 code path): every employee checks in once (``POST /check-in``, their own
                 JWT, an ``Idempotency-Key``, a reading a few metres from their office,
                 their own phone, or in one case of 50 the colleague's before them),
                 answered 201, after a warm-up like (a)'s (200 check-ins, their days and
                 the device notes removed again); afterwards every check-in is verified
                 stored exactly once (today's day document of each employee holds one
                 record under its key) and its event published (the document's outbox
                 empty) to a subscriber's queue (bound to ``attendance.events``, as the
                 dashboard or an outside system is; without one the broker returns each
                 event and the relay parks it in ``attendance.unroutable``, a second
                 publish per check-in);
(c) loaded peak  today's documents removed, P (``--past``) past day documents inserted
                 (``insert_many`` in batches; the shape ``records.write_record`` writes, two
                 records each, with the close's ``result``), then (b) again;
(d) recap        the monthly recap of a month of N x 22 closed days (``GET
                 /reports/monthly?unit=<pemda>&month=``) against
(e) raw recap    pymongo reading the same day documents by ``_id $in`` (batches of 500) and
                 summing per employee in Python (the local database lacks ``$group`` on
                 nested arrays the way a recap needs them).

Targets (issue 12): checks-ins/s of (b) >= 0.3 x requests/s of (a); p99 of (b) <= 10 x p99 of
(a); zero errors; every check-in stored once; check-ins/s of (c) >= 0.8 x (b)'s. (d)/(e) is
reported (no target is set in the issue besides "time and ratio").
"""

import os
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import eventlet

from bench.common import machine_line, run_scenario
from pamong.auth import mint_token
from pamong.events.outbox import OUTBOX
from pamong.replica import EMPLOYEES, UNITS, apply_full
from pamong.storage import by_ids, client_for, database_name
from pamong.testing import EventRecorder, HttpClient, free_port, serve_process
from services.attendance import domain
from services.attendance.access import API
from services.attendance.store import CURSORS, DAYS, DEVICES, day_id

BARE = "tests.launcher_service:HelloService"
TARGETS = {  # (what is compared, the bound, whether it is an upper bound)
    "rate_over_bare": ("check-ins/s / bare requests/s: (b)/(a)", 0.3, False),
    "p99_over_bare": ("check-in p99 / bare p99: (b)/(a)", 10.0, True),
    "loaded_over_empty": ("check-ins/s with P past records / without: (c)/(b)", 0.8, False),
}
OPDS, BIDANG = 20, 5
PEMDA = "3510"
TZ = "Asia/Jakarta"
BATCH = 1000
RECAP_DAYS = 22


# -- the data -------------------------------------------------------------------------------

def pemda_units():
    units = [{"code": PEMDA, "name": "Pemerintah Kabupaten Bench", "kind": "pemda",
              "parent": None, "opd": None, "timezone": TZ, "offices": [], "active": True,
              "version": 1}]
    for o in range(1, OPDS + 1):
        opd = f"{PEMDA}.{o:02d}"
        office = {"name": f"Kantor OPD {o:02d}", "latitude": -8.20 - o * 0.002,
                  "longitude": 114.36 + o * 0.002, "radius_m": 100}
        units.append({"code": opd, "name": f"OPD {o:02d}", "kind": "opd", "parent": PEMDA,
                      "opd": opd, "timezone": TZ, "offices": [office], "active": True,
                      "version": 1})
        units += [{"code": f"{opd}.{b:02d}", "name": f"Bidang {o:02d}.{b:02d}",
                   "kind": "bidang", "parent": opd, "opd": opd, "timezone": TZ, "offices": [],
                   "active": True, "version": 1} for b in range(1, BIDANG + 1)]
    return units


def pemda_employees(n):
    """N active employees with unique NIPs, spread over the bidang."""
    out = []
    for i in range(n):
        birth = date(1970, 1, 1) + timedelta(days=i % 9000)
        nip = f"{birth:%Y%m%d}{birth.year + 22}{birth.month:02d}{1 + i % 2}{i // 9000 + 1:03d}"
        opd = f"{PEMDA}.{i % OPDS + 1:02d}"
        unit = f"{opd}.{i // OPDS % BIDANG + 1:02d}"
        out.append({"nip": nip, "kind": "pns", "name": f"Pegawai Uji {i:05d}",
                    "display_name": f"Pegawai Uji {i:05d}", "gender": "L" if i % 2 else "P",
                    "unit": unit, "opd": opd,
                    "position": {"id": f"POS.{unit}", "title": "Pelaksana",
                                 "kind": "pelaksana", "heads_unit": False, "may_sign": False},
                    "supervisor": None, "phone": None, "email": None, "status": "active",
                    "nik_masked": None, "version": 1})
    return out


def fill_replica(db, units, employees):
    for unit in units:
        apply_full(db[UNITS], "code", unit)
    for employee in employees:
        apply_full(db[EMPLOYEES], "nip", employee)


def office_of(employee):
    o = int(employee["opd"].rsplit(".", 1)[1])
    return -8.20 - o * 0.002, 114.36 + o * 0.002


def workdays_before(day, count):
    """``count`` weekdays before ``day``, latest first."""
    out = []
    while len(out) < count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def past_day(employee, day, i):
    """A closed day document as the service stores it (two records, the close's result)."""
    lat, lon = office_of(employee)
    start = datetime.combine(day, datetime.min.time(), tzinfo=domain.zone(TZ)).astimezone(UTC)
    late = (i * 7919) % 100  # a deterministic spread: mostly on time, some TL
    at_in = start + timedelta(hours=7, minutes=late if late < 15 else 0)
    at_out = start + timedelta(hours=16, minutes=5)
    nip = employee["nip"]
    records = [{"key": f"past-{nip}-{day.isoformat()}-{kind}", "kind": kind, "at": at,
                "received_at": at, "device_at": at, "latitude": lat, "longitude": lon,
                "accuracy_m": 10.0, "device_id": f"dev-{nip}", "mock": False,
                "place": "Kantor", "place_kind": "office", "distance_m": 3.0, "radius_m": 100,
                "flags": [], "offline": False} for kind, at in (("in", at_in), ("out", at_out))]
    tl = late if late < 15 else 0
    codes = ["TL1"] if tl > 0 else []
    return {"_id": day_id(nip, day), "nip": nip, "date": day.isoformat(),
            "unit": employee["unit"], "opd": employee["opd"], "records": records,
            "keys": [r["key"] for r in records],
            "result": {"status": "present", "codes": codes, "late_minutes": tl,
                       "early_minutes": 0, "deduction": "0.5" if codes else "0",
                       "excused": [], "holiday": None, "leave_type": None, "assignment": None,
                       "check_in": at_in, "check_out": at_out, "flags": [], "revision": 1,
                       "closed_at": at_out + timedelta(hours=8)}}


def insert_days(collection, employees, days_per_employee, before):
    """``len(employees) x days_per_employee`` past day documents (weekdays before ``before``),
    in ``insert_many`` batches; seconds taken."""
    started = time.perf_counter()
    batch, total = [], 0
    days = workdays_before(before, days_per_employee)
    for k, day in enumerate(days):
        for i, employee in enumerate(employees):
            batch.append(past_day(employee, day, i + k))
            if len(batch) == BATCH:
                collection.insert_many(batch, ordered=False)
                total += len(batch)
                batch = []
    if batch:
        collection.insert_many(batch, ordered=False)
        total += len(batch)
    return {"docs": total, "seconds": round(time.perf_counter() - started, 1)}


# -- the client -----------------------------------------------------------------------------

def figures(latencies, seconds, errors):
    ordered = sorted(latencies)

    def pct(p):
        return ordered[max(0, -(-p * len(ordered) // 100) - 1)] if ordered else 0.0

    return {"requests": len(ordered), "seconds": round(seconds, 3),
            "per_s": round(len(ordered) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(pct(50) * 1000, 1), "p99_ms": round(pct(99) * 1000, 1),
            "errors": len(errors), "first_error": errors[0] if errors else None}


def fire(base_url, config, calls, clients, expect, timeout=60, http_client=HttpClient):
    """Send every ``(method, path, kwargs)`` of ``calls``, shared out over ``clients`` green
    threads (one ``http_client`` each), all released together. ``(figures, answers)``:
    answers are the JSON bodies of the answers ``expect``-ed, in order of ``calls``.
    ``base_url`` may be a list (replicas): client c talks to the (c mod len)-th."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    shares = [list(range(c, len(calls), clients)) for c in range(clients)]
    latencies, errors, answers = [], [], [None] * len(calls)
    gate = eventlet.event.Event()

    def client(c, indexes):
        http = http_client(urls[c % len(urls)], config)
        gate.wait()
        for i in indexes:
            method, path, kwargs = calls[i]
            sent = time.perf_counter()
            try:
                response = http.request(method, path, timeout=timeout, **kwargs)
            except Exception as exc:  # noqa: BLE001 - counted as an error
                latencies.append(time.perf_counter() - sent)
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - sent)
            if response.status_code != expect:
                errors.append(f"{response.status_code} {response.text[:300]}")
            elif response.headers.get("Content-Type", "").startswith("application/json"):
                answers[i] = response.json()

    pool = eventlet.GreenPool(clients)
    threads = [pool.spawn(client, c, share) for c, share in enumerate(shares) if share]
    eventlet.sleep(0.2)  # every client waiting at the gate
    started = time.perf_counter()
    gate.send()
    for thread in threads:
        thread.wait()
    return figures(latencies, time.perf_counter() - started, errors), answers


def bare_calls(n):
    return [("GET", "/hello", {}) for _ in range(n)]


def phone_of(employees, i):
    """Employee ``i``'s phone: their own, except that one in 50 checks in on the phone of the
    colleague listed before them (the ``shared_device`` flag's path, at a realistic share;
    runs until 2026-12-06 gave all 5,000 employees 24 phones between them)."""
    owner = employees[i - 1] if i % 50 == 49 else employees[i]
    return f"dev-{owner['nip']}"


def checkin_calls(config, employees):
    calls = []
    for i, employee in enumerate(employees):
        lat, lon = office_of(employee)
        token = mint_token(config, employee["nip"], ["pegawai"], opd=employee["unit"],
                           nip=employee["nip"])
        calls.append(("POST", f"{API}/check-in", {
            "token": token, "headers": {"Idempotency-Key": uuid.uuid4().hex},
            "json": {"latitude": lat + 0.00003, "longitude": lon - 0.00002, "accuracy_m": 12.0,
                     "device_id": phone_of(employees, i),
                     "device_time": datetime.now(UTC).isoformat(), "mock_location": False}}))
    return calls


def verify_stored(db, calls, answers, timeout, subscriber):
    """Every check-in answered is stored once under its key, its event has left the outbox
    (waits for the relay up to ``timeout``) and reached ``subscriber`` (an ``EventRecorder``)
    once. Returns the day documents' ids."""
    ids = {}
    for (_, _, kwargs), answer in zip(calls, answers, strict=True):
        if answer is None:
            raise RuntimeError("a check-in has no answer")
        nip = mint_token_nip(kwargs)
        ids[day_id(nip, date.fromisoformat(answer["date"]))] = kwargs["headers"][
            "Idempotency-Key"]
    deadline = time.monotonic() + timeout
    while True:
        docs = by_ids(db[DAYS], list(ids), {"keys": 1, "records.key": 1, OUTBOX: 1})
        pending = sum(1 for d in docs.values() if d.get(OUTBOX))
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    wrong = [i for i, key in ids.items()
             if i not in docs or docs[i]["keys"] != [key]
             or [r["key"] for r in docs[i]["records"]] != [key]]
    if wrong:
        raise RuntimeError(f"{len(wrong)} check-ins not stored exactly once, e.g. {wrong[0]}")
    received = Counter((e["data"]["nip"], e["data"]["date"])
                       for e in subscriber.of("attendance.checked_in"))
    missing = [i for i in ids if received[tuple(i.split(":"))] == 0]
    if missing:
        raise RuntimeError(f"{len(missing)} check-in events never reached the subscriber, "
                           f"e.g. {missing[0]}")
    subscriber.received.clear()
    return {"stored_once": len(ids), "events_pending": pending,
            "events_received": sum(received.values())}, list(ids)


def mint_token_nip(kwargs):
    import jwt

    return jwt.decode(kwargs["token"], options={"verify_signature": False})["nip"]


# -- the recap ------------------------------------------------------------------------------

def recap_month(before):
    """A month ending before ``before`` (clear of the past records) with 22 weekdays or more:
    its first 22 weekdays."""
    month = (before.replace(day=1) - timedelta(days=1)).replace(day=1)
    while True:
        days = [month + timedelta(days=k) for k in range(31)
                if (month + timedelta(days=k)).month == month.month
                and (month + timedelta(days=k)).weekday() < 5]
        if len(days) >= RECAP_DAYS:
            return month, days[:RECAP_DAYS]
        month = (month - timedelta(days=1)).replace(day=1)


def raw_recap(db, nips, days):
    """Per employee: days present, TL/PSW code counts, late minutes, deduction, from the day
    documents of ``days`` (every date of the month, as the service reads them)."""
    started = time.perf_counter()
    ids = [day_id(nip, day) for nip in nips for day in days]
    recap = {}
    for doc in by_ids(db[DAYS], ids, {"nip": 1, "result": 1}).values():
        result = doc.get("result") or {}
        row = recap.setdefault(doc["nip"], {"present": 0, "codes": Counter(), "late": 0,
                                            "deduction": Decimal(0)})
        row["present"] += result.get("status") == "present"
        row["codes"].update(result.get("codes", ()))
        row["late"] += result.get("late_minutes") or 0
        row["deduction"] += Decimal(result.get("deduction") or "0")
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "employees": len(recap),
            "days": sum(r["present"] for r in recap.values())}


def service_recap(base_url, config, month):
    http = HttpClient(base_url, config)
    token = http.token(roles=("admin",), opd=PEMDA, sub="bench")
    params = {"unit": PEMDA, "month": month.strftime("%Y-%m"), "subunits": "true"}
    started = time.perf_counter()
    response = http.request("GET", f"{API}/reports/monthly", token=token, params=params,
                            timeout=600)
    seconds = time.perf_counter() - started
    if response.status_code == 404 and "problem" not in response.headers.get(
            "Content-Type", ""):
        return {"seconds": None, "note": "GET /reports/monthly not there yet"}
    if response.status_code != 200:
        return {"seconds": None, "note": f"{response.status_code} {response.text[:300]}"}
    body = response.json()
    return {"seconds": round(seconds, 3), "bytes": len(response.content),
            "employees": len(body.get("employees", ()))}


# -- the run --------------------------------------------------------------------------------

def stop(processes):
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_rows(config, n, clients, past, recap):
    db = client_for(config["MONGO_URI"])[database_name(config, "attendance")]
    employees = pemda_employees(n)
    fill_replica(db, pemda_units(), employees)
    # every day before today is closed: a close catching up on start has nothing to do
    yesterday = datetime.now(domain.zone(TZ)).date() - timedelta(days=1)
    for unit in {e["unit"] for e in employees} | {e["opd"] for e in employees} | {PEMDA}:
        db[CURSORS].update_one({"_id": unit}, {"$set": {"last_closed": yesterday.isoformat()}},
                               upsert=True)
    timeout = max(120.0, n * 0.05)
    ports = {"bare": free_port(), "attendance": free_port()}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    processes = []
    rows = {}
    # a subscriber of attendance's events, as the dashboard or an outside system is: without
    # one the broker returns every event and the relay parks it in attendance.unroutable
    subscriber = EventRecorder(config, "attendance")
    try:
        processes.append(serve_process(config, BARE, ports["bare"], ready_path="/hello"))
        processes.append(serve_process(config, "attendance", ports["attendance"],
                                       DIRECTORY_SNAPSHOT_ON_EMPTY="false"))
        fire(urls["bare"], config, bare_calls(min(n, 200)), clients, 200)  # warm up
        rows["bare"], _ = fire(urls["bare"], config, bare_calls(n), clients, 200)
        print(f"  {'(a) bare':<16} {rows['bare']}", flush=True)

        # the service warmed up as the bare one was: check-ins of the first employees, then
        # their days and the devices removed, so that (b) starts each day afresh as (c) does
        warm = checkin_calls(config, employees[:min(n, 200)])
        _, answers = fire(urls["attendance"], config, warm, clients, 201)
        _, warm_ids = verify_stored(db, warm, answers, timeout, subscriber)
        db[DAYS].delete_many({"_id": {"$in": warm_ids}})
        db[DEVICES].delete_many({})

        calls = checkin_calls(config, employees)
        rows["peak"], answers = fire(urls["attendance"], config, calls, clients, 201)
        print(f"  {'(b) peak':<16} {rows['peak']}", flush=True)
        rows["peak"]["check"], today_ids = verify_stored(db, calls, answers, timeout,
                                                           subscriber)
        print(f"  {'':<16} {rows['peak']['check']}", flush=True)

        for start in range(0, len(today_ids), 500):  # the loaded peak starts the day afresh
            db[DAYS].delete_many({"_id": {"$in": today_ids[start:start + 500]}})
        db[DEVICES].delete_many({})
        today = date.fromisoformat(today_ids[0].split(":")[1])
        rows["past_insert"] = insert_days(db[DAYS], employees, max(1, past // n), today)
        print(f"  {'past records':<16} {rows['past_insert']}", flush=True)
        calls = checkin_calls(config, employees)
        rows["loaded_peak"], answers = fire(urls["attendance"], config, calls, clients, 201)
        print(f"  {'(c) loaded peak':<16} {rows['loaded_peak']}", flush=True)
        rows["loaded_peak"]["check"], _ = verify_stored(db, calls, answers, timeout,
                                                           subscriber)
        print(f"  {'':<16} {rows['loaded_peak']['check']}", flush=True)

        if recap:
            oldest = workdays_before(today, max(1, past // n))[-1]
            month, days = recap_month(oldest)
            rows["recap_insert"] = insert_month(db, employees, days)
            every = [month + timedelta(days=k) for k in range(31)
                     if (month + timedelta(days=k)).month == month.month]
            # raw first: a service query the client gave up on may still run in the database
            rows["raw_recap"] = raw_recap(db, [e["nip"] for e in employees], every)
            rows["recap"] = service_recap(urls["attendance"], config, month)
            rows["recap"]["month"] = month.strftime("%Y-%m")
            print(f"  {'(d) recap':<16} {rows['recap']}", flush=True)
            print(f"  {'(e) raw recap':<16} {rows['raw_recap']}", flush=True)
    finally:
        stop(processes)
        subscriber.close()
    return rows


def insert_month(db, employees, days):
    started = time.perf_counter()
    batch = []
    for k, day in enumerate(days):
        for i, employee in enumerate(employees):
            batch.append(past_day(employee, day, i + k))
            if len(batch) == BATCH:
                db[DAYS].insert_many(batch, ordered=False)
                batch = []
    if batch:
        db[DAYS].insert_many(batch, ordered=False)
    return {"docs": len(days) * len(employees),
            "seconds": round(time.perf_counter() - started, 1)}


def verdicts(rows):
    bare, peak, loaded = rows["bare"], rows["peak"], rows["loaded_peak"]
    ratios = {"rate_over_bare": peak["per_s"] / bare["per_s"],
              "p99_over_bare": peak["p99_ms"] / bare["p99_ms"],
              "loaded_over_empty": loaded["per_s"] / peak["per_s"]}
    out = {}
    for name, ratio in ratios.items():
        label, bound, upper = TARGETS[name]
        ok = ratio <= bound if upper else ratio >= bound
        out[name] = {"ratio": round(ratio, 3), "target": bound,
                     "verdict": "PASS" if ok else "MISS"}
    errors = bare["errors"] + peak["errors"] + loaded["errors"]
    out["errors"] = {"ratio": errors, "target": 0, "verdict": "PASS" if not errors else "MISS"}
    return out


def table(rows):
    lines = ["| row | requests | per second | p50 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    labels = {"bare": "(a) bare nameko `@http` returning a constant",
              "peak": "(b) `POST /check-in`, empty history",
              "loaded_peak": "(c) `POST /check-in` over the past records"}
    for name, label in labels.items():
        r = rows[name]
        lines.append(f"| {label} | {r['requests']} | {r['per_s']:.1f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['errors']} |")
    return lines


def recap_lines(rows):
    if "recap" not in rows:
        return ["Recap rows not run (`--no-recap`)."]
    recap, raw = rows["recap"], rows["raw_recap"]
    if recap["seconds"] is None:
        service = f"(d) service recap: not measured ({recap['note']})"
        ratio = ""
    else:
        service = (f"(d) `GET /reports/monthly?subunits=true` for the Pemda: "
                   f"{recap['seconds']:.2f} s")
        ratio = f"; (d)/(e) = {recap['seconds'] / raw['seconds']:.2f}"
    return [f"Monthly recap of {recap['month']} ({RECAP_DAYS} days x {raw['employees']} "
            f"employees): {service}; (e) raw pymongo `_id $in` + Python sums: "
            f"{raw['seconds']:.2f} s{ratio}."]


def verdict_lines(out):
    lines = []
    for name, v in out.items():
        if name == "errors":
            lines.append(f"- errors over (a)-(c) = {v['ratio']} (target 0): **{v['verdict']}**")
            continue
        label, bound, upper = TARGETS[name]
        lines.append(f"- {label} = {v['ratio']:.3f} (target {'<=' if upper else '>='} "
                     f"{bound}): **{v['verdict']}**")
    return lines


def section(result):
    rows = result["rows"]
    return [
        "The 07:30 peak: (a) a bare nameko `@http` endpoint returning a constant "
        "(`tests.launcher_service:HelloService` in a `pamong serve` process) and (b) `pamong "
        "serve attendance`, each sent N requests by C concurrent clients (green threads, one "
        "`requests` session each, released together; the same client code), every request "
        "timed. In (b) each of N employees of a generated directory replica (written with "
        "`apply_full`) checks in once with their own JWT, an `Idempotency-Key`, a reading "
        "near their office and their own phone (one in 50 a colleague's: the shared-device "
        "flag) (validation, geofence, day document write with its event in the outbox, the "
        "relay publishing alongside), after a warm-up of 200 check-ins whose days are "
        "removed again (as (a) is warmed up by 200 requests); then every check-in is "
        "verified stored exactly once under its key and its event received by a "
        "subscriber's queue (bound to `attendance.events`, as the dashboard or an outside "
        "system is; without one each "
        "event would be returned and parked as unroutable). (c) the same peak after today's "
        "documents are removed and P past day documents (two records and a result each) are "
        "inserted. The recap rows time the monthly recap of N x 22 closed days through the "
        "API and raw.",
        "",
        f"Latest run: {result['timestamp']}, N = {result['employees']}, C = "
        f"{result['clients']}, P = {rows['past_insert']['docs']}, total wall "
        f"{result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(rows),
        "",
        *recap_lines(rows),
        "",
        "Targets:",
        "",
        *verdict_lines(result["verdicts"]),
    ]


def run(n=5000, clients=200, past=None, recap=True, write=True):
    past = past if past is not None else int(os.environ.get("BENCH_ATTENDANCE_PAST",
                                                            1_000_000))
    return run_scenario(
        "attendance", {"employees": n, "clients": clients, "past": past},
        lambda config: run_rows(config, n, clients, past, recap), verdicts,
        lambda rows, out: [*table(rows), *recap_lines(rows), *verdict_lines(out)], section,
        write)

"""Scenario ``morning`` (issue 18, item 5): the 07:00-08:00 peak of a Pemda, compressed, with
every module on this machine at once.

Set-up (timed, not part of the peak): one vhost and database prefix; the WhatsApp stand-in
(``bench.notify_standin``) and the five modules, each a ``pamong serve`` process (directory,
attendance, letters, permits, notify); the demo Pemda's units (OPDs with their offices and
geofences), positions and 300 employees, then N more employees (``bench.directory``'s
generator), imported through ``POST /imports/*`` of the directory; the scenario waits until
the directory replicas of the four other modules hold every employee (they learn them from
the import's events). Then what an OPD configures once: a numbering template per OPD
(letters, ``PUT /numbering``), the permit types (``bench.permits.publish_types``); the day's
closing starts today (``ATTENDANCE_FIRST_DAY``), as for a Pemda that starts the module today,
so no close of yesterday runs during the peak.

The peak: for S seconds (``--morning-seconds``), all at once, each request timed:

- attendance: the N employees check in once each (``POST /check-in``, their own JWT, an
  Idempotency-Key, a reading a few metres from their office: the geofence of their unit's
  office, or of the nearest unit above with one), shared out over C green-thread clients;
  each check-in event also reaches permits (its counter presence read model);
- letters: one client per OPD with a signing head, its drafters in turn: draft (``POST
  /letters``, a nota dinas with a head of bidang as verifier), submit, paraf (``approve``),
  sign by the OPD's head; the letters process seals each signed letter meanwhile, and notify
  tells the verifier and the signer by WhatsApp;
- permits: citizens (their own ``pemohon`` token) create a TDUP application, upload its two
  PDFs and submit it; the licensing office's petugas registers it, which makes notify send
  the applicant a WhatsApp message (each applicant a phone of their own);
- directory: two clients looking employees up (``GET /employees/<nip>``), 0.1 s apart;
- notify: what reaches the stand-in, counted, with each registration's lag (the register
  answer to the stand-in's receipt).

After the window: until every registered applicant's message and every message to staff
(one per submit and per paraf) arrived (or 180 s), then the day documents are counted (one
per check-in). Reported per module: requests, per second, p50/p99, errors (an answer other
than the one expected, or an exception), and the CPU each process used in the window, with
what the whole machine used (it is shared: other runs' share is shown, not hidden). The
check-in rate is set against what a real peak needs: N check-ins in 30 minutes (10,000 ->
5.6/s). Verdicts: that ratio >= 1, zero errors in every module, every registered applicant
reached exactly once and every message to staff arrived.
"""

import itertools
import os
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import eventlet

from bench.attendance import figures, phone_of, stop
from bench.common import cpu_seconds, local_servers, machine_line, run_scenario
from bench.directory import employees as generated_employees
from bench.directory import post_csv
from bench.notify import APP_SECRET, PACE_SECONDS, PHONE_NUMBER_ID, TOKEN, Standin, phone
from bench.permits import SUBMIT_TYPE, publish_types
from bench.permits import UNITS as PERMIT_UNITS
from pamong.auth import mint_token
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import client_for, database_name
from pamong.testing import HttpClient, free_port, serve_process, wait_until
from services.attendance.access import API as ATTENDANCE
from services.attendance.store import DAYS
from services.directory import csvio
from services.directory.demo import demo_pemda
from services.directory.service import API as DIRECTORY
from services.letters.access import API as LETTERS
from services.letters.seed import unit_code
from services.permits.access import API as PERMITS
from services.permits.seed import applicant as demo_applicant
from services.permits.seed import permit_types, sample_pdf

PEMDA = "3510"
TZ = "Asia/Jakarta"
REAL_PEAK_SECONDS = 30 * 60  # a real peak: every employee checks in within 30 minutes
MODULES = ("directory", "attendance", "letters", "permits", "notify")
REPLICAS = ("attendance", "letters", "permits", "notify")  # the directory's followers
PERMIT_CLIENTS = 10
LOOKUP_CLIENTS, LOOKUP_PAUSE = 2, 0.1
APPLICANT_PHONES = 1_000_000  # applicants' phones from phone(1_000_000): no employee's
DRAIN_SECONDS = 180
TIMEOUT = 120


class Meter:
    """Every timed request of the peak, by row (``(module, step)``): latencies and errors."""

    def __init__(self):
        self.latencies = defaultdict(list)
        self.errors = defaultdict(list)
        self.ended = {}  # module -> when its last client stopped

    def call(self, http, row, method, path, expect, **kwargs):
        """The JSON answer when it is ``expect``; else None, counted as an error."""
        sent = time.perf_counter()
        try:
            response = http.request(method, path, timeout=TIMEOUT, **kwargs)
        except Exception as exc:  # noqa: BLE001 - counted as an error
            self.latencies[row].append(time.perf_counter() - sent)
            self.errors[row].append(f"{type(exc).__name__}: {exc}")
            return None
        self.latencies[row].append(time.perf_counter() - sent)
        if response.status_code != expect:
            self.errors[row].append(f"{response.status_code} {response.text[:300]}")
            return None
        return response.json()

    def done(self, module):
        self.ended[module] = max(self.ended.get(module, 0.0), time.perf_counter())


# -- the set-up -----------------------------------------------------------------------------

def module_env(today, keys_dir, standin):
    """Each module's settings beside the scenario's broker, database and secret."""
    quiet = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false"}  # they learn the import from its events
    return {
        "directory": {},
        "attendance": {**quiet, "ATTENDANCE_FIRST_DAY": today.isoformat()},
        "letters": {**quiet, "LETTERS_KEYS_DIR": keys_dir},
        "permits": quiet,
        # as in the notify scenario: no 80/s sender limit on the stand-in, no quiet hours
        # (the run may fall at night in WIB), short retries
        "notify": {**quiet, "NOTIFY_WHATSAPP_URL": standin.url, "NOTIFY_WHATSAPP_TOKEN": TOKEN,
                   "NOTIFY_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
                   "NOTIFY_WHATSAPP_APP_SECRET": APP_SECRET,
                   "NOTIFY_WHATSAPP_VERIFY_TOKEN": TOKEN, "NOTIFY_QUIET_HOURS": "none",
                   "NOTIFY_RATE_WHATSAPP": 1000, "NOTIFY_PACE_WHATSAPP_SECONDS": PACE_SECONDS,
                   "NOTIFY_PROVIDER_TIMEOUT_SECONDS": 2, "NOTIFY_UNKNOWN_WINDOW_SECONDS": 8,
                   "NOTIFY_RETRY_DELAYS": "[1, 2, 4, 8, 16]",
                   "NOTIFY_PENDING_INTERVAL_SECONDS": 0.5},
    }


def import_directory(config, url, n):
    """The demo Pemda and N more employees through the directory's API; then until every
    follower's replica holds every employee. Timings and the N records."""
    client = HttpClient(url, config)
    demo = demo_pemda()
    positions = [row.record for row in csvio.parse("positions", demo["positions"]).rows]
    records = generated_employees(n, positions)
    timeout = max(600.0, n * 0.1)
    for kind in ("units", "positions", "employees"):
        post_csv(client, kind, demo[kind], timeout)
    started = time.perf_counter()
    report = post_csv(client, "employees", csvio.export("employees", records), timeout)
    imported = time.perf_counter() - started
    if report["created"] != n:
        raise RuntimeError(f"import created {report['created']} of {n}: {report}")
    mongo = client_for(config["MONGO_URI"])
    total = mongo[database_name(config, "directory")]["employees"].count_documents({})
    held = {}

    def replicas_full():
        for module in REPLICAS:
            held[module] = mongo[database_name(config, module)][EMPLOYEES].count_documents({})
        return all(count >= total for count in held.values())

    wait_until(replicas_full, timeout=timeout, interval=1.0,
               message=f"every replica holding the {total} employees ({held})")
    print(f"  import of {n} employees answered after {imported:.1f} s; every replica held "
          f"all {total} after {time.perf_counter() - started:.1f} s", flush=True)
    return {"employees": n, "in_directory": total, "import_s": round(imported, 1),
            "replicas_s": round(time.perf_counter() - started, 1)}, records


def offices(units):
    """``{unit: (latitude, longitude)}``: the first office of the unit or of the nearest unit
    above it with one (where attendance judges its staff)."""
    out = {}
    for code in units:
        unit = units[code]
        while unit is not None and not unit.get("offices"):
            unit = units.get(unit.get("parent"))
        if unit is not None:
            out[code] = (unit["offices"][0]["latitude"], unit["offices"][0]["longitude"])
    return out


def letter_teams(db):
    """Per OPD whose head may sign: its head, a head of bidang (the verifier) and that
    bidang's staff (the drafters), from the letters replica."""
    staff = list(db[EMPLOYEES].find({"status": "active"}, {"unit": 1, "position": 1}))
    units = {u["_id"]: u for u in db[UNITS].find({}, {"kind": 1, "parent": 1})}
    heads = {e["unit"]: e["_id"] for e in staff
             if (e.get("position") or {}).get("heads_unit")
             and (e.get("position") or {}).get("may_sign")}
    teams = []
    for opd in sorted(c for c, u in units.items() if u.get("kind") == "opd" and c in heads):
        for bidang in sorted(c for c, u in units.items() if u.get("parent") == opd):
            drafters = sorted(e["_id"] for e in staff if e["unit"] == bidang
                              and not (e.get("position") or {}).get("heads_unit"))
            if bidang in heads and drafters:
                teams.append({"opd": opd, "bidang": bidang, "head": heads[opd],
                              "kabid": heads[bidang], "drafters": drafters[:20]})
                break
    return teams


def configure_letters(url, config, db):
    """A numbering template for every OPD, through the API (as an admin sets it up once)."""
    http = HttpClient(url, config)
    token = mint_token(config, "bench-admin", ["admin"], opd=PEMDA)
    for opd in db[UNITS].find({"kind": "opd"}, {"name": 1}):
        response = http.request("PUT", f"{LETTERS}/numbering/{opd['_id']}", token=token,
                                json={"unit_code": unit_code(opd["name"]),
                                      "template": "{klasifikasi}/{urut:3}/{unit}/{tahun}"})
        if response.status_code != 200:
            raise RuntimeError(f"numbering of {opd['_id']}: {response.status_code} "
                               f"{response.text[:300]}")


# -- the flows of the peak ------------------------------------------------------------------

def checkin_client(meter, url, config, employees, places, deadline, answers):
    http = HttpClient(url, config)
    for i, employee in enumerate(employees):
        if time.perf_counter() >= deadline:
            break
        lat, lon = places[employee["unit"]]
        token = mint_token(config, employee["nip"], ["pegawai"], opd=employee["unit"],
                           nip=employee["nip"])
        answer = meter.call(http, ("attendance", "check-in"), "POST", f"{ATTENDANCE}/check-in",
                            201, token=token, headers={"Idempotency-Key": uuid.uuid4().hex},
                            json={"latitude": lat + 0.00003, "longitude": lon - 0.00002,
                                  "accuracy_m": 12.0, "device_id": phone_of(employees, i),
                                  "device_time": datetime.now(UTC).isoformat(),
                                  "mock_location": False})
        if answer:
            answers.append((answer["place_kind"], tuple(answer["flags"])))
    meter.done("attendance")


def letter_client(meter, url, config, team, deadline, signed):
    """Draft, submit, paraf, sign: one letter after the other until the deadline."""
    http = HttpClient(url, config)
    head = mint_token(config, f"u-{team['head']}", ["pimpinan"], opd=team["opd"],
                      nip=team["head"])
    kabid = mint_token(config, f"u-{team['kabid']}", ["pegawai"], opd=team["bidang"],
                       nip=team["kabid"])
    other = f"{PEMDA}.0{1 + int(team['opd'][-1]) % 8}"  # the next OPD receives the letter
    i = 0
    while time.perf_counter() < deadline:
        drafter = team["drafters"][i % len(team["drafters"])]
        staff = mint_token(config, f"u-{drafter}", ["pegawai"], opd=team["bidang"], nip=drafter)
        i += 1
        letter = meter.call(http, ("letters", "draft"), "POST", f"{LETTERS}/letters", 201,
                            token=staff, json={
                                "kind": "nota_dinas", "classification": "000.8.3.3",
                                "security": "B", "urgency": "biasa",
                                "subject": f"Undangan rapat koordinasi pagi nomor {i}",
                                "body": "Dengan hormat, kami mengundang Bapak/Ibu.",
                                "addressees": [{"type": "internal", "unit": other,
                                                "name": "Kepala OPD"}],
                                "copies": [], "verifiers": [team["kabid"]],
                                "signer": team["head"]})
        steps = (("submit", staff), ("approve", kabid), ("sign", head))
        if letter and all(meter.call(http, ("letters", step), "POST",
                                     f"{LETTERS}/letters/{letter['id']}/{step}", 200,
                                     token=token, json={}) for step, token in steps):
            signed.append(letter["id"])
    meter.done("letters")


def permit_client(meter, url, config, numbers, officer, deadline, registered, pdf):
    """Create, upload the two PDFs, submit; the petugas registers: one application after the
    other until the deadline. ``registered``: applicant phone digits -> when registered."""
    http = HttpClient(url, config)
    while time.perf_counter() < deadline:
        k = next(numbers)
        mobile = phone(APPLICANT_PHONES + k)
        citizen = mint_token(config, f"bench-warga-{k}", ["pemohon"], name="Warga Bench",
                             nik=None)
        app = meter.call(http, ("permits", "create"), "POST", f"{PERMITS}/applications", 201,
                         token=citizen, headers={"Idempotency-Key": f"morning-{k}"}, json={
                             "type": SUBMIT_TYPE, "business": {"name": f"Homestay {k}",
                                                               "nib": "9120301122334"},
                             "applicant": {**demo_applicant("sri"), "phone": mobile,
                                           "channel": "whatsapp"}})
        for requirement in ("ktp", "nib"):
            app = app and meter.call(
                http, ("permits", "upload"), "POST",
                f"{PERMITS}/applications/{app['id']}/documents/{requirement}", 201,
                token=citizen, data=pdf, headers={"Content-Type": "application/pdf"})
        for action, token in (("submit", citizen), ("register", officer)):
            app = app and meter.call(
                http, ("permits", action), "POST",
                f"{PERMITS}/applications/{app['id']}/actions/{action}", 200, token=token,
                json={"version": app["version"]})
        if app:
            registered[mobile[1:]] = time.time()
    meter.done("permits")


def lookup_client(meter, url, config, nips, deadline, offset):
    http = HttpClient(url, config)
    token = mint_token(config, "bench-bkd", ["admin"], opd=PEMDA)
    i = offset
    while time.perf_counter() < deadline:
        meter.call(http, ("directory", "lookup"), "GET", f"{DIRECTORY}/employees/{nips[i]}",
                   200, token=token)
        i = (i + LOOKUP_CLIENTS) % len(nips)
        eventlet.sleep(LOOKUP_PAUSE)  # a person reading the answer
    meter.done("directory")


# -- the run --------------------------------------------------------------------------------

def peak(config, urls, records, places, teams, clients, seconds):
    """Every flow at once for ``seconds``: the meter and what the flows produced."""
    meter = Meter()
    checkins, signed, registered = [], [], {}
    permit_type = permit_types(PERMIT_UNITS)[SUBMIT_TYPE]
    officer = mint_token(config, "bench-petugas", ["petugas"], opd=permit_type["opd"],
                         name="Petugas Bench")
    pdf = sample_pdf("Dokumen bench", "Bench")
    numbers = itertools.count()  # the applicants, each with a phone of their own
    nips = [r["nip"] for r in records]
    gate = eventlet.event.Event()
    pool = eventlet.GreenPool(clients + len(teams) + PERMIT_CLIENTS + LOOKUP_CLIENTS)
    started = time.perf_counter()
    deadline = started + 1 + seconds  # every client waits at the gate for the first second

    def gated(task, *args):
        gate.wait()
        task(*args)

    threads = [pool.spawn(gated, checkin_client, meter, urls["attendance"], config,
                          records[c::clients], places, deadline, checkins)
               for c in range(clients)]
    threads += [pool.spawn(gated, letter_client, meter, urls["letters"], config, team,
                           deadline, signed) for team in teams]
    threads += [pool.spawn(gated, permit_client, meter, urls["permits"], config, numbers,
                           officer, deadline, registered, pdf) for _ in range(PERMIT_CLIENTS)]
    threads += [pool.spawn(gated, lookup_client, meter, urls["directory"], config, nips,
                           deadline, c) for c in range(LOOKUP_CLIENTS)]
    eventlet.sleep(max(0.0, started + 1 - time.perf_counter()))
    started, epoch = time.perf_counter(), time.time()
    gate.send()
    for thread in threads:
        thread.wait()
    return meter, started, {"checkins": checkins, "signed": signed, "registered": registered,
                            "epoch": epoch}


def drain_notify(standin, registered, staff_expected):
    """Until every registered applicant's message and the ``staff_expected`` messages to
    staff reached the stand-in (or DRAIN_SECONDS): ``(applicant rows, staff rows, seconds
    waited)``."""
    started = time.perf_counter()
    while True:
        rows = standin.received()
        mine = [r for r in rows if r[0] in registered]
        others = [r for r in rows if r[0] not in registered]
        if (len({r[0] for r in mine}) >= len(registered) and len(others) >= staff_expected) \
                or time.perf_counter() - started > DRAIN_SECONDS:
            return mine, others, round(time.perf_counter() - started, 1)
        time.sleep(1)


def succeeded(meter, row):
    return len(meter.latencies[row]) - len(meter.errors[row])


def machine_busy():
    """CPU seconds every process of the machine used so far (``/proc/stat``: all but idle
    and iowait; guest time is already in user)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def lag_figures(mine, registered):
    lags = sorted(at - registered[to] for to, at, _ in mine)
    row = figures(lags, 1.0, [])
    return {"p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"]}


def module_rows(meter, started, cpu, cpu_wall):
    """Per module: every request of its flows together, over the module's own window; and
    per step (in the JSON)."""
    rows = {}
    for module in MODULES:
        steps = [row for row in meter.latencies if row[0] == module]
        if not steps:
            continue
        seconds = max(meter.ended.get(module, started) - started, 1e-6)
        latencies = [t for row in steps for t in meter.latencies[row]]
        errors = [e for row in steps for e in meter.errors[row]]
        rows[module] = {**figures(latencies, seconds, errors),
                        "cores_busy": round(cpu.get(module, 0.0) / cpu_wall, 2),
                        "steps": {row[1]: figures(meter.latencies[row], seconds,
                                                  meter.errors[row]) for row in steps}}
    return rows


def set_up(config, n, ports, urls, env, processes):
    """The five modules serving, the directory imported and followed, the letters and
    permits configured: ``(rows, world)``."""
    started = time.perf_counter()
    for module in MODULES:
        processes[module] = serve_process(config, module, ports[module], **env[module])
    rows = {"start_s": round(time.perf_counter() - started, 1)}
    print(f"  five modules serving after {rows['start_s']} s", flush=True)
    rows["import"], records = import_directory(config, urls["directory"], n)
    mongo = client_for(config["MONGO_URI"])
    attendance_db = mongo[database_name(config, "attendance")]
    letters_db = mongo[database_name(config, "letters")]
    configure_letters(urls["letters"], config, letters_db)
    publish_types(urls["permits"], config)
    return rows, {"records": records, "attendance_db": attendance_db, "letters_db": letters_db,
                  "places": offices({u["_id"]: u for u in attendance_db[UNITS].find({})}),
                  "teams": letter_teams(letters_db)}


def peak_rows(config, urls, world, clients, seconds, pids):
    """The peak, with the CPU ``pids`` and the whole machine used meanwhile."""
    before, busy, measured = cpu_seconds(pids), machine_busy(), time.perf_counter()
    meter, begun, made = peak(config, urls, world["records"], world["places"], world["teams"],
                              clients, seconds)
    window = time.perf_counter() - begun
    after, busy = cpu_seconds(pids), machine_busy() - busy
    measured = time.perf_counter() - measured  # the wall the CPU figures cover
    cpu = defaultdict(float)
    for pid, who in pids.items():
        cpu[who] += after.get(pid, 0.0) - before.get(pid, 0.0)
    rows = {"window_s": round(window, 1), "modules": module_rows(meter, begun, cpu, measured),
            "cpu_s": {who: round(v, 1) for who, v in sorted(cpu.items())},
            # the machine is shared: what every process used, ours and the other runs'
            "machine_cpu_s": {"all": round(busy, 1), "cores": os.cpu_count(),
                              "wall_s": round(measured, 1),
                              "outside": round(busy - sum(cpu.values()), 1)}}
    for module, row in rows["modules"].items():
        print(f"  {module:<11} {row['requests']} requests, {row['per_s']}/s, p50 "
              f"{row['p50_ms']} ms, p99 {row['p99_ms']} ms, errors {row['errors']}", flush=True)
    return rows, meter, made


def after_rows(standin, world, meter, made, n):
    """Notify drained, then what the modules hold."""
    staff_expected = (succeeded(meter, ("letters", "submit"))
                      + succeeded(meter, ("letters", "approve")))
    mine, others, waited = drain_notify(standin, made["registered"], staff_expected)
    reached = len({r[0] for r in mine})
    last = max((r[1] for r in mine), default=0.0)
    judged = defaultdict(int)
    for place_kind, flags in made["checkins"]:
        judged[f"{place_kind}{' ' + ','.join(flags) if flags else ''}"] += 1
    rows = {
        "notify": {"registered": len(made["registered"]), "reached": reached,
                   "lost": len(made["registered"]) - reached, "twice": len(mine) - reached,
                   "to_staff": len(others), "to_staff_expected": staff_expected,
                   "drain_s": waited,
                   "per_s": round(reached / max(last - made["epoch"], 1e-6), 1),
                   **lag_figures(mine, made["registered"])},
        "checkins": {"answered": len(made["checkins"]), "judged": dict(judged),
                     "day_documents": world["attendance_db"][DAYS].count_documents({}),
                     "needed_per_s": round(n / REAL_PEAK_SECONDS, 2)},
        "letters": {"teams": len(world["teams"]), "signed": len(made["signed"]),
                    "sent_after_drain": world["letters_db"]["letters"].count_documents(
                        {"state": "sent"})}}
    for name in ("notify", "checkins", "letters"):
        print(f"  {name:<11} {rows[name]}", flush=True)
    return rows


def run_rows(config, n, clients, seconds):
    today = datetime.now(ZoneInfo(TZ)).date()
    ports = {module: free_port() for module in MODULES}
    urls = {module: f"http://127.0.0.1:{port}" for module, port in ports.items()}
    standin = Standin(f"{urls['notify']}/api/notify/v1/webhooks/whatsapp")
    processes = {}
    # the letters process seals with keys of its own, kept until it stopped
    with tempfile.TemporaryDirectory(prefix="pamong-bench-keys-") as keys_dir:
        try:
            rows, world = set_up(config, n, ports, urls, module_env(today, keys_dir, standin),
                                 processes)
            pids = {os.getpid(): "bench clients", standin.process.pid: "stand-in",
                    **{p.pid: m for m, p in processes.items()}, **local_servers()}
            peak_figures, meter, made = peak_rows(config, urls, world, clients, seconds, pids)
            rows.update(peak_figures)
            rows.update(after_rows(standin, world, meter, made, n))
        finally:
            stop(list(processes.values()))
            standin.stop()
    return rows


# -- verdicts and the report ----------------------------------------------------------------

def verdicts(rows):
    checkins, notify = rows["modules"]["attendance"], rows["notify"]
    needed = rows["checkins"]["needed_per_s"]
    ratio = checkins["per_s"] / needed if needed else 0.0
    errors = {module: row["errors"] for module, row in rows["modules"].items()}
    return {
        "checkin_rate": {
            "what": f"check-ins/s during the peak / what a real peak needs ({needed}/s: "
                    f"{rows['import']['employees']:,} in 30 minutes)",
            "target": ">= 1", "value": round(ratio, 2),
            "verdict": "PASS" if ratio >= 1 else "MISS"},
        "errors": {
            "what": "errors (an answer other than the one expected, or an exception) in every "
                    "module during the peak", "target": 0, "value": errors,
            "verdict": "PASS" if not sum(errors.values()) else "FAIL"},
        "notify_once": {
            "what": "every registered applicant reached once by WhatsApp, every message to "
                    "staff arrived", "target": "0 lost, 0 twice, staff all",
            "value": f"{notify['lost']} lost, {notify['twice']} twice of "
                     f"{notify['registered']}; staff {notify['to_staff']} of "
                     f"{notify['to_staff_expected']}",
            "verdict": "PASS" if not notify["lost"] and not notify["twice"]
            and notify["to_staff"] >= notify["to_staff_expected"] else "FAIL"},
    }


LABELS = {
    "directory": "`GET /employees/<nip>` (2 clients, 0.1 s apart)",
    "attendance": "`POST /check-in`",
    "letters": "draft, submit, paraf, sign",
    "permits": "create, 2 uploads, submit, register",
}


def table(rows):
    lines = ["| module | requests | per s | p50 ms | p99 ms | errors | cores busy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for module, row in rows["modules"].items():
        lines.append(f"| {module}: {LABELS[module]} | {row['requests']} | {row['per_s']} | "
                     f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} | "
                     f"{row['cores_busy']} |")
    notify = rows["notify"]
    busy = round(rows["cpu_s"].get("notify", 0.0) / rows["machine_cpu_s"]["wall_s"], 2)
    lines.append(f"| notify: WhatsApp to applicants, registration to the stand-in | "
                 f"{notify['reached']} | {notify['per_s']} | {notify['p50_ms']} | "
                 f"{notify['p99_ms']} | {notify['lost'] + notify['twice']} | {busy} |")
    return lines


def detail_lines(rows):
    imported, checkins, letters = rows["import"], rows["checkins"], rows["letters"]
    notify, attendance = rows["notify"], rows["modules"]["attendance"]
    machine = rows["machine_cpu_s"]
    steps = {m: ", ".join(f"{step} {r['p50_ms']}/{r['p99_ms']}"
                          for step, r in rows["modules"][m]["steps"].items())
             for m in ("letters", "permits") if m in rows["modules"]}
    return [
        f"Check-ins: {attendance['requests']:,} in {attendance['seconds']} s = "
        f"{attendance['per_s']}/s; a real peak needs {checkins['needed_per_s']}/s "
        f"({imported['employees']:,} in 30 minutes). Judged: {checkins['judged']}; day "
        f"documents stored {checkins['day_documents']:,}.",
        f"Letters: {letters['signed']} signed by {letters['teams']} OPD teams (p50/p99 ms per "
        f"step: {steps.get('letters')}); {letters['sent_after_drain']} sealed and sent by the "
        f"end of the drain. Permits: {notify['registered']} registered (p50/p99 ms per step: "
        f"{steps.get('permits')}).",
        f"Notify: {notify['reached']} of {notify['registered']} applicants reached "
        f"({notify['lost']} lost, {notify['twice']} twice), lag from the registration's answer "
        f"to the stand-in p50 {notify['p50_ms']} ms, p99 {notify['p99_ms']} ms, the last "
        f"{notify['drain_s']} s after the window; {notify['to_staff']} of "
        f"{notify['to_staff_expected']} messages to staff (a letter to paraf or to sign, "
        f"paced {PACE_SECONDS} s per person).",
        f"Set-up: the five modules served after {rows['start_s']} s; the import of "
        f"{imported['employees']:,} employees answered after {imported['import_s']} s, and "
        f"the replicas of attendance, letters, permits and notify held all "
        f"{imported['in_directory']:,} after {imported['replicas_s']} s.",
        f"CPU seconds in the window ({machine['wall_s']} s with the clients' start and "
        f"end): {rows['cpu_s']} (FerretDB and "
        f"RabbitMQ: every such process on the machine, shared with other runs). The whole "
        f"machine used {machine['all']} of {round(machine['cores'] * machine['wall_s'], 1)} "
        f"core-seconds, {machine['outside']} of them outside this scenario's processes.",
    ]


def verdict_lines(out):
    return [f"- {v['what']}: {v['value']} (target {v['target']}) **{v['verdict']}**"
            for v in out.values()]


def section(result):
    rows = result["rows"]
    return [
        "The 07:00-08:00 peak of a Pemda, compressed, every module a `pamong serve` process "
        "on this machine (directory, attendance, letters, permits, notify, and the WhatsApp "
        "stand-in), one broker and one database. Set-up: the demo Pemda (units with their "
        "offices' geofences, positions, 300 employees) and N more employees imported through "
        "the directory's API, then until the four other modules' replicas hold everyone; a "
        "numbering template per OPD, the permit types. Then for S seconds at once, each "
        "request timed: the N employees check in once each (own JWT, Idempotency-Key, a "
        "reading near their office, judged against the geofence) by C clients; one client "
        "per OPD (its drafters in turn) drafts a nota dinas, submits it, the head of bidang "
        "gives paraf, the OPD head signs (the letters process seals meanwhile); citizens "
        "create a TDUP "
        f"application, upload two PDFs, submit, and a petugas registers it ({PERMIT_CLIENTS} "
        "clients); the registration makes notify send the applicant a WhatsApp message "
        "(counted at the stand-in, lag from the registration's answer); two clients look "
        "employees up in the directory. Each check-in event also reaches permits (presence). "
        "Cores busy: the CPU seconds the module's process used in the window / the window. "
        "The clients are closed-loop (each sends its next request when the last is "
        "answered), so a latency here is mostly queueing at saturation (p50 of the "
        "check-ins ~ C / their rate), not what one employee sees at a real peak's rate.",
        "",
        f"Latest run: {result['timestamp']}, N = {result['employees']:,}, C = "
        f"{result['clients']}, S = {result['seconds']} (window {rows['window_s']} s), total "
        f"wall {result['wall_s']:.0f} s. The machine was shared with other test runs: the "
        "figures are noisy.  ",
        machine_line(result["machine"]),
        "",
        *table(rows),
        "",
        *detail_lines(rows),
        "",
        "Verdicts:",
        "",
        *verdict_lines(result["verdicts"]),
    ]


def run(n=10_000, clients=100, seconds=60, write=True):
    return run_scenario(
        "morning", {"employees": n, "clients": clients, "seconds": seconds},
        lambda config: run_rows(config, n, clients, seconds), verdicts,
        lambda rows, out: [*table(rows), *detail_lines(rows), *verdict_lines(out)], section,
        write)

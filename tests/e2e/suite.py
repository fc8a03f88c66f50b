"""The whole suite as ``make run`` starts it, for tests/e2e and tests/reliability: every
module in a ``pamong serve`` process of its own, talking to the others only over RabbitMQ and
HTTP, the notify stand-ins (WhatsApp Cloud API, SMTP, SMS gateway) as real local servers, and
one clock for all the module processes that the test moves forward.

    suite = Suite(config, tmp_path, SuiteClock(tmp_path / "clock"))
    suite.clock.set(at(day, "07:10"))     # every module now reads 07:10 WIB on that day
    suite.start_all()
    suite.call("attendance", "POST", "/api/attendance/v1/check-in", roles=("pegawai",), nip=...)
    suite.kill("letters"); suite.start("letters")

The clock is libfaketime (the ``libfaketime`` package's vendored library, preloaded into each
module process): real time plus an offset read from one file, so a day's morning, its evening
and the next midnight's close happen in a minute of test. RabbitMQ and the database keep real
time; our code never asks them the time (``pamong.storage.db_now`` is the process's clock).
"""

import json
import signal
import subprocess
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import monotonic as _monotonic
from zoneinfo import ZoneInfo

import amqp.exceptions
import kombu.exceptions
import pymongo
import pymongo.errors
import requests
from eventlet import sleep as _sleep

from pamong.auth import mint_token
from pamong.calendar import national_holidays
from pamong.config import ENV_KEYS, ENV_PREFIXES
from pamong.modules import SUITE_ORDER
from pamong.storage import database_name
from pamong.testing import free_port, serve_process, wait_until
from tests.integration.notify_support import _env_value, notify_settings, start_standins

WIB = ZoneInfo("Asia/Jakarta")
WAIT = 90  # seconds for eventual state: a module restarted just before catches up within it
# what a chaos run takes away for a while: a module (restarting), the database, the broker
AWAY = (pymongo.errors.PyMongoError, requests.RequestException, OSError,
        amqp.exceptions.AMQPError, kombu.exceptions.KombuError)


def eventually(condition, message, timeout=WAIT, interval=0.2):
    """``wait_until`` for a condition that reads a module, its database or the broker: while
    one of them is away (restarting, stopped by a chaos run) it is simply not true yet."""
    def attempt():
        try:
            return condition()
        except AWAY:
            return None
    return wait_until(attempt, timeout=timeout, interval=interval, message=message)


def retried(read, message="the database answering", timeout=WAIT):
    """What ``read()`` returns (falsy included), repeated while what it reads is away."""
    return eventually(lambda: (read(),), message, timeout, interval=0.5)[0]


def at(day, clock_face, tz=WIB):
    """``day`` at ``"HH:MM"`` local time, as an aware datetime."""
    return datetime.combine(day, time.fromisoformat(clock_face), tz)


def working_day(after, weekdays=(0, 1, 2, 3)):
    """The first Monday-Thursday after ``after`` that is no national holiday: the day the
    scenario plays (Friday's hours differ, and a weekend or a holiday closes as a holiday)."""
    day = after + timedelta(days=1)
    while day.weekday() not in weekdays or day in national_holidays(day.year):
        day += timedelta(days=1)
    return day


class SuiteClock:
    """The wall clock of every module process: real time plus ``offset`` seconds, which only
    moves forward (leases and timers never see time run back). The test's own process keeps
    real time and computes the suite's with ``now()``."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self._write()

    def env(self):
        import libfaketime

        _, preload = libfaketime.get_reload_information()
        # the file is re-read once a second (not on every call: Python asks the time often)
        settings = {key: value for key, value in preload.items() if key != "FAKETIME_NO_CACHE"}
        return {**settings, "FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_CACHE_DURATION": "1"}

    def now(self):
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def set(self, when):
        """Move the suite's clock to ``when`` (an aware datetime); it runs on from there."""
        offset = int((when - datetime.now(UTC)).total_seconds())
        if offset < self.offset:
            raise ValueError(f"the suite's clock only moves forward ({self.now()} -> {when})")
        self.offset = offset
        self._write()

    def _write(self):
        self.path.write_text(f"{self.offset:+d}\n")


class Suite:
    """The modules of ``modules`` (``SUITE_ORDER`` by default) on ``config``'s vhost and
    database prefix, with ``clock``; ``workdir`` keeps the logs (``<module>.log``, JSON lines,
    appended across restarts) and the letters' development CA."""

    def __init__(self, config, workdir, clock, modules=SUITE_ORDER, **env):

        self.config, self.workdir, self.clock = config, Path(workdir), clock
        self.modules = tuple(modules)
        self.ports = {name: free_port() for name in self.modules}
        self.processes = {}
        self.restarts = dict.fromkeys(self.modules, 0)
        self.retried = {}
        self.wa, self.smtp, self.sms = start_standins()
        self.wa.webhook_url = f"{self.url('notify')}/api/notify/v1/webhooks/whatsapp"
        self.sms.report_url = f"{self.url('notify')}/api/notify/v1/webhooks/sms"
        # Meta and the SMS gateway live on the suite's clock too: a citizen's message
        # stamped with the machine's day would leave notify's 24-hour window shut
        self.wa.clock = self.sms.clock = lambda: clock.now().timestamp()
        notify = notify_settings(config, self.ports.get("notify", 0), self.wa, self.smtp,
                                 self.sms)
        common = {
            # retries a little faster than production's (1, 5, 30 s...), the same count
            "RETRY_DELAYS": [0.5, 1, 2, 5, 10], "OUTBOX_POLL_SECONDS": 0.1,
            "OUTBOX_SWEEP_SECONDS": 5, "INBOX_LEASE_SECONDS": 10,
            "OUTBOX_WRITER_LEASE_SECONDS": 10, **clock.env()}
        self.env = {
            "directory": {},
            "attendance": {"ATTENDANCE_CLOSE_INTERVAL_SECONDS": 2,
                           "ATTENDANCE_CONFIG_CACHE_SECONDS": 1},
            "letters": {"LETTERS_KEYS_DIR": str(self.workdir / "letters-ca"),
                        "LETTERS_SETTLE_INTERVAL_SECONDS": 2,
                        "LETTERS_PUBLIC_URL": self.url("letters")},
            # the dashboard's headcount per OPD follows the directory within seconds
            "permits": {"PERMITS_SLA_INTERVAL_SECONDS": 5, "PERMITS_HEADCOUNT_SECONDS": 2,
                        "PERMITS_REFERENCE_CACHE_SECONDS": 0},
            "notify": {**{key: value for key, value in notify.items()
                          if key.startswith("NOTIFY_")},
                       # its timers on, as in production; quiet hours as shipped
                       "NOTIFY_PENDING_INTERVAL_SECONDS": 1, "NOTIFY_PURGE_INTERVAL_SECONDS": 60,
                       "NOTIFY_QUIET_HOURS": "21:00-06:00"},
        }
        for name in self.env:
            self.env[name] = {**common, **self.env[name], **env}

    # -- processes -------------------------------------------------------------------------

    def url(self, name):
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name, ready_timeout=60):
        """``pamong serve <name>``, returned once ready (its log appended to ``<name>.log``)."""
        assert name not in self.processes or self.processes[name].poll() is not None, name
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.processes[name] = serve_process(
                self.config, name, self.ports[name], log=log, ready_timeout=ready_timeout,
                **{key: _env_value(value) for key, value in self.env[name].items()
                   if key in ENV_KEYS or key.startswith((*ENV_PREFIXES, "FAKETIME", "LD_",
                                                         "DONT_FAKE"))})
        return self.processes[name]

    def start_all(self):
        """Every module, the directory first, the others at once (as a Deployment would)."""
        import eventlet

        self.start(self.modules[0])
        pool = eventlet.GreenPool()
        for started in pool.imap(self.start, self.modules[1:]):
            assert started.poll() is None

    def kill(self, name):
        """SIGKILL: a crash, in-flight work left as it was."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, name):
        self.kill(name)
        self.restarts[name] += 1
        return self.start(name)

    def stop(self):
        """Every module gracefully (SIGTERM), then the stand-ins."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for standin in (self.wa, self.smtp, self.sms):
            standin.stop()

    def alive(self):
        """``{name: exit code or None}``: a module that died by itself is a failure."""
        return {name: process.poll() for name, process in self.processes.items()}

    def exits(self):
        """A line per module that is not running, with its exit code and the errors its log
        ends with: after a failed step, which module died and why ("" when all run)."""
        lines = []
        for name, code in self.alive().items():
            if code is not None:
                lines.append(f"{name} exited with {code}; its last errors:")
                lines += [f"  {error}" for error in self._last_errors(name)]
        return "\n".join(lines)

    def _last_errors(self, name, count=5):
        errors = []
        with open(self.workdir / f"{name}.log", encoding="utf-8", errors="replace") as log:
            for line in log:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("level") in ("ERROR", "CRITICAL"):
                    exc = record.get("exc", "").strip().rsplit("\n", 1)[-1]
                    errors.append(f"{record.get('ts')} {record['level']} "
                                  f"{record.get('message', '')[:300]}{' | ' + exc if exc else ''}")
        return errors[-count:]

    # -- the clock ---------------------------------------------------------------------------

    def move_clock(self, when):
        """Every module process reads ``when`` (give or take the second it takes)."""
        self.clock.set(when)

        def everyone_there():
            return all(abs((self.server_time(name) - self.clock.now()).total_seconds()) < 5
                       for name in self.processes)

        wait_until(everyone_there, timeout=15, message=f"every module's clock at {when}")

    def server_time(self, name):
        """A module's own clock: the ``Date`` of its answer."""
        try:
            response = requests.get(f"{self.url(name)}/health/live", timeout=5)
        except requests.ConnectionError:  # (restarting: it reads the same file when back)
            return self.clock.now()
        return parsedate_to_datetime(response.headers["Date"])

    def today(self, tz=WIB):
        return self.clock.now().astimezone(tz).date()

    # -- calls -------------------------------------------------------------------------------

    def token(self, roles, opd=None, sub=None, **claims):
        """A token valid on the suite's clock (minted on real time: ``exp`` covers the
        offset)."""
        sub = sub or claims.get("nip") or claims.get("nik") or "-".join(roles)
        return mint_token(self.config, sub, list(roles), opd=opd,
                          ttl_seconds=self.clock.offset + 3600, **claims)

    def call(self, module, method, path, roles=("admin",), opd=None, token=None, headers=None,
             expect=None, **kwargs):
        """``method path`` on ``module`` with a token of ``roles``/``opd`` (+ ``nip=``,
        ``nik=``, ``sub=`` claims); asserts the status when ``expect`` is given."""
        claims = {key: kwargs.pop(key) for key in ("nip", "nik", "sub", "name")
                  if key in kwargs}
        headers = dict(headers or {})
        if token is not False:
            headers["Authorization"] = "Bearer " + (
                token or self.token(roles, opd=opd, **claims))
        response = requests.request(method, f"{self.url(module)}{path}", headers=headers,
                                    timeout=60, **kwargs)
        if expect is not None:
            expected = (expect,) if isinstance(expect, int) else expect
            assert response.status_code in expected, \
                f"{method} {path} on {module}: {response.status_code} {response.text[:800]}"
        return response

    def write(self, module, method, path, key, expect=(200, 201, 202), timeout=90, **kwargs):
        """A state-changing call with ``Idempotency-Key: key``, repeated with the same key
        while the module cannot answer (killed, restarting, its database away: no answer,
        502, 503, 504) as a client with a retry policy does: the reliability suite's "nothing
        twice" rests on it. Any other status is final. ``self.retried`` counts repeats."""
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key}
        deadline = _monotonic() + timeout
        while True:
            try:
                response = self.call(module, method, path, headers=headers, **kwargs)
            except requests.ConnectionError:
                response = None
            if response is not None and response.status_code not in (502, 503, 504):
                break
            if _monotonic() > deadline:
                raise AssertionError(f"{method} {path} on {module}: no answer within {timeout} s "
                                     f"(last: {response and response.status_code})")
            self.retried[module] = self.retried.get(module, 0) + 1
            _sleep(0.5)
        if expect is not None:
            expected = (expect,) if isinstance(expect, int) else expect
            assert response.status_code in expected, \
                f"{method} {path} on {module}: {response.status_code} {response.text[:800]}"
        return response

    def read(self, module, path, timeout=WAIT, raw=False, **kwargs):
        """``GET path``, repeated while the module cannot answer (see ``write``); asserts 200
        and returns the JSON (the response with ``raw``)."""
        deadline = _monotonic() + timeout
        while True:
            try:
                response = self.call(module, "GET", path, **kwargs)
                if response.status_code not in (502, 503, 504):
                    break
            except requests.ConnectionError:
                pass
            assert _monotonic() < deadline, f"GET {path} on {module}: no answer in {timeout} s"
            _sleep(0.5)
        assert response.status_code == 200, f"GET {path} on {module}: {response.status_code} " \
                                             f"{response.text[:800]}"
        return response if raw else response.json()

    # -- each module's own data (assertions read it, nothing writes it) -----------------------

    def db(self, name):
        client = getattr(self, "_mongo", None)
        if client is None:
            # a read waits out a database outage of the reliability run (10 s)
            client = self._mongo = pymongo.MongoClient(self.config["MONGO_URI"],
                                                       serverSelectionTimeoutMS=30_000)
        return client[database_name(self.config, name)]


def today_wib():
    return datetime.now(WIB).date()


class World:
    """The Pemda the BKD imports: the directory demo's 300 employees, 39 units and their
    offices (``services.directory.demo``), parsed from the same CSV files the import sends."""

    def __init__(self):
        from services.directory import csvio
        from services.directory.demo import demo_pemda

        self.files = demo_pemda()
        parsed = {kind: [row.record for row in csvio.parse(kind, self.files[kind]).rows]
                  for kind in csvio.KINDS}
        self.units = {u["code"]: u for u in parsed["units"]}
        self.positions = {p["id"]: p for p in parsed["positions"]}
        self.employees = {e["nip"]: e for e in parsed["employees"]}

    @property
    def active(self):
        """The employees at work (not retired, not on unpaid leave)."""
        return [e for e in self.employees.values() if e["status"] == "active"]

    def offices_of(self, unit):
        """The offices where ``unit``'s employees check in: its own, else its nearest
        ancestor's (the directory's rule)."""
        while unit:
            offices = self.units[unit].get("offices") or []
            if offices:
                return offices
            unit = unit.rsplit(".", 1)[0] if "." in unit else None
        return []

    def head_of(self, unit):
        """The employee holding ``unit``'s head position, or None when it is vacant."""
        heads = [p["id"] for p in self.positions.values()
                 if p["unit"] == unit and p["heads_unit"]]
        return next((e for e in self.employees.values() if e["position"] in heads
                     and e["status"] == "active"), None)


def import_pemda(suite, world=None):
    """The BKD imports the directory (units, positions, employees: CSV through the
    directory's API, as its staff would) and every other module's replica catches up."""
    from services.directory import csvio

    world = world or World()
    for kind in csvio.KINDS:
        suite.write("directory", "POST", f"/api/directory/v1/imports/{kind}",
                    key=f"bkd-import-{kind}", roles=("admin",), opd="3510", expect=200,
                    data=world.files[kind].encode(), headers={"Content-Type": "text/csv"})
    wait_for_replicas(suite, world)
    return world


def wait_for_replicas(suite, world, timeout=90):
    """Every module but the directory holds each employee as the directory has them."""
    from pamong.replica import EMPLOYEES

    for name in suite.modules:
        if name == "directory":
            continue
        wait_until(lambda n=name: suite.db(n)[EMPLOYEES].count_documents({})
                   >= len(world.employees), timeout=timeout,
                   message=f"{name}'s replica holding all {len(world.employees)} employees")

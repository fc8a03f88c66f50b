"""The five modules, each in its own process (``pamong serve <module>``) on one vhost and one
database prefix for the whole fuzz run, the directory imported through its API so that every
replica holds a small Pemda; and a token per role for a person of that Pemda."""

import uuid
from collections import Counter, defaultdict
from pathlib import Path

import eventlet
import pytest
import requests

from pamong.auth import mint_token
from pamong.modules import installed
from pamong.testing import broker, drop_databases, free_port, serve_process, wait_until
from tests.conftest import service_test_config

DATA = Path(__file__).resolve().parents[1] / "data" / "directory"
OPD = "3510.06"  # the sample CSV's BKPSDM
NIP_HEAD = "197202141998032005"  # its head
NIP_STAFF = "199004172015032001"  # an analyst in its Bidang Mutasi
NIK_CITIZEN = "3510015505900001"

# who each role is when it calls (the sample CSV's people; Pemda-wide roles name no unit)
IDENTITIES = {
    "admin": {"sub": "fuzz-admin", "opd": None},
    "service": {"sub": "fuzz-service", "opd": None},
    "opd_admin": {"sub": "fuzz-opd-admin", "opd": OPD},
    "pimpinan": {"sub": NIP_HEAD, "opd": OPD, "nip": NIP_HEAD},
    "verifikator": {"sub": "fuzz-verifikator", "opd": OPD},
    "petugas": {"sub": "fuzz-petugas", "opd": OPD},
    "sekretariat": {"sub": "fuzz-sekretariat", "opd": OPD},
    "pegawai": {"sub": NIP_STAFF, "opd": f"{OPD}.02", "nip": NIP_STAFF},
    "pemohon": {"sub": "fuzz-citizen", "opd": None, "nik": NIK_CITIZEN},
}


def _module_env(name, tmp):
    """What a module needs in tests besides the broker, database and secret: timers off (the
    fuzzer, not the clock, drives it), no snapshot request, notify's stand-ins, letters' CA."""
    env = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false"}
    if name == "attendance":
        env.update(ATTENDANCE_CONFIG_CACHE_SECONDS="0", ATTENDANCE_CLOSE_INTERVAL_SECONDS="0")
    elif name == "letters":
        env.update(LETTERS_SETTLE_INTERVAL_SECONDS="0", LETTERS_KEYS_DIR=str(tmp / "letters-ca"))
    elif name == "permits":
        # a dashboard stream lives 10 minutes: here one second, so a fuzzed call ends
        env.update(PERMITS_SLA_INTERVAL_SECONDS="0", PERMITS_EXPIRY_INTERVAL_SECONDS="0",
                   PERMITS_STREAM_MAX_SECONDS="1")
    return env


# {module: Counter(status)} of every answer the fuzzer got, printed at the end of the run
ANSWERED = defaultdict(Counter)


class Suite:
    def __init__(self, config):
        self.config = config
        self.urls = {}
        self.answered = ANSWERED
        self.tokens = {role: mint_token(config, roles=(role,), ttl_seconds=3 * 3600, **who)
                       for role, who in IDENTITIES.items()}


@pytest.fixture(scope="package")
def suite(tmp_path_factory):
    """Every installed module serving on a port of its own; ``suite.urls[name]``. A vhost and
    databases of its own: the directory's events reach no other test's services.

    Stopped when tests/fuzz ends, not with the session: the SMTP stand-in's asyncio loop
    runs in a green thread and counts as "running" for the whole OS thread, so while it
    lives, every later asyncio.run (pyHanko's checks) and every other stand-in's loop in
    this process refuses to start."""
    from tests.integration.notify_support import _env_value, notify_settings, start_standins

    tmp = tmp_path_factory.mktemp("fuzz")
    vhost = broker.create_vhost()
    config = service_test_config(vhost, f"tfuzz{uuid.uuid4().hex[:8]}_")
    suite = Suite(config)
    envs, started, standins = {}, [], []
    for name in installed():
        port = free_port()
        envs[name] = (port, _module_env(name, tmp))
        suite.urls[name] = f"http://127.0.0.1:{port}"
    try:
        if "notify" in envs:
            standins = start_standins()
            port, env = envs["notify"]
            settings = notify_settings({}, port, *standins)
            env.update({k: _env_value(v) for k, v in settings.items()
                        if k.startswith("NOTIFY_") and v is not None})
        # started side by side, each waiting for its own readiness in a green thread
        pool = eventlet.GreenPool()
        threads = [pool.spawn(serve_process, config, name, port, **env)
                   for name, (port, env) in envs.items()]
        failures = []
        for thread in threads:
            try:
                started.append(thread.wait())
            except Exception as exc:  # noqa: BLE001 - raised below, once every start ended
                failures.append(exc)
        if failures:
            raise failures[0]
        if "directory" in envs:
            _import_directory(suite)
        yield suite
        # a module that never answered 2xx was fuzzed at its doors only (tokens, seed broken)
        unreached = [name for name in suite.urls if name in ANSWERED
                     and not any(200 <= status < 300 for status in ANSWERED[name])]
        assert not unreached, f"no request got past the refusals of {unreached}"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
        for standin in standins:
            standin.stop()
        drop_databases(config)
        broker.delete_vhost(vhost)


def _import_directory(suite):
    """The sample Pemda through the directory's CSV import; its events fill every replica."""
    import pymongo

    from pamong.storage import database_name

    url = suite.urls["directory"] + "/api/directory/v1/imports/"
    headers = {"Authorization": f"Bearer {suite.tokens['admin']}",
               "Content-Type": "text/csv; charset=utf-8"}
    for kind in ("units", "positions", "employees"):
        r = requests.post(url + kind, data=(DATA / f"{kind}.csv").read_bytes(), headers=headers,
                          timeout=30)
        assert r.status_code == 200, r.text
    client = pymongo.MongoClient(suite.config["MONGO_URI"])
    try:
        for name in suite.urls:
            if name != "directory":
                db = client[database_name(suite.config, name)]
                wait_until(lambda db=db: db.employees.count_documents({}) >= 6, timeout=30,
                           message=f"{name}'s directory replica filled")
    finally:
        client.close()


def pytest_terminal_summary(terminalreporter):
    if ANSWERED:
        terminalreporter.section("API fuzzing: answers per module and status")
        for name, counts in sorted(ANSWERED.items()):
            total = sum(counts.values())
            line = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
            terminalreporter.write_line(f"{name} ({total} requests): {line}")

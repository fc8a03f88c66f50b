"""What every scenario shares: its own vhost and databases, the machine it ran on, and its
results (``bench/results/<scenario>.json`` and its ``## <scenario>`` section of RESULTS.md)."""

import json
import os
import platform
import re
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from pamong.config import load_config
from pamong.events.outbox import OUTBOX
from pamong.storage import client_for
from pamong.testing import broker, drop_databases, wait_until

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
HEADER = [
    "# Benchmarks",
    "",
    "Run with `make bench` (= `.venv/bin/python -m bench [--events N] [--rounds R] "
    "[--employees N] [--edits E] [--clients C] [--ops N] [--checkins N] [--peak-clients C] "
    "[--past P] [--letters N] [--archive N] [--permits N] [--permits-small N] "
    "[--permit-submissions S] [--permit-clients C] [--notifications N] [--page-requests R] "
    "[--morning-employees N] [--morning-clients C] [--morning-seconds S] "
    "[--only event_pipeline|directory|database|sweep|attendance|letters|permits|notify|pages|"
    "morning] "
    "[--profile]`; "
    "default N = 20000 for the first two, 2 rounds of the event_pipeline rows, 200 edits per "
    "client with 10 clients in directory, 500 operations per client in database, 5000 "
    "check-ins by 200 clients over 1,000,000 past records in attendance, 1000 signs by 50 "
    "signers with 100,000 letters stored in letters, and 100,000 applications stored with "
    "2000 submissions by 100 clients in permits, 10,000 notifications per row in notify, and "
    "200 requests of each page and of its API in pages, and 10,000 employees checking in by "
    "100 clients during a 60 s morning peak with every module in morning; "
    "use e.g. "
    "`--events 2000`, `--employees 2000 --edits 20`, `--checkins 1000 --past 100000` or "
    "`--permits 5000 --permits-small 500 --permit-submissions 200 --permit-clients 20` or "
    "`--morning-employees 1000 --morning-clients 20 --morning-seconds 15` for a quick run). "
    "It needs the RabbitMQ "
    "(with management) and FerretDB of the development environment (`AMQP_URI`, `MONGO_URI`, "
    "`RABBIT_MANAGEMENT_URL`); it uses its own vhost and databases and removes them afterwards.",
    "",
    "Every row runs in the same process run, one after the other, against the same broker "
    "and database. The machine is small and noisy, so **the ratios between rows, not the "
    "absolute numbers, are the verdict** (DESIGN §11). Raw figures are in "
    "`bench/results/*.json`.",
]


@contextmanager
def scenario_env(**overrides):
    """``(vhost, config)``: a fresh vhost and database prefix, both removed on exit."""
    vhost = broker.create_vhost("pamong-bench")
    config = load_config(overrides={
        "AMQP_URI": broker.amqp_uri_for(vhost),
        "MONGO_URI": os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"),
        "MONGO_DB_PREFIX": f"bench{uuid.uuid4().hex[:8]}_",
        "RETRY_DELAYS": [1, 5, 30],
        "RETRY_JITTER": 0.2,
        "OUTBOX_POLL_SECONDS": 0.05,
        "OUTBOX_SWEEP_SECONDS": 60,
        **overrides,
    })
    try:
        yield vhost, config
    finally:
        drop_databases(config)
        broker.delete_vhost(vhost)


STATS_SECONDS = 5.5  # RabbitMQ's management statistics refresh (5 s by default), and a margin


def wait_quiet(config, outboxes, timeout=600):
    """Until the work one phase left behind is done, so that the next phase is timed alone:
    every collection of ``outboxes`` (``[collection]``) has published its events, and the
    broker holds no message (ready or being handled) in any queue of the scenario's vhost on
    two readings of the management API one statistics refresh apart."""
    vhost = unquote(urlsplit(config["AMQP_URI"]).path[1:])
    deadline = time.monotonic() + timeout
    wait_published(outboxes, timeout)
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queues of {vhost} still hold messages after {timeout} s")
        quiet = quiet + 1 if broker.vhost_messages(vhost) == 0 else 0
        if quiet < 2:
            time.sleep(STATS_SECONDS)


def wait_published(outboxes, timeout=600):
    """Until no document of the collections ``outboxes`` holds an event in its outbox."""
    for collection in outboxes:
        wait_until(lambda c=collection: c.count_documents({f"{OUTBOX}.0": {"$exists": True}})
                   == 0, timeout=timeout, interval=0.2, message=f"{collection.name} published")


def mean_rate(rows, *keys):
    """The mean ``per_s`` of the rows ``keys`` that ran: a baseline measured before and after
    the row it is compared with (a slow or fast spell during one short run weighs less)."""
    runs = [rows[key]["per_s"] for key in keys if key in rows]
    return sum(runs) / len(runs)


SERVERS = {"ferretdb": "FerretDB", "beam.smp": "RabbitMQ"}  # in a command line: its server


def local_servers():
    """``{pid: server}`` of every process on this machine whose command line names FerretDB or
    RabbitMQ's ``beam.smp`` (a process's /proc stat does not count its children: each is
    listed)."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes() if entry.isdigit() else b""
        except OSError:  # gone meanwhile
            continue
        for word, server in SERVERS.items():
            if word.encode() in cmdline:
                found[int(entry)] = server
    return found


def cpu_seconds(pids):
    """``{pid: CPU seconds (user + system) used so far}``, from /proc/<pid>/stat fields 14
    and 15; a process gone is left out."""
    used = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # from field 3 on (the name may hold spaces)
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def machine(config):
    versions = {"python": platform.python_version()}
    for package in ("nameko", "kombu", "pymongo", "eventlet"):
        versions[package] = metadata.version(package)
    try:
        url, auth = broker._api("/overview")
        versions["rabbitmq"] = requests.get(url, auth=auth, timeout=5).json()["rabbitmq_version"]
    except Exception as exc:  # noqa: BLE001 - informational only
        versions["rabbitmq"] = f"unknown ({exc})"
    try:
        info = client_for(config["MONGO_URI"]).admin.command("buildInfo")
        versions["ferretdb"] = info.get("ferretdbVersion") or f"mongodb {info.get('version')}"
    except Exception as exc:  # noqa: BLE001
        versions["ferretdb"] = f"unknown ({exc})"
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "versions": versions}


def machine_line(m):
    v = m["versions"]
    return (f"Machine: {m['platform']}, {m['cpu_count']} CPUs; Python {v['python']}, nameko "
            f"{v['nameko']}, kombu {v['kombu']}, pymongo {v['pymongo']}, eventlet "
            f"{v['eventlet']}, RabbitMQ {v['rabbitmq']}, FerretDB {v['ferretdb']}.")


def write_results(scenario, result, section):
    """Write ``results/<scenario>.json`` and replace (or append) the scenario's section of
    RESULTS.md, given as its lines below the ``## <scenario>`` heading; other sections stay."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{scenario}.json").write_text(json.dumps(result, indent=2) + "\n")
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    sections = {}
    for part in re.split(r"(?m)^## ", old)[1:]:  # [0] is the header, written afresh
        sections[part.split("\n", 1)[0].strip()] = "## " + part.rstrip("\n") + "\n"
    sections[scenario] = "\n".join([f"## {scenario}", "", *section]) + "\n"
    RESULTS_MD.write_text("\n".join(HEADER) + "\n\n" + "\n".join(sections.values()))


BENCH_SECRET = "bench-secret-of-at-least-32-bytes-long!"  # noqa: S105 - a throw-away vhost's


def run_scenario(name, params, measure, verdicts, summary, section, write=True):
    """One service scenario, run the same way each time: a fresh vhost and databases,
    ``measure(config)`` -> rows, ``verdicts(rows)``, ``summary(rows, verdicts)`` printed (the
    table and the verdict lines), and the results written (``section(result)`` into
    RESULTS.md). ``params``: the scenario's sizes, printed and kept in the result. True when
    every verdict passes."""
    overrides = {"JWT_SECRET": BENCH_SECRET, "DIRECTORY_SNAPSHOT_ON_EMPTY": False}
    with scenario_env(**overrides) as (vhost, config):
        started = time.monotonic()
        sizes = ", ".join(f"{key} = {value}" for key, value in params.items())
        print(f"{name}: {sizes}, vhost {vhost}, databases {config['MONGO_DB_PREFIX']}*",
              flush=True)
        env = machine(config)
        rows = measure(config)
    wall = time.monotonic() - started
    out = verdicts(rows)
    print()
    print("\n".join(summary(rows, out)).replace("**", ""))
    print(f"\nwall time {wall:.0f} s")
    result = {"scenario": name, **params,
              "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
              "wall_s": round(wall, 1), "machine": env, "rows": rows, "verdicts": out}
    if write:
        write_results(name, result, section(result))
    return all(v["verdict"] == "PASS" for v in out.values())


class LeanHttp:
    """A load generator's HTTP client: one kept-alive urllib3 connection, the calls of
    ``pamong.testing.HttpClient`` it is used with (``request(method, path, token=, json=,
    headers=, timeout=)``, answers with ``status_code``, ``headers``, ``text``, ``json()``).
    ``requests`` spends a few ms of CPU per call on a 2-core machine the measured service
    shares with its clients; production clients run elsewhere."""

    def __init__(self, base_url, config=None):
        self.base_url = base_url
        self.pool = urllib3.PoolManager(maxsize=1, retries=False)

    def request(self, method, path, token=None, headers=None, json=None, timeout=30):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = None
        if json is not None:
            body = _JSON_BODY.encode(json).encode()
            headers["Content-Type"] = "application/json"
        reply = self.pool.request(method, self.base_url + path, body=body, headers=headers,
                                  timeout=timeout, redirect=False)
        return LeanReply(reply)


_JSON_BODY = json.JSONEncoder(separators=(",", ":"))


class LeanReply:
    def __init__(self, reply):
        self.status_code = reply.status
        self.headers = reply.headers
        self.content = reply.data

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

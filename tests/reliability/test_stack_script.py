"""deploy/local/stack.sh, run for real: each command does what its name says, fails loudly
when it cannot, and never stops what it did not start.

The script runs in a copy of the repository (it finds ``.run/`` and ``.cache/`` from its own
path) on ports of its own, so the stack the rest of the suite uses is never touched. The copy
links the FerretDB binary that is already built (no Go build) and starts a private RabbitMQ
node (about 8 s). ``PAMONG_TEST_STACK_SCRIPT=/path/to/stack.sh`` tests another version of the
script (e.g. the previous one, to see these tests fail).
"""

import hashlib
import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient

from pamong.testing import free_port

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(os.environ.get("PAMONG_TEST_STACK_SCRIPT", REPO / "deploy/local/stack.sh"))
FERRETDB = REPO / ".cache/bin/ferretdb"


def _rabbitmq_installed():
    return any(Path(d, "rabbitmq-server").exists()
               for d in ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin"))


class StackCopy:
    """A copy of the files stack.sh needs, with its own ports, node name and .run/."""

    def __init__(self, root):
        self.root = root
        local = root / "deploy/local"
        local.mkdir(parents=True)
        shutil.copy(SCRIPT, local / "stack.sh")
        shutil.copy(REPO / "deploy/local/probe.py", local / "probe.py")
        # the patches decide the binary's stamp: the same ones, so the linked binary is current
        shutil.copytree(REPO / "deploy/local/ferretdb-patches", local / "ferretdb-patches")
        shutil.copy(REPO / "deploy/compose.yaml", root / "deploy/compose.yaml")
        (root / ".cache/bin").mkdir(parents=True)
        (root / ".cache/bin/ferretdb").symlink_to(FERRETDB)
        shutil.copy(FERRETDB.with_name("ferretdb.stamp"), root / ".cache/bin/ferretdb.stamp")
        if (REPO / ".venv").exists():
            (root / ".venv").symlink_to(REPO / ".venv")  # the probes use its pymongo
        self.amqp_port, self.mgmt_port, self.mongo_port = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PAMONG_")
                    and k not in ("AMQP_URI", "MONGO_URI", "RABBIT_MANAGEMENT_URL")}
        self.env.update({
            "PAMONG_AMQP_PORT": str(self.amqp_port),
            "PAMONG_RABBIT_MGMT_PORT": str(self.mgmt_port),
            "PAMONG_RABBIT_DIST_PORT": str(free_port()),
            "PAMONG_RABBIT_NODENAME": f"pamong-stacktest-{uuid.uuid4().hex[:8]}@localhost",
            "PAMONG_MONGO_PORT": str(self.mongo_port),
            "PAMONG_NO_DOCKER": "1",
            "PAMONG_NO_INSTALL": "1",
        })

    def run(self, *args, check=True, **env):
        result = subprocess.run(
            [str(self.root / "deploy/local/stack.sh"), *args], env={**self.env, **env},
            capture_output=True, text=True, timeout=240)
        if check and result.returncode != 0:
            raise AssertionError(f"stack.sh {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr}")
        return result

    def exported(self):
        """What ``eval "$(stack.sh env)"`` would export."""
        out = {}
        for line in self.run("env").stdout.splitlines():
            for word in shlex.split(line)[1:]:
                key, _, value = word.partition("=")
                out[key] = value
        return out

    def pid(self, name):
        path = self.root / ".run" / name
        return int(path.read_text()) if path.exists() and path.read_text().strip() else None

    def fdb_pid(self):
        return self.pid("ferretdb.pid")

    def rabbit_pid(self):
        return self.pid("rabbitmq/rabbit.pid")

    @property
    def tmpfs_data(self):
        """Where the script keeps FerretDB's data with PAMONG_DB_TMPFS=1."""
        repo_hash = hashlib.sha1(str(self.root).encode()).hexdigest()[:10]  # noqa: S324
        return f"/dev/shm/pamong-{repo_hash}/ferretdb"  # noqa: S108 - the script's, not ours

    def fdb_data(self):
        for line in (self.root / ".run/ferretdb.settings").read_text().splitlines():
            if line.startswith("data="):
                return line[len("data="):]
        return None

    def probe(self, kind, uri):
        return subprocess.run(
            [str(self.root / ".venv/bin/python"), str(self.root / "deploy/local/probe.py"),
             kind, uri], capture_output=True).returncode == 0


def alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, TypeError):
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mongo(uri):
    return MongoClient(uri, serverSelectionTimeoutMS=5000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not FERRETDB.exists() or not FERRETDB.with_name("ferretdb.stamp").exists():
        pytest.skip(f"no FerretDB built at {FERRETDB} (the stack runs elsewhere)")
    if not _rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed (the stack runs elsewhere)")
    copy = StackCopy(tmp_path_factory.mktemp("stack") / "repo")
    yield copy
    pids = [copy.fdb_pid(), copy.rabbit_pid()]
    copy.run("clean", check=False)
    for pid in pids:  # clean failed to stop one of ours: do not leave it behind
        if pid and alive(pid):
            os.kill(pid, 9)


def test_up_after_down_rabbitmq_in_a_shell_with_the_env_restarts_the_broker(stack):
    stack.run("up")
    env = stack.exported()
    with mongo(env["MONGO_URI"]) as client:
        client.pamong_stacktest.things.insert_one({"_id": "kept"})
    fdb = stack.fdb_pid()

    stack.run("down", "rabbitmq")
    assert stack.fdb_pid() == fdb and alive(fdb), "down rabbitmq touched the database"
    up = stack.run("up", check=False, **env)  # the URIs exported, as after `eval $(... env)`

    assert up.returncode == 0, up.stderr
    assert alive(fdb) and stack.fdb_pid() == fdb, f"up stopped the database:\n{up.stderr}"
    assert stack.probe("amqp", env["AMQP_URI"]), f"the broker was not restarted:\n{up.stderr}"
    assert stack.probe("mgmt", env["RABBIT_MANAGEMENT_URL"])
    with mongo(env["MONGO_URI"]) as client:
        assert client.pamong_stacktest.things.find_one({"_id": "kept"})
    assert stack.exported() == env
    assert stack.run("status", check=False).returncode == 0


def test_up_after_down_db_in_a_shell_with_the_env_restarts_the_database(stack):
    stack.run("up")
    env = stack.exported()
    rabbit = stack.rabbit_pid()

    stack.run("down", "db")
    up = stack.run("up", check=False, **env)

    assert up.returncode == 0, up.stderr
    assert alive(rabbit) and stack.rabbit_pid() == rabbit, f"up stopped RabbitMQ:\n{up.stderr}"
    assert stack.probe("mongo", env["MONGO_URI"]), f"the database was not restarted:\n{up.stderr}"
    assert stack.exported() == env


def test_up_keeps_a_uri_of_our_broker_as_given(stack):
    stack.run("up")
    env = stack.exported()
    vhost, management = "kept", env["RABBIT_MANAGEMENT_URL"]
    requests.put(f"{management}/api/vhosts/{vhost}", timeout=10).raise_for_status()
    requests.put(f"{management}/api/permissions/{vhost}/guest", timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    uri = f"amqp://guest:guest@localhost:{stack.amqp_port}/{vhost}"

    up = stack.run("up", **{**env, "AMQP_URI": uri})  # our node, the user's vhost

    assert stack.exported()["AMQP_URI"] == uri, up.stderr
    stack.run("up")  # without it: our own URI again
    assert stack.exported() == env


def test_env_and_status_after_a_partial_down_say_so(stack):
    stack.run("up")
    stack.run("down", "db")  # (the database: it restarts in a second, RabbitMQ in eight)

    env = stack.run("env", check=False)
    status = stack.run("status", check=False)

    assert env.returncode != 0 and env.stdout == "" and "database is down" in env.stderr
    assert status.returncode == 3, status.stdout + status.stderr
    assert "rabbitmq" in status.stdout and "answers" in status.stdout
    stack.run("up")
    assert stack.run("status", check=False).returncode == 0


def test_up_keeps_the_data_where_it_is_asked_to(stack):
    on_disk = str(stack.root / ".run/ferretdb")
    stack.run("up")
    uri = stack.exported()["MONGO_URI"]
    with mongo(uri) as client:
        client.pamong_stacktest.things.replace_one({"_id": "on disk"}, {}, upsert=True)

    tmpfs = stack.run("up", PAMONG_DB_TMPFS="1")  # e.g. `make test` after `make run`
    assert stack.fdb_data() == stack.tmpfs_data, tmpfs.stderr
    assert stack.exported()["PAMONG_STACK_DB_DATA"] == stack.fdb_data()
    with mongo(uri) as client:
        assert client.pamong_stacktest.things.find_one({"_id": "on disk"}) is None
        client.pamong_stacktest.things.insert_one({"_id": "throw-away"})

    again = stack.run("up")  # e.g. `make run` after `make test`: data on disk again
    assert stack.fdb_data() == on_disk, again.stderr
    assert on_disk in again.stderr  # it says where the data is
    with mongo(uri) as client:
        assert client.pamong_stacktest.things.find_one({"_id": "on disk"})
        assert client.pamong_stacktest.things.find_one({"_id": "throw-away"}) is None

    fdb = stack.fdb_pid()
    stack.run("up")  # same request: the running server is reused
    assert stack.fdb_pid() == fdb


@pytest.fixture
def foreign_ferretdb(tmp_path):
    """A database this script did not start (its own binary invocation, port and data)."""
    port = free_port()
    process = subprocess.Popen(
        [str(FERRETDB), "--handler=sqlite", f"--sqlite-url=file:{tmp_path}/",
         f"--listen-addr=127.0.0.1:{port}", "--telemetry=disable", "--debug-addr=-",
         f"--state-dir={tmp_path}", "--log-level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/"
    with mongo(uri) as client:
        client.admin.command("ping")
    yield port, uri, process
    process.kill()
    process.wait()


def test_never_stops_what_it_did_not_start(stack, foreign_ferretdb):
    port, uri, foreign = foreign_ferretdb
    stack.run("up")

    used = stack.run("up", MONGO_URI=uri)  # a database that answers: used, not managed
    assert stack.exported()["MONGO_URI"] == uri, used.stderr
    stack.run("down")
    assert foreign.poll() is None, "down stopped a database it did not start"

    taken = stack.run("up", check=False, PAMONG_MONGO_PORT=str(port))
    assert taken.returncode != 0
    assert f"127.0.0.1:{port} is already taken" in taken.stderr
    assert foreign.poll() is None, "up stopped a database it did not start"
    with mongo(uri) as client:
        client.admin.command("ping")
    assert stack.run("status", check=False).returncode == 3  # nothing of ours is up

"""/health/ready follows the database: 503 while it is down, 200 again once it is back,
without restarting the service. The database here is a private FerretDB on its own port,
so stopping it does not disturb the rest of the suite."""

import os
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from pamong.health import HealthEndpoints
from pamong.storage import Mongo
from pamong.testing import free_port, running, wait_until

pytestmark = pytest.mark.reliability

FERRETDB = Path(os.environ.get("PAMONG_FERRETDB_BIN",
                               Path(__file__).resolve().parents[2] / ".cache/bin/ferretdb"))


class ReadyProbe(HealthEndpoints):
    name = "readyprobe"
    db = Mongo()


class PrivateFerretDB:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [str(FERRETDB), "--handler=sqlite", f"--sqlite-url=file:{self.data_dir}/",
             f"--listen-addr=127.0.0.1:{self.port}", "--telemetry=disable", "--debug-addr=-",
             f"--state-dir={self.data_dir}", "--log-level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def accepting():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(accepting, timeout=20, message="private FerretDB listening")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.mark.skipif(not FERRETDB.exists(), reason="needs the FerretDB binary that `make` builds")
def test_ready_turns_503_when_the_database_stops_and_200_when_it_returns(config, tmp_path):
    database = PrivateFerretDB(tmp_path)
    database.start()
    port = free_port()
    cfg = dict(config, MONGO_URI=f"mongodb://127.0.0.1:{database.port}/",
               WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
    ready = f"http://127.0.0.1:{port}/health/ready"
    try:
        with running(cfg, ReadyProbe):
            assert requests.get(ready, timeout=10).status_code == 200
            database.stop()
            down = requests.get(ready, timeout=10)
            assert down.status_code == 503
            assert down.headers["Content-Type"].startswith("application/problem+json")
            assert "database" in down.text
            assert requests.get(f"http://127.0.0.1:{port}/health/live", timeout=10).ok
            database.start()
            wait_until(lambda: requests.get(ready, timeout=10).status_code == 200,
                       timeout=30, interval=0.5, message="ready again")
    finally:
        if database.process.poll() is None:
            database.stop()

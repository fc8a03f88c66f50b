"""`pamong run` and `pamong serve` as processes: a requested stop (Ctrl-C, `kill`) is a
graceful stop and exit 0, a module that dies by itself is exit 1, and every line on stderr is
JSON. Run from / with no PYTHONPATH: the command finds `tests.launcher_service` by itself."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import eventlet
import pytest
import requests

from pamong import launcher
from pamong.testing import free_port, wait_until

pytestmark = pytest.mark.reliability

HELLO = "tests.launcher_service:HelloService"


def json_lines(stderr):
    """Every line parsed; fails on the first one that is not JSON."""
    lines = []
    for line in stderr.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}\n--- stderr:\n{stderr}")
    return lines


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


class Run:
    """`pamong run HELLO` in a session of its own: its process group is the terminal's
    foreground group, which a Ctrl-C signals as a whole."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pamong.cli.main", "run", HELLO, "--first-port",
             str(self.port)],
            cwd="/", env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self.answers, timeout=30, message="the module answering")
        self.modules = self.module_pids()

    def answers(self):
        return answers(self.port, self.process)

    def module_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def finish(self, timeout=60):
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def kill_leftovers(self):
        for pid in self.modules:  # (a module runs in a process group of its own)
            if not gone(pid) and HELLO in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def run():
    started = []

    def start():
        started.append(Run())
        return started[-1]

    yield start
    for item in started:
        item.kill_leftovers()


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_ctrl_c_stops_gracefully_and_exits_0(run):
    app = run()
    [module] = app.modules
    slow = eventlet.spawn(requests.get, f"{app.url}/slow", timeout=10)
    eventlet.sleep(0.5)  # the request is in its worker

    os.killpg(app.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    code, out, err = app.finish()

    assert slow.wait().text == "done", "the stop did not let the in-flight request finish"
    assert code == 0, err
    assert "stopped unexpectedly" not in err
    lines = json_lines(err)
    assert any(line["message"] == f"SIGINT: stopping {HELLO}" for line in lines)
    assert not any(line["message"].startswith("killing services") for line in lines), \
        f"a second signal made it kill its workers:\n{err}"
    assert gone(module)
    assert f"http://127.0.0.1:{app.port}/" in out


def test_kill_stops_the_modules_too(run):
    app = run()
    [module] = app.modules

    app.process.terminate()  # `kill <pid>` of pamong run alone, as a process manager does
    code, _, err = app.finish()

    assert code == 0, err
    wait_until(lambda: gone(module), timeout=10, message="the module process gone")
    json_lines(err)


def answers(port, process):
    if process.poll() is not None:
        pytest.fail(f"exited {process.returncode}:\n{process.communicate()[1]}")
    try:
        return requests.get(f"http://127.0.0.1:{port}/hello", timeout=2).ok
    except requests.ConnectionError:
        return False


def test_an_idle_service_stops_at_once_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pamong.cli.main", "serve", HELLO, "--port", str(port)],
        cwd="/", env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: answers(port, process), timeout=30, message="the service answering")
        eventlet.sleep(1)  # idle: its hub polls with a long timeout
        process.terminate()
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err
    json_lines(err)


@pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")  # eventlet, on preexec_fn
def test_a_stop_signal_while_a_module_starts_still_stops_it(monkeypatch):
    """A Ctrl-C that lands inside Popen once the child runs (forced here: raised right after
    its exec): the module is recorded before the signal is handled, so it is stopped; and the
    module itself runs with the stop signals unblocked."""
    started = []

    class InterruptedPopen(subprocess.Popen):
        def _execute_child(self, *args, **kwargs):
            super()._execute_child(*args, **kwargs)  # the child has exec'd
            status = Path(f"/proc/{self.pid}/status").read_text()
            blocked = int(next(line.split()[1] for line in status.splitlines()
                               if line.startswith("SigBlk:")), 16)
            started.append((self.pid, blocked))
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(launcher.subprocess, "Popen", InterruptedPopen)
    monkeypatch.setattr(launcher.logs, "configure", lambda name: None)  # pytest keeps stderr
    try:
        assert launcher.run_all([HELLO], first_port=free_port()) == 0
        [(pid, blocked)] = started
        assert gone(pid), "the module started during the Ctrl-C still runs"
        assert not blocked & (1 << (signal.SIGTERM - 1) | 1 << (signal.SIGINT - 1))
    finally:
        for pid, _ in started:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def test_a_module_that_dies_is_exit_1(run):
    app = run()
    [module] = app.modules

    os.kill(module, signal.SIGKILL)
    code, _, err = app.finish()

    assert code == 1
    [line] = [line for line in json_lines(err) if line["level"] == "ERROR"]
    assert line["message"].startswith(f"stopped unexpectedly: {HELLO} (exit -9)")


def test_serve_that_cannot_start_logs_json_only():
    """Its port is taken: the start-up failure is a JSON line with its traceback, and so is
    eventlet's report of the green thread that failed."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "pamong.cli.main", "serve", HELLO, "--port",
             str(taken.getsockname()[1])],
            cwd="/", env=clean_env(), capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    lines = json_lines(result.stderr)
    [fatal] = [line for line in lines if line["level"] == "CRITICAL"]
    assert fatal["logger"] == "uncaught" and "Address already in use" in fatal["message"]
    assert "Traceback" in fatal["exc"]

"""Our own service launcher (instead of the ``nameko run`` command, which needs
``pkg_resources``): one service per process, graceful stop on SIGTERM/SIGINT.

The caller has already monkey-patched with eventlet (``pamong.cli.main`` does it first).
"""

import logging
import signal
import subprocess
import sys
import time

import eventlet
from nameko.runners import ServiceRunner

from pamong import logs

log = logging.getLogger(__name__)


def serve(service_cls, config, port=None):
    config = dict(config)
    if port:
        config["WEB_SERVER_ADDRESS"] = f"0.0.0.0:{port}"
    config.setdefault("WEB_SERVER_ADDRESS", "0.0.0.0:8000")
    logs.configure(service_cls.name)
    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    stopping = eventlet.event.Event()

    def on_signal(signum, frame):
        # Ctrl-C reaches every process of the group, and `pamong run` then sends SIGTERM too:
        # a second signal stops waiting for in-flight workers. A handler runs inside the
        # eventlet hub, which must not block: hand the work to green threads.
        if stopping.ready():
            eventlet.spawn_n(runner.kill)
        else:
            stopping.send(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.start()
    log.info("%s serving on %s", service_cls.name, config["WEB_SERVER_ADDRESS"])
    runner_done = eventlet.spawn(runner.wait)
    eventlet.spawn(lambda: (stopping.wait(), runner.stop()))
    runner_done.wait()


def seed_demo(modules, first_port, config):
    """Load each module's demo data through its own API, in module order."""
    import importlib

    import requests

    for offset, name in enumerate(modules):
        try:
            seed = importlib.import_module(f"services.{name}.seed").seed
        except ModuleNotFoundError:
            continue
        base_url = f"http://127.0.0.1:{first_port + offset}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base_url}/health/ready", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not become ready within 60 s; demo data not loaded")
            time.sleep(0.5)
        seed(base_url, config)


def run_all(modules, first_port=8001, demo_config=None):
    """Start each module in its own process; stop them all on Ctrl-C. Returns an exit code.

    With ``demo_config``, each module that has ``services/<name>/seed.py`` gets its demo data
    once it answers (``seed(base_url, config)``; seeds are idempotent, so a restart is fine).
    """
    if not modules:
        print("no modules installed under services/ yet: RabbitMQ and the database are up "
              "(`make stop` stops them); nothing to serve")
        return 0
    processes = {}
    for offset, name in enumerate(modules):
        port = first_port + offset
        processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "pamong.cli.main", "serve", name, "--port", str(port)]
        )
        print(f"{name:12} http://127.0.0.1:{port}/api/{name}/v1/  (health: /health/ready)")
    try:
        if demo_config is not None:
            seed_demo(modules, first_port, demo_config)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        failed = [n for n, p in processes.items() if p.poll() is not None]
        print(f"stopped unexpectedly: {', '.join(failed)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

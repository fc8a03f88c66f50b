"""Our own service launcher (instead of the ``nameko run`` command, which needs
``pkg_resources``): one service per process, graceful stop on SIGTERM/SIGINT.

``pamong run`` (``run_all``) owns the stop of its module processes: Ctrl-C, ``kill`` or a
closed terminal asks it to stop, it sends each module one SIGTERM (a graceful stop: in-flight
workers finish) and exits 0. The modules run in a process group of their own, so the
terminal's Ctrl-C does not reach them as well (a second signal means "stop now"); a second
Ctrl-C does send that. Only a module that exits without being asked makes it exit 1.

The caller has already monkey-patched with eventlet (``pamong.cli.main`` does it first).
"""

import gc
import logging
import signal
import subprocess
import sys
import time

import eventlet
from nameko.runners import ServiceRunner

from pamong import logs
from pamong.modules import module_ports

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
        # the first signal stops gracefully; a second one stops waiting for in-flight workers.
        # A handler runs inside the eventlet hub, which must not block: hand the work to
        # green threads.
        if stopping.ready():
            eventlet.spawn_n(runner.kill)
        else:
            stopping.send(signum)

    def keep_the_hub_awake():
        # a signal does not cut the hub's poll short (Python retries it with the time left,
        # PEP 475; up to 60 s when idle), so what on_signal sets in motion would wait that
        # long: poll at most 0.2 s at a time
        while not stopping.ready():
            eventlet.sleep(0.2)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    eventlet.spawn_n(keep_the_hub_awake)
    runner.start()
    settle_collector(config)
    log.info("%s serving on %s", service_cls.name, config["WEB_SERVER_ADDRESS"])
    runner_done = eventlet.spawn(runner.wait)
    eventlet.spawn(lambda: (stopping.wait(), runner.stop()))
    runner_done.wait()


def settle_collector(config):
    """Once the service has started: what start-up built (modules, templates, schemas) lives
    as long as the process, so it leaves the cyclic collector's scans (``gc.freeze``), and
    the collector runs after ``GC_THRESHOLD`` allocations instead of 700. A request or event
    allocates about a thousand objects, and every collection walked them all: a tenth of
    notify's CPU per message in the bench (with Rpc's cycle, now broken), under 1 % after."""
    gc.freeze()
    gc.set_threshold(int(config["GC_THRESHOLD"]), 10, 10)


def page_links(module):
    """``PAGE_LINKS`` of ``services/<module>/pages.py``: ``[(path, label)]`` for the console;
    none when the module has no pages (or they cannot be imported: the module's own process
    reports that)."""
    import importlib

    try:
        return importlib.import_module(f"services.{module}.pages").PAGE_LINKS
    except Exception:  # noqa: BLE001 - a listing only
        return []


def prepare_demo(modules, config):
    """Demo data a module writes before it starts (``before_start(config)`` in its
    ``seed.py``): data its own timers must find in place when they first run."""
    import importlib

    for name in module_ports(modules, 0):
        try:
            seed = importlib.import_module(f"services.{name}.seed")
        except ModuleNotFoundError:
            continue
        if hasattr(seed, "before_start"):
            seed.before_start(config)


def seed_demo(modules, first_port, config):
    """Load each module's demo data through its own API, in the suite's order (the directory
    first, so the others' replicas have people to record for)."""
    import importlib

    for name, port in module_ports(modules, first_port).items():
        try:
            seed = importlib.import_module(f"services.{name}.seed").seed
        except (ModuleNotFoundError, AttributeError):  # no seed, or only a before_start one
            continue
        base_url = f"http://127.0.0.1:{port}"
        if not wait_ready(base_url):
            raise SystemExit(f"{name} did not become ready within 60 s; demo data not loaded")
        seed(base_url, config)


def wait_ready(base_url, within=60, ask_timeout=2):
    """Until ``base_url`` answers ``/health/ready`` with 200: True, or False after ``within``
    seconds. Refused, reset or slower than ``ask_timeout`` (a module still starting while
    the others start beside it on a busy machine) all mean not ready yet."""
    import requests

    deadline = time.monotonic() + within
    while True:
        try:
            if requests.get(f"{base_url}/health/ready", timeout=ask_timeout).ok:
                return True
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


# what asks `pamong run` to stop every module: Ctrl-C, `kill`, the terminal closing
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopRequested(KeyboardInterrupt):
    """Raised by ``run_all``'s signal handler into whatever it waits on. A KeyboardInterrupt,
    so that the eventlet hub passes it on to the main green thread instead of swallowing it."""


def _start_module(processes, name, port):
    """Start ``pamong serve <name>`` and record it in ``processes`` with the stop signals
    held: one raising inside Popen once the child runs would leave it unrecorded, so never
    stopped. A signal that came meanwhile is delivered when this returns."""
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        processes[name] = subprocess.Popen(  # noqa: S603 - our interpreter and module
            [sys.executable, "-m", "pamong.cli.main", "serve", name, "--port", str(port)],
            process_group=0,  # out of the terminal's reach: we alone stop it
            # a child inherits the signal mask, and it must receive these signals
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, unblocked),
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)


def run_all(modules, first_port=8001, demo_config=None):
    """Start each module in its own process; stop them all on Ctrl-C. Returns an exit code:
    0 after a requested stop (a signal), 1 when a module stopped by itself.

    With ``demo_config``, each module that has ``services/<name>/seed.py`` gets its demo data:
    ``before_start(config)`` before any module starts, ``seed(base_url, config)`` once it
    answers (seeds are idempotent, so a restart is fine).
    """
    if not modules:
        print("no modules installed under services/ yet: RabbitMQ and the database are up "
              "(`make stop` stops them); nothing to serve")
        return 0
    logs.configure("run")
    processes = {}
    state = {"requested": None, "waiting": True}

    def on_signal(signum, frame):
        if state["requested"]:
            # asked again: the modules stop without waiting for their workers
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            return
        state["requested"] = signal.Signals(signum).name
        if state["waiting"]:
            raise _StopRequested

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        try:
            if demo_config is not None:
                prepare_demo(modules, demo_config)
            for name, port in module_ports(modules, first_port).items():
                _start_module(processes, name, port)
                print(f"{name:12} http://127.0.0.1:{port}/api/{name}/v1/  "
                      "(health: /health/ready)", flush=True)
                for path, label in page_links(name):
                    print(f"{'':12} http://127.0.0.1:{port}{path}  ({label})", flush=True)
            if demo_config is not None:
                seed_demo(modules, first_port, demo_config)
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
        except _StopRequested:
            pass
        finally:
            state["waiting"] = False  # from here on a signal no longer interrupts
        if state["requested"]:
            log.info("%s: stopping %s", state["requested"], ", ".join(processes))
            return 0
        failed = [f"{n} (exit {p.returncode})" for n, p in processes.items()
                  if p.poll() is not None]
        log.error("stopped unexpectedly: %s; stopping the others", ", ".join(failed))
        return 1
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)

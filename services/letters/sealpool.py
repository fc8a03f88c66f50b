"""Rendering and sealing letters in a few worker processes of lower CPU priority.

A letter's render and seal (fpdf2, segno, pyHanko: about 90 ms of CPU) holds the GIL: run in
the service's own OS threads it starved the eventlet hub that serves requests, and a signing
burst lost a quarter of its throughput to the seals of the letters signed just before. Here
they run in ``LETTERS_SEAL_PROCESSES`` separate processes started ``nice``'d by
``LETTERS_SEAL_NICE``: while requests keep the CPU busy the kernel serves them first, and the
seals catch up when it is free.

- **The worker** (``python -m services.letters.sealpool``): builds its sealer with
  ``build_sealer`` (the same function the service checks its keys with) from the settings in
  ``SEALPOOL_CONFIG`` (JSON; the passphrase stays ``LETTERS_KEYS_PASSWORD`` in the
  environment), then answers requests from stdin on stdout, one at a time, until stdin closes
  (the service stopped or died). It never imports eventlet; its logging goes to stderr.
- **Framing**: a 4-byte big-endian length, then a pickle (trusted: both ends are this
  module). A request is ``(printable, verify_url)``; an answer ``("ok", pdf, subject)`` or
  ``("error", exception class name, message)``.
- **``SealPool``** (in the service, under eventlet): ``LETTERS_SEAL_PROCESSES`` slots, each
  starting its worker when a seal first needs it (a worker takes about a second to import
  pyHanko), lending it out for one request at a time. A worker that died, or whose pipe broke
  mid-request, is killed and never lent again (that seal raises and the ``letter.signed``
  event is retried); its slot starts a new one for the next seal.
"""

import json
import logging
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from services.letters import sealing
from services.letters.document import render_letter

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KEYS_DIR = ".run/letters-ca"
# from the environment only: the handler's concurrency (as many seals at once as there are
# workers) is fixed when signed.py is imported, before any config is read
SEAL_PROCESSES = max(1, int(os.environ.get("LETTERS_SEAL_PROCESSES", "2")))
SEAL_NICE = int(os.environ.get("LETTERS_SEAL_NICE", "10"))
SEALER_SETTINGS = ("LETTERS_SEALER", "LETTERS_KEYS_DIR", "LETTERS_TRUST_ROOTS")
CONFIG_VARIABLE = "SEALPOOL_CONFIG"  # the worker's settings, from the service's config
HEADER = struct.Struct(">I")


class SealPoolError(Exception):
    """A seal worker died or broke off mid-request, or failed with something other than a
    ``SealingError`` (a bug in rendering): the event is retried."""


def repo_path(path):
    """A configured path; a relative one is taken from the repository root, not from the
    directory the service happens to be started in."""
    return REPO_ROOT / Path(path).expanduser()


@dataclass
class SealerSetup:
    kind: str
    sealer: sealing.Sealer | None = None
    trust_roots: list = field(default_factory=list)
    problem: str | None = None  # why letters cannot be sealed; None when they can


def build_sealer(config):
    """The sealer ``LETTERS_SEALER`` names (``development`` or ``pkcs12``, keys in
    ``LETTERS_KEYS_DIR``) and the roots a verification trusts; a sealer that cannot be set up
    is a ``problem``, not an exception (an unknown kind is: a typo, not an outage)."""
    kind = config.get("LETTERS_SEALER") or "development"
    if kind not in ("development", "pkcs12"):
        raise ValueError(f"LETTERS_SEALER is development or pkcs12, not {kind!r}")
    directory = repo_path(config.get("LETTERS_KEYS_DIR") or DEFAULT_KEYS_DIR)
    setup = SealerSetup(kind)
    try:
        if kind == "development":
            setup.sealer = sealing.DevelopmentSealer(directory)
            setup.trust_roots = [sealing.development_trust_root(directory)]
        else:
            # from the environment only: the typed config would read a passphrase of digits
            # as a number
            setup.sealer = sealing.Pkcs12Sealer(directory,
                                                os.environ.get("LETTERS_KEYS_PASSWORD"))
            if roots := config.get("LETTERS_TRUST_ROOTS"):
                setup.trust_roots = sealing.load_trust_roots(repo_path(roots))
            if not any(directory.glob("*.p12")):
                setup.problem = f"{directory} holds no .p12 key"
    except (OSError, ValueError) as error:
        setup.problem = str(error)
    return setup


def seal_letter(sealer, printable, verify_url):
    """``(sealed PDF, the signing certificate's subject)`` of the letter ``printable``."""
    signer = printable["signer"]
    pdf = sealer.seal(render_letter(printable, verify_url), signer_name=signer["name"],
                      signer_nip=signer["nip"],
                      reason=f"Naskah dinas nomor {printable['number']}",
                      location=printable["letterhead"]["city"])
    return pdf, sealing.sealed_by(pdf)


def write_message(stream, payload):
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_message(stream):
    """The next message's pickle, or None at the end of the stream (the other end is gone)."""
    header = _read_exactly(stream, HEADER.size)
    return None if header is None else _read_exactly(stream, HEADER.unpack(header)[0])


def _read_exactly(stream, size):
    data = b""
    while len(data) < size:  # a green pipe's read may return less than asked
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# -- the worker -----------------------------------------------------------------------------

def main():
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s seal worker %(process)d %(levelname)s %(message)s")
    # only answers go to stdout: anything a library prints lands on stderr instead
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # the service stops its workers itself (EOF, SIGTERM); a Ctrl-C in its terminal reaches
    # the whole process group and would only print a traceback here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup = build_sealer(json.loads(os.environ.get(CONFIG_VARIABLE) or "{}"))
    requests = sys.stdin.buffer
    while (request := read_message(requests)) is not None:
        printable, verify_url = pickle.loads(request)  # noqa: S301 - from the service itself
        write_message(answers, pickle.dumps(_answer(setup, printable, verify_url)))


def _answer(setup, printable, verify_url):
    try:
        if setup.sealer is None:
            raise sealing.SealingError(setup.problem)
        return ("ok", *seal_letter(setup.sealer, printable, verify_url))
    except Exception as error:  # reported to the service, which raises it for the retry
        if not isinstance(error, sealing.SealingError):
            log.exception("sealing failed")
        return ("error", type(error).__name__, str(error))


def _lower_priority(pid):
    """The worker's CPU priority, lowered by ``LETTERS_SEAL_NICE`` from the service's own:
    set here the moment it starts, not by the worker, which would first import pyHanko (a
    second of CPU) at the priority of the requests it must not slow down."""
    nice = min(os.getpriority(os.PRIO_PROCESS, 0) + SEAL_NICE, 19)
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as error:
        log.warning("cannot lower the priority of seal worker %s: %s", pid, error)


# -- the service's side ---------------------------------------------------------------------

class SealPool:
    """Up to ``processes`` seal workers, each started when a seal first needs it (a test that
    never seals starts none), all ended by ``close``."""

    def __init__(self, config, processes=SEAL_PROCESSES):
        from eventlet.queue import LightQueue  # the service's side only: the worker never
        # imports eventlet

        self.env = {**os.environ, CONFIG_VARIABLE: json.dumps(
            {key: config.get(key) for key in SEALER_SETTINGS}, default=str)}
        self.slots = LightQueue()  # an idle worker, or None: a slot with no process yet
        for _ in range(processes):
            self.slots.put(None)
        self.workers = set()  # every live one, idle or lent out: close() ends them all
        self.closed = False

    @property
    def pids(self):
        return sorted(worker.pid for worker in self.workers)

    def seal(self, printable, verify_url):
        """``(sealed PDF, the signing certificate's subject)``; waits (green) for a worker."""
        request = pickle.dumps((printable, verify_url))  # before a worker is taken: an
        # unpicklable letter must not leave a worker out of step
        worker = self._take()
        try:
            write_message(worker.stdin, request)
            answer = read_message(worker.stdout)
            if answer is None:
                raise SealPoolError(f"seal worker {worker.pid} ended mid-request")
        except BaseException:  # died, a broken pipe, or this green thread killed: the pipe
            # is out of step, so the worker is never lent again; its slot starts a new one
            self._end(worker)
            log.warning("seal worker %s broke off a seal (exit status %s): replaced",
                        worker.pid, worker.returncode)
            self.slots.put(None)
            raise
        self.slots.put(worker)
        status, *rest = pickle.loads(answer)  # noqa: S301 - from our own worker
        if status == "ok":
            return tuple(rest)
        kind, message = rest
        if kind == "SealingError":
            raise sealing.SealingError(message)
        raise SealPoolError(f"{kind}: {message}")

    def close(self):
        """End every worker (lent out ones too: their seals raise) and wait for them."""
        self.closed = True
        for worker in list(self.workers):
            self._end(worker)

    def _take(self):
        worker = self.slots.get()
        if self.closed:
            raise SealPoolError("the seal pool is closed: the service is stopping")
        if worker is not None and worker.poll() is not None:
            log.warning("seal worker %s had ended (exit status %s): replaced", worker.pid,
                        worker.returncode)
            self._end(worker)
            worker = None
        if worker is None:
            try:
                worker = self._spawn()
            except BaseException:
                self.slots.put(None)  # the next seal tries again
                raise
        return worker

    def _spawn(self):
        from eventlet.green import subprocess  # green pipes: a seal waits without the hub

        worker = subprocess.Popen([sys.executable, "-m", "services.letters.sealpool"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env,
                                  cwd=REPO_ROOT)
        self.workers.add(worker)
        _lower_priority(worker.pid)
        log.info("seal worker %s started", worker.pid)
        return worker

    def _end(self, worker):
        if worker not in self.workers:
            return  # ended already (by close, while its seal was in flight)
        self.workers.discard(worker)
        try:
            worker.kill()
        except ProcessLookupError:
            pass
        worker.wait()  # reaped: no zombie left behind
        for pipe in (worker.stdin, worker.stdout):
            pipe.close()


if __name__ == "__main__":
    main()

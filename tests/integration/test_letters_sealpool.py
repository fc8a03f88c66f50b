"""The letters' seal workers (``services/letters/sealpool.py``), real processes: a seal made
by one validates with pyHanko, the workers start on the first seal and run niced, a worker
killed while idle or mid-seal is replaced, a ``SealingError`` in a worker is one in the
service, and neither ``close`` nor a stopped service leaves a worker behind."""

import os
import shutil
import signal
import subprocess
import sys

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension

from pamong.testing import HttpClient, free_port, wait_until
from services.letters import sealing
from services.letters.sealpool import REPO_ROOT, SealPool, SealPoolError
from services.letters.signed import SealerProvider
from tests.integration.attendance_support import Running, seed_directory
from tests.integration.test_letters_document import sent, signed
from tests.unit.test_letters_document import NIP, SIGNER, VERIFY_URL, a_letter, shown_text

pytestmark = pytest.mark.integration


@pytest.fixture
def ca(tmp_path):
    return tmp_path / "ca"


@pytest.fixture
def pool(request, ca):
    """A factory of development-CA pools, each closed at the test's end."""
    def make(processes=1, **settings):
        made = SealPool({"LETTERS_KEYS_DIR": str(ca), **settings}, processes=processes)
        request.addfinalizer(made.close)
        return made
    return make


def running(pid):
    """Whether process ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def sealed_and_valid(pool, ca, letter=None):
    pdf, subject = pool.seal(letter or a_letter(), VERIFY_URL)
    check = sealing.check_signature(pdf, [sealing.development_trust_root(ca)])
    assert check["valid"] and check["covers_whole_file"] and check["problem"] is None
    assert check["signer"] == SIGNER["name"] and check["serial"] == NIP
    assert subject == sealing.sealed_by(pdf) and f"Serial Number: {NIP}" in subject
    return pdf


def test_a_seal_from_a_worker_validates_and_the_workers_start_late_and_niced(pool, ca):
    two = pool(processes=2)
    assert two.pids == []  # nothing started until a seal needs it
    sealed_and_valid(two, ca)
    [first] = two.pids
    assert first != os.getpid()

    # as many seals at once as workers, and more wait for one: all of them valid (checked
    # one after the other: pyHanko's validation runs an asyncio loop, one per OS thread)
    seals = [eventlet.spawn(two.seal, a_letter(number=f"000/{n}/OR"), VERIFY_URL)
             for n in range(5)]
    for n, seal in enumerate(seals):
        pdf, subject = seal.wait()
        check = sealing.check_signature(pdf, [sealing.development_trust_root(ca)])
        assert check["valid"] and subject == sealing.sealed_by(pdf)
        assert f"000/{n}/OR" in shown_text(pdf)[0]  # its own letter, not another's
    assert len(two.pids) == 2 and first in two.pids
    niced = min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)  # LETTERS_SEAL_NICE's default
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in two.pids} == {niced}


def test_a_worker_killed_while_idle_is_replaced_and_the_next_seal_works(pool, ca):
    one = pool()
    sealed_and_valid(one, ca)
    [pid] = one.pids
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not running(pid), message=f"worker {pid} dead")

    sealed_and_valid(one, ca)
    [replacement] = one.pids
    assert replacement != pid and running(replacement)


def test_a_worker_dying_mid_seal_fails_that_seal_and_is_replaced(pool, ca):
    one = pool()
    sealed_and_valid(one, ca)
    [pid] = one.pids
    os.kill(pid, signal.SIGSTOP)  # it cannot answer before it is killed
    seal = eventlet.spawn(one.seal, a_letter(), VERIFY_URL)
    wait_until(lambda: one.slots.qsize() == 0, message="the worker lent out")
    eventlet.sleep(0.1)  # the request written, its answer awaited
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SealPoolError, match=f"seal worker {pid} ended mid-request"):
        seal.wait()

    assert not running(pid)
    sealed_and_valid(one, ca)
    [replacement] = one.pids
    assert replacement != pid


def test_a_sealing_error_in_a_worker_is_a_sealing_error_here(pool, ca, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    one = pool(LETTERS_SEALER="pkcs12", LETTERS_KEYS_DIR=str(keys))
    with pytest.raises(sealing.SealingError, match=f"no signing key for NIP {NIP}: neither"):
        one.seal(a_letter(), VERIFY_URL)
    [pid] = one.pids  # the worker stays: the keys are fixed without a restart

    shutil.copy(sealing.DevelopmentSealer(ca).key_file(SIGNER["name"], NIP),
                keys / sealing.PEMDA_FILE)
    sealed_and_valid(one, ca)
    assert one.pids == [pid]


def test_close_ends_every_worker_and_a_worker_ends_with_its_input(pool, ca):
    two = pool(processes=2)
    sealed_and_valid(two, ca)
    pids = two.pids
    two.close()
    assert two.pids == [] and not any(running(pid) for pid in pids)
    with pytest.raises(SealPoolError, match="closed"):
        two.seal(a_letter(), VERIFY_URL)

    # the service gone (its end of stdin closed): the worker exits, printing nothing
    ended = subprocess.run([sys.executable, "-m", "services.letters.sealpool"], input=b"",
                           capture_output=True, cwd=REPO_ROOT, timeout=60,
                           env={**os.environ, "LETTERS_KEYS_DIR": str(ca)})
    assert ended.returncode == 0 and ended.stdout == b""


def test_a_stopped_letters_service_leaves_no_seal_worker(request, config, tmp_path):
    from services.letters.service import LettersService

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "LETTERS_REFERENCE_CACHE_SECONDS": 0,
                "LETTERS_SETTLE_INTERVAL_SECONDS": 0, "LETTERS_KEYS_DIR": str(tmp_path)}
    container = ServiceContainer(LettersService, settings)
    container.start()
    request.addfinalizer(container.kill)  # a failed assertion still ends the workers
    running_service = Running(HttpClient(f"http://127.0.0.1:{port}", config),
                              seed_directory(config, service="letters"), settings)
    letter = signed(running_service.client)
    sent(running_service.db, letter["id"])
    pids = get_extension(container, SealerProvider).sealing.pool.pids
    assert pids and all(running(pid) for pid in pids)

    container.stop()
    assert not any(running(pid) for pid in pids)

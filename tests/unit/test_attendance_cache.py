"""The attendance calendar's per-process cache: one load per key at a time."""

import threading

import pytest

from pamong.cache import TimedCache
from pamong.testing import wait_until

pytestmark = pytest.mark.unit


def test_concurrent_misses_of_one_key_make_one_load():
    cache, loads, release = TimedCache(60), [], threading.Event()
    started = threading.Semaphore(0)

    def load():
        loads.append(1)
        release.wait(10)
        return {"units": len(loads)}

    results = []

    def reader():
        started.release()
        results.append(cache.get(("units",), load))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: loads, timeout=5, message="the first load running")
    for _ in threads:  # every reader has started before the load may finish
        started.acquire(timeout=5)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(loads) == 1 and results == [{"units": 1}] * 8
    assert cache.get(("other",), lambda: "other") == "other"  # another key loads by itself

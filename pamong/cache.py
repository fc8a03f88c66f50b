"""A small per-process cache of values that change rarely."""

import threading
import time as clock


class TimedCache:
    """Values kept ``seconds`` per key: configuration read on every check-in changes rarely,
    and a change applies from a date (``effective_from``), so a replica seeing it a few
    seconds late changes nothing already judged. One load per key at a time: the 200 requests
    that find a value expired at 07:30 wait for one read instead of making 200."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.values = {}
        self.loading = {}

    def _fresh(self, key):
        hit = self.values.get(key)
        return hit if hit is not None and hit[0] > clock.monotonic() else None

    def get(self, key, load):
        if (hit := self._fresh(key)) is not None:
            return hit[1]
        with self.loading.setdefault(key, threading.Lock()):  # green under eventlet
            if (hit := self._fresh(key)) is not None:
                return hit[1]
            value = load()
            if len(self.values) > 10_000:
                self.values.clear()
            self.values[key] = (clock.monotonic() + self.seconds, value)
            return value

    def clear(self):
        self.values.clear()

"""A day in a Pemda on the whole suite, every module in its own process (issue 18 item 1):
``tests/e2e/day.py`` is the script; this test runs it undisturbed and prints its counts."""

import json

import pytest

from tests.e2e.day import Day

pytestmark = pytest.mark.e2e


def test_a_day_in_a_pemda(suite):
    day = Day(suite)
    for name, step in day.steps():
        print(f"[day] {name}", flush=True)
        try:
            step()
        except BaseException:
            print(f"[day] modules not running: {suite.exits() or 'none'}", flush=True)
            raise
    assert all(code is None for code in suite.alive().values()), suite.alive()
    counts = day.counts()
    print("[day] counts " + json.dumps(counts, indent=1, sort_keys=True))
    assert not suite.retried, f"requests repeated in an undisturbed day: {suite.retried}"

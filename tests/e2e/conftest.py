"""The suite fixture of tests/e2e and tests/reliability/test_day_chaos.py."""

import pytest

from tests.e2e.suite import Suite, SuiteClock


@pytest.fixture
def suite(config, tmp_path):
    """Every module in its own process on the test's vhost and databases, not started yet
    (``suite.clock.set(...)`` first, then ``suite.start_all()``); stopped at the end."""
    running = Suite(config, tmp_path, SuiteClock(tmp_path / "clock"))
    yield running
    running.stop()

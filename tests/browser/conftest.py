"""Fixtures of the page tests (tests/browser/harness.py has the helpers):

- ``chromium`` (session): the one headless Chromium of the run, started on first use and
  started again if it died;
- ``browser``: that Chromium, reset for this test (blank tab, default size, online, no
  geolocation, no storage of the origins the previous test opened, an empty record); when
  the test fails, the tab as it was is saved as ``.run/screenshots/FAILED-<test>.png``;
- ``page_check``: ``page_check(url, name, allow_failed=())`` = ``check_page(browser, ...)``;
- the module services of tests/integration (``directory``, ``attendance``, ``letters``,
  ``permits``, ``notify``, ...) and ``config`` (tests/conftest.py), as there.

Mark page test modules ``pytestmark = pytest.mark.browser``.
"""

import functools

import pytest

from tests.browser import harness
from tests.integration.conftest import (  # noqa: F401 - fixtures, used by name
    attendance,
    directory,
    letters,
    notify,
    notify_with,
    permit_events,
    permits,
    recorder,
    standins,
)


class _Chromium:
    def __init__(self):
        self.driver = None

    def get(self):
        if self.driver is not None and not harness.is_alive(self.driver):
            self.quit()
        if self.driver is None:
            self.driver = harness.start_chromium()
        return self.driver

    def quit(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001, S110 - it is gone either way
                pass
            self.driver = None


@pytest.fixture(scope="session")
def chromium():
    """The session's headless Chromium (a ``selenium`` Chrome WebDriver), restarted if it
    died; a test wants ``browser`` (the same, reset)."""
    holder = _Chromium()
    yield holder
    holder.quit()


@pytest.fixture
def browser(request, chromium):
    driver = chromium.get()
    harness.reset(driver)
    yield driver
    report = getattr(request.node, "_call_report", None)
    if report is not None and report.failed and harness.is_alive(driver):
        try:
            harness.screenshot(driver, f"FAILED-{request.node.name}")
        except Exception:  # noqa: BLE001, S110 - the failure itself matters more
            pass


@pytest.fixture
def page_check(browser):
    """``page_check(url, name, allow_failed=(), allow_console=(), allow_origins=())``:
    ``harness.check_page`` on this test's browser."""
    return functools.partial(harness.check_page, browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item._call_report = report
    return report


def pytest_terminal_summary(terminalreporter):
    if harness.screenshots_taken:
        terminalreporter.write_sep("-", "browser screenshots")
        # earlier runs' files stay (a CI clone has none): the newest are this run's
        terminalreporter.write_line(f"{len(harness.screenshots_taken)} screenshots of this run "
                                    f"in {harness.SCREENSHOTS}")
        terminalreporter.write_line("time in the browser: " + ", ".join(
            f"{step} {seconds:.1f} s ({harness.counts[step]}x)"
            for step, seconds in harness.timings.items()))

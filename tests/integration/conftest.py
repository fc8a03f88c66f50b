"""Fixtures shared by the integration tests."""

import pytest
from nameko.containers import ServiceContainer

from pamong.testing import EventRecorder, HttpClient, free_port
from services.directory.service import DirectoryService

# the event kernel's tests run twice: with classic queues (the local default) and with the
# quorum queues production declares (QUEUE_TYPE=quorum; `-m quorum` selects those runs)
BOTH_QUEUE_TYPES = {"test_events_kernel", "test_consumer_kernel"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_QUEUE_TYPES \
            and "queue_type" in metafunc.fixturenames:
        metafunc.parametrize("queue_type", ["classic", pytest.param("quorum",
                                                                    marks=pytest.mark.quorum)],
                             indirect=True)


@pytest.fixture
def directory(request, config):
    """A directory service in this process, with the test's config; its HTTP client."""
    port = free_port()
    container = ServiceContainer(DirectoryService,
                                 {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})
    container.start()
    request.addfinalizer(container.stop)
    return HttpClient(f"http://127.0.0.1:{port}", config)


@pytest.fixture
def recorder(config):
    """Every event the directory publishes during the test."""
    rec = EventRecorder(config, "directory")
    yield rec
    rec.close()


@pytest.fixture
def attendance(request, config):
    """An attendance service in this process with a seeded directory replica."""
    from services.attendance.service import AttendanceService
    from tests.integration.attendance_support import Running, seed_directory

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "ATTENDANCE_CONFIG_CACHE_SECONDS": 0,
                # the day-close timer off: a test closes days itself (closing tests start
                # their own service with it on)
                "ATTENDANCE_CLOSE_INTERVAL_SECONDS": 0}
    container = ServiceContainer(AttendanceService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config)
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings)


@pytest.fixture
def letters(request, config, tmp_path_factory):
    """A letters service in this process with a seeded directory replica; (client, db,
    settings)."""
    from services.letters.service import LettersService
    from tests.integration.attendance_support import Running, seed_directory

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "LETTERS_REFERENCE_CACHE_SECONDS": 0,
                "LETTERS_SETTLE_INTERVAL_SECONDS": 0,  # a test settles numbers itself
                # the development CA of the test run, not the one of `make run` in .run/
                "LETTERS_KEYS_DIR": str(tmp_path_factory.getbasetemp() / "letters-ca")}
    container = ServiceContainer(LettersService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="letters")
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings)


@pytest.fixture
def permit_events(config):
    """Every event the permits service publishes during the test."""
    rec = EventRecorder(config, "permits")
    yield rec
    rec.close()


@pytest.fixture
def permits(request, config):
    """A permits service in this process with a seeded directory replica; (client, db,
    settings). Its timers are off: a test runs a timer's round itself."""
    from services.permits.service import PermitsService
    from tests.integration.attendance_support import Running, seed_directory

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                "PERMITS_SLA_INTERVAL_SECONDS": 0, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0}
    container = ServiceContainer(PermitsService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="permits")
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings)


@pytest.fixture
def standins(request):
    """A WhatsApp Cloud API, an SMTP and an SMS gateway stand-in, started: (wa, smtp, sms)."""
    from tests.integration.notify_support import start_standins

    wa, smtp, sms = start_standins()
    for standin in (wa, smtp, sms):
        request.addfinalizer(standin.stop)
    return wa, smtp, sms


@pytest.fixture
def notify_with(request, config, standins):
    """Start a notify service in this process with settings of the test's own:
    ``notify_with(NOTIFY_QUIET_HOURS="00:00-23:59", service_cls=...)``; returns a
    ``NotifyRunning`` (client, db, settings, wa, smtp, sms). Its stand-ins are the test's
    (one set per test); its replica is seeded once."""
    from services.notify.service import SERVICE
    from tests.integration.attendance_support import attendance_db, seed_directory
    from tests.integration.notify_support import NotifyRunning, notify_settings

    wa, smtp, sms = standins
    seeded = []

    def start(service_cls=None, **overrides):
        port = free_port()
        settings = notify_settings(config, port, wa, smtp, sms, **overrides)
        container = ServiceContainer(service_cls or SERVICE, settings)
        container.start()
        request.addfinalizer(container.stop)
        if not seeded:
            seeded.append(seed_directory(config, service="notify"))
        running = NotifyRunning(HttpClient(f"http://127.0.0.1:{port}", config),
                                attendance_db(config, "notify"), settings, wa, smtp, sms,
                                container=container, port=port)
        wa.webhook_url = running.webhook_url
        sms.report_url = running.report_url
        return running

    return start


@pytest.fixture
def notify(notify_with):
    """A notify service in this process pointed at the stand-ins (``wa``, ``smtp``, ``sms``;
    ``wa.webhook_url`` and ``sms.report_url`` point back at it), with a seeded directory
    replica, timers off, no quiet hours and no pacing (tests/integration/notify_support.py);
    a ``NotifyRunning`` (client, db, settings, wa, smtp, sms)."""
    return notify_with()


def start_notify_process(config, settings, port=None, **env):
    """A notify replica in a child process (see tests/integration/notify_support.py)."""
    from tests.integration.notify_support import start_notify_process as start

    return start(config, settings, port, **env)

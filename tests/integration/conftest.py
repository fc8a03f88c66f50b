"""Fixtures shared by the integration tests."""

import pytest
from nameko.containers import ServiceContainer

from pamong.testing import EventRecorder, HttpClient, free_port
from services.directory.service import DirectoryService


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

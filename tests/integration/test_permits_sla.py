"""The SLA and expiry timers on the service's own database: the warning and each breach sent
once, also when a round repeats, after a restart and with two processes' rounds at once; no
alert while the file is with the applicant; the expiring notice once and the expiry as a
transition by the system.

A round is the timer's entrypoint called with a later day (``sla_timer(today=...)``) inside
the running service (nameko's ``entrypoint_hook``): real workers, real outbox, real broker."""

from collections import Counter
from datetime import date, timedelta

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from pamong.calendar import national_holidays
from pamong.testing import HttpClient, free_port, race, wait_until
from services.permits import domain
from services.permits.service import PermitsService
from services.permits.store import local_today
from tests.integration.attendance_support import seed_directory
from tests.integration.permits_support import (
    act,
    citizen,
    head,
    officer,
    publish_type,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.integration


class Permits:
    """A permits service in this process that a test can restart; a second one beside it."""

    def __init__(self, config, request):
        self.port = free_port()
        self.settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.port}",
                         "DIRECTORY_SNAPSHOT_ON_EMPTY": False,
                         "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                         "PERMITS_SLA_INTERVAL_SECONDS": 0,
                         "PERMITS_EXPIRY_INTERVAL_SECONDS": 0}
        self.containers = []
        request.addfinalizer(self.stop)
        self.container = self.start()
        self.db = seed_directory(config, service="permits")
        self.client = HttpClient(f"http://127.0.0.1:{self.port}", config)

    def start(self, settings=None):
        container = ServiceContainer(PermitsService, settings or self.settings)
        container.start()
        self.containers.append(container)
        return container

    def restart(self):
        self.container.stop()
        self.containers.remove(self.container)
        self.container = self.start()

    def beside(self):
        """A second process's service on the same broker and database (another port)."""
        return self.start({**self.settings, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})

    def stop(self):
        for container in self.containers:
            container.stop()
        self.containers = []

    def round(self, timer, day, container=None):
        with entrypoint_hook(container or self.container, timer) as hook:
            return hook(today=day)


@pytest.fixture
def service(config, request):
    return Permits(config, request)


def stored(db, app_id):
    return db.applications.find_one({"_id": app_id})


def alerts_of(db, permit_events, app_id):
    """The SLA and expiry events of the application once its outbox is relayed."""
    wait_until(lambda: not stored(db, app_id).get("_outbox"), message="outbox relayed")
    return Counter((e["type"], e["data"].get("scope")) for e in permit_events.events()
                   if e["data"]["id"] == app_id and e["type"] in (
                       "permit.sla_warning", "permit.sla_breached", "permit.expiring",
                       "permit.expired"))


def working_day(start, n):
    holidays = {**national_holidays(start.year), **national_holidays(start.year + 1)}
    return domain.add_working_days(start, n, set(holidays))


def test_warning_and_breaches_once_each_across_repeats_and_a_restart(service, permit_events):
    client, db = service.client, service.db
    publish_type(client)  # SIP: 5 working days (pendaftaran 1, teknis 2, keputusan 1, ...)
    app = step(client, submitted(client), "register", officer(client))
    today = local_today(service.settings)
    warning_day, breach_day = working_day(today, 3), working_day(today, 6)
    # registered today: 2 days left after 3 working days (also the technical stage's 2 + 1)
    assert stored(db, app["id"])["sla"]["next_check"] == warning_day.isoformat()

    assert service.round("sla_timer", warning_day - timedelta(days=1)) == 0
    assert service.round("sla_timer", warning_day) == 2
    assert service.round("sla_timer", warning_day) == 0
    service.restart()
    assert service.round("sla_timer", warning_day) == 0
    file = stored(db, app["id"])
    assert sorted(file["sla"]["alerts"]) == ["breach:teknis", "warning:total"]
    assert file["sla"]["next_check"] == breach_day.isoformat()
    assert file["version"] == app["version"]  # an alert does not turn officers away
    assert service.round("sla_timer", breach_day) == 1
    service.restart()
    assert service.round("sla_timer", breach_day) == 0
    assert service.round("sla_timer", breach_day + timedelta(days=30)) == 0
    assert stored(db, app["id"])["sla"]["next_check"] is None  # nothing left to send

    assert alerts_of(db, permit_events, app["id"]) == Counter({
        ("permit.sla_warning", "total"): 1, ("permit.sla_breached", "teknis"): 1,
        ("permit.sla_breached", "total"): 1})
    warning = next(e for e in permit_events.events() if e["type"] == "permit.sla_warning")["data"]
    assert (warning["days_used"], warning["days_left"], warning["sla_days"]) == (3, 2, 5)
    assert warning["officer"] == "officer-1" and warning["state"] == "registered"
    assert warning["registration_number"] == app["registration_number"]
    # the officer still acts on the version they read
    step(client, app, "start_review", officer(client))


def test_two_processes_rounds_at_once_send_each_alert_once(service, permit_events):
    client, db = service.client, service.db
    publish_type(client)
    apps = [step(client, submitted(client), "register", officer(client)) for _ in range(5)]
    other = service.beside()
    day = working_day(local_today(service.settings), 3)
    sent = race([service.container, other], lambda c: service.round("sla_timer", day, c))
    assert sum(sent) == 10
    assert service.round("sla_timer", day, other) == 0
    for app in apps:
        assert alerts_of(db, permit_events, app["id"]) == Counter({
            ("permit.sla_warning", "total"): 1, ("permit.sla_breached", "teknis"): 1})


def test_no_alert_while_the_file_is_with_the_applicant(service, permit_events):
    client, db = service.client, service.db
    publish_type(client)
    pemohon, petugas = citizen(client), officer(client)
    app = step(client, submitted(client, pemohon), "return", petugas,
               missing_items=["STR kedaluwarsa"])
    assert stored(db, app["id"])["sla"]["next_check"] is None
    today = local_today(service.settings)
    assert service.round("sla_timer", today + timedelta(days=60)) == 0
    # the clock runs again from the resubmission: the front office's 1 day is over after 2
    app = step(client, app, "resubmit", pemohon)
    assert stored(db, app["id"])["sla"]["next_check"] == working_day(today, 2).isoformat()
    assert alerts_of(db, permit_events, app["id"]) == Counter()


def test_expiring_notice_once_then_the_system_expires_the_permit(service, permit_events):
    client, db = service.client, service.db
    publish_type(client, validity_months=1)
    petugas = officer(client)
    app = step(client, submitted(client), "register", petugas)
    app = step(client, app, "start_review", petugas)
    app = step(client, app, "recommend", reviewer(client))
    app = step(client, app, "sign", head(client))
    app = step(client, app, "issue", petugas)
    until = date.fromisoformat(app["permit"]["valid_until"])
    today = local_today(service.settings)
    assert until - today < timedelta(days=31)  # within PERMITS_EXPIRING_DAYS from the start

    assert service.round("expiry_timer", today) == 1
    assert service.round("expiry_timer", today) == 0
    assert service.round("expiry_timer", until) == 0  # the last valid day: still in force
    assert stored(db, app["id"])["state"] == "issued"
    assert service.round("expiry_timer", until + timedelta(days=1)) == 1
    service.restart()
    assert service.round("expiry_timer", until + timedelta(days=2)) == 0
    file = stored(db, app["id"])
    assert file["state"] == "expired" and file["version"] == app["version"] + 1
    last = file["timeline"][-1]
    assert (last["action"], last["from"], last["to"], last["by"]) == (
        "expire", "issued", "expired", {"sub": "system", "role": "service"})
    assert alerts_of(db, permit_events, app["id"]) == Counter({("permit.expiring", None): 1,
                                                          ("permit.expired", None): 1})
    expiring = next(e for e in permit_events.events() if e["type"] == "permit.expiring")["data"]
    assert expiring["days_left"] == (until - today).days and expiring["contact"]["phone"]
    changed = [e["data"] for e in permit_events.events() if e["type"] == "permit.status_changed"
               and e["data"]["to_state"] == "expired"]
    assert len(changed) == 1 and changed[0]["action"] == "expire"
    # a collected permit that was revoked is not expired later
    r = act(client, app["id"], "revoke", head(client), version=file["version"], reason="x")
    assert r.status_code == 409 and r.json()["state"] == "expired"

"""The attendance service: entrypoints only. Each concern is a mixin in its own module
(rules in ``domain``, storage in ``store`` and ``records``); this class puts them together."""

from nameko.dependency_providers import Config

from pamong.events.outbox import Outbox
from pamong.health import HealthEndpoints
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo
from pamong.web.openapi import openapi_endpoint
from pamong.web.pages import PageEndpoints
from services.attendance.assignments import AssignmentEndpoints
from services.attendance.checkin import CheckInEndpoints
from services.attendance.closing import Closing
from services.attendance.configuration import ConfigEndpoints
from services.attendance.corrections import CorrectionEndpoints
from services.attendance.leave import LeaveEndpoints
from services.attendance.me import MeEndpoints
from services.attendance.pages import AttendancePages
from services.attendance.reports import ReportEndpoints
from services.attendance.store import INDEXES, CalendarProvider


class AttendanceService(CheckInEndpoints, MeEndpoints, ConfigEndpoints, AssignmentEndpoints,
                        LeaveEndpoints, CorrectionEndpoints, Closing, ReportEndpoints,
                        AttendancePages, PageEndpoints, DirectoryReplica,
                        HealthEndpoints, openapi_endpoint("attendance")):
    name = "attendance"
    db = Mongo(indexes=REPLICA_INDEXES + INDEXES)
    outbox = Outbox()
    config = Config()
    calendar = CalendarProvider()


SERVICE = AttendanceService

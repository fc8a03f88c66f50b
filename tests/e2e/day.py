"""A day in a Pemda, played on the whole suite (``tests.e2e.suite``): the script both
``test_day.py`` (as it is) and ``tests/reliability/test_day_chaos.py`` (with crashes, a broker
restart and a database outage in between) run.

Each module's part of the day is a journey object (``tests/e2e/day_<module>.py``) whose
methods the day calls in order, with the suite's clock moved between them; every journey
asserts on its module's own state (its API and its database), and ``counts()`` says what it
counted for the "nothing lost, nothing twice" summary the tests print.
"""

from datetime import timedelta

from tests.e2e.day_attendance import AttendanceDay
from tests.e2e.day_directory import DirectoryDay
from tests.e2e.day_letters import LettersDay
from tests.e2e.day_permits import PermitsDay
from tests.e2e.suite import at, import_pemda, today_wib, working_day


class Day:
    """The scenario's steps in their order: ``steps()`` yields ``(name, callable)`` so that a
    chaos run can act during any of them (the journeys exist once the directory is imported,
    so every callable looks them up when it runs)."""

    def __init__(self, suite):
        self.suite = suite
        self.day = working_day(today_wib())
        self.world = None

    def steps(self):
        s, day = self.suite, self.day
        yield "06:30 every module starts", lambda: (s.clock.set(at(day, "06:30")),
                                                    s.start_all())
        yield "06:35 the BKD imports the directory", self._import
        yield "06:40 attendance and permits are set up", self._set_up
        yield "07:10 most employees check in on time", lambda: (
            s.move_clock(at(day, "07:10")), self.attendance.on_time())
        yield "07:20 two offline devices upload", lambda: self.attendance.offline()
        yield "07:25 a head signs a surat tugas", lambda: self.attendance.expect_assignment(
            self.letters.surat_tugas(self.attendance.assignment_candidates()))
        yield "07:50 the late ones, one outside the fence", lambda: (
            s.move_clock(at(day, "07:50")), self.attendance.late())
        yield "08:00 the two on assignment check in there", lambda: (
            self.attendance.on_assignment())
        yield "09:00 a transfer reaches every module", lambda: (
            s.move_clock(at(day, "09:00")), self._transfer())
        yield "09:30 a citizen's permit, from application to issue", lambda: (
            s.move_clock(at(day, "09:30")), self.permits.citizen_journey())
        yield "12:00 the citizen asks STATUS on WhatsApp", lambda: (
            s.move_clock(at(day, "12:00")), self.permits.status_question())
        yield "16:05 everyone checks out", lambda: (
            s.move_clock(at(day, "16:05")), self.attendance.check_out())
        yield "00:05 the day closes", lambda: (
            s.move_clock(at(day + timedelta(days=1), "00:05")), self.attendance.closed())
        yield "00:06 recap, dashboard and open data agree", lambda: self.permits.agree_with(
            self.attendance.present_count())

    def _import(self):
        self.world = import_pemda(self.suite)
        self.directory = DirectoryDay(self.suite, self.world, self.day)
        self.attendance = AttendanceDay(self.suite, self.world, self.day)
        self.letters = LettersDay(self.suite, self.world, self.day)
        self.permits = PermitsDay(self.suite, self.world, self.day)

    def _set_up(self):
        self.attendance.set_up()
        self.permits.set_up()

    def _transfer(self):
        nip, unit = self.directory.transfer(self.attendance.transfer_candidate())
        self.attendance.transfer_seen(nip, unit)
        self.letters.transfer_seen(nip, unit)
        self.directory.notify_sees(nip, unit)

    def counts(self):
        """``{module: {what: count}}`` of every journey."""
        return {name: journey.counts() for name, journey in (
            ("directory", self.directory), ("attendance", self.attendance),
            ("letters", self.letters), ("permits", self.permits))}

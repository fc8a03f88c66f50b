"""The directory's part of the day: the BKD's import (``suite.import_pemda``) and a transfer
that every other module must see (tests/e2e/day.py)."""

import json

from pamong.replica import EMPLOYEES
from tests.e2e.suite import eventually

API = "/api/directory/v1"


class DirectoryDay:
    def __init__(self, suite, world, day):
        self.suite, self.world, self.day = suite, world, day
        self.transferred = None

    def transfer(self, candidate):
        """The BKD moves ``candidate`` (``(nip, unit)``) to that unit from today; the
        directory's own record and history show it. Returns ``(nip, unit)``."""
        nip, unit = candidate
        before = self.world.employees[nip]["unit"]
        assert before != unit, "a transfer moves someone to another unit"
        self.suite.write("directory", "POST", f"{API}/employees/{nip}/transfer",
                         key=f"bkd-transfer-{nip}", roles=("admin",), opd="3510", expect=200,
                         json={"unit": unit, "effective_date": self.day.isoformat()})
        employee = self.suite.read("directory", f"{API}/employees/{nip}", roles=("admin",),
                                   opd="3510")
        assert employee["unit"] == unit, employee
        history = self.suite.read("directory", f"{API}/employees/{nip}/history",
                                  roles=("admin",), opd="3510")
        moved = json.dumps(history[-1]["changes"])  # the audit's last entry: the transfer
        assert before in moved and unit in moved, history[-1]
        self.transferred = (nip, before, unit)
        return nip, unit

    def notify_sees(self, nip, unit):
        """Notify resolves people (a supervisor, a unit's head, a time zone) from its replica:
        it holds ``nip`` in ``unit`` now."""
        self.replica_holds("notify", nip, unit)

    def replica_holds(self, module, nip, unit):
        eventually(lambda: (self.suite.db(module)[EMPLOYEES].find_one({"_id": nip}) or {})
                   .get("unit") == unit, f"{module}'s replica holding {nip} in {unit}")

    def counts(self):
        db = self.suite.db("directory")
        employees = db.employees.count_documents({})
        return {"employees": employees, "transfers": 1 if self.transferred else 0,
                "employees_in_every_replica": all(
                    self.suite.db(m)[EMPLOYEES].count_documents({}) == employees
                    for m in self.suite.modules if m != "directory")}

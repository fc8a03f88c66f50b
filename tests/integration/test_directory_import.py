"""CSV import and export of the directory against the real broker and database: dry runs
that name every bad row, all-or-nothing real runs, idempotent re-imports, transfers."""

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pamong.localtime import local_today
from pamong.storage import client_for, database_name
from pamong.testing import wait_until
from services.directory.importer import purge_files
from tests.integration.test_directory_api import API

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data" / "directory"
CSV = {"Content-Type": "text/csv; charset=utf-8"}


def post_csv(client, kind, text, dry_run=False, roles=("admin",), opd="3510"):
    query = "?dry_run=true" if dry_run else ""
    return client.as_staff("POST", f"{API}/imports/{kind}{query}", roles=roles, opd=opd,
                           data=text.encode(), headers=CSV)


def import_ok(client, kind, text):
    response = post_csv(client, kind, text)
    assert response.status_code == 200, response.text
    return response.json()


def import_sample(client):
    return [import_ok(client, kind, (DATA / f"{kind}.csv").read_text())
            for kind in ("units", "positions", "employees")]


def employee_count(client):
    response = client.as_staff("GET", f"{API}/employees?limit=200", roles=("admin",), opd="3510")
    return len(response.json()["items"])


def test_sample_imports_and_reimport_changes_nothing(directory, recorder):
    units, positions, employees = import_sample(directory)
    assert (units["created"], positions["created"], employees["created"]) == (4, 5, 6)
    assert employees["status"] == "done" and employees["errors"] == []
    wait_until(lambda: len(recorder.of("employee.upserted")) == 6, timeout=15)
    published = len(recorder.events())

    again = import_sample(directory)
    assert [(r["created"], r["updated"], r["events"]) for r in again] == [(0, 0, 0)] * 3
    assert [r["unchanged"] for r in again] == [4, 5, 6]
    wait_until(lambda: directory.as_staff("GET", "/health/ready").status_code == 200)
    assert len(recorder.events()) == published  # nothing new on the bus

    kabid = directory.as_staff("GET", f"{API}/employees/199004172015032001", roles=("admin",),
                               opd="3510").json()
    assert kabid["supervisor"] == "197811232005011002"  # the head of her bidang
    pppk = directory.as_staff("GET", f"{API}/employees/199306082023212014", roles=("admin",),
                              opd="3510").json()
    assert pppk["kind"] == "pppk" and pppk["supervisor"] == "197811232005011002"


def test_dry_run_names_every_bad_row_and_writes_nothing(directory):
    import_ok(directory, "units", (DATA / "units.csv").read_text())
    report = post_csv(directory, "employees", (DATA / "employees_bad.csv").read_text(),
                      dry_run=True)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["status"] == "checked" and body["dry_run"] is True
    lines = {e["line"] for e in body["errors"]}
    assert lines == {3, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16}
    assert 2 not in lines  # the first row is fine
    assert any(w["line"] == 11 for w in body["warnings"])  # NIK birth date: a warning only
    assert all("3510055804900004" not in e["reason"] for e in body["errors"] + body["warnings"])
    assert employee_count(directory) == 0

    real = post_csv(directory, "employees", (DATA / "employees_bad.csv").read_text())
    assert real.status_code == 422
    assert any(r.startswith("line 3:") for r in real.json()["errors"]["rows"])
    assert employee_count(directory) == 0


def test_rows_are_checked_against_the_directory_too(directory):
    import_ok(directory, "units", (DATA / "units.csv").read_text())
    import_ok(directory, "positions", (DATA / "positions.csv").read_text())
    text = (DATA / "employees.csv").read_text()
    header, *rows = text.splitlines()
    clash = rows[2].replace("197811232005011002", "197811232005011009")  # 2nd holder of a head
    unknown = rows[3].replace("3510.06.02", "3510.09.02").replace(  # a unit that does not exist
        "199004172015032001", "199004172015032009")
    body = post_csv(directory, "employees", "\n".join([header, *rows, clash, unknown]),
                    dry_run=True).json()
    reasons = {}
    for error in body["errors"]:
        reasons.setdefault(error["line"], []).append(error["reason"])
    assert set(reasons) == {4, 8, 9}, reasons  # both claimants of the post are named
    assert any("already held" in r for r in reasons[8])
    assert any("3510.09.02 does not exist" in r for r in reasons[9])


def test_transfer_detected_on_reimport(directory, recorder):
    import_sample(directory)
    text = (DATA / "employees.csv").read_text()
    moved = text.replace(
        "198707302010121001,Joko Susanto,,,L,30-07-1987,PNS,3510.06.01,,0878-3306-6001,,CLTN,,,",
        "198707302010121001,Joko Susanto,,,L,30-07-1987,PNS,3510.06.02,,0878-3306-6001,,CLTN,,,"
        "01-01-2027")
    assert moved != text
    report = import_ok(directory, "employees", moved)
    assert (report["transferred"], report["created"], report["unchanged"]) == (1, 0, 5)
    wait_until(lambda: recorder.of("employee.transferred"), timeout=15)
    transfer, = recorder.of("employee.transferred")
    assert transfer["data"]["from_unit"] == "3510.06.01"
    assert transfer["data"]["to_unit"] == "3510.06.02"
    assert transfer["data"]["effective_date"] == "2027-01-01"


def test_a_transfer_in_a_file_without_tmt_is_dated_the_day_of_the_import(directory,
                                                                          recorder):
    """The stored TMT_UNOR is the start in the old unit: a transfer read from a file without
    the column must not carry it."""
    import_sample(directory)
    header, *rows = (DATA / "employees.csv").read_text().splitlines()
    joko = next(r for r in rows if r.startswith("198707302010121001"))
    rows[rows.index(joko)] = joko = joko + "01-01-2020"  # TMT in the old unit
    import_ok(directory, "employees", "\n".join([header, *rows]))
    columns = next(csv.reader([header]))
    tmt = columns.index("TMT_UNOR")

    def without_tmt(line):
        cells = next(csv.reader([line]))
        return ",".join(f'"{c}"' if "," in c else c for c in cells[:tmt] + cells[tmt + 1:])

    moved = [without_tmt(r.replace(",3510.06.01,", ",3510.06.02,") if r == joko else r)
             for r in rows]
    report = import_ok(directory, "employees", "\n".join([without_tmt(header), *moved]))
    assert report["transferred"] == 1
    wait_until(lambda: recorder.of("employee.transferred"), timeout=15)
    transfer, = recorder.of("employee.transferred")
    assert transfer["data"]["effective_date"] == local_today().isoformat()
    stored = directory.as_staff("GET", f"{API}/employees/198707302010121001", roles=("admin",),
                                opd="3510").json()
    assert stored["effective_date"] == local_today().isoformat()


def test_uploaded_files_are_purged_after_the_retention_and_the_job_stays(directory,
                                                                          config):
    """The uploaded CSV holds whole NIKs: gone 30 days after the import ended."""
    import_sample(directory)
    db = client_for(config["MONGO_URI"])[database_name(config, "directory")]
    jobs = list(db.imports.find({}, {"chunks": 1}))
    assert len(jobs) == 3 and db.import_files.count_documents({}) == 3
    old, recent = jobs[0]["_id"], jobs[1]["_id"]
    now = datetime.now(UTC)
    db.imports.update_one({"_id": old}, {"$set": {"finished_at": now - timedelta(days=31)}})
    db.imports.update_one({"_id": recent}, {"$set": {"finished_at": now - timedelta(days=29)}})
    assert purge_files(db, 30) == 1
    assert db.import_files.count_documents({"_id": f"{old}:0000"}) == 0
    assert db.import_files.count_documents({}) == 2
    job = db.imports.find_one({"_id": old})
    assert job["status"] == "done" and job["changes"] > 0 and job["file_purged_at"]
    assert purge_files(db, 30) == 0  # once


def test_a_file_whose_import_died_while_saving_is_purged(directory, config):
    """A process killed between saving the job and finishing its file leaves a ``saving``
    job and part of the file (whole NIKs): an hour later it is purged and the job marked
    ``abandoned`` (nothing of it was applied); a job saving right now is left alone."""
    db = client_for(config["MONGO_URI"])[database_name(config, "directory")]
    now = datetime.now(UTC)
    for job_id, age in (("dead", timedelta(hours=2)), ("saving-now", timedelta(0))):
        db.imports.insert_one({"_id": job_id, "kind": "employees", "status": "saving",
                               "rows": 1, "chunks": 2, "created_at": now - age})
        db.import_files.insert_one({"_id": f"{job_id}:0000", "data": b"NIP,NIK"})
    assert purge_files(db, 30) == 1
    assert db.import_files.count_documents({"_id": "dead:0000"}) == 0
    assert db.imports.find_one({"_id": "dead"})["status"] == "abandoned"
    assert db.import_files.count_documents({"_id": "saving-now:0000"}) == 1


def test_export_round_trips_through_import(directory):
    import_sample(directory)
    for kind in ("units", "positions", "employees"):
        exported = directory.as_staff("GET", f"{API}/exports/{kind}", roles=("admin",),
                                      opd="3510")
        assert exported.status_code == 200 and exported.headers["Content-Type"].startswith(
            "text/csv")
        report = import_ok(directory, kind, exported.text)
        assert report["events"] == 0 and report["updated"] == 0, (kind, report)


def test_write_lock_lease_expiry_hands_over_and_stops_the_old_writer(config):
    """A writer that outlives its lease (a dead or stuck process) loses the lock to the next
    writer, and its next renew stops it instead of letting two writers interleave."""
    import pymongo

    from pamong.storage import database_name
    from pamong.web import Problem
    from services.directory.lock import WriteLock

    db = pymongo.MongoClient(config["MONGO_URI"])[database_name(config, "directory")]
    first = WriteLock(db, lease=0.3, wait=0).acquire()
    with pytest.raises(Problem) as busy:
        WriteLock(db, lease=0.3, wait=0).acquire()
    assert busy.value.status == 503
    second = WriteLock(db, lease=5, wait=5).acquire()  # waits for the lease to run out
    with pytest.raises(Problem) as lost:
        first.renew()
    assert lost.value.status == 503
    second.renew()
    second.release()
    assert db.locks.find_one()["owner"] is None


def test_columns_a_file_lacks_keep_the_stored_values(directory, recorder):
    import_sample(directory)
    wait_until(lambda: len(recorder.of("employee.upserted")) == 6, timeout=15)
    published = len(recorder.events())
    import csv
    import io

    # the same file without its NOMOR_HP and NIK columns
    table = list(csv.reader(io.StringIO((DATA / "employees.csv").read_text())))
    keep = [i for i, name in enumerate(table[0]) if name not in ("NOMOR_HP", "NIK")]
    out = io.StringIO()
    csv.writer(out).writerows([[cells[i] for i in keep] for cells in table])
    report = import_ok(directory, "employees", out.getvalue())
    assert (report["updated"], report["events"]) == (0, 0), report
    sekda = directory.as_staff("GET", f"{API}/employees/196805121994031003", roles=("admin",),
                               opd="3510").json()
    assert sekda["nik"] == "3510031205680001" and sekda["phone"] == "+6281233011001"
    assert len(recorder.events()) == published


def test_an_opd_admin_export_with_masked_niks_reimports_unchanged(directory):
    import_sample(directory)
    staff = {"roles": ("opd_admin",), "opd": "3510.06"}
    exported = directory.as_staff("GET", f"{API}/exports/employees", **staff)
    assert exported.status_code == 200 and "3510055704900003" not in exported.text
    assert "3510********0003" in exported.text
    response = directory.as_staff("POST", f"{API}/imports/employees", data=exported.content,
                                  headers=CSV, **staff)
    assert response.status_code == 200, response.text
    assert (response.json()["updated"], response.json()["events"]) == (0, 0)
    siti = directory.as_staff("GET", f"{API}/employees/199004172015032001", roles=("admin",),
                              opd="3510").json()
    assert siti["nik"] == "3510055704900003"  # still the whole NIK


def test_deactivating_a_unit_by_import_needs_it_empty(directory):
    import_sample(directory)
    text = (DATA / "units.csv").read_text().replace(
        "3510.06.02,Bidang Mutasi dan Promosi,bidang,,,,,,",
        "3510.06.02,Bidang Mutasi dan Promosi,bidang,,,,,,N")
    body = post_csv(directory, "units", text, dry_run=True).json()
    reasons = [e["reason"] for e in body["errors"]]
    assert any("active employees" in r for r in reasons), reasons
    assert any("active positions" in r for r in reasons), reasons


def test_concurrent_imports_of_one_file_apply_it_once(directory, recorder):
    """Two clerks upload the same file at once: the write lock runs one after the other, and
    the second finds everything in place (nothing written, nothing published twice)."""
    from concurrent.futures import ThreadPoolExecutor

    import_ok(directory, "units", (DATA / "units.csv").read_text())
    import_ok(directory, "positions", (DATA / "positions.csv").read_text())
    text = (DATA / "employees.csv").read_text()
    with ThreadPoolExecutor(2) as pool:
        reports = [r.json() for r in pool.map(lambda _: post_csv(directory, "employees", text),
                                              range(2))]
    assert sorted(r["created"] for r in reports) == [0, 6]
    assert sorted(r["unchanged"] for r in reports) == [0, 6]
    wait_until(lambda: len(recorder.of("employee.upserted")) == 6, timeout=15)
    assert len({e["data"]["nip"] for e in recorder.of("employee.upserted")}) == 6


def test_an_import_hands_a_struktural_post_from_one_holder_to_another(directory, config):
    """A rotation (mutasi) file: the Kabid retires and an analyst takes the post in the same
    file. The plan checked "one holder" over the whole file, so the import applies: the post's
    claim follows the new holder (a later single change naming the post is told who holds
    it). Before, the claim of the new holder met the old one's and the import failed."""
    import_sample(directory)
    text = (DATA / "employees.csv").read_text()
    lines = text.splitlines()
    agus, siti = (next(i for i, line in enumerate(lines) if line.startswith(nip))
                  for nip in ("197811232005011002", "199004172015032001"))
    lines[agus] = lines[agus].replace(",,,,", ",PENSIUN,,,", 1)
    lines[siti] = lines[siti].replace("ANALIS-KEPEGAWAIAN.3510.06.02", "KEPALA.3510.06.02")
    report = import_ok(directory, "employees", "\n".join(lines) + "\n")
    assert report["updated"] + report["transferred"] >= 2, report
    siti = directory.as_staff("GET", f"{API}/employees/199004172015032001", roles=("admin",),
                              opd="3510").json()
    assert siti["position"]["id"] == "KEPALA.3510.06.02"
    db = client_for(config["MONGO_URI"])[database_name(config, "directory")]
    assert db.positions.find_one({"_id": "KEPALA.3510.06.02"})["holder"] == "199004172015032001"
    other = directory.as_staff("PUT", f"{API}/employees/199306082023212014", roles=("admin",),
                               opd="3510", json={"name": "Dewi Lestari", "unit": "3510.06.02",
                                                 "position": "KEPALA.3510.06.02"})
    assert other.status_code == 422 and "199004172015032001" in other.text, other.text

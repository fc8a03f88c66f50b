"""Scenario ``directory``: importing N employees from a CSV file against inserting the same
documents raw.

Rows, one after the other in the same process, against the same broker and database:

(a) lean         raw pymongo ``insert_many(ordered=False)`` of the N CSV records alone (the
                 record's fields, dates as ISO strings; no view, no audit entry, no index)
                 into a fresh collection, in batches of ``ChangeWriter.INSERT_BATCH`` (200);
(b) import       the directory service (its own nameko container, over HTTP) with the demo
                 Pemda's units and positions already imported: ``POST /imports/employees``
                 of a CSV with N employees (valid unique NIPs, fungsional and pelaksana
                 posts only), timed until the HTTP response (checks, planning, the documents
                 with their events and audit entries, the relay publishing alongside);
(c) drain        from the same start until the relay has published every
                 ``employee.upserted`` (and deleted the import's outbox batches);
(d) replica      ``BenchReplica`` (the replica kit), its queues declared before the import
                 but started only after the drain, so it competes with nothing: it applies
                 the N queued events; events/s = N / (last - first applied, from the
                 done marks in the inbox day buckets);
(e) same docs    raw ``insert_many`` of the very documents the import stored (record, its
                 published view, its audit entry; the same indexes), batches of 200.

Target (issue: "versus a raw pymongo insert_many of the same documents"): import seconds /
(e) seconds <= 4. (b) / (a) is reported too: it also counts what storing the view and the
audit entry with each record costs.
"""

import time
from datetime import UTC, date, datetime, timedelta

from kombu import Connection
from prometheus_client import REGISTRY

from bench.common import machine, machine_line, scenario_env, write_results
from pamong.events.consumer import INBOX_BUCKET
from pamong.events.topology import declare_service
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo, client_for, database_name, ensure_indexes
from pamong.testing import HttpClient, free_port, running, wait_until
from services.directory import csvio
from services.directory.demo import demo_pemda
from services.directory.service import API, DirectoryService
from services.directory.store import INDEXES, ChangeWriter, storable

TARGET = 4.0  # import seconds / raw insert_many seconds of the same documents, at most
BATCH = ChangeWriter.INSERT_BATCH


class BenchReplica(DirectoryReplica):
    name = "benchreplica"
    db = Mongo(indexes=REPLICA_INDEXES)


# -- the data -------------------------------------------------------------------------------

def employees(n, positions):
    """N valid employees with unique NIPs, spread over the non-struktural positions."""
    posts = [p for p in positions if p["kind"] != "struktural" and p["active"]]
    records = []
    for i in range(n):
        birth = date(1970, 1, 1) + timedelta(days=i % 9000)  # NIPs differ in birth or sequence
        sequence = i // 9000 + 1
        gender = "L" if i % 2 else "P"
        nip = (f"{birth:%Y%m%d}{birth.year + 22}{birth.month:02d}"
               f"{1 if gender == 'L' else 2}{sequence:03d}")
        day = birth.day + (40 if gender == "P" else 0)
        post = posts[i % len(posts)]
        records.append({
            "nip": nip, "kind": "pns", "name": f"Pegawai Uji {i:05d}", "title_front": None,
            "title_back": "S.E." if i % 3 else None, "gender": gender, "birth_date": birth,
            "unit": post["unit"], "position": post["id"], "phone": f"+62812{i:08d}",
            "email": f"pegawai{i}@banyuwangikab.example", "status": "active",
            "nik": f"3510{i % 25 + 1:02d}{day:02d}{birth:%m%y}{sequence:04d}",
            "supervisor": None, "effective_date": None,
        })
    return records


# -- the rows -------------------------------------------------------------------------------

def run_insert_many(config, records):
    collection = client_for(config["MONGO_URI"])[database_name(config, "benchraw")].employees
    return insert_many(collection, [{"_id": r["nip"], **storable(r)} for r in records])


def insert_many(collection, docs):
    started = time.perf_counter()
    for i in range(0, len(docs), BATCH):
        collection.insert_many(docs[i:i + BATCH], ordered=False)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "docs_per_s": round(len(docs) / seconds, 1)}


def published(event_type):
    """Events the directory's relay has published and pulled from their outboxes (this
    process's counter: the services run here)."""
    return REGISTRY.get_sample_value("pamong_events_published_total",
                                     {"source": "directory", "type": event_type}) or 0


def applied(event_type):
    """Events the replica has handled."""
    handler = f"{BenchReplica.name}.replica_{event_type.replace('.', '_')}"
    return REGISTRY.get_sample_value("pamong_events_consumed_total", {
        "handler": handler, "type": event_type, "outcome": "ok"}) or 0


def post_csv(client, kind, text, timeout):
    response = client.request("POST", f"{API}/imports/{kind}", data=text.encode("utf-8"),
                              headers={"Content-Type": "text/csv"}, timeout=timeout,
                              token=client.token(roles=("admin",), opd="3510"))
    if response.status_code != 200:
        raise RuntimeError(f"import of {kind}: {response.status_code} {response.text[:2000]}")
    return response.json()


def run_pamong(config, demo, records, timeout):
    n = len(records)
    port = free_port()
    config = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    client = HttpClient(f"http://127.0.0.1:{port}", config)
    directory = client_for(config["MONGO_URI"])[database_name(config, DirectoryService.name)]
    replica = client_for(config["MONGO_URI"])[database_name(config, BenchReplica.name)]
    text = csvio.export("employees", records)
    # the replica's queues exist before any event is sent (as `pamong bus declare` does)
    with Connection(config["AMQP_URI"]) as connection:
        declare_service(connection, BenchReplica, len(config.get("RETRY_DELAYS", [1])))
    with running(config, DirectoryService):
        published_before = published("employee.upserted")
        post_csv(client, "units", demo["units"], timeout)
        post_csv(client, "positions", demo["positions"], timeout)

        started = time.time()
        report = post_csv(client, "employees", text, timeout)
        imported = time.time()
        if report["created"] != n:
            raise RuntimeError(f"import created {report['created']} of {n}: {report}")
        wait_until(lambda: published("employee.upserted") - published_before >= n,
                   timeout=timeout, interval=0.05, message="the outbox drained")
        drained = time.time()
    employees_before = applied("employee.upserted")
    with running(config, BenchReplica):
        replica_started = time.time()
        wait_until(lambda: applied("employee.upserted") - employees_before >= n,
                   timeout=timeout, interval=0.05, message="the replica holding every employee")

    queue = f"{BenchReplica.name}.replica_employee_upserted:"
    done = sorted(d["at"].timestamp() for name in replica.list_collection_names()
                  if name.startswith(INBOX_BUCKET)
                  for d in replica[name].find({"at": {"$exists": True}}, {"at": 1})
                  if d["_id"].startswith(queue))
    pending = directory["_outbox_batches"].count_documents({})
    held = replica.employees.count_documents({})
    if len(done) != n or pending or held != n:
        raise RuntimeError(f"{len(done)} events marked done, {pending} outboxes not empty, "
                           f"replica holds {held}; expected {n}, 0, {n}")
    span = done[-1] - done[0]
    seconds = imported - started
    stored = client_for(config["MONGO_URI"])[database_name(config, "benchstored")]
    ensure_indexes(stored, [type(i)("employees", i.keys) for i in INDEXES
                            if i.collection == "employees"])
    return {
        "stored_docs": insert_many(stored.employees, list(directory.employees.find({}))),
        "import": {"seconds": round(seconds, 3), "docs_per_s": round(n / seconds, 1),
                   "events": report["events"]},
        "drain": {"seconds": round(drained - started, 3)},
        "replica": {"seconds": round(done[-1] - replica_started, 3),
                    "events_per_s": round(n / span, 1), "span_s": round(span, 3)},
    }


# -- reporting ------------------------------------------------------------------------------

def verdict(rows):
    ratio = rows["import"]["seconds"] / rows["stored_docs"]["seconds"]
    of_lean = rows["import"]["seconds"] / rows["insert_many"]["seconds"]
    return {"ratio": round(ratio, 3), "of_lean": round(of_lean, 3), "target": TARGET,
            "verdict": "PASS" if ratio <= TARGET else "MISS"}


def table(rows):
    lines = ["| row | seconds | per second |", "|---|---:|---:|"]
    if "insert_many" in rows:
        r = rows["insert_many"]
        lines.append(f"| (a) raw insert_many of the lean CSV records, batches of {BATCH} | "
                     f"{r['seconds']:.2f} | {r['docs_per_s']:.0f} docs |")
    if "import" in rows:
        r = rows["import"]
        lines.append(f"| (b) pamong import, until the HTTP response | {r['seconds']:.2f} | "
                     f"{r['docs_per_s']:.0f} docs |")
        lines.append(f"| (c) ... until the outbox is drained | {rows['drain']['seconds']:.2f} "
                     "| |")
        r = rows["replica"]
        lines.append(f"| (d) replica applying the N queued events | {r['seconds']:.2f} | "
                     f"{r['events_per_s']:.0f} events |")
        r = rows["stored_docs"]
        lines.append(f"| (e) raw insert_many of the same documents (b) stored | "
                     f"{r['seconds']:.2f} | {r['docs_per_s']:.0f} docs |")
    return lines


def ratio_line(ratio):
    return (f"- import/insert_many of the same documents = {ratio['ratio']:.2f} (target <= "
            f"{ratio['target']}): **{ratio['verdict']}**\n"
            f"- import/insert_many of the lean records (no view, no audit entry, no index) = "
            f"{ratio['of_lean']:.2f}, for reference")


def section(result):
    """The lines of this scenario's section of RESULTS.md."""
    return [
        "N employees from one CSV file: (a) for reference, the N CSV records alone inserted "
        f"raw with pymongo `insert_many` in batches of {BATCH} (no view, no audit entry, no "
        "index); (b) the directory service's `POST /imports/employees` (checks every row "
        "against the directory, plans the derived views, writes each document with its audit "
        "entry, its `employee.upserted` event in an outbox batch per 200 documents, the relay "
        "publishing alongside), with the demo Pemda's units and positions already imported, "
        "timed until the HTTP response; (c) from the same start until the relay has published "
        "every event; (d) a `DirectoryReplica` started after that, applying the N queued "
        "events, events/s = N / (last - first event applied); (e) raw `insert_many` of the "
        "very documents (b) stored (record, published view, audit entry; the same indexes), "
        "the baseline of the target. The services run in the bench process.",
        "",
        f"Latest run: {result['timestamp']}, N = {result['employees']}, total wall "
        f"{result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(result["rows"]),
        "",
        "Target:",
        "",
        ratio_line(result["ratio"]),
    ]


def run(n, write=True):
    overrides = {"JWT_SECRET": "bench-secret-of-at-least-32-bytes-long!",
                 "DIRECTORY_SNAPSHOT_ON_EMPTY": False}
    timeout = max(300.0, n * 0.05)
    with scenario_env(**overrides) as (vhost, config):
        started = time.monotonic()
        print(f"directory: N = {n}, vhost {vhost}, databases {config['MONGO_DB_PREFIX']}*")
        env = machine(config)
        demo = demo_pemda()
        positions = [row.record for row in csvio.parse("positions", demo["positions"]).rows]
        records = employees(n, positions)
        rows = {"insert_many": run_insert_many(config, records)}
        print(f"  {'insert_many':<12} {rows['insert_many']}", flush=True)
        rows.update(run_pamong(config, demo, records, timeout))
        for name in ("import", "drain", "replica", "stored_docs"):
            print(f"  {name:<12} {rows[name]}", flush=True)

    ratio = verdict(rows)
    wall = time.monotonic() - started
    print()
    print("\n".join(table(rows)))
    print()
    print(ratio_line(ratio).replace("**", ""))
    print(f"\nwall time {wall:.0f} s")
    result = {"scenario": "directory", "employees": n,
              "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
              "wall_s": round(wall, 1), "machine": env, "rows": rows, "ratio": ratio,
              "target": TARGET}
    if write:
        write_results("directory", result, section(result))
    return ratio["verdict"] == "PASS"

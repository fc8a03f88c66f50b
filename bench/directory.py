"""Scenario ``directory``: importing N employees from a CSV file against inserting the same
documents raw; editing single employees at 300 and at 300 + N employees, by one client and by
several, against replacing the same documents raw.

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

Then the edit rows (issue 11's (a)-(d)), in a fresh set of databases (the same vhost) against
the directory service as production runs it: two ``pamong serve directory`` processes (one
port each) on the same database; each row times every request (``perf_counter`` around the
HTTP call) and reports p50, p99 and changes/s = PUTs / wall:

(f) edit, demo   the demo Pemda (300 employees) imported through the API, then E (``--edits``,
                 200) ``PUT /employees/<nip>`` by one client, alternating between the two
                 replicas, each on another employee and renaming it (the body is a GET of the
                 employee made before the timed loop, its name changed; every field the PUT
                 takes kept); each must answer 200, and a few are read back;
(g) edit, N more the same after importing the N employees of (b): E PUTs on imported
                 employees not edited before, spread over them;
(h) C clients    C (``--clients``, 10) concurrent clients (green threads; client i on replica
                 i % 2), each doing E PUTs on employees of its own: changes/s = C x E / (last
                 finish - first start), p50/p99 per request;
(i) replace_one  raw pymongo ``replace_one({"_id": nip}, doc)`` one after the other of a copy of
                 the very documents (g) edited (read back after (g), inserted into a scratch
                 collection with the same indexes), each with its name changed.

Targets (issue 11): p50 of (g) <= 1.5 x p50 of (f); changes/s of (h) >= 4 x (g)'s; changes/s
of (g) >= 0.1 x (i)'s. The scenario passes when the import target and these three hold.

(f)-(h) also report the CPU seconds every process taking part (this one, the two directory
processes, the local FerretDB and RabbitMQ) used during the timed loop, and cores busy = those /
the row's wall; CPUs / cores busy of (g) is the ceiling of (h)/(g) on this machine.
"""

import os
import subprocess
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from kombu import Connection
from prometheus_client import REGISTRY

from bench.common import (
    SERVERS,
    cpu_seconds,
    local_servers,
    machine,
    machine_line,
    scenario_env,
    write_results,
)
from pamong.events.consumer import INBOX_BUCKET
from pamong.events.topology import declare_service
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo, client_for, database_name, ensure_indexes
from pamong.testing import (
    HttpClient,
    drop_databases,
    free_port,
    race,
    running,
    serve_process,
    wait_until,
)
from services.directory import csvio
from services.directory.demo import demo_pemda
from services.directory.schemas import EmployeeBody
from services.directory.service import API, DirectoryService
from services.directory.store import INDEXES, ChangeWriter, storable

TARGET = 4.0  # import seconds / raw insert_many seconds of the same documents, at most
BATCH = ChangeWriter.INSERT_BATCH
EDIT_TARGETS = {  # issue 11: (what is compared, the bound, whether it is an upper bound)
    "p50_loaded_over_demo": ("edit p50 at 300 + N / at 300: (g)/(f)", 1.5, True),
    "concurrent_over_one": ("edits/s of C clients / of one: (h)/(g)", 4.0, False),
    "one_over_replace_one": ("edits/s of one client / raw replace_one: (g)/(i)", 0.1, False),
}
REPLICAS = 2  # directory processes in the edit rows, as production runs it
BODY_FIELDS = tuple(EmployeeBody().fields)  # what PUT /employees/<nip> takes
EMPLOYEE_INDEXES = [type(i)("employees", i.keys) for i in INDEXES if i.collection == "employees"]


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
    ensure_indexes(stored, EMPLOYEE_INDEXES)
    return {
        "stored_docs": insert_many(stored.employees, list(directory.employees.find({}))),
        "import": {"seconds": round(seconds, 3), "docs_per_s": round(n / seconds, 1),
                   "events": report["events"]},
        "drain": {"seconds": round(drained - started, 3)},
        "replica": {"seconds": round(done[-1] - replica_started, 3),
                    "events_per_s": round(n / span, 1), "span_s": round(span, 3)},
    }


# -- the edit rows --------------------------------------------------------------------------

def spread(items, k):
    """``k`` of ``items``, evenly spaced over them."""
    if k > len(items):
        raise ValueError(f"{k} wanted, only {len(items)} there")
    return [items[i * len(items) // k] for i in range(k)]


def latency_figures(latencies, seconds):
    """p50/p99 (nearest rank) of the request times and changes/s over the row's wall."""
    ordered = sorted(latencies)

    def pct(p):
        return ordered[max(0, -(-p * len(ordered) // 100) - 1)]

    return {"ops": len(ordered), "seconds": round(seconds, 3),
            "changes_per_s": round(len(ordered) / seconds, 1),
            "p50_ms": round(pct(50) * 1000, 1), "p99_ms": round(pct(99) * 1000, 1)}


def cpu_used(pids, task):
    """``task()``'s result and the CPU seconds ``pids`` used meanwhile."""
    before = cpu_seconds(pids)
    result = task()
    after = cpu_seconds(pids)
    return result, sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def cpu_figures(cpu_s, seconds):
    return {"cpu_s": round(cpu_s, 2), "cores_busy": round(cpu_s / seconds, 2)}


def cpu_accounting(pids):
    """What the CPU figures of (f)-(h) count: the processes, by kind, and a note when a
    server is not among them (e.g. a remote database)."""
    counted = dict(Counter(pids.values()))
    missing = [server for server in SERVERS.values() if server not in counted]
    note = (f"no local {' or '.join(missing)} process found (remote?): not counted"
            if missing else "")
    return {"cpu_count": os.cpu_count(), "processes": counted, "note": note}


def cpu_line(accounting):
    counted = ", ".join(f"{kind} x{n}" for kind, n in accounting["processes"].items())
    return f"CPU counted of: {counted}" + (f"; {accounting['note']}" if accounting["note"] else "")


def renamed(employee):
    """The PUT body renaming ``employee`` (as a GET shows it to ``admin``): every field the PUT
    takes as it is, the position by its id, the supervisor only when set explicitly."""
    body = {k: employee[k] for k in BODY_FIELDS if k in employee}
    body["position"] = (employee.get("position") or {}).get("id")
    body["supervisor"] = employee["supervisor"] if employee["supervisor_explicit"] else None
    body["name"] = f"{employee['name']} Diubah"
    return body


def bodies_for(client, token, nips):
    """``[(nip, renaming body)]``, from a GET of each (before any timing)."""
    out = []
    for nip in nips:
        response = client.request("GET", f"{API}/employees/{nip}", token=token)
        if response.status_code != 200:
            raise RuntimeError(f"GET employee {nip}: {response.status_code} {response.text}")
        out.append((nip, renamed(response.json())))
    return out


def put_all(clients, token, bodies, timeout):
    """PUT each body, one after the other, request j on ``clients[j % len(clients)]``;
    ``(start, end, latencies, failures)``, a failure being any answer but 200."""
    latencies, failures = [], []
    started = time.perf_counter()
    for j, (nip, body) in enumerate(bodies):
        client = clients[j % len(clients)]
        sent = time.perf_counter()
        response = client.request("PUT", f"{API}/employees/{nip}", json=body, token=token,
                                  timeout=timeout)
        latencies.append(time.perf_counter() - sent)
        if response.status_code != 200:
            failures.append(f"PUT employee {nip}: {response.status_code} {response.text[:300]}")
    return started, time.perf_counter(), latencies, failures


def succeeded(results):
    """``results`` of ``put_all``, once every client is done: raise when a PUT failed."""
    failures = [f for *_, client_failures in results for f in client_failures]
    if failures:
        total = sum(len(latencies) for _, _, latencies, _ in results)
        raise RuntimeError(f"{len(failures)} of {total} PUTs did not answer 200; the first: "
                           f"{failures[0]}")


def check_renamed(client, token, bodies):
    """A few of the PUTs really changed the name."""
    for nip, body in spread(bodies, min(5, len(bodies))):
        name = client.request("GET", f"{API}/employees/{nip}", token=token).json()["name"]
        if name != body["name"]:
            raise RuntimeError(f"employee {nip} is named {name!r} after a PUT of {body['name']!r}")


def edit_rows(replicas, token, nips, timeout, pids):
    """One client, the replicas in turn: its figures, with the CPU ``pids`` used meanwhile."""
    bodies = bodies_for(replicas[0], token, nips)
    (started, ended, latencies, failures), cpu_s = cpu_used(
        pids, lambda: put_all(replicas, token, bodies, timeout))
    succeeded([(started, ended, latencies, failures)])
    check_renamed(replicas[1], token, bodies)
    return {**latency_figures(latencies, ended - started), **cpu_figures(cpu_s, ended - started)}


def edit_concurrently(urls, config, token, nips_per_client, timeout, pids):
    """Client i on replica i % 2, all started together: figures over every request, with the
    CPU ``pids`` used meanwhile."""
    workers = []
    for i, nips in enumerate(nips_per_client):
        client = HttpClient(urls[i % len(urls)], config)
        workers.append((client, bodies_for(client, token, nips)))
    results, cpu_s = cpu_used(pids, lambda: race(
        workers, lambda worker: put_all([worker[0]], token, worker[1], timeout)))
    succeeded(results)
    for client, bodies in workers:
        check_renamed(client, token, bodies)
    span = max(end for _, end, _, _ in results) - min(start for start, *_ in results)
    return {**latency_figures([t for _, _, times, _ in results for t in times], span),
            **cpu_figures(cpu_s, span), "clients": len(workers)}


def run_replace_one(config, nips):
    """Raw ``replace_one`` of a copy of the directory's documents of ``nips``, renamed."""
    mongo = client_for(config["MONGO_URI"])
    docs = list(mongo[database_name(config, DirectoryService.name)].employees.find(
        {"_id": {"$in": nips}}))
    scratch = mongo[database_name(config, "benchreplace")]
    ensure_indexes(scratch, EMPLOYEE_INDEXES)
    scratch.employees.insert_many(docs)
    latencies = []
    started = time.perf_counter()
    for doc in docs:
        doc = {**doc, "name": f"{doc['name']} Lagi"}
        sent = time.perf_counter()
        scratch.employees.replace_one({"_id": doc["_id"]}, doc)
        latencies.append(time.perf_counter() - sent)
    return latency_figures(latencies, time.perf_counter() - started)


def wait_drained(config, timeout):
    """Until the relays have published every import's events (its outbox batches are gone),
    so that the next row does not compete with them."""
    batches = client_for(config["MONGO_URI"])[
        database_name(config, DirectoryService.name)]["_outbox_batches"]
    wait_until(lambda: batches.count_documents({}) == 0, timeout=timeout, interval=0.05,
               message="the import's outbox batches published")


def run_edits(config, demo, records, ops, clients):
    """Rows (f)-(i), in databases of their own (dropped at the end), against two directory
    processes."""
    config = {**config, "MONGO_DB_PREFIX": f"{config['MONGO_DB_PREFIX']}edits_"}
    timeout = max(300.0, len(records) * 0.05)
    imported = spread([r["nip"] for r in records], ops * (clients + 1))  # (g), (h)'s clients
    ports = [free_port() for _ in range(REPLICAS)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    processes = []
    try:
        for port in ports:
            processes.append(serve_process(config, "directory", port))
        replicas = [HttpClient(url, config) for url in urls]
        # every process taking part, listed once; each timed row sums the CPU they use
        pids = {os.getpid(): "bench", **{process.pid: "directory" for process in processes},
                **local_servers()}
        token = replicas[0].token(roles=("admin",), opd="3510")
        for kind in ("units", "positions", "employees"):
            post_csv(replicas[0], kind, demo[kind], timeout)
        wait_drained(config, timeout)
        staff = [row.record["nip"] for row in csvio.parse("employees", demo["employees"]).rows]
        rows = {"cpu_accounting": cpu_accounting(pids),
                "edit_demo": edit_rows(replicas, token, spread(staff, ops), timeout, pids)}
        print(f"  {cpu_line(rows['cpu_accounting'])}", flush=True)
        print(f"  {'edit_demo':<16} {rows['edit_demo']}", flush=True)

        started = time.perf_counter()
        report = post_csv(replicas[0], "employees", csvio.export("employees", records), timeout)
        if report["created"] != len(records):
            raise RuntimeError(f"import created {report['created']} of {len(records)}")
        wait_drained(config, timeout)
        print(f"  (imported {len(records)} more in {time.perf_counter() - started:.1f} s)",
              flush=True)
        rows["edit_loaded"] = edit_rows(replicas, token, imported[::clients + 1], timeout,
                                        pids)
        print(f"  {'edit_loaded':<16} {rows['edit_loaded']}", flush=True)
        rows["edit_concurrent"] = edit_concurrently(
            urls, config, token, [imported[i + 1::clients + 1] for i in range(clients)],
            timeout, pids)
        print(f"  {'edit_concurrent':<16} {rows['edit_concurrent']}", flush=True)
        rows["replace_one"] = run_replace_one(config, imported[::clients + 1])
        print(f"  {'replace_one':<16} {rows['replace_one']}", flush=True)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a replica that does not stop is killed
                process.kill()
                process.wait()
        drop_databases(config)
    return rows


# -- reporting ------------------------------------------------------------------------------

def verdict(rows):
    ratio = rows["import"]["seconds"] / rows["stored_docs"]["seconds"]
    of_lean = rows["import"]["seconds"] / rows["insert_many"]["seconds"]
    return {"ratio": round(ratio, 3), "of_lean": round(of_lean, 3), "target": TARGET,
            "verdict": "PASS" if ratio <= TARGET else "MISS"}


def edit_verdicts(rows):
    """Issue 11's three ratios, each against its target."""
    values = {
        "p50_loaded_over_demo": rows["edit_loaded"]["p50_ms"] / rows["edit_demo"]["p50_ms"],
        "concurrent_over_one": (rows["edit_concurrent"]["changes_per_s"]
                                / rows["edit_loaded"]["changes_per_s"]),
        "one_over_replace_one": (rows["edit_loaded"]["changes_per_s"]
                                 / rows["replace_one"]["changes_per_s"]),
    }
    verdicts = {}
    for name, value in values.items():
        _, bound, at_most = EDIT_TARGETS[name]
        met = value <= bound if at_most else value >= bound
        verdicts[name] = {"ratio": round(value, 3), "target": bound,
                          "verdict": "PASS" if met else "MISS"}
    # the most any number of clients could multiply one client's changes/s on this machine
    cpu_count, busy = rows["cpu_accounting"]["cpu_count"], rows["edit_loaded"]["cores_busy"]
    verdicts["concurrent_over_one"].update(cpu_count=cpu_count, cores_busy_one=busy,
                                           ceiling=round(cpu_count / busy, 2))
    return verdicts


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


def edit_table(rows):
    lines = [f"| row | requests | p50 ms | p99 ms | changes/s | cores busy (of "
             f"{rows['cpu_accounting']['cpu_count']}) |", "|---|---:|---:|---:|---:|---:|"]
    labels = {
        "edit_demo": "(f) PUT renaming an employee, demo Pemda (300), one client",
        "edit_loaded": "(g) the same after importing the N employees of (b), one client",
        "edit_concurrent": f"(h) the same, {rows['edit_concurrent']['clients']} concurrent "
                           "clients, each on employees of its own",
        "replace_one": "(i) raw replace_one of the documents (g) edited",
    }
    for name, label in labels.items():
        r = rows[name]
        busy = f"{r['cores_busy']:.2f}" if "cores_busy" in r else ""
        lines.append(f"| {label} | {r['ops']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['changes_per_s']:.1f} | {busy} |")
    return lines


def edit_lines(verdicts):
    return "\n".join(
        f"- {EDIT_TARGETS[name][0]} = {v['ratio']:.3f} (target "
        f"{'<=' if EDIT_TARGETS[name][2] else '>='} {v['target']}): **{v['verdict']}**"
        + (f"; ceiling on this machine: one client already keeps {v['cores_busy_one']:.2f} of "
           f"{v['cpu_count']} cores busy, so at most {v['ceiling']:.2f}" if "ceiling" in v else "")
        for name, v in verdicts.items())


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
        "Editing single employees (issue 11), in databases of their own, against two "
        "`pamong serve directory` processes on the same database (as production runs it; "
        "requests spread over both): (f) the demo Pemda (300 employees) imported through the "
        "API, then E `PUT /employees/<nip>` by one client, each renaming another employee "
        "(the body is a GET of it made before the timed loop, its name changed), every request "
        "timed and answered 200; (g) the same on E other employees after importing the N of "
        "(b); (h) C clients at once, each renaming E employees of its own, changes/s = C x E / "
        "(last finish - first start); (i) raw pymongo `replace_one` one after the other of a "
        "copy of the very documents (g) edited (same indexes), each renamed, the baseline of "
        "the last target.",
        "",
        "CPU accounting of (f)-(h): the CPU time (user + system, /proc/<pid>/stat) used during "
        "the timed loop by every process taking part (the bench process, the two directory "
        "processes, FerretDB and RabbitMQ, each of their processes) is summed; cores busy = "
        "those CPU seconds / the row's wall, and CPUs / cores busy of (g) is the ceiling of "
        "(h)/(g): the most any number of clients could multiply one client's changes/s on "
        f"this machine. {cpu_line(result['rows']['cpu_accounting'])}.",
        "",
        f"Latest run: {result['timestamp']}, N = {result['employees']}, E = {result['edits']}, "
        f"C = {result['clients']}, total wall {result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(result["rows"]),
        "",
        *edit_table(result["rows"]),
        "",
        "Targets:",
        "",
        ratio_line(result["ratio"]),
        edit_lines(result["edit_ratios"]),
    ]


def run(n, edits=200, clients=10, write=True):
    overrides = {"JWT_SECRET": "bench-secret-of-at-least-32-bytes-long!",
                 "DIRECTORY_SNAPSHOT_ON_EMPTY": False}
    timeout = max(300.0, n * 0.05)
    with scenario_env(**overrides) as (vhost, config):
        started = time.monotonic()
        print(f"directory: N = {n}, E = {edits}, C = {clients}, vhost {vhost}, "
              f"databases {config['MONGO_DB_PREFIX']}*")
        env = machine(config)
        demo = demo_pemda()
        positions = [row.record for row in csvio.parse("positions", demo["positions"]).rows]
        records = employees(n, positions)
        rows = {"insert_many": run_insert_many(config, records)}
        print(f"  {'insert_many':<12} {rows['insert_many']}", flush=True)
        rows.update(run_pamong(config, demo, records, timeout))
        for name in ("import", "drain", "replica", "stored_docs"):
            print(f"  {name:<12} {rows[name]}", flush=True)
        rows.update(run_edits(config, demo, records, edits, clients))

    ratio = verdict(rows)
    edit_ratios = edit_verdicts(rows)
    wall = time.monotonic() - started
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(edit_table(rows)))
    print()
    print(ratio_line(ratio).replace("**", ""))
    print(edit_lines(edit_ratios).replace("**", ""))
    print(f"\nwall time {wall:.0f} s")
    result = {"scenario": "directory", "employees": n, "edits": edits, "clients": clients,
              "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
              "wall_s": round(wall, 1), "machine": env, "rows": rows, "ratio": ratio,
              "target": TARGET, "edit_ratios": edit_ratios}
    if write:
        write_results("directory", result, section(result))
    return all(r["verdict"] == "PASS" for r in (ratio, *edit_ratios.values()))

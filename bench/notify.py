"""The notify scenario (issue 15): from events on the bus to requests received by the
WhatsApp stand-in, against a plain loop of HTTP requests to the same stand-in, in one run.

Rows (one notify process, the stand-in in a process of its own):
(a) **plain loop**: one client POSTs template messages to the stand-in one after another
    (a keep-alive session): the most a sender that does nothing else gets out of it;
(b) **notify**: ``N`` ``permit.registered`` events, each for another applicant, published to
    the bus as the permits module's relay would (confirmed batches of 500); the rule sends
    each applicant one WhatsApp template. Throughput is ``N`` over the time from the first
    publish to the ``N``-th request the stand-in received; p50/p99 of each event's
    ``occurred_at`` to its request; duplicates (a phone that received twice) and losses (a
    phone that received nothing). No status callbacks in this row;
(a2) **the loop again** once notify has published what (b) left: the target compares (b) with
    the mean of (a) and (a2), so a slow or fast spell during one short loop weighs less;
(c) **faults**: ``N`` more events while the stand-in answers 5% of sends with 500 and holds
    1% past notify's timeout (accepted, outcome unknown to notify), posting ``sent`` and
    ``delivered`` for every accepted send (a held one too, as Meta would): every
    notification must end ``delivered`` (or failed with a reason), no phone twice;
(d) **pacing**: ``P`` events for one applicant: they queue behind the per-recipient pace
    (``NOTIFY_PACE_WHATSAPP_SECONDS``, 1 s here) and all arrive, none dropped; the gaps
    between arrivals are reported.

Settings of the notify process for the bench: the channel's global rate is raised to 1,000/s
(the stand-in has no 80/s sender limit; the counter write still happens), quiet hours are off
(the run may fall at night in WIB), retries and the unknown-outcome window are short so the
faults row ends in seconds.
"""

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import requests

from bench.common import mean_rate, run_scenario, wait_published
from pamong.contracts import permits as _permits  # noqa: F401 - registers the contracts
from pamong.events import contracts
from pamong.events.envelope import new_event
from pamong.events.outbox import BATCH, ConfirmingPublisher
from pamong.storage import client_for, database_name
from pamong.testing import free_port, serve_process, wait_until

TARGET = 0.5
APP_SECRET = "bench-app-secret"  # noqa: S105 - a throw-away stand-in's
TOKEN = "bench-whatsapp-token"  # noqa: S105
PHONE_NUMBER_ID = "100200300"
PACE_SECONDS = 1.0
ENDED = ("delivered", "read")
FAILED = ("permanent_failure", "technical_failure", "cancelled")


def phone(i):
    return f"+62812{i:08d}"


def registered(i, run):
    """A ``permit.registered`` envelope for applicant ``i``."""
    data = contracts.dump_data("permit.registered", 1, {
        "id": f"bench-{run}-{i}", "registration_number": f"REG/{run}/{i:06d}",
        "type": "PBG", "type_name": "Persetujuan Bangunan Gedung", "opd": "3510.03",
        "contact": {"phone": phone(i), "email": None, "channel": "whatsapp"},
        "registered_at": datetime.now(UTC), "sla_days": 28,
        "due_on": date.today() + timedelta(days=40)})
    return new_event("permits", "permit.registered", data, opd="3510.03")


def publish(config, envelopes):
    """Put ``envelopes`` on the bus as a module's outbox relay does (the relay's
    ``ConfirmingPublisher``: batches of ``BATCH``, each confirmed at once); the epoch second
    the first batch went out. (Until 2026-12-07 the bench waited for a confirm after every
    event: 0.3 ms of the bench's CPU and 0.3 ms of RabbitMQ's per event, spent on the two
    cores notify runs on, and no module publishes that way.)"""
    publisher = ConfirmingPublisher(config["AMQP_URI"])
    started = time.time()
    try:
        for start in range(0, len(envelopes), BATCH):
            returned = publisher.publish([("permits", envelope)
                                          for envelope in envelopes[start:start + BATCH]])
            if returned:
                raise RuntimeError(f"{len(returned)} events had no queue: is notify bound?")
    finally:
        publisher.close()
    return started


class Standin:
    def __init__(self, webhook_url):
        self.port = free_port()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.notify_standin", "--port", str(self.port),
             "--webhook-url", webhook_url, "--app-secret", APP_SECRET,
             "--phone-number-id", PHONE_NUMBER_ID], stdout=subprocess.PIPE)
        self.url = json.loads(self.process.stdout.readline())["url"]
        self.session = requests.Session()

    def reset(self, **settings):
        return self.session.post(f"{self.url}/_bench/reset", json=settings, timeout=30).json()

    def received(self):
        return self.session.get(f"{self.url}/_bench/received", timeout=60).json()["received"]

    def count(self):
        """How many sends arrived (cheap to poll; ``received`` lists them)."""
        return self.session.get(f"{self.url}/_bench/received?count", timeout=30).json()["count"]

    def calls(self):
        return self.session.get(f"{self.url}/_bench/calls", timeout=30).json()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def plain_loop(standin, n):
    """Row (a): ``n`` template sends, one after the other."""
    standin.reset()
    session = requests.Session()
    url = f"{standin.url}/v21.0/{PHONE_NUMBER_ID}/messages"
    started = time.perf_counter()
    errors = 0
    for i in range(n):
        body = {"messaging_product": "whatsapp", "to": phone(900_000 + i)[1:],
                "type": "template", "template": {
                    "name": "permit_registered", "language": {"code": "id"},
                    "components": [{"type": "body", "parameters": [
                        {"type": "text", "text": f"REG/0/{i:06d}"}]}]}}
        r = session.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=10)
        errors += r.status_code != 200
    elapsed = time.perf_counter() - started
    return {"requests": n, "seconds": round(elapsed, 2), "per_s": round(n / elapsed, 1),
            "errors": errors}


def latencies_ms(sent_at, arrivals):
    values = sorted((at - sent_at[to]) * 1000 for to, at, _ in arrivals if to in sent_at)
    if not values:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1)}


def notify_row(config, standin, n, run, offset, timeout):
    """Rows (b) and (c): ``n`` events to ``n`` applicants; wait for every phone."""
    envelopes = [registered(offset + i, run) for i in range(n)]
    sent_at = {phone(offset + i)[1:]: datetime.fromisoformat(e["occurred_at"]).timestamp()
               for i, e in enumerate(envelopes)}
    already = standin.count()  # sends of earlier rows the stand-in still lists
    first = publish(config, envelopes)

    def arrived():  # the rows are listed only once enough have come (a retry may repeat one)
        if standin.count() < n + already:
            return None
        rows = [r for r in standin.received() if r[0] in sent_at]
        return rows if len({r[0] for r in rows}) >= n else None

    try:
        rows = wait_until(arrived, timeout=timeout, interval=1.0,
                          message=f"{n} phones reached")
    except AssertionError:
        rows = [r for r in standin.received() if r[0] in sent_at]
    phones = [r[0] for r in rows]
    last = max((r[1] for r in rows), default=first)
    elapsed = max(last - first, 1e-6)
    reached = len(set(phones))
    return {"events": n, "seconds": round(elapsed, 2), "per_s": round(reached / elapsed, 1),
            "reached": reached, "lost": n - reached,
            "duplicates": len(phones) - reached, **latencies_ms(sent_at, rows)}


def final_states(db, offset, n, timeout):
    """Row (c)'s end: every notification to its ``n`` applicants in an end state, counted by
    state (a scan of the bench's own notifications: fine here, never on a request path)."""
    wanted = {phone(offset + i) for i in range(n)}

    def counts():
        found = {}
        for doc in db.notifications.find({}, {"state": 1, "recipient.phone": 1}):
            if (doc.get("recipient") or {}).get("phone") in wanted:
                found[doc["state"]] = found.get(doc["state"], 0) + 1
        return found

    def settled():
        found = counts()
        done = sum(v for k, v in found.items() if k in ENDED + FAILED)
        return found if done >= n else None

    try:
        return wait_until(settled, timeout=timeout, interval=2.0,
                          message="every notification ended"), True
    except AssertionError:
        return counts(), False


def pacing_row(config, standin, count):
    """Row (d): ``count`` events for one applicant; arrival gaps."""
    standin.reset()
    envelopes = []
    for k in range(count):
        envelope = registered(500_000, f"pace{k}")
        envelopes.append(envelope)
    target = phone(500_000)[1:]
    first = publish(config, envelopes)
    try:
        rows = wait_until(lambda: (r := [x for x in standin.received() if x[0] == target])
                          and len(r) >= count and r,
                          timeout=count * PACE_SECONDS * 3 + 60, interval=1.0,
                          message="every paced message arrived")
    except AssertionError:
        rows = [x for x in standin.received() if x[0] == target]
    times = sorted(r[1] for r in rows)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return {"messages": count, "arrived": len(rows),
            "seconds": round((times[-1] - first) if times else 0, 1),
            "min_gap_s": round(min(gaps), 2) if gaps else None,
            "median_gap_s": round(statistics.median(gaps), 2) if gaps else None,
            "pace_s": PACE_SECONDS}


def run_rows(config, n, loop_n, pace_n):
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/api/notify/v1/webhooks/whatsapp"
    standin = Standin(webhook)
    process = None
    try:
        loop = plain_loop(standin, loop_n)
        print(f"  plain loop: {loop['per_s']}/s", flush=True)
        standin.reset()
        process = serve_process(
            config, "notify", port, DIRECTORY_SNAPSHOT_ON_EMPTY="false",
            NOTIFY_WHATSAPP_URL=standin.url, NOTIFY_WHATSAPP_TOKEN=TOKEN,
            NOTIFY_WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
            NOTIFY_WHATSAPP_APP_SECRET=APP_SECRET, NOTIFY_WHATSAPP_VERIFY_TOKEN=TOKEN,
            NOTIFY_QUIET_HOURS="none", NOTIFY_RATE_WHATSAPP=1000,
            NOTIFY_PACE_WHATSAPP_SECONDS=PACE_SECONDS, NOTIFY_PROVIDER_TIMEOUT_SECONDS=2,
            NOTIFY_UNKNOWN_WINDOW_SECONDS=8, NOTIFY_RETRY_DELAYS="[1, 2, 4, 8, 16]",
            NOTIFY_PENDING_INTERVAL_SECONDS=0.5)
        clean = notify_row(config, standin, n, "clean", 0, timeout=max(600, n // 5))
        print(f"  notify: {clean['per_s']}/s, lost {clean['lost']}, "
              f"duplicates {clean['duplicates']}", flush=True)
        db = client_for(config["MONGO_URI"], config)[database_name(config, "notify")]
        # the loop once more, once notify has published and cleared what (b) left (the
        # ratio takes the mean of both: one short loop swung between 417 and 659/s)
        wait_published([db["notifications"]])
        loop_after = plain_loop(standin, loop_n)
        print(f"  plain loop again: {loop_after['per_s']}/s", flush=True)
        standin.reset(auto_status=["sent", "delivered"], p500=0.05, ptimeout=0.01, seed=15,
                      n=n * 2)
        faults = notify_row(config, standin, n, "faults", 100_000, timeout=max(900, n // 4))
        faults["calls"] = standin.calls()
        states, settled = final_states(db, 100_000, n, timeout=300)
        faults["states"] = states
        faults["settled"] = settled
        print(f"  faults: {faults['per_s']}/s, lost {faults['lost']}, duplicates "
              f"{faults['duplicates']}, states {states}", flush=True)
        pacing = pacing_row(config, standin, pace_n)
        print(f"  pacing: {pacing}", flush=True)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        standin.stop()
    return {"loop": loop, "loop_after": loop_after, "clean": clean, "faults": faults,
            "pacing": pacing}


def verdicts(rows):
    clean, faults, pacing = rows["clean"], rows["faults"], rows["pacing"]
    loop = mean_rate(rows, "loop", "loop_after")  # (a2) since 2026-12-07
    ratio = clean["per_s"] / loop if loop else 0.0
    states = faults["states"]
    open_states = {k: v for k, v in states.items() if k not in ENDED + FAILED}
    return {
        "notify_over_loop": {
            "what": f"notify's event-to-request throughput over a plain request loop (the "
                    f"mean of (a) and (a2); {clean['events']:,} notifications)",
            "target": TARGET,
            "value": round(ratio, 3),
            "verdict": "PASS" if ratio >= TARGET and not clean["lost"]
            and not clean["duplicates"] else "FAIL"},
        "faults_exactly_once": {
            "what": "with 5% 500s and 1% timeouts: every phone reached once, every "
                    "notification ended", "target": "0 lost, 0 twice, all ended",
            "value": f"{faults['lost']} lost, {faults['duplicates']} twice, open {open_states}",
            "verdict": "PASS" if not faults["lost"] and not faults["duplicates"]
            and faults["settled"] else "FAIL"},
        "pacing_queues": {
            "what": f"{pacing['messages']} messages to one person, paced "
                    f"{pacing['pace_s']} s",
            # the pace holds for the sends; arrivals carry the network's jitter: the median
            # gap, not the smallest, shows the spacing
            "target": "all arrive, median gap >= 0.95 x pace",
            "value": f"{pacing['arrived']} arrived, median gap {pacing['median_gap_s']} s",
            "verdict": "PASS" if pacing["arrived"] == pacing["messages"]
            and (pacing["median_gap_s"] or 0) >= pacing["pace_s"] * 0.95 else "FAIL"},
    }


def table(rows):
    loop, clean, faults = rows["loop"], rows["clean"], rows["faults"]
    return [
        "| row | messages | seconds | per s | p50 ms | p99 ms | lost | twice |",
        "|---|---|---|---|---|---|---|---|",
        f"| (a) plain request loop | {loop['requests']} | {loop['seconds']} | "
        f"{loop['per_s']} | - | - | - | - |",
        *([f"| (a2) the loop again, after (b) | {rows['loop_after']['requests']} | "
           f"{rows['loop_after']['seconds']} | {rows['loop_after']['per_s']} | - | - | - | - |"]
          if "loop_after" in rows else []),
        f"| (b) notify, events to requests | {clean['events']} | {clean['seconds']} | "
        f"{clean['per_s']} | {clean['p50_ms']} | {clean['p99_ms']} | {clean['lost']} | "
        f"{clean['duplicates']} |",
        f"| (c) the same with 5% 500 and 1% timeouts | {faults['events']} | "
        f"{faults['seconds']} | {faults['per_s']} | {faults['p50_ms']} | "
        f"{faults['p99_ms']} | {faults['lost']} | {faults['duplicates']} |",
    ]


def verdict_lines(out):
    return [f"- {v['what']}: {v['value']} (target {v['target']}) **{v['verdict']}**"
            for v in out.values()]


def section(result):
    rows = result["rows"]
    faults, pacing = rows["faults"], rows["pacing"]
    return [
        f"{result['events']:,} notifications, one notify process, the WhatsApp stand-in in "
        f"its own process ({result['timestamp']}, wall {result['wall_s']} s).",
        "",
        *table(rows),
        "",
        f"Faults row: send calls by outcome {faults['calls']}; notifications by state "
        f"{faults['states']}.",
        f"Pacing: {pacing['messages']} messages to one person arrived {pacing['arrived']}, in "
        f"{pacing['seconds']} s, gaps min {pacing['min_gap_s']} s / median "
        f"{pacing['median_gap_s']} s (pace {pacing['pace_s']} s): they queue, none dropped.",
        "",
        *verdict_lines(result["verdicts"]),
    ]


def run(n=10_000, loop=2000, pace=20, write=True):
    return run_scenario(
        "notify", {"events": n, "loop": loop, "pace": pace},
        lambda config: run_rows(config, n, loop, pace), verdicts,
        lambda rows, out: [*table(rows), *verdict_lines(out)], section, write)

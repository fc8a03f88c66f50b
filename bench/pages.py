"""Scenario ``pages`` (issue 17, "Performance"): what a citizen's phone downloads for the first
load of each public page, and what rendering a page costs the server beside the JSON API
behind it.

The directory, letters and permits modules run as ``make run`` runs them (one ``pamong serve``
process each, their demo data loaded through their own APIs: the demo Pemda, its letters with
a signed and sealed one, its permit types and applications in every state). Then:

(a) first load   for each public page: the page and everything it links (stylesheets,
                 scripts, icons), as a browser with an empty cache fetches them with
                 ``Accept-Encoding: gzip``: bytes on the wire (bodies as sent, compressed,
                 plus response headers). The pages use the system's fonts: nothing else to
                 fetch. Target: <= 150 KB each.
(b) render       the tracking page (``/lacak?nomor=&digit=``, the result of a registered
                 application) against ``GET /api/permits/v1/track`` with the same number and
                 digits, and the dashboard page (``/dasbor``) against
                 ``GET /api/permits/v1/dashboard`` (as the Pemda's admin), and the letter
                 verification page against ``GET /api/letters/v1/verify/<code>``: R requests
                 of each, page and API alternating one by one (so a slow spell of the shared
                 machine falls on both), after a warm-up; p50 and p99 of the server's answer
                 (the client's time to the last byte on loopback). Target: page p50 <= 2 x
                 API p50 for tracking and dashboard.
"""

import re
import socket
import tempfile
import time
from urllib.parse import urljoin

import requests

from bench.attendance import PEMDA, figures, stop
from bench.common import machine_line, run_scenario
from pamong.auth import mint_token
from pamong.storage import client_for, database_name
from pamong.testing import free_port, serve_process

MODULES = ("directory", "letters", "permits")
RENDER_REQUESTS = 200
FIRST_LOAD_LIMIT = 150 * 1024
RENDER_RATIO = 2.0
LINKED = re.compile(r'<(?:link|script|img)\b[^>]*?\b(?:href|src)="([^"]+)"')


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def first_port():
    """A port P with P..P+4 free (the suite's modules sit at fixed offsets from it)."""
    for _ in range(50):
        port = free_port()
        if port < 60000 and all(_free(port + i) for i in range(5)):
            return port
    raise RuntimeError("no five free consecutive ports")


def wire_bytes(response, body):
    head = len(f"HTTP/1.1 {response.status_code} {response.reason}\r\n")
    head += sum(len(f"{k}: {v}\r\n") for k, v in response.raw.headers.items()) + 2
    return head + len(body)


def fetch_raw(session, url):
    response = session.get(url, headers={"Accept-Encoding": "gzip", "Accept": "text/html"},
                           stream=True, timeout=30)
    body = response.raw.read(decode_content=False)
    return response, body


def first_load(url):
    """``{status, bytes, files, html_bytes}`` of ``url`` and what it links, as sent."""
    session = requests.Session()
    response, body = fetch_raw(session, url)
    total = wire_bytes(response, body)
    html = session.get(url, timeout=30).text  # decoded, to find the links
    files = 1
    for link in dict.fromkeys(LINKED.findall(html)):
        if link.startswith(("data:", "#", "mailto:")) or "://" in link and not link.startswith(
                url.split("/", 3)[0] + "//" + url.split("/", 3)[2]):
            continue
        linked, linked_body = fetch_raw(session, urljoin(url, link.replace("&amp;", "&")))
        total += wire_bytes(linked, linked_body)
        files += 1
    return {"status": response.status_code, "bytes": total, "files": files,
            "html_bytes": len(body)}


def timed_pair(page_url, api_url, api_headers, n):
    """Page and API requested alternately, ``n`` times each: ``(page figures, api figures)``."""
    session = requests.Session()
    for _ in range(10):  # warm up both
        session.get(page_url, timeout=30)
        session.get(api_url, headers=api_headers, timeout=30)
    times = {"page": [], "api": []}
    errors = {"page": [], "api": []}
    started = time.perf_counter()
    for _ in range(n):
        for which, url, headers in (("page", page_url, {"Accept-Encoding": "gzip"}),
                                    ("api", api_url, {**api_headers, "Accept-Encoding": "gzip"})):
            t = time.perf_counter()
            response = session.get(url, headers=headers, timeout=30)
            times[which].append(time.perf_counter() - t)
            if response.status_code != 200:
                errors[which].append(f"{response.status_code} {url}")
    seconds = time.perf_counter() - started
    return (figures(times["page"], seconds / 2, errors["page"]),
            figures(times["api"], seconds / 2, errors["api"]))


def demo_targets(config):
    """A registered application (number, last 4 NIK digits), an issued permit's code, a
    sealed letter's code, a permit type's code: from the demo data."""
    permits = client_for(config["MONGO_URI"])[database_name(config, "permits")]
    letters = client_for(config["MONGO_URI"])[database_name(config, "letters")]
    registered = permits.applications.find_one(
        {"registration_number": {"$exists": True}, "state": "technical_review"},
        {"registration_number": 1, "applicant.nik": 1})
    issued = permits.applications.find_one({"state": {"$in": ["issued", "collected"]}},
                                           {"permit": 1})
    letter = None
    deadline = time.monotonic() + 120  # sealing follows signing
    while letter is None and time.monotonic() < deadline:
        letter = next(iter(letters.codes.find({}).limit(1)), None)
        if letter is None:
            time.sleep(1)
    kind = permits.types.find_one({}, {"_id": 1})
    return {"number": registered["registration_number"],
            "digits": registered["applicant"]["nik"][-4:],
            "permit_code": issued["permit"]["code"], "letter_code": letter["_id"],
            "type": kind["_id"]}


def measure(config, n):
    import os

    from pamong.launcher import prepare_demo, seed_demo
    from pamong.modules import module_ports

    base = first_port()
    ports = module_ports(MODULES, base)
    keys_dir = tempfile.mkdtemp(prefix="pamong-bench-ca-")
    env = {"LETTERS_KEYS_DIR": keys_dir, "PERMITS_TRACK_PER_MINUTE": 1_000_000,
           "PAGES_SITE_NAME": "Pemkab Banyuwangi (bench)"}
    os.environ.update({k: str(v) for k, v in env.items()})
    processes = []
    rows = {}
    try:
        prepare_demo(MODULES, config)
        for module in MODULES:
            processes.append(serve_process(config, module, ports[module], **env))
        seed_demo(MODULES, base, config)
        target = demo_targets(config)
        permits = f"http://127.0.0.1:{ports['permits']}"
        letters = f"http://127.0.0.1:{ports['letters']}"
        pages = {
            "/layanan": f"{permits}/layanan",
            "/layanan/<code>": f"{permits}/layanan/{target['type']}",
            "/lacak (form)": f"{permits}/lacak",
            "/lacak (result)": f"{permits}/lacak?nomor={target['number']}"
                               f"&digit={target['digits']}",
            "/verifikasi/izin/<code>": f"{permits}/verifikasi/izin/{target['permit_code']}",
            "/dasbor": f"{permits}/dasbor",
            "/data": f"{permits}/data",
            "/verifikasi/surat/<code>": f"{letters}/verifikasi/surat/{target['letter_code']}",
            "/verifikasi/surat (form)": f"{letters}/verifikasi/surat",
        }
        rows["first_load"] = {name: first_load(url) for name, url in pages.items()}
        for name, row in rows["first_load"].items():
            print(f"  (a) {name:<28} {row}", flush=True)
        admin = {"Authorization": "Bearer " + mint_token(config, "bench-admin", ["admin"],
                                                          opd=PEMDA)}
        pairs = {
            "tracking": (pages["/lacak (result)"],
                         f"{permits}/api/permits/v1/track?number={target['number']}"
                         f"&last4={target['digits']}", {}),
            "dashboard": (pages["/dasbor"], f"{permits}/api/permits/v1/dashboard", admin),
            "letter verification": (pages["/verifikasi/surat/<code>"],
                                    f"{letters}/api/letters/v1/verify/{target['letter_code']}",
                                    {}),
        }
        rows["render"] = {}
        for name, (page_url, api_url, headers) in pairs.items():
            page, api = timed_pair(page_url, api_url, headers, n)
            rows["render"][name] = {"page": page, "api": api}
            print(f"  (b) {name:<20} page {page}\n      {'':<20} api  {api}", flush=True)
    finally:
        stop(processes)
    return rows


def verdicts(rows):
    out = {}
    for name, row in rows["first_load"].items():
        ok = row["status"] == 200 and row["bytes"] <= FIRST_LOAD_LIMIT
        out[f"first_load {name}"] = {
            "what": f"first load of {name}, bytes on the wire (gzip)",
            "value": row["bytes"], "target": f"<= {FIRST_LOAD_LIMIT}",
            "verdict": "PASS" if ok else "FAIL"}
    for name in ("tracking", "dashboard"):
        page, api = rows["render"][name]["page"], rows["render"][name]["api"]
        value = page["p50_ms"] / api["p50_ms"] if api["p50_ms"] else 0.0
        ok = value <= RENDER_RATIO and not page["errors"] and not api["errors"]
        out[f"render {name}"] = {"what": f"{name} page p50 / JSON API p50",
                                 "value": round(value, 2), "target": f"<= {RENDER_RATIO}",
                                 "verdict": "PASS" if ok else "FAIL"}
    return out


def table(rows):
    lines = ["| page | status | files | HTML bytes (gzip) | first load bytes |",
             "|---|---|---|---|---|"]
    for name, r in rows["first_load"].items():
        lines.append(f"| `{name}` | {r['status']} | {r['files']} | {r['html_bytes']:,} | "
                     f"{r['bytes']:,} |")
    lines += ["", "| render | page p50 ms | page p99 ms | API p50 ms | API p99 ms | ratio p50 |",
              "|---|---|---|---|---|---|"]
    for name, pair in rows["render"].items():
        page, api = pair["page"], pair["api"]
        ratio = page["p50_ms"] / api["p50_ms"] if api["p50_ms"] else 0.0
        lines.append(f"| {name} | {page['p50_ms']} | {page['p99_ms']} | {api['p50_ms']} | "
                     f"{api['p99_ms']} | {ratio:.2f} |")
    return lines


def verdict_lines(out):
    return [f"- {v['what']}: {v['value']:,} (target {v['target']}) **{v['verdict']}**"
            if isinstance(v["value"], int) else
            f"- {v['what']}: {v['value']} (target {v['target']}) **{v['verdict']}**"
            for v in out.values()]


def section(result):
    return [
        "The directory, letters and permits modules, each in its own `pamong serve` process, "
        "with their demo data loaded through their APIs (as `make run` does). (a) The first "
        "load of each public page as a phone with an empty cache makes it: the page and "
        "every stylesheet, script and icon it links, with `Accept-Encoding: gzip`; bytes on "
        "the wire (compressed bodies plus response headers; the pages use system fonts). (b) "
        f"{result['requests']} requests of a page and of the JSON API behind it, alternating "
        "one by one after a warm-up, on loopback.",
        "",
        f"Latest run: {result['timestamp']}, total wall {result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(result["rows"]),
        "",
        "Targets:",
        "",
        *verdict_lines(result["verdicts"]),
    ]


def run(n=RENDER_REQUESTS, write=True):
    return run_scenario("pages", {"requests": n}, lambda config: measure(config, n), verdicts,
                        lambda rows, out: [*table(rows), *verdict_lines(out)], section, write)

"""Headless Chromium for the page tests: one browser per test session, driven by selenium
through Debian's ``chromium`` and ``chromium-driver`` (installed by
``deploy/local/browser.sh ensure``, which ``make test`` runs; never downloaded by selenium).

Everything the page loads is recorded (the browser's console and the DevTools network events
of chromedriver's performance log), so a test asserts what a person would notice, and what
they would not: no console error, no failed request, no request to another origin.

    open_page(driver, url)                       load a page, wait until it and its requests
                                                 are done; the record starts afresh
    check_page(driver, url, name, allow_failed=())
                                                 at 360x740 (a phone) and 1280x800: no
                                                 horizontal scrolling on the phone, a
                                                 screenshot of each (.run/screenshots/), axe-core
                                                 finds no serious or critical violation, and the
                                                 record is clean
    assert_page_clean(driver, allow_failed=(), allow_console=(), allow_origins=())
                                                 the record since the last open_page is clean
    requests_made(driver)                        the ``Request`` records since open_page
                                                 (url, type, status, headers, cached, error)
    assert_axe_clean(driver, label="")           axe-core on the page as it is now
    screenshot(driver, name)                     the whole page, .run/screenshots/<name>.png
    set_viewport(driver, width, height, mobile=False)
    set_geolocation(driver, latitude, longitude, accuracy=10.0) / clear_geolocation(driver)
    set_network(driver, offline=False, latency_ms=0, download_kbps=None, upload_kbps=None)
    go_offline(driver) / go_online(driver)
    wait_for(driver, condition, timeout=10.0, message=...)   condition(driver) truthy
    wait_for_element(driver, css, ...) / wait_for_text(driver, css, text, ...) /
    wait_for_path(driver, path, ...)
    local_storage(driver, key) / sign_in(driver, base_url, token, expires_in=3600)
    serve(request, config, service_cls, **settings)   a service in this process -> Served

``allow_failed`` (and ``allow_console``, ``allow_origins``) take strings, matched as
substrings, or compiled regular expressions, searched: a request is described as
``"<url> <status or network error>"`` (e.g. ``"http://127.0.0.1:5123/lacak/X 404"`` or
``"http://127.0.0.1:5123/api/... net::ERR_INTERNET_DISCONNECTED"``). A request the page
cancels itself (navigating away from an open stream) is not a failure.

The services under test run in this process (nameko containers on eventlet): selenium's calls
to chromedriver go through green sockets, so the service answers the browser while a test
waits. Waits poll a condition (``WebDriverWait``); nothing sleeps for a fixed time.
"""

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".run" / "screenshots"
CHROMEDRIVER_LOG = REPO / ".run" / "chromedriver.log"
AXE_JS = REPO / "pamong" / "web" / "static" / "vendor" / "axe.min.js"
CHROMIUM = os.environ.get("PAMONG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PAMONG_CHROMEDRIVER", "/usr/bin/chromedriver")
SETUP_HINT = "run `make test-setup` (deploy/local/browser.sh ensure installs it)"


@dataclass(frozen=True)
class Viewport:
    width: int
    height: int
    mobile: bool = False

    @property
    def label(self):
        return str(self.width)


PHONE = Viewport(360, 740, mobile=True)
DESKTOP = Viewport(1280, 800)
SIZES = (PHONE, DESKTOP)
AXE_FAILING_IMPACTS = ("serious", "critical")
MAX_SCREENSHOT_HEIGHT = 6000  # CSS pixels: a long table still fits, a runaway page does not
TOKEN_KEY = "pamong.token"  # where pamong.js keeps the signed-in person's token
# requests that never end by design: they do not keep a page from being "done"
STREAMING_TYPES = ("EventSource", "WebSocket")
# anything that is not loopback goes to this proxy, where nothing listens: a page that asks
# another origin fails at once (and is reported), and the browser's own background traffic
# never leaves the machine
DEAD_PROXY = "http://127.0.0.1:9"

CHROMIUM_ARGS = (
    "--headless", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
    f"--window-size={DESKTOP.width},{DESKTOP.height}",
    "--no-first-run", "--no-default-browser-check", "--disable-default-apps",
    "--disable-extensions", "--disable-sync", "--disable-background-networking",
    "--disable-component-update", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--metrics-recording-only",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--password-store=basic", "--use-mock-keychain",
    f"--proxy-server={DEAD_PROXY}",
)

screenshots_taken = []  # paths saved in this process (conftest prints the folder once)
# seconds spent, per kind of step, in this process (conftest prints them at the end)
timings = {"start": 0.0, "open": 0.0, "screenshot": 0.0, "axe": 0.0}
counts = dict.fromkeys(timings, 0)


class _timed:
    def __init__(self, step):
        self.step = step

    def __enter__(self):
        self.began = time.monotonic()

    def __exit__(self, *exc):
        timings[self.step] += time.monotonic() - self.began
        counts[self.step] += 1


# -- the browser ---------------------------------------------------------------------------------

def start_chromium():
    """A new headless Chromium with its ChromeDriver, both from the system (no download)."""
    missing = [f"{what} ({path})" for what, path in (("Chromium", CHROMIUM),
                                                      ("ChromeDriver", CHROMEDRIVER))
               if not os.access(path, os.X_OK)]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not installed: {SETUP_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs",
                                    {"enableNetwork": True, "enablePage": False})
    CHROMEDRIVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(CHROMEDRIVER_LOG))
    with _timed("start"):
        driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    driver.pamong_traffic = Traffic()
    return driver


def is_alive(driver):
    try:
        driver.execute_script("return 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means: start another one
        return False


def reset(driver):
    """Back to a blank tab as a new test wants it: default size, online, no geolocation,
    no cookies, an empty cache, no storage of the origins the last test opened (service
    workers included), an empty record."""
    traffic = traffic_of(driver)
    try:
        driver.switch_to.alert.dismiss()  # a dialog the last test left open
    except NoAlertPresentException:
        pass
    driver.get("about:blank")
    for origin in traffic.origins:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin",
                               {"origin": origin, "storageTypes": "all"})
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    set_network(driver)
    clear_geolocation(driver)
    traffic.origins.clear()
    traffic.clear(driver)


# -- what the page did ---------------------------------------------------------------------------

@dataclass
class Request:
    url: str
    type: str = ""
    status: int | None = None
    error: str | None = None
    canceled: bool = False
    blocked: str | None = None
    done: bool = False
    headers: dict = field(default_factory=dict)  # the response's, names in lower case
    cached: bool = False  # answered from the browser's cache

    @property
    def failed(self):
        return ((self.status is not None and self.status >= 400)
                or (self.error is not None and not self.canceled) or self.blocked is not None)

    def describe(self):
        what = self.status if self.status is not None else ""
        if self.error:
            what = f"{what} {self.error}".strip()
        if self.blocked:
            what = f"{what} blocked:{self.blocked}".strip()
        return f"{self.url} {what}".strip()


@dataclass
class Traffic:
    """The requests and console messages of the tab since ``clear`` (``open_page`` clears)."""

    requests: dict = field(default_factory=dict)
    console: list = field(default_factory=list)
    origin: str | None = None
    origins: set = field(default_factory=set)  # every origin opened since the last reset

    def clear(self, driver):
        self.feed(driver)
        self.requests.clear()
        self.console.clear()

    def feed(self, driver):
        """Take what chromedriver has buffered since the last call (reading empties it)."""
        for entry in driver.get_log("performance"):
            self._network(json.loads(entry["message"])["message"])
        self.console.extend(driver.get_log("browser"))

    def _network(self, message):
        method, params = message.get("method", ""), message.get("params", {})
        request_id = params.get("requestId")
        if not method.startswith("Network.") or request_id is None:
            return
        if method == "Network.requestWillBeSent":
            redirect = params.get("redirectResponse")
            if redirect and request_id in self.requests:  # one id, several hops
                hop = self.requests.pop(request_id)
                hop.status, hop.done = redirect.get("status"), True
                self.requests[f"{request_id}@{len(self.requests)}"] = hop
            self.requests[request_id] = Request(params["request"]["url"],
                                                params.get("type", ""))
            return
        record = self.requests.get(request_id)
        if record is None:  # began before the record did
            return
        if method == "Network.responseReceived":
            response = params["response"]
            record.status = response.get("status")
            record.type = params.get("type") or record.type
            record.headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
            record.cached = record.cached or bool(response.get("fromDiskCache")
                                                  or response.get("fromMemoryCache"))
        elif method == "Network.requestServedFromCache":
            record.cached = True
        elif method == "Network.loadingFinished":
            record.done = True
        elif method == "Network.loadingFailed":
            record.done = True
            record.error = params.get("errorText") or "failed"
            record.canceled = bool(params.get("canceled"))
            record.blocked = params.get("blockedReason")

    def in_flight(self):
        return [r for r in self.requests.values()
                if not r.done and r.type not in STREAMING_TYPES and _is_network(r.url)]

    def problems(self, allow_failed=(), allow_console=(), allow_origins=()):
        """What a clean page does not do, one line each."""
        found = []
        origins = {self.origin, *(_origin(o) for o in allow_origins if isinstance(o, str))}
        for record in self.requests.values():
            if not _is_network(record.url):
                continue
            if _origin(record.url) not in origins and not _matches(allow_origins, record.url):
                found.append(f"request to another origin: {record.describe()}")
            elif record.failed and not _matches(allow_failed, record.describe()):
                found.append(f"failed request: {record.describe()}")
        known = {record.url for record in self.requests.values()}
        for entry in self.console:
            if entry.get("level") != "SEVERE":
                continue
            message = entry.get("message", "")
            url = message.split(" ", 1)[0]
            if "Failed to load resource" in message and (
                    url in known or _matches(allow_failed, message)):
                continue  # the request itself is judged above
            if not _matches(allow_console, message):
                found.append(f"console error: {message}")
        return found


def traffic_of(driver):
    """The record of ``driver``'s tab: ``.requests`` (``Request`` by id), ``.console``."""
    return driver.pamong_traffic


def requests_made(driver):
    """The ``Request`` records since the last ``open_page``, in order."""
    traffic = traffic_of(driver)
    traffic.feed(driver)
    return list(traffic.requests.values())


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _is_network(url):
    return url.startswith(("http:", "https:", "ws:", "wss:"))


def _matches(patterns, text):
    return any(p.search(text) if isinstance(p, re.Pattern) else p in text for p in patterns)


def page_problems(driver, allow_failed=(), allow_console=(), allow_origins=()):
    traffic = traffic_of(driver)
    traffic.feed(driver)
    return traffic.problems(allow_failed, allow_console, allow_origins)


def assert_page_clean(driver, allow_failed=(), allow_console=(), allow_origins=()):
    """No console error, no failed request, no request to another origin since the last
    ``open_page`` (clicks and navigations after it included)."""
    problems = page_problems(driver, allow_failed, allow_console, allow_origins)
    assert not problems, f"{driver.current_url}:\n  " + "\n  ".join(problems)


# -- opening and looking at a page ---------------------------------------------------------------

def open_page(driver, url, timeout=15.0):
    """Load ``url``, wait until the document is complete and every request it started (but
    streams) has ended; the record (``assert_page_clean``) starts with this load."""
    traffic = traffic_of(driver)
    traffic.clear(driver)
    traffic.origin = _origin(url)
    traffic.origins.add(traffic.origin)
    with _timed("open"):
        driver.get(url)
        wait_until_settled(driver, timeout)
    return driver


def wait_until_settled(driver, timeout=15.0):
    """The document is complete and no request but a stream is pending."""
    traffic = traffic_of(driver)

    def settled(d):
        if d.execute_script("return document.readyState") != "complete":
            return False
        traffic.feed(d)
        return not traffic.in_flight()

    wait_for(driver, settled, timeout,
             message=lambda: "the page to finish loading (pending: "
                             f"{[r.url for r in traffic.in_flight()]})")


def submit(driver, button, timeout=15.0):
    """Click ``button`` of a form whose answer is a new page, then wait until that page has
    replaced this one and settled. Without waiting for the old document to go, a look right
    after the click can find an element of the old page that is gone a moment later."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_):
        try:
            old.tag_name  # noqa: B018 - asks ChromeDriver; raises once the page is replaced
        except StaleElementReferenceException:
            return True
        return False

    wait_for(driver, replaced, timeout, "the form's answer to replace the page")
    wait_until_settled(driver, timeout)


def set_viewport(driver, width, height, mobile=False):
    """Emulate a screen of ``width`` x ``height`` CSS pixels (``mobile``: a phone, whose
    layout follows the page's viewport meta tag)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1,
                            "mobile": mobile})


def screenshot(driver, name):
    """The whole page (up to ``MAX_SCREENSHOT_HEIGHT``) as ``.run/screenshots/<name>.png``."""
    with _timed("screenshot"):
        return _screenshot(driver, name)


def _screenshot(driver, name):
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    viewport = metrics.get("cssLayoutViewport") or metrics["layoutViewport"]
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    height = min(max(content["height"], viewport["clientHeight"]), MAX_SCREENSHOT_HEIGHT)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": viewport["clientWidth"], "height": height,
                 "scale": 1}})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{_safe(name)}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    screenshots_taken.append(path)
    return path


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


_WIDER_THAN_SCREEN = """
var width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth <= width + 1) { return []; }
var out = [];
document.querySelectorAll("body *").forEach(function (el) {
  var box = el.getBoundingClientRect();
  if (box.right > width + 1 && out.length < 5) {
    out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
             (el.className && typeof el.className === "string"
              ? "." + el.className.trim().split(/\\s+/).join(".") : "") +
             " (right edge " + Math.round(box.right) + " px)");
  }
});
return out.length ? out : ["the document is " + document.documentElement.scrollWidth + " px wide"];
"""


def horizontal_overflow(driver):
    """Elements that stick out to the right of the screen (a phone would scroll sideways)."""
    return driver.execute_script(_WIDER_THAN_SCREEN)


# -- axe-core ------------------------------------------------------------------------------------

_axe_source = None


def run_axe(driver, context=None, options=None):
    """axe-core's violations on the page as it is now (every impact)."""
    with _timed("axe"):
        return _run_axe(driver, context, options)


def _run_axe(driver, context, options):
    global _axe_source
    if not driver.execute_script("return typeof window.axe === 'object'"):
        if _axe_source is None:
            if not AXE_JS.is_file():
                raise RuntimeError(f"{AXE_JS.relative_to(REPO)} is missing: run `make assets`")
            _axe_source = AXE_JS.read_text(encoding="utf-8")
        driver.execute_script(_axe_source)  # DevTools evaluation: the page's CSP allows it
    answer = driver.execute_async_script("""
        var done = arguments[arguments.length - 1];
        axe.run(arguments[0] || document, arguments[1] || {resultTypes: ["violations"]})
          .then(function (r) { done({violations: r.violations}); },
                function (e) { done({error: String(e)}); });
    """, context, options)
    if "error" in answer:
        raise RuntimeError(f"axe-core failed: {answer['error']}")
    return answer["violations"]


def axe_problems(violations, impacts=AXE_FAILING_IMPACTS):
    found = []
    for violation in violations:
        if violation.get("impact") not in impacts:
            continue
        nodes = violation.get("nodes", [])
        targets = ", ".join(" ".join(map(str, n.get("target", []))) for n in nodes[:4])
        more = f" and {len(nodes) - 4} more" if len(nodes) > 4 else ""
        summary = (nodes[0].get("failureSummary") or "").replace("\n", " ") if nodes else ""
        found.append(f"axe {violation['id']} ({violation['impact']}): {violation['help']}: "
                     f"{targets}{more}. {summary} [{violation.get('helpUrl', '')}]")
    return found


def assert_axe_clean(driver, label=""):
    """axe-core finds no serious or critical violation on the page as it is now."""
    problems = axe_problems(run_axe(driver))
    prefix = f"{label}: " if label else ""
    assert not problems, f"{prefix}{driver.current_url}:\n  " + "\n  ".join(problems)


# -- the whole check of one page -----------------------------------------------------------------

def check_page(driver, url, name, allow_failed=(), allow_console=(), allow_origins=(),
               sizes=SIZES):
    """Open ``url`` at each size (360x740 as a phone, then 1280x800): a screenshot of each
    (``.run/screenshots/<name>-360.png``, ``-1280.png``), no sideways scrolling on the phone,
    axe-core finds no serious or critical violation, no console error, no failed request, no
    request to another origin. Every problem of every size is reported at once. Returns the
    screenshots' paths."""
    problems, shots = [], []
    try:
        for size in sizes:
            set_viewport(driver, size.width, size.height, size.mobile)
            open_page(driver, url)
            shots.append(screenshot(driver, f"{name}-{size.label}"))
            here = []
            if size.mobile:
                here += [f"wider than a {size.width} px screen: {element}"
                         for element in horizontal_overflow(driver)]
            here += axe_problems(run_axe(driver))
            here += page_problems(driver, allow_failed, allow_console, allow_origins)
            problems += [f"[{size.width}x{size.height}] {line}" for line in here]
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert not problems, f"{url} ({name}):\n  " + "\n  ".join(problems)
    return shots


# -- the device: location and network ------------------------------------------------------------

def set_geolocation(driver, latitude, longitude, accuracy=10.0):
    """The phone's position (accuracy in metres), with the permission granted."""
    driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["geolocation"]})
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride",
                           {"latitude": latitude, "longitude": longitude, "accuracy": accuracy})


def clear_geolocation(driver):
    """No position override and no granted permission (the default of a new tab)."""
    driver.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})
    driver.execute_cdp_cmd("Browser.resetPermissions", {})


def set_network(driver, offline=False, latency_ms=0, download_kbps=None, upload_kbps=None):
    """The connection as the page sees it (``navigator.onLine``, ``online``/``offline``
    events, and every request: offline ones fail with net::ERR_INTERNET_DISCONNECTED)."""

    def rate(kbps):
        return -1 if kbps is None else int(kbps * 1024 / 8)  # bytes per second

    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": latency_ms,
        "downloadThroughput": rate(download_kbps), "uploadThroughput": rate(upload_kbps)})


def go_offline(driver):
    set_network(driver, offline=True)


def go_online(driver):
    set_network(driver)


# -- waiting -------------------------------------------------------------------------------------

def wait_for(driver, condition, timeout=10.0, message="condition"):
    """Poll ``condition(driver)`` until it is truthy and return it; an AssertionError naming
    ``message`` (a string, or a callable giving one) after ``timeout`` seconds."""
    # a look while the page is being replaced (a form posted) can fail in ChromeDriver itself
    # ("unhandled inspector error"): it is tried again, and a lasting one ends in the timeout
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException, WebDriverException)
        ).until(condition)
    except TimeoutException:
        text = message() if callable(message) else message
        raise AssertionError(f"waited {timeout}s for {text} on {driver.current_url}") from None


def wait_for_element(driver, css, timeout=10.0, visible=True):
    """The first element matching ``css`` (displayed, unless ``visible=False``)."""
    def found(d):
        element = d.find_element(By.CSS_SELECTOR, css)
        return element if (element.is_displayed() or not visible) else False

    return wait_for(driver, found, timeout, f"element {css!r}")


def wait_for_text(driver, css, text, timeout=10.0):
    """The first element matching ``css`` whose text contains ``text``."""
    def found(d):
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if text in element.text:
                return element
        return False

    return wait_for(driver, found, timeout,
                    lambda: f"{text!r} in {css!r} (texts: "
                            f"{[e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]})")


def wait_for_path(driver, path, timeout=10.0):
    """The tab's URL path is ``path`` (a string), or ``path(url_path)`` is truthy."""
    def arrived(d):
        here = urlsplit(d.current_url).path
        return path(here) if callable(path) else here == path

    wait_for(driver, arrived, timeout, f"the path {path!r} (now {driver.current_url})")
    return driver.current_url


# -- signed in -----------------------------------------------------------------------------------

def local_storage(driver, key):
    """``localStorage[key]`` of the page open now (None when absent)."""
    return driver.execute_script("return window.localStorage.getItem(arguments[0])", key)


def sign_in(driver, base_url, token, expires_in=3600):
    """Store ``token`` for ``base_url``'s origin as ``/masuk`` would (pamong.js reads it):
    staff page tests that are not about signing in start here. The tab is left on a file of
    that origin (``/aset/pamong.css``); the next ``open_page`` starts the record afresh."""
    origin = _origin(base_url)
    if _origin(driver.current_url) != origin:  # localStorage belongs to a page of the origin
        driver.get(origin + "/aset/pamong.css")
    value = json.dumps({"access_token": token, "refresh_token": None,
                        "expires_at": int((time.time() + expires_in) * 1000)})
    driver.execute_script("window.localStorage.setItem(arguments[0], arguments[1])",
                          TOKEN_KEY, value)
    traffic_of(driver).origins.add(origin)


def execute(driver, script, *args):
    """``execute_script`` whose JavaScript error is an AssertionError with the message."""
    try:
        return driver.execute_script(script, *args)
    except JavascriptException as exc:
        raise AssertionError(f"script failed on {driver.current_url}: {exc.msg}") from None


# -- a service to look at ------------------------------------------------------------------------

@dataclass
class Served:
    """A service running in this process for a test: its base URL, HTTP client, database
    and settings."""

    url: str
    client: object
    db: object
    settings: dict
    container: object


def serve(request, config, service_cls, **settings):
    """Start ``service_cls`` in this process with ``config`` plus ``settings`` on a free port;
    stopped when the test (or the fixture's scope) ends."""
    import pymongo
    from nameko.containers import ServiceContainer

    from pamong.storage import database_name
    from pamong.testing import HttpClient, free_port

    port = free_port()
    merged = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", **settings}
    container = ServiceContainer(service_cls, merged)
    container.start()
    request.addfinalizer(container.stop)
    db = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)[
        database_name(config, service_cls.name)]
    url = f"http://127.0.0.1:{port}"
    return Served(url, HttpClient(url, merged), db, merged, container)

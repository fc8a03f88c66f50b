"""The attendance module's staff pages: ``/presensi`` (check-in from the phone, with an
offline queue) and ``/saya`` (my day, my month, my leave).

Both are HTML shells with no personal data in them: their scripts (``static/presensi.js``,
``static/saya.js``) call this module's JSON API with the signed-in person's bearer token
(``Pamong.api``), and send whoever is not signed in to ``/masuk?next=...``. ``/presensi`` also
has a service worker (``/presensi/sw.js``) that keeps the page and its assets on the phone, so
the page opens without a connection; check-ins made then wait in ``localStorage`` and go up
through ``POST /records/offline`` when the connection returns.
"""

import hashlib
import json
import re
from pathlib import Path

from werkzeug.wrappers import Response

from pamong.web.pages import Pages, page
from services.attendance import domain
from services.attendance.access import API

PAGES = Pages(__file__)
# what `make run` prints beside the module's API URL
PAGE_LINKS = [("/presensi", "presensi: check-in, offline too"),
              ("/saya", "hari dan bulan saya: today, the month, leave"),
              ("/masuk", "masuk: sign in")]
HERE = Path(__file__).resolve().parent
SW_SCOPE = "/presensi"
SW_URL = "/presensi/sw.js"
ASSET_URL = re.compile(r'(?:src|href)="(/aset/[^"]+)"')
# leave a person asks for themself (cuti bersama is set nationally, not requested)
REQUESTABLE_LEAVE = tuple(code for code in domain.LEAVE_TYPES if code != "CBer")


def presensi_shell(request):
    return PAGES.render(request, "presensi.html", api=API, sw_url=SW_URL, sw_scope=SW_SCOPE)


def service_worker_source(request):
    """``static/sw.js`` preceded by what it caches: the assets the check-in page links (each
    URL carries the file's hash: the kernel's stylesheet, icon and script, this module's),
    and a version that is the hash of those URLs, the page and the worker's own code, so any
    change installs a new worker that drops the old cache."""
    shell = presensi_shell(request).get_data()
    urls = list(dict.fromkeys(ASSET_URL.findall(shell.decode("utf-8"))))
    code = (HERE / "static" / "sw.js").read_text(encoding="utf-8")
    digest = hashlib.sha256(json.dumps(urls).encode() + shell + code.encode()).hexdigest()
    config = {"version": digest[:12], "scope": SW_SCOPE, "pages": [SW_SCOPE], "assets": urls}
    return f"self.PRESENSI_SW = {json.dumps(config)};\n{code}"


class AttendancePages:
    """Mixed into the attendance service with the kernel's ``PageEndpoints``."""

    @page("/presensi")
    def presensi_page(self, request):
        return presensi_shell(request)

    @page("/presensi/sw.js")
    def presensi_worker(self, request):
        # served under /presensi/ with Service-Worker-Allowed so that its scope can be
        # "/presensi" itself (a worker's default scope is its folder, "/presensi/", which
        # would not cover the page)
        return Response(service_worker_source(request),
                        content_type="text/javascript; charset=utf-8",
                        headers={"Service-Worker-Allowed": SW_SCOPE})

    @page("/saya")
    def saya_page(self, request):
        leave_types = [(code, domain.LEAVE_TYPES[code]["name"],
                        domain.LEAVE_TYPES[code]["label"]) for code in REQUESTABLE_LEAVE]
        return PAGES.render(request, "saya.html", api=API, leave_types=leave_types)

"""The page kernel (pamong/web/pages.py) as a person's browser sees it: signing in by
clicking, the error pages, the Content-Security-Policy enforced, hashed assets served
compressed and then from the cache, the language switch; every page clean at a phone's and a
desktop's size (axe-core, console, requests). The HTTP view is
tests/integration/test_pages_kernel.py; this module reuses its fixture service, with a staff
page shell of its own (html below, static/staf.js)."""

import json
import re

import jinja2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from pamong.auth import verify_token
from pamong.web import route
from pamong.web.pages import Pages, page
from tests.browser.harness import (
    TOKEN_KEY,
    assert_page_clean,
    execute,
    local_storage,
    open_page,
    page_problems,
    requests_made,
    serve,
    sign_in,
    wait_for,
    wait_for_element,
    wait_for_path,
    wait_for_text,
)
from tests.integration.pages_fixture.service import PagesKernelService

pytestmark = pytest.mark.browser

NIP = "198001012005011001"
PERSON = {
    "_id": NIP, "nip": NIP, "display_name": "Dr. Budi Santoso, M.Si.", "name": "Budi Santoso",
    "unit": "3510.03.01", "opd": "3510.03", "status": "active", "version": 1,
    "position": {"id": "p1", "title": "Kepala Bidang", "kind": "struktural",
                 "heads_unit": True, "may_sign": True}}

PAGES = Pages(__file__)  # static/ beside this file: /aset/browser/staf.js
PAGES.env.loader = jinja2.ChoiceLoader([jinja2.DictLoader({"staf.html": """\
{% extends "base.html" %}
{% block title %}{{ t("Halaman petugas", "Staff page") }}{% endblock %}
{% block head %}<link rel="stylesheet" href="{{ asset('vendor/uPlot.min.css') }}">{% endblock %}
{% block main %}
<h1>{{ t("Halaman petugas", "Staff page") }}</h1>
<p id="saya" class="card" role="status" aria-live="polite">{{ t("Memuat…", "Loading…") }}</p>
<section class="card" aria-labelledby="grafik-judul">
  <h2 id="grafik-judul">{{ t("Permohonan per jam", "Applications per hour") }}</h2>
  <div id="grafik" data-series='{{ series|tojson }}'></div>
</section>
{% endblock %}
{% block scripts %}<script src="{{ asset('vendor/uPlot.iife.min.js') }}" defer></script>
<script src="{{ asset('pamong.js') }}" defer></script>
<script src="{{ asset('browser/staf.js') }}" defer></script>{% endblock %}
"""}), PAGES.env.loader])


class BrowserPagesService(PagesKernelService):
    """The kernel's fixture service with a staff page: a shell whose script calls the API."""

    @page("/staf")
    def staff_shell(self, request):
        return PAGES.render(request, "staf.html",
                            series=[[8, 9, 10, 11, 12], [3, 7, 4, 9, 6]])

    @route("GET", "/api/pagekernel/v1/saya", any_staff=True)
    def whoami(self, request, principal):
        return {"name": principal.name, "nip": principal.nip, "roles": list(principal.roles)}


@pytest.fixture
def site(request, config):
    served = serve(request, config, BrowserPagesService, PAGES_DEV_SIGNIN=True)
    served.db.employees.insert_one(dict(PERSON))
    return served


def staff_token(site, roles=("pimpinan",)):
    return site.client.token(roles=roles, opd="3510.03", sub=NIP, nip=NIP,
                             name=PERSON["display_name"])


def test_signing_in_by_clicking_comes_back_to_the_page_with_a_token(browser, site):
    open_page(browser, site.url + "/staf")
    wait_for_path(browser, "/masuk")  # nobody signed in: sent to sign in, to come back
    assert "next=%2Fstaf" in browser.current_url

    Select(browser.find_element(By.ID, "dev-role")).select_by_value("pimpinan")
    Select(browser.find_element(By.ID, "dev-nip")).select_by_visible_text(
        "Dr. Budi Santoso, M.Si. · Kepala Bidang")
    browser.find_element(By.CSS_SELECTOR, "#dev-form button[type=submit]").click()

    wait_for_path(browser, "/staf")
    wait_for_text(browser, "#saya", "Dr. Budi Santoso, M.Si. (pimpinan)")  # the API, with it
    stored = json.loads(local_storage(browser, TOKEN_KEY))
    claims = verify_token(stored["access_token"], site.settings)
    assert claims["nip"] == NIP and claims["roles"] == ["pimpinan"]
    assert claims["opd"] == "3510.03"
    wait_for_element(browser, "#grafik .uplot canvas")  # the chart drew under the policy
    assert_page_clean(browser)

    open_page(browser, site.url + "/masuk")  # signed in: said so, and a way out
    wait_for_text(browser, "#masuk-status", "Dr. Budi Santoso, M.Si.")
    wait_for_element(browser, "#keluar").click()
    wait_for(browser, lambda d: local_storage(d, TOKEN_KEY) is None, message="the token gone")
    wait_for_text(browser, "#masuk-status", "Anda sudah keluar")
    assert_page_clean(browser)


def test_a_refused_sign_in_is_explained_on_the_page(browser, site):
    open_page(browser, site.url + "/masuk?next=/staf")
    Select(browser.find_element(By.ID, "dev-role")).select_by_value("pegawai")
    browser.find_element(By.CSS_SELECTOR, "#dev-form button[type=submit]").click()  # no NIP
    wait_for_text(browser, "#masuk-status", "nip")
    assert local_storage(browser, TOKEN_KEY) is None
    assert browser.current_url.endswith("/masuk?next=/staf")
    assert_page_clean(browser, allow_failed=(site.url + "/auth/dev/token 422",))


def test_kernel_pages_are_clean_on_a_phone_and_a_desktop(browser, site, page_check):
    page_check(site.url + "/masuk", "kernel-masuk")
    page_check(site.url + "/contoh", "kernel-contoh")
    sign_in(browser, site.url, staff_token(site))
    page_check(site.url + "/staf", "kernel-staf")
    wait_for_text(browser, "#saya", "(pimpinan)")


def test_a_missing_page_is_an_html_page_in_the_same_style(browser, site, page_check):
    unknown = site.url + "/tidak/ada"
    page_check(unknown, "kernel-404", allow_failed=(unknown,))
    [document] = [r for r in requests_made(browser) if r.url == unknown]
    assert document.status == 404
    assert document.headers["content-type"] == "text/html; charset=utf-8"
    assert "content-security-policy" in document.headers
    assert browser.find_element(By.TAG_NAME, "h1").text == "Halaman tidak ditemukan"
    # the stylesheet applies: the brand's header, not a browser's default page
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(11, 92, 171, 1)"

    refused = site.url + "/contoh/tidak-ada"  # a Problem raised by a page
    page_check(refused, "kernel-404-problem", allow_failed=(refused,))
    wait_for_text(browser, "main", "Kode ini tidak dikenal.")

    broken = site.url + "/rusak"
    open_page(browser, broken)
    [document] = [r for r in requests_made(browser) if r.url == broken]
    assert document.status == 500
    wait_for_text(browser, "main code", document.headers["x-request-id"])
    assert_page_clean(browser, allow_failed=(broken,))


def test_the_browser_enforces_the_policy_and_the_harness_reports_it(browser, site):
    open_page(browser, site.url + "/contoh")
    [document] = [r for r in requests_made(browser) if r.url == site.url + "/contoh"]
    policy = document.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert_page_clean(browser)

    ran = execute(browser, """
        var s = document.createElement("script");
        s.textContent = "window.inlineRan = true";
        document.head.appendChild(s);
        var p = document.getElementById("kata");
        p.setAttribute("style", "color: rgb(255, 0, 0)");
        return [window.inlineRan === true, getComputedStyle(p).color];
    """)
    assert ran[0] is False and ran[1] != "rgb(255, 0, 0)"
    execute(browser, "fetch('/aset/nothing.css');"
                     "fetch('http://example.invalid/x').catch(function () {})")
    # Chromium's words change between releases; the directive each names does not
    seen = [r"console error: .*inline script.*script-src",
            r"console error: .*inline style.*style-src",
            r"console error: .*http://example.invalid/x.*connect-src",
            re.escape(f"failed request: {site.url}/aset/nothing.css 404")]
    wait_for_problems(browser, seen)
    execute(browser, "location.assign('http://example.invalid/')")  # navigating: no CSP
    wait_for_problems(browser, [r"request to another origin: http://example.invalid/ "])


def wait_for_problems(browser, patterns):
    def all_seen(d):
        text = "\n".join(page_problems(d))
        return all(re.search(pattern, text) for pattern in patterns) and text

    return wait_for(browser, all_seen, message=lambda: f"{patterns} in {page_problems(browser)}")


def test_assets_come_hashed_and_compressed_then_from_the_cache(browser, site):
    sign_in(browser, site.url, staff_token(site))
    open_page(browser, site.url + "/staf")
    wait_for_element(browser, "#grafik .uplot canvas")
    first = [r for r in requests_made(browser) if "/aset/" in r.url]
    names = {re.sub(r"\?.*", "", r.url.split("/aset/", 1)[1]) for r in first}
    assert names >= {"pamong.css", "pamong.js", "vendor/uPlot.min.css",
                     "vendor/uPlot.iife.min.js", "browser/staf.js"}, names
    for asset in first:
        assert re.search(r"\?v=[0-9a-f]{12}$", asset.url), asset.url
        assert asset.status == 200 and not asset.cached, asset.describe()
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers.get("content-encoding") == "gzip", asset.describe()
    [document] = [r for r in requests_made(browser) if r.url == site.url + "/staf"]
    assert document.headers.get("content-encoding") == "gzip"

    open_page(browser, site.url + "/contoh")  # another page, the same stylesheet
    again = [r for r in requests_made(browser) if "/aset/pamong.css" in r.url]
    assert all(r.cached for r in again), [r.describe() for r in again]
    assert_page_clean(browser)


def test_english_is_one_click_away_and_stays(browser, site):
    open_page(browser, site.url + "/contoh")
    browser.find_element(By.LINK_TEXT, "English").click()
    wait_for_text(browser, "h1", "Example page")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    open_page(browser, site.url + "/masuk")
    wait_for_text(browser, "h1", "Sign in")
    browser.find_element(By.LINK_TEXT, "Bahasa Indonesia").click()
    wait_for_text(browser, "h1", "Masuk")
    assert_page_clean(browser)

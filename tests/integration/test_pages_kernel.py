"""The page kernel (pamong/web/pages.py) over HTTP, in a real nameko container against the
real broker and database: rendering, refusals as pages, security and caching headers,
compression, assets and the development sign-in. The browser's view is in tests/browser/."""

import gzip
import re

import pymongo
import pytest
import requests
from nameko.containers import ServiceContainer

from pamong.auth import verify_token
from pamong.config import ConfigError
from pamong.storage import database_name
from pamong.testing import HttpClient, free_port
from tests.integration.pages_fixture.service import PagesKernelService

pytestmark = pytest.mark.integration

NIP = "198001012005011001"
HTML = {"Accept": "text/html"}


def start(request, config, **overrides):
    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", **overrides}
    container = ServiceContainer(PagesKernelService, settings)
    container.start()
    request.addfinalizer(container.stop)
    return HttpClient(f"http://127.0.0.1:{port}", settings)


@pytest.fixture
def site(request, config):
    return start(request, config)


@pytest.fixture
def dev_site(request, config):
    client = start(request, config, PAGES_DEV_SIGNIN=True)
    db = pymongo.MongoClient(config["MONGO_URI"])[database_name(config, "pagekernel")]
    db.employees.insert_one({
        "_id": NIP, "nip": NIP, "display_name": "Dr. Budi Santoso, M.Si.", "name": "Budi Santoso",
        "unit": "3510.03.01", "opd": "3510.03", "status": "active", "version": 1,
        "position": {"id": "p1", "title": "Kepala Bidang", "kind": "struktural",
                     "heads_unit": True, "may_sign": True}})
    return client


def get(client, path, **kwargs):
    return requests.get(client.base_url + path, timeout=10, **kwargs)


def test_a_page_is_html_with_a_strict_policy_and_no_inline_code(site):
    response = get(site, "/contoh")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    html = response.text
    assert '<html lang="id">' in html and "Halaman contoh" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html and "<style" not in html
    assert re.search(r'href="/aset/pamong\.css\?v=[0-9a-f]{12}"', html)


def test_what_a_visitor_typed_is_escaped(site):
    html = get(site, "/contoh", params={"kata": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_english_is_one_click_away_and_remembered(site):
    session = requests.Session()
    first = session.get(site.base_url + "/contoh?lang=en", timeout=10)
    assert '<html lang="en">' in first.text and "Example page" in first.text
    assert "lang=en" in first.headers["Set-Cookie"] and "HttpOnly" in first.headers["Set-Cookie"]
    assert 'href="/contoh?lang=id"' in first.text  # the way back keeps the page
    again = session.get(site.base_url + "/contoh", timeout=10)
    assert "Example page" in again.text


def test_an_unchanged_page_is_answered_304(site):
    first = get(site, "/contoh")
    etag = first.headers["ETag"]
    second = get(site, "/contoh", headers={"If-None-Match": etag})
    assert second.status_code == 304 and second.content == b""


def test_pages_are_compressed_for_browsers_that_accept_it(site):
    raw = requests.get(site.base_url + "/contoh", headers={"Accept-Encoding": "gzip"},
                       timeout=10, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in raw.headers["Vary"]
    body = raw.raw.read()
    assert b"Halaman contoh" in gzip.decompress(body)
    assert len(body) < len(gzip.decompress(body)) / 3
    plain = get(site, "/contoh", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers


def test_a_refusal_is_a_page_in_the_same_style_and_never_cached(site):
    response = get(site, "/contoh/tidak-ada", headers=HTML)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Kode ini tidak dikenal." in response.text
    assert "Content-Security-Policy" in response.headers
    assert "/aset/pamong.css" in response.text


def test_an_unhandled_error_is_a_500_page_with_the_request_id_and_no_traceback(site):
    response = get(site, "/rusak", headers={**HTML, "X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-123"
    assert "req-123" in response.text and "Terjadi kesalahan" in response.text
    assert "RuntimeError" not in response.text and "Traceback" not in response.text


def test_unknown_paths_are_pages_for_browsers_and_problems_for_api_clients(site):
    browser = get(site, "/tidak/ada", headers=HTML)
    assert browser.status_code == 404 and "Halaman tidak ditemukan" in browser.text
    assert "Content-Security-Policy" in browser.headers
    client = get(site, "/tidak/ada")
    assert client.headers["Content-Type"] == "application/problem+json"
    api = get(site, "/api/pagekernel/v1/nothing", headers=HTML)
    assert api.headers["Content-Type"] == "application/problem+json"


def test_a_too_large_upload_is_refused_as_a_page(site):
    response = requests.post(site.base_url + "/unggah", files={"berkas": b"x" * 5000},
                             headers=HTML, timeout=10)
    assert response.status_code == 413
    assert "Berkas terlalu besar" in response.text
    small = requests.post(site.base_url + "/unggah", files={"berkas": b"x" * 100}, timeout=10)
    assert small.status_code == 200 and ">100<" in small.text


def test_assets_with_their_hash_are_cached_for_a_year_others_revalidate(site):
    html = get(site, "/contoh").text
    url = re.search(r'href="(/aset/pamong\.css\?v=[0-9a-f]{12})"', html).group(1)
    hashed = get(site, url, headers={"Accept-Encoding": "gzip"})
    assert hashed.status_code == 200 and hashed.headers["Content-Type"].startswith("text/css")
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert hashed.headers["Content-Encoding"] == "gzip"
    stale = get(site, "/aset/pamong.css?v=000000000000")
    assert stale.headers["Cache-Control"] == "no-cache"
    assert get(site, "/aset/pamong.css", headers={"If-None-Match": hashed.headers["ETag"]}
               ).status_code == 304
    module_asset = get(site, "/aset/pages_fixture/contoh.css")
    assert module_asset.status_code == 200 and "test fixture" in module_asset.text


@pytest.mark.parametrize("path", ["/aset/../pages.py", "/aset/%2e%2e/pages.py",
                                  "/aset/pages_fixture/../service.py", "/aset/nothing.css"])
def test_nothing_outside_the_static_folders_is_served(site, path):
    response = get(site, path)
    assert response.status_code == 404
    assert "import" not in response.text


def test_without_the_setting_there_is_no_development_sign_in(site):
    assert requests.post(site.base_url + "/auth/dev/token", json={"role": "admin"},
                         timeout=10).status_code == 404
    page = get(site, "/masuk").text
    assert "dev-form" not in page and "Masuk pengembangan" not in page


def test_the_development_sign_in_mints_a_token_for_a_listed_employee(dev_site):
    page = get(dev_site, "/masuk").text
    assert "Masuk pengembangan" in page and f'value="{NIP}"' in page
    assert "Dr. Budi Santoso, M.Si." in page
    answer = requests.post(dev_site.base_url + "/auth/dev/token",
                           json={"role": "pimpinan", "nip": NIP}, timeout=10)
    assert answer.status_code == 200, answer.text
    claims = verify_token(answer.json()["access_token"], dev_site.config)
    assert claims["nip"] == NIP and claims["roles"] == ["pimpinan"]
    assert claims["name"] == "Dr. Budi Santoso, M.Si." and claims["opd"] == "3510.03"
    citizen = requests.post(dev_site.base_url + "/auth/dev/token",
                            json={"role": "pemohon", "nik": "3510014101900001", "name": "Siti"},
                            timeout=10).json()
    assert verify_token(citizen["access_token"], dev_site.config)["nik"] == "3510014101900001"


@pytest.mark.parametrize("body", [{"role": "pegawai"}, {"role": "service"},
                                  {"role": "pegawai", "nip": "199901012020011999"},
                                  {"role": "pegawai", "nip": NIP, "extra": 1}])
def test_the_development_sign_in_refuses_what_it_cannot_stand_behind(dev_site, body):
    response = requests.post(dev_site.base_url + "/auth/dev/token", json=body, timeout=10)
    assert response.status_code == 422, response.text


def test_development_sign_in_with_a_production_key_set_refuses_to_start(config):
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
                "PAGES_DEV_SIGNIN": True, "JWT_SECRET": None,
                "JWT_JWKS_URL": "https://sso.example.go.id/certs", "JWT_AUDIENCE": "pamong"}
    container = ServiceContainer(PagesKernelService, settings)
    with pytest.raises(ConfigError, match="PAGES_DEV_SIGNIN"):
        container.start()
    container.kill()


def test_the_identity_provider_is_the_only_other_origin_a_page_may_reach(request, config):
    client = start(request, config, OIDC_AUTHORIZE_URL="https://sso.example.go.id/auth",
                   OIDC_TOKEN_URL="https://sso.example.go.id/token", OIDC_CLIENT_ID="pamong")
    response = get(client, "/masuk")
    policy = response.headers["Content-Security-Policy"]
    assert "connect-src 'self' https://sso.example.go.id;" in policy
    assert "form-action 'self' https://sso.example.go.id;" in policy
    assert 'data-client="pamong"' in response.text and 'id="masuk-sso"' in response.text

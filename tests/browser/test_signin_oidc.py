"""Staff sign-in against an OpenID Connect provider (authorization code with PKCE), as a
person clicks through it, with a local provider stand-in speaking the protocol Keycloak
speaks to a public browser client (tests/browser/oidc_standin.py): it hands out a code only
for an S256 challenge and exchanges it once, only for the matching verifier."""

import json
import time

import pytest
from selenium.webdriver.common.by import By

from pamong.auth import verify_token
from tests.browser.harness import (
    TOKEN_KEY,
    assert_page_clean,
    local_storage,
    open_page,
    requests_made,
    serve,
    wait_for_path,
    wait_for_text,
)
from tests.browser.oidc_standin import OidcStandin
from tests.browser.test_kernel_pages import BrowserPagesService

pytestmark = pytest.mark.browser

CLIENT = "pamong-web"
PERSON = {"sub": "kc-7f3a", "roles": ["pegawai"], "opd": "3510.03", "name": "Siti Rahayu",
          "nip": "198503142010012004"}


@pytest.fixture
def provider(request, config):
    standin = OidcStandin(config, CLIENT, PERSON)
    request.addfinalizer(standin.close)
    return standin


@pytest.fixture
def site(request, config, provider):
    return serve(request, config, BrowserPagesService,
                 OIDC_AUTHORIZE_URL=f"{provider.url}/authorize",
                 OIDC_TOKEN_URL=f"{provider.url}/token", OIDC_CLIENT_ID=CLIENT)


def test_a_person_signs_in_with_the_pemda_account_and_lands_where_they_were_going(
        browser, site, provider):
    open_page(browser, f"{site.url}/masuk?next=/contoh")
    browser.find_element(By.ID, "masuk-sso").click()
    wait_for_path(browser, "/contoh")
    stored = json.loads(local_storage(browser, TOKEN_KEY))
    claims = verify_token(stored["access_token"], site.settings)
    assert claims["sub"] == PERSON["sub"] and claims["nip"] == PERSON["nip"]
    assert stored["refresh_token"] and stored["expires_at"] > 0
    assert provider.exchanges == [(200, None)]  # one exchange, and the verifier matched
    assert provider.codes == {}  # the code is spent
    # the provider was asked exactly twice: the browser sent there, and the code exchanged
    asked = [(r.url.split("?")[0], r.status) for r in requests_made(browser)
             if r.url.startswith(provider.url) and r.type != "Preflight"]
    assert asked == [(f"{provider.url}/authorize", 302), (f"{provider.url}/token", 200)], asked


def test_a_callback_that_this_browser_did_not_start_is_refused(browser, site, provider):
    open_page(browser, f"{site.url}/masuk/selesai?code=stolen&state=forged")
    wait_for_text(browser, "#masuk-status", "tidak cocok")
    assert local_storage(browser, TOKEN_KEY) is None
    assert provider.exchanges == []  # the code was never offered to the provider
    assert_page_clean(browser)


def test_the_provider_refusing_is_said_in_plain_words(browser, site, provider):
    open_page(browser, f"{site.url}/masuk?next=/contoh")
    browser.find_element(By.ID, "masuk-sso").click()
    wait_for_path(browser, "/contoh")
    # the same authorization replayed: the provider refuses the spent code
    browser.execute_script("window.localStorage.clear()")
    open_page(browser, f"{site.url}/masuk")
    browser.execute_script(
        "sessionStorage.setItem('pamong.pkce', JSON.stringify("
        "{verifier: 'x'.repeat(43), state: 's1', next: '/contoh'}))")
    open_page(browser, f"{site.url}/masuk/selesai?code=spent&state=s1")
    wait_for_text(browser, "#masuk-status", "menolak")
    assert local_storage(browser, TOKEN_KEY) is None
    assert provider.exchanges[-1] == (400, "invalid_grant")
    assert_page_clean(browser, allow_failed=(f"{provider.url}/token 400",),
                      allow_origins=(provider.url,))


def test_an_expired_token_is_refreshed_before_the_page_calls_the_api(browser, site, provider):
    open_page(browser, f"{site.url}/masuk?next=/staf")
    browser.find_element(By.ID, "masuk-sso").click()
    wait_for_path(browser, "/staf")
    wait_for_text(browser, "#saya", PERSON["name"])
    first = json.loads(local_storage(browser, TOKEN_KEY))
    # the provider's short-lived token runs out while the person reads
    browser.execute_script(
        "var t = JSON.parse(localStorage.getItem(arguments[0])); t.expires_at = 1;"
        "localStorage.setItem(arguments[0], JSON.stringify(t));", TOKEN_KEY)
    open_page(browser, f"{site.url}/staf")
    wait_for_text(browser, "#saya", PERSON["name"])  # no detour through /masuk
    assert provider.exchanges == [(200, None), (200, "refreshed")]
    second = json.loads(local_storage(browser, TOKEN_KEY))
    assert second["refresh_token"] != first["refresh_token"]  # rotated
    assert second["expires_at"] > time.time() * 1000  # a live token again
    assert_page_clean(browser, allow_origins=(provider.url,))

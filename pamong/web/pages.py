"""HTML pages served by the modules themselves: one way to render, secure and cache them.

    from pamong.web.pages import Pages, page, PageEndpoints
    PAGES = Pages(__file__)   # templates: <module>/html/*.html, assets: <module>/static/

    class TrackingPages:
        @page("/lacak", cache="no-store")
        def tracking_page(self, request, **path_args):
            return PAGES.render(request, "lacak.html", result=...)

A page is a ``@route`` that anyone may open (``public``; staff pages are shells whose script
calls the module's API with the signed-in person's bearer token, so no cookie ever authorises
anything) and that is kept out of the OpenAPI document. Around it, the kernel:

- renders Jinja2 templates with autoescape; every template extends ``base.html`` and receives
  ``lang`` ("id" or "en"; ``?lang=en`` switches and a cookie remembers it), ``t(id, en)``,
  ``asset(name)`` (a URL carrying the file's hash, so it can be cached for a year),
  ``site_name``, ``dev_signin`` and ``request``;
- turns every refusal or failure (a raised ``Problem``, a 413 before the page ran, an
  unhandled error, an unknown path asked for by a browser) into the HTML error page with the
  same status, the detail and the request id, instead of problem+json;
- adds a strict Content-Security-Policy (scripts, styles, fonts and images from this origin
  only, no inline script or style) and the other security headers, ``Cache-Control`` (the
  page's ``cache=``, default ``no-cache``), a weak ETag answered with 304, and gzip when the
  browser accepts it (phones on slow connections pay for bytes, not for CPU).

``PageEndpoints`` (a mixin for the service class of every module with pages) serves the
assets (``/aset/<name>``) and sign-in (``/masuk``: OIDC authorization code with PKCE against
``OIDC_AUTHORIZE_URL``/``OIDC_TOKEN_URL``/``OIDC_CLIENT_ID``, or, with ``PAGES_DEV_SIGNIN``, a
development sign-in whose ``POST /auth/dev/token`` mints a local HS256 token).
"""

import functools
import gzip
import hashlib
import inspect
import json
import logging
import mimetypes
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2
from marshmallow import Schema, fields, validate
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from pamong import auth
from pamong.config import ConfigError
from pamong.replica import EMPLOYEES
from pamong.web.problem import PROBLEM_CONTENT_TYPE, Problem, not_found
from pamong.web.route import HttpRoute, _entry_for, route

log = logging.getLogger(__name__)

KERNEL_DIR = Path(__file__).parent
KERNEL_TEMPLATES = KERNEL_DIR / "templates"
KERNEL_STATIC = KERNEL_DIR / "static"
LANGS = ("id", "en")
LANG_COOKIE = "lang"
GZIP_MIN_BYTES = 512
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
ASSET_MAX_AGE = 365 * 24 * 3600
# where a page may send the browser besides this origin: only the sign-in provider
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'{token}; form-action 'self'{authorize}; "
        "frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'; worker-src 'self'")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # a QR code's secret is in the URL of the verification page: never pass it on
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ERROR_TITLES = {
    400: ("Permintaan tidak dapat dibaca", "The request could not be read"),
    404: ("Halaman tidak ditemukan", "Page not found"),
    405: ("Cara membuka halaman ini tidak didukung", "This page cannot be opened this way"),
    413: ("Berkas terlalu besar", "The file is too large"),
    422: ("Isian belum benar", "Some entries are not right"),
    429: ("Terlalu banyak percobaan", "Too many attempts"),
    500: ("Terjadi kesalahan di server", "Something went wrong on the server"),
    503: ("Layanan sedang tidak tersedia", "The service is unavailable"),
}


# -- assets --------------------------------------------------------------------------------------

class _Assets:
    """Files under ``/aset/``: the kernel's (``pamong.css``, ``vendor/...``) and each module's
    (``<module>/<file>``), read once per process, with their hash and gzip form."""

    def __init__(self):
        self.roots = {"": KERNEL_STATIC}
        self.files = {}

    def register(self, module, directory):
        self.roots[module + "/"] = directory

    def path(self, name):
        for prefix, root in sorted(self.roots.items(), key=lambda item: -len(item[0])):
            if prefix and not name.startswith(prefix):
                continue
            candidate = (root / name[len(prefix):]).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.is_file():
                return candidate
        return None

    def get(self, name):
        """``(body, gzipped or None, content type, hash)`` or None for an unknown name."""
        if name not in self.files:
            path = self.path(name)
            if path is None:
                return None
            body = path.read_bytes()
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type == "application/javascript":
                content_type += "; charset=utf-8"
            packed = gzip.compress(body, 9, mtime=0) if _compressible(content_type) else None
            self.files[name] = (body, packed, content_type,
                                hashlib.sha256(body).hexdigest()[:12])
        return self.files[name]

    def url(self, name):
        found = self.get(name)
        if found is None:
            raise jinja2.TemplateError(f"unknown asset {name!r}: add it under a static/ folder "
                                       "(vendor files come from `make assets`)")
        return f"/aset/{name}?v={found[3]}"


ASSETS = _Assets()


def _compressible(content_type):
    return content_type.startswith(COMPRESSIBLE)


# -- rendering -----------------------------------------------------------------------------------

class Pages:
    """A module's templates (``html/``) over the kernel's (``base.html``, ``error.html``) and
    its static files (``static/``, served as ``/aset/<module>/<file>``)."""

    def __init__(self, module_file):
        directory = Path(module_file).resolve().parent
        self.module = directory.name
        if (directory / "static").is_dir():
            ASSETS.register(self.module, directory / "static")
        self.env = _environment([directory / "html", KERNEL_TEMPLATES])

    def render(self, request, template, status=200, headers=None, **context):
        return render_with(self.env, request, template, status, headers, **context)

    def render_fragment(self, request, template, **context):
        """A template's text without a response (e.g. a part of a page sent over a stream),
        with the same context as a page."""
        return self.env.get_template(template).render(**page_context(request, context))


def _environment(folders):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in folders]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.globals["asset"] = ASSETS.url
    return env


KERNEL_PAGES = _environment([KERNEL_TEMPLATES])


def request_lang(request):
    asked = request.args.get("lang")
    if asked in LANGS:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    return remembered if remembered in LANGS else "id"


def _config(request):
    return getattr(request, "pamong_config", None) or {}


def page_context(request, context):
    lang = request_lang(request)
    config = _config(request)
    return {
        "lang": lang,
        "t": (lambda id_text, en_text: en_text if lang == "en" else id_text),
        "request": request,
        "site_name": config.get("PAGES_SITE_NAME") or "pamong",
        "dev_signin": dev_signin_enabled(config),
        "oidc_token_url": config.get("OIDC_TOKEN_URL") or "",
        "oidc_client": config.get("OIDC_CLIENT_ID") or "",
        "other_lang": "en" if lang == "id" else "id",
        "lang_url": _with_query(request, lang="en" if lang == "id" else "id"),
        **context,
    }


def render_with(env, request, template, status=200, headers=None, **context):
    lang = request_lang(request)
    body = env.get_template(template).render(**page_context(request, context))
    response = Response(body, status=status, headers=headers,
                        content_type="text/html; charset=utf-8")
    if request.args.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=ASSET_MAX_AGE, samesite="Lax",
                            httponly=True, secure=request.scheme == "https")
    return response


def _with_query(request, **changes):
    """This page's URL with some query parameters replaced (keeps a search on a switch)."""
    args = request.args.copy()
    for key, value in changes.items():
        args[key] = value
    return f"{request.path}?{urlencode(list(args.items(multi=True)))}"


def error_page(request, status, detail=None, headers=None):
    """The HTML page for a refusal or failure, in the layout of every other page."""
    lang = request_lang(request)
    titles = ERROR_TITLES.get(status) or ERROR_TITLES[500 if status >= 500 else 400]
    return render_with(KERNEL_PAGES, request, "error.html", status=status, headers=headers,
                       error_title=titles[1] if lang == "en" else titles[0],
                       error_status=status, detail=detail,
                       request_id=getattr(request, "correlation_id", None))


def wants_html(request):
    """A browser opening a page (not an API client): used for unknown paths."""
    path = request.path
    if path.startswith(("/api/", "/health/", "/metrics")):
        return False
    return "text/html" in request.headers.get("Accept", "")


# -- response finishing --------------------------------------------------------------------------

def content_security_policy(config):
    def origin(url):
        parts = urlsplit(url or "")
        return f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""

    return _CSP.format(token=origin(config.get("OIDC_TOKEN_URL")),
                       authorize=origin(config.get("OIDC_AUTHORIZE_URL")))


def finish(request, response, cache="no-cache"):
    """Security headers, caching, conditional answer and compression for a page's response."""
    config = _config(request)
    response.headers["Content-Security-Policy"] = content_security_policy(config)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = cache if response.status_code < 400 else "no-store"
    if response.is_streamed or response.direct_passthrough:
        return response
    if response.status_code == 200 and request.method in ("GET", "HEAD"):
        response.add_etag(weak=True)
        response.make_conditional(request)
    return compress(request, response)


def compress(request, response, packed=None):
    response.vary.add("Accept-Encoding")
    if (response.status_code == 304 or "gzip" not in request.headers.get("Accept-Encoding", "")
            or not _compressible(response.mimetype or "")
            or response.headers.get("Content-Encoding")):
        return response
    body = response.get_data()
    if packed is None:
        if len(body) < GZIP_MIN_BYTES:
            return response
        packed = gzip.compress(body, 6)
    response.set_data(packed)
    response.headers["Content-Encoding"] = "gzip"
    return response


class PageRoute(HttpRoute):
    """``HttpRoute`` for HTML: public, undocumented, and every problem shown as a page."""

    def __init__(self, method, url, cache="no-cache", **kwargs):
        self.cache = cache
        kwargs.setdefault("public", True)
        super().__init__(method, url, document=False, **kwargs)

    def setup(self):
        super().setup()
        check_pages_config(self.container.config)

    def _check_handler_signature(self):
        rule = Rule(self.url)
        Map([rule])
        handler = inspect.unwrap(getattr(self.container.service_cls, self.method_name))
        try:
            inspect.signature(handler).bind(None, None, **dict.fromkeys(rule.arguments))
        except TypeError as exc:
            raise TypeError(f"page {self.container.service_name}.{self.method_name} cannot be "
                            f"called as (self, request, **{sorted(rule.arguments)}): {exc}"
                            ) from None

    def handle_request(self, request):
        request.pamong_config = self.container.config
        response = super().handle_request(request)
        if response.mimetype == PROBLEM_CONTENT_TYPE:
            problem = json.loads(response.get_data() or b"{}")
            keep = {k: v for k, v in response.headers.items()
                    if k in ("Retry-After", "Allow", "X-Request-ID")}
            response = error_page(request, response.status_code, problem.get("detail"), keep)
        return finish(request, response, self.cache)


def page(url, method="GET", cache="no-cache", **options):
    """Declare an HTML page; the method returns ``Pages.render(...)`` or raises ``Problem``."""

    def decorate(fn):
        @functools.wraps(fn)
        def without_principal(self, request, principal, **kwargs):  # pages have none
            return fn(self, request, **kwargs)

        return PageRoute.decorator(method, url, cache=cache, **options)(
            _entry_for(without_principal))

    return decorate


# -- sign-in and assets --------------------------------------------------------------------------

def dev_signin_enabled(config):
    return bool(config.get("PAGES_DEV_SIGNIN")) and bool(config.get("JWT_SECRET"))


def check_pages_config(config):
    if config.get("PAGES_DEV_SIGNIN") and config.get("JWT_JWKS_URL"):
        raise ConfigError("PAGES_DEV_SIGNIN is set with JWT_JWKS_URL: the development sign-in "
                          "is for `make run` only; unset it in production")


class DevTokenIn(Schema):
    role = fields.String(required=True, validate=validate.OneOf(sorted(auth.ROLES - {"service"})))
    nip = fields.String(validate=validate.Regexp(r"^\d{18}$"))
    nik = fields.String(validate=validate.Regexp(r"^\d{16}$"))
    name = fields.String(validate=validate.Length(max=120))
    opd = fields.String(validate=validate.Length(max=40))


DEV_PEOPLE_LIMIT = 40
DEV_TOKEN_SECONDS = 8 * 3600  # a working day


class PageEndpoints:
    """Assets and sign-in for a module with pages. Mix into the service class (which has
    ``db`` and ``config``)."""

    @page("/aset/<path:name>", cache="no-cache")
    def page_asset(self, request, name):
        found = ASSETS.get(name)
        if found is None:
            raise not_found("Berkas ini tidak ada.")
        body, packed, content_type, digest = found
        response = Response(body, content_type=content_type)
        if request.args.get("v") == digest:
            response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}, immutable"
        response.set_etag(digest)
        response.make_conditional(request)
        return compress(request, response, packed)

    @page("/masuk")
    def page_signin(self, request):
        return self._signin_page(request)

    @page("/masuk/selesai")
    def page_signin_done(self, request):
        return self._signin_page(request)

    def _signin_page(self, request):
        config = self.config
        people = []
        if dev_signin_enabled(config):
            people = list(self.db[EMPLOYEES].find(
                {"status": "active"}, {"nip": 1, "display_name": 1, "opd": 1, "unit": 1,
                                       "position": 1}).sort("display_name", 1)
                .limit(DEV_PEOPLE_LIMIT))
        return render_with(
            KERNEL_PAGES, request, "masuk.html", people=people,
            oidc={"authorize": config.get("OIDC_AUTHORIZE_URL") or "",
                  "token": config.get("OIDC_TOKEN_URL") or "",
                  "client": config.get("OIDC_CLIENT_ID") or "",
                  "scope": config.get("OIDC_SCOPE") or "openid"},
            roles=sorted(auth.ROLES - {"service"}))

    @route("POST", "/auth/dev/token", public=True, body=DevTokenIn(), document=False)
    def dev_token(self, request, principal, body):
        """A development token for the person picked on ``/masuk`` (``PAGES_DEV_SIGNIN`` only;
        404 otherwise, so production does not even show it exists)."""
        config = self.config
        if not dev_signin_enabled(config):
            raise not_found()
        claims = {"name": body.get("name"), "opd": body.get("opd"), "nik": body.get("nik")}
        nip = body.get("nip")
        if nip:
            person = self.db[EMPLOYEES].find_one({"_id": nip})
            if person is None:
                raise Problem(422, "No employee with this NIP in this module's directory copy.",
                              errors={"nip": ["unknown NIP"]})
            claims.update(name=person.get("display_name"), opd=person.get("opd"))
        elif body["role"] != "pemohon" and body["role"] != "admin":
            raise Problem(422, "Staff sign in as an employee: pick a NIP.",
                          errors={"nip": ["required for this role"]})
        sub = nip or body.get("nik") or "dev-admin"
        token = auth.mint_token(config, sub=f"dev:{sub}", roles=[body["role"]],
                                nip=nip, ttl_seconds=DEV_TOKEN_SECONDS, **claims)
        log.info("development sign-in as %s (%s)", body["role"], "NIP" if nip else "no NIP")
        return {"access_token": token, "token_type": "Bearer", "expires_in": DEV_TOKEN_SECONDS}

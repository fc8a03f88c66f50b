"""A local OpenID Connect provider stand-in (authorization code + PKCE), speaking the protocol
Keycloak speaks to a public browser client, so the sign-in page is tested against a real
server: ``/authorize`` signs in a fixed person without asking (and records the challenge),
``/token`` exchanges a code once, only with the verifier that matches its S256 challenge and
the same ``redirect_uri`` and ``client_id``, and a refresh token once (rotated), answering
with CORS for the page's origin."""

import base64
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from pamong.auth import mint_token


class OidcStandin:
    def __init__(self, config, client_id, person):
        self.config = config
        self.client_id = client_id
        self.person = person  # claims of whoever "signs in"
        self.codes = {}
        self.refresh_tokens = set()
        self.exchanges = []  # (status, reason) of every /token call
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path != "/authorize":
                    return self._send(404)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if (query.get("response_type") != "code"
                        or query.get("client_id") != standin.client_id
                        or query.get("code_challenge_method") != "S256"
                        or not query.get("code_challenge") or not query.get("state")):
                    return self._send(400, b"bad authorization request")
                code = secrets.token_urlsafe(16)
                standin.codes[code] = query
                answer = urlencode({"code": code, "state": query["state"]})
                target = f"{query['redirect_uri']}?{answer}"
                return self._send(302, headers=[("Location", target)])

            def do_POST(self):
                if urlsplit(self.path).path != "/token":
                    return self._send(404)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = standin.exchange(form)
                origin = self.headers.get("Origin") or "*"
                return self._send(status, json.dumps(body).encode(), headers=[
                    ("Content-Type", "application/json"),
                    ("Access-Control-Allow-Origin", origin), ("Vary", "Origin")])

        return Handler

    def exchange(self, form):
        if form.get("grant_type") == "refresh_token":
            return self.refresh(form)
        asked = self.codes.pop(form.get("code", ""), None)  # a code works once
        reason = None
        if form.get("grant_type") != "authorization_code":
            reason = "unsupported_grant_type"
        elif asked is None:
            reason = "invalid_grant"
        elif (form.get("redirect_uri") != asked["redirect_uri"]
              or form.get("client_id") != asked["client_id"]):
            reason = "invalid_grant"
        else:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != asked["code_challenge"]:
                reason = "invalid_grant"
        self.exchanges.append((400 if reason else 200, reason))
        if reason:
            return 400, {"error": reason}
        return 200, self.tokens()

    def refresh(self, form):
        """A refresh token works once (rotation, as Keycloak can be set to do)."""
        known = form.get("refresh_token") in self.refresh_tokens
        self.refresh_tokens.discard(form.get("refresh_token"))
        ok = known and form.get("client_id") == self.client_id
        self.exchanges.append((200, "refreshed") if ok else (400, "invalid_grant"))
        return (200, self.tokens()) if ok else (400, {"error": "invalid_grant"})

    def tokens(self):
        refresh_token = secrets.token_urlsafe(16)
        self.refresh_tokens.add(refresh_token)
        return {"access_token": mint_token(self.config, ttl_seconds=300, **self.person),
                "token_type": "Bearer", "expires_in": 300, "refresh_token": refresh_token}

/* /masuk: OIDC authorization code with PKCE (S256) against the configured provider, or the
   development sign-in of `make run`. The token goes to Pamong.setToken; then back to `next`. */
(function () {
  "use strict";
  var section = document.getElementById("masuk");
  var status = document.getElementById("masuk-status");
  var PKCE_KEY = "pamong.pkce";
  var params = new URLSearchParams(location.search);

  function say(text) { status.textContent = text; status.classList.remove("hidden"); }

  function next() {
    var target = params.get("next") || "/";
    // only a path of this origin: never an open redirect
    return (target.charAt(0) === "/" && target.charAt(1) !== "/" && target.charAt(1) !== "\\")
      ? target : "/";
  }

  function b64url(bytes) {
    return btoa(String.fromCharCode.apply(null, new Uint8Array(bytes)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function random(n) { var a = new Uint8Array(n); crypto.getRandomValues(a); return b64url(a); }

  var oidc = { authorize: section.dataset.authorize, token: section.dataset.token,
               client: section.dataset.client, scope: section.dataset.scope || "openid" };
  var redirectUri = location.origin + "/masuk/selesai";

  function startSso() {
    var verifier = random(32);
    var state = random(16);
    crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (hash) {
      sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier: verifier, state: state,
                                                        next: next() }));
      var query = new URLSearchParams({ response_type: "code", client_id: oidc.client,
        redirect_uri: redirectUri, scope: oidc.scope, state: state,
        code_challenge: b64url(hash), code_challenge_method: "S256" });
      location.assign(oidc.authorize + (oidc.authorize.indexOf("?") >= 0 ? "&" : "?") + query);
    });
  }

  function finishSso() {
    var saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    if (params.get("error")) {
      say(Pamong.t("Masuk dibatalkan: ", "Sign-in was cancelled: ") + params.get("error"));
      return;
    }
    if (!saved || saved.state !== params.get("state")) {
      say(Pamong.t("Sesi masuk tidak cocok; silakan ulangi.", "The sign-in session does not match; please start again."));
      return;
    }
    say(Pamong.t("Memproses masuk…", "Signing in…"));
    fetch(oidc.token, { method: "POST", credentials: "omit",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"),
        redirect_uri: redirectUri, client_id: oidc.client, code_verifier: saved.verifier })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (answer) {
      if (!answer.ok || !answer.body.access_token) {
        say(Pamong.t("Penyedia menolak masuk: ", "The provider refused the sign-in: ") +
            (answer.body.error_description || answer.body.error || "?"));
        return;
      }
      Pamong.setToken(answer.body);
      location.replace(saved.next || "/");
    }, function () {
      say(Pamong.t("Penyedia masuk tidak dapat dihubungi.", "The sign-in provider cannot be reached."));
    });
  }

  function devSignIn(event) {
    event.preventDefault();
    var form = event.target;
    var body = { role: form.role.value };
    ["nip", "nik", "name"].forEach(function (field) {
      if (form[field].value.trim()) { body[field] = form[field].value.trim(); }
    });
    Pamong.api("/auth/dev/token", { method: "POST", body: body, noRedirect: true })
      .then(function (answer) {
        if (!answer.ok) { say(Pamong.problemText(answer)); return; }
        Pamong.setToken(answer.body);
        location.assign(next());
      }, function () { say(Pamong.t("Tidak ada koneksi.", "No connection.")); });
  }

  var signOut = document.getElementById("keluar");
  var claims = Pamong.claims();
  if (params.get("keluar")) { Pamong.signOut(); claims = null; }
  if (claims) {
    say(Pamong.t("Anda masuk sebagai ", "You are signed in as ") + (claims.name || claims.sub) +
        " (" + (claims.roles || []).join(", ") + ").");
    signOut.classList.remove("hidden");
  }
  signOut.addEventListener("click", function () {
    Pamong.signOut();
    say(Pamong.t("Anda sudah keluar.", "You are signed out."));
    signOut.classList.add("hidden");
  });
  var sso = document.getElementById("masuk-sso");
  if (sso) { sso.addEventListener("click", startSso); }
  if (location.pathname === "/masuk/selesai" && params.get("state")) { finishSso(); }
  var form = document.getElementById("dev-form");
  if (form) { form.addEventListener("submit", devSignIn); }
})();

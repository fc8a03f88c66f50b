/* pamong: what every staff page's script shares. The signed-in person's bearer token is kept
   in this origin's localStorage (a phone that closes the tab keeps its offline check-ins and
   its sign-in); the strict Content-Security-Policy is what keeps other scripts away from it. */
(function () {
  "use strict";
  var KEY = "pamong.token";

  function decode(part) {
    var text = part.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    return JSON.parse(decodeURIComponent(Array.prototype.map.call(atob(text), function (c) {
      return "%" + ("00" + c.charCodeAt(0).toString(16)).slice(-2);
    }).join("")));
  }

  function stored() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }

  function call(path, options) {
    var headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
    var token = Pamong.token();
    if (token) { headers["Authorization"] = "Bearer " + token.access_token; }
    var body = options.body;
    if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData) &&
        typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    return fetch(path, { method: options.method || "GET", headers: headers, body: body,
                         credentials: "omit", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 && !options.noRedirect) {
          Pamong.signOut();
          location.assign(Pamong.signInUrl());
        }
        if (options.raw) {  // a file (a PDF): the caller reads the Response itself
          return { ok: response.ok, status: response.status, headers: response.headers,
                   response: response };
        }
        var type = response.headers.get("Content-Type") || "";
        var read = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
        return read.then(function (data) {
          return { ok: response.ok, status: response.status, body: data,
                   headers: response.headers };
        });
      });
  }

  var Pamong = {
    /* {access_token, refresh_token?, expires_at (ms)} or null when absent or expired */
    token: function () {
      var token = stored();
      if (token && token.expires_at > Date.now() + 5000) { return token; }
      return null;
    },
    /* the signed-in person's claims; {expired: true} reads them from an expired token too
       (offline, a page still needs to know whose records it keeps) */
    claims: function (options) {
      var token = options && options.expired ? stored() : Pamong.token();
      if (!token) { return null; }
      try { return decode(token.access_token.split(".")[1]); } catch (e) { return null; }
    },
    /* a new access token from the refresh token (OIDC providers give short-lived ones);
       resolves true when there is a fresh token afterwards */
    refresh: function () {
      var token = stored();
      var body = document.body.dataset;
      if (Pamong.token()) { return Promise.resolve(true); }
      if (!token || !token.refresh_token || !body.oidcToken) { return Promise.resolve(false); }
      return fetch(body.oidcToken, { method: "POST", credentials: "omit",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", client_id: body.oidcClient,
                                    refresh_token: token.refresh_token })
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (answer) {
        if (!answer || !answer.access_token) { return false; }
        if (!answer.refresh_token) { answer.refresh_token = token.refresh_token; }
        Pamong.setToken(answer);
        return true;
      }, function () { return false; });
    },
    setToken: function (answer) {
      var lifetime = Number(answer.expires_in || 300) * 1000;
      localStorage.setItem(KEY, JSON.stringify({
        access_token: answer.access_token, refresh_token: answer.refresh_token || null,
        expires_at: Date.now() + lifetime
      }));
    },
    signOut: function () { localStorage.removeItem(KEY); },
    signInUrl: function () {
      return "/masuk?next=" + encodeURIComponent(location.pathname + location.search);
    },
    /* send the browser to sign in unless someone is signed in; returns the claims */
    requireSignIn: function () {
      var claims = Pamong.claims();
      var old = stored();
      if (!claims && old && old.refresh_token && document.body.dataset.oidcToken) {
        claims = Pamong.claims({ expired: true });  // Pamong.api refreshes it first
      }
      if (!claims) { location.assign(Pamong.signInUrl()); }
      return claims;
    },
    /* fetch this module's API with the bearer token (refreshed first when it ran out).
       Resolves {ok, status, body, headers} ({raw: true}: {ok, status, headers, response},
       for files); a 401 sends the browser to sign in (unless {noRedirect: true}); rejects
       only when the network fails (offline), which callers may treat as such. */
    api: function (path, options) {
      return Pamong.refresh().then(function () { return call(path, options || {}); });
    },
    /* a problem+json answer as one sentence for a person */
    problemText: function (answer) {
      var body = answer && answer.body;
      if (!body) { return "HTTP " + (answer ? answer.status : "?"); }
      var text = body.detail || body.title || ("HTTP " + answer.status);
      if (body.errors) {
        Object.keys(body.errors).forEach(function (field) {
          text += " " + field + ": " + body.errors[field].join(", ") + ".";
        });
      }
      return text;
    },
    /* a random key for an Idempotency-Key header */
    newKey: function () {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    },
    /* small DOM helpers for the staff pages' lists (text only: never HTML from data) */
    clear: function (node) { while (node.firstChild) { node.removeChild(node.firstChild); } },
    add: function (parent, tag, text, className) {
      var node = document.createElement(tag);
      if (text !== undefined && text !== null) { node.textContent = text; }
      if (className) { node.className = className; }
      parent.appendChild(node);
      return node;
    },
    lang: function () { return document.documentElement.lang === "en" ? "en" : "id"; },
    t: function (idText, enText) { return Pamong.lang() === "en" ? enText : idText; }
  };
  window.Pamong = Pamong;
})();

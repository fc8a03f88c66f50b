/* The check-in page's service worker (served as /presensi/sw.js, scope /presensi, with
   self.PRESENSI_SW = {version, scope, pages, assets} put in front of it by the server).

   It keeps the page and its assets so /presensi opens without a connection. The page is
   fetched from the network first (fresh when online) and from the cache when that fails;
   assets carry their hash in the URL (?v=...), so they come from the cache first. API calls
   are not touched: the page itself keeps what it could not send. A new version (any asset,
   the page's template or this code changed) installs a new cache and drops the old ones. */
(function () {
  "use strict";
  var config = self.PRESENSI_SW;
  var PREFIX = "presensi-";
  var CACHE = PREFIX + config.version;

  self.addEventListener("install", function (event) {
    event.waitUntil(caches.open(CACHE).then(function (cache) {
      return cache.addAll(config.pages.concat(config.assets).map(function (url) {
        return new Request(url, { cache: "reload", credentials: "omit" });
      }));
    }).then(function () { return self.skipWaiting(); }));
  });

  self.addEventListener("activate", function (event) {
    event.waitUntil(caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(PREFIX) === 0 && name !== CACHE;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); }));
  });

  function isPage(url) {
    return url.pathname === config.scope || config.pages.indexOf(url.pathname) >= 0;
  }

  self.addEventListener("fetch", function (event) {
    var request = event.request;
    if (request.method !== "GET") { return; }
    var url = new URL(request.url);
    if (url.origin !== self.location.origin) { return; }
    if (request.mode === "navigate" && isPage(url)) {
      event.respondWith(fetch(request).then(function (response) {
        if (response.ok && !url.search) {
          var copy = response.clone();
          caches.open(CACHE).then(function (cache) { return cache.put(url.pathname, copy); });
        }
        return response;
      }, function () {
        return caches.open(CACHE).then(function (cache) {
          return cache.match(url.pathname, { ignoreVary: true }).then(function (found) {
            return found || Response.error();
          });
        });
      }));
      return;
    }
    if (url.pathname.indexOf("/aset/") === 0) {
      event.respondWith(caches.open(CACHE).then(function (cache) {
        return cache.match(request, { ignoreVary: true }).then(function (found) {
          return found || fetch(request).then(function (response) {
            if (response.ok && url.search) { cache.put(request, response.clone()); }
            return response;
          });
        });
      }));
    }
  });
})();

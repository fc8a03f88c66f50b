/* /presensi: check in and out from the phone.

   - The position comes from navigator.geolocation (high accuracy, watched); the distance to
     the nearest allowed place is estimated here with the server's rule (inside a place when
     within its radius and the accuracy is no worse than the radius). The server decides.
   - One button: check in, or check out once checked in today. Each press has its own
     Idempotency-Key; the answer says in or out and why (the API's problem carries the
     distance and the radius on a refusal).
   - Offline: when the network fails (fetch rejects, or a gateway answers 502-504), the record
     is kept in localStorage with its key and uploaded through POST /records/offline when the
     connection returns ("online" event, page load, every 20 s while some wait), each exactly
     once: the same key on every retry, and it leaves the queue only once the server answered
     for it. Each record's outcome is shown.
   - A service worker (/presensi/sw.js) keeps the page and its assets so it opens offline. */
(function () {
  "use strict";
  var root = document.getElementById("presensi");
  if (!root) { return; }
  var API = root.dataset.api;
  var QUEUE_KEY = "pamong.presensi.queue";
  var DONE_KEY = "pamong.presensi.done";
  var TODAY_KEY = "pamong.presensi.today";
  var DEVICE_KEY = "pamong.device";
  var DONE_KEPT = 20;
  var BATCH = 100;
  var RETRY_MS = 20000;
  var EARTH_RADIUS_M = 6371008.8;
  var t = Pamong.t;

  var el = function (id) { return document.getElementById(id); };
  var button = el("tombol");
  var state = { claims: null, today: null, position: null, flushing: false, busy: false };

  // -- small helpers ---------------------------------------------------------------------

  function load(key, fallback) {
    try {
      var value = JSON.parse(localStorage.getItem(key) || "null");
      return value === null ? fallback : value;
    } catch (e) { return fallback; }
  }

  function save(key, value) { localStorage.setItem(key, JSON.stringify(value)); }

  var clear = Pamong.clear;
  var add = Pamong.add;

  function metres(value) {
    if (value === null || value === undefined) { return "–"; }
    return value >= 1000 ? (value / 1000).toFixed(1).replace(".", t(",", ".")) + " km"
                         : Math.round(value) + " m";
  }

  function zone() { return (state.today && state.today.timezone) || undefined; }

  function clock(value) {
    try {
      return new Date(value).toLocaleTimeString(Pamong.lang() === "en" ? "en-GB" : "id-ID",
        { hour: "2-digit", minute: "2-digit", timeZone: zone() });
    } catch (e) { return String(value); }
  }

  function dayOf(ms) {
    try {
      return new Intl.DateTimeFormat("en-CA", { timeZone: zone(), year: "numeric",
        month: "2-digit", day: "2-digit" }).format(new Date(ms));
    } catch (e) { return new Date(ms).toISOString().slice(0, 10); }
  }

  function kindText(kind) { return kind === "out" ? t("Pulang", "Check-out") : t("Masuk", "Check-in"); }

  var FLAGS = {
    mock_location: ["lokasi palsu (mock)", "mock location"],
    clock_drift: ["jam perangkat tidak sesuai", "device clock off"],
    impossible_travel: ["perpindahan tidak wajar", "impossible travel"],
    shared_device: ["perangkat dipakai pegawai lain", "device shared with another employee"],
    offline: ["dikirim luring", "uploaded offline"]
  };

  function flagsText(flags) {
    if (!flags || !flags.length) { return t("tidak ada", "none"); }
    return flags.map(function (f) { return FLAGS[f] ? t(FLAGS[f][0], FLAGS[f][1]) : f; }).join(", ");
  }

  function deviceId() {
    var id = localStorage.getItem(DEVICE_KEY);
    if (!id) { id = "web-" + Pamong.newKey().slice(0, 20); localStorage.setItem(DEVICE_KEY, id); }
    return id;
  }

  /* the signed-in person; offline with an expired token, the NIP it carried (a record made
     then waits for the next sign-in of that person to go up) */
  function signedIn() {
    var claims = Pamong.claims();
    if (claims || navigator.onLine) { return Pamong.requireSignIn(); }
    return Pamong.claims({ expired: true }) || Pamong.requireSignIn();
  }

  // -- geofence estimate (the server's rule; it decides) -----------------------------------

  function distance(lat1, lon1, lat2, lon2) {
    var rad = Math.PI / 180;
    var p1 = lat1 * rad, p2 = lat2 * rad;
    var h = Math.pow(Math.sin((p2 - p1) / 2), 2) +
            Math.cos(p1) * Math.cos(p2) * Math.pow(Math.sin((lon2 - lon1) * rad / 2), 2);
    return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  function estimate(position, places) {
    if (!places || !places.length) { return { reason: "no_place", place: null }; }
    var measured = places.map(function (p) {
      return { place: p, d: distance(position.latitude, position.longitude, p.latitude, p.longitude) };
    }).sort(function (a, b) { return a.d - b.d; });
    var within = measured.filter(function (m) { return m.d <= m.place.radius_m; });
    var accepted = within.filter(function (m) { return position.accuracy_m <= m.place.radius_m; });
    var best = accepted[0] || within[0] || measured[0];
    return { reason: accepted.length ? null : (within.length ? "accuracy" : "outside"),
             place: best.place, distance_m: best.d };
  }

  // -- rendering ---------------------------------------------------------------------------

  function showConnection() {
    var badge = el("koneksi");
    badge.textContent = navigator.onLine ? t("daring", "online") : t("luring (tanpa koneksi)", "offline");
    badge.classList.toggle("conn-off", !navigator.onLine);
  }

  function showWho() {
    var who = el("siapa");
    var today = state.today;
    if (!today) {
      who.textContent = state.claims ? (state.claims.name || state.claims.nip || "") : "";
      return;
    }
    who.textContent = (today.name || today.nip) + " · " + (today.unit_name || today.unit) +
      " · " + today.date;
  }

  function showPosition() {
    var pos = state.position;
    var places = state.today ? state.today.places : null;
    if (!pos) { return; }
    el("lokasi-status").textContent = t("Lokasi diperbarui pukul ", "Location updated at ") +
      clock(pos.at || Date.now()) + ".";
    el("akurasi").textContent = "±" + metres(pos.accuracy_m);
    if (!places) {
      el("tempat").textContent = t("belum diketahui (tanpa koneksi)", "not known yet (offline)");
      el("jarak").textContent = "–";
      el("perkiraan").textContent = "";
      return;
    }
    var guess = estimate(pos, places);
    var hint = el("perkiraan");
    hint.className = "hint";
    if (guess.reason === "no_place") {
      el("tempat").textContent = t("tidak ada tempat presensi untuk Anda hari ini",
                                   "no place to record for you today");
      el("jarak").textContent = "–";
      hint.textContent = t("Hubungi admin OPD Anda.", "Ask your OPD admin.");
      return;
    }
    el("tempat").textContent = guess.place.name + " (" + t("batas", "radius") + " " +
      metres(guess.place.radius_m) + ")";
    el("jarak").textContent = metres(guess.distance_m);
    if (guess.reason === null) {
      hint.textContent = t("Perkiraan: Anda di dalam area.", "Estimate: you are inside the area.");
      hint.classList.add("hint-ok");
    } else if (guess.reason === "accuracy") {
      hint.textContent = t("Perkiraan: akurasi lokasi kurang dari batas area. Pindah ke tempat terbuka atau tunggu sebentar.",
                           "Estimate: your location is less precise than the area allows. Move to open sky or wait a moment.");
      hint.classList.add("hint-bad");
    } else {
      hint.textContent = t("Perkiraan: Anda di luar area.", "Estimate: you are outside the area.");
      hint.classList.add("hint-bad");
    }
  }

  function checkedIn() {
    var today = state.today;
    var day = dayOf(Date.now());
    if (today && today.date === day &&
        today.records.some(function (r) { return r.kind === "in"; })) { return true; }
    var mine = function (e) { return e.nip === state.claims.nip && e.day === day && e.kind === "in"; };
    return load(QUEUE_KEY, []).some(mine) || load(DONE_KEY, []).some(function (e) {
      return mine(e) && e.outcome !== "rejected";
    });
  }

  function showButton() {
    if (state.busy) { return; }
    if (state.blocked) { button.disabled = true; return; }
    var kind = checkedIn() ? "out" : "in";
    button.dataset.kind = kind;
    if (!state.position) {
      button.disabled = true;
      button.textContent = t("Menunggu lokasi…", "Waiting for your location…");
      return;
    }
    button.disabled = false;
    button.textContent = kind === "in" ? t("Presensi masuk", "Check in") : t("Presensi pulang", "Check out");
  }

  function fact(list, term, value) {
    add(list, "dt", term);
    add(list, "dd", value);
  }

  /* the big answer: tone ok | warn | bad */
  function answer(tone, word, why, facts) {
    var box = el("jawaban");
    box.className = "card verdict status-" + tone;
    box.dataset.tone = tone;
    el("jawaban-kata").textContent = word;
    el("jawaban-alasan").textContent = why;
    var list = el("jawaban-rincian");
    clear(list);
    (facts || []).forEach(function (f) { fact(list, f[0], f[1]); });
    box.focus();
  }

  function recordFacts(record) {
    return [[t("Tempat", "Place"), record.place], [t("Jarak", "Distance"), metres(record.distance_m)],
            [t("Batas", "Radius"), metres(record.radius_m)],
            [t("Akurasi", "Accuracy"), "±" + metres(record.accuracy_m)],
            [t("Tanda", "Flags"), flagsText(record.flags)]];
  }

  function refusalWhy(reason, body) {
    var place = body.place || t("tempat presensi", "the place");
    if (reason === "outside") {
      return t("Presensi ditolak: Anda " + metres(body.distance_m) + " dari " + place +
               ", batasnya " + metres(body.radius_m) + ".",
               "Refused: you are " + metres(body.distance_m) + " from " + place +
               ", which accepts " + metres(body.radius_m) + ".");
    }
    if (reason === "accuracy") {
      return t("Presensi ditolak: akurasi lokasi ±" + metres(body.accuracy_m) +
               " lebih buruk dari batas " + metres(body.radius_m) + " di " + place +
               ". Pindah ke tempat terbuka atau tunggu sebentar, lalu coba lagi.",
               "Refused: your location (±" + metres(body.accuracy_m) + ") is less precise than the " +
               metres(body.radius_m) + " that " + place + " accepts. Move to open sky or wait, then try again.");
    }
    if (reason === "no_place") {
      return t("Presensi ditolak: tidak ada kantor atau tempat dinas luar untuk unit Anda. Hubungi admin OPD.",
               "Refused: no office or assignment place is set for your unit. Ask your OPD admin.");
    }
    if (reason === "too_old") {
      return t("Ditolak: dicatat lebih dari 72 jam yang lalu. Ajukan koreksi.",
               "Rejected: recorded more than 72 hours ago. Ask for a correction.");
    }
    if (reason === "in_future") {
      return t("Ditolak: jam perangkat lebih cepat dari jam server. Atur jam perangkat.",
               "Rejected: the device clock is ahead of the server's. Set it right.");
    }
    return body.detail || "";
  }

  function refusalWord(reason) {
    if (reason === "outside") { return t("Di luar area", "Outside the area"); }
    if (reason === "accuracy") { return t("Lokasi kurang akurat", "Location too imprecise"); }
    if (reason === "no_place") { return t("Tidak ada tempat presensi", "No place to record"); }
    return t("Ditolak", "Refused");
  }

  function refusalFacts(body) {
    var facts = [];
    if (body.place) { facts.push([t("Tempat terdekat", "Nearest place"), body.place]); }
    if (body.distance_m !== null && body.distance_m !== undefined) {
      facts.push([t("Jarak", "Distance"), metres(body.distance_m)]);
    }
    if (body.radius_m) { facts.push([t("Batas", "Radius"), metres(body.radius_m)]); }
    if (body.accuracy_m !== null && body.accuracy_m !== undefined) {
      facts.push([t("Akurasi", "Accuracy"), "±" + metres(body.accuracy_m)]);
    }
    return facts;
  }

  function showToday() {
    var list = el("hari-ini");
    var today = state.today;
    clear(list);
    var records = today && today.date === dayOf(Date.now()) ? today.records : [];
    if (!records.length) {
      add(list, "li", t("Belum ada catatan.", "No record yet."), "muted");
      return;
    }
    records.forEach(function (r) {
      var item = add(list, "li");
      item.dataset.key = r.key;
      add(item, "strong", kindText(r.kind) + " " + clock(r.at));
      add(item, "span", " · " + r.place + " · " + metres(r.distance_m) + " · ±" + metres(r.accuracy_m));
      if (r.flags && r.flags.length) { add(item, "span", " · " + flagsText(r.flags), "flagged"); }
    });
  }

  function showQueue() {
    var queue = load(QUEUE_KEY, []);
    var list = el("antrean");
    clear(list);
    el("antrean-kartu").classList.toggle("hidden", !queue.length);
    queue.forEach(function (e) {
      var item = add(list, "li");
      item.dataset.key = e.key;
      add(item, "strong", kindText(e.kind) + " " + clock(e.device_time));
      var other = state.claims && e.nip !== state.claims.nip;
      add(item, "span", " · " + (e.error ? t("belum diterima server: ", "not accepted by the server yet: ") + e.error
        : other ? t("milik pegawai lain (dikirim saat ia masuk)", "another employee's (sent when they sign in)")
        : t("menunggu koneksi", "waiting for a connection")));
    });
  }

  function showDone() {
    var done = load(DONE_KEY, []).filter(function (e) {
      return state.claims && e.nip === state.claims.nip;
    });
    var list = el("hasil");
    clear(list);
    el("hasil-kartu").classList.toggle("hidden", !done.length);
    done.forEach(function (e) {
      var item = add(list, "li", null, "outcome outcome-" + e.outcome);
      item.dataset.key = e.key;
      item.dataset.outcome = e.outcome;
      add(item, "strong", kindText(e.kind) + " " + clock(e.device_time));
      var text;
      if (e.outcome === "accepted") {
        text = t("diterima: di dalam area, ", "accepted: inside the area, ") + e.record.place +
          " (" + metres(e.record.distance_m) + ")";
        if (e.record.flags && e.record.flags.length) { text += "; " + t("tanda: ", "flags: ") + flagsText(e.record.flags); }
      } else if (e.outcome === "duplicate") {
        text = t("sudah tercatat sebelumnya (tidak dicatat dua kali)", "already recorded (not recorded twice)");
      } else {
        text = t("ditolak: ", "rejected: ") + refusalWord(e.reason).toLowerCase() + ". " +
          refusalWhy(e.reason, { place: e.place, distance_m: e.distance_m, radius_m: e.radius_m,
                                 accuracy_m: e.accuracy_m, detail: e.detail });
      }
      add(item, "span", " · " + text);
    });
  }

  function render() {
    showConnection(); showWho(); showPosition(); showButton(); showToday(); showQueue(); showDone();
  }

  // -- the server --------------------------------------------------------------------------

  function refreshToday() {
    return Pamong.api(API + "/me/today").then(function (reply) {
      if (reply.ok) {
        state.today = reply.body;
        save(TODAY_KEY, { nip: state.claims.nip, today: reply.body });
      } else if (reply.status !== 401) {
        el("siapa").textContent = Pamong.problemText(reply);
        button.disabled = true;
        state.blocked = true;
      }
      render();
    }, function () { render(); });
  }

  /* upload what waits, for the signed-in person only (a record is theirs: another person's
     token must not carry it) */
  function flush() {
    if (state.flushing || !state.claims || !state.claims.nip) { return Promise.resolve(); }
    var queue = load(QUEUE_KEY, []);
    var mine = queue.filter(function (e) { return e.nip === state.claims.nip; }).slice(0, BATCH);
    if (!mine.length) { return Promise.resolve(); }
    state.flushing = true;
    var records = mine.map(function (e) {
      return { key: e.key, kind: e.kind, latitude: e.latitude, longitude: e.longitude,
               accuracy_m: e.accuracy_m, device_id: e.device_id, device_time: e.device_time,
               mock_location: false };
    });
    return Pamong.api(API + "/records/offline", { method: "POST", body: { records: records } })
      .then(function (reply) {
        state.flushing = false;
        if (reply.ok) {
          settle(mine, reply.body.outcomes);
          return refreshToday().then(flush);
        }
        if (reply.status >= 400 && reply.status < 500 && reply.status !== 401 && reply.status !== 429) {
          // the server read the batch and refused it whole: say so, keep the records
          var why = Pamong.problemText(reply);
          var kept = load(QUEUE_KEY, []).map(function (e) {
            return mine.some(function (m) { return m.key === e.key; }) ? Object.assign(e, { error: why }) : e;
          });
          save(QUEUE_KEY, kept);
        }
        render();
      }, function () { state.flushing = false; render(); });
  }

  /* the server answered for these records: out of the queue, into the outcomes */
  function settle(sent, outcomes) {
    var byKey = {};
    outcomes.forEach(function (o) { byKey[o.key] = o; });
    var sentByKey = {};
    sent.forEach(function (e) { sentByKey[e.key] = e; });
    var done = load(DONE_KEY, []);
    var queue = load(QUEUE_KEY, []).filter(function (e) {
      var o = sentByKey[e.key] && byKey[e.key];
      if (!o) { return true; }
      var answered = {
        key: e.key, kind: e.kind, nip: e.nip, day: e.day, device_time: e.device_time,
        outcome: o.outcome, reason: o.reason || null, detail: o.detail || null,
        distance_m: o.distance_m, radius_m: o.radius_m, accuracy_m: e.accuracy_m,
        record: o.record || null };
      if (o.outcome === "rejected" && o.distance_m !== null && o.distance_m !== undefined) {
        answered.place = estimateName(e);  // the answer names no place: the nearest one
      }
      done = done.filter(function (d) { return d.key !== e.key; });
      done.unshift(answered);
      if (state.shownKey === e.key) { announce(answered); }
      return false;
    });
    save(DONE_KEY, done.slice(0, DONE_KEPT));
    save(QUEUE_KEY, queue);
  }

  /* the answer on screen was "kept on this device": now the server's word on it */
  function announce(e) {
    state.shownKey = null;
    var what = e.kind === "in" ? t("Presensi masuk", "Check-in") : t("Presensi pulang", "Check-out");
    if (e.outcome === "rejected") {
      answer("bad", refusalWord(e.reason), t(what + " pukul " + clock(e.device_time) + " terkirim. ",
             what + " at " + clock(e.device_time) + " uploaded. ") +
             refusalWhy(e.reason, { place: e.place, distance_m: e.distance_m, radius_m: e.radius_m,
                                    accuracy_m: e.accuracy_m, detail: e.detail }),
             refusalFacts({ place: e.place, distance_m: e.distance_m, radius_m: e.radius_m,
                            accuracy_m: e.accuracy_m }));
    } else {
      answer("ok", t("Di dalam area", "Inside the area"),
             t(what + " pukul " + clock(e.device_time) + " terkirim dan tercatat" +
               (e.outcome === "duplicate" ? " (sudah ada sebelumnya)." : "."),
               what + " at " + clock(e.device_time) + " uploaded and recorded" +
               (e.outcome === "duplicate" ? " (it was there already)." : ".")),
             e.record ? recordFacts(e.record) : []);
    }
  }

  function estimateName(e) {
    var places = state.today ? state.today.places : null;
    var guess = places ? estimate(e, places) : null;
    return guess && guess.place ? guess.place.name : null;
  }

  function queueRecord(entry) {
    var queue = load(QUEUE_KEY, []);
    if (!queue.some(function (e) { return e.key === entry.key; })) { queue.push(entry); }
    save(QUEUE_KEY, queue);
  }

  function press() {
    if (state.busy || !state.position || state.blocked) { return; }
    state.busy = true;
    button.disabled = true;
    var previous = el("jawaban");  // no stale verdict while this press is on its way
    previous.classList.add("hidden");
    delete previous.dataset.tone;
    var kind = button.dataset.kind === "out" ? "out" : "in";
    var now = Date.now();
    var pos = state.position;
    var entry = { key: Pamong.newKey(), kind: kind, latitude: pos.latitude, longitude: pos.longitude,
                  accuracy_m: pos.accuracy_m, device_id: deviceId(),
                  device_time: new Date(now).toISOString(), nip: state.claims.nip, day: dayOf(now) };
    var reading = { latitude: entry.latitude, longitude: entry.longitude, accuracy_m: entry.accuracy_m,
                    device_id: entry.device_id, device_time: entry.device_time, mock_location: false };
    button.textContent = t("Mengirim…", "Sending…");
    Pamong.api(API + "/check-" + kind, { method: "POST", body: reading,
                                         headers: { "Idempotency-Key": entry.key } })
      .then(function (reply) {
        state.busy = false;
        if (reply.ok) {
          var r = reply.body;
          answer("ok", t("Di dalam area", "Inside the area"),
                 t((kind === "in" ? "Presensi masuk" : "Presensi pulang") + " tercatat pukul " + clock(r.at) + " di " + r.place + ".",
                   (kind === "in" ? "Check-in" : "Check-out") + " recorded at " + clock(r.at) + " at " + r.place + "."),
                 recordFacts(r));
          return refreshToday().then(flush);
        }
        if (reply.status === 502 || reply.status === 503 || reply.status === 504) {
          keep(entry);
          return;
        }
        if (reply.status === 401) { return; }
        var body = reply.body || {};
        if (reply.status === 422 && body.reason) {
          answer("bad", refusalWord(body.reason), refusalWhy(body.reason, body), refusalFacts(body));
        } else {
          answer("bad", t("Gagal", "Failed"), Pamong.problemText(reply));
        }
        render();
      }, function () {
        state.busy = false;
        keep(entry);
      });
  }

  /* no connection: the record waits on the device, with its key */
  function keep(entry) {
    queueRecord(entry);
    state.shownKey = entry.key;
    answer("warn", t("Tersimpan di perangkat", "Kept on this device"),
           t("Tidak ada koneksi. " + (entry.kind === "in" ? "Presensi masuk" : "Presensi pulang") +
             " pukul " + clock(entry.device_time) + " disimpan dan dikirim otomatis saat koneksi kembali.",
             "No connection. The " + (entry.kind === "in" ? "check-in" : "check-out") + " at " +
             clock(entry.device_time) + " is kept and sent automatically when the connection returns."),
           [[t("Akurasi", "Accuracy"), "±" + metres(entry.accuracy_m)]]);
    render();
  }

  // -- position ----------------------------------------------------------------------------

  function watchPosition() {
    if (!("geolocation" in navigator)) {
      el("lokasi-status").textContent = t("Perangkat ini tidak memberi lokasi.", "This device gives no location.");
      return;
    }
    navigator.geolocation.watchPosition(function (p) {
      state.position = { latitude: p.coords.latitude, longitude: p.coords.longitude,
                         accuracy_m: p.coords.accuracy, at: p.timestamp };
      render();
    }, function (error) {
      var status = el("lokasi-status");
      if (error.code === 1) {
        status.textContent = t("Izin lokasi ditolak. Izinkan lokasi untuk situs ini di pengaturan peramban, lalu muat ulang.",
                               "Location permission was denied. Allow location for this site in the browser settings, then reload.");
      } else if (error.code === 3) {
        status.textContent = t("Lokasi belum didapat; masih mencoba…", "No location yet; still trying…");
      } else {
        status.textContent = t("Lokasi tidak tersedia. Nyalakan GPS.", "Location unavailable. Turn on GPS.");
      }
    }, { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 });
  }

  // -- start -------------------------------------------------------------------------------

  state.claims = signedIn();
  if (!state.claims) { return; }
  if (!state.claims.nip) {
    el("siapa").textContent = t("Token Anda tidak memuat NIP: hanya pegawai yang melakukan presensi.",
                                "Your token carries no NIP: only an employee checks in.");
    state.blocked = true;
  }
  var cached = load(TODAY_KEY, null);
  if (cached && cached.nip === state.claims.nip) { state.today = cached.today; }
  button.addEventListener("click", press);
  window.addEventListener("online", function () { render(); flush(); });
  window.addEventListener("offline", render);
  setInterval(function () { if (load(QUEUE_KEY, []).length) { flush(); } }, RETRY_MS);
  render();
  if (!state.blocked) {
    watchPosition();
    refreshToday().then(flush);
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(root.dataset.sw, { scope: root.dataset.scope })
      .catch(function () { /* the page works without it, only not offline */ });
  }
})();

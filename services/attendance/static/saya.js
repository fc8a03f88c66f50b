/* /saya: my day (GET /me/today), my month (GET /reports/monthly/<nip>), my leave balance
   and requests (GET /leave/<nip>/balance, GET /leave/<nip>), asking for leave (POST /leave,
   one Idempotency-Key per request: a retry after a lost answer is not a second request) and
   cancelling a request (POST /leave/<nip>/<id>/cancel). */
(function () {
  "use strict";
  var root = document.getElementById("saya");
  if (!root) { return; }
  var API = root.dataset.api;
  var t = Pamong.t;
  var el = function (id) { return document.getElementById(id); };
  var state = { claims: null, today: null, pendingKey: null, pendingBody: null };

  var clear = Pamong.clear;
  var add = Pamong.add;

  function fact(list, term, value) { add(list, "dt", term); add(list, "dd", value); }

  function stat(parent, label, value) {
    var box = add(parent, "div");
    add(box, "span", label, "label");
    add(box, "strong", String(value), "big-number");
  }

  function zone() { return (state.today && state.today.timezone) || undefined; }

  function clock(value) {
    try {
      return new Date(value).toLocaleTimeString(Pamong.lang() === "en" ? "en-GB" : "id-ID",
        { hour: "2-digit", minute: "2-digit", timeZone: zone() });
    } catch (e) { return String(value); }
  }

  function offline() { return t("Tidak ada koneksi. Coba lagi nanti.", "No connection. Try again later."); }

  var STATUS = {
    checked_in: ["Hadir", "Present"], not_yet_in: ["Belum hadir", "Not in yet"],
    leave: ["Cuti", "On leave"], assignment: ["Dinas luar", "On assignment"],
    holiday: ["Libur", "Holiday"], day_off: ["Hari libur kerja", "Day off"]
  };
  var LEAVE_STATUS = {
    requested: ["Menunggu keputusan", "Awaiting a decision"], approved: ["Disetujui", "Approved"],
    rejected: ["Ditolak", "Rejected"], cancelled: ["Dibatalkan", "Cancelled"]
  };
  var FLAGS = {
    mock_location: ["lokasi palsu (mock)", "mock location"],
    clock_drift: ["jam perangkat tidak sesuai", "device clock off"],
    impossible_travel: ["perpindahan tidak wajar", "impossible travel"],
    shared_device: ["perangkat dipakai pegawai lain", "device shared with another employee"],
    offline: ["dikirim luring", "uploaded offline"]
  };

  function word(table, key) { return table[key] ? t(table[key][0], table[key][1]) : key; }

  // -- today -------------------------------------------------------------------------------

  function showToday(today) {
    el("siapa").textContent = (today.name || today.nip) + " · " + (today.unit_name || today.unit) +
      " · " + today.date;
    var p = today.presence;
    var status = word(STATUS, p.status);
    if (p.status === "checked_in") {
      status += p.late_minutes ? t(", terlambat " + p.late_minutes + " menit", ", " + p.late_minutes + " min late")
        : t(", tepat waktu", ", on time");
      if (p.code) { status += " (" + p.code + ")"; }
    } else if (p.status === "leave" && p.leave_type) {
      status += " (" + p.leave_type + ")";
    }
    el("hari-status").textContent = status;
    var facts = el("hari-rincian");
    clear(facts);
    fact(facts, t("Jadwal", "Hours"), today.hours ? today.hours.start + "–" + today.hours.end +
      (today.hours.shift ? " (" + t("sif ", "shift ") + today.hours.shift + ")" : "")
      : t("tidak ada jam kerja", "no working hours"));
    fact(facts, t("Masuk", "In"), p.check_in || "–");
    fact(facts, t("Pulang", "Out"), p.check_out || "–");
    if (p.flags && p.flags.length) {
      fact(facts, t("Tanda untuk atasan", "Flags for the supervisor"),
           p.flags.map(function (f) { return word(FLAGS, f); }).join(", "));
    }
    if (today.refused) {
      fact(facts, t("Percobaan ditolak", "Refused attempts"), String(today.refused));
    }
    var list = el("hari-catatan");
    clear(list);
    today.records.forEach(function (r) {
      var item = add(list, "li");
      add(item, "strong", (r.kind === "in" ? t("Masuk", "In") : t("Pulang", "Out")) + " " + clock(r.at));
      add(item, "span", " · " + r.place + " · " + Math.round(r.distance_m) + " m" +
        (r.offline ? " · " + word(FLAGS, "offline") : ""));
    });
  }

  // -- month -------------------------------------------------------------------------------

  function bracketCount(brackets, prefix) {
    return Object.keys(brackets).filter(function (code) { return code.indexOf(prefix) === 0; })
      .reduce(function (sum, code) { return sum + brackets[code].count; }, 0);
  }

  function loadMonth(month) {
    var status = el("bulan-status");
    status.textContent = t("Memuat…", "Loading…");
    return Pamong.api(API + "/reports/monthly/" + encodeURIComponent(state.claims.nip) +
                      "?month=" + encodeURIComponent(month)).then(function (reply) {
      var grid = el("bulan-isi");
      clear(grid);
      if (!reply.ok) {
        status.textContent = Pamong.problemText(reply);
        el("bulan-tabel-wrap").classList.add("hidden");
        return;
      }
      var m = reply.body;
      status.textContent = t("Rekap " + m.month + ": " + m.closed_days + " hari sudah ditutup, " +
                             m.open_days.length + " belum.",
                             "Recap of " + m.month + ": " + m.closed_days + " days closed, " +
                             m.open_days.length + " not yet.");
      stat(grid, t("Hadir", "Present"), m.days_present);
      stat(grid, t("Terlambat (kali)", "Late (times)"), bracketCount(m.brackets, "TL"));
      stat(grid, t("Pulang cepat (kali)", "Left early (times)"), bracketCount(m.brackets, "PSW"));
      stat(grid, t("Tanpa keterangan", "Unexcused absence"), m.absences);
      stat(grid, t("Cuti (hari)", "Leave (days)"), m.leave_days);
      stat(grid, t("Dinas luar (hari)", "Assignment (days)"), m.assignment_days);
      stat(grid, t("Libur", "Days off"), m.holidays + m.days_off);
      stat(grid, t("Potongan TPP", "TPP deduction"), m.deduction.replace(".", t(",", ".")) + " %");
      var body = el("bulan-tabel").tBodies[0];
      clear(body);
      Object.keys(m.brackets).sort(function (a, b) {  // TL1..TL4, then PSW1..PSW4
        var rank = function (code) { return (code.indexOf("TL") === 0 ? "0" : "1") + code; };
        return rank(a) < rank(b) ? -1 : 1;
      }).forEach(function (code) {
        var row = add(body, "tr");
        add(row, "th", code).scope = "row";
        add(row, "td", String(m.brackets[code].count), "num");
        add(row, "td", String(m.brackets[code].minutes), "num");
      });
      el("bulan-tabel-wrap").classList.toggle("hidden", !body.rows.length);
    }, function () { status.textContent = offline(); });
  }

  // -- leave -------------------------------------------------------------------------------

  function say(text) {
    var box = el("cuti-pesan");
    box.textContent = text;
    box.classList.toggle("hidden", !text);
  }

  function loadLeave() {
    var nip = encodeURIComponent(state.claims.nip);
    var balance = Pamong.api(API + "/leave/" + nip + "/balance").then(function (reply) {
      var grid = el("cuti-saldo");
      clear(grid);
      if (!reply.ok) { say(Pamong.problemText(reply)); return; }
      var b = reply.body;
      stat(grid, t("Sisa cuti tahunan " + b.year, "Annual leave left " + b.year), b.remaining);
      stat(grid, t("Hak tahun ini", "This year's entitlement"), b.entitled);
      stat(grid, t("Sisa tahun lalu", "Carried over"), b.carried);
      stat(grid, t("Terpakai", "Taken"), b.taken);
      if (b.requested) { stat(grid, t("Menunggu keputusan", "Awaiting a decision"), b.requested); }
    });
    var list = Pamong.api(API + "/leave/" + nip).then(function (reply) {
      var items = el("cuti-daftar");
      clear(items);
      if (!reply.ok) { say(Pamong.problemText(reply)); return; }
      if (!reply.body.items.length) {
        add(items, "li", t("Belum ada permintaan cuti.", "No leave request yet."), "muted");
      }
      reply.body.items.forEach(function (leave) { showLeave(items, leave); });
    });
    return Promise.all([balance, list]).catch(function () { say(offline()); });
  }

  function showLeave(items, leave) {
    var item = add(items, "li");
    item.dataset.id = leave.id;
    add(item, "strong", leave.type_name + " (" + leave.type + ")");
    add(item, "span", " · " + leave.start + (leave.end !== leave.start ? " – " + leave.end : "") +
      " · " + leave.working_days + t(" hari kerja", " working days") + " · ");
    add(item, "span", word(LEAVE_STATUS, leave.status), "badge");
    if (leave.note) { add(item, "p", t("Catatan: ", "Note: ") + leave.note, "hint"); }
    var today = state.today ? state.today.date : "";
    if (leave.status === "requested" || (leave.status === "approved" && leave.start > today)) {
      var actions = add(item, "div", null, "actions");
      var cancel = add(actions, "button", t("Batalkan", "Cancel"), "btn btn-small");
      cancel.type = "button";
      cancel.addEventListener("click", function () {
        cancel.disabled = true;
        Pamong.api(API + "/leave/" + encodeURIComponent(state.claims.nip) + "/" +
                   encodeURIComponent(leave.id) + "/cancel", { method: "POST", body: {} })
          .then(function (reply) {
            say(reply.ok ? t("Permintaan cuti dibatalkan.", "The leave request is cancelled.")
                         : Pamong.problemText(reply));
            return loadLeave();
          }, function () { cancel.disabled = false; say(offline()); });
      });
    }
  }

  function submitLeave(event) {
    event.preventDefault();
    var form = event.target;
    var status = el("cuti-form-status");
    var body = { type: form.type.value, start: form.start.value, end: form.end.value,
                 reason: form.reason.value.trim() };
    if (!body.start || !body.end || body.reason.length < 3) {
      status.textContent = t("Isi tanggal mulai, sampai dengan, dan alasan (minimal 3 huruf).",
                             "Fill in the dates and a reason (at least 3 characters).");
      return;
    }
    // the same request again (after a lost answer) keeps its key: it is not asked twice
    var text = JSON.stringify(body);
    if (state.pendingBody !== text) { state.pendingKey = Pamong.newKey(); state.pendingBody = text; }
    var submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    status.textContent = t("Mengirim…", "Sending…");
    Pamong.api(API + "/leave", { method: "POST", body: body,
                                 headers: { "Idempotency-Key": state.pendingKey } })
      .then(function (reply) {
        submit.disabled = false;
        if (reply.ok) {
          state.pendingKey = state.pendingBody = null;
          form.reset();
          status.textContent = t("Permintaan cuti terkirim (" + reply.body.working_days +
                                 " hari kerja); menunggu keputusan atasan.",
                                 "Leave requested (" + reply.body.working_days +
                                 " working days); waiting for your supervisor's decision.");
          return loadLeave();
        }
        status.textContent = Pamong.problemText(reply);
      }, function () { submit.disabled = false; status.textContent = offline(); });
  }

  // -- start -------------------------------------------------------------------------------

  state.claims = Pamong.requireSignIn();
  if (!state.claims) { return; }
  if (!state.claims.nip) {
    el("siapa").textContent = t("Token Anda tidak memuat NIP: halaman ini untuk pegawai.",
                                "Your token carries no NIP: this page is for employees.");
    return;
  }
  el("bulan-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (el("bulan").value) { loadMonth(el("bulan").value); }
  });
  el("cuti-form").addEventListener("submit", submitLeave);
  Pamong.api(API + "/me/today").then(function (reply) {
    if (!reply.ok) { el("siapa").textContent = Pamong.problemText(reply); return; }
    state.today = reply.body;
    showToday(reply.body);
    el("bulan").value = reply.body.date.slice(0, 7);
    return Promise.all([loadMonth(el("bulan").value), loadLeave()]);
  }, function () { el("siapa").textContent = offline(); });
})();

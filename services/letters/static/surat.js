/* /surat: the letters a signed-in employee has to act on, from the letters API with their
   bearer token (Pamong.api): drafts awaiting my paraf, letters awaiting my signature, letters
   returned to me, and open dispositions for me, each with the steps the API allows now.
   Every refusal (problem+json) is shown in plain words; the lists are read again after each
   step. PDFs and files are fetched with the token and opened as blob URLs (a plain link
   cannot carry the token). No innerHTML: every text from the API goes in as textContent. */
(function () {
  "use strict";
  var API = "/api/letters/v1";
  var t = Pamong.t;
  var claims = Pamong.requireSignIn();
  if (!claims) { return; }

  var statusBox = byId("surat-status");
  var LIMIT = 100;
  var URGENCY = { sangat_segera: ["Sangat segera", "Very urgent"], segera: ["Segera", "Urgent"],
                  biasa: ["Biasa", "Normal"] };
  var SECURITY = { SR: ["Sangat Rahasia", "Top secret"], R: ["Rahasia", "Secret"],
                   T: ["Terbatas", "Restricted"], B: ["Biasa", "Ordinary"] };
  var loading = null;
  var again = false;

  function byId(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function pair(texts) { return texts ? t(texts[0], texts[1]) : ""; }

  function say(text) {
    statusBox.textContent = text;
    statusBox.classList.remove("hidden");
  }

  function when(iso) {
    if (!iso) { return ""; }
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) { return iso; }
    return moment.toLocaleString(Pamong.lang() === "en" ? "en-GB" : "id-ID",
                                 { dateStyle: "medium", timeStyle: "short" });
  }

  function day(iso) {
    if (!iso) { return ""; }
    var moment = new Date(iso + "T00:00:00");
    return isNaN(moment.getTime()) ? iso : moment.toLocaleDateString(
      Pamong.lang() === "en" ? "en-GB" : "id-ID", { dateStyle: "medium" });
  }

  function kindName(code) {
    var text = String(code || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /* a refusal of the API in plain words: what kind of refusal, then the API's own detail */
  function refusal(answer) {
    var lead = {
      400: t("Permintaan tidak dapat dibaca.", "The request could not be read."),
      401: t("Sesi masuk Anda berakhir; silakan masuk lagi.", "Your sign-in ended; please sign in again."),
      403: t("Anda tidak berhak melakukan ini.", "You may not do this."),
      404: t("Surat atau disposisi ini tidak ditemukan (mungkin sudah ditarik atau dibatalkan).",
             "This letter or disposition was not found (it may have been withdrawn or cancelled)."),
      409: t("Tidak dapat dilakukan sekarang: keadaannya sudah berubah.",
             "This cannot be done now: things have changed."),
      413: t("Berkas terlalu besar.", "The file is too large."),
      422: t("Isian belum benar.", "Something entered is not right."),
      429: t("Terlalu banyak permintaan; tunggu sebentar.", "Too many requests; wait a moment.")
    }[answer.status] || t("Server menolak permintaan ini.", "The server refused this request.");
    if (answer.status >= 500) {
      lead = t("Terjadi kesalahan di server; coba lagi nanti.", "Something went wrong on the server; try again later.");
    }
    var detail = answer.body ? Pamong.problemText(answer) : "";
    return detail ? lead + " (" + detail + ")" : lead;
  }

  function offline() {
    say(t("Tidak ada koneksi. Periksa jaringan lalu coba lagi.", "No connection. Check the network and try again."));
  }

  /* -- files and PDFs: fetched with the token, opened as a blob URL ------------------------ */

  function openBlob(path, label, holder, tries) {
    if (!Pamong.requireSignIn()) { return; }
    tries = tries || 0;
    var note = holder.querySelector(".todo-answer") || holder.appendChild(el("p", "todo-answer"));
    note.classList.remove("bad");
    note.textContent = t("Mengambil berkas…", "Fetching the file…");
    Pamong.api(path, { raw: true, headers: { "Accept": "application/pdf, */*" } })
      .then(function (answer) {
        var response = answer.response;
        if (response.ok) {
          return response.blob().then(function (blob) {
            var url = URL.createObjectURL(blob);
            var link = holder.querySelector("a.blob-link") || el("a", "btn blob-link");
            link.href = url;
            link.target = "_blank";
            link.rel = "noopener";
            link.textContent = t("Buka ", "Open ") + label;
            // a phone that shows no PDF in a tab keeps a copy instead
            var save = holder.querySelector("a.blob-save") || el("a", "btn blob-save");
            save.href = url;
            save.download = fileName(label, blob.type);
            save.textContent = t("Unduh", "Download");
            if (!link.parentNode) {
              note.parentNode.insertBefore(link, note);
              note.parentNode.insertBefore(save, note);
            }
            note.textContent = t("Berkas siap.", "The file is ready.");
            if (tries === 0) { window.open(url, "_blank"); } // still the click's gesture
          });
        }
        var type = response.headers.get("Content-Type") || "";
        var read = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
        return read.then(function (body) {
          if (response.status === 401) { return; }  // Pamong.api sends to sign in
          if (response.status === 404 && body && body.sealing && tries < 20) {
            note.textContent = t("Surat sedang disegel; PDF siap dalam beberapa detik…",
                                 "The letter is being sealed; its PDF is ready in a few seconds…");
            var wait = Number(response.headers.get("Retry-After")) || 2;
            setTimeout(function () { openBlob(path, label, holder, tries + 1); }, wait * 1000);
            return;
          }
          note.classList.add("bad");
          note.textContent = refusal({ status: response.status, body: body });
        });
      }, function () {
        note.classList.add("bad");
        note.textContent = t("Tidak ada koneksi.", "No connection.");
      });
  }

  function fileName(label, type) {
    var name = String(label || "berkas").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "");
    if (type === "application/pdf" && !/\.pdf$/i.test(name)) { name += ".pdf"; }
    return name || "berkas";
  }

  function pdfButton(letterId, number, holder) {
    var button = el("button", "btn", t("PDF surat", "The letter's PDF"));
    button.type = "button";
    button.addEventListener("click", function () {
      openBlob(API + "/letters/" + encodeURIComponent(letterId) + "/document",
               "PDF " + (number || ""), holder);
    });
    return button;
  }

  /* -- a letter shown in place (GET /letters/<id>) ------------------------------------------ */

  function showLetter(letterId, detail, holder) {
    if (!detail.classList.contains("hidden")) { detail.classList.add("hidden"); return; }
    detail.textContent = t("Memuat surat…", "Loading the letter…");
    detail.classList.remove("hidden");
    Pamong.api(API + "/letters/" + encodeURIComponent(letterId)).then(function (answer) {
      detail.textContent = "";
      if (!answer.ok) { detail.appendChild(el("p", "todo-answer bad", refusal(answer))); return; }
      var letter = answer.body;
      var facts = el("dl", "facts");
      function fact(label, value) {
        if (!value) { return; }
        facts.appendChild(el("dt", null, label));
        facts.appendChild(el("dd", null, value));
      }
      fact(t("Nomor", "Number"), letter.number);
      fact(t("Jenis", "Kind"), kindName(letter.kind));
      fact(t("Klasifikasi", "Classification"), letter.classification);
      fact(t("Derajat keamanan", "Security"), pair(SECURITY[letter.security]));
      fact(t("Kepada", "To"), (letter.addressees || []).map(function (p) { return p.name; }).join("; "));
      fact(t("Tembusan", "Copies"), (letter.copies || []).map(function (p) { return p.name; }).join("; "));
      fact(t("Pemaraf", "Approvers"), (letter.verifiers || []).map(function (v) {
        return v.name + " (" + (v.status === "approved" ? t("sudah paraf", "approved")
                                : t("belum", "pending")) + ")";
      }).join("; "));
      fact(t("Penanda tangan", "Signer"), letter.signer ? letter.signer.name + (letter.signer.title ? ", " + letter.signer.title : "") : "");
      detail.appendChild(facts);
      detail.appendChild(el("h3", null, letter.subject));
      detail.appendChild(el("p", "letter-body", letter.body));
      var steps = el("ol", "timeline");
      (letter.timeline || []).forEach(function (entry) {
        var text = when(entry.at) + " · " + (entry.name || entry.nip || "") + " · " + entry.step +
          (entry.note ? ": " + entry.note : "");
        steps.appendChild(el("li", null, text));
      });
      detail.appendChild(el("h3", null, t("Riwayat", "History")));
      detail.appendChild(steps);
      if (letter.document) { detail.appendChild(pdfButton(letter.id, letter.number, holder)); }
    }, function () { detail.textContent = t("Tidak ada koneksi.", "No connection."); });
  }

  /* -- one item of a list ------------------------------------------------------------------- */

  function itemShell(title, meta) {
    var item = el("li", "todo-item");
    item.appendChild(el("p", "todo-title", title));
    item.appendChild(el("p", "todo-meta", meta.filter(Boolean).join(" · ")));
    return item;
  }

  function button(text, className, onClick) {
    var node = el("button", "btn" + (className ? " " + className : ""), text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  var noteCount = 0;

  /* a note field that appears under the item, then the step is sent with it */
  function noteStep(item, actions, label, sendText, required, send) {
    var box = item.querySelector(".todo-note");
    if (box) { box.remove(); }
    box = el("div", "todo-note form-row");
    var id = "catatan-" + (++noteCount);
    var fieldLabel = el("label", null, label);
    fieldLabel.htmlFor = id;
    var field = el("textarea");
    field.id = id;
    field.name = "note";
    field.maxLength = 2000;
    if (required) { field.required = true; }
    var row = el("div", "todo-actions");
    row.appendChild(button(sendText, "btn-primary", function () {
      var note = field.value.trim();
      if (required && note.length < 2) {
        answerOf(item, t("Tulis catatannya dulu.", "Write the note first."), true);
        field.focus();
        return;
      }
      send(note);
    }));
    row.appendChild(button(t("Batal", "Cancel"), null, function () { box.remove(); }));
    box.appendChild(fieldLabel);
    box.appendChild(field);
    box.appendChild(row);
    actions.parentNode.insertBefore(box, actions.nextSibling);
    field.focus();
  }

  function answerOf(item, text, bad) {
    var note = item.querySelector(":scope > .todo-answer");
    if (!note) {
      note = el("p", "todo-answer");
      note.setAttribute("role", "status");
      item.appendChild(note);
    }
    note.classList.toggle("bad", !!bad);
    note.textContent = text;
  }

  /* send one step; on success say so and read the lists again */
  function act(item, path, body, done) {
    var buttons = item.querySelectorAll("button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    answerOf(item, t("Mengirim…", "Sending…"), false);
    Pamong.api(API + path, { method: "POST", body: body || {} }).then(function (answer) {
      if (answer.ok) {
        say(done(answer.body));
        refresh();
        return;
      }
      var text = refusal(answer);
      answerOf(item, text, true);
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
      if (answer.status === 404 || answer.status === 409) { say(text); refresh(); }
    }, function () {
      answerOf(item, t("Tidak ada koneksi; langkah ini belum terkirim.", "No connection; this step was not sent."), true);
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
    });
  }

  function letterItem(row) {
    var subject = row.subject || t("(surat rahasia)", "(confidential letter)");
    var meta = [kindName(row.kind), pair(URGENCY[row.urgency]),
                row.security && row.security !== "B" ? pair(SECURITY[row.security]) : null,
                t("konsep oleh ", "drafted by ") + ((row.drafter && row.drafter.name) || ""),
                t("sejak ", "since ") + when(row.since),
                row.acting ? (row.acting === "plt" ? "Plt." : "Plh.") : null];
    var item = itemShell(subject, meta);
    item.dataset.letter = row.id;
    if (row.role === "drafter" && row.note) {
      item.appendChild(el("p", "notice", t("Catatan pengembalian: ", "Returned with the note: ") + row.note));
    }
    var detail = el("div", "letter-detail hidden");
    var actions = el("div", "todo-actions");
    var path = "/letters/" + encodeURIComponent(row.id);
    actions.appendChild(button(t("Lihat surat", "View the letter"), null, function () {
      showLetter(row.id, detail, item);
    }));
    if (row.role === "verifier") {
      actions.appendChild(button(t("Setujui (paraf)", "Approve (paraf)"), "btn-primary", function () {
        act(item, path + "/approve", { version: row.version }, function () {
          return t("Paraf diberikan: ", "Approved: ") + subject;
        });
      }));
    }
    if (row.role === "signer") {
      actions.appendChild(button(t("Tandatangani", "Sign"), "btn-primary", function () {
        act(item, path + "/sign", { version: row.version }, function (letter) {
          justSigned(letter);
          return t("Surat ditandatangani dengan nomor ", "Signed as number ") + letter.number;
        });
      }));
    }
    if (row.role === "verifier" || row.role === "signer") {
      actions.appendChild(button(t("Kembalikan", "Return"), "btn-danger", function () {
        noteStep(item, actions, t("Apa yang perlu diperbaiki?", "What needs fixing?"),
                 t("Kembalikan ke penyusun", "Return to the drafter"), true, function (note) {
          act(item, path + "/return", { version: row.version, note: note }, function () {
            return t("Dikembalikan ke penyusun: ", "Returned to the drafter: ") + subject;
          });
        });
      }));
    }
    if (row.role === "drafter") {
      actions.appendChild(button(t("Ajukan lagi", "Submit again"), "btn-primary", function () {
        act(item, path + "/submit", { version: row.version }, function () {
          return t("Diajukan lagi: ", "Submitted again: ") + subject;
        });
      }));
      actions.appendChild(button(t("Tarik surat", "Withdraw"), "btn-danger", function () {
        if (!window.confirm(t("Tarik surat ini? Surat yang ditarik tidak dapat diajukan lagi.",
                              "Withdraw this letter? A withdrawn letter cannot be submitted again."))) { return; }
        act(item, path + "/withdraw", { version: row.version }, function () {
          return t("Surat ditarik: ", "Withdrawn: ") + subject;
        });
      }));
    }
    item.appendChild(actions);
    item.appendChild(detail);
    return item;
  }

  function dispositionItem(row) {
    var subject = row.subject || t("(surat yang tidak dapat Anda buka)", "(a letter you cannot open)");
    var meta = [t("dari ", "from ") + ((row.by && row.by.name) || ""),
                pair(URGENCY[row.urgency]),
                row.due ? t("batas ", "due ") + day(row.due) : null,
                row.overdue ? t("TERLAMBAT", "OVERDUE") : null,
                row.state === "unread" ? t("belum dibaca", "unread") : t("sudah dibaca", "read")];
    var item = itemShell(subject, meta);
    item.dataset.disposition = row.id;
    item.appendChild(el("p", null, t("Instruksi: ", "Instruction: ") + row.instruction));
    var detail = el("div", "letter-detail hidden");
    var actions = el("div", "todo-actions");
    var path = "/dispositions/" + encodeURIComponent(row.id);
    actions.appendChild(button(t("Buka surat", "Open the letter"), null, function () {
      showReceipt(row.receipt, detail, item);
    }));
    if (row.state === "unread") {
      actions.appendChild(button(t("Tandai sudah dibaca", "Mark read"), null, function () {
        act(item, path + "/read", {}, function () {
          return t("Disposisi ditandai sudah dibaca.", "The disposition is marked read.");
        });
      }));
    }
    actions.appendChild(button(t("Selesaikan", "Complete"), "btn-primary", function () {
      noteStep(item, actions, t("Tindak lanjut yang sudah dilakukan", "What was done (follow-up)"),
               t("Kirim tindak lanjut", "Send the follow-up"), true, function (note) {
        act(item, path + "/complete", { note: note }, function () {
          return t("Disposisi selesai: ", "Disposition completed: ") + subject;
        });
      });
    }));
    item.appendChild(actions);
    item.appendChild(detail);
    return item;
  }

  /* a received letter (GET /receipts/<letter>:<unit>): its summary, PDF and files */
  function showReceipt(receiptId, detail, holder) {
    if (!detail.classList.contains("hidden")) { detail.classList.add("hidden"); return; }
    detail.textContent = t("Memuat surat…", "Loading the letter…");
    detail.classList.remove("hidden");
    Pamong.api(API + "/receipts/" + encodeURIComponent(receiptId)).then(function (answer) {
      detail.textContent = "";
      if (!answer.ok) { detail.appendChild(el("p", "todo-answer bad", refusal(answer))); return; }
      var receipt = answer.body;
      var letter = receipt.letter;
      var facts = el("dl", "facts");
      [[t("Nomor", "Number"), receipt.number], [t("Pengirim", "Sender"), receipt.sender],
       [t("Perihal", "Subject"), letter.subject], [t("Jenis", "Kind"), kindName(letter.kind)],
       [t("Diterima", "Received"), when(receipt.received_at)]].forEach(function (fact) {
        if (!fact[1]) { return; }
        facts.appendChild(el("dt", null, fact[0]));
        facts.appendChild(el("dd", null, fact[1]));
      });
      detail.appendChild(facts);
      var files = el("div", "todo-actions");
      if (letter.direction !== "incoming" && letter.signed_at) {
        files.appendChild(pdfButton(letter.id, letter.number, holder));
      }
      (letter.attachments || []).forEach(function (file) {
        files.appendChild(button(file.name, null, function () {
          openBlob(API + "/files/" + encodeURIComponent(file.id), file.name, holder);
        }));
      });
      if (files.childNodes.length) { detail.appendChild(files); }
    }, function () { detail.textContent = t("Tidak ada koneksi.", "No connection."); });
  }

  /* -- the lists ----------------------------------------------------------------------------- */

  function fill(name, rows, more, make) {
    var list = byId("daftar-" + name);
    list.textContent = "";
    rows.forEach(function (row) { list.appendChild(make(row)); });
    byId("jumlah-" + name).textContent = String(rows.length) + (more ? "+" : "");
    byId("kosong-" + name).classList.toggle("hidden", rows.length > 0);
    byId("lebih-" + name).classList.toggle("hidden", !more);
  }

  function justSigned(letter) {
    var section = byId("bagian-selesai");
    section.classList.remove("hidden");
    var item = itemShell(letter.subject, [t("Nomor ", "Number ") + letter.number,
                                          when(letter.signed_at)]);
    var actions = el("div", "todo-actions");
    actions.appendChild(pdfButton(letter.id, letter.number, item));
    item.appendChild(actions);
    var list = byId("daftar-selesai");
    list.insertBefore(item, list.firstChild);
    byId("jumlah-selesai").textContent = String(list.childNodes.length);
  }

  function refresh() {
    if (loading) { again = true; return loading; } // read once more when this one ends
    document.body.setAttribute("aria-busy", "true");
    loading = Promise.all([
      Pamong.api(API + "/awaiting?limit=" + LIMIT),
      Pamong.api(API + "/dispositions/mine?open=true&limit=" + LIMIT)
    ]).then(function (answers) {
      var awaiting = answers[0];
      var dispositions = answers[1];
      if (awaiting.ok) {
        var rows = awaiting.body.items;
        var more = !!awaiting.body.next_cursor;
        ["signer", "verifier", "drafter"].forEach(function (role) {
          fill(role, rows.filter(function (r) { return r.role === role; }), more, letterItem);
        });
      } else if (awaiting.status !== 401) {
        say(refusal(awaiting));
      }
      if (dispositions.ok) {
        fill("disposisi", dispositions.body.items, !!dispositions.body.next_cursor, dispositionItem);
      } else if (dispositions.status !== 401 && awaiting.ok) {
        say(refusal(dispositions));
      }
    }, offline).then(function () {
      loading = null;
      document.body.setAttribute("aria-busy", "false");
      document.body.dataset.loaded = String(Date.now());
      if (again) { again = false; refresh(); }
    });
    return loading;
  }

  byId("surat-siapa").textContent = t("Masuk sebagai ", "Signed in as ") +
    (claims.name || claims.sub) + (claims.nip ? " · NIP " + claims.nip : "");
  if (!claims.nip) {
    say(t("Akun Anda tidak memuat NIP: daftar surat hanya untuk pegawai.",
          "Your account carries no NIP: letter lists are for employees."));
    return;
  }
  byId("muat-ulang").addEventListener("click", function () { statusBox.classList.add("hidden"); refresh(); });
  refresh();
})();

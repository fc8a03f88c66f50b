/* /dasbor: keep the figures current from /dasbor/stream (Server-Sent Events) and draw the
   charts with uPlot. The page is complete without this script: the server rendered the same
   figures; each event carries them again as HTML (`html`, rendered by the same template)
   and as numbers (`figures`) for the charts. */
(function () {
  "use strict";
  var root = document.getElementById("dasbor");
  if (!root || !window.EventSource) { return; }
  var content = document.getElementById("dasbor-isi");
  var status = document.getElementById("dasbor-status");
  var chartsBox = document.getElementById("grafik");
  var lang = document.documentElement.lang === "en" ? "en" : "id";
  var version = root.getAttribute("data-version");
  var latest = null;
  var charts = [];
  var retryTimer = null;
  var BLUE = "#0b5cab";
  var COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

  function t(idText, enText) { return lang === "en" ? enText : idText; }

  function clock() {
    var now = new Date();
    return [now.getHours(), now.getMinutes(), now.getSeconds()].map(function (n) {
      return (n < 10 ? "0" : "") + n;
    }).join(lang === "en" ? ":" : ".");
  }

  function clearCharts() {
    charts.forEach(function (chart) { chart.destroy(); });
    charts = [];
  }

  function bars(el, labels, values, rotate) {
    el.textContent = "";
    if (!values.length) {
      el.textContent = t("Belum ada data.", "No data yet.");
      return;
    }
    var xs = labels.map(function (_, i) { return i; });
    var top = Math.max.apply(null, values.concat([1]));
    var width = Math.max(240, el.clientWidth || el.parentNode.clientWidth || 300);
    var opts = {
      width: width,
      height: rotate ? 260 : 220,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: [-0.6, xs.length - 0.4] },
        y: { range: [0, Math.ceil(top * 1.15)] }
      },
      axes: [
        {
          label: el.getAttribute("data-label-x") || "",
          splits: function () { return xs; },
          values: function (u, splits) {
            return splits.map(function (i) { return labels[i] === undefined ? "" : labels[i]; });
          },
          rotate: rotate ? -40 : 0,
          size: rotate ? 110 : 50,
          grid: { show: false }
        },
        { label: el.getAttribute("data-label-y") || "", size: 50, incrs: COUNTS,
          values: function (u, splits) { return splits.map(String); } }
      ],
      series: [
        {},
        { label: el.getAttribute("data-label-y") || "", stroke: BLUE, fill: BLUE, width: 0,
          points: { show: false }, paths: window.uPlot.paths.bars({ size: [0.7, 64] }) }
      ]
    };
    charts.push(new window.uPlot(opts, [xs, values], el));
  }

  function draw() {
    if (!latest || !window.uPlot || !window.uPlot.paths || !window.uPlot.paths.bars) { return; }
    chartsBox.classList.remove("hidden");
    clearCharts();
    var byStatus = latest.by_status || [];
    var statusLabels = byStatus.map(function (row) {
      var cell = document.querySelector("#tabel-status tbody tr:nth-child(" +
        (byStatus.indexOf(row) + 1) + ") th");
      return cell ? cell.textContent : row.label;
    });
    bars(document.getElementById("grafik-status"), statusLabels,
         byStatus.map(function (row) { return row.count; }), true);
    var histogram = (latest.processing && latest.processing.histogram) || [];
    bars(document.getElementById("grafik-waktu"),
         histogram.map(function (pair) { return String(pair[0]); }),
         histogram.map(function (pair) { return pair[1]; }), false);
  }

  function onFigures(event) {
    var payload;
    try { payload = JSON.parse(event.data); } catch (e) { return; }
    if (payload.version !== version && typeof payload.html === "string") {
      content.innerHTML = payload.html;
      version = payload.version;
    }
    latest = payload.figures;
    status.textContent = t("Diperbarui otomatis, terakhir pukul ", "Updated live, last at ") + clock() + ".";
    root.setAttribute("data-version", version);
    draw();
  }

  function connect() {
    retryTimer = null;
    var source = new EventSource(root.getAttribute("data-stream"));
    source.addEventListener("dashboard", onFigures);
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED && retryTimer === null) {
        status.textContent = t("Sambungan pembaruan terputus; mencoba lagi sebentar lagi.",
                               "The live connection dropped; trying again shortly.");
        retryTimer = window.setTimeout(connect, 10000);
      }
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(draw, 200);
  });

  connect();
})();

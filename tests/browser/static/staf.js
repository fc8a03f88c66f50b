/* tests/browser: a staff page shell as the modules write theirs: signed in or sent to
   /masuk, the module's API called with the token, a uPlot chart from a data-* attribute. */
(function () {
  "use strict";
  if (!Pamong.requireSignIn()) { return; }
  var me = document.getElementById("saya");
  Pamong.api("/api/pagekernel/v1/saya").then(function (answer) {
    me.textContent = answer.ok
      ? answer.body.name + " (" + answer.body.roles.join(", ") + ")"
      : Pamong.problemText(answer);
  });
  var box = document.getElementById("grafik");
  new uPlot({
    width: Math.max(box.clientWidth, 200), height: 180, scales: { x: { time: false } },
    series: [{}, { label: Pamong.t("Permohonan", "Applications"), stroke: "#0b5cab" }]
  }, JSON.parse(box.dataset.series), box);
})();

// One experiment's page: GET /experiments/{id} every second until the run ends, then its downloads and a chart
// of recall against ef per ordering (plotly.js, served by the app).
"use strict";

(function () {
  const W = window.Workbench;
  const POLL_MS = 1000;
  const id = document.body.dataset.experiment;
  const path = `/experiments/${encodeURIComponent(id)}`;
  const $ = (name) => document.getElementById(name);
  let drawn = false;

  $("experiment-id").textContent = id;
  const compareLink = $("compare-link");
  compareLink.href = `${W.root}/pages/compare?a=${encodeURIComponent(id)}`;
  const exploreLink = $("explore-link");
  exploreLink.href = `${W.root}/pages/experiments/${encodeURIComponent(id)}/explore`;

  function showStatus(exp) {
    document.title = `${exp.name} - indexer workbench`;
    $("title").textContent = exp.name;
    const status = $("status");
    status.textContent = exp.status;
    status.className = `status ${exp.status}`;
    $("progress").value = exp.progress;
    $("percent").textContent = W.percent(exp.progress);
    $("message").textContent = exp.message || "–";
    $("created").textContent = W.when(exp.created_at) || "–";
    $("error").hidden = !exp.error;
    $("error").textContent = exp.error || "";
    $("cancel").hidden = W.FINISHED.has(exp.status);
  }

  function showDownloads(exp) {
    const base = `${path}`;
    const items = exp.report_formats.map((fmt) => W.el("li", {},
      W.fileLink(`${base}/report?format=${fmt}`, `Report (${fmt.toUpperCase()})`, `${exp.name}.${fmt}`)));
    $("downloads").replaceChildren(...items);
    const files = [...new Set((exp.rows || []).map((r) => r.neighbors).filter(Boolean))]
      .map((f) => f.split("/").pop());
    $("neighbours").replaceChildren(...files.map((name) => W.el("li", {},
      W.fileLink(`${base}/neighbors/${encodeURIComponent(name)}`, name, name))));
    $("neighbours-section").hidden = files.length === 0;
    $("downloads-section").hidden = items.length === 0 && files.length === 0;
  }

  function drawChart(exp) {
    const traces = W.curves(exp.rows || []);
    if (!traces.length || !window.Plotly) return;
    $("chart-section").hidden = false;
    window.Plotly.newPlot($("chart"), traces, {
      xaxis: {title: {text: "ef"}, type: "log"},
      yaxis: {title: {text: `recall@${exp.rows[0].k}`}, range: [0, 1.02]},
      margin: {l: 60, r: 20, t: 20, b: 50},
      showlegend: true,
      legend: {orientation: "h", y: -0.25},
      autosize: true,
    }, {responsive: true, displaylogo: false});
  }

  async function poll() {
    let exp;
    try {
      exp = await W.json(path);
    } catch (err) {
      if (err instanceof W.KeyNeeded) return;
      $("status").textContent = err.status === 404 ? "not found" : `unavailable (${err.message})`;
      if (err.status !== 404) setTimeout(poll, POLL_MS * 3);
      return;
    }
    showStatus(exp);
    if (!W.FINISHED.has(exp.status)) {
      setTimeout(poll, POLL_MS);
      return;
    }
    showDownloads(exp);
    compareLink.hidden = exploreLink.hidden = exp.status !== "succeeded";
    if (!drawn && exp.status === "succeeded") {
      drawn = true;
      drawChart(exp);
    }
  }

  $("cancel").addEventListener("click", async () => {
    try {
      showStatus(await W.postJson(`${path}/cancel`, {}));
    } catch (err) {
      if (!(err instanceof W.KeyNeeded)) $("message").textContent = `Cancel failed: ${err.message}`;
    }
  });

  poll();
})();

// The compare page: two succeeded experiments (?a=ID&b=ID, or picked here), their recall-against-ef curves
// overlaid (A solid, B dashed), and the matching cells of GET /experiments/{a}/compare/{b}: the paired
// differences in recall and QPS with their intervals, significant ones marked.
"use strict";

(function () {
  const W = window.Workbench;
  const $ = (name) => document.getElementById(name);
  const params = new URLSearchParams(location.search);
  const picks = {a: params.get("a") || "", b: params.get("b") || ""};
  const status = $("compare-status");
  let generation = 0;

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function signed(value, digits) {
    if (value === null || value === undefined) return "–";
    const text = Number(value).toFixed(digits);
    return value > 0 ? `+${text}` : text;
  }

  function interval(pair, digits, show) {
    return pair ? ` [${show(pair[0], digits)}, ${show(pair[1], digits)}]` : "";
  }

  // The succeeded experiments to pick from (one page of the newest; the URL's ids are kept even if older).
  async function fillPickers() {
    const page = await W.json("/experiments?status=succeeded&limit=500");
    const known = new Map(page.items.map((exp) => [exp.id, exp.name]));
    for (const id of [picks.a, picks.b]) {
      if (id && !known.has(id)) known.set(id, id);
    }
    for (const side of ["a", "b"]) {
      const select = $(`experiment-${side}`);
      const options = [W.el("option", {value: ""}, "(choose an experiment)")];
      for (const [id, name] of known) {
        options.push(W.el("option", {value: id}, `${name} (${id.slice(0, 8)})`));
      }
      select.replaceChildren(...options);
      select.value = picks[side];
    }
  }

  function drawCurves(a, b) {
    const traces = [
      ...W.curves(a.rows || [], "A: "),
      ...W.curves(b.rows || [], "B: ").map((t) => Object.assign(t, {line: {dash: "dash"}})),
    ];
    if (!traces.length || !window.Plotly) return;
    $("curves-section").hidden = false;
    const k = (a.rows || []).concat(b.rows || []).find((r) => r.k)?.k;
    window.Plotly.newPlot($("curves"), traces, {
      xaxis: {title: {text: "ef"}, type: "log"},
      yaxis: {title: {text: k ? `recall@${k}` : "recall"}, range: [0, 1.02]},
      margin: {l: 60, r: 20, t: 20, b: 50},
      showlegend: true,
      legend: {orientation: "h", y: -0.25},
      autosize: true,
    }, {responsive: true, displaylogo: false});
  }

  function cellRow(change) {
    const recall = change.recall;
    const qps = change.qps;
    const qpsSignificant = Boolean(qps.interval) && (qps.interval[0] > 1 || qps.interval[1] < 1);
    const recallCell = W.el("td", {class: recall.significant ? "significant" : ""},
      signed(recall.difference, 4), interval(recall.interval, 4, signed));
    if (recall.significant) {
      recallCell.append(" ", W.el("strong", {class: change.worse ? "error" : "ok"},
        change.worse ? "worse" : recall.difference > 0 ? "better" : "lower"));
    } else if (!recall.queries) {
      recallCell.append(" ", W.el("span", {class: "muted"}, "untested"));
    }
    const qpsCell = W.el("td", {class: qpsSignificant ? "significant" : ""},
      fixed(qps.ratio, 2), interval(qps.interval, 2, fixed));
    if (qpsSignificant) qpsCell.append(" ", W.el("strong", {}, qps.ratio > 1 ? "faster" : "slower"));
    return W.el("tr", {"data-significant": String(recall.significant || qpsSignificant)},
      W.el("th", {scope: "row"}, cellLabel(change.cell)),
      W.el("td", {}, fixed(recall.a, 4)),
      W.el("td", {}, fixed(recall.b, 4)),
      recallCell,
      W.el("td", {}, fixed(qps.a, 0)),
      W.el("td", {}, fixed(qps.b, 0)),
      qpsCell);
  }

  function cellLabel(cell) {
    const params = Object.entries(cell.build_params || {}).sort().map(([k, v]) => `${k}=${v}`).join(" ");
    return [cell.backend, params, cell.ordering, cell.ef === null ? "no ef" : `ef=${cell.ef}`,
      cell.reduction !== "none" ? cell.reduction : "", `seed ${cell.seed}`].filter(Boolean).join(" ");
  }

  function showCells(comparison) {
    $("cells").querySelector("tbody").replaceChildren(...comparison.cells.map(cellRow));
    const significant = comparison.cells.filter((c) => c.recall.significant).length;
    $("cells-summary").textContent = `${comparison.cells.length} matching cell(s); recall differs significantly ` +
      `in ${significant}, worse in B in ${comparison.worse}` +
      (comparison.untested ? `; ${comparison.untested} untested (no per-query recall)` : "") +
      `. Intervals: ${Math.round(100 * comparison.confidence)}% percentile bootstrap, ` +
      `${comparison.resamples.toLocaleString()} resamples of the queries.`;
    $("cells-section").hidden = false;
  }

  async function compare() {
    const mine = ++generation;
    $("curves-section").hidden = true;
    $("cells-section").hidden = true;
    if (!picks.a || !picks.b) {
      status.textContent = "Choose two succeeded experiments.";
      if (picks.a) $("experiment-b").focus(); // from an experiment's "Compare": pick the second
      return;
    }
    status.textContent = "Comparing…";
    const a = encodeURIComponent(picks.a);
    const b = encodeURIComponent(picks.b);
    try {
      const [expA, expB, comparison] = await Promise.all([
        W.json(`/experiments/${a}`), W.json(`/experiments/${b}`), W.json(`/experiments/${a}/compare/${b}`)]);
      if (mine !== generation) return;
      status.textContent = `B: ${expB.name} against A: ${expA.name}.`;
      drawCurves(expA, expB);
      showCells(comparison);
    } catch (err) {
      if (err instanceof W.KeyNeeded || mine !== generation) return;
      status.textContent = `Cannot compare: ${err.message}`;
    }
  }

  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    picks.a = $("experiment-a").value;
    picks.b = $("experiment-b").value;
    history.replaceState(null, "", `?${new URLSearchParams(picks)}`);
    compare();
  });

  (async () => {
    try {
      await fillPickers();
    } catch (err) {
      if (err instanceof W.KeyNeeded) return; // the key form is up; nothing is shown without it
      status.textContent = `Could not list experiments: ${err.message}`;
      return;
    }
    compare();
  })();
})();

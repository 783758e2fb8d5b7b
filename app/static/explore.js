// The index explorer: one of the experiment's built indexes, one of the dataset's held-out queries, and
// GET /indexes/{id}/queries/{n}?k&ef: the index's answer beside the exact one, misses and rank shifts marked.
// The ef slider re-runs the search (debounced); an answer to an older request is dropped.
"use strict";

(function () {
  const W = window.Workbench;
  const DEBOUNCE_MS = 150;
  const $ = (name) => document.getElementById(name);
  const experiment = document.body.dataset.experiment;
  const params = new URLSearchParams(location.search);
  const indexSelect = $("index");
  const queryInput = $("query");
  const kInput = $("k");
  const efSlider = $("ef");
  const status = $("answer-status");
  let nQueries = null;
  let timer = null;
  let generation = 0;

  $("experiment-link").href = `${W.root}/pages/experiments/${encodeURIComponent(experiment)}`;
  $("experiment-link").textContent = experiment;

  function indexLabel(index) {
    const params = Object.entries(index.params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return [index.backend, params, index.ordering, index.reduction !== "none" ? index.reduction : "",
      `n=${index.n}`].filter(Boolean).join(" ");
  }

  function score(value) {
    return value === null ? "–" : Number(value).toFixed(4);
  }

  function remember() {
    const q = new URLSearchParams();
    if (indexSelect.value) q.set("index", indexSelect.value);
    if (queryInput.value.trim()) q.set("query", queryInput.value.trim());
    q.set("k", kInput.value);
    q.set("ef", efSlider.value);
    history.replaceState(null, "", `?${q}`);
  }

  function foundRow(hit, rank) {
    let judged;
    if (!hit.hit) {
      judged = W.el("span", {class: "miss"}, "miss");
    } else if (hit.true_rank === null) {
      judged = W.el("span", {class: "ok"}, "hit (tied with the k-th)");
    } else if (hit.true_rank !== rank) {
      judged = W.el("span", {class: "shift"}, `hit, exact rank ${hit.true_rank + 1}`);
    } else {
      judged = W.el("span", {class: "ok"}, "hit");
    }
    const id = W.el("td", {}, String(hit.id));
    if (hit.title) id.append(W.el("div", {class: "muted"}, hit.title));
    return W.el("tr", {class: hit.hit ? (hit.true_rank !== null && hit.true_rank !== rank ? "shifted" : "") : "missed",
      "data-id": String(hit.id)},
    W.el("td", {}, String(rank + 1)), id, W.el("td", {}, score(hit.score)), W.el("td", {}, judged));
  }

  function exactRow(hit, rank) {
    let where;
    if (hit.found_rank === null) {
      where = W.el("span", {class: "miss"}, "missed");
    } else if (hit.found_rank !== rank) {
      where = W.el("span", {class: "shift"}, `at rank ${hit.found_rank + 1}`);
    } else {
      where = W.el("span", {class: "ok"}, "same rank");
    }
    const id = W.el("td", {}, String(hit.id));
    if (hit.title) id.append(W.el("div", {class: "muted"}, hit.title));
    return W.el("tr", {class: hit.found_rank === null ? "missed" : hit.found_rank !== rank ? "shifted" : "",
      "data-id": String(hit.id)},
    W.el("td", {}, String(rank + 1)), id, W.el("td", {}, score(hit.score)), W.el("td", {}, where));
  }

  function show(answer) {
    $("found").querySelector("tbody").replaceChildren(...answer.found.map(foundRow));
    $("exact").querySelector("tbody").replaceChildren(...answer.exact.map(exactRow));
    const missed = answer.exact.filter((h) => h.found_rank === null).length;
    const shifted = answer.found.filter((h, rank) => h.true_rank !== null && h.true_rank !== rank).length;
    $("found-title").textContent = `Approximate answer at ef=${answer.ef}`;
    const what = answer.higher_is_better ? "similarity" : "squared distance";
    status.textContent = `Query ${answer.query} of ${answer.n_queries}: recall@${answer.k} ${answer.recall.toFixed(2)}, ` +
      `${missed} missed, ${shifted} at another rank (scores: exact ${what}).`;
    status.dataset.missed = String(missed);
    $("answers").hidden = false;
  }

  // What the form asks, or a sentence saying what is wrong with it (checked here first, then by the API).
  function request() {
    const text = queryInput.value.trim();
    if (!indexSelect.value) return {problem: "This experiment kept no index to explore."};
    if (!text) return {problem: "Type a query's number."};
    if (!/^\d+$/.test(text)) return {problem: "Query: give a query's number (0, 1, 2, …)."};
    const query = Number(text);
    if (nQueries !== null && query >= nQueries) {
      return {problem: `Query: the dataset has ${nQueries} held-out queries (0 to ${nQueries - 1}).`};
    }
    const k = Math.max(1, parseInt(kInput.value, 10) || 10);
    return {path: `/indexes/${encodeURIComponent(indexSelect.value)}/queries/${query}?k=${k}&ef=${efSlider.value}`};
  }

  // The query's LID and relative contrast (what the report published); fetched when the query or index
  // changes, not on every ef.
  let measured = "";
  async function showMeasures(indexId, query) {
    const key = `${indexId}/${query}`;
    if (key === measured) return;
    measured = key;
    const section = $("measures-section");
    try {
      const m = await W.json(`/indexes/${encodeURIComponent(indexId)}/queries/${query}/measures`);
      if (measured !== key) return;
      const show = (value, digits) => (value === null ? "–" : Number(value).toFixed(digits));
      $("lid").textContent = show(m.lid, 1);
      $("relative-contrast").textContent = show(m.relative_contrast, 3);
      $("expansion").textContent = show(m.expansion, 3);
      $("centre-distance").textContent = show(m.centre_distance, 3);
      section.hidden = false;
    } catch (err) {
      if (!(err instanceof W.KeyNeeded) && measured === key) section.hidden = true; // none published
    }
  }

  async function run() {
    clearTimeout(timer);
    const mine = ++generation;
    remember();
    const asked = request();
    if (asked.problem) {
      status.textContent = asked.problem;
      $("answers").hidden = true;
      $("measures-section").hidden = true;
      measured = "";
      return;
    }
    status.textContent = "Searching…";
    try {
      const answer = await W.json(asked.path);
      if (mine !== generation) return;
      nQueries = answer.n_queries;
      show(answer);
      showMeasures(answer.index_id, answer.query);
    } catch (err) {
      if (err instanceof W.KeyNeeded || mine !== generation) return;
      status.textContent = `No answer: ${err.message}`;
      $("answers").hidden = true;
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(run, DEBOUNCE_MS);
  }

  efSlider.addEventListener("input", () => {
    $("ef-value").textContent = efSlider.value;
    later();
  });
  queryInput.addEventListener("input", later);
  kInput.addEventListener("input", later);
  indexSelect.addEventListener("change", () => {
    nQueries = null;
    run();
  });
  $("explore").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });

  (async () => {
    let page;
    try {
      page = await W.json(`/indexes?experiment_id=${encodeURIComponent(experiment)}&limit=500`);
    } catch (err) {
      if (err instanceof W.KeyNeeded) return; // the key form is up; nothing is shown without it
      status.textContent = `Could not list the indexes: ${err.message}`;
      return;
    }
    // graph indexes first: an exact index answers exactly at every ef
    const items = page.items.slice().sort((x, y) => (x.backend === "exact") - (y.backend === "exact"));
    indexSelect.replaceChildren(...items.map((index) => W.el("option", {value: index.id}, indexLabel(index))));
    if (!items.length) indexSelect.append(W.el("option", {value: ""}, "(no built index)"));
    if (params.get("index") && items.some((i) => i.id === params.get("index"))) indexSelect.value = params.get("index");
    queryInput.value = params.get("query") || "";
    if (params.get("k")) kInput.value = params.get("k");
    if (params.get("ef")) efSlider.value = params.get("ef");
    $("ef-value").textContent = efSlider.value;
    if (queryInput.value) {
      run();
    } else {
      status.textContent = items.length ? "Type a query's number." : "This experiment kept no index to explore.";
    }
  })();
})();

// The experiments page: one page of GET /experiments (filtered by name and status on the server), refreshed
// every few seconds so status and progress stay live.
"use strict";

(function () {
  const W = window.Workbench;
  const PAGE = 50;
  const REFRESH_MS = 3000;
  const params = new URLSearchParams(location.search);
  const state = {
    name: params.get("name") || "",
    status: params.get("status") || "",
    offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
  };
  const nameInput = document.getElementById("name-filter");
  const statusSelect = document.getElementById("status-filter");
  const table = document.getElementById("experiments");
  const body = table.querySelector("tbody");
  const summary = document.getElementById("summary");
  const previous = document.getElementById("previous");
  const next = document.getElementById("next");
  const pageInfo = document.getElementById("page-info");
  let timer = null;
  let generation = 0; // answers to an older query are dropped

  nameInput.value = state.name;
  statusSelect.value = state.status;

  function query() {
    const q = new URLSearchParams({offset: String(state.offset), limit: String(PAGE)});
    if (state.name) q.set("name", state.name);
    if (state.status) q.set("status", state.status);
    return q;
  }

  function remember() {
    const q = new URLSearchParams();
    if (state.name) q.set("name", state.name);
    if (state.status) q.set("status", state.status);
    if (state.offset) q.set("offset", String(state.offset));
    const search = q.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  function row(exp) {
    const page = `/pages/experiments/${encodeURIComponent(exp.id)}`;
    const name = W.el("td", {class: "name"}, W.el("a", {href: W.root + page}, exp.name));
    if (exp.error) name.append(W.el("div", {class: "error"}, exp.error));
    const reports = W.el("td", {});
    if (exp.report_formats.length) {
      exp.report_formats.forEach((fmt, i) => {
        if (i) reports.append(" ");
        reports.append(W.fileLink(`/experiments/${encodeURIComponent(exp.id)}/report?format=${fmt}`, fmt,
          `${exp.name}.${fmt}`));
      });
    } else {
      reports.append("–");
    }
    const progress = W.el("td", {class: "progress"},
      W.el("progress", {max: "1", value: String(exp.progress), "aria-label": `Progress of ${exp.name}`}),
      " ", W.percent(exp.progress));
    return W.el("tr", {"data-id": exp.id},
      name,
      W.el("td", {}, W.el("span", {class: `status ${exp.status}`}, exp.status)),
      progress,
      W.el("td", {}, W.when(exp.created_at)),
      reports);
  }

  function render(page, shown) {
    body.replaceChildren(...page.items.map(row));
    // what the table shows now: the filters it was fetched with (tests and scripts wait on these)
    table.dataset.name = shown.name;
    table.dataset.status = shown.status;
    table.dataset.offset = String(page.offset);
    table.setAttribute("aria-busy", "false");
    // the time from navigation to the first rows, for bench and tests
    if (!performance.getEntriesByName("experiments-shown").length) performance.mark("experiments-shown");
    if (!page.items.length) {
      const filtered = state.name || state.status;
      body.append(W.el("tr", {}, W.el("td", {colspan: "5"},
        filtered ? "No experiment matches these filters." : "No experiments yet: write one under New experiment.")));
    }
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    summary.textContent = `${page.total.toLocaleString()} experiment(s)` +
      (state.name || state.status ? " match" : "") + ".";
    pageInfo.textContent = `${first.toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()}`;
    previous.disabled = page.offset === 0;
    next.disabled = last >= page.total;
  }

  async function load() {
    clearTimeout(timer);
    const mine = ++generation;
    const shown = {name: state.name, status: state.status};
    try {
      const page = await W.json(`/experiments?${query()}`);
      if (mine !== generation) return;
      if (page.offset > 0 && page.items.length === 0 && page.total > 0) {
        state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE); // past the end: the last page
        remember();
        load();
        return;
      }
      render(page, shown);
    } catch (err) {
      if (err instanceof W.KeyNeeded) return; // the key form is up
      if (mine === generation) summary.textContent = `Could not load experiments: ${err.message}`;
    }
    if (mine === generation) timer = setTimeout(refresh, REFRESH_MS);
  }

  function refresh() {
    if (document.hidden) {
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    load();
  }

  let typing = null;
  nameInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.name = nameInput.value.trim();
      state.offset = 0;
      table.setAttribute("aria-busy", "true");
      remember();
      load();
    }, 250);
  });
  statusSelect.addEventListener("change", () => {
    state.status = statusSelect.value;
    state.offset = 0;
    remember();
    load();
  });
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
  previous.addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    remember();
    load();
  });
  next.addEventListener("click", () => {
    state.offset += PAGE;
    remember();
    load();
  });

  load();
})();

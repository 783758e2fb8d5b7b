// The new-experiment page: a spec editor checked by POST /specs/validate as you type (debounced), the
// admission estimate, and Run, which submits the checked spec and opens its page.
"use strict";

(function () {
  const W = window.Workbench;
  const CHECK_DELAY_MS = 400;
  const spec = document.getElementById("spec");
  const chooser = document.getElementById("example");
  const description = document.getElementById("example-description");
  const checkStatus = document.getElementById("check-status");
  const problems = document.getElementById("problems");
  const estimate = document.getElementById("estimate");
  const run = document.getElementById("run");
  const runProblem = document.getElementById("run-problem");
  let examples = [];
  let checked = null; // the last answer, for the text it was given
  let checkedText = null;
  let pending = null;
  let sequence = 0;

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "not estimated";
    if (seconds < 120) return `about ${seconds.toFixed(0)} s`;
    if (seconds < 7200) return `about ${(seconds / 60).toFixed(1)} min`;
    return `about ${(seconds / 3600).toFixed(1)} h`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "not estimated";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let size = n;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit ? `${size.toFixed(1)} ${units[unit]}` : `${size} B`;
  }

  // Select line `line` (1-based) of the spec, so a problem can be jumped to from the keyboard.
  function goToLine(line) {
    const lines = spec.value.split("\n");
    const index = Math.max(0, Math.min(lines.length, line) - 1);
    const start = lines.slice(0, index).reduce((sum, text) => sum + text.length + 1, 0);
    spec.focus();
    spec.setSelectionRange(start, start + lines[index].length);
  }

  function showEstimate(est) {
    if (!est) {
      estimate.replaceChildren(W.el("dt", {}, "Cells"), W.el("dd", {}, "–"));
      return;
    }
    const facts = [
      ["Cells", `${est.cells.toLocaleString()} indexes to build`],
      ["Base", est.base_vectors === null ? "sized when its file is read"
        : `${est.base_vectors.toLocaleString()} vectors × ${est.dim} dims (${bytes(est.base_bytes)})`],
      ["Queries", est.queries === null ? "–" : est.queries.toLocaleString()],
      ["Expected time", `${duration(est.expected_seconds)} on ${est.cores} cores`],
      ["Largest index", bytes(est.largest_index_bytes)],
      ["Peak memory", bytes(est.peak_bytes)],
    ];
    estimate.replaceChildren(...facts.flatMap(([term, value]) => [W.el("dt", {}, term), W.el("dd", {}, value)]));
  }

  function show(answer) {
    problems.replaceChildren(...answer.problems.map((p) => {
      const where = p.line ? `Line ${p.line}` : "Spec";
      const item = W.el("li", {class: "problem"});
      if (p.line) {
        const jump = W.el("button", {type: "button", class: "link", "data-line": String(p.line)}, where);
        jump.addEventListener("click", () => goToLine(p.line));
        item.append(jump, `: ${p.msg}`);
      } else {
        item.append(`${where}: ${p.msg}`);
      }
      return item;
    }));
    spec.setAttribute("aria-invalid", answer.valid ? "false" : "true");
    checkStatus.textContent = answer.valid ? "The spec is valid."
      : `${answer.problems.length} problem(s) found.`;
    checkStatus.className = answer.valid ? "ok" : "error";
    showEstimate(answer.estimate);
    run.disabled = !answer.valid;
  }

  async function check() {
    const text = spec.value;
    const mine = ++sequence;
    checkStatus.textContent = "Checking…";
    checkStatus.className = "";
    try {
      const answer = await W.postJson("/specs/validate", {text});
      if (mine !== sequence) return;
      checked = answer;
      checkedText = text;
      show(answer);
    } catch (err) {
      if (err instanceof W.KeyNeeded || mine !== sequence) return;
      checkStatus.textContent = `Could not check the spec: ${err.message}`;
      checkStatus.className = "error";
      run.disabled = true;
    }
  }

  function schedule() {
    run.disabled = true;
    runProblem.textContent = "";
    clearTimeout(pending);
    pending = setTimeout(check, CHECK_DELAY_MS);
  }

  function load(name) {
    const example = examples.find((e) => e.name === name);
    if (!example) return;
    spec.value = example.text;
    description.textContent = example.description;
    schedule();
  }

  async function start() {
    try {
      examples = await W.json("/specs/examples");
    } catch (err) {
      if (err instanceof W.KeyNeeded) return;
      examples = [];
      description.textContent = `Could not load the examples: ${err.message}`;
    }
    const group = (kind, label) => W.el("optgroup", {label},
      ...examples.filter((e) => e.kind === kind).map((e) => W.el("option", {value: e.name}, e.name)));
    chooser.replaceChildren(group("example", "Examples"), group("preset", "Presets: a system's defaults"));
    if (!examples.length) chooser.append(W.el("option", {value: ""}, "(no examples on this server)"));
    const wanted = new URLSearchParams(location.search).get("example") || "quickstart";
    if (examples.some((e) => e.name === wanted)) chooser.value = wanted;
    if (!spec.value.trim()) load(chooser.value);
    else schedule();
  }

  spec.addEventListener("input", schedule);
  document.getElementById("load-example").addEventListener("click", () => load(chooser.value));
  run.addEventListener("click", async () => {
    clearTimeout(pending);
    if (checkedText !== spec.value) await check(); // the text moved since the last answer
    if (!checked || !checked.valid || checkedText !== spec.value) return;
    run.disabled = true;
    runProblem.textContent = "";
    try {
      const created = await W.postJson("/experiments", checked.spec);
      location.assign(`${W.root}/pages/experiments/${encodeURIComponent(created.id)}`);
    } catch (err) {
      if (err instanceof W.KeyNeeded) return;
      runProblem.textContent = `Not submitted: ${err.message}`;
      run.disabled = false;
    }
  });

  start();
})();

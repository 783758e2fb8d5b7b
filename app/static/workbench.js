// The workbench's shared helpers: API calls with the tab's API key, the key form, small DOM builders.
// Every value from the API goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const KEY_STORE = "indexer.apiKey";
  const HEADER = "X-API-Key";
  const root = document.body.dataset.root || "";

  class KeyNeeded extends Error {}

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORE);
    } catch (err) {
      return null; // storage disabled: the form asks on every page
    }
  }

  // Hide the page and ask for the key; a key given reloads the page, which then fetches with it.
  function askForKey(refused) {
    const form = document.getElementById("key-form");
    document.getElementById("main").hidden = true;
    form.hidden = false;
    document.getElementById("key-problem").textContent = refused
      ? "That key was refused: check it and try again." : "";
    document.getElementById("api-key").focus();
  }

  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("api-key").value.trim();
    if (!value) return;
    try {
      sessionStorage.setItem(KEY_STORE, value);
    } catch (err) {
      // without storage the key cannot outlive this page; nothing more to do
    }
    location.reload();
  });

  // fetch() against the API with the key; a 401 asks for the key and throws KeyNeeded.
  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    const headers = new Headers(opts.headers || {});
    const key = storedKey();
    if (key) headers.set(HEADER, key);
    opts.headers = headers;
    const response = await fetch(root + path, opts);
    if (response.status === 401) {
      askForKey(Boolean(key));
      throw new KeyNeeded("API key needed");
    }
    return response;
  }

  async function json(path, options) {
    const response = await api(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
      const error = new Error(detail);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function postJson(path, body) {
    return json(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  }

  // el("a", {href: "/x", class: "y"}, "text", child): attributes set as attributes, children as text or nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A link to an API file that downloads it with the key when one is set (a plain link cannot send it).
  function fileLink(path, label, filename) {
    const link = el("a", {href: root + path}, label);
    link.addEventListener("click", async (event) => {
      if (!storedKey()) return; // no key: the plain link works, and opens reports in their sandbox
      event.preventDefault();
      try {
        const response = await api(path);
        if (!response.ok) throw new Error(`${response.status}`);
        const url = URL.createObjectURL(await response.blob());
        const save = el("a", {href: url, download: filename});
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        if (!(err instanceof KeyNeeded)) link.title = `download failed: ${err.message}`;
      }
    });
    return link;
  }

  function percent(fraction) {
    return `${Math.round(100 * Math.max(0, Math.min(1, Number(fraction) || 0)))}%`;
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  // One line per setting that varies (backend and its build parameters, ordering, reduction, size, model),
  // mean recall over the rest (seeds), at each ef.
  function curves(rows, prefix) {
    const dense = rows.filter((r) => r.representation === "dense" && r.ef !== null && r.recall !== null);
    const label = {
      backend: (r) => [r.backend, ...Object.entries(r.build_params || {}).map(([k, v]) => `${k}=${v}`)].join(" "),
      ordering: (r) => r.ordering,
      reduction: (r) => r.reduction,
      size: (r) => `n=${r.index_size}`,
      model: (r) => r.model || "",
      dataset: (r) => r.dataset,
    };
    const varying = Object.keys(label).filter((key) => key === "ordering" ||
      new Set(dense.map(label[key])).size > 1);
    const lines = new Map();
    for (const r of dense) {
      const name = (prefix || "") + varying.map((key) => label[key](r)).join(", ");
      const points = lines.get(name) || new Map();
      const at = points.get(r.ef) || [];
      at.push(r.recall);
      points.set(r.ef, at);
      lines.set(name, points);
    }
    return [...lines.entries()].map(([name, points]) => {
      const efs = [...points.keys()].sort((a, b) => a - b);
      return {
        type: "scatter", mode: "lines+markers", name, x: efs,
        y: efs.map((ef) => points.get(ef).reduce((s, v) => s + v, 0) / points.get(ef).length),
      };
    });
  }

  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

  window.Workbench = {api, json, postJson, el, fileLink, percent, when, root, KeyNeeded, FINISHED, curves};
})();

"""The workbench: HTML pages that hold no data, and the scripts and styles they load.

Every page is a shell: its script fetches the data from the JSON API with the API key the tab holds
(sessionStorage), so the pages need no key themselves, and none shows data without one. Scripts and styles
come from this app only (app/static/, and plotly's bundle from the installed `plotly` package), under a
Content-Security-Policy that allows no inline script and no other origin.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse

from app.api.errors import error_responses
from app.schemas import plausible_id

router = APIRouter(tags=["pages"])

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
STATIC_URL = "/static/workbench"
# the files a page may load, by name: nothing else under the directory is served
STATIC_FILES: dict[str, str] = {
    "workbench.css": "text/css; charset=utf-8",
    "workbench.js": "text/javascript; charset=utf-8",
    "experiments.js": "text/javascript; charset=utf-8",
    "new.js": "text/javascript; charset=utf-8",
    "experiment.js": "text/javascript; charset=utf-8",
    "compare.js": "text/javascript; charset=utf-8",
    "explore.js": "text/javascript; charset=utf-8",
}
PLOTLY = "plotly.min.js"
# styles: plotly sets style attributes and adds its own rules at run time; scripts stay 'self' only
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data: blob:; font-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
_HTML: dict[int | str, dict[str, Any]] = {
    200: {"description": "The page (its data comes from the JSON API)",
          "content": {"text/html": {"schema": {"type": "string"}}}}}
# a page for one experiment refuses an id that cannot be one before it serves anything
_HTML_FOR_ID: dict[int | str, dict[str, Any]] = {**_HTML, **error_responses(404)}


def plotly_path() -> Path:
    """plotly.js as the `plotly` Python package ships it (no CDN)."""
    return Path(str(files("plotly") / "package_data" / PLOTLY))


def _root(request: Request) -> str:
    """The prefix a proxy strips (root_path): every URL a page loads carries it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _nav(root: str, current: str) -> str:
    links = [("/", "Experiments"), ("/pages/new", "New experiment"), ("/docs", "API")]
    marked = ' aria-current="page"'
    return "\n".join(f'<a href="{escape(root)}{href}"{marked if href == current else ""}>{label}</a>'
                     for href, label in links)


def _page(request: Request, title: str, main: str, scripts: list[str], **data: str) -> HTMLResponse:
    root = _root(request)
    tags = "\n".join(f'<script defer src="{escape(root)}{STATIC_URL}/{name}"></script>' for name in scripts)
    attrs = "".join(f' data-{key.replace("_", "-")}="{escape(value)}"' for key, value in data.items())
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(title)} - indexer workbench</title>
<link rel="stylesheet" href="{escape(root)}{STATIC_URL}/workbench.css">
<script defer src="{escape(root)}{STATIC_URL}/workbench.js"></script>
{tags}
</head>
<body data-root="{escape(root)}"{attrs}>
<a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Workbench">
{_nav(root, request.url.path.removeprefix(root) or "/")}
</nav></header>
<form id="key-form" class="key-form" hidden>
<h2>API key</h2>
<p>This server needs an API key. It is kept for this tab only.</p>
<p id="key-problem" class="error" role="alert"></p>
<label for="api-key">API key</label>
<input id="api-key" name="api-key" type="password" autocomplete="off" required>
<button type="submit">Use key</button>
</form>
<main id="main" tabindex="-1">
{main}
</main>
</body></html>
"""
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"})


_EXPERIMENTS = """<h1>Experiments</h1>
<form id="filters" class="filters" role="search" aria-label="Filter experiments">
<label for="name-filter">Name</label>
<input id="name-filter" name="name" type="search" maxlength="200" autocomplete="off">
<label for="status-filter">Status</label>
<select id="status-filter" name="status">
<option value="">any</option><option>queued</option><option>running</option><option>succeeded</option>
<option>failed</option><option>cancelled</option>
</select>
</form>
<p id="summary" role="status" aria-live="polite">Loading…</p>
<div class="scroll"><table id="experiments">
<caption class="visually-hidden">Experiments, newest first</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Progress</th>
<th scope="col">Created</th><th scope="col">Report</th></tr></thead>
<tbody></tbody></table></div>
<nav class="pager" aria-label="Pages">
<button type="button" id="previous">Previous</button>
<span id="page-info"></span>
<button type="button" id="next">Next</button>
</nav>"""

_NEW = """<h1>New experiment</h1>
<div class="gallery">
<label for="example">Example</label>
<select id="example"><option value="">(loading examples)</option></select>
<button type="button" id="load-example">Load example</button>
</div>
<p id="example-description" class="hint"></p>
<label for="spec">Spec</label>
<p id="spec-hint" class="hint">YAML or JSON. Checked on the server as you type.</p>
<textarea id="spec" name="spec" spellcheck="false" wrap="off" rows="22" aria-describedby="spec-hint check-status problems"></textarea>
<p id="check-status" role="status" aria-live="polite"></p>
<ul id="problems" class="problems"></ul>
<section aria-labelledby="estimate-title">
<h2 id="estimate-title">Estimate</h2>
<dl id="estimate" class="estimate"><dt>Cells</dt><dd>–</dd></dl>
</section>
<p id="run-problem" class="error" role="alert"></p>
<button type="button" id="run" disabled>Run</button>"""

_EXPERIMENT = """<h1 id="title">Experiment</h1>
<p class="muted">Id <code id="experiment-id"></code></p>
<dl class="facts">
<dt>Status</dt><dd><span id="status" class="status" role="status" aria-live="polite">loading</span></dd>
<dt>Progress</dt><dd><progress id="progress" max="1" value="0" aria-label="Progress"></progress>
<span id="percent"></span></dd>
<dt>Message</dt><dd id="message">–</dd>
<dt>Created</dt><dd id="created">–</dd>
</dl>
<p id="error" class="error" hidden></p>
<button type="button" id="cancel" hidden>Cancel</button>
<p class="actions"><a id="compare-link" href="#" hidden>Compare</a> <a id="explore-link" href="#" hidden>Explore</a></p>
<section id="downloads-section" aria-labelledby="downloads-title" hidden>
<h2 id="downloads-title">Downloads</h2>
<ul id="downloads"></ul>
<details id="neighbours-section" hidden><summary>Neighbour files</summary><ul id="neighbours"></ul></details>
</section>
<section id="chart-section" aria-labelledby="chart-title" hidden>
<h2 id="chart-title">Recall against ef, per ordering</h2>
<div id="chart" class="chart" role="img" aria-label="Recall against ef, one line per ordering"></div>
</section>"""


_COMPARE = """<h1>Compare</h1>
<form id="pick" class="filters" aria-label="Experiments to compare">
<label for="experiment-a">Experiment A</label>
<select id="experiment-a" name="a" required><option value="">(loading)</option></select>
<label for="experiment-b">Experiment B</label>
<select id="experiment-b" name="b" required><option value="">(loading)</option></select>
<button type="submit" id="show">Show comparison</button>
</form>
<p class="hint">Succeeded experiments on the same dataset; cells are matched on every setting (backend, build
parameters, ordering, ef, seed, ...). Differences are B − A with 95% intervals over the queries.</p>
<p id="compare-status" role="status" aria-live="polite"></p>
<section id="curves-section" aria-labelledby="curves-title" hidden>
<h2 id="curves-title">Recall against ef</h2>
<div id="curves" class="chart" role="img" aria-label="Recall against ef of both experiments, A solid, B dashed"></div>
</section>
<section id="cells-section" aria-labelledby="cells-title" hidden>
<h2 id="cells-title">Matching cells</h2>
<p id="cells-summary"></p>
<div class="scroll"><table id="cells">
<caption class="visually-hidden">Matching cells with the paired differences, B minus A</caption>
<thead><tr><th scope="col">Cell</th><th scope="col">Recall A</th><th scope="col">Recall B</th>
<th scope="col">B − A (95% interval)</th><th scope="col">QPS A</th><th scope="col">QPS B</th>
<th scope="col">QPS B / A (95% interval)</th></tr></thead>
<tbody></tbody></table></div>
</section>"""

_EXPLORE = """<h1>Index explorer</h1>
<p class="muted">Experiment <a id="experiment-link" href="#"></a></p>
<form id="explore" class="filters" aria-label="Search settings">
<span class="field"><label for="index">Index</label>
<select id="index" name="index"><option value="">(loading)</option></select></span>
<span class="field"><label for="query">Query</label>
<input id="query" name="query" type="text" inputmode="numeric" autocomplete="off" size="6"
 aria-describedby="query-hint"></span>
<span class="field"><label for="k">k</label>
<input id="k" name="k" type="number" min="1" max="1000" value="10" size="4"></span>
<span class="field"><label for="ef">ef</label>
<input id="ef" name="ef" type="range" min="1" max="512" value="10" aria-describedby="ef-value">
<output id="ef-value" for="ef">10</output></span>
</form>
<p id="query-hint" class="hint">A query's number among the dataset's held-out queries.</p>
<p id="answer-status" role="status" aria-live="polite"></p>
<section id="measures-section" aria-labelledby="measures-title" hidden>
<h2 id="measures-title">Difficulty (LID and contrast)</h2>
<dl id="measures" class="facts">
<dt>LID</dt><dd id="lid">–</dd>
<dt>Relative contrast</dt><dd id="relative-contrast">–</dd>
<dt>Expansion (2k / k)</dt><dd id="expansion">–</dd>
<dt>Distance to the nearest centre</dt><dd id="centre-distance">–</dd>
</dl>
</section>
<div id="answers" class="answers" hidden>
<section aria-labelledby="found-title">
<h2 id="found-title">Approximate answer</h2>
<div class="scroll"><table id="found">
<thead><tr><th scope="col">Rank</th><th scope="col">Id</th><th scope="col">Score</th><th scope="col">Judged</th></tr></thead>
<tbody></tbody></table></div>
</section>
<section aria-labelledby="exact-title">
<h2 id="exact-title">Exact answer</h2>
<div class="scroll"><table id="exact">
<thead><tr><th scope="col">Rank</th><th scope="col">Id</th><th scope="col">Score</th><th scope="col">In the approximate answer</th></tr></thead>
<tbody></tbody></table></div>
</section>
</div>"""


# response_class=Response, not HTMLResponse: FastAPI documents every response of a route in its media type
@router.get("/", response_class=Response, responses=_HTML)
def experiments_page(request: Request) -> HTMLResponse:
    """The workbench's home: experiments with live status, filtered by status and name, page by page."""
    return _page(request, "Experiments", _EXPERIMENTS, ["experiments.js"])


@router.get("/pages/new", response_class=Response, responses=_HTML)
def new_experiment_page(request: Request) -> HTMLResponse:
    """The spec editor: examples, validation as you type, the estimate, and Run."""
    return _page(request, "New experiment", _NEW, ["new.js"])


@router.get("/pages/experiments/{experiment_id}", response_class=Response, responses=_HTML_FOR_ID)
def experiment_page(request: Request, experiment_id: str) -> HTMLResponse:
    """One experiment: status and progress until it ends, then its downloads and a chart."""
    if not plausible_id(experiment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not an experiment id")
    return _page(request, "Experiment", _EXPERIMENT, [PLOTLY, "experiment.js"], experiment=experiment_id)


@router.get("/pages/compare", response_class=Response, responses=_HTML)
def compare_page(request: Request) -> HTMLResponse:
    """Two succeeded experiments (`?a=ID&b=ID`, picked on the page): overlaid curves and the matching cells'
    paired differences."""
    return _page(request, "Compare", _COMPARE, [PLOTLY, "compare.js"])


@router.get("/pages/experiments/{experiment_id}/explore", response_class=Response, responses=_HTML_FOR_ID)
def explore_page(request: Request, experiment_id: str) -> HTMLResponse:
    """The index explorer: one of the experiment's indexes, one query, its answer beside the exact one."""
    if not plausible_id(experiment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not an experiment id")
    return _page(request, "Index explorer", _EXPLORE, ["explore.js"], experiment=experiment_id)


@router.get(f"{STATIC_URL}/{{name}}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    if name == PLOTLY:
        # plotly.js changes only with the package: a day's caching saves its 4.8 MB on every page
        return FileResponse(plotly_path(), media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
    media = STATIC_FILES.get(name)
    if media is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {name[:100]!r}")
    return FileResponse(STATIC_DIR / name, media_type=media,
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

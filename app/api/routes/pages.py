"""GET /: one small HTML page listing experiments, their status and links to their reports.

Inline HTML with every value escaped: a page this small does not need a template engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from app.api.deps import SettingsDep, StoreDep
from app.api.errors import error_responses
from app.api.routes.experiments import report_formats

router = APIRouter(tags=["pages"], responses=error_responses(401, 503))

PAGE_SIZE = 200

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; }
.status { font-weight: 600; }
.succeeded { color: #1a7f37; } .failed { color: #cf222e; } .running { color: #0969da; }
.cancelled { color: #6e7781; } .queued { color: #9a6700; }
.error { color: #cf222e; font-size: .9em; }
"""


def _row(job: Any, formats: Sequence[str]) -> str:
    jid = quote(job.id, safe="")
    links = " ".join(
        f'<a href="/experiments/{jid}/report?format={fmt}">{fmt}</a>' for fmt in formats
    ) or "&ndash;"
    progress = f"{100 * float(job.progress or 0):.0f}%"
    error = f'<div class="error">{escape(job.error)}</div>' if job.error else ""
    created = escape(job.created_at.isoformat(timespec="seconds")) if job.created_at else ""
    return (
        f'<tr data-id="{escape(job.id)}"><td class="name">{escape(job.name)}{error}</td>'
        f'<td><a href="/experiments/{jid}"><code>{escape(job.id)}</code></a></td>'
        f'<td class="status {escape(job.status)}">{escape(job.status)}</td>'
        f"<td>{progress}</td><td>{created}</td><td>{links}</td></tr>"
    )


# response_class=Response, not HTMLResponse: FastAPI documents every response of a route in the route's
# media type, and the errors are JSON
@router.get("/", response_class=Response,
            responses={200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}})
def index_page(store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """The newest experiments; reports link to GET /experiments/{id}/report."""
    jobs, total = store.list(offset=0, limit=PAGE_SIZE)
    rows = "\n".join(_row(job, report_formats(settings, job)) for job in jobs)
    body = rows or '<tr><td colspan="6">No experiments yet: POST a spec to /experiments.</td></tr>'
    shown = f"{len(jobs)} of {total}" if total > len(jobs) else f"{total}"
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>indexer: experiments</title>
<style>{_STYLE}</style></head>
<body><h1>Experiments</h1>
<p>{shown} experiment(s). API: <a href="/docs">/docs</a>, <a href="/openapi.json">/openapi.json</a>.</p>
<table id="experiments"><thead><tr><th>Name</th><th>Id</th><th>Status</th><th>Progress</th>
<th>Created</th><th>Report</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""
    return HTMLResponse(html)

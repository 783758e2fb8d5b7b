"""The report as one self-contained HTML page: inline CSS and SVG figures, no scripts, nothing fetched."""

from __future__ import annotations

import html
import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from indexer import __version__
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import ResultModel, RunExtras
from indexer.report import figures
from indexer.report.blocks import Block, Bullets, Figure, Group, Heading, Para, Pre, Table, numeric_columns
from indexer.report.document import document

log = logging.getLogger(__name__)


def render_html(spec: ExperimentSpec, rows: Sequence[ResultModel | Mapping[str, Any]],
                extras: RunExtras | Mapping[str, Any] | None = None) -> str:
    """One self-contained page: inline CSS and SVG plots, no scripts, nothing fetched."""
    title, sections = document(spec, rows, extras)
    esc = html.escape
    figure_count = itertools.count(1)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)} · indexer report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>{esc(title)}</h1>",
        f'<p class="meta">result key <code>{esc(spec.key())}</code> · indexer {esc(__version__)}'
        f" · {len(rows)} result rows</p></header>",
        "<nav><ol>"
        + "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
        + '<li><a href="#spec">Spec</a></li></ol></nav>',
    ]
    for sec in sections:
        parts.append(f'<section id="{sec.anchor}"><h2>{esc(sec.title)}</h2>')
        for block in sec.blocks:
            parts.append(_html_block(block, figure_count))
        parts.append("</section>")
    spec_json = json.dumps(spec.model_dump(mode="json"), indent=2)
    parts += [
        '<section id="spec"><h2>Spec</h2><details><summary>The experiment spec (canonical JSON)'
        f"</summary><pre>{esc(spec_json)}</pre></details></section>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _html_block(block: Block, figure_count: Iterator[int]) -> str:
    esc = html.escape
    if getattr(block, "only", None) == "md":
        return ""
    if isinstance(block, Para):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{esc(block.text)}</h3>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Pre):
        return f"<pre>{esc(block.text)}</pre>"
    if isinstance(block, Figure):
        number = next(figure_count)
        return _html_figure(block, number)
    if isinstance(block, Group):
        inner = "".join(_html_block(b, figure_count) for b in block.blocks)
        if block.summary is None:
            return inner
        return f"<details><summary>{esc(block.summary)}</summary>{inner}</details>"
    parts = ['<div class="table-wrap"><table>']
    if block.caption:
        parts.append(f"<caption>{esc(block.caption)}</caption>")
    numeric = numeric_columns(block)
    parts.append(_html_thead(block, numeric))
    parts.append("<tbody>")
    for i, line in enumerate(block.rows):
        cells = []
        for j, c in enumerate(line):
            text = f"<strong>{esc(c)}</strong>" if (i, j) in block.strong else esc(c)
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _html_thead(block: Table, numeric: set[int]) -> str:
    esc = html.escape
    if not block.groups or not block.sub_headers:
        cells = [
            f'<th class="num">{esc(h)}</th>' if j in numeric else f"<th>{esc(h)}</th>"
            for j, h in enumerate(block.headers)
        ]
        return "<thead><tr>" + "".join(cells) + "</tr></thead>"
    top = [f'<th rowspan="2">{esc(h)}</th>' for h in block.headers[: block.left]]
    bottom = []
    col = 0
    for label, span in block.groups:
        subs = block.sub_headers[col : col + span]
        if span == 1 and not subs[0]:
            top.append(f'<th rowspan="2" class="num">{esc(label)}</th>')
        else:
            top.append(f'<th colspan="{span}" class="group">{esc(label)}</th>')
            bottom += [f'<th class="num">{esc(h)}</th>' for h in subs]
        col += span
    return f"<thead><tr>{''.join(top)}</tr><tr>{''.join(bottom)}</tr></thead>"


def _html_figure(block: Figure, number: int) -> str:
    caption = f"<figcaption>Figure {number}. {html.escape(block.caption)}</figcaption>"
    try:
        svg = figures.render_svg(block.draw, prefix=f"f{number}-")
    except Exception as err:  # a plot must not cost the report its tables
        log.exception("figure %d failed", number)
        return f'<p class="warn">Figure {number} could not be drawn: {html.escape(repr(err))}</p>'
    return f"<figure>{svg}{caption}</figure>"


_CSS = """
:root{--fg:#1c2330;--muted:#5a6477;--line:#dde2ea;--accent:#2456a4;--head:#eef1f6;--stripe:#f7f9fc}
*{box-sizing:border-box}
body{margin:0;background:#eef1f5;color:var(--fg);
 font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:28px 40px 72px;background:#fff;min-height:100vh}
h1{font-size:1.75rem;margin:0 0 .2em;line-height:1.25;overflow-wrap:anywhere}
h2{font-size:1.28rem;margin:2.2em 0 .6em;padding-bottom:.25em;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:1.5em 0 .3em;color:var(--muted);font-weight:600}
p{margin:.5em 0;max-width:80ch}
.meta{color:var(--muted);margin:0}
code{font-size:.9em;background:var(--stripe);padding:.05em .3em;border-radius:3px}
nav ol{display:flex;flex-wrap:wrap;gap:.2em 1.3em;padding:.6em 0;margin:1em 0 0;list-style:none;
 border-top:1px solid var(--line);border-bottom:1px solid var(--line);font-size:.92rem}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
ul{padding-left:1.3em;max-width:90ch}
li{margin:.2em 0}
.table-wrap{overflow-x:auto;margin:.5em 0 1.2em}
table{border-collapse:collapse;font-size:.87rem;font-variant-numeric:tabular-nums}
th,td{padding:.32em .75em;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
th.group{text-align:center;border-bottom:1px solid #c5ccd8}
th.num{text-align:right}
td.num,td:first-child{white-space:nowrap}
details{margin:.6em 0 1.2em}
details>summary{font-size:.92rem}
tbody tr:nth-child(even){background:var(--stripe)}
td.num{text-align:right;white-space:nowrap}
td strong{color:#0d5c24}
caption{caption-side:top;text-align:left;color:var(--muted);font-size:.85rem;padding-bottom:.3em}
figure{margin:1.2em 0 1.8em}
figure svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.86rem;margin-top:.4em;max-width:95ch}
pre{background:var(--stripe);border:1px solid var(--line);padding:.8em;overflow-x:auto;font-size:.8rem;
 line-height:1.3}
details summary{cursor:pointer;color:var(--accent)}
.warn{color:#a12a2a}
"""

"""Reports: turn result rows into report.json, report.csv, report.md and a self-contained report.html.

Every file is written into a temporary sibling directory that is renamed into place, so a directory
named like the report is always a finished report: a crash leaves the previous one, never half of one.
The markdown and HTML come from one document model (sections of paragraphs, tables and figures), so
both show the same numbers; figures are matplotlib SVG inlined in the HTML (no network, no scripts).

One module per concern:
    write       the report directory: staging, the swap into place, the neighbour files
    rows        result rows as published: rounding, plain JSON values, CSV
    results     the rows grouped and ranked the way the report reads them
    blocks      the document model (paragraphs, tables, figures, sections)
    document    which sections a report holds, in reading order
    sections/   one module per section
    markdown    the Markdown renderer
    html        the HTML renderer
    figures     matplotlib drawn to inline SVG, and the style every figure shares
    values      loose values (JSON, numpy, None) to numbers, means and sort keys
    cells       numbers to the text of a table cell
    published   a report directory read back (its dense rows and their files)
    export      `indexer export`: the formats' registry and the atomic output directory
    export_annb, export_parquet   one module per format
"""

from indexer.report.html import render_html
from indexer.report.markdown import render_markdown
from indexer.report.rows import round_row, rows_to_csv
from indexer.report.write import NEIGHBORS_DIR, REPORT_PREFIX, write_report

__all__ = [
    "NEIGHBORS_DIR",
    "REPORT_PREFIX",
    "render_html",
    "render_markdown",
    "round_row",
    "rows_to_csv",
    "write_report",
]

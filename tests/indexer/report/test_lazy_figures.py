"""The Markdown and CSV never pay for matplotlib: only drawing a figure imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import sys
from indexer.report import render_markdown, rows_to_csv
from indexer.engine.spec import parse_spec
from tests.indexer.report.rowkit import dense_row

spec = parse_spec({"name": "lazy", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                   "backends": [{"name": "hnswlib", "ef_search": [10]}]})
rows = [dense_row(recall=0.5)]
assert "0.500" in render_markdown(spec, rows, None)
rows_to_csv(rows)
print("matplotlib" in sys.modules)
"""


def test_markdown_and_csv_do_not_import_matplotlib() -> None:
    # a fresh interpreter: in this one another test may have imported matplotlib already
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "False"

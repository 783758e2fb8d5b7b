"""A golden run: the tiny spec's report rows, recorded once, must come back the same after any change
that claims to keep behaviour (refactors of the runner, the report, the backends).

Timing fields vary from run to run and file names carry cell keys (which include library versions),
so both are left out; everything measured (recall, breakdowns, sizes, seeds) must match exactly.
Regenerate deliberately with `INDEXER_WRITE_GOLDEN=1` when a change is meant to alter results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from indexer.engine.spec import parse_spec
from indexer.model.results import DenseRow
from indexer.pipeline import run_and_report

GOLDEN = Path(__file__).parent / "golden" / "tiny-report-rows.json"
VOLATILE = DenseRow.VOLATILE | {"cell"}


def _stable(rows: list[dict]) -> list[dict]:
    """Rows without timings, also those nested in the cost at each recall target."""
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if k not in VOLATILE}
        if "cost_at_recall" in kept:
            kept["cost_at_recall"] = [{k: v for k, v in c.items() if k not in ("qps", "qps_range")}
                                      for c in kept["cost_at_recall"]]
        out.append(kept)
    return out


def test_report_rows_match_the_golden_run(tiny_spec_dict: dict, tmp_path: Path) -> None:
    spec = parse_spec({**tiny_spec_dict, "seeds": [0, 1]})
    run_and_report(spec, cache_dir=tmp_path / "cache", out_dir=tmp_path / "out")
    rows = _stable(json.loads((tmp_path / "out" / "report.json").read_text())["rows"])
    if os.environ.get("INDEXER_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    assert rows == json.loads(GOLDEN.read_text())

"""A bounded schemathesis run against /openapi.json: no 5xx, no status, header, media type or body outside
the schema, every request the schema refuses refused, and `Allow` on a 405 naming the path's methods.

Every check but positive_data_acceptance: a body valid by the schema can still be refused for what no
schema can know (a vector's dimension against the index's, a text search on a vector index, a spec over
the admission limits). The rules a schema can state are checked in test_schema_rules.py.

Path ids are pinned to a real experiment and a real index, so search and evaluate see fuzzed bodies
against an index that exists (unknown ids are covered by the route tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.app.apiharness import Server

MAX_EXAMPLES = 20
RUN_SECONDS = 120  # a guard only: the run is bounded by --max-examples


def run_schemathesis(target: Server, config: Path) -> None:
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"{target.url}/openapi.json",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing",
        "--workers", "2", "--seed", "1", "--request-timeout", "20",
        "--suppress-health-check", "all", "--no-color",
    ]
    # cwd: schemathesis keeps a cache directory (.schemathesis) where it runs
    done = subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, timeout=RUN_SECONDS)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "No issues found" in out or "passed" in out.lower(), out[-3000:]


def test_schemathesis_with_built_index(
    index_server: Server, built: dict[str, Any], hnsw_index: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.index_id" = {json.dumps(hnsw_index["id"])}\n'
        f'"path.experiment_id" = {json.dumps(built["experiment"]["id"])}\n'
    )
    run_schemathesis(index_server, config)


def test_schemathesis_on_postgresql(pg_server: Server, tmp_path: Path) -> None:
    """PostgreSQL refuses what SQLite stores (a NUL character in text): fuzz it too, with random ids."""
    config = tmp_path / "schemathesis.toml"
    config.write_text("")
    run_schemathesis(pg_server, config)

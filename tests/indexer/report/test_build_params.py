"""The report names no backend's build parameters: a new backend's come from the registry.

A toy backend with a `leaf_size` parameter is registered in a fresh interpreter (before the spec reads the
registry, as one line in indexer/backends/__init__.py would), and its two builds must be told apart in
every table without any edit to the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import json
from pydantic import Field
from indexer import backends
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library

class ToyParams(BuildParams):
    leaf_size: int = Field(default=8, ge=1)

caps = Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=True, graph=False,
                    seeded=False)
backends.BACKENDS["toy"] = Backend(name="toy", params=ToyParams, ef_search=(1, 2), capabilities=caps,
                                   index=object, library=Library("numpy", "numpy"))

from indexer.report import render_markdown
from indexer.report.results import BUILD_PARAMS, Results, typed_rows
from indexer.engine.spec import parse_spec
from tests.indexer.report.rowkit import dense_row

spec = parse_spec({"name": "toy", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                   "orderings": ["random", "given"],
                   "backends": [{"name": "toy", "leaf_size": 4}, {"name": "toy", "leaf_size": 16},
                                {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10]}]})
rows = [dense_row(ordering=o, backend="toy", leaf_size=leaf, ef=ef, recall=0.5 + leaf / 100 + ef / 10)
        for o in ("random", "given") for leaf in (4, 16) for ef in (1, 2)]
rows += [dense_row(ordering=o, recall=0.9) for o in ("random", "given")]
res = Results(spec, typed_rows(rows))
print(json.dumps({
    "params": list(BUILD_PARAMS),
    "columns": [res.col_label(c) for c in res.columns(res.rows)],
    "markdown": render_markdown(spec, rows, None),
}))
"""


def _render_with_toy() -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=REPO)
    result: dict = json.loads(done.stdout)
    return result


def test_a_new_backends_builds_are_told_apart_by_its_own_parameters() -> None:
    out = _render_with_toy()
    assert out["params"][:2] == ["M", "ef_construction"] and out["params"][-1] == "leaf_size"
    assert out["columns"] == [
        "toy leaf_size=4 ef=1", "toy leaf_size=4 ef=2", "toy leaf_size=16 ef=1", "toy leaf_size=16 ef=2",
        "hnswlib ef=10",  # one build of hnswlib: its name is enough
    ]
    assert "toy (leaf_size=4; ef 1, 2)" in out["markdown"]
    assert "toy leaf_size=16 ef=2" in out["markdown"]

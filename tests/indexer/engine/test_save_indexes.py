"""`indexer run --save-indexes`: each built index that lives in one file is copied into the report, named by
its rows, and loads with the raw library; a report with indexes can be replaced by the next run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import faiss
import hnswlib
import numpy as np

SPEC = {
    "name": "save", "k": 10, "orderings": ["random"],
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 8], "points_per_subspace": 300,
                "queries_per_subspace": 10, "ambient_dim": 16, "seed": 1},
    "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 32, "ef_search": [10, 20]},
                 {"name": "faiss_hnsw", "M": 8, "ef_search": [10]}, {"name": "exact"}],
}


def test_saved_indexes_load_with_the_raw_library_and_answer_as_the_rows_say(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "indexer.cli", "run", str(spec), "--out", str(out), "--cache-dir",
           str(tmp_path / "cache"), "-q", "--save-indexes"]
    for _ in range(2):  # the second run replaces a report that holds indexes
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert {r["backend"] for r in rows if "index_file" in r} == {"hnswlib", "faiss_hnsw", "exact"}
    hnsw = next(r for r in rows if r["backend"] == "hnswlib" and r["ef"] == 10)
    index = hnswlib.Index(space="ip", dim=16)
    index.load_index(str(out / hnsw["index_file"]))
    assert index.get_current_count() == hnsw["index_size"]
    index.set_ef(10)
    vdir = next((tmp_path / "cache" / "vectors").iterdir())
    ids, _ = index.knn_query(np.load(vdir / "queries.npy"), k=10)
    assert np.array_equal(ids.astype(np.int64), np.load(out / hnsw["neighbors"]))  # the row's own answers
    flat = next(r for r in rows if r["backend"] == "faiss_hnsw")
    assert faiss.read_index(str(out / flat["index_file"])).ntotal == flat["index_size"]
    assert (out / flat["index_file"]).with_name("index.bin.order.npy").is_file()  # faiss's ids map

"""Churn on the database backends (lancedb, chroma, qdrant_edge, milvus_lite): the shared checks of churn_kit (no
deleted id returned, live-set recall against numpy), and a runbook through the one run function with none of them
returning a deleted id in any row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from indexer.engine import runner
from indexer.engine.spec import ExperimentSpec
from tests.indexer.engine.churn_kit import K, check_live_recall, check_no_deleted_id, runbook_spec

# not importorskip: importing lancedb here, before the backend pins RAYON_NUM_THREADS, is what it refuses
NO_LANCEDB = pytest.mark.skipif(importlib.util.find_spec("lancedb") is None, reason="lancedb is not installed")
LEAN = {"M": 4, "ef_construction": 16}
# (entry, the kit's recall floor at ef 200): measured on the kit's data, lancedb 0.40.0 with optimize 0.96 (a delta
# graph and rebuilt graphs at M=4), every other one 0.99-1.0 (lancedb without optimize searches new rows flat)
STORES = [
    pytest.param({"name": "lancedb", **LEAN}, 0.95, marks=NO_LANCEDB, id="lancedb-tombstone"),
    pytest.param({"name": "lancedb", **LEAN, "optimize": True}, 0.9, marks=NO_LANCEDB, id="lancedb-compact"),
    pytest.param({"name": "chroma", **LEAN}, 0.95, id="chroma-tombstone"),
    pytest.param({"name": "qdrant_edge", **LEAN}, 0.95, id="qdrant_edge-compact"),
    pytest.param({"name": "milvus_lite", **LEAN}, 0.95, id="milvus_lite-tombstone"),
]


@pytest.mark.parametrize(("params", "floor"), STORES)
def test_no_store_returns_a_deleted_id(params: dict, floor: float) -> None:
    check_no_deleted_id(params)


@pytest.mark.parametrize(("params", "floor"), STORES)
def test_live_set_recall_against_brute_force(params: dict, floor: float) -> None:
    check_live_recall(params, wide_ef=200, floor=floor)


def _spec(backends: list[dict]) -> ExperimentSpec:
    return runbook_spec("churn-stores", backends, K)


@NO_LANCEDB
def test_a_runbook_on_the_stores_runs_through_the_one_run_function(cache_dir: Path) -> None:
    spec = _spec([{"name": "lancedb", **LEAN, "ef_search": [40]},
                  {"name": "lancedb", **LEAN, "ef_search": [40], "optimize": True},
                  {"name": "chroma", **LEAN, "ef_search": [40]},
                  {"name": "qdrant_edge", **LEAN, "ef_search": [40]},
                  {"name": "milvus_lite", **LEAN, "ef_search": [40]}])
    rows = runner.run(spec, cache_dir=cache_dir).extras.churn
    assert {r.backend for r in rows} == {"lancedb", "chroma", "qdrant_edge", "milvus_lite"}
    assert all(r.deleted_returned == 0 for r in rows), [(r.backend, r.step) for r in rows if r.deleted_returned]
    assert {(r.backend, r.deletes) for r in rows} == {
        ("lancedb", "tombstone"), ("lancedb", "compact"), ("chroma", "tombstone"), ("qdrant_edge", "compact"),
        ("milvus_lite", "tombstone")}
    assert all(r.reinserted_ids == "same" for r in rows)
    assert all(r.recall is not None and r.recall > 0.5 for r in rows)  # they answer, from the live points

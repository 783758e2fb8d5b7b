"""/evaluate measures recall as the report does: ties tolerated, reduced indexes judged in the original space.

Truth here is numpy brute force over the files the index was built from, never the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from indexer.engine import runner
from indexer.engine.spec import parse_spec
from indexer.service.artifacts import LoadedIndex, open_index
from indexer.service.store import Store
from tests.app.apiharness import Server, start_thread_server

K = 10
COPIES = 4  # every base point is stored this many times: neighbours come in groups of exact ties


def _tie_tolerant_recall(base: np.ndarray, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
    """Recall@k under squared L2 by numpy: a distinct found id counts if it is as near as the k-th truth."""
    dist = ((queries[:, None, :].astype(np.float64) - base[None, :, :].astype(np.float64)) ** 2).sum(axis=2)
    kth = np.sort(dist, axis=1)[:, k - 1]
    out = []
    for row, ids in enumerate(found[:, :k].tolist()):
        distinct = {i for i in ids if i >= 0}
        hits = sum(dist[row, i] <= kth[row] * (1 + 1e-5) for i in distinct)
        out.append(min(hits, k) / k)
    return np.asarray(out)


def _id_recall(base: np.ndarray, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
    """Recall@k against one arbitrary choice among ties (lowest ids first): what ties would cost."""
    dist = ((queries[:, None, :].astype(np.float64) - base[None, :, :].astype(np.float64)) ** 2).sum(axis=2)
    truth = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.asarray([len(set(f) & set(t)) / k for f, t in zip(found[:, :k].tolist(), truth.tolist(), strict=True)])


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Indexes (hnswlib and exact) over a file of duplicated points, built by the runner and recorded in a store."""
    data_dir = tmp_path_factory.mktemp("duplicated-data")
    rng = np.random.default_rng(7)
    base = np.repeat(rng.standard_normal((150, 16)).astype(np.float32), COPIES, axis=0)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    np.save(data_dir / "base.npy", base)
    np.save(data_dir / "queries.npy", queries)
    spec = parse_spec({
        "name": "duplicated-points",
        "dataset": {"kind": "file", "path": str(data_dir / "base.npy"), "queries": str(data_dir / "queries.npy")},
        "metric": "l2",
        "k": K,
        "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]}, {"name": "exact"}],
        "lid": {"k": 10, "sample": 100},
    })
    result = runner.run(spec, cache_dir=data_dir / "cache")
    store = Store(f"sqlite:///{(data_dir / 'indexer.db').resolve()}")
    store.migrate()
    job, _ = store.submit(spec)
    store.add_indexes(job.id, result.indexes)
    store.close()
    yield {"data_dir": data_dir, "base": base, "queries": queries, "result": result}


@pytest.fixture(scope="module")
def duplicated_server(duplicated: dict[str, Any]) -> Iterator[Server]:
    srv = start_thread_server(duplicated["data_dir"])
    yield srv
    srv.stop()


def _open(duplicated: dict[str, Any], record: dict[str, Any]) -> LoadedIndex:
    return open_index(Path(record["path"]), data_dir=duplicated["data_dir"])


def test_a_returned_tied_id_is_a_hit(duplicated: dict[str, Any]) -> None:
    base, queries = duplicated["base"], duplicated["queries"]
    ties_mattered = False
    for record in duplicated["result"].indexes:
        loaded = _open(duplicated, record)
        for ef in (10, 40):
            found, _ = loaded.search(queries, K, ef)
            expected = _tie_tolerant_recall(base, queries, found, K)
            np.testing.assert_allclose(loaded.recall(queries, K, [ef])[0], expected)
            ties_mattered |= bool((expected > _id_recall(base, queries, found, K)).any())
    assert ties_mattered, "no index returned a tied id outside the lowest-id truth: the data tests nothing"


def test_exact_search_over_duplicates_has_full_recall(duplicated: dict[str, Any]) -> None:
    record = next(r for r in duplicated["result"].indexes if r["backend"] == "exact")
    assert (_open(duplicated, record).recall(duplicated["queries"], K, [None]) == 1.0).all()


def test_evaluate_counts_tied_ids_as_the_numpy_computation(
    duplicated: dict[str, Any], duplicated_server: Server
) -> None:
    base, queries = duplicated["base"], duplicated["queries"]
    with duplicated_server.client() as client:
        for record in duplicated["result"].indexes:
            r = client.post(f"/indexes/{record['id']}/evaluate", json={"k": K, "ef": [10, 40]})
            assert r.status_code == 200, r.text
            loaded = _open(duplicated, record)
            for res in r.json()["results"]:
                found, _ = loaded.search(queries, K, res["ef"])
                expected = _tie_tolerant_recall(base, queries, found, K)
                assert res["per_query"] == pytest.approx(expected.tolist())
                assert res["recall"] == pytest.approx(round(float(expected.mean()), 4))
                if record["backend"] == "exact":
                    assert res["recall"] == 1.0


def test_evaluate_equals_the_report_row(index_client: httpx.Client, built: dict[str, Any]) -> None:
    """Held-out recall from the API at an ef is the report's `recall` for that cell and ef."""
    rows = built["experiment"]["rows"]
    for index in built["indexes"]:
        mine = [row for row in rows if row["cell"] == index["id"]]
        assert mine, index
        efs = [row["ef"] if row["ef"] is not None else row["k"] for row in mine]  # exact search ignores ef
        r = index_client.post(f"/indexes/{index['id']}/evaluate", json={"k": mine[0]["k"], "ef": efs})
        assert r.status_code == 200, r.text
        got = {res["ef"]: res["recall"] for res in r.json()["results"]}
        assert {ef: row["recall"] for ef, row in zip(efs, mine, strict=True)} == got


def test_recall_equals_the_run_for_reduced_indexes(tiny_spec_dict: dict[str, Any], tmp_path: Path) -> None:
    """A reduced index is judged as the runner judges it: against exact search in the original space."""
    tiny_spec_dict["orderings"] = ["random"]
    tiny_spec_dict["backends"] = [tiny_spec_dict["backends"][0], {"name": "exact"}]
    tiny_spec_dict["reductions"] = ["none", {"name": "pca", "dims": 4}]
    data_dir = tmp_path / "data"
    result = runner.run(parse_spec(tiny_spec_dict), cache_dir=data_dir / "cache")
    reduced_differs = False
    for record in result.indexes:
        loaded = open_index(Path(record["path"]), data_dir=data_dir)
        mine = [row for row in result.rows if row["cell"] == record["id"]]
        recalls = loaded.recall(loaded.held_out_queries(), tiny_spec_dict["k"], [row["ef"] for row in mine])
        for row, per_query in zip(mine, recalls, strict=True):
            assert float(per_query.mean()) == pytest.approx(row["recall"], abs=1e-12), (record["id"], row["ef"])
            reduced_differs |= record["reduction_label"] != "none" and row["recall"] != row["recall_within"]
    assert reduced_differs, "pca to 4 dims should lose neighbours of the original space"

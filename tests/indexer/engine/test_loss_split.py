"""The loss split on a small run through the engine: representation + graph = 1 - recall in every row, about
no representation loss for a float32 index, a positive one for 8-bit ones, precision and bytes per vector in the
rows, and rows read back from rows.json as they were written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.engine import runner
from indexer.engine.spec import parse_spec
from indexer.model.results import DenseRow
from indexer.science.judging import judge_answers

GRAPH = {"M": 8, "ef_construction": 40, "ef_search": [10, 60]}
TIES = 0.005  # exact search can differ from exact search on ties (and float32 rounding) only


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[DenseRow]:
    spec = parse_spec({
        "name": "loss-split",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                    "queries_per_subspace": 30, "ambient_dim": 32, "seed": 3},
        "metric": "cosine", "k": 10, "orderings": ["random"], "seeds": [0], "lid": {"k": 10},
        "backends": [
            {"name": "hnswlib", **GRAPH},
            {"name": "faiss_hnsw", **GRAPH},
            {"name": "faiss_hnsw", **GRAPH, "precision": "i8"},
            {"name": "usearch", **GRAPH, "precision": "f32"},
            {"name": "usearch", **GRAPH, "precision": "i8"},
            {"name": "voyager", **GRAPH, "precision": "e4m3"},
            {"name": "exact"},
        ],
    })
    return runner.run(spec, cache_dir=tmp_path_factory.mktemp("cache")).rows


def _of(rows: list[DenseRow], backend: str, precision: str) -> list[DenseRow]:
    found = [r for r in rows if r.backend == backend and r.precision == precision]
    assert found
    return found


def test_the_parts_add_up_to_the_loss(rows: list[DenseRow]) -> None:
    assert len(rows) == 6 * 2 + 1
    for r in rows:
        assert r.recall is not None and r.loss_representation is not None and r.loss_graph is not None
        assert r.loss_representation + r.loss_graph == pytest.approx(1 - r.recall, abs=1e-9)
        assert r.loss_representation == pytest.approx(1 - (r.recall_stored or 0), abs=1e-12)


def test_a_float32_index_loses_nothing_to_its_representation(rows: list[DenseRow]) -> None:
    for backend in ("hnswlib", "faiss_hnsw", "usearch", "exact"):
        for r in _of(rows, backend, "f32"):
            assert r.loss_representation is not None and abs(r.loss_representation) <= TIES
    exact = _of(rows, "exact", "f32")[0]
    assert exact.loss_graph is not None and abs(exact.loss_graph) <= TIES  # exact search has no graph


def test_an_8bit_index_loses_to_its_representation(rows: list[DenseRow]) -> None:
    for backend, precision in (("faiss_hnsw", "i8"), ("usearch", "i8"), ("voyager", "e4m3")):
        split = {r.loss_representation for r in _of(rows, backend, precision)}
        assert len(split) == 1  # one exact search over the stored vectors per cell, whatever the ef
        assert split.pop() > TIES


def test_recall_stored_is_the_stored_answers_judged(rows: list[DenseRow]) -> None:
    """The saved exact answers over the stored vectors, judged again here from their ids, give recall_stored."""
    from indexer.datasets.synthetic import load as load_synthetic
    from indexer.model.datasets import SyntheticDataset
    from indexer.science import groundtruth

    r = _of(rows, "usearch", "i8")[0]
    stored = sorted(Path(r.neighbors or "").parent.glob("probes/*.stored.npy"))
    assert len(stored) == 1
    ds = load_synthetic(SyntheticDataset(kind="synthetic", intrinsic_dims=[2, 16], points_per_subspace=600,
                                      queries_per_subspace=30, ambient_dim=32, seed=3))
    base, queries = (groundtruth.prepare_vectors(v, "cosine") for v in (ds.base, ds.queries))
    truth_ids, truth_scores = groundtruth.exact_knn(base, queries, 10, "cosine")
    judged = judge_answers(np.load(stored[0]), base=base, queries=queries, truth_ids=truth_ids,
                           truth_scores=truth_scores, k=10, metric="cosine")
    assert r.recall_stored == pytest.approx(float(np.nanmean(judged.recall)), abs=1e-12)


def test_rows_record_precision_and_bytes_per_vector(rows: list[DenseRow]) -> None:
    dims = rows[0].dims
    expected = {("hnswlib", "f32"): 4 * dims, ("faiss_hnsw", "f32"): 4 * dims, ("faiss_hnsw", "i8"): dims,
                ("usearch", "f32"): 4 * dims, ("usearch", "i8"): dims, ("voyager", "e4m3"): dims,
                ("exact", "f32"): 4 * dims}
    assert {(r.backend, r.precision): r.bytes_per_vector for r in rows} == expected
    # a backend with the parameter keeps it among its build parameters (the report tells builds apart by them);
    # faiss at its default f32 leaves it out, as before the parameter
    assert all(r.build_params.get("precision") == r.precision for r in rows if r.backend in ("usearch", "voyager"))
    assert [r.build_params.get("precision") for r in _of(rows, "faiss_hnsw", "i8")] == ["i8", "i8"]
    assert all("precision" not in r.build_params for r in rows if r.backend in ("hnswlib", "exact"))
    assert all("precision" not in r.build_params for r in _of(rows, "faiss_hnsw", "f32"))


def test_rows_read_back_as_written(rows: list[DenseRow]) -> None:
    for r in rows:
        written = json.loads(json.dumps(r.to_json()))
        assert list(written).count("precision") == 1
        back = DenseRow.model_validate(written)
        assert back.precision == r.precision and back.build_params == r.build_params
        assert (back.recall_stored, back.loss_representation, back.loss_graph) == \
            (r.recall_stored, r.loss_representation, r.loss_graph)


def test_a_row_written_before_precision_reads_as_its_precision(rows: list[DenseRow]) -> None:
    """Published rows carry usearch's and voyager's earlier `dtype` (voyager's float32 for f32): read back, it
    is their precision, among the build parameters and as the row's own."""
    usearch = {k: v for k, v in _of(rows, "usearch", "i8")[0].to_json().items()
               if k not in ("precision", "recall_stored", "loss_representation", "loss_graph")}
    old = DenseRow.model_validate({**usearch, "dtype": "bf16"})
    assert old.precision == "bf16" and old.build_params["precision"] == "bf16" and "dtype" not in old.build_params
    voyager = {k: v for k, v in _of(rows, "voyager", "e4m3")[0].to_json().items() if k != "precision"}
    old = DenseRow.model_validate({**voyager, "dtype": "float32"})
    assert old.precision == "f32" and old.build_params["precision"] == "f32"


@pytest.mark.skipif(__import__("importlib").util.find_spec("lancedb") is None, reason="lancedb is not installed")
def test_an_index_whose_codes_cannot_be_read_is_not_split(tmp_path: Path) -> None:
    """lancedb's default IVF_HNSW_SQ ranks by 8-bit codes it does not give back: its rows say i8 at one byte a
    dimension and leave the split unknown (the space's exact kNN would book the codes' loss to the graph);
    IVF_HNSW_FLAT stores float32 and is split."""
    spec = parse_spec({
        "name": "loss-unsplit",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 300,
                    "queries_per_subspace": 10, "ambient_dim": 32, "seed": 3},
        "metric": "cosine", "k": 10, "orderings": ["random"], "seeds": [0],
        "backends": [{"name": "lancedb", "M": 8, "ef_construction": 40, "ef_search": [40]},
                     {"name": "lancedb", "M": 8, "ef_construction": 40, "ef_search": [40],
                      "index_type": "IVF_HNSW_FLAT"}],
    })
    got = {r.build_params["index_type"]: r for r in runner.run(spec, cache_dir=tmp_path).rows}
    sq, flat = got["IVF_HNSW_SQ"], got["IVF_HNSW_FLAT"]
    assert (sq.precision, sq.bytes_per_vector) == ("i8", 32)
    assert sq.recall is not None and sq.recall_stored is None and sq.loss_representation is None and sq.loss_graph is None
    assert (flat.precision, flat.bytes_per_vector) == ("f32", 128)
    assert flat.recall is not None and flat.loss_representation is not None and flat.loss_graph is not None
    assert flat.loss_representation + flat.loss_graph == pytest.approx(1 - flat.recall, abs=1e-9)

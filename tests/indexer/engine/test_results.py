"""The typed results: each serialises to the JSON the engine has always written, and reads back the same."""

from __future__ import annotations

import json
import math
import pickle

import pytest
from pydantic import ValidationError

from indexer.model.results import (
    DenseRow,
    Distribution,
    HybridRow,
    IndexRecord,
    JobResult,
    ModelRank,
    ModelRanking,
    RunExtras,
    SparseRow,
    extras_to_json,
    parse_rows,
    rows_to_json,
)

IR = {"ndcg@10": 0.5, "mrr@10": 0.25, "recall@100": 1.0}


def dense(**extra: object) -> DenseRow:
    return DenseRow.model_validate({
        "dataset": "d", "model": None, "metric": "cosine", "index_size": 100, "reduction": "none", "dims": 8,
        "ordering": "random", "backend": "hnswlib", "M": 8, "ef_construction": 40, "k": 10, "seed": 0,
        "library_seed": 7, "library_version": "0.8.0", "order_controlled": True, "build_seconds": 0.1, "index_bytes": 10, "bytes_per_vector": 32, "cell": "c1",
        "ef": 10, "recall": 0.9, "recall_std": 0.1, "recall_ci95": [0.8, 1.0], "recall_within": 0.95, "qps": 99.5,
        "qps_passes": 3, "recall_by_category": {"a": {"recall": 0.9, "n": 5}},
        "recall_by_lid_bin": [{"bin": 0, "lo": 1.0, "hi": 2.0, "recall": 0.9, "n": 5}], "cost_at_recall": [],
        "neighbors": "n.npy",
        **extra,
    })


def sparse() -> SparseRow:
    return SparseRow.model_validate({"dataset": "d", "index_size": 100, "k": 10, "build_seconds": 0.2,
                                     "qps": 50.0, "index_bytes": 3, "neighbors": "bm25.npy", **IR})


def test_dense_row_keeps_the_column_order_with_build_parameters_flattened() -> None:
    keys = list(dense().to_json())
    assert keys[:12] == ["dataset", "model", "metric", "index_size", "reduction", "dims", "representation",
                         "ordering", "backend", "M", "ef_construction", "k"]
    assert keys[-4:] == ["recall_by_category", "recall_by_lid_bin", "cost_at_recall", "neighbors"]
    assert "build_params" not in keys and dense().build_params == {"M": 8, "ef_construction": 40}


def test_measures_not_taken_are_absent_and_those_taken_are_present() -> None:
    plain = dense().to_json()
    assert not {"ndcg@10", "mrr@10", "recall@100", "ranking"} & set(plain)
    judged = dense(**IR, ranking="r.npy").to_json()
    assert list(judged)[-4:] == ["ndcg@10", "mrr@10", "recall@100", "ranking"]
    assert not dense().judged and dense(**IR).judged and sparse().judged


def test_rows_read_back_as_they_were_written() -> None:
    d = dense(**IR, ranking="r.npy")
    hybrid = HybridRow.model_validate({
        **{k: v for k, v in d.to_json().items() if k in HybridRow.model_fields or k in ("M", "ef_construction")},
        "representation": "hybrid", "recall": None, "neighbors": "h.npy", **IR,
    })
    rows = [d, sparse(), hybrid]
    data = json.loads(json.dumps(rows_to_json(rows)))
    again = parse_rows(data)
    assert [type(r) for r in again] == [DenseRow, SparseRow, HybridRow]
    assert again == rows and rows_to_json(again) == data


def test_sparse_row_has_no_insertion_order_and_no_build_parameters() -> None:
    row = sparse().to_json()
    assert row["ordering"] is None and row["backend"] == "bm25" and row["model"] is None
    assert sparse().build_params == {} and sparse().bytes_per_vector is None and "build_params" not in row
    assert row["recall"] is None and row["ef"] is None and row["seed"] is None


def test_nan_measures_stay_nan_in_memory_and_unknown_keys_are_refused() -> None:
    assert math.isnan(dense(recall=float("nan")).to_json()["recall"])
    with pytest.raises(ValidationError):
        dense(surprise=1)


def test_plain_rows_pass_through_serialisation() -> None:
    assert rows_to_json([{"recall": 0.5}, dense()]) == [{"recall": 0.5}, dense().to_json()]


def test_index_record_json_omits_what_was_not_recorded() -> None:
    record = IndexRecord.model_validate({
        "id": "c", "dataset": "d", "ordering": "random", "backend": "exact", "params": {},
        "reduction_label": "none", "dims": 8, "metric": "cosine", "n": 10, "size_bytes": 1, "path": "cache/c",
    })
    assert record.to_json() == {
        "id": "c", "dataset": "d", "model": None, "metric": "cosine", "ordering": "random", "backend": "exact",
        "params": {}, "reduction_label": "none", "dims": 8, "n": 10, "size_bytes": 1, "path": "cache/c",
    }
    assert record.query_dim == 8 and record.model_copy(update={"input_dim": 32}).query_dim == 32


def test_job_results_cross_the_process_boundary() -> None:
    result = JobResult(rows=[dense(), sparse()], indexes=[])
    assert pickle.loads(pickle.dumps(result)) == result


def test_extras_leave_out_the_analyses_a_run_did_not_make() -> None:
    assert extras_to_json(RunExtras()) == {"space": {}, "notes": []}
    assert Distribution(n=0).to_json() == {"n": 0}
    assert extras_to_json(RunExtras(crossings=[]))["crossings"] == []


def test_a_model_ranking_reads_back_from_its_json() -> None:
    """The report renders from the extras' JSON: a ranking written under its measure's name reads back."""
    rank = ModelRank(measure="ndcg@10", model="m", score=0.5, rank=1, exact_rank=2, change=1)
    extras = RunExtras(model_ranking=[ModelRanking(index_size=10, reduction="none", ordering="random",
                                                   backend="hnswlib", build_params={"M": 8}, ef=10, seed=0,
                                                   ranking=[rank], max_change=1)])
    written = json.loads(json.dumps(extras_to_json(extras)))
    assert written["model_ranking"][0]["ranking"][0] == {"model": "m", "ndcg@10": 0.5, "rank": 1, "exact_rank": 2,
                                                          "change": 1}
    back = RunExtras.model_validate(written)
    assert back.model_ranking is not None and back.model_ranking[0].ranking[0] == rank


def test_the_one_json_cleaner_serves_the_report_and_the_store() -> None:
    from pathlib import Path

    import numpy as np
    import pytest

    from indexer.common.jsonvalues import plain
    from indexer.service.views import to_json

    value = {"a": np.float32(0.5), "b": [np.int64(3), float("nan")], "c": Path("/x"), 4: np.bool_(True),
             "d": np.arange(2)}
    assert plain(value) == to_json(value) == {"a": 0.5, "b": [3, None], "c": "/x", "4": True, "d": [0, 1]}
    assert plain(object()).startswith("<object")
    with pytest.raises(TypeError, match="cannot store a object as JSON"):
        to_json(object())

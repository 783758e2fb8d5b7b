"""Opening built indexes as the service does: same answers as the run, exact answers, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.engine import runner
from indexer.engine.spec import parse_spec
from indexer.service.artifacts import ArtifactError, open_index


@pytest.fixture
def built(tiny_spec_dict, tmp_path):
    tiny_spec_dict["orderings"] = ["random"]
    tiny_spec_dict["reductions"] = ["none", {"name": "pca", "dims": 8}]
    data_dir = tmp_path / "data"
    res = runner.run(parse_spec(tiny_spec_dict), cache_dir=data_dir / "cache")
    return res, data_dir


def test_search_reproduces_the_run_for_every_index(built):
    res, data_dir = built
    for rec in res.indexes:
        loaded = open_index(Path(rec["path"]), data_dir=data_dir)
        assert loaded.dim == 32
        queries = loaded.held_out_queries()
        for row in res.rows:
            if row["cell"] == rec["id"]:
                ids, _ = loaded.search(queries, row["k"], row["ef"])
                np.testing.assert_array_equal(ids, np.load(row["neighbors"]))


def test_exact_search_equals_numpy_over_the_indexed_vectors(built):
    res, data_dir = built
    rec = next(r for r in res.indexes if r["reduction_label"] == "none")
    loaded = open_index(Path(rec["path"]), data_dir=data_dir)
    q = loaded.held_out_queries()
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ loaded.base.T), axis=1, kind="stable")[:, :10]
    ids, _ = loaded.exact_search(q, 10)
    np.testing.assert_array_equal(ids, truth)


def test_refuses_paths_outside_the_data_directory(built, tmp_path):
    res, _ = built
    with pytest.raises(ArtifactError, match="outside"):
        open_index(Path(res.indexes[0]["path"]), data_dir=tmp_path / "elsewhere")


def test_refuses_a_tampered_index_file(built):
    res, data_dir = built
    path = Path(res.indexes[0]["path"]) / "index.bin"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="checksum"):
        open_index(path.parent, data_dir=data_dir)


def test_wrong_dimension_and_nan_are_user_errors(built):
    res, data_dir = built
    loaded = open_index(Path(res.indexes[0]["path"]), data_dir=data_dir)
    with pytest.raises(ValueError, match="dimension 32"):
        loaded.search(np.ones((1, 31), np.float32), 5, 10)
    bad = np.ones((1, 32), np.float32)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        loaded.search(bad, 5, 10)


def test_one_query_answer_agrees_with_recall_and_exact_search(built):
    """The explorer's answer for one query: its recall is `recall`'s for that query (reduced or not), and the
    exact side is exact search over the indexed vectors (unreduced)."""
    res, data_dir = built
    for rec in res.indexes:
        loaded = open_index(Path(rec["path"]), data_dir=data_dir)
        queries = loaded.held_out_queries()
        per_query = loaded.recall(queries, 10, [10])[0]
        for number in (0, len(queries) - 1):
            answer = loaded.answer_query(number, 10, 10)
            assert answer.recall == pytest.approx(per_query[number])
            assert answer.hits.sum() >= round(answer.recall * 10)
            ids, _ = loaded.search(queries[number : number + 1], 10, 10)
            np.testing.assert_array_equal(answer.found_ids, ids[0])
            if rec["reduction_label"] == "none":
                truth, _ = loaded.exact_search(queries[number : number + 1], 10)
                assert set(answer.truth_ids.tolist()) == set(truth[0].tolist())

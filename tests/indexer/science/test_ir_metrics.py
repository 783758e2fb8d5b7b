"""IR metrics (via ranx) against values computed by hand from the definitions."""

import math

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.science.ir_metrics import evaluate_run, per_query, run_from_ids

QRELS = {
    "q1": {"d1": 1, "d3": 1},  # relevant at ranks 1 and 3 below
    "q2": {"d9": 1, "d8": 1, "d7": 1},  # 2 of 3 found, first at rank 2
    "q3": {"d5": 1},  # missing from the run: counts as 0
    "q4": {"d4": 0},  # no relevant document: left out
}
RUN = {
    "q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0},
    "q2": {"d0": 0.9, "d9": 0.8, "dx": 0.5, "d8": 0.4},
    "q5": {"d1": 1.0},  # not judged: ignored
}


@pytest.fixture(scope="module")
def values() -> dict[str, np.ndarray]:
    return per_query(QRELS, RUN, ("ndcg@10", "mrr@10", "recall@100"))


def test_per_query_matches_hand_computed(values) -> None:
    # order: judged queries sorted -> q1, q2, q3
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    np.testing.assert_allclose(values["ndcg@10"], [ndcg_q1, ndcg_q2, 0.0], rtol=1e-9)
    np.testing.assert_allclose(values["mrr@10"], [1.0, 0.5, 0.0], rtol=1e-9)
    np.testing.assert_allclose(values["recall@100"], [1.0, 2 / 3, 0.0], rtol=1e-9)


def test_means_count_missing_queries_as_zero(values) -> None:
    means = evaluate_run(QRELS, RUN, ("ndcg@10", "mrr@10", "recall@100"))
    assert means["mrr@10"] == pytest.approx(1.5 / 3)
    assert means["recall@100"] == pytest.approx((1 + 2 / 3) / 3)
    assert means["ndcg@10"] == pytest.approx(float(np.mean(values["ndcg@10"])))


def test_cutoff_and_graded_gains_are_linear() -> None:
    qrels = {"a": {"d1": 2, "d2": 1}}
    run = {"a": {"d2": 2.0, "d1": 1.0}}
    # trec_eval-style linear gains: DCG = 1 + 2/log2(3), IDCG = 2 + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"] == pytest.approx(expected)
    deep = {"a": {f"x{i}": 100.0 - i for i in range(10)} | {"d1": 50.0}}
    assert evaluate_run(qrels, deep, ["mrr@10", "mrr@11"]) == pytest.approx({"mrr@10": 0.0, "mrr@11": 1 / 11})


def test_query_order_and_unjudged_queries_are_nan() -> None:
    vals = per_query(QRELS, RUN, ["mrr@10"], query_ids=["q2", "q4", "q1", "q3"])
    np.testing.assert_array_equal(vals["mrr@10"][[0, 2, 3]], [0.5, 1.0, 0.0])
    assert np.isnan(vals["mrr@10"][1])


def test_nothing_judged_is_an_error() -> None:
    with pytest.raises(DataError):
        evaluate_run({"q": {"d": 0}}, {"q": {"d": 1.0}}, ["mrr@10"])


def test_run_from_ids_keeps_strict_scores_and_skips_padding() -> None:
    docs = ["a", "b", "c", "d"]
    ids = np.array([[2, 0, -1], [-1, -1, -1], [3, 3, 1]])
    scores = np.array([[0.9, 0.5, 0.0], [0, 0, 0], [0.7, 0.7, 0.2]], dtype=np.float32)
    run = run_from_ids(["q1", "q2", "q3"], docs, ids, scores)
    assert run["q1"] == pytest.approx({"c": 0.9, "a": 0.5})
    assert run["q2"] == {}
    # a repeated id counts once, at its first place; the remaining scores stay strict
    assert run["q3"] == pytest.approx({"d": 0.7, "b": 0.2})


def test_run_from_ids_ties_and_distances_fall_back_to_rank() -> None:
    docs = ["a", "b", "c"]
    tied = run_from_ids(["q"], docs, np.array([[1, 0, 2]]), np.array([[0.5, 0.5, 0.1]]))
    assert tied["q"] == {"b": 1.0, "a": 0.5, "c": 1 / 3}
    distances = run_from_ids(["q"], docs, np.array([[2, 1]]), np.array([[0.1, 0.4]]))
    assert list(distances["q"]) == ["c", "b"] and distances["q"]["c"] > distances["q"]["b"]
    assert run_from_ids(["q"], docs, np.array([[0, 2]]))["q"] == {"a": 1.0, "c": 0.5}


def test_run_from_ids_end_to_end_ranking_preserved() -> None:
    # ties in the original scores must not let ranx reorder the given ranking
    docs = [f"d{i}" for i in range(5)]
    qrels = {"q": {"d4": 1}}
    run = run_from_ids(["q"], docs, np.array([[1, 4, 0]]), np.array([[1.0, 1.0, 1.0]]))
    assert evaluate_run(qrels, run, ["mrr@10"])["mrr@10"] == pytest.approx(0.5)


def test_run_from_ids_validates_shapes() -> None:
    with pytest.raises(DataError):
        run_from_ids(["q"], ["a"], np.array([[0], [0]]))
    with pytest.raises(DataError):
        run_from_ids(["q"], ["a"], np.array([[3]]))

"""Judging a search's answers: every recall figure comes from the returned ids alone.

A backend's own scores are never trusted: a system that stores vectors in reduced precision (usearch's
bf16, scalar quantisation) returns approximate scores, and a wrong neighbour whose approximate score
reaches the k-th true score would count as a tie. So the score of every returned id is recomputed
exactly (float64) from the vectors the ground truth was computed on, and recall is counted from those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.science import groundtruth, metrics


@dataclass(frozen=True, kw_only=True)
class Judged:
    """Per query: recall in the three definitions, and the shape of the answer."""

    recall: np.ndarray  # ours: distinct returned ids in the true top k, or tied with its k-th by exact score
    recall_ids: np.ndarray  # plain id-set intersection (VectorDBBench)
    recall_annb: np.ndarray  # ann-benchmarks': distance <= k-th true distance + 1e-3, repeats counted
    short: np.ndarray  # fewer than k distinct ids
    duplicated: np.ndarray  # an id returned twice


def judge_answers(ids: np.ndarray, *, base: np.ndarray, queries: np.ndarray, truth_ids: np.ndarray,
                  truth_scores: np.ndarray, k: int, metric: str) -> Judged:
    """Judge `ids` (queries x >= k, dataset numbering, -1 padding) against exact kNN (`truth_ids`,
    `truth_scores`) computed over `base` for `queries` under `metric` (cosine, ip or l2; the vectors
    as prepared for it). Only the ids are read: their scores are recomputed here from `base`."""
    answer = np.asarray(ids, dtype=np.int64)[:, :k]
    space = groundtruth.index_metric(metric)
    exact = groundtruth.pair_scores(base, queries, answer, space)
    higher = space == "ip"
    truth_distances = metrics.annb_distances(np.asarray(truth_scores)[:, :k], metric)
    short, duplicated = metrics.answer_shape(answer, k)
    return Judged(
        recall=metrics.recall_at_k(answer, truth_ids, k, exact, truth_scores, higher_is_better=higher),
        recall_ids=metrics.recall_ids(answer, truth_ids, k),
        recall_annb=metrics.recall_annb(metrics.annb_distances(exact, metric), truth_distances, k),
        short=short,
        duplicated=duplicated,
    )

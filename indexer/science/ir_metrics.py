"""Retrieval quality against relevance judgements (qrels), computed by ranx.

Conventions (trec_eval's): a judged query the run does not answer scores 0; a query with no
positive judgement is left out (its metrics are undefined); run queries without qrels are ignored.
ranx compiles its metrics with numba: the first call in a fresh environment takes tens of seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from indexer.common.errors import DataError, UserError

log = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100")

Qrels = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]


def _judged(qrels: Qrels) -> Qrels:
    """Queries with at least one relevant document; the others cannot be scored."""
    judged = {
        q: {d: int(r) for d, r in docs.items()}
        for q, docs in qrels.items()
        if any(r > 0 for r in docs.values())
    }
    dropped = len(qrels) - len(judged)
    if dropped:
        log.info(
            "ir metrics: %d of %d queries have no relevant document and are left out", dropped, len(qrels)
        )
    return judged


def per_query(
    qrels: Qrels,
    run: RunDict,
    metrics: Sequence[str] = DEFAULT_METRICS,
    query_ids: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-query metric values, aligned with `query_ids` (default: the judged queries, sorted).

    A query in `query_ids` without a relevant judgement gets NaN; a judged query missing from the run, 0.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    metrics = list(metrics)
    if not metrics:
        raise UserError("no IR metrics requested")
    judged = _judged(qrels)
    order = sorted(judged) if query_ids is None else list(query_ids)
    out = {m: np.full(len(order), np.nan) for m in metrics}
    for i, q in enumerate(order):
        if q in judged:
            for m in metrics:
                out[m][i] = 0.0
    answered = sorted(q for q in judged if run.get(q))
    if not answered:
        return out
    ranx_run = RanxRun({q: {d: float(s) for d, s in run[q].items()} for q in answered})
    try:
        evaluate(RanxQrels({q: judged[q] for q in answered}), ranx_run, metrics, return_mean=False)
    except (ValueError, KeyError) as err:
        raise UserError(f"ranx cannot compute {metrics}: {err}") from None
    position = {q: i for i, q in enumerate(order)}
    for m in metrics:
        for q, value in ranx_run.scores[m].items():
            if q in position:
                out[m][position[q]] = float(value)
    return out


def evaluate_run(qrels: Qrels, run: RunDict, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries; unanswered ones count as 0."""
    values = per_query(qrels, run, metrics)
    if not any(v.size for v in values.values()):
        raise DataError("the qrels hold no query with a relevant document: nothing to evaluate")
    return {m: float(np.mean(v)) for m, v in values.items()}


def run_from_ids(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    ids: np.ndarray,
    scores: np.ndarray | None = None,
) -> RunDict:
    """Turn a result table (row numbers into `doc_ids`, -1 padding) into a ranx run.

    The column order of `ids` is the ranking. ranx re-sorts by score, so a row keeps its scores only
    if they strictly decrease (similarities without ties); otherwise (ties, distances, none given)
    the scores become 1 / (1 + rank), which keeps the given order. Repeated ids count once, first place.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != len(query_ids):
        raise DataError(f"ids has shape {ids.shape}, expected ({len(query_ids)}, k)")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != ids.shape:
            raise DataError(f"scores has shape {scores.shape}, ids {ids.shape}")
    if len(set(query_ids)) != len(query_ids):
        raise DataError("query_ids must be unique")
    n_docs = len(doc_ids)
    if ids.size and int(ids.max(initial=-1)) >= n_docs:
        raise DataError(f"result ids reach {int(ids.max())} but there are only {n_docs} documents")
    run: RunDict = {}
    for row, q in enumerate(query_ids):
        cols = [c for c in range(ids.shape[1]) if ids[row, c] >= 0]
        seen: set[int] = set()
        kept = []
        for c in cols:
            doc = int(ids[row, c])
            if doc not in seen:
                seen.add(doc)
                kept.append(c)
        by_rank = 1.0 / (1.0 + np.arange(len(kept)))
        if scores is not None:
            given = scores[row, kept]
            if np.all(np.isfinite(given)) and np.all(np.diff(given) < 0):
                by_rank = given
        run[q] = {doc_ids[int(ids[row, c])]: float(by_rank[rank]) for rank, c in enumerate(kept)}
    return run

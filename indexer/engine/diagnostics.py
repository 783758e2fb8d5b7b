"""Why a cell loses recall, and what it costs to win it back: measured on the cell's built index.

- Cost at equal recall: for each of the spec's recall targets, the smallest ef that reaches it
  (indexer.science.equal_recall: doubling then bisection on this index), with the QPS there and, where
  the library counts them, the distance computations per query.
- Diagnostics (when the spec asks): the layer-0 graph's reachability and in-degrees for backends that
  expose their graph (indexer.science.graph), and for every backend the self-miss at each ef: how often a
  base point's own vector does not find it first. Both broken down by category and by base-LID bin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from indexer.backends import VectorIndex
from indexer.model.results import CostAtRecall, GraphDiagnostics, GroupDiagnostics, InDegree
from indexer.science import graph as graphs
from indexer.science.equal_recall import DEFAULT_MAX_EF, ef_for_targets
from indexer.science.metrics import summarize

PerQueryRecall = Callable[[int, np.ndarray], np.ndarray]  # per-query recall at an ef, of the queries picked
Timer = Callable[[int], list[float]]  # queries per second at an ef, of each timed pass


@runtime_checkable
class ExposesGraph(Protocol):
    """An index whose HNSW graph can be read out (Capabilities.graph says which backends)."""

    def graph(self) -> graphs.HnswGraph: ...


@runtime_checkable
class CountsDistances(Protocol):
    """An index whose library counts the distance computations a search does (faiss's hnsw_stats): per
    query, of an unfiltered search or, given `allowed` (a mask over the dataset's rows), a filtered one."""

    def distance_computations(self, queries: np.ndarray, k: int, ef: int,
                              allowed: np.ndarray | None = None) -> float: ...


def cost_at_recall(index: VectorIndex, queries: np.ndarray, k: int, n: int, targets: Sequence[float],
                   recall_of: PerQueryRecall, qps_at: Timer, max_ef: int = DEFAULT_MAX_EF,
                   count_distances: bool = True) -> list[CostAtRecall]:
    """Per target, the smallest ef reaching it on this index (up to min(n, max_ef), the backend's own
    ceiling: pgvector's is 1,000) on the even-numbered
    queries, its recall on the odd ones (held out), its QPS and distance computations per query; ef None
    when even the largest ef falls short."""
    if not targets:
        return []
    validation, held_out = np.arange(0, len(queries), 2), np.arange(1, len(queries), 2)
    hi = max(k, min(n, max_ef))
    found = ef_for_targets(lambda ef: float(np.mean(recall_of(ef, validation))), targets, lo=k, hi=hi)
    # the smallest ef at which neither half falls short: a figure no choice of half can flatter
    both = ef_for_targets(lambda ef: min(float(np.mean(recall_of(ef, validation))),
                                         float(np.mean(recall_of(ef, held_out))) if len(held_out) else 1.0),
                          targets, lo=k, hi=hi)
    out = []
    for target, answer in found.items():
        qps = dist = None
        qps_range: list[float] | None = None
        confirmed: dict[str, Any] = {"mean": None, "ci95": (None, None)}
        if answer.ef is not None:
            passes = qps_at(answer.ef)
            qps, qps_range = float(np.median(passes)), [min(passes), max(passes)]
            if len(held_out):
                confirmed = summarize(recall_of(answer.ef, held_out))
            if count_distances and isinstance(index, CountsDistances):  # of an unfiltered search
                dist = index.distance_computations(queries, k, answer.ef)
        held = confirmed["mean"]
        out.append(CostAtRecall(target=target, ef=answer.ef, recall=answer.recall, qps=qps, qps_range=qps_range,
                                held_out_recall=held, held_out_ci95=list(confirmed["ci95"]),
                                confirmed=answer.ef is not None and held is not None and held >= target,
                                ef_both_halves=both[target].ef, distance_computations=dist))
    return out


@dataclass(frozen=True)
class CellDiagnostics:
    """A cell's diagnostics: the graph's (None: the backend hides it) and the self-miss per ef."""

    graph: GraphDiagnostics | None
    self_miss: dict[int | None, graphs.SelfMiss]
    by_category: Callable[[int | None], list[GroupDiagnostics]]
    by_lid_bin: Callable[[int | None], list[GroupDiagnostics]]


def diagnose(index: VectorIndex, base: np.ndarray, rows: np.ndarray, efs: Sequence[int | None], *,
             space: Literal["ip", "l2"], sample: int, seed: int, data_hubness: float | None,
             labels: np.ndarray | None, label_names: Sequence[str] | None, lid: np.ndarray,
             lid_bins: int) -> CellDiagnostics:
    """Measure one built index: its graph (if exposed) and, per ef, its self-miss on a seeded sample.

    `base[rows]` are the indexed vectors (rows in the dataset's numbering), `labels`/`lid` per row."""
    vectors = base[rows]
    stats = graphs.graph_stats(index.graph()) if isinstance(index, ExposesGraph) else None
    n = len(rows)
    sampled = None if sample >= n else max(sample, min(10_000, n))
    misses = {ef: m for ef, m in zip(efs, graphs.self_miss(index.search, vectors, rows, efs, sample=sampled,
                                                          seed=seed, metric=space), strict=True)}
    graph = None
    if stats is not None:
        d = stats.in_degree
        graph = GraphDiagnostics(
            unreachable=stats.unreachable, unreachable_from_all_upper=stats.unreachable_from_all_upper,
            zero_in_degree=stats.zero_in_degree, hubness=stats.hubness, data_hubness=data_hubness,
            in_degree=InDegree(min=d.min, p1=d.p1, median=d.median, p99=d.p99, max=d.max, mean=d.mean),
        )

    def measures(ef: int | None) -> dict[str, np.ndarray]:
        """Per indexed point (in `rows` order): stranded, no in-links, missed by itself (NaN: not sampled)."""
        m = misses[ef]
        out = {"self_miss": graphs.on_rows(m.rows, m.missed.astype(np.float64), rows)}
        if stats is not None:
            order = np.argsort(stats.rows)  # graph stats are in ascending row order
            where = order[np.searchsorted(stats.rows, rows, sorter=order)]
            out["unreachable"] = stats.unreachable_mask[where].astype(np.float64)
            out["zero_in_degree"] = stats.zero_in_degree_mask[where].astype(np.float64)
        return out

    def grouped(groups: np.ndarray, order: Sequence[str]) -> Callable[[int | None], list[GroupDiagnostics]]:
        def at(ef: int | None) -> list[GroupDiagnostics]:
            return _group_rows(graphs.breakdown(measures(ef), groups, order))
        return at

    if labels is not None and label_names is not None:
        names = np.asarray(label_names, dtype=object)[labels]
        by_category = grouped(names, list(dict.fromkeys(str(x) for x in label_names)))
    else:
        by_category = _no_groups
    finite = lid[np.isfinite(lid)]
    if len(finite) and lid_bins > 1:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, lid_bins + 1)[1:-1]))
        bins, bin_names = graphs.lid_groups(lid, edges.tolist()) if len(edges) else (None, ())
        by_lid_bin = grouped(bins, bin_names) if bins is not None else _no_groups
    else:
        by_lid_bin = _no_groups
    return CellDiagnostics(graph=graph, self_miss=misses, by_category=by_category, by_lid_bin=by_lid_bin)


def _no_groups(ef: int | None) -> list[GroupDiagnostics]:
    return []


def _group_rows(stats: Sequence[graphs.GroupStat]) -> list[GroupDiagnostics]:
    """GroupStats (one per group and measure) as one GroupDiagnostics per non-empty group."""
    by_group: dict[str, dict[str, Any]] = {}
    for g in stats:
        if g.size == 0:
            continue
        entry = by_group.setdefault(g.group, {"group": g.group, "size": g.size})
        entry[g.measure] = None if np.isnan(g.mean) else float(g.mean)
    return [GroupDiagnostics.model_validate(e) for e in by_group.values()]

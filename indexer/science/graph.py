"""Diagnostics of a built HNSW graph: what its layer-0 links strand, how its in-links spread, and how
often a point's own vector fails to find it.

Why: recall against exact search says *that* an index misses, not *why*. A point that no layer-0 path
reaches from where searches start is lost to every query at every ef; a point no link points to can
only ever be a start node; a skewed in-degree (graph hubness) funnels paths through a few nodes. The
data's own k-occurrence skewness is computed beside it, so hubness the data brings (high intrinsic
dimension) can be told apart from hubness the construction adds. `self_miss` is the search-side
symptom, measured through any backend's search callable.

One representation, `HnswGraph` (indexer.model.graph), is filled by every reader (`to_model_graph` in
`indexer.backends.hnswlib_graph`; `indexer.backends.faiss_graph` for faiss). Nodes are the
index's internal ids; `labels` maps them to dataset rows, and every per-point result is reported on
dataset rows (ascending), so results from indexes built in different insertion orders line up.
No index library is imported here: the functions take arrays, a graph, or a search callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order
from scipy.stats import skew

from indexer.model.graph import HnswGraph
from indexer.science.groundtruth import pair_scores

SearchFn = Callable[[np.ndarray, int, int | None], tuple[np.ndarray, np.ndarray]]
"""(queries, k, ef) -> (ids, scores), ids in dataset numbering: any backend's `VectorIndex.search`."""

SELF_MISS_MIN_SAMPLE = 10_000  # below it the standard error of a fraction near 1% exceeds 0.1 point
SELF_TIE_RTOL = 1e-6  # a rank-1 score this close (relative to |x|^2) to the self score is a tie
_SEARCH_BLOCK = 10_000  # queries per search call, so a backend never holds the whole sample at once


# --- reachability and in-degree ---------------------------------------------------------------------


def reachable_from(adjacency: sp.csr_matrix, sources: np.ndarray) -> np.ndarray:
    """Bool (n,): the nodes some directed path from any of `sources` reaches (the sources included).

    Several sources are searched at once through one extra node linked to all of them, so the cost is
    one breadth-first search whatever their number.
    """
    adj = sp.csr_matrix(adjacency)
    n = adj.shape[0]
    src = np.unique(np.asarray(sources, dtype=np.int64))
    indptr = np.concatenate([adj.indptr.astype(np.int64), [adj.indptr[-1] + len(src)]])
    indices = np.concatenate([adj.indices.astype(np.int64), src])
    augmented = sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(n + 1, n + 1))
    reached = breadth_first_order(augmented, n, directed=True, return_predecessors=False)
    mask = np.zeros(n + 1, dtype=bool)
    mask[reached] = True
    return mask[:n]


def unreachable_internal(graph: HnswGraph) -> np.ndarray:
    """Bool (n,) over internal ids: not reached on layer 0 from the entry point.

    Which layer-0 node a search starts from depends on the query (the greedy descent of the upper
    layers); for a statistic of the graph alone the entry point itself stands in for that start (it is
    on layer 0 too). See `unreachable_from_all_upper_internal` for what no start can reach.
    """
    return ~reachable_from(graph.layer0, np.array([graph.entry_point]))


def unreachable_from_all_upper_internal(graph: HnswGraph) -> np.ndarray:
    """Bool (n,) over internal ids: reached on layer 0 from no node with a level >= 1 (nor the entry
    point). Every descent ends on one of those, so these points are lost to every query: a lower bound
    on what any descent strands, and a subset of `unreachable_internal`."""
    return ~reachable_from(graph.layer0, graph.start_nodes())


def in_degrees_internal(layer0: sp.csr_matrix) -> np.ndarray:
    """Int64 (n,) over internal ids: how many distinct other nodes link to each node on layer 0.

    A self-link and a repeated link bring no search anywhere new, so neither counts; every stored entry
    of the matrix is a link, whatever its value.
    """
    adj = sp.csr_matrix(layer0, copy=True)
    adj.sum_duplicates()
    n = adj.shape[0]
    source = np.repeat(np.arange(n), np.diff(adj.indptr))
    target = adj.indices[adj.indices != source]
    return np.bincount(target, minlength=n).astype(np.int64)


def skewness(values: np.ndarray) -> float:
    """Fisher-Pearson skewness m3 / m2^1.5 with population moments (scipy.stats.skew, bias=True).

    The biased form is the standardised third moment hubness studies report (Radovanović et al. 2010,
    scikit-hubness), so values compare with theirs. A constant distribution has no tail: 0.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    if np.ptp(v) == 0:
        return 0.0
    return float(skew(v, bias=True))


@dataclass(frozen=True, kw_only=True)
class InDegreeStats:
    """The layer-0 in-degree distribution, by its tails: p1 and min show the starved, p99 and max the hubs.
    Percentiles interpolate linearly (numpy's default)."""

    min: int
    p1: float
    median: float
    p99: float
    max: int
    mean: float

    @classmethod
    def of(cls, degrees: np.ndarray) -> InDegreeStats:
        d = np.asarray(degrees, dtype=np.int64)
        p1, median, p99 = np.percentile(d, [1, 50, 99])
        return cls(min=int(d.min()), p1=float(p1), median=float(median), p99=float(p99), max=int(d.max()),
                   mean=float(d.mean()))


@dataclass(frozen=True, eq=False, kw_only=True)
class GraphStats:
    """The graph statistics of one built index; per-point arrays follow `rows` (dataset rows, ascending)."""

    n: int
    unreachable: int  # from the entry point on layer 0 (see `unreachable_internal`)
    unreachable_from_all_upper: int  # from every node with a level >= 1: lost to every query
    zero_in_degree: int
    in_degree: InDegreeStats
    hubness: float  # skewness of the layer-0 in-degree (`skewness`)
    rows: np.ndarray
    unreachable_mask: np.ndarray
    unreachable_from_all_upper_mask: np.ndarray
    in_degrees: np.ndarray

    @property
    def zero_in_degree_mask(self) -> np.ndarray:
        return np.asarray(self.in_degrees == 0, dtype=bool)

    def to_json(self) -> dict[str, int | float]:
        """The scalars, flat (`in_degree_p99`), for a result row."""
        d = self.in_degree
        return {
            "n": self.n, "unreachable": self.unreachable,
            "unreachable_from_all_upper": self.unreachable_from_all_upper,
            "zero_in_degree": self.zero_in_degree, "hubness": self.hubness,
            "in_degree_min": d.min, "in_degree_p1": d.p1, "in_degree_median": d.median,
            "in_degree_p99": d.p99, "in_degree_max": d.max, "in_degree_mean": d.mean,
        }


def graph_stats(graph: HnswGraph) -> GraphStats:
    """Reachability, in-degree and hubness of one graph (a few breadth-first searches and a bincount)."""
    unreachable = unreachable_internal(graph)
    stranded = unreachable_from_all_upper_internal(graph)
    degrees = in_degrees_internal(graph.layer0)
    by_row = np.argsort(graph.labels, kind="stable")
    return GraphStats(
        n=graph.n, unreachable=int(unreachable.sum()), unreachable_from_all_upper=int(stranded.sum()),
        zero_in_degree=int((degrees == 0).sum()), in_degree=InDegreeStats.of(degrees),
        hubness=skewness(degrees), rows=graph.labels[by_row], unreachable_mask=unreachable[by_row],
        unreachable_from_all_upper_mask=stranded[by_row], in_degrees=degrees[by_row],
    )


# --- the data's own hubness -------------------------------------------------------------------------


def k_occurrence(knn_ids: np.ndarray, n: int) -> np.ndarray:
    """Int64 (n,): how often each point occurs in the exact kNN lists of all n points.

    `knn_ids` is (n, k): row i holds point i's exact neighbours, itself excluded (as
    `groundtruth.self_knn` returns them), numbered 0..n-1.
    """
    ids = np.asarray(knn_ids, dtype=np.int64)
    if ids.ndim != 2 or len(ids) != n:
        raise ValueError(f"knn_ids must be (n={n}, k), got {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"knn_ids must lie in [0, {n})")
    if (ids == np.arange(n)[:, None]).any():
        raise ValueError("knn_ids must exclude each point itself")
    return np.bincount(ids.ravel(), minlength=n).astype(np.int64)


def k_occurrence_skewness(knn_ids: np.ndarray, n: int) -> float:
    """Skewness of the exact k-occurrence (`skewness`, the same form as the graph's `hubness`)."""
    return skewness(k_occurrence(knn_ids, n))


# --- self search --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class SelfMiss:
    """At one ef, the sampled points a search for their own vector did not return at rank 1.

    `rows` (dataset rows, ascending) and `missed` are per sampled point, the same rows at every ef.
    """

    ef: int | None
    sampled: int
    missed_count: int
    fraction: float
    rows: np.ndarray
    missed: np.ndarray

    def to_json(self) -> dict[str, int | float | None]:
        return {"ef": self.ef, "sampled": self.sampled, "self_missed": self.missed_count,
                "self_miss": self.fraction}


def self_miss(
    search: SearchFn,
    base: np.ndarray,
    ids_of_rows: np.ndarray | None,
    ef_values: Sequence[int | None],
    sample: int | None = None,
    seed: int = 0,
    *,
    metric: Literal["ip", "l2"],
    min_sample: int = SELF_MISS_MIN_SAMPLE,
) -> tuple[SelfMiss, ...]:
    """Per ef, the fraction of indexed points whose own vector does not find them at rank 1.

    `base` holds the indexed vectors as prepared for the index, `ids_of_rows[i]` the dataset id of
    base[i] (None: i itself). `sample` None searches every point; otherwise a seeded sample of that
    many, which must be at least min(min_sample, n) (10,000 unless a caller states its own floor). Scores follow the engine: inner product (ip, higher is
    better) or squared L2 distance (l2, lower is better).

    A point counts as found when rank 1 is the point itself, or any point scoring no worse than the
    point would against itself, within 1e-6 relative to |x|^2: a duplicate at rank 1 is a tie, not a
    miss, and so (under ip, unnormalised) is a point exact search also ranks above x. Rank 1 that is -1
    or has a NaN score is a miss.
    """
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    x = np.asarray(base)
    n = len(x)
    ids = np.arange(n, dtype=np.int64) if ids_of_rows is None else np.asarray(ids_of_rows, dtype=np.int64)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} base rows")
    if sample is None or sample >= n:
        chosen = np.arange(n)
    elif sample < min(min_sample, n):
        raise ValueError(f"a self-miss sample needs at least min({min_sample}, n={n}) points, "
                         f"got {sample}")
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    queries = np.ascontiguousarray(x[chosen])
    own = ids[chosen]
    norms = np.einsum("ij,ij->i", queries.astype(np.float64), queries.astype(np.float64))
    tol = SELF_TIE_RTOL * norms
    by_row = np.argsort(own, kind="stable")
    out = []
    for ef in ef_values:
        top_id = np.empty(len(chosen), dtype=np.int64)
        for start in range(0, len(chosen), _SEARCH_BLOCK):
            got, _ = search(queries[start : start + _SEARCH_BLOCK], 1, ef)
            top_id[start : start + _SEARCH_BLOCK] = np.asarray(got)[:, 0]
        top_score = _exact_top_scores(x, ids, queries, top_id, metric)
        tied = top_score >= norms - tol if metric == "ip" else top_score <= tol
        found = (top_id == own) | ((top_id >= 0) & tied)  # NaN compares False: a miss
        missed = ~found[by_row]
        out.append(SelfMiss(ef=ef, sampled=len(chosen), missed_count=int(missed.sum()),
                            fraction=float(missed.mean()) if len(missed) else float("nan"),
                            rows=own[by_row], missed=missed))
    return tuple(out)


def _exact_top_scores(x: np.ndarray, ids: np.ndarray, queries: np.ndarray, top_id: np.ndarray,
                      metric: Literal["ip", "l2"]) -> np.ndarray:
    """The exact float64 score of each query against the point a search put first (by its id, never the
    backend's score, which a quantised store only approximates); NaN for -1 or an id not indexed."""
    by_id = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[by_id], top_id), len(ids) - 1)
    known = (top_id >= 0) & (ids[by_id][pos] == top_id)
    where = np.where(known, by_id[pos], -1)[:, None]
    return pair_scores(x, queries, where, metric)[:, 0]


# --- by group ---------------------------------------------------------------------------------------


def on_rows(rows: np.ndarray, values: np.ndarray, target_rows: np.ndarray) -> np.ndarray:
    """Float64 values laid onto `target_rows` (bools as 0/1), NaN where `rows` has no value: puts a
    sampled measure (self-miss) and a whole-index one (unreachable) on the same points."""
    r = np.asarray(rows, dtype=np.int64)
    order = np.argsort(r, kind="stable")
    sorted_rows = r[order]
    t = np.asarray(target_rows, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_rows, t), max(len(r) - 1, 0))
    hit = (sorted_rows[pos] == t) if len(r) else np.zeros(len(t), dtype=bool)
    out = np.full(len(t), np.nan)
    out[hit] = np.asarray(values, dtype=np.float64)[order][pos[hit]]
    return out


@dataclass(frozen=True, kw_only=True)
class GroupStat:
    """One measure over one group. For a boolean mask `total` is a count and `mean` a fraction."""

    group: str
    measure: str
    size: int  # points in the group
    measured: int  # of them, with a value (NaN: not measured, e.g. outside the self-miss sample)
    total: float
    mean: float  # total / measured; NaN when nothing was measured


def lid_groups(lid: np.ndarray, edges: Sequence[float]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per point the label of its LID bin, and every label in bin order, for `breakdown`.

    Bins are [e_i, e_i+1), with "< e_0" and ">= e_last" at the ends and "nan" for a LID not estimated.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) == 0 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must be strictly increasing, got {list(edges)}")
    names = (f"< {e[0]:g}", *(f"[{a:g}, {b:g})" for a, b in zip(e[:-1], e[1:], strict=True)), f">= {e[-1]:g}")
    v = np.asarray(lid, dtype=np.float64)
    labels = np.asarray(names, dtype=object)[np.digitize(v, e)]
    labels[np.isnan(v)] = "nan"
    return labels, (*names, "nan")


def breakdown(measures: Mapping[str, np.ndarray], groups: np.ndarray,
              order: Sequence[str] | None = None) -> tuple[GroupStat, ...]:
    """Each measure's count and fraction (sum and mean) within each group of points.

    Every array in `measures` and `groups` is per point, on the same points (see `on_rows`). `order`
    lists the groups to report, in order (empty groups included); default: the groups present, sorted.
    """
    g = np.asarray([str(v) for v in np.asarray(groups).ravel()], dtype=object)
    names = tuple(order) if order is not None else tuple(sorted(set(g.tolist())))
    out = []
    for group in names:
        members = g == group
        for measure, values in measures.items():
            v = np.asarray(values, dtype=np.float64)
            if v.shape != g.shape:
                raise ValueError(f"measure {measure!r} has {v.shape} values for {g.shape} group labels")
            vals = v[members]
            vals = vals[~np.isnan(vals)]
            total = float(vals.sum())
            out.append(GroupStat(group=group, measure=measure, size=int(members.sum()), measured=len(vals),
                                 total=total, mean=total / len(vals) if len(vals) else float("nan")))
    return tuple(out)

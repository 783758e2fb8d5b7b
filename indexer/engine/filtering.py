"""Filtered search in a run: each space's filters and their exact answers, a cell's filtered searches, and
what they measure.

A space's filters are computed once (indexer.science.filters) over the indexed rows, in the original
space, and widened to the dataset's numbering (a point outside the index never passes). A built index
answers each filter through its library's own mechanism (`search_filtered`, indexer.backends.base); the
answers are probes of the live index (indexer.engine.cell), measured here against exact filtered kNN:
recall of min(k, kept points) per query from the returned ids alone (violating ids removed first, and
counted), answers shorter than that, the mean number returned, and the ids the filter does not keep.
A backend whose library filters in several ways (Capabilities.filter_modes) answers in each mode its spec
entry lists, one built index serving them all; where the library counts distance computations
(diagnostics.CountsDistances) each (filter, ef) also gets its count per query.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np

from indexer.backends import BACKENDS, VectorIndex
from indexer.backends.base import FilteredSearch, ModedFilteredSearch
from indexer.common import timing
from indexer.common.errors import UserError
from indexer.common.hashing import content_key
from indexer.engine.columns import allowed_per_query
from indexer.engine.diagnostics import CountsDistances, cost_at_recall
from indexer.engine.space import Space, SpaceFilter, by_category
from indexer.engine.spec import ExperimentSpec
from indexer.model.answers import FilteredAnswer, FilteredCost
from indexer.model.filters import FilterWorkload
from indexer.model.results import CostAtRecall, DenseRow, FilteredRow
from indexer.science import filters, groundtruth, metrics
from indexer.science.judging import judge_answers


def _on_positions(spec: ExperimentSpec, s: Space, w: FilterWorkload, selectivity: float | None) -> filters.FilterSet:
    """The workload's filters over the indexed rows' positions (0..len(rows)-1)."""
    n, q, ds = len(s.rows), len(s.queries), s.dataset
    if w.kind == "label":
        if ds.labels is None or ds.query_labels is None:
            raise UserError(f"filter {w.name}: dataset {ds.name} has no labels (a label filter needs categories)")
        label = None
        if w.label is not None:
            names = list(ds.label_names or [])
            if w.label not in names:
                raise UserError(f"filter {w.name}: label {w.label!r} is not one of dataset {ds.name}'s: "
                                f"{', '.join(names[:20])}")
            label = names.index(w.label)
        return filters.label_filters(ds.labels[s.rows], ds.query_labels, label=label)
    if w.kind == "column":  # the attribute and the allowed values were checked when the dataset was loaded
        assert w.attribute is not None
        return filters.column_filters(ds.attributes[w.attribute][s.rows], allowed_per_query(w, ds))
    assert selectivity is not None
    if w.kind == "random":
        return filters.random_filters(n, q, selectivity, seed=w.seed)
    if w.kind == "range":
        return filters.range_filters(n, q, selectivity, seed=w.seed)
    return filters.cluster_filters(s.orig_base[s.rows], s.orig_queries, selectivity, clusters=w.clusters,
                                   seed=w.seed, metric=spec.metric, anti=w.kind == "anti_correlated")


def space_filters(spec: ExperimentSpec, s: Space, cache_dir: Path) -> list[SpaceFilter]:
    """Every (workload, selectivity) of the spec over space `s`, with its exact answers (cached on disk)."""
    out = []
    for w in spec.filters:
        for selectivity in (list[float | None](w.selectivities) or [None]):
            on_rows = _on_positions(spec, s, w, selectivity)
            masks = np.zeros((len(on_rows.masks), len(s.base)), dtype=bool)
            masks[:, s.rows] = on_rows.masks
            key = content_key({"space": s.key, "k": spec.k, "metric": spec.metric, "filter": w.model_dump(mode="json"),
                               "selectivity": selectivity})

            def truth(fs: filters.FilterSet = on_rows) -> dict[str, np.ndarray]:
                ids, scores = filters.filtered_knn(s.orig_base[s.rows], s.orig_queries, fs, spec.k, spec.metric)
                return {"ids": np.where(ids >= 0, s.rows[np.maximum(ids, 0)], -1), "scores": scores}

            gt = groundtruth.cached(cache_dir / "groundtruth", f"filtered-{key}", truth)
            out.append(SpaceFilter(workload=w, selectivity=selectivity, masks=masks, of_query=on_rows.of_query,
                                   truth_ids=gt["ids"], truth_scores=gt["scores"]))
    return out


FilteredSearchCall = Callable[[np.ndarray, int, int | None, np.ndarray], tuple[np.ndarray, np.ndarray]]
Mode = str | None  # a backend's filter mode; None: the backend's only way


def answer_filters(spec: ExperimentSpec, s: Space, index: VectorIndex, efs: list[int | None], modes: list[Mode],
                   out: Path, prefix: str) -> list[FilteredAnswer]:
    """Each filter at each ef in each filter mode: one timed pass, queries sharing a mask searched together,
    ids saved as `<prefix>filtered-[<mode>-]<tag>-<ef>.npy` in `out`; then, where the library counts them,
    the distance computations of an untimed pass."""
    if not s.filters:
        return []
    if not isinstance(index, FilteredSearch):
        raise UserError(f"backend {index.name} cannot filter")  # the spec refuses it first
    answers = []
    with timing.exclusive():  # timed as the sweep is: no other cell builds or times meanwhile
        for mode in modes:
            answers += _answer(spec, s, index, efs, mode, out, prefix)
    return answers


def in_mode(index: FilteredSearch, mode: Mode) -> FilteredSearchCall:
    """The index's filtered search in `mode` (None: its only way)."""
    if mode is None:
        return index.search_filtered
    # a backend with filter modes (Capabilities.filter_modes) implements ModedFilteredSearch
    return functools.partial(cast(ModedFilteredSearch, index).search_filtered, mode=mode)


def filtered_answers(spec: ExperimentSpec, s: Space, index: FilteredSearch, sf: SpaceFilter, ef: int | None,
            picked: np.ndarray | None = None, mode: Mode = None) -> np.ndarray:
    """The ids the queries `picked` (all by default) get under their filters (`sf.masks` over the index's ids),
    queries sharing a mask at once."""
    chosen = np.arange(len(s.queries)) if picked is None else picked
    ids = np.full((len(chosen), spec.k), -1, dtype=np.int64)
    masks = sf.of_query[chosen]
    search = in_mode(index, mode)
    for m in np.unique(masks):
        members = np.flatnonzero(masks == m)
        ids[members] = search(s.queries[chosen[members]], spec.k, ef, sf.masks[m])[0][:, : spec.k]
    return ids


def filtered_distances(spec: ExperimentSpec, s: Space, index: object, sf: SpaceFilter,
                       ef: int | None) -> float | None:
    """Mean distance computations per query of the queries' filtered searches at `ef`, queries sharing a mask
    counted together, as the library counts them (its own search, one thread; CountsDistances); None where it
    does not count, or at no ef."""
    if not isinstance(index, CountsDistances) or ef is None or not len(s.queries):
        return None
    total = 0.0
    for m in np.unique(sf.of_query):
        members = np.flatnonzero(sf.of_query == m)
        total += index.distance_computations(s.queries[members], spec.k, ef, allowed=sf.masks[m]) * len(members)
    return total / len(s.queries)


def filtered_costs(spec: ExperimentSpec, s: Space, index: VectorIndex, targets: list[float], max_ef: int,
                   modes: list[Mode]) -> dict[tuple[Mode, str, float | None], list[CostAtRecall]]:
    """The cost to win recall back under each filter, in each filter mode: per recall target, the smallest ef
    reaching it on the queries whose filter keeps a point, found and confirmed on halves of them as cost at
    equal recall is (indexer.engine.diagnostics), with the QPS there. An iterative mode (pgvector's) is costed
    by its ef too, the size of each batch its scan resumes with, at the cell's other settings."""
    if not s.filters or not targets or not isinstance(index, FilteredSearch):
        return {}
    out = {}
    for mode in modes:
        for sf in s.filters:
            matched = np.flatnonzero((sf.truth_ids >= 0).any(axis=1))
            if not len(matched):
                continue

            def recall_of(ef: int, picked: np.ndarray, sf: SpaceFilter = sf, matched: np.ndarray = matched,
                          mode: Mode = mode) -> np.ndarray:
                chosen = matched[picked]
                ids = filtered_answers(spec, s, index, sf, ef, chosen, mode)
                return filtered_recall(spec, s, sf, ids, chosen)[0]

            def qps_at(ef: int, sf: SpaceFilter = sf, matched: np.ndarray = matched, mode: Mode = mode) -> list[float]:
                with timing.exclusive():
                    t0 = time.perf_counter()
                    filtered_answers(spec, s, index, sf, ef, matched, mode)
                    return [len(matched) / max(time.perf_counter() - t0, 1e-9)]

            out[(mode, sf.workload.name, sf.selectivity)] = cost_at_recall(
                index, s.queries[matched], spec.k, len(s.rows), targets, recall_of, qps_at, max_ef=max_ef,
                count_distances=False)
    return out


def _answer(spec: ExperimentSpec, s: Space, index: FilteredSearch, efs: list[int | None], mode: Mode, out: Path,
            prefix: str) -> list[FilteredAnswer]:
    answers = []
    for sf in s.filters:
        for ef in efs:
            t0 = time.perf_counter()
            ids = filtered_answers(spec, s, index, sf, ef, mode=mode)
            seconds = time.perf_counter() - t0
            # counted in a pass of its own: the count runs on one thread (faiss's hnsw_stats is process-wide)
            distances = filtered_distances(spec, s, index, sf, ef) if mode is None else None
            name = (f"{prefix}filtered-{'' if mode is None else f'{mode}-'}{sf.tag}-"
                    f"{'exact' if ef is None else f'ef{ef}'}.npy")
            np.save(out / name, ids)
            answers.append(FilteredAnswer(filter=sf.workload.name, selectivity=sf.selectivity, ef=ef,
                                          seconds=seconds, neighbors=name, filter_mode=mode,
                                          distances_per_query=distances))
    return answers


def distinct_ids(ids: np.ndarray) -> np.ndarray:
    """Distinct non-negative ids per row."""
    d = np.sort(ids, axis=1)
    new = np.ones_like(d, dtype=bool)
    new[:, 1:] = d[:, 1:] != d[:, :-1]
    return np.asarray((new & (d >= 0)).sum(axis=1))


def filtered_recall(spec: ExperimentSpec, s: Space, sf: SpaceFilter, ids: np.ndarray,
                    picked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per query: recall against exact filtered kNN (NaN where the filter keeps no indexed point), and
    the ids that violate the filter. Violating ids are dropped before judging; the rest are judged by
    their ids alone (indexer.science.judging) where k points pass, counted where fewer pass (then every
    passing point is a true neighbour)."""
    q = np.arange(len(ids)) if picked is None else picked  # the queries `ids` answer
    n = sf.masks.shape[1]
    ok = (ids >= 0) & (ids < n) & sf.masks[sf.of_query[q][:, None], np.clip(ids, 0, n - 1)]
    bad = np.asarray(((ids != -1) & ~ok).sum(axis=1), dtype=np.int64)
    clean = np.where(ok, ids, -1)
    valid = (sf.truth_ids[q] >= 0).sum(axis=1)
    recall = np.full(len(ids), np.nan)
    full = valid == spec.k
    if full.any():
        recall[full] = judge_answers(clean[full], base=s.orig_base, queries=s.orig_queries[q[full]],
                                     truth_ids=sf.truth_ids[q[full]], truth_scores=sf.truth_scores[q[full]],
                                     k=spec.k, metric=spec.metric).recall
    part = (valid > 0) & ~full
    recall[part] = np.minimum(distinct_ids(clean[part]) / valid[part], 1.0)
    return recall, bad


def filtered_rows(spec: ExperimentSpec, s: Space, dense: DenseRow, answers: list[FilteredAnswer],
                  costs: list[FilteredCost], *, where: Path, named: Path) -> list[FilteredRow]:
    """The rows of a cell's filtered answers (read from `where`, named by their place in `named`)."""
    by_tag = {(sf.workload.name, sf.selectivity): sf for sf in s.filters}
    cost_of = {(c.filter_mode, c.filter, c.selectivity): c.cost_at_recall for c in costs}
    capabilities = BACKENDS[dense.backend].capabilities
    out = []
    for a in answers:
        sf = by_tag[(a.filter, a.selectivity)]
        ids = np.load(where / a.neighbors, allow_pickle=False)
        recall, bad = filtered_recall(spec, s, sf, ids)
        summary = metrics.summarize(recall)
        valid = (sf.truth_ids >= 0).sum(axis=1)
        returned = distinct_ids(np.where(ids >= 0, ids, -1))
        out.append(FilteredRow(
            dataset=dense.dataset, model=dense.model, metric=dense.metric, index_size=dense.index_size,
            reduction=dense.reduction, ordering=dense.ordering, backend=dense.backend,
            build_params=dense.build_params, k=spec.k, seed=dense.seed, cell=dense.cell,
            strategy=str(capabilities.strategy(a.filter_mode)), filter_mode=a.filter_mode, filter=a.filter,
            filter_kind=sf.workload.kind, selectivity=a.selectivity,
            kept=sf.kept_points() / max(len(s.rows), 1), ef=a.ef,
            recall=summary["mean"], recall_ci95=list(summary["ci95"]), queries=len(ids),
            queries_without_match=int((valid == 0).sum()), short_results=int((returned < valid).sum()),
            mean_returned=float(returned.mean()) if len(returned) else 0.0, violations=int(bad.sum()),
            qps=len(ids) / max(a.seconds, 1e-9), distances_per_query=a.distances_per_query,
            neighbors=str(named / a.neighbors), cost_at_recall=cost_of.get((a.filter_mode, a.filter, a.selectivity), []),
            recall_by_category=by_category(recall, s.dataset),
        ))
    return out

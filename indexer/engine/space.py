"""A space: the vectors a cell indexes and what its answers are measured against, and how it travels.

One (model, index size, reduction) of the grid. An executor shares its arrays once per space (files to
memory-map in a pool, Ray's object store) and sends the small rest with each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from indexer.datasets import Dataset
from indexer.engine.spec import ExperimentSpec
from indexer.model.filters import FilterWorkload
from indexer.model.options import ReductionSpec
from indexer.model.results import GroupRecall
from indexer.science import groundtruth, metrics

LidMethod = Literal["exact", "approximate", "sampled"]


@dataclass(frozen=True, kw_only=True)
class SpaceFilter:
    """One filter workload at one selectivity over a space: its masks in the dataset's numbering (m x n),
    each query's mask, and exact filtered kNN over the indexed rows in the original space."""

    workload: FilterWorkload
    selectivity: float | None
    masks: np.ndarray
    of_query: np.ndarray
    truth_ids: np.ndarray  # -1 where fewer than k points pass
    truth_scores: np.ndarray

    @property
    def tag(self) -> str:
        return self.workload.name if self.selectivity is None else f"{self.workload.name}-s{self.selectivity:g}"

    def kept_points(self) -> float:
        """The mean number of indexed points a query's filter keeps."""
        return float(self.masks.sum(axis=1)[self.of_query].mean()) if len(self.of_query) else 0.0


@dataclass(kw_only=True)
class Space:
    """One (model, index size, reduction): the vectors a cell indexes and what it is measured against.

    `rows` are the dataset rows in the index (all of them unless an index size subsamples); every id
    array here is in the dataset's own numbering.
    """

    dataset: Dataset
    key: str
    index_size: int | str
    rows: np.ndarray
    base: np.ndarray  # all rows, prepared and reduced (cells insert only `rows`)
    queries: np.ndarray
    gt_ids: np.ndarray  # exact kNN over `rows` in the ORIGINAL space
    gt_scores: np.ndarray
    within_ids: np.ndarray  # exact kNN over `rows` in this (reduced) space
    within_scores: np.ndarray
    lid_base: np.ndarray  # aligned with `rows`
    lid_queries: np.ndarray
    reduction: ReductionSpec
    reduction_info: dict[str, Any]
    orig_base: np.ndarray
    orig_queries: np.ndarray
    data_hubness: float | None = None  # k-occurrence skewness of the indexed points (diagnostics only)
    lid_method: LidMethod = "exact"  # exact, approximate (HNSW kNN graph) or sampled
    lid_error: tuple[float, float] | None = None  # approximate: (median relative error, Spearman) on a sample
    filters: list[SpaceFilter] = field(default_factory=list)  # the spec's filter workloads over this space
    # each query's relative contrast at k in this space (the hardest tenth's recall is read by it); None: not
    # measured (a runbook's space)
    relative_contrast: np.ndarray | None = None


# The arrays of a Space, by field name: what an executor shares once per space (files to memory-map, or
# Ray's object store); everything else in a Space is small and travels with each task.
ARRAY_FIELDS = ("rows", "base", "queries", "gt_ids", "gt_scores", "within_ids", "within_scores", "lid_base",
                "lid_queries", "orig_base", "orig_queries", "relative_contrast")
DATASET_ARRAYS = ("labels", "query_labels")


def space_arrays(s: Space) -> dict[str, np.ndarray]:
    """The large part of `s`: its arrays and the dataset's label arrays. When nothing is reduced the
    originals are the same arrays as the indexed ones, and are shared once."""
    out = {name: getattr(s, name) for name in ARRAY_FIELDS if getattr(s, name) is not None}
    if s.orig_base is s.base:
        del out["orig_base"], out["orig_queries"]
    out.update({f"dataset_{name}": getattr(s.dataset, name) for name in DATASET_ARRAYS
                if getattr(s.dataset, name) is not None})
    return out


def space_facts(s: Space) -> Space:
    """`s` without its arrays (and without the dataset's texts): what travels with every task."""
    empty: Any = np.zeros((0, 0), dtype=np.float32)
    ds = replace(s.dataset, base=empty, queries=empty, labels=None, query_labels=None, texts=None,
                 query_texts=None, titles=None, groundtruth=None, attributes={}, query_attributes={}, extra={})
    return replace(s, dataset=ds, **{name: empty for name in ARRAY_FIELDS if getattr(s, name) is not None})


def space_from(facts: Space, arrays: dict[str, np.ndarray]) -> Space:
    """The space `space_facts` and `space_arrays` were taken from, its arrays as given (memory maps,
    or read-only views into Ray's object store)."""
    labels: dict[str, Any] = {name: arrays.get(f"dataset_{name}") for name in DATASET_ARRAYS}
    ds = replace(facts.dataset, base=arrays["base"], queries=arrays["queries"], **labels)
    own: dict[str, Any] = {f.name: arrays[f.name] for f in fields(Space) if f.name in ARRAY_FIELDS and f.name in arrays}
    own.setdefault("orig_base", arrays["base"])
    own.setdefault("orig_queries", arrays["queries"])
    return replace(facts, dataset=ds, **own)


def space_metric(spec: ExperimentSpec) -> str:
    return groundtruth.index_metric(spec.metric)


def by_category(per_query: np.ndarray, ds: Dataset) -> dict[str, GroupRecall]:
    """Mean recall over the queries of each of the dataset's categories (NaN left out)."""
    if ds.query_labels is None:
        return {}
    groups = metrics.recall_by_group(per_query, ds.query_labels, ds.label_names)
    return {name: GroupRecall(recall=g["mean"], n=g["n"]) for name, g in groups.items()}

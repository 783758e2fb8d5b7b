"""Insertion orders: permutations of the base rows, the independent variable of the study.

HNSW's graph depends on the order points arrive in (Elliott & Clark 2024), so each ordering is
a pure function from what is known about the points (labels, LID, vectors) to a permutation of
range(n). `ORDERINGS` is the one registry of names: the spec's `OrderingName` is built from it and
the report's styles are checked against it. `insertion_order(name, ...)` dispatches through it.

Importing this module is cheap (numpy only; faiss is imported by the `cluster` ordering when it runs),
because the spec imports it to validate names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.common.errors import UserError

log = logging.getLogger(__name__)

KMEANS_NITER = 20


def _need(what: np.ndarray | None, n: int, ordering: str, needs: str, dataset: str | None) -> np.ndarray:
    """The array an ordering depends on, or a UserError saying which is missing or mis-sized."""
    if what is None:
        source = f"dataset {dataset}" if dataset else "the dataset"
        raise UserError(f"ordering '{ordering}' needs {needs}; {source} has none")
    arr = np.asarray(what)
    if len(arr) != n:
        raise UserError(f"ordering '{ordering}': {needs} has {len(arr)} entries for {n} points")
    return arr


def contiguous_by_label(labels: np.ndarray) -> np.ndarray:
    """Rows grouped by label, labels ascending, original order kept inside a label (stable)."""
    return np.argsort(np.asarray(labels), kind="stable").astype(np.int64)


def round_robin_by_label(labels: np.ndarray) -> np.ndarray:
    """First row of each label (labels ascending), then the second of each, ...; exhausted labels drop out."""
    labels = np.asarray(labels)
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    grouped = np.argsort(codes, kind="stable")
    sorted_codes = codes[grouped]
    starts = np.searchsorted(sorted_codes, sorted_codes, side="left")
    rank = np.empty(len(codes), dtype=np.int64)
    rank[grouped] = np.arange(len(codes)) - starts  # position of each row within its label
    # Primary key: rank within label (the round); secondary: label.
    return np.lexsort((codes, rank)).astype(np.int64)


def kmeans_labels(vectors: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """faiss k-means cluster of each row (seeded from rng), clusters = min(clusters, n).

    Public so the engine can report recall per cluster for the `cluster` ordering.
    """
    import faiss  # here, not at the top: the spec imports this module and must stay light

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    kc = max(1, min(int(clusters), n))
    seed = int(rng.integers(0, 2**31 - 1))
    km = faiss.Kmeans(d, kc, niter=KMEANS_NITER, seed=seed, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign.ravel().astype(np.int64)


def _given(n: int, **_: object) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def _random(n: int, *, rng: np.random.Generator, **_: object) -> np.ndarray:
    return rng.permutation(n).astype(np.int64)


def _lid_asc(n: int, *, lid: np.ndarray | None, dataset: str | None, **_: object) -> np.ndarray:
    values = _need(lid, n, "lid_asc", "pointwise LID", dataset).astype(np.float64)
    return np.argsort(values, kind="stable").astype(np.int64)  # NaN sorts last


def _lid_desc(n: int, *, lid: np.ndarray | None, dataset: str | None, **_: object) -> np.ndarray:
    values = _need(lid, n, "lid_desc", "pointwise LID", dataset).astype(np.float64)
    # Negating keeps NaN last and a stable sort keeps ties in ascending index order.
    return np.argsort(-values, kind="stable").astype(np.int64)


def _category(n: int, *, labels: np.ndarray | None, dataset: str | None, **_: object) -> np.ndarray:
    return contiguous_by_label(_need(labels, n, "category", "category labels", dataset))


def _category_interleaved(
    n: int, *, labels: np.ndarray | None, dataset: str | None, **_: object
) -> np.ndarray:
    return round_robin_by_label(_need(labels, n, "category_interleaved", "category labels", dataset))


def _cluster(
    n: int,
    *,
    rng: np.random.Generator,
    vectors: np.ndarray | None,
    clusters: int,
    dataset: str | None,
    **_: object,
) -> np.ndarray:
    # As big-ann-benchmarks' clustered runbooks: k-means, then clusters inserted one after another.
    x = _need(vectors, n, "cluster", "vectors", dataset)
    if n == 0:
        return np.arange(0, dtype=np.int64)
    return contiguous_by_label(kmeans_labels(x, clusters, rng))


@dataclass(frozen=True)
class Ordering:
    """One insertion order: the function that computes it and a line saying what it is."""

    permutation: Callable[..., np.ndarray]
    description: str
    # what the order is computed from beyond the seed and the labels: the points' LID, or their k-means
    # clusters (faiss); a cell's build key holds these inputs (indexer.engine.spec.Cell.build_key)
    reads: frozenset[str] = frozenset()


# The order here is the order the spec's schema and error messages list the names in.
ORDERINGS: dict[str, Ordering] = {
    "given": Ordering(_given, "as the dataset lists the points"),
    "random": Ordering(_random, "seeded permutation"),
    "lid_asc": Ordering(_lid_asc, "by pointwise LID, lowest first", frozenset({"lid"})),
    "lid_desc": Ordering(_lid_desc, "by pointwise LID, highest first", frozenset({"lid"})),
    "category": Ordering(_category, "contiguous by label"),
    "category_interleaved": Ordering(_category_interleaved, "round-robin over labels"),
    "cluster": Ordering(_cluster, "contiguous by faiss k-means cluster", frozenset({"clusters"})),
}


def reading(what: str) -> frozenset[str]:
    """The orderings computed from `what` ("lid": every point's LID; "clusters": k-means clusters)."""
    return frozenset(name for name, o in ORDERINGS.items() if what in o.reads)


def insertion_order(
    name: str,
    n: int,
    *,
    rng: np.random.Generator,
    labels: np.ndarray | None = None,
    lid: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    clusters: int = 16,
    dataset: str | None = None,
) -> np.ndarray:
    """Permutation of range(n) (int64) in which to insert the base points.

    `dataset` only names the data in error messages. Only "random" and "cluster" draw from rng.
    """
    ordering = ORDERINGS.get(name)
    if ordering is None:
        raise UserError(f"unknown ordering {name!r}; expected one of {', '.join(ORDERINGS)}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    order = ordering.permutation(
        n, rng=rng, labels=labels, lid=lid, vectors=vectors, clusters=clusters, dataset=dataset
    )
    log.debug("ordering %s over %d points", name, n)
    return order

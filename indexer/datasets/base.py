"""The one shape every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indexer.common.errors import DataError


@dataclass
class Dataset:
    """Base and query vectors plus whatever the source knows about them.

    Ids are row numbers of `base` (the dataset's own numbering). `groundtruth` is a provided exact
    neighbour table (ann-benchmarks `neighbors`), `qrels` relevance judgements keyed by query and
    document position as strings (`{"q3": {"d17": 1}}` with ids from `query_ids`/`doc_ids`).
    """

    name: str
    base: np.ndarray  # (n, d) float32
    queries: np.ndarray  # (q, d) float32
    labels: np.ndarray | None = None  # (n,) int64 category per base point
    query_labels: np.ndarray | None = None  # (q,) int64
    label_names: list[str] | None = None  # label int -> readable name
    texts: list[str] | None = None  # (n,) document text, for text corpora
    query_texts: list[str] | None = None  # (q,)
    titles: list[str] | None = None  # (n,) short display string per document
    doc_ids: list[str] | None = None  # (n,) external ids (BEIR), default str(row)
    query_ids: list[str] | None = None  # (q,)
    qrels: dict[str, dict[str, int]] | None = None
    groundtruth: np.ndarray | None = None  # (q, >=k) int64 provided exact neighbours
    model: str | None = None  # embedding model for text datasets
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def validate(self) -> Dataset:
        """Reject data no experiment can use; messages say what is wrong."""
        for what, arr in (("base", self.base), ("queries", self.queries)):
            if arr.ndim != 2:
                raise DataError(f"{self.name}: {what} must be a 2-d array, got shape {arr.shape}")
            if arr.shape[0] == 0 or arr.shape[1] == 0:
                raise DataError(f"{self.name}: {what} is empty (shape {arr.shape})")
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).any(axis=1).sum())
                raise DataError(f"{self.name}: {what} holds NaN or inf in {bad} rows")
        if self.base.shape[1] != self.queries.shape[1]:
            raise DataError(
                f"{self.name}: base has dimension {self.base.shape[1]} "
                f"but queries have dimension {self.queries.shape[1]}"
            )
        if self.labels is not None and len(self.labels) != len(self.base):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.base)} base vectors")
        self.base = np.ascontiguousarray(self.base, dtype=np.float32)
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        return self

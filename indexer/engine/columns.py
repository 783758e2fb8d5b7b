"""Column filters in a run: the user's attributes they read, checked once the dataset is loaded, and the
values each query allows.

The spec alone cannot know how many queries a file holds, so an `allowed` of the wrong length is refused
here, before any ground truth is computed, with both numbers.
"""

from __future__ import annotations

from indexer.common.errors import UserError
from indexer.datasets import Dataset
from indexer.engine.admission import Limits
from indexer.engine.spec import ExperimentSpec
from indexer.model.filters import FilterWorkload


def check_columns(spec: ExperimentSpec, ds: Dataset) -> None:
    """Every column filter's attribute was read with the dataset, and its `allowed` has one list per query
    (or one for all)."""
    q = len(ds.queries)
    for w in spec.filters:
        if w.kind != "column":
            continue
        if w.attribute not in ds.attributes:
            raise UserError(f"filter {w.name}: dataset {ds.name} has no attribute {w.attribute!r}")
        if w.allowed is None and w.attribute not in ds.query_attributes:
            raise UserError(f"filter {w.name}: dataset {ds.name} has no query-side values of attribute "
                            f"{w.attribute!r} (needed when `allowed` is omitted)")
        if w.allowed is not None and len(w.allowed) not in (1, q):
            raise UserError(f"filter {w.name}: allowed has {len(w.allowed):,} lists for {q:,} queries; give one "
                            "list per query, in query order, or one list for every query")
    masks = sum(len({tuple(sorted(set(a))) for a in allowed_per_query(w, ds)}) for w in spec.filters
                if w.kind == "column")
    if masks * len(ds.base) > Limits.max_index_bytes:  # a file's sizes are known only now (admission.py)
        raise UserError(f"the column filters hold {masks:,} distinct masks over {len(ds.base):,} points "
                        f"({masks * len(ds.base) / 2**30:.1f} GiB), over the limit of "
                        f"{Limits.max_index_bytes / 2**30:.0f} GiB for the masks: allow fewer distinct value sets")


def allowed_per_query(w: FilterWorkload, ds: Dataset) -> list[list[int]]:
    """Each query's allowed values: its list in `allowed`, the one list every query shares, or its own value."""
    q = len(ds.queries)
    if w.allowed is not None:
        return w.allowed * q if len(w.allowed) == 1 else w.allowed
    assert w.attribute is not None  # the workload's own validation requires it for a column filter
    return [[int(v)] for v in ds.query_attributes[w.attribute]]

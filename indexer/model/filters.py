"""Filter workloads: the filters a spec's queries carry (indexer.science.filters computes them and their
exact answers; indexer.engine.filtering runs them; FilteredAnswer and FilteredRow hold what they return)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from indexer.model.strict import Strict

FilterKind = Literal["label", "random", "correlated", "anti_correlated", "range"]
MAX_FILTERS = 8  # workloads per spec
MAX_SELECTIVITIES = 8  # per workload
Selectivity = Annotated[float, Field(gt=0.0, le=1.0)]


class FilterWorkload(Strict):
    """One kind of filter the queries carry, at each of its selectivities.

    - label: each query keeps the points of its own category (or of the one `label` names);
    - random: an attribute drawn per point, a filter keeping the stated fraction (scattered over the space);
    - correlated / anti_correlated: the fraction of points nearest to / farthest from the query's k-means
      cluster centre (the hard case: nothing the graph finds near the query passes);
    - range: an integer attribute (the point's position in the dataset, as an insertion time), a window
      keeping the stated fraction per query.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: FilterKind
    selectivities: list[Selectivity] = Field(default_factory=list, max_length=MAX_SELECTIVITIES,
                                             description="fractions of the points kept (all but label)")
    label: str | None = Field(default=None, description="label: the category every query keeps (default: its own)")
    clusters: int = Field(default=16, ge=1, le=4096, description="correlated kinds: k-means clusters")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="draws the attribute, the windows, k-means")

    @model_validator(mode="after")
    def _fits_kind(self) -> FilterWorkload:
        if self.kind == "label":
            if self.selectivities:
                raise ValueError("a label filter keeps a category: it takes no selectivities")
        elif not self.selectivities:
            raise ValueError(f"a {self.kind} filter needs selectivities (fractions of the points it keeps)")
        elif self.label is not None:
            raise ValueError("only a label filter names a label")
        if len(set(self.selectivities)) != len(self.selectivities):
            raise ValueError("selectivities must not repeat")
        return self

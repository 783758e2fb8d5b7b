"""Filter workloads: the filters a spec's queries carry (indexer.science.filters computes them and their
exact answers; indexer.engine.filtering runs them; FilteredAnswer and FilteredRow hold what they return)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from indexer.model.strict import Strict

FilterKind = Literal["label", "random", "correlated", "anti_correlated", "range", "column"]
MAX_FILTERS = 8  # workloads per spec
MAX_SELECTIVITIES = 8  # per workload
# A column filter's `allowed` lists travel in the spec (its key, the request body, the job's row): bounded.
MAX_ALLOWED_PER_QUERY = 1_024  # values one query allows
MAX_ALLOWED_VALUES = 100_000  # values in all of a workload's `allowed`
Selectivity = Annotated[float, Field(gt=0.0, le=1.0)]
AllowedValue = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # the attribute is compared as int64
AllowedValues = Annotated[list[AllowedValue], Field(max_length=MAX_ALLOWED_PER_QUERY)]
# An attribute names an HDF5 dataset and a file beside the vectors (`<stem>.<attribute>.npy`): no dots or slashes.
AttributeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class FilterWorkload(Strict):
    """One kind of filter the queries carry, at each of its selectivities.

    - label: each query keeps the points of its own category (or of the one `label` names);
    - random: an attribute drawn per point, a filter keeping the stated fraction (scattered over the space);
    - correlated / anti_correlated: the fraction of points nearest to / farthest from the query's k-means
      cluster centre (the hard case: nothing the graph finds near the query passes);
    - range: an integer attribute (the point's position in the dataset, as an insertion time), a window
      keeping the stated fraction per query;
    - column: the user's own integer `attribute`, stored with the dataset file; each query keeps the points
      whose value it allows: `allowed` gives one list per query in query order (a single list: every query's),
      or, without it, the query's own value of the attribute (stored with the queries).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: FilterKind
    selectivities: list[Selectivity] = Field(default_factory=list, max_length=MAX_SELECTIVITIES,
                                             description="fractions of the points kept (all but label and column)")
    label: str | None = Field(default=None, description="label: the category every query keeps (default: its own)")
    clusters: int = Field(default=16, ge=1, le=4096, description="correlated kinds: k-means clusters")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="draws the attribute, the windows, k-means")
    # left out of the dump when unset, so the specs (and cached answers) of the other kinds keep their keys
    attribute: AttributeName | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="column: the integer attribute stored with the dataset file")
    allowed: list[AllowedValues] | None = Field(
        default=None, max_length=MAX_ALLOWED_VALUES, exclude_if=lambda v: v is None,
        description="column: the values each query allows, one list per query (or one for all); "
                    "omitted: the query's own value")

    @field_validator("allowed", mode="before")
    @classmethod
    def _few_values(cls, value: Any) -> Any:
        """Counted before each value is parsed, so a huge `allowed` is refused at the cost of its length."""
        if not isinstance(value, list):
            return value  # the field's own check names the type
        if not all(isinstance(v, list) for v in value):
            raise ValueError("allowed takes lists of values: one per query, in query order, or one for every "
                             "query (e.g. [[3, 5]])")
        total = sum(len(v) for v in value)
        if total > MAX_ALLOWED_VALUES:
            raise ValueError(f"allowed holds {total:,} values in all; at most {MAX_ALLOWED_VALUES:,}")
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> FilterWorkload:
        if self.kind == "label":
            if self.selectivities:
                raise ValueError("a label filter keeps a category: it takes no selectivities")
        elif self.kind == "column":
            if self.selectivities:
                raise ValueError("a column filter keeps the values it allows: it takes no selectivities")
        elif not self.selectivities:
            raise ValueError(f"a {self.kind} filter needs selectivities (fractions of the points it keeps)")
        if self.label is not None and self.kind != "label":
            raise ValueError("only a label filter names a label")
        if len(set(self.selectivities)) != len(self.selectivities):
            raise ValueError("selectivities must not repeat")
        self._fits_column()
        return self

    def _fits_column(self) -> None:
        if self.kind != "column":
            if self.attribute is not None or self.allowed is not None:
                raise ValueError(f"only a column filter names an attribute or allowed values, not a {self.kind} filter")
            return
        if self.attribute is None:
            raise ValueError("a column filter needs `attribute`: the name of an integer attribute stored with "
                             "the dataset file")
        if self.allowed == []:
            raise ValueError("allowed must hold one list of values per query (or one list for every query), "
                             "or be omitted (each query keeps its own value)")


def column_attributes(workloads: list[FilterWorkload]) -> list[str]:
    """The attributes the column filters read for the base points: only these are loaded."""
    return sorted({w.attribute for w in workloads if w.kind == "column" and w.attribute is not None})


def query_column_attributes(workloads: list[FilterWorkload]) -> list[str]:
    """The attributes whose query-side values are read: those of column filters without `allowed`."""
    return sorted({w.attribute for w in workloads
                   if w.kind == "column" and w.attribute is not None and w.allowed is None})

"""The spec's per-space options: how vectors are reduced, how pointwise LID is estimated, which diagnostics run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from indexer.model.datasets import Seed
from indexer.model.strict import Strict as _Strict


class ReductionSpec(_Strict):
    """How vectors are shrunk before indexing; `none` keeps the native dimension."""

    name: Literal["none", "fft", "pca", "random_projection", "truncate"]
    dims: int | None = Field(default=None, ge=1)
    rule: Literal["low", "energy"] | None = Field(
        default=None, description="fft only: keep the lowest frequencies or the most energetic ones"
    )
    seed: Seed = Field(default=0, description="random_projection: seed of the Gaussian matrix")

    @model_validator(mode="after")
    def _check(self) -> ReductionSpec:
        if self.name == "none":
            if self.dims is not None or self.rule is not None:
                raise ValueError("reduction 'none' takes no dims or rule")
        elif self.dims is None:
            raise ValueError(f"reduction '{self.name}' needs dims")
        if self.rule is not None and self.name != "fft":
            raise ValueError("rule applies to the fft reduction only")
        if self.name == "fft" and self.rule is None:
            object.__setattr__(self, "rule", "low")
        return self

    @property
    def label(self) -> str:
        if self.name == "none":
            return "none"
        suffix = f"-{self.rule}" if self.name == "fft" else ""
        return f"{self.name}{suffix}-{self.dims}"


class LidSpec(_Strict):
    k: int = Field(default=20, ge=2)
    # exact all-pairs kNN up to `exact_up_to` indexed points, an HNSW kNN graph above (auto); the report
    # states the method and, when approximate, its error against exact LID on a sample
    method: Literal["auto", "exact", "approximate"] = Field(default="auto", exclude_if=lambda v: v == "auto")
    exact_up_to: int = Field(default=200_000, ge=1, exclude_if=lambda v: v == 200_000)
    sample: int = Field(
        default=5000, ge=1,
        description="base points whose LID is estimated for the report when no ordering needs every point's",
    )


class DiagnosticsSpec(_Strict):
    """Why recall is lost, measured per built index: the graph's reachability and in-degrees (backends that
    expose their graph) and, for every backend, how often a point's own vector misses it at each ef."""

    self_miss_sample: int = Field(
        default=10_000, ge=1, description="base points searched for themselves (all of them when fewer)"
    )

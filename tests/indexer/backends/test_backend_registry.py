"""The backend registry: each backend declares its name, build parameters, ef sweep and capabilities in
its own file, and the spec, the runner and the service read them from the registry. A toy backend,
registered the way one line in indexer/backends/__init__.py would register it, runs through the engine."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from pydantic import Field, ValidationError, model_validator

from indexer.backends import BACKENDS, build_param_names, declaration, new_index
from indexer.backends.declaration import Backend, BuildParams, entry_model
from indexer.backends.hnswlib_index import HnswlibParams
from indexer.common.errors import UserError
from indexer.engine import spec

REPO = Path(__file__).resolve().parents[3]


SYSTEMS = ["usearch", "voyager", "duckdb_vss", "lancedb", "milvus_lite", "chroma", "qdrant_edge", "pgvector"]


def test_each_backend_is_registered_under_its_declared_name() -> None:
    assert list(BACKENDS) == ["hnswlib", "faiss_hnsw", "exact", *SYSTEMS]
    for name, backend in BACKENDS.items():
        assert backend.name == name == backend.index.name  # type: ignore[attr-defined]


def test_the_spec_models_are_made_from_the_registry() -> None:
    assert list(spec.BACKEND_MODELS.values())[:3] == [spec.HnswlibBackend, spec.FaissHnswBackend, spec.ExactBackend]
    assert [m.backend for m in spec.BACKEND_MODELS.values()] == list(BACKENDS.values())
    assert spec.HnswlibBackend.__name__ == "HnswlibBackend" and spec.HnswlibBackend.__module__ == "indexer.engine.spec"


@pytest.mark.parametrize(("entry", "params", "efs", "label"), [
    ({"name": "hnswlib"}, {"M": 16, "ef_construction": 200}, [10], "hnswlib M=16 efC=200"),
    ({"name": "faiss_hnsw", "M": 8, "ef_search": [5, 20]}, {"M": 8, "ef_construction": 40}, [5, 20],
     "faiss_hnsw M=8 efC=40"),
    ({"name": "exact"}, {}, [None], "exact"),
])
def test_an_entry_keeps_build_parameters_apart_from_its_ef_sweep(entry: dict, params: dict, efs: list,
                                                                   label: str) -> None:
    backend = spec.BACKEND_MODELS[entry["name"]].model_validate(entry)
    assert backend.build_params() == params
    assert backend.ef_values() == efs
    assert backend.label() == label


def test_the_flat_json_shape_means_what_it_meant() -> None:
    entry = {"name": "hnswlib", "M": 16, "ef_construction": 200, "ef_search": [10]}
    assert spec.HnswlibBackend.model_validate(entry).model_dump() == entry
    assert spec.HnswlibBackend.model_validate({"name": "hnswlib"}).model_dump() == entry


def test_build_parameter_names_are_each_registered_name_once_in_registry_order() -> None:
    names = build_param_names()
    assert names[:2] == ["M", "ef_construction"] and len(names) == len(set(names))
    assert set(names) == {f for b in BACKENDS.values() for f in b.params.model_fields}


def test_every_system_names_its_extra_and_every_hnsw_backend_names_m_and_ef_construction() -> None:
    for name in SYSTEMS:
        backend = BACKENDS[name]
        assert backend.library.extra is not None, name
        assert {"M", "ef_construction"} <= set(backend.params.model_fields), name


@pytest.mark.parametrize("bad", [{"M": True}, {"M": 1}, {"M": 16.0}, {"efC": 40}])
def test_a_parameter_model_is_strict(bad: dict) -> None:
    with pytest.raises(ValidationError):
        HnswlibParams.model_validate(bad)


def test_rules_across_build_parameters_run_when_the_spec_is_read() -> None:
    class Range(BuildParams):
        lo: int = 1
        hi: int = 2

        @model_validator(mode="after")
        def _ordered(self) -> Range:
            if self.lo > self.hi:
                raise ValueError("lo must not exceed hi")
            return self

    model = entry_model(_declare(declaration, "ranged", Range, object), module=__name__)
    assert model.model_validate({"name": "ranged", "hi": 5}).build_params() == {"lo": 1, "hi": 5}
    with pytest.raises(ValidationError, match="lo must not exceed hi"):
        model.model_validate({"name": "ranged", "lo": 3})


def test_an_index_is_opened_only_with_parameters_its_model_accepts() -> None:
    with pytest.raises(ValidationError):
        new_index("hnswlib", 4, "ip", params={"M": 1, "ef_construction": 10}, seed=0)


def test_a_backend_refuses_a_space_it_does_not_declare(monkeypatch: pytest.MonkeyPatch) -> None:
    l2_only = _declare(declaration, "l2_only", BuildParams, object, spaces=frozenset({"l2"}))
    monkeypatch.setitem(BACKENDS, "l2_only", l2_only)
    with pytest.raises(UserError, match="cannot search by ip"):
        new_index("l2_only", 4, "ip", params={}, seed=0)


def test_reading_a_spec_imports_no_index_library() -> None:
    code = ("import sys, indexer.engine.spec; "
            "print(sorted(m for m in ('faiss', 'hnswlib', 'scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- a toy backend through the whole engine ---------------------------------------------------------------


def _declare(declared_in: ModuleType, name: str, params: type[BuildParams], index: Any,
             spaces: frozenset[str] = frozenset({"ip", "l2"}), ef_search: tuple[int, ...] | None = None) -> Backend:
    """A declaration made with `declared_in` (indexer.backends.declaration, as imported by the engine in use)."""
    caps = declared_in.Capabilities(spaces=frozenset(spaces), order_controlled=True, deterministic=True,
                                    graph=False, seeded=False)
    library = declared_in.Library(distribution="numpy", module="numpy")
    backend: Backend = declared_in.Backend(name=name, params=params, ef_search=ef_search, capabilities=caps,
                                           index=index, library=library)
    return backend


def _toy_backend(declared_in: ModuleType) -> Backend:
    """What a new backend file holds: a parameter model, an index class, a declaration."""

    class ToyParams(declared_in.BuildParams):  # type: ignore[name-defined, misc]
        leaf_size: int = Field(default=8, ge=1)  # decides nothing here; it only has to travel

    class ToyIndex:
        """Exact search in numpy, scored as the protocol says (ip: higher is better; l2: squared)."""

        name = "toy"

        def __init__(self, dim: int, space: str, *, seed: int, search_threads: int, leaf_size: int) -> None:
            self.space = space

        def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
            self.vectors = np.asarray(vectors[order], dtype=np.float32)
            self.ids = np.asarray(order, dtype=np.int64)

        def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
            q, v = queries.astype(np.float64), self.vectors.astype(np.float64)
            if self.space == "ip":
                scores = q @ v.T
                top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            else:
                scores = (q**2).sum(1)[:, None] - 2 * q @ v.T + (v**2).sum(1)[None, :]
                top = np.argsort(scores, axis=1, kind="stable")[:, :k]
            return self.ids[top], np.take_along_axis(scores, top, axis=1).astype(np.float32)

        def nbytes(self) -> int:
            return int(self.vectors.nbytes)

        def save(self, path: Path) -> None:
            with open(path, "wb") as f:
                np.savez(f, vectors=self.vectors, ids=self.ids)

        def load(self, path: Path, n: int) -> None:
            with np.load(path) as saved:
                self.vectors, self.ids = saved["vectors"], saved["ids"]

        def close(self) -> None:
            self.closed = True

    return _declare(declared_in, "toy", ToyParams, ToyIndex, ef_search=(1, 2))


@pytest.fixture
def engine_with_toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """The engine imported afresh with the toy registered before the spec reads the registry, as one line in
    indexer/backends/__init__.py would register it. The modules imported before come back afterwards."""
    ours = [name for name in sys.modules if name == "indexer" or name.startswith("indexer.")]
    for name in ours:
        monkeypatch.delitem(sys.modules, name)
    registry = importlib.import_module("indexer.backends")
    toy = _toy_backend(importlib.import_module("indexer.backends.declaration"))
    monkeypatch.setitem(registry.BACKENDS, "toy", toy)  # the one line a real backend adds to the registry
    try:
        yield {name.rsplit(".", 1)[1]: importlib.import_module(f"indexer.{name}")
               for name in ("engine.spec", "engine.runner", "service.artifacts")}
    finally:  # drop the fresh modules, so that monkeypatch restores the ones every other test uses
        for name in [n for n in sys.modules if n == "indexer" or n.startswith("indexer.")]:
            del sys.modules[name]


def test_a_toy_backend_runs_through_spec_runner_and_service(engine_with_toy: dict[str, ModuleType],
                                                            tmp_path: Path) -> None:
    runner, artifacts = engine_with_toy["runner"], engine_with_toy["artifacts"]
    spec_ = engine_with_toy["spec"].parse_spec({
        "name": "toy",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 80,
                    "queries_per_subspace": 10, "ambient_dim": 8, "seed": 1},
        "k": 5, "lid": {"k": 5},
        "backends": [{"name": "toy", "leaf_size": 4}, {"name": "exact"}],
    })
    toy = spec_.backends[0]
    assert toy.label() == "toy leaf_size=4"
    assert '{"ef_search":[1,2],"leaf_size":4,"name":"toy"}' in spec_.canonical_json()

    cache = tmp_path / "cache"
    result = runner.run(spec_, cache_dir=cache)
    toy_rows = [r for r in result.rows if r["backend"] == "toy"]
    assert [r["ef"] for r in toy_rows] == [1, 2]  # one build served the toy's own sweep
    assert all(r["leaf_size"] == 4 and r["recall"] == pytest.approx(1.0) for r in toy_rows)  # it is exact
    assert {r["backend"] for r in result.rows} == {"toy", "exact"}

    record = next(r for r in result.indexes if r["backend"] == "toy")
    assert record["params"] == {"leaf_size": 4}
    loaded = artifacts.open_index(Path(record["path"]), data_dir=cache)
    ids, _ = loaded.search(loaded.held_out_queries(), spec_.k, None)
    np.testing.assert_array_equal(ids, np.load(toy_rows[0]["neighbors"]))

"""What a backend declares in its own file, and the spec entry made from that declaration.

Each backend file (hnswlib_index.py, faiss_hnsw.py, exact.py) ends with one `Backend`: its name, its
build-parameter model, its default ef sweep (the search parameters, kept apart so that one build
serves the whole sweep), its capabilities and its index class. The registry (indexer.backends) lists
the declarations; the spec, the runner and the service read a backend's parameters from there and
never name them. Nothing here imports an index library: the spec imports every declaration at start-up.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import importlib.util
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

from annotated_types import Le
from pydantic import Field, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from indexer.backends.precision import FULL, PRECISION_FIELD, RESCORE_FIELD
from indexer.backends.presets import PRESET_FIELDS, PRESETS, preset_names
from indexer.common.errors import UserError
from indexer.model.strict import MAX_VALUE_CHARS, Strict, clip

if TYPE_CHECKING:
    from indexer.backends.base import VectorIndex

Space = Literal["ip", "l2"]  # what an index searches by; a spec's cosine is ip over normalised vectors
MAX_EF_SEARCH = 64  # ef values in one sweep
SEARCH_FIELD = "ef_search"  # the one search parameter: a sweep of ef, served by one build
# Ceilings on every backend's parameters, checked when the spec is validated: a cell's memory and time grow
# with each (ef_search 1e9 took 7 GiB on 400 points), and no library refuses them itself. A library's own
# lower limit (pgvector's) stays in its model.
MAX_EF = 4096  # an ef_search value; also the API's max_ef for a search request (indexer.settings)
MAX_M = 512
MAX_EF_CONSTRUCTION = 4096
CEILINGS = {"M": MAX_M, "ef_construction": MAX_EF_CONSTRUCTION}  # build parameters, by name
PRESET_FIELD = "preset"  # names a system whose default M, ef_construction and ef sweep fill the entry
FILTER_MODE_FIELD = "filter_mode"  # the filtering modes one build answers in, for a backend with several
# how a backend answers a filtered search (base.FilteredSearch: a query with a mask over the dataset's rows), by
# the library's own mechanism:
# - "in_graph": the graph search skips points that do not pass while still traversing them (their links
#   are followed, they are never returned): hnswlib's filter functor, faiss's IDSelector on an HNSW index;
# - "pre": only passing points are searched at all, e.g. brute force over the passing subset;
# - "post": an unfiltered search for more than k (oversampling), then the points that do not pass dropped;
# - "iterative": the system itself widens the search until k points pass.
FilterStrategy = Literal["pre", "post", "in_graph", "iterative"]
if TYPE_CHECKING:  # a Literal over a registry's keys is known only at run time
    PresetName = str
else:  # the preset names, so the schema lists them as an enum
    PresetName = Literal[tuple(PRESETS)]


class BuildParams(Strict):
    """A backend's build parameters: everything that decides the built index, and nothing else.

    In a spec they stand flat beside `name` and `ef_search`; rows and index records carry them as a
    mapping whose keys only the backend knows.
    """

    def label(self) -> str:
        """The parameters in a few characters, for progress messages and titles: an HNSW graph's as
        `M=16 efC=200`, then any other choice that differs from its default by its value (`f32`, `halfvec`);
        a backend without graph parameters names each (`leaf_size=4`)."""
        values = self.model_dump()
        graph = [f"M={values.pop('M')}"] if "M" in values else []
        graph += [f"efC={values.pop('ef_construction')}"] if "ef_construction" in values else []
        if not graph:
            return " ".join(f"{k}={v}" for k, v in values.items())
        fields = type(self).model_fields
        return " ".join(graph + [f"{k}={v}" if k == RESCORE_FIELD else str(v)
                                 for k, v in values.items() if v != fields[k].default])


@dataclass(frozen=True)
class FilterModes:
    """A library's ways to filter when it has more than one, each a search-time setting of one built index.

    A spec's backend entry lists the modes to answer in (`filter_mode`), one build serving them all as it
    serves the ef sweep; `settings` are the mode's other search-time settings (pgvector's
    hnsw.max_scan_tuples), one value per cell. None of it decides the build: it joins the probe key.
    """

    strategies: Mapping[str, FilterStrategy]  # mode -> how it filters (the backend cites its source); the
    # library's own default first
    settings: type[Strict] | None = None  # fields with defaults: the index takes them as constructor keywords

    @property
    def default(self) -> str:
        return next(iter(self.strategies))


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, for the engine and the report to ask instead of naming backends."""

    spaces: frozenset[Space]  # the spaces it can search by
    # the library inserts the points one after another in this run's insertion order (one thread), so an
    # ordering is what it saw; False: it batches or reorders, and its rows stay out of ordering comparisons
    order_controlled: bool
    deterministic: bool  # the same data, spec and seed build the same index every time
    graph: bool  # its graph can be read out (see hnswlib_graph)
    seeded: bool  # takes a seed: distinct spec seeds build distinct indexes
    servable: bool = True  # the built index is saved in its cell, so the API can open and search it
    # how it answers a filtered search by default (FilterStrategy); None: it cannot filter, and its index does
    # not implement base.FilteredSearch
    filtering: FilterStrategy | None = None
    # its library's other ways to filter (base.ModedFilteredSearch); None: one way, `filtering`
    filter_modes: FilterModes | None = None
    # what it does on a delete (base.Mutable: inserts and deletes on a built index; a runbook, indexer.engine.churn),
    # by the library's own mechanism, cited from its source in the backend's file:
    # - "tombstone": the point is marked deleted and never returned, but stays in the graph and keeps routing;
    # - "repair": as tombstone, and a later insert takes a deleted point's place and relinks its neighbours;
    # - "compact": the point is removed from the index's storage;
    # - "none": a built index cannot change: in a runbook it runs only as the rebuild baseline.
    # None: not declared; the backend cannot run a runbook, and its index does not implement base.Mutable.
    deletes: Literal["tombstone", "repair", "compact", "none"] | None = None

    def __post_init__(self) -> None:
        if self.filter_modes is not None and self.filtering != self.filter_modes.strategies[self.filter_modes.default]:
            raise ValueError("Capabilities.filtering must be the strategy of the default filter mode")

    def strategy(self, mode: str | None) -> FilterStrategy | None:
        """How the backend filters in `mode` (None: its only way)."""
        if mode is None or self.filter_modes is None:
            return self.filtering
        return self.filter_modes.strategies[mode]


@dataclass(frozen=True)
class Library:
    """The package a backend runs on: its version goes in every row, its extra in the missing-package error."""

    distribution: str  # the name importlib.metadata knows (faiss-cpu, hnswlib, chromadb)
    module: str  # the name it is imported by
    extra: str | None = None  # the project's pip extra that installs it; None: a core dependency
    # the other packages its extra installs and the backend needs too, (distribution, module) each:
    # duckdb's vss extension, milvus-lite's client
    companions: tuple[tuple[str, str], ...] = ()

    def installed(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        """The distributions among it and its companions that are not installed (empty when all are)."""
        return [distribution for distribution, module in ((self.distribution, self.module), *self.companions)
                if importlib.util.find_spec(module) is None]

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def require(self, backend: str) -> None:
        """A UserError naming the extra to install when the library is not there."""
        if not self.installed():
            raise missing_packages_error({backend: self})


def missing_packages_error(missing: Mapping[str, Library]) -> UserError:
    """One error for every backend whose package is missing (backend name -> its library), naming each package
    and the one command that installs them all: the project with their extras (a core package comes back
    with the project itself)."""
    backends = list(missing)
    packages = list(dict.fromkeys(package for library in missing.values()
                                  for package in library.missing() or [library.distribution]))
    extras = sorted({library.extra for library in missing.values() if library.extra})
    how = f"pip install -e '.[{','.join(extras)}]'" if extras else "pip install -e ."
    if len(backends) == 1 and len(packages) == 1:
        return UserError(f"backend {backends[0]} needs the package {packages[0]}, which is not installed: {how}")
    if len(backends) == 1:
        return UserError(f"backend {backends[0]} needs the packages {', '.join(packages)}, which are not "
                         f"installed: {how}")
    return UserError(f"backends {', '.join(backends)} need the packages {', '.join(packages)}, which are not "
                     f"installed: {how}")


@dataclass(frozen=True)
class Backend:
    """One backend, as its own file declares it."""

    name: str
    params: type[BuildParams]
    ef_search: tuple[int, ...] | None  # the default sweep; None: searched once, with no parameter
    capabilities: Capabilities
    # the index class: index(dim, space, seed=library seed, search_threads=n, **build parameters)
    index: Callable[..., VectorIndex]
    library: Library
    max_ef: int = MAX_EF  # the largest ef_search value: the shared ceiling, or the library's own when lower
    # seconds to build, relative to hnswlib's at the same n, dims, M and ef_construction (admission's cost model,
    # indexer.engine.work; measured by bench/bench_work.py): a database's inserts, server and files cost more
    build_cost: float = 1.0
    # the build parameters as a cell's key spells them, where a parameter was renamed after cells were built
    # under its earlier name (voyager's dtype, now precision); None: as the model dumps them
    key_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def precisions(self) -> tuple[str, ...]:
        """The precisions its index stores vectors in (indexer.backends.precision): its `precision` field's
        values, or f32 alone for a backend without the parameter."""
        field = self.params.model_fields.get(PRECISION_FIELD)
        return tuple(get_args(field.annotation)) if field is not None else (FULL,)


class BackendEntry(Strict):
    """One backend in a spec: `name`, its build parameters and its ef sweep, flat in one mapping.

    Each registered backend has its own subclass, made by `entry_model`, which knows its declaration.
    An HNSW backend's entry also takes `preset`: a system whose defaults fill every one of M,
    ef_construction and ef_search the entry leaves out (indexer.backends.presets).
    """

    name: str
    backend: ClassVar[Backend]

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the fields the entry leaves out from its preset; fields given explicitly win.

        Runs before the fields are read, so the filled values are checked like typed ones and the entry
        keeps `preset` only as the record of where they came from.
        """
        if not isinstance(data, dict) or data.get(PRESET_FIELD) is None:
            return data
        backend: Backend | None = getattr(cls, "backend", None)
        if backend is None:
            return data
        # Custom errors carry no "Value error, " prefix: the spec clips each message to MAX_ECHO_CHARS, and
        # every preset name has to fit in it.
        if not takes_preset(backend):
            raise PydanticCustomError("preset_not_applicable", "only HNSW backends take a preset: {presets}",
                                      {"presets": ", ".join(preset_names())})
        preset = PRESETS.get(data[PRESET_FIELD]) if isinstance(data[PRESET_FIELD], str) else None
        if preset is None:
            raise PydanticCustomError("unknown_preset", "unknown preset; the presets are: {presets}",
                                      {"presets": ", ".join(preset_names())})
        filled: dict[str, Any] = {
            "M": preset.M, "ef_construction": preset.ef_construction, SEARCH_FIELD: list(preset.ef_search),
        }
        return {**filled, **data}

    @model_validator(mode="before")
    @classmethod
    def _filter_modes_named(cls, data: Any) -> Any:
        """`filter_mode` as a list (one mode may be given alone), each mode one the backend has: a mode it
        lacks, or any mode for a backend that filters one way only, is refused naming what it has."""
        if not isinstance(data, dict) or FILTER_MODE_FIELD not in data:
            return data
        backend: Backend | None = getattr(cls, "backend", None)
        if backend is None:
            return data
        modes = backend.capabilities.filter_modes
        if modes is None:
            raise PydanticCustomError(
                "no_filter_modes", "{name} filters one way only ({strategy}), so it takes no filter_mode",
                {"name": backend.name, "strategy": str(backend.capabilities.filtering)})
        given = data[FILTER_MODE_FIELD]
        given = [given] if isinstance(given, str | bool) else given
        if isinstance(given, list):
            # YAML 1.1 reads a bare `off` as false (and `on` as true): a mode named off is meant
            given = ["off" if m is False and "off" in modes.strategies else m for m in given]
            for mode in given:
                if not isinstance(mode, str) or mode not in modes.strategies:
                    raise PydanticCustomError(
                        "unknown_filter_mode", "{name} has no filter mode {mode}; its modes: {modes}",
                        {"name": backend.name, "mode": clip(repr(mode), MAX_VALUE_CHARS),
                         "modes": ", ".join(modes.strategies)})
            if len(set(map(str, given))) != len(given):
                raise PydanticCustomError("repeated_filter_mode", "filter_mode must not repeat a mode", {})
        return {**data, FILTER_MODE_FIELD: given}

    @model_validator(mode="before")
    @classmethod
    def _precision_shipped(cls, data: Any) -> Any:
        """A precision the backend does not ship is refused naming those it does; a backend without the
        parameter stores f32 and takes none. (A parameter's earlier name, usearch's dtype, is left to its model.)"""
        if not isinstance(data, dict) or PRECISION_FIELD not in data:
            return data
        backend: Backend | None = getattr(cls, "backend", None)
        if backend is None:
            return data
        if PRECISION_FIELD not in backend.params.model_fields:
            raise PydanticCustomError("no_precision", "{name} stores {full} only and takes no precision",
                                      {"name": backend.name, "full": FULL})
        given = data[PRECISION_FIELD]
        if not isinstance(given, str) or given not in backend.precisions():
            raise PydanticCustomError(
                "unknown_precision", "{name} has no precision {value}; its precisions: {precisions}",
                {"name": backend.name, "value": clip(repr(given), MAX_VALUE_CHARS),
                 "precisions": ", ".join(backend.precisions())})
        return data

    @model_validator(mode="before")
    @classmethod
    def _rescore_offered(cls, data: Any) -> Any:
        """`rescore` for a backend whose system has no re-ranking of its own is refused saying so."""
        if not isinstance(data, dict) or RESCORE_FIELD not in data:
            return data
        backend: Backend | None = getattr(cls, "backend", None)
        if backend is not None and RESCORE_FIELD not in backend.params.model_fields:
            raise PydanticCustomError("no_rescore", "{name} has no rescoring of its own, so it takes no rescore",
                                      {"name": backend.name})
        return data

    def build(self) -> BuildParams:
        """The build parameters as the backend's own model."""
        model = self.backend.params
        return model.model_validate({f: getattr(self, f) for f in model.model_fields})

    def build_params(self) -> dict[str, Any]:
        """The build parameters as a mapping: what rows and index records carry, whatever the backend."""
        return self.build().model_dump()

    def ef_values(self) -> list[int | None]:
        """The searches one build serves: its ef sweep, or [None] for a backend with no search parameter."""
        if self.backend.ef_search is None:
            return [None]
        return list(getattr(self, SEARCH_FIELD))

    def filter_modes(self) -> list[str | None]:
        """The modes its filtered searches run in: the entry's, or [None] for a backend with one way."""
        if self.backend.capabilities.filter_modes is None:
            return [None]
        return list(getattr(self, FILTER_MODE_FIELD))

    def filter_settings(self) -> dict[str, Any]:
        """The search-time settings beside the modes (FilterModes.settings), as the index's keywords."""
        modes = self.backend.capabilities.filter_modes
        if modes is None or modes.settings is None:
            return {}
        return {f: getattr(self, f) for f in modes.settings.model_fields}

    @classmethod
    def search_time_fields(cls) -> set[str]:
        """The fields that decide only filtered searches: kept out of the build key, in the probe key."""
        modes = cls.backend.capabilities.filter_modes
        if modes is None:
            return set()
        return {FILTER_MODE_FIELD, *(modes.settings.model_fields if modes.settings is not None else ())}

    def preset_name(self) -> str | None:
        """The preset that filled its parameters (None: none; a backend without presets has none)."""
        preset = getattr(self, PRESET_FIELD, None)
        return str(preset) if preset else None

    def label(self) -> str:
        """The backend, its preset and what it is built with: `hnswlib preset=pgvector M=16 efC=64`."""
        preset = self.preset_name()
        parts = [self.name, f"preset={preset}" if preset else "", self.build().label()]
        return " ".join(part for part in parts if part)

    @model_validator(mode="after")
    def _params_hold(self) -> BackendEntry:
        self.build()  # the fields were copied from the backend's model: its rules across fields run too
        return self


def takes_preset(backend: Backend) -> bool:
    """Whether a preset applies: the backend builds a graph from M and ef_construction and sweeps ef."""
    return backend.ef_search is not None and all(f in backend.params.model_fields for f in PRESET_FIELDS)


def _is_none(value: Any) -> bool:
    return value is None


def _capped(name: str, info: FieldInfo) -> FieldInfo:
    """A build parameter's field with its ceiling (CEILINGS), or its model's own when that is lower.

    Applied in the spec's entry, so the one rule covers every backend, whatever its own file declares.
    """
    ceiling = CEILINGS.get(name)
    if ceiling is None:
        return info
    own = [m.le for m in info.metadata if isinstance(m, Le) and isinstance(m.le, int)]
    field = copy.copy(info)  # the backend's model keeps its own field
    field.metadata = [m for m in info.metadata if not isinstance(m, Le)] + [Le(min([ceiling, *own]))]
    return field


def entry_model(backend: Backend, module: str) -> type[BackendEntry]:
    """The spec's model of `backend`: `name`, its build parameters, then its ef sweep when it has one.

    An HNSW backend's model also has `preset`, left out of dumps when unset, so a spec without one keeps
    the canonical JSON (and the content key) it had before presets existed.
    Named `<Name>Backend` (hnswlib -> HnswlibBackend) and published in `module`, where pickle finds it.
    """
    fields: dict[str, Any] = {"name": (Literal[backend.name], ...)}
    if takes_preset(backend):
        fields[PRESET_FIELD] = (PresetName | None, Field(
            default=None, exclude_if=_is_none,
            description="a system whose default M, ef_construction and ef sweep fill the fields left out",
        ))
    fields.update({f: (info.annotation, _capped(f, info)) for f, info in backend.params.model_fields.items()})
    if backend.ef_search is not None:
        default = list(backend.ef_search)
        fields[SEARCH_FIELD] = (
            list[Annotated[int, Field(ge=1, le=backend.max_ef)]],
            Field(default_factory=lambda: list(default), min_length=1, max_length=MAX_EF_SEARCH),
        )
    modes = backend.capabilities.filter_modes
    if modes is not None:
        # left out of dumps at their defaults, so a spec that names no mode keeps its content key
        default_modes = [modes.default]
        fields[FILTER_MODE_FIELD] = (list[Literal[tuple(modes.strategies)]], Field(  # type: ignore[misc]
            default_factory=lambda: list(default_modes), min_length=1, max_length=len(modes.strategies),
            exclude_if=lambda v: v == default_modes,
            description="the filtering modes the filtered searches run in, one build serving them all: "
                        + ", ".join(f"{m} ({s})" for m, s in modes.strategies.items())))
        for f, info in (modes.settings.model_fields.items() if modes.settings is not None else ()):
            field = copy.copy(info)
            field.exclude_if = functools.partial(operator.eq, info.default)
            fields[f] = (info.annotation, field)
    class_name = "".join(part.capitalize() for part in backend.name.split("_")) + "Backend"
    model = create_model(class_name, __base__=BackendEntry, __module__=module, **fields)
    model.backend = backend
    return model

"""Bounds on a spec's total work: every backend parameter has a ceiling, checked when the spec is read, and
every float of the spec is finite. The fields are found by walking the models, not listed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.backends import BACKENDS
from indexer.backends.declaration import CEILINGS, MAX_EF, SEARCH_FIELD, takes_preset
from indexer.backends.presets import PRESETS
from indexer.engine.spec import BACKEND_MODELS, ExperimentSpec, SpecError, parse_spec
from indexer.settings import Settings
from tests.nonfinite import NON_FINITE, finite_errors, float_fields

SWEPT = [name for name, backend in BACKENDS.items() if backend.ef_search is not None]
# pgvector's own limits are lower (src/hnsw.h: m <= 100, ef_construction <= 1000, ef_search <= 1000); its
# hnsw.max_scan_tuples, a filtered search's setting, is an int GUC up to INT_MAX (src/hnsw.c, v0.8.6)
OWN_LIMITS = {"pgvector": {"M": 100, "ef_construction": 1000, SEARCH_FIELD: 1000, "max_scan_tuples": 2**31 - 1}}


def _limit(backend: str, parameter: str) -> int:
    own = OWN_LIMITS.get(backend, {})
    return own[parameter] if parameter in own else MAX_EF if parameter == SEARCH_FIELD else CEILINGS[parameter]


def _spec(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"name": "t", "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "ambient_dim": 8},
            "backends": [entry], **changes}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


def _bounded(backend: str) -> list[str]:
    """The backend's integer parameters in the spec: its build parameters and its ef sweep."""
    fields = [f for f, info in BACKENDS[backend].params.model_fields.items() if info.annotation is int]
    return fields + ([SEARCH_FIELD] if backend in SWEPT else [])


def _maximum(schema: dict[str, Any]) -> int | None:
    return schema.get("maximum", schema.get("items", {}).get("maximum"))


# ---- ceilings on backend parameters --------------------------------------------------------------


def test_every_integer_parameter_of_every_backend_has_a_ceiling_in_the_schema() -> None:
    found = []
    for name, model in BACKEND_MODELS.items():
        properties = model.model_json_schema()["properties"]
        for field, schema in properties.items():
            if "integer" in (schema.get("type"), schema.get("items", {}).get("type")):
                found.append((name, field))
                assert _maximum(schema) == _limit(name, field), (name, field, schema)
    assert {(name, field) for name in SWEPT for field in _bounded(name)} <= set(found)


@pytest.mark.parametrize("backend", SWEPT)
def test_each_parameter_over_its_ceiling_is_refused_naming_it_the_value_and_the_limit(backend: str) -> None:
    for field in _bounded(backend):
        limit = _limit(backend, field)
        over = 1_000_000_000
        value: Any = [over] if field == SEARCH_FIELD else over
        where = f"backends.0.{backend}.{field}" + (".0" if field == SEARCH_FIELD else "")
        assert _error(_spec({"name": backend, field: value})) == (
            f"invalid spec: {where}: Input should be less than or equal to {limit}, got {over}"
        )


@pytest.mark.parametrize("backend", SWEPT)
def test_every_parameter_at_its_ceiling_is_accepted(backend: str) -> None:
    entry = {"name": backend, **{f: _limit(backend, f) for f in _bounded(backend)}}
    entry[SEARCH_FIELD] = [_limit(backend, SEARCH_FIELD)]
    spec = parse_spec(_spec(entry))
    assert spec.backends[0].ef_values() == [_limit(backend, SEARCH_FIELD)]


def test_the_ef_ceiling_is_the_apis_max_ef() -> None:
    """One number: a search request's ef and a spec's ef_search are held to the same ceiling."""
    assert Settings().max_ef == MAX_EF
    assert _maximum(BACKEND_MODELS["faiss_hnsw"].model_json_schema()["properties"][SEARCH_FIELD]) == MAX_EF


def test_the_advise_grid_has_the_same_ceilings() -> None:
    assert _error(_spec({"name": "hnswlib"}, advise={"M": [1000], "ef_construction": [5000]})) == (
        f"invalid spec: advise.M.0: Input should be less than or equal to {CEILINGS['M']}, got 1000; "
        f"advise.ef_construction.0: Input should be less than or equal to {CEILINGS['ef_construction']}, got 5000"
    )


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_stays_within_the_ceilings_of_every_backend_that_takes_one(preset: str) -> None:
    for name, backend in BACKENDS.items():
        if takes_preset(backend):
            parse_spec(_spec({"name": name, "preset": preset}))


# ---- finite floats ---------------------------------------------------------------------------------


FLOAT_FIELDS = float_fields(ExperimentSpec)


def test_the_walk_finds_the_floats_of_the_spec() -> None:
    names = {(model.__name__, field) for model, field in FLOAT_FIELDS}
    assert {("SyntheticDataset", "noise"), ("AdviseSpec", "target_recall"), ("AdviseSpec", "budget_minutes"),
            ("ExperimentSpec", "recall_targets")} <= names


@pytest.mark.parametrize("value", NON_FINITE, ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("model, field", FLOAT_FIELDS, ids=[f"{m.__name__}.{f}" for m, f in FLOAT_FIELDS])
def test_every_float_of_the_spec_refuses_a_non_finite_value(model: Any, field: str, value: float) -> None:
    assert finite_errors(model, field, value), f"{model.__name__}.{field} took {value}"


@pytest.mark.parametrize("text, value", [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan")])
def test_a_yaml_non_finite_budget_is_refused_on_one_line(tmp_path: Any, text: str, value: str) -> None:
    from indexer.engine.spec import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ndataset: {kind: synthetic, intrinsic_dims: [2], ambient_dim: 8}\n"
                    f"backends: [{{name: hnswlib}}]\nadvise: {{budget_minutes: {text}}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"invalid spec: advise.budget_minutes: Input should be a finite number, got {value}"

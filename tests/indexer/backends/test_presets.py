"""Presets: `preset: NAME` on an HNSW backend fills M, ef_construction and the ef sweep with another system's
out-of-the-box values; fields given explicitly win; the preset stays in the spec's canonical JSON and label
but never becomes a build parameter; the README's table is presets.markdown_table()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from indexer.backends import BACKENDS
from indexer.backends.declaration import takes_preset
from indexer.backends.presets import DEFAULT_K, PRESETS, markdown_table
from indexer.engine import runner
from indexer.engine.spec import BACKEND_MODELS, ExperimentSpec, SpecError, parse_spec
from indexer.model.results import DenseRow
from indexer.report.markdown import render_markdown
from indexer.report.results import Results
from indexer.report.rows import rows_to_csv

REPO = Path(__file__).resolve().parents[3]
HNSW_BACKENDS = ("hnswlib", "faiss_hnsw")

# The documented values (README table), written out so an edit to PRESETS has to be an edit here too.
DOCUMENTED: dict[str, tuple[int, int, list[int]]] = {
    "chroma": (16, 100, [100]),
    "pgvector": (16, 64, [40]),
    "qdrant": (16, 100, [100]),
    "qdrant_edge": (16, 100, [100]),
    "weaviate": (32, 128, [100]),
    "milvus": (30, 360, [16]),
    "milvus_lite": (16, 200, [64]),
    "elasticsearch": (16, 100, [15]),
    "opensearch": (16, 100, [100]),
    "redis": (16, 200, [10]),
    "lancedb": (20, 300, [15]),
    "duckdb_vss": (16, 128, [64]),
    "usearch": (16, 128, [64]),
    "voyager": (12, 200, [10]),
    "vespa": (16, 200, [10]),
    "mongodb_atlas": (16, 100, [200]),
}

SPEC: dict[str, Any] = {
    "name": "t",
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "ambient_dim": 32},
    "backends": [{"name": "exact"}],
}


def _entry(data: dict[str, Any]) -> Any:
    return BACKEND_MODELS[data["name"]].model_validate(data)


def _spec_error(backend: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec({**SPEC, "backends": [backend]})
    return str(info.value)


def test_the_issue_example() -> None:
    entry = _entry({"name": "hnswlib", "preset": "pgvector"})
    assert entry.build_params() == {"M": 16, "ef_construction": 64}
    assert entry.ef_values() == [40]
    assert entry.label() == "hnswlib preset=pgvector M=16 efC=64"


def test_the_documented_presets_are_the_presets() -> None:
    assert list(PRESETS) == list(DOCUMENTED)


@pytest.mark.parametrize("backend", HNSW_BACKENDS)
@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_each_preset_resolves_as_documented(backend: str, name: str) -> None:
    M, ef_construction, ef_search = DOCUMENTED[name]
    entry = _entry({"name": backend, "preset": name})
    assert entry.build_params() == {"M": M, "ef_construction": ef_construction}  # preset is no build parameter
    assert entry.ef_values() == ef_search
    assert entry.model_dump() == {"name": backend, "preset": name, "M": M, "ef_construction": ef_construction,
                                  "ef_search": ef_search}
    assert entry.label() == f"{backend} preset={name} M={M} efC={ef_construction}"


@pytest.mark.parametrize("given", [
    {"M": 8},
    {"ef_construction": 40},
    {"ef_search": [5, 80]},
    {"M": 8, "ef_construction": 40, "ef_search": [7]},
])
def test_fields_given_explicitly_override_the_preset(given: dict[str, Any]) -> None:
    entry = _entry({"name": "hnswlib", "preset": "weaviate", **given})
    want = {"M": 32, "ef_construction": 128, "ef_search": [100], **given}
    assert entry.build_params() == {"M": want["M"], "ef_construction": want["ef_construction"]}
    assert entry.ef_values() == want["ef_search"]
    assert entry.model_dump()["preset"] == "weaviate"


def test_a_value_filled_from_a_preset_is_checked_like_a_typed_one() -> None:
    with pytest.raises(ValidationError):  # the entry's own rules still run on the merged values
        _entry({"name": "hnswlib", "preset": "pgvector", "ef_search": []})


@pytest.mark.parametrize("bad", ["nope", "PGVECTOR", "", 3, ["pgvector"]])
def test_an_unknown_preset_is_refused_with_every_valid_name(bad: Any) -> None:
    message = _spec_error({"name": "hnswlib", "preset": bad})
    assert "backends.0.hnswlib" in message and "unknown preset" in message
    assert all(name in message for name in PRESETS), message


def test_a_preset_on_a_backend_without_a_graph_is_refused_with_every_valid_name() -> None:
    message = _spec_error({"name": "exact", "preset": "pgvector"})
    assert "backends.0.exact" in message and "only HNSW backends take a preset" in message
    assert all(name in message for name in PRESETS), message


def test_presets_apply_to_exactly_the_backends_with_a_graph_and_an_ef_sweep() -> None:
    assert {name for name, backend in BACKENDS.items() if takes_preset(backend)} >= set(HNSW_BACKENDS)
    assert not takes_preset(BACKENDS["exact"])
    assert "preset" not in BACKEND_MODELS["exact"].model_fields


def test_every_preset_fits_every_backend_that_takes_one() -> None:
    for backend in (name for name, b in BACKENDS.items() if takes_preset(b)):
        for name in PRESETS:
            _entry({"name": backend, "preset": name})  # within each backend's bounds


def test_the_canonical_json_keeps_the_preset_and_differs_only_by_it() -> None:
    with_preset = parse_spec({**SPEC, "backends": [{"name": "hnswlib", "preset": "pgvector"}]})
    spelled_out = parse_spec({**SPEC, "backends": [{"name": "hnswlib", "M": 16, "ef_construction": 64,
                                                     "ef_search": [40]}]})
    assert with_preset.canonical_json() != spelled_out.canonical_json()
    assert with_preset.key() != spelled_out.key()
    doc = json.loads(with_preset.canonical_json())
    assert doc["backends"][0].pop("preset") == "pgvector"
    assert doc == json.loads(spelled_out.canonical_json())


def test_a_spec_without_a_preset_dumps_as_before() -> None:
    entry = {"name": "hnswlib", "M": 16, "ef_construction": 200, "ef_search": [10]}
    assert _entry({"name": "hnswlib"}).model_dump() == entry
    assert _entry({"name": "hnswlib", "preset": None}).model_dump() == entry
    spec = parse_spec({**SPEC, "backends": [{"name": "hnswlib"}]})
    assert "preset" not in spec.canonical_json()


def test_the_preset_survives_a_round_trip_through_the_canonical_json() -> None:
    spec = parse_spec({**SPEC, "backends": [{"name": "faiss_hnsw", "preset": "redis", "M": 8}]})
    again = parse_spec(json.loads(spec.canonical_json()))
    assert again.canonical_json() == spec.canonical_json()
    assert again.backends[0].label() == "faiss_hnsw preset=redis M=8 efC=200"


def test_k_dependent_defaults_are_stated_at_the_spec_default_k() -> None:
    assert ExperimentSpec.model_fields["k"].default == DEFAULT_K
    dynamic = {name: p for name, p in PRESETS.items() if p.ef_at_k is not None}
    assert set(dynamic) == {"weaviate", "milvus", "elasticsearch", "lancedb", "vespa", "mongodb_atlas"}
    for name, preset in dynamic.items():
        assert preset.ef_at_k is not None
        assert preset.ef_search == (preset.ef_at_k(DEFAULT_K),), name
        assert f"k={DEFAULT_K}" in preset.note, name  # the note states the assumption


@pytest.mark.parametrize(("name", "k", "ef"), [
    ("weaviate", 1, 100), ("weaviate", 10, 100), ("weaviate", 20, 160), ("weaviate", 100, 500),
    ("weaviate", 1000, 1000),
    ("elasticsearch", 10, 15), ("elasticsearch", 3, 5), ("elasticsearch", 9000, 10_000),
    ("lancedb", 10, 15), ("lancedb", 7, 10),
    ("milvus", 10, 16), ("milvus", 50, 50),
    ("vespa", 10, 10),
    ("mongodb_atlas", 10, 200),
])
def test_the_dynamic_rules_follow_the_systems_code(name: str, k: int, ef: int) -> None:
    rule = PRESETS[name].ef_at_k
    assert rule is not None and rule(k) == ef


def test_every_preset_names_its_source_and_version() -> None:
    for name, preset in PRESETS.items():
        assert preset.system and preset.source and preset.version, name
        assert preset.M >= 2 and preset.ef_construction >= 1 and all(ef >= 1 for ef in preset.ef_search), name


def test_the_table_has_one_row_per_preset_and_no_stray_cell_breaks() -> None:
    lines = markdown_table().splitlines()
    assert len(lines) == 2 + len(PRESETS)
    assert all(line.count("|") == 9 for line in lines), "a '|' inside a cell would break the table"
    for line, (name, preset) in zip(lines[2:], PRESETS.items(), strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:5] == [f"`{name}`", preset.system, str(preset.M), str(preset.ef_construction),
                             ", ".join(map(str, preset.ef_search))]


def test_the_readme_table_is_the_presets_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    if "### Presets" not in readme:
        pytest.skip("the README has no Presets section yet")
    assert markdown_table() in readme


@pytest.fixture
def preset_spec(tiny_spec_dict: dict[str, Any]) -> ExperimentSpec:
    return parse_spec({**tiny_spec_dict, "orderings": ["random"], "backends": [
        {"name": "hnswlib", "preset": "pgvector"},
        {"name": "faiss_hnsw", "preset": "weaviate", "ef_search": [20]},
        {"name": "exact"},
    ]})


def test_a_spec_with_presets_runs_and_its_rows_carry_the_preset_values(preset_spec: ExperimentSpec,
                                                                        cache_dir: Path) -> None:
    result = runner.run(preset_spec, cache_dir=cache_dir)
    rows = [row for row in result.rows if isinstance(row, DenseRow) and row.backend != "exact"]
    assert {(r.backend, r.build_params["M"], r.build_params["ef_construction"], r.ef) for r in rows} == {
        ("hnswlib", 16, 64, 40), ("faiss_hnsw", 32, 128, 20),
    }
    assert all(set(r.build_params) == {"M", "ef_construction"} for r in rows)  # the preset is no build param
    # rows name their preset; a row without one has no `preset` key at all, as before presets
    assert {(r.backend, r.preset) for r in result.rows} == {
        ("hnswlib", "pgvector"), ("faiss_hnsw", "weaviate"), ("exact", None)}
    assert all(("preset" in r.to_json()) == (r.backend != "exact") for r in result.rows)
    csv_header = rows_to_csv(result.rows).splitlines()[0].split(",")
    assert csv_header[csv_header.index("backend") + 1] == "preset"
    # the report's labels say where the values came from, even where the backend has one build
    results = Results(preset_spec, result.rows)
    labels = {results.col_label(results.col_of(r)) for r in result.rows}
    assert labels == {"hnswlib preset=pgvector ef=40", "faiss_hnsw preset=weaviate ef=20", "exact"}
    markdown = render_markdown(preset_spec, result.rows, result.extras)
    assert "hnswlib preset=pgvector" in markdown and "faiss_hnsw preset=weaviate" in markdown


@pytest.mark.parametrize(("name", "k", "ef"), [("weaviate", 50, 400), ("elasticsearch", 50, 75), ("lancedb", 7, 10),
                                                ("pgvector", 50, 40)])
def test_a_k_dependent_preset_takes_the_specs_own_k(name: str, k: int, ef: int) -> None:
    def entry(**extra: Any) -> dict[str, Any]:
        return {"name": "spec-k", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]}, "k": k,
                "backends": [{"name": "hnswlib", "preset": name, **extra}]}

    assert parse_spec(entry()).backends[0].ef_values() == [ef]
    assert parse_spec(entry(ef_search=[12])).backends[0].ef_values() == [12]  # given explicitly: kept


def test_presets_are_data_checked_when_loaded(tmp_path) -> None:
    """presets.yaml is the one place the values live; a wrong rule-bound ef, an unknown rule or field is refused
    at load, so the data and the rules cannot drift apart."""
    import pydantic

    from indexer.backends.presets import PRESETS_FILE, load_presets

    assert load_presets(PRESETS_FILE) == PRESETS
    good = "weaviate:\n  system: Weaviate\n  M: 32\n  ef_construction: 128\n  ef_search: [100]\n" \
           "  ef_rule: weaviate\n  source: config.go\n  version: v1\n"
    path = tmp_path / "p.yaml"
    path.write_text(good)
    assert load_presets(path)["weaviate"].ef_at_k(50) == 400
    for bad, error in ((good.replace("[100]", "[99]"), ValueError), (good.replace("rule: weaviate", "rule: nope"),
                       pydantic.ValidationError), (good + "  mystery: 1\n", pydantic.ValidationError)):
        path.write_text(bad)
        with pytest.raises(error):
            load_presets(path)

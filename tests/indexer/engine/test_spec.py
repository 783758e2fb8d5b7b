"""The spec: strict types, bounded lists and seeds, bounded error messages, reductions that fit the input.

Content keys are pinned to values computed before these rules existed: tightening validation must not
rename the cached work of a spec that was already valid.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from indexer.engine.spec import (
    MAX_CELLS,
    MAX_REPORTED_PROBLEMS,
    ExperimentSpec,
    SpecError,
    cells,
    grid_size,
    load_spec,
    max_reduced_dims,
    parse_spec,
    reduction_dims_problem,
    summarize_problems,
)

BASE: dict[str, Any] = {
    "name": "t",
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "ambient_dim": 32},
    "backends": [{"name": "exact"}],
}


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    spec.update(changes)
    return spec


def _dataset(**changes: Any) -> dict[str, Any]:
    return _spec(dataset={**BASE["dataset"], **changes})


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


# ---- content keys ------------------------------------------------------------------------------


EVERY_FIELD = {
    "name": "every-field",
    "dataset": {"kind": "synthetic", "intrinsic_dims": [4, 8], "points_per_subspace": 500,
                "queries_per_subspace": 20, "ambient_dim": 64, "noise": 0.01, "normalize": False, "seed": 7},
    "metric": "l2", "k": 5, "orderings": ["given", "cluster"],
    "backends": [{"name": "hnswlib", "M": 12, "ef_construction": 100, "ef_search": [8, 16, 32]},
                 {"name": "exact"}],
    "seeds": [0, 4294967295],
    "lid": {"k": 15, "sample": 300},
    "reductions": ["none", {"name": "fft", "dims": [8, 16], "rule": "energy"},
                   {"name": "random_projection", "dims": 32, "seed": 9}],
    "index_sizes": [100, "all"], "clusters": 8, "lid_bins": 3,
}


def _with_dataset(dataset: dict[str, Any]) -> dict[str, Any]:
    return {"name": "n", "dataset": dataset, "backends": [{"name": "faiss_hnsw"}]}


# keys computed with the code before strict types and list caps were added
PINNED_KEYS = [
    ("tiny", None, "3d6e1a4f399e3f73"),
    ("every field", EVERY_FIELD, "990a5941fcd2a923"),
    ("glove", _with_dataset({"kind": "glove", "n": 1000, "queries": 10, "seed": 2}), "cb8b1457e4747df9"),
    ("text", _with_dataset({"kind": "text", "corpus": "bbc", "limit": 300, "queries": 20, "seed": 1}),
     "d0850a08e9e16341"),
    ("file", _with_dataset({"kind": "file", "path": "x.npy", "query_count": 10, "seed": 3}), "9cc9b3b3f40d22ac"),
    ("beir", _with_dataset({"kind": "beir", "path": "d", "queries": 5, "seed": 4}), "f41720140bb3078a"),
]


@pytest.mark.parametrize("name, data, key", PINNED_KEYS, ids=[k[0] for k in PINNED_KEYS])
def test_valid_specs_keep_their_content_key(name, data, key, tiny_spec_dict):
    assert parse_spec(data if data is not None else tiny_spec_dict).key() == key


def test_cell_keys_keep_their_value(tiny_spec_dict, monkeypatch):
    import indexer.engine.spec

    # library versions are part of a build key: fixed here so the pin survives an upgrade
    monkeypatch.setattr(indexer.engine.spec, "_library_versions", lambda backend, reads=frozenset(): {"x": "0.0.0"})
    spec = parse_spec({**tiny_spec_dict, "orderings": ["random", "cluster"]})
    grid = cells(spec)
    # changed on purpose with the split of build, probe and measure keys (issue 19); the measure key again with
    # MEASURE_FORMAT 2 (the loss split, issue 22) and with MEASURE_FORMAT 3 and the ef ladder probe (hard queries,
    # issue 22; lancedb's SQ rows as i8), the build keys not
    got = [grid[0].build_key(spec), grid[-1].build_key(spec), grid[0].measure_key(spec, "exact")]
    assert got == ["5b93f544d47ced62", "b93da7be7993f4f3", "744a354c816d4d76"], got


def test_a_build_key_holds_its_own_library_version_only():
    """A faiss upgrade rebuilds faiss cells and cells ordered by faiss k-means, not hnswlib's random ones."""
    from indexer.engine.spec import _library_versions

    assert set(_library_versions("hnswlib")) == {"hnswlib"}
    assert set(_library_versions("faiss_hnsw")) == {"faiss-cpu"}
    assert set(_library_versions("hnswlib", frozenset({"clusters"}))) == {"hnswlib", "faiss-cpu"}
    assert set(_library_versions("faiss_hnsw", frozenset({"lid"}))) == {"faiss-cpu", "hnswlib"}


def test_what_is_measured_does_not_enter_the_build_key(tiny_spec_dict):
    spec = parse_spec(tiny_spec_dict)
    other = parse_spec({**tiny_spec_dict, "recall_targets": [0.5], "lid_bins": 3, "diagnostics": {}})
    a, b = cells(spec)[0], cells(other)[0]
    assert a.build_key(spec) == b.build_key(other)
    assert a.probe_key(spec, "exact") != b.probe_key(other, "exact")
    assert a.measure_key(spec, "exact") != a.measure_key(spec, "sampled")


# ---- orderings: names from the registry in indexer/science/orderings.py ---------------------------------


ORDERING_NAMES = ["given", "random", "lid_asc", "lid_desc", "category", "category_interleaved", "cluster"]


def test_the_schema_lists_the_ordering_names_in_registry_order():
    schema = ExperimentSpec.model_json_schema()
    assert schema["properties"]["orderings"]["items"] == {"enum": ORDERING_NAMES, "type": "string"}
    assert schema["properties"]["orderings"]["maxItems"] == len(ORDERING_NAMES)


def test_an_unknown_ordering_names_every_registered_one():
    assert _error(_spec(orderings=["nope"])) == (
        "invalid spec: orderings.0: Input should be 'given', 'random', 'lid_asc', 'lid_desc', 'category', "
        "'category_interleaved' or 'cluster'"
    )


# ---- strict types ------------------------------------------------------------------------------


STRICT_CASES = {
    "bool k": (_spec(k=True), "k: Input should be a valid integer"),
    "float k": (_spec(k=10.0), "k: Input should be a valid integer"),
    "bool seed": (_spec(seeds=[False]), "seeds.0"),
    "bool dataset seed": (_dataset(seed=False), "dataset.synthetic.seed"),
    "float points": (_dataset(points_per_subspace=1.5), "dataset.synthetic.points_per_subspace"),
    "whole float points": (_dataset(points_per_subspace=600.0), "dataset.synthetic.points_per_subspace"),
    "float intrinsic dim": (_dataset(intrinsic_dims=[2.0]), "dataset.synthetic.intrinsic_dims.0"),
    "string ambient dim": (_dataset(ambient_dim="32"), "dataset.synthetic.ambient_dim"),
    "float ef": (_spec(backends=[{"name": "hnswlib", "ef_search": [10.0]}]), "ef_search.0"),
    "bool M": (_spec(backends=[{"name": "faiss_hnsw", "M": True}]), "M"),
    "float lid k": (_spec(lid={"k": 20.0}), "lid.k"),
    "float index size": (_spec(index_sizes=[100.0]), "index_sizes.0"),
    "float reduction dims": (_spec(reductions=[{"name": "pca", "dims": 8.0}]), "reductions.0.dims"),
    "float dims in a sweep": (_spec(reductions=[{"name": "pca", "dims": [8, 4.5]}]), "reductions.1.dims"),
    "bool reduction seed": (_spec(reductions=[{"name": "random_projection", "dims": 8, "seed": True}]),
                            "reductions.0.seed"),
    "int normalize": (_dataset(normalize=1), "dataset.synthetic.normalize"),
    "bool noise": (_dataset(noise=True), "dataset.synthetic.noise"),
    "nan noise": (_dataset(noise=float("nan")), "dataset.synthetic.noise"),
    "float glove n": (_with_dataset({"kind": "glove", "n": 1e3}), "dataset.glove.n"),
    "bool text limit": (_with_dataset({"kind": "text", "corpus": "bbc", "limit": True}), "dataset.text.limit"),
}


@pytest.mark.parametrize("case", list(STRICT_CASES))
def test_wrong_types_are_refused_not_coerced(case):
    data, field = STRICT_CASES[case]
    assert field in _error(data)


def test_an_integer_is_still_a_float():
    assert parse_spec(_dataset(noise=0)).dataset.noise == 0.0  # type: ignore[union-attr]


def test_nested_models_still_parse_from_plain_mappings(tiny_spec_dict):
    spec = parse_spec(tiny_spec_dict)
    assert spec.lid.k == 10 and spec.backends[0].name == "hnswlib" and spec.dataset.kind == "synthetic"


# ---- seeds -------------------------------------------------------------------------------------


SEED_PLACES = {
    "spec seeds": (lambda s: _spec(seeds=[s]), "seeds.0"),
    "dataset seed": (lambda s: _dataset(seed=s), "dataset.synthetic.seed"),
    "reduction seed": (lambda s: _spec(reductions=[{"name": "random_projection", "dims": 8, "seed": s}]),
                       "reductions.0.seed"),
    "file seed": (lambda s: _with_dataset({"kind": "file", "path": "x.npy", "seed": s}), "dataset.file.seed"),
}


@pytest.mark.parametrize("place", list(SEED_PLACES))
@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seeds_outside_32_bits_name_the_field(place, seed):
    make, field = SEED_PLACES[place]
    assert field in _error(make(seed))


@pytest.mark.parametrize("place", list(SEED_PLACES))
def test_seed_range_ends_are_valid(place):
    make, _ = SEED_PLACES[place]
    parse_spec(make(0))
    parse_spec(make(2**32 - 1))


# ---- list caps and the grid --------------------------------------------------------------------


LIST_CAPS = {
    "seeds": (lambda n: _spec(seeds=list(range(n))), 64, "seeds"),
    "ef_search": (lambda n: _spec(backends=[{"name": "hnswlib", "ef_search": list(range(1, n + 1))}]), 64,
                  "ef_search"),
    "intrinsic_dims": (lambda n: _dataset(intrinsic_dims=[2] * n), 256, "intrinsic_dims"),
    "index_sizes": (lambda n: _spec(index_sizes=list(range(1, n + 1))), 64, "index_sizes"),
    "models": (lambda n: _with_dataset({"kind": "text", "corpus": "bbc", "models": [f"m{i}" for i in range(n)]}),
               16, "models"),
    "backends": (lambda n: _spec(backends=[{"name": "hnswlib", "M": m} for m in range(2, n + 2)]), 32, "backends"),
    "reductions": (lambda n: _spec(dataset={"kind": "synthetic", "intrinsic_dims": [2], "ambient_dim": 512},
                                   reductions=[{"name": "pca", "dims": list(range(1, n + 1))}]), 64, "reductions"),
    "orderings": (lambda n: _spec(orderings=["random"] * n), 7, "orderings"),
    "representations": (lambda n: _spec(representations=["dense"] * n), 3, "representations"),
}


@pytest.mark.parametrize("name", list(LIST_CAPS))
def test_every_list_has_a_cap(name):
    make, cap, field = LIST_CAPS[name]
    if name not in ("orderings", "representations"):  # these two cannot reach their cap without repeating
        parse_spec(make(cap))
    message = _error(make(cap + 1))
    assert field in message and str(cap) in message


@pytest.mark.parametrize("name", list(LIST_CAPS))
def test_a_huge_list_is_one_short_error_found_quickly(name):
    make, _, field = LIST_CAPS[name]
    start = time.monotonic()
    message = _error(make(500_000))
    assert time.monotonic() - start < 2.0
    assert field in message and len(message) < 400 and "more problem" not in message


def test_the_whole_grid_is_capped():
    # 64 seeds x 7 orderings x 32 backends = 14,336 cells, each list within its own cap
    data = _spec(seeds=list(range(64)), backends=[{"name": "hnswlib", "M": m} for m in range(2, 34)],
                 orderings=["given", "random", "lid_asc", "lid_desc", "category", "category_interleaved", "cluster"])
    assert f"at most {MAX_CELLS}" in _error(data)
    spec = parse_spec({**data, "seeds": list(range(40))})
    assert grid_size(spec) == 40 * 7 * 32 <= MAX_CELLS


def test_a_mapping_with_very_many_keys_is_one_error():
    message = _error(_dataset(**{f"x{i}": 1 for i in range(500_000)}))
    assert "dataset.synthetic" in message and "too many keys (500003" in message and "'x0'" in message
    assert len(message) < 300


def test_a_few_unknown_keys_are_each_named():
    assert "colour: Extra inputs are not permitted" in _error(_spec(colour="red"))


# ---- bounded error messages --------------------------------------------------------------------


def test_error_message_lists_the_first_problems_and_counts_the_rest():
    # 32 backends x 20 unknown keys: as many problems as the caps allow
    backends = [{"name": "exact", **{f"x{j}": 1 for j in range(20)}} for _ in range(32)]
    message = _error(_spec(backends=backends))
    assert message.count("Extra inputs are not permitted") == MAX_REPORTED_PROBLEMS
    assert message.endswith(f"... and {32 * 20 - MAX_REPORTED_PROBLEMS} more problems")


def test_error_message_clips_each_echoed_piece():
    message = _error(_dataset(**{"k" * 100_000: 1}))
    assert "kkk..." in message and len(message) < 400


def test_summarize_problems():
    assert summarize_problems(["a", "b"], 2) == "a; b"
    assert summarize_problems(["a"], 2) == "a; ... and 1 more problem"
    many = summarize_problems([str(i) for i in range(30)], 1000)
    assert many.count(";") == MAX_REPORTED_PROBLEMS and many.endswith(f"and {1000 - MAX_REPORTED_PROBLEMS} more problems")


# ---- reductions that fit the input -------------------------------------------------------------


def _reductions(*reductions: Any) -> Any:
    return parse_spec(_spec(dataset={"kind": "synthetic", "intrinsic_dims": [2], "ambient_dim": 512},
                            reductions=list(reductions)))


def test_max_reduced_dims():
    assert max_reduced_dims("fft", 32) == 17 and max_reduced_dims("fft", 33) == 17
    for name in ("pca", "truncate", "random_projection", "none"):
        assert max_reduced_dims(name, 32) == 32


def test_reduction_dims_problem_accepts_what_fits():
    spec = _reductions("none", {"name": "fft", "dims": 17}, {"name": "pca", "dims": 32},
                       {"name": "truncate", "dims": 32}, {"name": "random_projection", "dims": 32})
    assert reduction_dims_problem(spec, 32) is None


@pytest.mark.parametrize(
    "reduction, label",
    [({"name": "fft", "dims": 18}, "fft-low-18"), ({"name": "pca", "dims": 33}, "pca-33"),
     ({"name": "truncate", "dims": 64}, "truncate-64"),
     ({"name": "random_projection", "dims": 33}, "random_projection-33")],
)
def test_reduction_dims_problem_names_each_reduction_too_large(reduction, label):
    problem = reduction_dims_problem(_reductions("none", reduction), 32)
    assert problem is not None and f"reductions.1 ({label})" in problem and "32-d" in problem


def test_reduction_dims_problem_lists_every_problem():
    spec = _reductions({"name": "pca", "dims": [16, 40, 50]})
    problem = reduction_dims_problem(spec, 32)
    assert problem is not None and "reductions.1 (pca-40)" in problem and "reductions.2 (pca-50)" in problem
    assert "reductions.0" not in problem


def test_synthetic_reductions_are_checked_against_the_ambient_dimension():
    assert "reductions.1 (pca-64)" in _error(_spec(reductions=["none", {"name": "pca", "dims": 64}]))
    assert "fft-low-18" in _error(_spec(reductions=[{"name": "fft", "dims": 18}]))
    parse_spec(_spec(reductions=[{"name": "fft", "dims": 17}, {"name": "pca", "dims": 32}]))


# ---- reading spec files ------------------------------------------------------------------------


def _load_error(tmp_path, content: bytes) -> str:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def test_malformed_yaml_is_one_line_with_its_position(tmp_path):
    message = _load_error(tmp_path, b"name: x\ndataset: {kind: synthetic\n  intrinsic_dims: [2]\n")
    assert "\n" not in message and "not valid YAML/JSON" in message and "line 3, column 17" in message


def test_spec_that_is_not_utf8(tmp_path):
    message = _load_error(tmp_path, b"name: caf\xe9\n")
    assert "not UTF-8" in message and "0xe9" in message


def test_deeply_nested_yaml(tmp_path):
    assert "nests too deeply" in _load_error(tmp_path, b"[" * 100_000 + b"]" * 100_000)


def test_top_level_must_be_a_mapping(tmp_path):
    assert "mapping" in _load_error(tmp_path, b"- 1\n- 2\n")


def test_unreadable_spec_paths(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path)

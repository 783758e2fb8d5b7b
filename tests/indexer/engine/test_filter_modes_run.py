"""Filter modes and distance counts through a whole run: one build answers every mode its spec entry lists, each
row labelled with its mode and that mode's strategy; a mode is a search-time setting, kept out of the build key
and in the probe key; a mode the backend lacks is refused by the spec (CLI exit 2); faiss's distance
computations under a filter are saved with the filtered answers and read back by a new measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import indexer.engine.spec
from indexer.backends import BACKENDS
from indexer.engine import runner
from indexer.engine.spec import SpecError, cells, parse_spec
from tests.indexer.engine.test_measures import _forbid_builds, _index_files

K = 10
FILTERS = [{"name": "rnd", "kind": "random", "selectivities": [0.5, 0.02], "seed": 7}]
needs_lancedb = pytest.mark.skipif(not BACKENDS["lancedb"].library.installed(), reason="lancedb is not installed")


@pytest.fixture
def spec_dict(tiny_spec_dict: dict) -> dict:
    return {**tiny_spec_dict, "orderings": ["random"], "k": K, "recall_targets": [0.95],
            "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 80]},
                         {"name": "faiss_hnsw", "M": 8, "ef_construction": 40, "ef_search": [10, 80]}],
            "filters": FILTERS}


@needs_lancedb
def test_two_modes_of_one_backend_give_rows_of_each_mode_and_strategy(spec_dict, cache_dir) -> None:
    spec_dict["backends"].append({"name": "lancedb", "filter_mode": ["prefilter", "postfilter"], "ef_search": [20]})
    res = runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    lance = [r for r in res.extras.filtered if r.backend == "lancedb"]
    assert {(r.filter_mode, r.strategy) for r in lance} == {("prefilter", "in_graph"), ("postfilter", "post")}
    assert len(lance) == 2 * 2  # two modes x two selectivities x one ef
    assert len({r.neighbors for r in lance}) == len(lance)  # each mode's answers in a file of its own
    assert len({r.cell for r in lance}) == 1  # one build answered both
    for r in res.extras.filtered:
        assert r.violations == 0
        if r.backend != "lancedb":
            assert r.filter_mode is None
        assert [c.target for c in r.cost_at_recall] == [0.95]
    at = {(r.filter_mode, r.selectivity): r for r in lance}
    # 0.02 keeps about 24 of 1,200 points: the postfilter's top 10 rarely holds 10 of them, the prefilter's does
    assert at[("postfilter", 0.02)].short_results > at[("prefilter", 0.02)].short_results
    assert at[("postfilter", 0.02)].mean_returned < at[("prefilter", 0.02)].mean_returned


def test_faiss_counts_distances_under_a_filter_and_hnswlib_does_not(spec_dict, cache_dir, monkeypatch) -> None:
    spec = parse_spec(spec_dict)
    res = runner.run(spec, cache_dir=cache_dir)
    faiss_rows = [r for r in res.extras.filtered if r.backend == "faiss_hnsw"]
    assert faiss_rows and all(r.distances_per_query is not None and r.distances_per_query > 0 for r in faiss_rows)
    for sel in (0.5, 0.02):
        by_ef = {r.ef: r.distances_per_query for r in faiss_rows if r.selectivity == sel}
        assert by_ef[10] < by_ef[80]  # type: ignore[operator]
    assert all(r.distances_per_query is None for r in res.extras.filtered if r.backend == "hnswlib")

    # a new measure reads the count back from the saved filtered answers: nothing built, nothing searched again
    files = _index_files(cache_dir)
    monkeypatch.setattr(indexer.engine.spec, "MEASURE_FORMAT", indexer.engine.spec.MEASURE_FORMAT + 1)
    _forbid_builds(monkeypatch)
    again = runner.run(spec, cache_dir=cache_dir)
    assert _index_files(cache_dir) == files

    def counts(rows):  # type: ignore[no-untyped-def]
        return sorted((r.backend, r.selectivity, r.ef, r.distances_per_query) for r in rows)

    assert counts(again.extras.filtered) == counts(res.extras.filtered)


def test_a_mode_is_in_the_probe_key_not_the_build_key(spec_dict) -> None:
    entry = {"name": "pgvector", "ef_search": [40]}
    plain = parse_spec({**spec_dict, "backends": [entry]})
    moded = parse_spec({**spec_dict, "backends": [{**entry, "filter_mode": ["off", "relaxed_order"],
                                                   "max_scan_tuples": 5000}]})
    a, b = cells(plain)[0], cells(moded)[0]
    assert a.build_key(plain) == b.build_key(moded)
    assert a.probe_key(plain, "mle") != b.probe_key(moded, "mle")
    # a spec that names no mode keeps its canonical JSON: no filter_mode, no max_scan_tuples in it
    assert "filter_mode" not in plain.canonical_json() and "max_scan_tuples" not in plain.canonical_json()
    # without filters the modes decide nothing: the probe key is the plain one
    unfiltered = {k: v for k, v in spec_dict.items() if k != "filters"}
    p, m = parse_spec({**unfiltered, "backends": [entry]}), parse_spec({**unfiltered, "backends": [
        {**entry, "filter_mode": "relaxed_order"}]})
    assert cells(p)[0].probe_key(p, "mle") == cells(m)[0].probe_key(m, "mle")


@needs_lancedb
def test_adding_a_mode_keeps_every_build(spec_dict, cache_dir, monkeypatch) -> None:
    """The cached cells keep their build keys: faiss's and hnswlib's saved indexes are not touched (inode and
    mtime) and lancedb's cell is the same directory, now also answered in postfilter. lancedb's index is not
    one saved file (not servable), so the runner rebuilds it in place to probe it, as it does for new filters."""
    spec_dict["backends"].append({"name": "lancedb", "ef_search": [20]})
    runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    files = {p: f for p, f in _index_files(cache_dir).items() if p.endswith("index.bin")}
    cell_dirs = sorted(p.name for p in (cache_dir / "cells").iterdir())
    spec_dict["backends"][-1] = {"name": "lancedb", "ef_search": [20], "filter_mode": ["prefilter", "postfilter"]}
    res = runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    assert sorted(p.name for p in (cache_dir / "cells").iterdir()) == cell_dirs
    assert {p: f for p, f in _index_files(cache_dir).items() if p.endswith("index.bin")} == files
    assert {r.filter_mode for r in res.extras.filtered if r.backend == "lancedb"} == {"prefilter", "postfilter"}


@pytest.mark.parametrize("entry, problem", [
    ({"name": "pgvector", "filter_mode": "loose"}, "pgvector has no filter mode 'loose'; its modes: off, "
                                                   "relaxed_order, strict_order"),
    ({"name": "lancedb", "filter_mode": ["prefilter", "iterative"]}, "its modes: prefilter, postfilter"),
    ({"name": "qdrant_edge", "filter_mode": "post"}, "its modes: planner, graph, acorn"),
    ({"name": "hnswlib", "filter_mode": "graph"}, r"hnswlib filters one way only \(in_graph\)"),
    ({"name": "lancedb", "filter_mode": ["postfilter", "postfilter"]}, "must not repeat"),
    ({"name": "pgvector", "max_scan_tuples": 0}, "max_scan_tuples"),
    ({"name": "lancedb", "max_scan_tuples": 10}, "Extra inputs"),
])
def test_a_mode_the_backend_lacks_is_refused_naming_its_modes(spec_dict, entry, problem) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_spec({**spec_dict, "backends": [entry]})


def test_two_entries_of_one_build_with_other_modes_are_refused(spec_dict) -> None:
    with pytest.raises(SpecError, match=r"give one entry filter_mode: \[off, relaxed_order\]"):
        parse_spec({**spec_dict, "backends": [{"name": "pgvector"}, {"name": "pgvector", "filter_mode": "relaxed_order"}]})


def test_the_cli_exits_2_on_a_mode_the_backend_lacks(spec_dict, tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**spec_dict, "backends": [{"name": "lancedb", "filter_mode": "strict"}]}))
    env = {"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(spec_path), "--out", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "lancedb has no filter mode 'strict'; its modes: prefilter, postfilter" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_report_labels_rows_by_mode_and_strategy() -> None:
    from indexer.model.results import FilteredRow, RunExtras
    from indexer.report.sections.filtered import filtered_section

    common = {"dataset": "d", "model": None, "metric": "cosine", "index_size": 100, "reduction": "none",
              "ordering": "random", "build_params": {}, "k": K, "seed": 0, "cell": "c", "filter": "rnd",
              "filter_kind": "random", "selectivity": 0.01, "kept": 0.01, "ef": 40, "recall": 0.5,
              "recall_ci95": [0.4, 0.6], "queries": 10, "queries_without_match": 0, "short_results": 0,
              "mean_returned": 10.0, "violations": 0, "qps": 100.0, "neighbors": None}
    rows = [FilteredRow(backend="pgvector", strategy="post", filter_mode="off", **common),
            FilteredRow(backend="pgvector", strategy="iterative", filter_mode="relaxed_order", **common),
            FilteredRow(backend="faiss_hnsw", strategy="in_graph", distances_per_query=123.0, **common)]
    section = filtered_section(RunExtras(filtered=rows))
    assert section is not None
    tables = [b for b in section.blocks if hasattr(b, "rows")]
    labels = [(row[0], row[1]) for row in tables[0].rows]  # type: ignore[attr-defined]
    assert ("pgvector off", "post") in labels and ("pgvector relaxed_order", "iterative") in labels
    distances = [t for t in tables if "distance computations" in t.caption]  # type: ignore[attr-defined]
    assert [row[0] for row in distances[0].rows] == ["faiss_hnsw"]  # type: ignore[attr-defined]


def test_a_bare_yaml_off_is_pgvectors_mode_off(spec_dict) -> None:
    """YAML 1.1 reads `off` as false; pgvector's mode is named after its setting's value, so false means off."""
    text = yaml.safe_dump({k: v for k, v in spec_dict.items() if k != "backends"})
    text += "backends:\n  - {name: pgvector, filter_mode: off}\n  - {name: pgvector, M: 8, filter_mode: [off, relaxed_order]}\n"
    spec = parse_spec(yaml.safe_load(text))
    assert [b.filter_modes() for b in spec.backends] == [["off"], ["off", "relaxed_order"]]
    with pytest.raises(SpecError, match="no filter mode True"):
        parse_spec({**spec_dict, "backends": [{"name": "pgvector", "filter_mode": True}]})


@pytest.mark.parametrize("mode", [{}, [], 3, None])
def test_a_mode_that_is_not_a_name_is_refused_naming_the_modes(spec_dict, mode) -> None:
    """Found by schemathesis: `filter_mode: [{}]` was a server error (a dict looked up among the names)."""
    with pytest.raises(SpecError, match="pgvector has no filter mode .*; its modes: off, relaxed_order, strict_order"):
        parse_spec({**spec_dict, "backends": [{"name": "pgvector", "filter_mode": [mode]}]})

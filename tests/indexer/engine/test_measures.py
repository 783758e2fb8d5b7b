"""Measures come from saved answers: a new measure, new recall targets or new diagnostics build nothing.

A cell's directory is keyed by what decides its build (indexer.engine.spec.Cell.build_key); what is
measured lives under keys of its own inside it. These tests change what is measured and check, by the
index files on disk and by a build that would fail, that no index is built again, and that the figures
are those of an independent path (a fresh build in another cache, or the answers' own ids).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import indexer.engine.spec
from indexer.engine import cell, measure, runner
from indexer.engine.executors import ExecutorConfig
from indexer.engine.spec import parse_spec


def _index_files(cache_dir: Path) -> dict[str, tuple[int, int]]:
    """Each built cell's index and answers files, by (inode, mtime): a rebuild changes both."""
    out = {}
    for path in sorted((cache_dir / "cells").glob("*/*")):
        if path.name in ("index.bin", "answers.json", "rows.npy"):
            st = path.stat()
            out[str(path)] = (st.st_ino, st.st_mtime_ns)
    return out


def _forbid_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any index built in this process fails the test (the saved ones may still be loaded)."""
    made = cell.make_index

    def no_build(*args, **kwargs):
        index = made(*args, **kwargs)

        def refuse(*_a, **_k):
            raise AssertionError("an index was built again")

        index.build = refuse
        return index

    monkeypatch.setattr(cell, "make_index", no_build)


@pytest.fixture
def spec_dict(tiny_spec_dict: dict) -> dict:
    return {**tiny_spec_dict, "orderings": ["random", "lid_asc"]}


def test_a_new_measure_is_computed_from_saved_answers_without_a_rebuild(spec_dict, cache_dir, monkeypatch):
    spec = parse_spec(spec_dict)
    first = runner.run(spec, cache_dir=cache_dir)
    files = _index_files(cache_dir)
    assert files

    # a new recall definition: the plain id-set intersection becomes `recall`
    monkeypatch.setattr(indexer.engine.spec, "MEASURE_FORMAT", indexer.engine.spec.MEASURE_FORMAT + 1)
    measured = measure.measure_answers

    def new_definition(spec, s, ids, ranking):
        out = measured(spec, s, ids, ranking)
        return dataclasses.replace(out, judged=dataclasses.replace(out.judged, recall=out.judged.recall_ids))

    monkeypatch.setattr(measure, "measure_answers", new_definition)
    _forbid_builds(monkeypatch)
    second = runner.run(spec, cache_dir=cache_dir)

    assert _index_files(cache_dir) == files  # nothing built, nothing rewritten
    assert len(second.rows) == len(first.rows)
    for a, b in zip(first.rows, second.rows, strict=True):
        assert (a.cell, a.ef) == (b.cell, b.ef)
        assert b.recall == pytest.approx(a.recall_ids)  # the new measure, from the same saved ids
        assert b.build_seconds == a.build_seconds and b.qps_all == a.qps_all  # the build's own figures kept
        np.testing.assert_array_equal(np.load(a.neighbors), np.load(b.neighbors))
        assert b.recall_file != a.recall_file  # per-query recall of the new measure, beside the old


def test_new_recall_targets_probe_the_saved_index_and_match_a_fresh_build(spec_dict, cache_dir, tmp_path,
                                                                          monkeypatch):
    runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    files = _index_files(cache_dir)
    wider = parse_spec({**spec_dict, "recall_targets": [0.5, 0.99], "diagnostics": {"self_miss_sample": 200}})

    with monkeypatch.context() as m:
        _forbid_builds(m)
        probed = runner.run(wider, cache_dir=cache_dir)
    assert _index_files(cache_dir) == files
    fresh = runner.run(wider, cache_dir=tmp_path / "fresh")  # built from scratch: the independent path

    def stable(rows):
        return [(r.cell, r.ef, [(c.target, c.ef, c.recall, c.held_out_recall) for c in r.cost_at_recall],
                 r.graph, r.self_miss, r.recall) for r in rows]

    assert [c.target for c in probed.rows[0].cost_at_recall] == [0.5, 0.99]
    assert stable(probed.rows) == stable(fresh.rows)


def test_a_pool_probes_the_saved_index_in_place(spec_dict, cache_dir):
    """The default executor's worker processes reprobe too (no build: the files stay as they were)."""
    pool = ExecutorConfig(name="local", workers=2)
    runner.run(parse_spec(spec_dict), cache_dir=cache_dir, executor=pool)
    files = _index_files(cache_dir)
    wider = parse_spec({**spec_dict, "recall_targets": [0.7]})
    rows = runner.run(wider, cache_dir=cache_dir, executor=pool).rows
    assert _index_files(cache_dir) == files
    assert {tuple(c.target for c in r.cost_at_recall) for r in rows if r.ef is not None} == {(0.7,)}


def test_a_faiss_upgrade_does_not_rebuild_hnswlib_cells(spec_dict, cache_dir, monkeypatch):
    spec = parse_spec({**spec_dict, "orderings": ["random"]})
    runner.run(spec, cache_dir=cache_dir)
    before = {p.name for p in (cache_dir / "cells").iterdir()}
    real = indexer.engine.spec._library_versions

    def upgraded(backend, reads=frozenset()):
        return {k: ("99.0" if k == "faiss-cpu" else v) for k, v in real(backend, reads).items()}

    monkeypatch.setattr(indexer.engine.spec, "_library_versions", upgraded)
    again = runner.run(spec, cache_dir=cache_dir)
    after = {p.name for p in (cache_dir / "cells").iterdir()}
    rebuilt = {r.backend for r in again.rows if r.cell not in before}
    assert rebuilt == {"faiss_hnsw", "exact"}, rebuilt  # exact search runs on faiss too; hnswlib's cells stay
    assert after > before


def test_a_killed_measure_leaves_nothing_the_next_run_keeps(spec_dict, cache_dir):
    """Measures and probes are staged inside a built cell; what a killed process staged there is swept."""
    from indexer.common.fileio import _host

    runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    cell_dir = next((cache_dir / "cells").iterdir())
    dead = 4_194_301  # above any pid this machine hands out
    left = [cell_dir / inner / f".x.~{_host()}~{dead}~0~deadbeef.tmp" for inner in (measure.MEASURES_DIR,
                                                                                   measure.PROBES_DIR)]
    for path in left:
        path.mkdir(parents=True)
    assert runner.sweep_cache(cache_dir) == 2
    assert not any(p.exists() for p in left)

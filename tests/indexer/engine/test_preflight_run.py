"""The pre-flight through `runner.run`: every space's checks in the extras and first in the report, its
warnings in the notes, and the data no honest number can come out of stopping the run with one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets.synthetic import load as load_synthetic
from indexer.engine import runner
from indexer.engine.spec import parse_spec
from indexer.model.results import RunExtras, extras_to_json
from indexer.report.markdown import render_markdown
from indexer.science import groundtruth


def _quick(spec: dict) -> dict:
    """The tiny spec on the exact backend only: the pre-flight is what is tested, not the indexes."""
    return {**spec, "orderings": ["random"], "backends": [{"name": "exact"}]}


def _file_spec(tmp_path: Path, base: np.ndarray, queries: np.ndarray, **more: object) -> dict:
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    return {"name": "file", "dataset": {"kind": "file", "path": str(tmp_path / "base.npy"),
                                        "queries": str(tmp_path / "queries.npy")},
            "k": 5, "backends": [{"name": "exact"}], "lid": {"k": 5}, **more}


def test_every_space_is_checked_before_its_cells_and_reported_first(tiny_spec_dict: dict, cache_dir: Path) -> None:
    spec = parse_spec({**_quick(tiny_spec_dict), "reductions": [{"name": "none"}, {"name": "pca", "dims": 8}]})
    res = runner.run(spec, cache_dir=cache_dir)
    assert list(res.extras.preflight) == list(res.extras.space) == ["n=all/none", "n=all/pca-8"]
    ds = load_synthetic(spec.dataset)
    base = groundtruth.prepare_vectors(ds.base, "cosine")
    queries = groundtruth.prepare_vectors(ds.queries, "cosine")
    in_base = {tuple(row) for row in base.tolist()}
    for label, pre in res.extras.preflight.items():
        assert (pre.base.n, pre.queries.n, pre.k, pre.metric) == (len(base), len(queries), 10, "cosine")
        assert pre.groundtruth.sample == len(queries) and pre.groundtruth.mismatches == 0
        assert (pre.groundtruth_within is not None) == (label != "n=all/none")
        assert pre.ties.sample == len(queries)
    none = res.extras.preflight["n=all/none"]
    assert none.queries_in_base == sum(tuple(q) in in_base for q in queries.tolist())
    assert none.duplicates.groups == len(base) - len(in_base) == 0
    assert none.base.zero == 0 and none.base.not_unit == 0  # cosine: normalised by the engine
    # through the report's JSON and back, and first in the report
    plain = extras_to_json(res.extras)
    assert set(plain["preflight"]) == set(res.extras.preflight)
    assert RunExtras.model_validate(plain).preflight == res.extras.preflight
    markdown = render_markdown(spec, res.rows, res.extras)
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Pre-flight", "## Overview"]
    # a rerun reads the pre-flight from the cache
    again = runner.run(spec, cache_dir=cache_dir)
    assert again.extras.preflight == res.extras.preflight


def test_planted_traps_become_warnings_in_the_notes(tmp_path: Path, cache_dir: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 8)).astype(np.float32) * 3
    base[[1, 2]] = base[0]  # an exact duplicate group of three
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    queries[3] = base[50]  # a query copied from the base
    spec = parse_spec(_file_spec(tmp_path, base, queries, metric="ip"))
    res = runner.run(spec, cache_dir=cache_dir)
    pre = res.extras.preflight["n=all/none"]
    assert (pre.duplicates.groups, pre.duplicates.largest, pre.duplicates.example) == (1, 3, [0, 1, 2])
    assert pre.queries_in_base == 1
    assert pre.base.not_unit == 300
    notes = [n for n in res.extras.notes if n.startswith("Pre-flight, n=all/none: ")]
    assert len(notes) == len(pre.warnings) >= 3
    text = "\n".join(notes)
    assert "Exact duplicates: 1 group of equal base vectors (3 rows, the largest 3)" in text
    assert "Not unit length: 300 of 300 (100.0%) base vectors" in text
    assert "Queries in the base: 1 of 20 (5.0%) queries" in text


def test_a_nonfinite_vector_stops_the_run(tmp_path: Path, cache_dir: Path) -> None:
    base = np.random.default_rng(1).standard_normal((100, 8)).astype(np.float32)
    base[17, 3] = np.nan
    spec = parse_spec(_file_spec(tmp_path, base, base[:10] + 1))
    with pytest.raises(DataError, match=r"base holds NaN or inf in 1 rows"):
        runner.run(spec, cache_dir=cache_dir)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the FFT's own, expected
def test_a_reduction_that_overflows_stops_the_run_before_its_lid(tmp_path: Path, cache_dir: Path) -> None:
    rng = np.random.default_rng(2)
    base = (rng.uniform(0.8, 1.0, (100, 16)) * 3e37).astype(np.float32)  # finite; the sum in their FFT is not
    queries = (rng.uniform(0.8, 1.0, (10, 16)) * 3e37).astype(np.float32)
    spec = parse_spec(_file_spec(tmp_path, base, queries, metric="l2", reductions=[{"name": "fft", "dims": 4}]))
    with pytest.raises(DataError, match=r"after reduction fft-low-4: 100 base vectors and 10 queries hold NaN or inf"):
        runner.run(spec, cache_dir=cache_dir)


def test_a_corrupted_ground_truth_stops_the_run(tiny_spec_dict: dict, cache_dir: Path) -> None:
    spec = parse_spec(_quick(tiny_spec_dict))
    runner.run(spec, cache_dir=cache_dir)
    [path] = (cache_dir / "groundtruth").glob("gt-*.npz")
    with np.load(path) as stored:
        ids, scores = stored["ids"].copy(), stored["scores"]
    ids[5] = ids[5][::-1] + 1  # other points entirely
    path.unlink()
    groundtruth.cached(cache_dir / "groundtruth", path.stem, lambda: {"ids": ids, "scores": scores})
    for cached in (cache_dir / "preflight").glob("*.npz"):
        cached.unlink()  # the pre-flight reads the table again
    with pytest.raises(DataError, match=r"n=all/none: the ground truth disagrees with float64 brute force for 1 "
                                        r"of 60 sampled queries \(e.g. query 5\)"):
        runner.run(spec, cache_dir=cache_dir)

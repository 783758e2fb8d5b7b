"""Filtered search through a whole run: every filtered row checked against numpy brute force over the run's
own saved vectors and answers, exact search perfect, nothing returned that a filter does not keep, a filter
keeping no point reported, new filters answered by the saved index, and refusals that name the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.common.errors import UserError
from indexer.engine import runner
from indexer.engine.spec import SpecError, parse_spec
from indexer.model.results import FilteredRow
from tests.indexer.engine.test_measures import _forbid_builds, _index_files

K = 10


@pytest.fixture
def spec_dict(tiny_spec_dict: dict) -> dict:
    return {**tiny_spec_dict, "orderings": ["random"], "k": K,
            "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 80]},
                         {"name": "exact"}, {"name": "voyager", "ef_search": [20]}],
            "filters": [{"name": "rnd", "kind": "random", "selectivities": [0.5, 0.004], "seed": 7},
                        {"name": "own", "kind": "label"},
                        {"name": "far", "kind": "anti_correlated", "selectivities": [0.1], "clusters": 4}]}


@pytest.fixture
def filtered_run(spec_dict: dict, cache_dir: Path) -> tuple[runner.RunResult, np.ndarray, np.ndarray]:
    res = runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    vectors = cache_dir / "vectors" / res.indexes[0].vectors  # type: ignore[operator]
    return res, np.load(vectors / "base.npy"), np.load(vectors / "queries.npy")


def _brute_force_recall(base: np.ndarray, queries: np.ndarray, ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per query, numpy only: the share of the true filtered top min(k, kept) that came back (cosine data is
    normalised on the way in, so the score is the inner product). NaN where nothing passes."""
    out = np.full(len(queries), np.nan)
    for i, q in enumerate(queries):
        passing = np.flatnonzero(keep[i])
        if not len(passing):
            continue
        scores = base[passing].astype(np.float64) @ q.astype(np.float64)
        m = min(K, len(passing))
        truth = set(passing[np.argsort(-scores, kind="stable")[:m]].tolist())
        out[i] = len(truth & set(ids[i][ids[i] >= 0].tolist())) / m
    return out


def _masks(row: FilteredRow, spec_dict: dict, n: int, labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """Each query's filter, rebuilt from the spec alone (random: the seeded attribute; label: equal labels)."""
    if row.filter == "rnd":
        seed = spec_dict["filters"][0]["seed"]
        keep = np.random.default_rng(seed).random(n) < row.selectivity
        return np.broadcast_to(keep, (len(query_labels), n))
    return labels[None, :] == query_labels[:, None]


def test_every_filtered_row_matches_numpy_brute_force(filtered_run, spec_dict) -> None:
    res, base, queries = filtered_run
    from indexer.datasets import synthetic

    ds = synthetic.load(parse_spec(spec_dict).dataset)  # labels come from the dataset's own generator
    rows = [r for r in res.extras.filtered if r.filter in ("rnd", "own")]
    assert len(rows) == 2 * (2 + 1 + 1) + (2 + 1 + 1)  # random at two selectivities and label, per ef
    for row in rows:
        ids = np.load(row.neighbors)
        keep = _masks(row, spec_dict, len(base), ds.labels, ds.query_labels)
        want = _brute_force_recall(base, queries, ids, keep)
        assert row.recall == pytest.approx(float(np.nanmean(want)), abs=1e-9), (row.backend, row.filter, row.ef)
        returned = np.array([len(set(a[a >= 0].tolist())) for a in ids])
        assert row.mean_returned == pytest.approx(returned.mean())
        assert row.short_results == int((returned < np.minimum(K, keep.sum(axis=1))).sum())
        assert row.violations == int(sum((~keep[i][a[a >= 0]]).sum() for i, a in enumerate(ids)))


def test_exact_search_is_perfect_and_nothing_violates_a_filter(filtered_run) -> None:
    res, base, _ = filtered_run
    assert res.extras.filtered
    assert all(r.violations == 0 for r in res.extras.filtered)
    exact = [r for r in res.extras.filtered if r.backend == "exact"]
    assert {r.strategy for r in exact} == {"pre"} and all(r.recall == 1.0 and r.short_results == 0 for r in exact)
    tiny = [r for r in exact if r.selectivity == 0.004]  # about 5 of the 1,200 points pass: fewer than k
    assert tiny and all(0 < r.mean_returned < K for r in tiny)
    assert {r.strategy for r in res.extras.filtered if r.backend == "voyager"} == {"post"}


def test_a_filter_that_keeps_no_point_is_reported_not_an_error(spec_dict, cache_dir) -> None:
    spec_dict["filters"] = [{"name": "none", "kind": "random", "selectivities": [1e-7]}]
    assert (np.random.default_rng(0).random(1200) >= 1e-7).all()  # the seeded draw keeps nothing
    res = runner.run(parse_spec(spec_dict), cache_dir=cache_dir)
    for row in res.extras.filtered:
        assert row.queries_without_match == row.queries == 60 and row.kept == 0.0
        assert row.recall is None or np.isnan(row.recall)
        assert row.mean_returned == 0 and row.violations == 0


def test_new_filters_are_answered_by_the_saved_index(spec_dict, cache_dir, monkeypatch) -> None:
    plain = {k: v for k, v in spec_dict.items() if k != "filters"}
    runner.run(parse_spec(plain), cache_dir=cache_dir)
    files = _index_files(cache_dir)
    _forbid_builds(monkeypatch)
    res = runner.run(parse_spec({**plain, "backends": plain["backends"][:2], "filters": spec_dict["filters"][:1]}),
                     cache_dir=cache_dir)
    assert _index_files(cache_dir) == files
    assert {r.backend for r in res.extras.filtered} == {"hnswlib", "exact"}


def test_a_backend_that_cannot_filter_is_refused_by_name(spec_dict, monkeypatch) -> None:
    """Every registered backend filters today; one registered without it is refused, not run unfiltered."""
    import dataclasses

    from indexer.backends import BACKENDS

    voyager = BACKENDS["voyager"]
    unable = dataclasses.replace(voyager, capabilities=dataclasses.replace(voyager.capabilities, filtering=None))
    monkeypatch.setitem(BACKENDS, "voyager", unable)
    with pytest.raises(SpecError, match="backend voyager cannot filter .*those that can: hnswlib"):
        parse_spec(spec_dict)
    assert all(b.capabilities.filtering is not None for name, b in BACKENDS.items() if name != "voyager")


@pytest.mark.parametrize("workload, problem", [
    ({"name": "x", "kind": "label", "label": "no-such-label"}, "label 'no-such-label' is not one of"),
])
def test_a_filter_over_a_missing_attribute_names_it(spec_dict, cache_dir, workload, problem) -> None:
    spec_dict["filters"] = [workload]
    with pytest.raises(UserError, match=problem):
        runner.run(parse_spec(spec_dict), cache_dir=cache_dir)


@pytest.mark.parametrize("workload, problem", [
    ({"name": "x", "kind": "random"}, "needs selectivities"),
    ({"name": "x", "kind": "label", "selectivities": [0.1]}, "takes no selectivities"),
    ({"name": "x", "kind": "random", "selectivities": [0.0]}, "greater than 0"),
    ({"name": "x", "kind": "random", "selectivities": [0.1, 0.1]}, "must not repeat"),
    ({"name": "x", "kind": "range", "selectivities": [0.1] * 9}, "at most 8"),
])
def test_bad_workloads_are_spec_errors(spec_dict, workload, problem) -> None:
    spec_dict["filters"] = [workload]
    with pytest.raises(SpecError, match=problem):
        parse_spec(spec_dict)


def test_filters_count_toward_the_admission_estimate(spec_dict) -> None:
    """Filtered searches add work, and the masks (a range filter holds one per query) have a memory bound."""
    from indexer.engine.admission import Limits, admit
    from indexer.engine.work import work

    plain = parse_spec({k: v for k, v in spec_dict.items() if k != "filters"})
    filtered = parse_spec(spec_dict)
    base, dims, queries = 1_000_000, {None: 32}, 10_000
    without, with_filters = work(plain, base, dims, queries), work(filtered, base, dims, queries)
    assert without is not None and with_filters is not None
    assert with_filters.search_seconds > without.search_seconds and with_filters.shared_seconds > without.shared_seconds
    assert without.filter_bytes == 0 and with_filters.filter_bytes >= queries * base  # the label masks: one a query
    windows = parse_spec({**spec_dict, "dataset": {**spec_dict["dataset"], "points_per_subspace": 400_000,
                                                   "queries_per_subspace": 5_000},
                          "filters": [{"name": "w", "kind": "range", "selectivities": [0.1, 0.01]}]})
    with pytest.raises(UserError, match="filters' masks .* over the limit"):
        admit(windows, Limits())


def test_a_pool_gives_the_filtered_rows_of_the_driver(filtered_run, spec_dict, tmp_path) -> None:
    """The filters travel with every cell to the default executor's processes; the answers do not change."""
    from indexer.engine.executors import ExecutorConfig

    res, _, _ = filtered_run
    pooled = runner.run(parse_spec(spec_dict), cache_dir=tmp_path / "pool", executor=ExecutorConfig(workers=2))

    def key(rows):
        return sorted((r.backend, r.filter, r.selectivity or 0.0, r.ef or 0, r.recall, r.short_results,
                       r.mean_returned, r.violations) for r in rows)

    assert key(pooled.extras.filtered) == key(res.extras.filtered)


def test_the_cost_to_win_recall_back_under_each_filter(filtered_run) -> None:
    """Per graph backend and filter: an ef per recall target, larger for a higher target, confirmed only when
    the held-out half reaches it; exact search has no ef to search for."""
    res, _, _ = filtered_run
    for row in res.extras.filtered:
        if row.backend == "exact" or row.queries_without_match == row.queries:
            assert row.cost_at_recall == []
            continue
        assert [c.target for c in row.cost_at_recall] == [0.9, 0.95, 0.99]
        efs = [c.ef for c in row.cost_at_recall if c.ef is not None]
        assert efs == sorted(efs)
        for c in row.cost_at_recall:
            assert c.confirmed == (c.ef is not None and c.held_out_recall is not None
                                   and c.held_out_recall >= c.target)


def test_a_published_report_carries_the_filtered_answers(filtered_run, spec_dict, tmp_path) -> None:
    """The report names each filtered row's ids inside itself, byte-equal to the cache's, so it stands alone."""
    import json

    from indexer.report.write import write_report

    res, _, _ = filtered_run
    out = write_report(parse_spec(spec_dict), res.rows, tmp_path / "report", extras=res.extras)
    published = json.loads((out / "report.json").read_text())["extras"]["filtered"]
    assert len(published) == len(res.extras.filtered)
    names = set()
    for row, cached in zip(published, res.extras.filtered, strict=True):
        assert row["neighbors"].startswith("neighbors/"), row["neighbors"]
        assert np.array_equal(np.load(out / row["neighbors"]), np.load(cached.neighbors))
        assert row["selectivity"] == cached.selectivity  # a selectivity is never rounded away
        names.add(row["neighbors"])
    assert len(names) == len(published)  # one file per (cell, filter, selectivity, ef), none overwritten

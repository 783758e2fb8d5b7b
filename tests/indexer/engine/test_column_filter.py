"""Column filters through a whole run: a user's integer attribute stored with an HDF5 file or beside .npy
files, each query's allowed values given per query, once for all, or as its own value; the filtered ground
truth and the exact backend's answers checked against numpy brute force over the allowed points, nothing
returned that a filter does not keep, and refusals that name the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from indexer.common.errors import UserError
from indexer.engine import runner
from indexer.engine.spec import SpecError, parse_spec
from indexer.model.filters import MAX_ALLOWED_PER_QUERY, MAX_ALLOWED_VALUES

K = 10
N, Q, D, VALUES = 800, 40, 16, 6
BACKENDS = [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 80]}, {"name": "exact"}]


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, D)).astype(np.float32)
    queries = rng.standard_normal((Q, D)).astype(np.float32)
    return base, queries, rng.integers(0, VALUES, N), rng.integers(0, VALUES, Q)


def _spec(dataset: dict, *filters: dict) -> dict:
    return {"name": "column", "dataset": dataset, "metric": "l2", "k": K, "orderings": ["random"],
            "backends": BACKENDS, "lid": {"k": 10}, "filters": list(filters)}


def _hdf5(tmp_path: Path, **columns: np.ndarray) -> Path:
    base, queries, _, _ = _data()
    path = tmp_path / "data.hdf5"
    with h5py.File(path, "w") as f:
        f["train"], f["test"] = base, queries
        for name, values in columns.items():
            f[name] = values
    return path


def _brute_force(base: np.ndarray, queries: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(q, K) ids of the nearest allowed points by squared L2 in float64, numpy only; -1 pads."""
    out = np.full((len(queries), K), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        passing = np.flatnonzero(keep[i])
        dist = ((base[passing].astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1)
        top = passing[np.argsort(dist, kind="stable")[:K]]
        out[i, : len(top)] = top
    return out


def _truth(cache_dir: Path) -> np.ndarray:
    """The run's own filtered ground truth: the one cached for the spec's one column filter and one space."""
    (path,) = (cache_dir / "groundtruth").glob("filtered-*.npz")
    return np.load(path)["ids"]


def _check_run(res: runner.RunResult, cache_dir: Path, base: np.ndarray, queries: np.ndarray,
               keep: np.ndarray) -> None:
    """Ground truth and exact answers equal numpy's; no backend returns a point its filter drops."""
    want = _brute_force(base, queries, keep)
    np.testing.assert_array_equal(_truth(cache_dir), want)
    rows = res.extras.filtered
    assert {r.backend for r in rows} == {"hnswlib", "exact"} and {r.filter_kind for r in rows} == {"column"}
    for row in rows:
        ids = np.load(row.neighbors)
        assert row.violations == 0 == sum(int((~keep[i][a[a >= 0]]).sum()) for i, a in enumerate(ids))
        assert row.queries_without_match == int((keep.sum(axis=1) == 0).sum())
        assert row.kept == pytest.approx(keep.sum(axis=1).mean() / len(base))
    (exact,) = [r for r in rows if r.backend == "exact"]
    assert exact.recall == 1.0 and exact.short_results == 0
    ids = np.load(exact.neighbors)
    for i in range(len(queries)):  # the same points (ties aside, which random floats do not make)
        assert set(ids[i][ids[i] >= 0].tolist()) == set(want[i][want[i] >= 0].tolist())


def test_per_query_allowed_lists_over_an_hdf5_attribute(tmp_path, cache_dir) -> None:
    base, queries, tenant, _ = _data()
    allowed = [[i % VALUES, (i + 2) % VALUES] for i in range(Q - 1)] + [[99]]  # the last keeps no point
    path = _hdf5(tmp_path, tenant=tenant)
    spec = _spec({"kind": "file", "path": str(path)},
                 {"name": "tenant", "kind": "column", "attribute": "tenant", "allowed": allowed})
    res = runner.run(parse_spec(spec), cache_dir=cache_dir)
    keep = np.array([np.isin(tenant, a) for a in allowed])
    assert keep[-1].sum() == 0 and keep[:-1].all(axis=1).sum() == 0
    _check_run(res, cache_dir, base, queries, keep)
    assert all(r.queries_without_match == 1 for r in res.extras.filtered)


def test_the_own_value_mode_reads_the_query_column_of_an_hdf5_file(tmp_path, cache_dir) -> None:
    base, queries, tenant, query_tenant = _data()
    path = _hdf5(tmp_path, tenant=tenant, tenant_test=query_tenant)
    spec = _spec({"kind": "file", "path": str(path)}, {"name": "own", "kind": "column", "attribute": "tenant"})
    res = runner.run(parse_spec(spec), cache_dir=cache_dir)
    _check_run(res, cache_dir, base, queries, tenant[None, :] == query_tenant[:, None])


def test_one_allowed_list_for_every_query_over_npy_files(tmp_path, cache_dir) -> None:
    base, queries, tenant, query_tenant = _data()
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "base.tenant.npy", tenant.astype(np.int32))
    np.save(tmp_path / "queries.npy", queries)
    np.save(tmp_path / "queries.tenant.npy", query_tenant)  # not read: `allowed` is given
    spec = _spec({"kind": "file", "path": str(tmp_path / "base.npy"), "queries": str(tmp_path / "queries.npy")},
                 {"name": "two", "kind": "column", "attribute": "tenant", "allowed": [[1, 4]]})
    res = runner.run(parse_spec(spec), cache_dir=cache_dir)
    _check_run(res, cache_dir, base, queries, np.broadcast_to(np.isin(tenant, [1, 4]), (Q, N)))


def test_a_held_out_split_keeps_the_attribute_aligned(tmp_path, cache_dir) -> None:
    """No queries file: the queries are rows held out of the base, and their own values those rows' values."""
    base, _, tenant, _ = _data()
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "base.tenant.npy", tenant)
    spec = _spec({"kind": "file", "path": str(tmp_path / "base.npy"), "query_count": Q, "seed": 5},
                 {"name": "own", "kind": "column", "attribute": "tenant"})
    res = runner.run(parse_spec(spec), cache_dir=cache_dir)
    held_out = np.sort(np.random.default_rng(5).permutation(N)[:Q])  # the split, as the loader documents it
    kept = np.setdiff1d(np.arange(N), held_out)
    keep = tenant[kept][None, :] == tenant[held_out][:, None]
    _check_run(res, cache_dir, base[kept], base[held_out], keep)


def _run_cli(tmp_path: Path, spec: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(path), "--out", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_missing_attribute_ends_the_cli_on_one_line_naming_it(tmp_path) -> None:
    path = _hdf5(tmp_path, tenant=_data()[2])
    spec = _spec({"kind": "file", "path": str(path)}, {"name": "r", "kind": "column", "attribute": "region"})
    line = _one_error_line(_run_cli(tmp_path, spec))
    assert "attribute 'region'" in line and "data.hdf5 has no dataset 'region'" in line
    assert not (tmp_path / "out").exists()


def test_a_column_filter_over_a_synthetic_dataset_ends_the_cli_on_one_line(tmp_path, tiny_spec_dict) -> None:
    spec = {**tiny_spec_dict, "filters": [{"name": "t", "kind": "column", "attribute": "tenant"}]}
    line = _one_error_line(_run_cli(tmp_path, spec))
    assert "t is a column filter" in line and "not with a synthetic dataset" in line


@pytest.mark.parametrize("files, problem", [
    ({"base.tenant.npy": None}, "attribute 'tenant': base.tenant.npy not found beside base.npy"),
    ({"queries.tenant.npy": None}, "attribute 'tenant': queries.tenant.npy not found beside queries.npy"),
    ({"base.tenant.npy": np.zeros(N, np.float32)}, "base.tenant.npy holds float32 values; a column filter"),
    ({"base.tenant.npy": np.zeros(N, bool)}, "base.tenant.npy holds booleans"),
    ({"base.tenant.npy": np.zeros(N - 1, np.int64)}, r"base.tenant.npy has shape \(799,\); expected \(800,\)"),
    ({"queries.tenant.npy": np.zeros((Q, 2), np.int64)}, r"queries.tenant.npy has shape \(40, 2\)"),
])
def test_a_bad_or_missing_attribute_file_is_a_data_error_naming_it(tmp_path, cache_dir, files, problem) -> None:
    base, queries, tenant, query_tenant = _data()
    arrays = {"base.npy": base, "base.tenant.npy": tenant, "queries.npy": queries,
              "queries.tenant.npy": query_tenant, **files}
    for name, arr in arrays.items():
        if arr is not None:
            np.save(tmp_path / name, arr)
    spec = _spec({"kind": "file", "path": str(tmp_path / "base.npy"), "queries": str(tmp_path / "queries.npy")},
                 {"name": "own", "kind": "column", "attribute": "tenant"})
    with pytest.raises(UserError, match=problem):
        runner.run(parse_spec(spec), cache_dir=cache_dir)


def test_allowed_must_have_one_list_per_query_or_one(tmp_path, cache_dir) -> None:
    path = _hdf5(tmp_path, tenant=_data()[2])
    spec = _spec({"kind": "file", "path": str(path)},
                 {"name": "t", "kind": "column", "attribute": "tenant", "allowed": [[1], [2], [3]]})
    with pytest.raises(UserError, match="filter t: allowed has 3 lists for 40 queries"):
        runner.run(parse_spec(spec), cache_dir=cache_dir)
    assert not (cache_dir / "groundtruth").exists()  # refused when the data is loaded, before any work



def test_the_masks_of_a_column_filter_are_bounded_once_the_file_is_read(tmp_path, cache_dir, monkeypatch) -> None:
    """A file's size is known only when it is loaded: the masks' bytes (distinct allowed sets x points) are
    checked then, before any ground truth, and the message names the size."""
    from indexer.engine.admission import Limits

    monkeypatch.setattr(Limits, "max_index_bytes", 5 * N - 1)  # 5 distinct sets over N points is one byte over
    path = _hdf5(tmp_path, tenant=_data()[2])
    allowed = [[i % 5] for i in range(Q)]
    spec = _spec({"kind": "file", "path": str(path)},
                 {"name": "t", "kind": "column", "attribute": "tenant", "allowed": allowed})
    with pytest.raises(UserError, match=f"5 distinct masks over {N} points"):
        runner.run(parse_spec(spec), cache_dir=cache_dir)
    assert not (cache_dir / "groundtruth").exists()
    monkeypatch.setattr(Limits, "max_index_bytes", 5 * N)
    runner.run(parse_spec(spec), cache_dir=cache_dir)  # at the limit: runs


FILE = {"kind": "file", "path": "data.hdf5"}


@pytest.mark.parametrize("dataset, workload, problem", [
    (FILE, {"kind": "column"}, "a column filter needs `attribute`"),
    (FILE, {"kind": "column", "attribute": "t", "selectivities": [0.1]}, "takes no selectivities"),
    (FILE, {"kind": "column", "attribute": "t", "label": "a"}, "only a label filter names a label"),
    (FILE, {"kind": "column", "attribute": "t", "allowed": []}, "one list of values per query"),
    (FILE, {"kind": "column", "attribute": "a/b"}, "attribute"),
    (FILE, {"kind": "column", "attribute": "t", "allowed": [[1.5]]}, "allowed.0.0: Input should be a valid integer"),
    (FILE, {"kind": "column", "attribute": "t", "allowed": [3, 5]}, r"allowed takes lists of values.*\[\[3, 5\]\]"),
    (FILE, {"kind": "random", "selectivities": [0.1], "attribute": "t"}, "only a column filter names an attribute"),
    (FILE, {"kind": "label", "allowed": [[1]]}, "only a column filter names an attribute or allowed values"),
    (FILE, {"kind": "column", "attribute": "t", "allowed": [list(range(MAX_ALLOWED_PER_QUERY + 1))]},
     "at most 1024 items"),
    (FILE, {"kind": "column", "attribute": "t",
            "allowed": [list(range(1000))] * (MAX_ALLOWED_VALUES // 1000) + [[1]]},
     "allowed holds 100,001 values in all; at most 100,000"),
    ({"kind": "synthetic", "intrinsic_dims": [2]}, {"kind": "column", "attribute": "t"},
     "x is a column filter; a column filter reads an attribute stored with a dataset file"),
])
def test_bad_column_workloads_are_spec_errors(dataset, workload, problem) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_spec(_spec(dataset, {"name": "x", **workload}))


def test_other_kinds_keep_their_spec_keys() -> None:
    """`attribute` and `allowed` are left out of a dump when unset, so no existing spec's key moves."""
    spec = parse_spec(_spec(FILE, {"name": "r", "kind": "random", "selectivities": [0.5]}))
    assert set(spec.model_dump(mode="json")["filters"][0]) == {"name", "kind", "selectivities", "label", "clusters",
                                                               "seed"}


def test_a_column_filter_holds_one_mask_per_distinct_allowed_set() -> None:
    from indexer.engine.work import work

    def masks(allowed: list[list[int]] | None) -> int:
        w = {"name": "t", "kind": "column", "attribute": "t", **({"allowed": allowed} if allowed else {})}
        est = work(parse_spec(_spec(FILE, w)), 1000, {None: 8}, 300)
        assert est is not None
        return est.filter_bytes // 1000

    assert masks([[1, 2]]) == 1
    assert masks([[1, 2], [2, 1], [3]] * 100) == 2  # the same set in any order is one mask
    assert masks(None) == 300  # each query's own value: up to one mask per query

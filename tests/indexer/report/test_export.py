"""`indexer export`: ann-benchmarks' files as their code reads them, and the per-query Parquet table; every value
checked against brute force computed here from the dataset, never against the exporter's own arithmetic."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.datasets import load_dataset
from indexer.engine.runner import index_rows
from indexer.engine.spec import ExperimentSpec, parse_spec
from indexer.model.results import DenseRow, parse_rows
from indexer.pipeline import run_and_report
from indexer.report import export

K = 10
LID_K = 10
DISTANCE = {"cosine": "angular", "l2": "euclidean"}

# From ann-benchmarks (erikbern/ann-benchmarks f402b2c). runner.py: the attributes `run_individual_query` and
# `run` set on a result file; results.py `store_results`: its datasets ("f" float32, "i" int32).
RESULT_ATTRS = {"batch_mode": bool, "best_search_time": float, "candidates": float, "expect_extra": bool,
                "name": str, "run_count": int, "distance": str, "count": int, "build_time": float,
                "index_size": float, "algo": str, "dataset": str}
RESULT_DATASETS = {"times": np.float32, "neighbors": np.int32, "distances": np.float32}
# datasets.py `write_output`: data/<dataset>.hdf5 ("neighbors" dtype=int, "distances" dtype=float)
DATASET_ATTRS = {"type", "distance", "dimension", "point_type"}
DATASET_DATASETS = {"train": np.float32, "test": np.float32, "neighbors": np.int64, "distances": np.float64}
PY_TYPES = {bool: (bool, np.bool_), float: (float, np.floating), int: (int, np.integer), str: (str,)}


def build_result_filepath(dataset: str, count: int, algorithm: str, arguments: list, query_arguments: list,
                          batch_mode: bool) -> Path:
    """ann-benchmarks' results.py, for a definition with `algorithm` and `arguments`."""
    data = arguments + query_arguments
    name = re.sub(r"\W+", "_", json.dumps(data, sort_keys=True)).strip("_") + ".hdf5"
    return Path("results", dataset, str(count), algorithm + ("-batch" if batch_mode else ""), name)


def knn_threshold(data, count, epsilon):
    return data[count - 1] + epsilon


def get_recall_values(dataset_distances, run_distances, count, threshold, epsilon=1e-3):
    """ann-benchmarks' plotting/metrics.py, as it is."""
    recalls = np.zeros(len(run_distances))
    for i in range(len(run_distances)):
        t = threshold(dataset_distances[i], count, epsilon)
        actual = 0
        for d in run_distances[i][:count]:
            if d <= t:
                actual += 1
        recalls[i] = actual
    return (np.mean(recalls) / float(count), np.std(recalls) / float(count), recalls)


@dataclass
class Run:
    spec: ExperimentSpec
    report: Path
    cache: Path
    annb: Path
    parquet: Path
    rows: list[DenseRow]
    base: np.ndarray  # the dataset's raw vectors, float64
    queries: np.ndarray

    def index_rows(self, row: DenseRow) -> np.ndarray:
        size = "all" if row.index_size == len(self.base) else row.index_size
        return index_rows(len(self.base), size, np.zeros(0, dtype=np.int64), seed=self.spec.seeds[0])

    def neighbors(self, row: DenseRow) -> np.ndarray:
        assert row.neighbors is not None
        return np.load(self.report / row.neighbors)

    def distances(self, row: DenseRow) -> np.ndarray:
        """ann-benchmarks' distance of every query to every point of the row's index, in numpy (float64)."""
        q, b = self.queries, self.base[self.index_rows(row)]
        if self.spec.metric == "cosine":
            return 1 - (q @ b.T) / (np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :])
        return np.sqrt(((q[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))

    def dataset_file(self, row: DenseRow) -> Path:
        prefix = f"synthetic-{row.index_size}-{DISTANCE[self.spec.metric]}-"
        (found,) = [p for p in (self.annb / "data").iterdir() if p.name.startswith(prefix)]
        return found

    def result_file(self, row: DenseRow) -> Path:
        algo = "-".join([row.backend, row.ordering] + ([row.reduction] if row.reduction != "none" else []))
        arguments = [DISTANCE[self.spec.metric], {**row.build_params, "seed": row.seed}]
        return self.annb / build_result_filepath(self.dataset_file(row).stem, K, algo, arguments,
                                                 [row.ef] if row.ef is not None else [], batch_mode=True)


def _cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _make_run(root: Path, metric: str, reductions: list[dict], sizes: list) -> Run:
    spec = parse_spec({
        "name": f"export-{metric}", "metric": metric, "k": K, "orderings": ["random"], "seeds": [0],
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 300,
                    "queries_per_subspace": 20, "ambient_dim": 32, "seed": 3},
        "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 60]}, {"name": "exact"}],
        "reductions": reductions, "index_sizes": sizes, "lid": {"k": LID_K},
    })
    report, cache = root / "run", root / "cache"
    run_and_report(spec, cache_dir=cache, out_dir=report)
    for fmt in ("annb", "parquet"):
        code, out, err = _cli("export", report, root / fmt, "--format", fmt, "--cache-dir", cache)
        assert code == 0 and not err, (out, err)
    rows = [r for r in parse_rows(json.loads((report / "report.json").read_text())["rows"]) if isinstance(r, DenseRow)]
    ds = load_dataset(spec.dataset, cache_dir=cache)
    return Run(spec, report, cache, root / "annb", root / "parquet", rows,
               np.asarray(ds.base, dtype=np.float64), np.asarray(ds.queries, dtype=np.float64))


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two index sizes (a subset renumbers ids) and a PCA reduction (distances stay in the original space)."""
    return _make_run(tmp_path_factory.mktemp("cosine"), "cosine", [{"name": "none"}, {"name": "pca", "dims": 8}],
                     ["all", 400])


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _make_run(tmp_path_factory.mktemp("l2"), "l2", [{"name": "none"}], ["all"])


@pytest.fixture(params=["cosine_run", "l2_run"])
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def test_annb_files_have_ann_benchmarks_layout_and_attributes(run: Run) -> None:
    results = sorted((run.annb / "results").rglob("*.hdf5"))
    assert len(results) == len(run.rows)
    assert sorted(run.result_file(r) for r in run.rows) == results  # one file per row, where theirs would be
    for row in run.rows:
        with h5py.File(run.result_file(row), "r") as f:
            assert set(f.attrs) == set(RESULT_ATTRS)
            for name, kind in RESULT_ATTRS.items():
                assert isinstance(f.attrs[name], PY_TYPES[kind]), name
            assert {n: f[n].dtype for n in f} == RESULT_DATASETS
            assert f["times"].shape == (len(run.queries),) and f["neighbors"].shape == (len(run.queries), K)
            assert f.attrs["count"] == K and f.attrs["distance"] == DISTANCE[run.spec.metric]
            assert f.attrs["dataset"] == run.dataset_file(row).stem and f.attrs["batch_mode"]
            assert f.attrs["best_search_time"] == pytest.approx(1 / row.qps)
            assert f.attrs["build_time"] == row.build_seconds and f.attrs["run_count"] == row.qps_passes
            assert f.attrs["index_size"] == row.index_bytes / 1024  # kB, as ann-benchmarks measures memory
    for row in run.rows:
        with h5py.File(run.dataset_file(row), "r") as f:
            assert set(f.attrs) == DATASET_ATTRS and {n: f[n].dtype for n in f} == DATASET_DATASETS
            assert f.attrs["type"] == "dense" and f.attrs["point_type"] == "float"
            assert f.attrs["distance"] == DISTANCE[run.spec.metric] and f.attrs["dimension"] == 32
            assert f["train"].shape == (row.index_size, 32) and f["distances"].shape == (len(run.queries), K)


def test_annb_neighbours_are_the_rows_and_distances_are_exact(run: Run) -> None:
    for row in run.rows:
        rows = run.index_rows(row)
        with h5py.File(run.result_file(row), "r") as f:
            ids, found = f["neighbors"][:], f["distances"][:]
        assert np.array_equal(rows[ids], run.neighbors(row))  # positions in train, the index's rows
        if row.index_size == len(run.base):
            assert np.array_equal(ids, run.neighbors(row))
        assert np.allclose(found, np.take_along_axis(run.distances(row), ids, axis=1), rtol=0, atol=2e-6)
        with h5py.File(run.dataset_file(row), "r") as f:
            train, truth = f["train"][:], f["distances"][:]
        expected = run.base[rows]
        if run.spec.metric == "cosine":  # ann-benchmarks' angular distance ignores length
            expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        assert np.allclose(train, expected, atol=1e-6)
        assert np.allclose(truth, np.sort(run.distances(row), axis=1)[:, :K], rtol=0, atol=1e-6)


def test_ann_benchmarks_recall_of_the_files_matches_brute_force(run: Run) -> None:
    for row in run.rows:
        with h5py.File(run.dataset_file(row), "r") as data, h5py.File(run.result_file(row), "r") as result:
            _, _, counted = get_recall_values(list(data["distances"]), np.array(result["distances"]), K,
                                              knn_threshold)
        theirs = counted / K
        every = run.distances(row)
        positions = np.searchsorted(run.index_rows(row), run.neighbors(row))
        threshold = np.sort(every, axis=1)[:, K - 1] + 1e-3
        brute = (np.take_along_axis(every, positions, axis=1) <= threshold[:, None]).sum(axis=1) / K
        assert np.array_equal(theirs, brute), row.cell
        truth = np.argsort(every, axis=1)[:, :K]
        by_ids = np.array([len(set(a) & set(b)) for a, b in zip(positions, truth, strict=True)]) / K
        assert np.all(theirs >= by_ids)  # their tolerance only adds points at the k-th distance
        if row.backend == "exact" and row.reduction == "none":
            assert np.all(theirs == 1.0)


def test_parquet_has_a_line_per_row_and_query_with_brute_force_recall(cosine_run: Run) -> None:
    run = cosine_run
    table = pd.read_parquet(run.parquet / "queries.parquet", engine="fastparquet")
    assert len(table) == len(run.rows) * len(run.queries)
    assert list(table.columns) == ["dataset", "model", "index_size", "reduction", "dims", "ordering", "backend",
                                   "M", "ef_construction", "ef", "k", "seed", "cell", "query", "recall", "lid",
                                   "relative_contrast", "expansion", "centre_distance"]
    for row in run.rows:
        mine = table[(table["cell"] == row.cell) & (table["ef"].isna() if row.ef is None else table["ef"] == row.ef)]
        assert list(mine["query"]) == list(range(len(run.queries)))
        assert (mine["reduction"] == row.reduction).all() and (mine["index_size"] == row.index_size).all()
        assert (mine["M"].isna() if row.backend == "exact" else mine["M"] == 8).all()
        # the engine's recall@k: a returned point counts when its cosine is within 1e-5 (relative) of the k-th
        # true one, so one of two near-tied points at the k-th place is as good as the other
        rows = run.index_rows(row)
        cosine = 1 - run.distances(row)
        kth = np.sort(cosine, axis=1)[:, -K]
        returned = np.take_along_axis(cosine, np.searchsorted(rows, run.neighbors(row)), axis=1)
        brute = (returned >= (kth - 1e-5 * np.abs(kth))[:, None]).sum(axis=1) / K
        assert np.allclose(mine["recall"], brute, atol=1e-6), row.cell
        truth = rows[np.argsort(-cosine, axis=1)[:, :K]]
        by_ids = [len(set(a) & set(b)) / K for a, b in zip(run.neighbors(row), truth, strict=True)]
        assert np.all(mine["recall"] >= np.array(by_ids) - 1e-6)
        assert (mine["relative_contrast"] > 1).all()
        if row.reduction == "none":  # the MLE LID of each query from its LID_K nearest, in numpy
            unit = run.base[rows] / np.linalg.norm(run.base[rows], axis=1, keepdims=True)
            q = run.queries / np.linalg.norm(run.queries, axis=1, keepdims=True)
            near = np.sort(np.linalg.norm(q[:, None, :] - unit[None, :, :], axis=2), axis=1)[:, :LID_K]
            lid = -1 / np.log(near / near[:, -1:]).mean(axis=1)
            assert np.allclose(mine["lid"], lid, rtol=1e-5)
            # expansion at k: the 2k-th over the k-th distance, in numpy
            every = np.sort(np.linalg.norm(q[:, None, :] - unit[None, :, :], axis=2), axis=1)
            assert np.allclose(mine["expansion"], every[:, 2 * K - 1] / every[:, K - 1], rtol=1e-5)
        else:
            assert mine["lid"].notna().all()
        assert (mine["expansion"] >= 1).all() and (mine["centre_distance"] >= 0).all()


@pytest.mark.parametrize("case", ["no report", "missing run", "unknown format", "out not empty", "out is a file",
                                  "no vectors"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: str, cosine_run: Run, tmp_path: Path) -> None:
    run_dir, fmt, out, cache = cosine_run.report, "annb", tmp_path / "out", cosine_run.cache
    if case == "no report":
        run_dir = tmp_path / "empty"
        run_dir.mkdir()
    elif case == "missing run":
        run_dir = tmp_path / "nope"
    elif case == "unknown format":
        fmt = "csv"
    elif case == "out not empty":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    elif case == "out is a file":
        out.write_text("keep")
    elif case == "no vectors":
        cache = tmp_path / "other-cache"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = _cli("export", run_dir, out, "--format", fmt, "--cache-dir", cache)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new, no staging left behind
    if case == "no vectors":
        assert "--cache-dir" in stderr
    if case in ("out not empty", "out is a file"):
        assert (out / "mine.txt" if out.is_dir() else out).read_text() == "keep"


def test_an_empty_out_is_filled_and_a_failure_leaves_nothing(cosine_run: Run, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _cli("export", cosine_run.report, out, "--format", "parquet")
    assert code == 0 and [p.name for p in out.iterdir()] == ["queries.parquet"], err

    def half_then_crash(report: object, into: Path, *, cache_dir: Path) -> list[str]:
        (into / "part.parquet").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setitem(export.FORMATS, "parquet", half_then_crash)
    code, _, err = _cli("export", cosine_run.report, tmp_path / "crashed", "--format", "parquet")
    assert code == 1 and err == "error: RuntimeError: disk full\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

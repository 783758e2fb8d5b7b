"""Comparing two runs: cells matched on what defines them (not row order, not the cell key), recall
compared query by query, bad input refused, and `indexer compare`'s exit codes as a user sees them."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from indexer.cli import app
from indexer.common.errors import UserError
from indexer.engine.executors import ExecutorConfig
from indexer.engine.spec import parse_spec
from indexer.pipeline import run_and_report
from indexer.report.compare import (
    PublishedRun,
    compare_runs,
    format_comparison,
    published_run,
    read_report_dir,
)
from tests.indexer.report.rowkit import dense_row, sparse_row

SPEC: dict[str, Any] = {
    "name": "compare",
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 400,
                "queries_per_subspace": 40, "ambient_dim": 32, "seed": 3},
    "metric": "cosine", "k": 10, "orderings": ["random", "lid_asc"],
    "backends": [{"name": "hnswlib", "M": 6, "ef_construction": 20, "ef_search": [10, 40]}, {"name": "exact"}],
    "seeds": [0], "lid": {"k": 10},
}  # fmt: skip
QUERIES = 80


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real runs of one spec: A sweeps ef 10 and 40, B ef 10 and 20 (cells at ef 10 and exact match)."""
    root = tmp_path_factory.mktemp("compare-runs")
    other = copy.deepcopy(SPEC)
    other["backends"][0]["ef_search"] = [10, 20]
    for name, spec in (("a", SPEC), ("b", other)):
        run_and_report(parse_spec(spec), cache_dir=root / "cache", out_dir=root / name,
                       executor=ExecutorConfig("local", workers=1))
    return root / "a", root / "b"


def _copy(report: Path, dest: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of a report directory, and its report.json to edit (saved by `_save`)."""
    shutil.copytree(report, dest)
    return dest, json.loads((dest / "report.json").read_text())


def _save(report: Path, document: dict[str, Any]) -> None:
    (report / "report.json").write_text(json.dumps(document))


def _plant_drop(report: Path, document: dict[str, Any], *, ef: int, drop: float) -> int:
    """Lower the per-query recall of every hnswlib row at `ef` on half the queries; returns the rows changed."""
    changed = 0
    for row in document["rows"]:
        if row["backend"] == "hnswlib" and row["ef"] == ef:
            path = report / row["recall_file"]
            recall = np.load(path)
            recall[::2] = np.maximum(0.0, recall[::2] - drop)
            np.save(path, recall.astype(np.float32))
            changed += 1
    return changed


def _cli(*args: str) -> Result:
    """`indexer compare ARGS` in this process (the command's exit code, stdout and stderr)."""
    return CliRunner().invoke(app, ["compare", *args])


def _cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`indexer compare ARGS` as a user runs it, in its own process."""
    return subprocess.run([sys.executable, "-m", "indexer.cli", "compare", *args], capture_output=True, text=True,
                          timeout=120)


# ---- real runs --------------------------------------------------------------------------------------


def test_rows_carry_per_query_recall(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    for row in json.loads((a / "report.json").read_text())["rows"]:
        recall = np.load(a / row["recall_file"])
        assert recall.dtype == np.float32 and recall.shape == (QUERIES,)
        assert float(recall.mean()) == pytest.approx(row["recall"], abs=1e-4)


def test_same_cells_of_two_runs_match_and_do_not_differ(runs: tuple[Path, Path]) -> None:
    result = compare_runs(read_report_dir(runs[0]), read_report_dir(runs[1]))
    matched = {(c.cell.backend, c.cell.ordering, c.cell.ef) for c in result.cells}
    assert matched == {("hnswlib", "random", 10), ("hnswlib", "lid_asc", 10), ("exact", "random", None),
                       ("exact", "lid_asc", None)}
    for change in result.cells:  # the same build searched at the same ef: the same answers
        assert change.recall.queries == QUERIES and change.recall.difference == 0.0
        assert change.recall.interval == (0.0, 0.0) and not change.recall.significant and not change.worse
        assert change.qps.ratio == pytest.approx(change.qps.b / change.qps.a)
        assert change.qps.basis == "passes" and change.qps.interval is not None  # rows carry every pass's QPS
    assert result.worse == 0 and result.untested == 0
    assert {c.ef for c in result.only_in_a} == {40} and {c.ef for c in result.only_in_b} == {20}
    text = format_comparison(result)
    assert "0 of 4 matched cells" in text and "n.s." in text and "only in A" in text


def test_matching_ignores_row_order_and_cell_keys(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Rows in another order, and cell keys another version of the engine would compute: the same result."""
    b, document = _copy(runs[1], tmp_path / "b")
    document["rows"] = [{**row, "cell": f"other-{i}"} for i, row in enumerate(reversed(document["rows"]))]
    _save(b, document)
    plain = compare_runs(read_report_dir(runs[0]), read_report_dir(runs[1]))
    shuffled = compare_runs(read_report_dir(runs[0]), read_report_dir(b))
    assert shuffled.model_dump(exclude={"b", "only_in_b"}) == plain.model_dump(exclude={"b", "only_in_b"})
    assert sorted(c.key() for c in shuffled.only_in_b) == sorted(c.key() for c in plain.only_in_b)


def test_a_planted_drop_is_found_and_fails_the_cli(runs: tuple[Path, Path], tmp_path: Path) -> None:
    b, document = _copy(runs[0], tmp_path / "b")
    assert _plant_drop(b, document, ef=40, drop=0.3) == 2
    result = compare_runs(read_report_dir(runs[0]), read_report_dir(b))
    worse = [c for c in result.cells if c.worse]
    assert {(c.cell.backend, c.cell.ef) for c in worse} == {("hnswlib", 40)} and result.worse == 2
    for change in worse:
        assert change.recall.interval is not None and change.recall.interval[1] < 0
        assert change.recall.difference == pytest.approx(change.recall.b - change.recall.a)  # type: ignore[operator]
    assert not result.only_in_a and not result.only_in_b

    assert _cli(str(runs[0]), str(b)).exit_code == 0  # reported, but only --fail-if-worse fails
    failed = _cli_process(str(runs[0]), str(b), "--fail-if-worse")
    assert failed.returncode == 1, failed.stderr
    assert "2 of 6 matched cells have recall significantly worse in B" in failed.stdout
    # the mean drop is at most 0.15 (0.3 on half the queries): under a threshold of 0.2 it does not count
    lenient = _cli(str(runs[0]), str(b), "--fail-if-worse", "--min-recall-drop", "0.2", "--json")
    assert lenient.exit_code == 0, lenient.stderr
    body = json.loads(lenient.stdout)
    assert body["worse"] == 0 and body["min_recall_drop"] == 0.2
    assert all(c["recall"]["significant"] for c in body["cells"] if c["cell"]["ef"] == 40)


def test_cli_identical_runs_pass_with_fail_if_worse(runs: tuple[Path, Path]) -> None:
    proc = _cli(str(runs[0]), str(runs[1]), "--fail-if-worse", "--json")
    assert proc.exit_code == 0, proc.stderr
    assert json.loads(proc.stdout)["worse"] == 0 and proc.stderr == ""


def test_cli_bad_input_is_exit_2_with_one_error_line(runs: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    no_match, document = _copy(runs[0], tmp_path / "seed")
    for row in document["rows"]:
        row["seed"] = 5
    _save(no_match, document)
    short, document = _copy(runs[0], tmp_path / "short")
    first = next(r for r in document["rows"] if r["backend"] == "hnswlib")
    np.save(short / first["recall_file"], np.load(short / first["recall_file"])[:-1])
    other_data, document = _copy(runs[0], tmp_path / "data")
    document["spec"]["dataset"]["seed"] = 4
    _save(other_data, document)
    cases = {
        tmp_path / "missing": "no such directory",
        tmp_path / "empty": "no report.json",
        no_match: "no cells match",
        short: "queries differ",
        other_data: "datasets differ (seed)",
    }
    for b, needle in cases.items():
        proc = _cli(str(runs[0]), str(b), "--fail-if-worse")
        assert proc.exit_code == 2, (b, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (b, proc.stderr)
    assert _cli(str(runs[0]), str(runs[1]), "--min-recall-drop", "2").exit_code == 2
    # and as a user runs it: one line on stderr, exit 2
    user = _cli_process(str(runs[0]), str(tmp_path / "empty"))
    assert user.returncode == 2 and user.stderr.count("\n") == 1 and user.stderr.startswith("error: ")


def test_reports_without_recall_files_compare_untested(runs: tuple[Path, Path], tmp_path: Path) -> None:
    old, document = _copy(runs[1], tmp_path / "old")
    for row in document["rows"]:
        del row["recall_file"]  # as written before per-query recall was published
    _save(old, document)
    result = compare_runs(read_report_dir(runs[0]), read_report_dir(old))
    assert len(result.cells) == 4 and result.untested == 4 and result.worse == 0
    assert all(c.recall.interval is None and c.recall.a is not None for c in result.cells)
    assert any("not tested" in note for note in result.notes)
    assert "untested" in format_comparison(result)


# ---- hand-written runs ---------------------------------------------------------------------------------


def _run(folder: Path, rows: list[dict[str, Any]], recalls: dict[str, np.ndarray], *,
         dataset: dict[str, Any] | None = None) -> PublishedRun:
    """A run whose rows name per-query recall files written here."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in recalls.items():
        np.save(folder / name, values.astype(np.float32))
    spec = {"dataset": dataset or {"kind": "synthetic", "seed": 1}}
    return published_run(folder.name, folder, spec, rows)


def test_sparse_rows_are_not_compared_and_passes_give_a_qps_interval(tmp_path: Path) -> None:
    recall = np.full(50, 0.9)
    row = dense_row(recall_file="r.npy", qps=1000.0, qps_all=[990.0, 1000.0, 1020.0])
    a = _run(tmp_path / "a", [row, sparse_row()], {"r.npy": recall})
    b_row = {**row, "qps": 2000.0, "qps_all": [1980.0, 2000.0, 2100.0]}
    b = _run(tmp_path / "b", [sparse_row(), b_row], {"r.npy": recall})
    result = compare_runs(a, b)
    assert result.not_compared == 2 and len(result.cells) == 1
    qps = result.cells[0].qps
    assert qps.basis == "passes" and qps.ratio == 2.0 and qps.interval is not None
    assert 1.9 < qps.interval[0] <= 2.0 <= qps.interval[1] < 2.2


def test_refusals(tmp_path: Path) -> None:
    recall = np.full(50, 0.9)
    row = dense_row(recall_file="r.npy")
    a = _run(tmp_path / "a", [row], {"r.npy": recall})
    twice = _run(tmp_path / "twice", [row, {**row, "cell": "c1"}], {"r.npy": recall})
    with pytest.raises(UserError, match="two rows measure the same cell"):
        compare_runs(a, twice)
    outside = _run(tmp_path / "outside", [{**row, "recall_file": "../a/r.npy"}], {})
    with pytest.raises(UserError, match="outside the report"):
        compare_runs(a, outside)
    gone = _run(tmp_path / "gone", [{**row, "recall_file": "nope.npy"}], {})
    with pytest.raises(UserError, match="missing"):
        compare_runs(a, gone)
    with pytest.raises(UserError, match="over the limit of 49"):
        compare_runs(a, a, max_queries=49)
    with pytest.raises(UserError, match="max_compare_draws"):
        compare_runs(a, a, resamples=2000, max_draws=50 * 2000 - 1)
    assert compare_runs(a, a, resamples=2000, max_draws=50 * 2000).worse == 0
    no_spec = published_run("no-spec", tmp_path / "a", None, [row])
    assert any("by count only" in n for n in compare_runs(a, no_spec).notes)

"""`indexer run` as a user runs it: a real subprocess, its files, its exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "indexer.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_run_writes_every_report_file(tiny_spec_dict, tmp_path):
    out = tmp_path / "out"
    proc = _run(["run", str(_write(tmp_path, tiny_spec_dict)), "--out", str(out), "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("report.json", "report.csv", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["spec"]["name"] == "tiny" and len(report["key"]) == 16
    for row in report["rows"]:
        ids = np.load(out / row["neighbors"])
        assert ids.dtype == np.int64 and ids.shape == (60, 10)


def _bad_file_spec(tmp_path: Path, base: np.ndarray, queries: np.ndarray | None = None) -> dict:
    np.save(tmp_path / "base.npy", base)
    dataset = {"kind": "file", "path": str(tmp_path / "base.npy"), "query_count": 5}
    if queries is not None:
        np.save(tmp_path / "queries.npy", queries)
        dataset["queries"] = str(tmp_path / "queries.npy")
    return {"name": "bad", "dataset": dataset, "backends": [{"name": "exact"}]}


CASES = {
    "unknown field": (lambda t, s: {**s, "colour": "red"}, "colour"),
    "unknown backend": (lambda t, s: {**s, "backends": [{"name": "annoy"}]}, "backends"),
    "unknown ordering": (lambda t, s: {**s, "orderings": ["sideways"]}, "orderings"),
    "unknown dataset": (lambda t, s: {**s, "dataset": {"kind": "mnist"}}, "dataset"),
    "k too large": (lambda t, s: {**s, "k": 100000}, "larger than the base set"),
    "nan in file": (lambda t, s: _bad_file_spec(t, np.array([[1.0, np.nan]] + [[1.0, 2.0]] * 20)), "NaN"),
    "dimension mismatch": (
        lambda t, s: _bad_file_spec(t, np.ones((20, 4), np.float32), np.ones((3, 5), np.float32)), "dimension"),
    "empty file": (lambda t, s: _bad_file_spec(t, np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32)), "empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_non_zero_with_one_line_and_writes_nothing(case, tiny_spec_dict, tmp_path):
    make, expected = CASES[case]
    out = tmp_path / "out"
    proc = _run(["run", str(_write(tmp_path, make(tmp_path, tiny_spec_dict))), "--out", str(out), "--quiet"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected.lower() in lines[0].lower()
    assert not out.exists()


def test_missing_spec_file(tmp_path):
    proc = _run(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_ctrl_c_leaves_no_report_and_only_finished_cells(tmp_path):
    import signal
    import time

    spec = {
        "name": "slow", "backends": [{"name": "faiss_hnsw", "M": 16, "ef_construction": 200}],
        "dataset": {"kind": "synthetic", "intrinsic_dims": [16, 32], "points_per_subspace": 6000,
                    "queries_per_subspace": 20, "ambient_dim": 64},
        "orderings": ["random", "given", "category"], "seeds": [0, 1],
    }
    out = tmp_path / "out"
    env = {"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "indexer.cli", "run", str(_write(tmp_path, spec)), "--out",
                             str(out), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cells = tmp_path / "data" / "cache" / "cells"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (cells.exists() and any(cells.iterdir())):
        time.sleep(0.2)  # interrupt in the middle of the grid, once a first cell is being built or done
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    for cell in cells.iterdir():
        assert (cell / "rows.json").exists()  # an interrupted cell leaves nothing behind

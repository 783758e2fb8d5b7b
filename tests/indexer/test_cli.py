"""`indexer run` as a user runs it: a real subprocess, its files, its exit codes and one-line errors."""

from __future__ import annotations

import json
import re
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
    "k too large": (lambda t, s: {**s, "k": 100000}, "larger than the smallest index"),
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


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The contract for every user error: exit 2, one `error: ` line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _synthetic(tiny: dict, **changes) -> dict:
    return {**tiny, "dataset": {**tiny["dataset"], **changes}}


def _hdf5_train_group(tmp_path: Path, tiny: dict) -> dict:
    import h5py

    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        f.create_group("train").create_dataset("x", data=np.ones((20, 4), np.float32))
    return {**tiny, "dataset": {"kind": "file", "path": str(tmp_path / "g.hdf5"), "query_count": 5}}


def _fvecs_with_a_partial_row(tmp_path: Path, tiny: dict) -> dict:
    row = np.array([4], "<i4").tobytes() + np.ones(4, "<f4").tobytes()
    (tmp_path / "x.fvecs").write_bytes(row * 20 + b"\x00\x01")
    return {**tiny, "dataset": {"kind": "file", "path": str(tmp_path / "x.fvecs"), "query_count": 5}}


RAW_CASES = {
    "malformed yaml": (lambda t, s: b"name: x\ndataset: {kind: synthetic\n  intrinsic_dims: [2]\n",
                       "not valid YAML/JSON: while parsing a flow mapping expected ',' or '}', but got ':' "
                       "at line 3, column 17"),
    "not utf-8": (lambda t, s: b"name: caf\xe9\n", "is not UTF-8 text"),
    "deeply nested": (lambda t, s: b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
}

SPEC_CASES = {
    "negative seed": (lambda t, s: _synthetic(s, seed=-1), "dataset.synthetic.seed: Input should be greater"),
    "float for an integer": (lambda t, s: {**s, "k": 10.0}, "k: Input should be a valid integer"),
    "bool for an integer": (lambda t, s: {**s, "seeds": [True]}, "seeds.0: Input should be a valid integer"),
    "reduction beyond the input": (lambda t, s: {**s, "reductions": [{"name": "pca", "dims": 33}]},
                                   "reductions.0 (pca-33): 33 dims, but pca of 32-d vectors gives at most 32"),
    "hdf5 train is a group": (_hdf5_train_group, "'train' is a group, not a dataset"),
    "fvecs with a partial row": (_fvecs_with_a_partial_row, "not a whole number of rows"),
    "newlines in a message": (
        lambda t, s: {**s, "dataset": {"kind": "file", "path": str(t / "two\nlines.npy")}}, "two lines.npy"),
    "ef_search over the ceiling": (
        lambda t, s: {**s, "backends": [{"name": "faiss_hnsw", "ef_search": [1_000_000_000]}]},
        "backends.0.faiss_hnsw.ef_search.0: Input should be less than or equal to 4096, got 1000000000"),
    "ef_construction over the ceiling": (
        lambda t, s: {**s, "backends": [{"name": "milvus_lite", "ef_construction": 1_000_000_000}]},
        "backends.0.milvus_lite.ef_construction: Input should be less than or equal to 4096, got 1000000000"),
    "an infinite budget": (lambda t, s: {**s, "advise": {"budget_minutes": float("inf")}},
                           "advise.budget_minutes: Input should be a finite number, got inf"),
}


@pytest.mark.parametrize("case", list(RAW_CASES) + list(SPEC_CASES))
def test_user_errors_are_one_line_exit_2(case, tiny_spec_dict, tmp_path):
    path, out = tmp_path / "spec.yaml", tmp_path / "out"
    if case in RAW_CASES:
        make, expected = RAW_CASES[case]
        path.write_bytes(make(tmp_path, tiny_spec_dict))
    else:
        make, expected = SPEC_CASES[case]
        path = _write(tmp_path, make(tmp_path, tiny_spec_dict))
    line = _one_error_line(_run(["run", str(path), "--out", str(out), "--quiet"], tmp_path))
    assert expected in line
    assert not out.exists()


@pytest.mark.parametrize(
    "args, expected",
    [([], "Missing argument 'SPEC'"), (["spec.yaml"], "Missing option '--out'"),
     (["spec.yaml", "--out", "o", "--colour"], "No such option: --colour")],
)
def test_usage_mistakes_are_one_line_exit_2(args, expected, tmp_path):
    line = _one_error_line(_run(["run", *args], tmp_path))
    assert expected in line and "indexer" in line and "--help" in line


def test_unknown_command(tmp_path):
    assert "No such command 'frob'" in _one_error_line(_run(["frob"], tmp_path))


def test_version(tmp_path):
    import importlib.metadata

    proc = _run(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"indexer {importlib.metadata.version('indexer')}\n"


def test_help_says_what_commands_do_not_how_they_are_built():
    from typer.testing import CliRunner

    from indexer.cli import app

    runner = CliRunner()
    for args in (["--help"], ["run", "--help"], ["worker", "--help"], ["serve", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        for internal in ("loaded by name", "web layer", "Command line:", "renamed into place", "child process"):
            assert internal not in text, (args, internal)
    assert "Serve the HTTP API" in " ".join(runner.invoke(app, ["--help"]).output.split())


def test_help_reads_as_a_commands_help_does():
    """No `<bool>` beside a flag (it takes no value), `SPEC` in the usage line rather than typer's `{SPEC}`, and
    each command's summary on one line of the command list."""
    from typer.testing import CliRunner

    from indexer.cli import app

    runner = CliRunner()
    for args in (["--help"], ["run", "--help"], ["advise", "--help"], ["compare", "--help"], ["export", "--help"],
                 ["worker", "--help"], ["serve", "--help"]):
        result = runner.invoke(app, args, env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "{" not in result.output.split("Usage:")[1].splitlines()[0], (
            args, result.output)
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).output
    assert re.search(r"--version\s+Show the version and exit\.", top), top
    assert "run [OPTIONS] SPEC " in " ".join(runner.invoke(app, ["run", "--help"]).output.split())
    assert "compare [OPTIONS] RUN_A RUN_B " in " ".join(
        runner.invoke(app, ["compare", "--help"]).output.split())
    commands = top.split("Commands")[1]
    advise = [line for line in commands.splitlines() if "advise" in line]
    assert len(advise) == 1 and advise[0].split("advise", 1)[1].strip(" │").endswith("."), commands


def test_bare_command_prints_help_and_exits_2():
    from typer.testing import CliRunner

    from indexer.cli import app

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2 and "Usage" in result.output and "run" in result.output


def test_missing_spec_file(tmp_path):
    proc = _run(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2 and "not found" in proc.stderr


def _sigint_as_at_a_terminal() -> None:
    """In the child before exec: SIGINT handled and unblocked, as under a shell at a terminal. An ignored or
    blocked signal is inherited through exec, and the test's own process may have either from an earlier test
    or library; a run launched so never sees the interrupt (it is what `nohup` and `cmd &` are for)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal_state(pid: int) -> str:
    """The child's ignored, blocked and pending signal masks (for the failure message)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as err:
        return f"no status: {err}"
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigIgn", "SigBlk", "SigPnd", "ShdPnd")))


# Quarantined for a session: in three whole-suite runs the interrupted run exited 0 (the interrupt unseen);
# since the child starts with SIGINT as at a terminal it passed in every run (three, one of them CI's).
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
                             str(out), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_at_a_terminal)
    cells = tmp_path / "data" / "cache" / "cells"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (cells.exists() and any(cells.iterdir())):
        time.sleep(0.2)  # interrupt in the middle of the grid, once a first cell is being built or done
    signals = _signal_state(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stderr, signals, time.monotonic() - deadline + 120)
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    for cell in cells.iterdir():
        assert (cell / "answers.json").exists()  # an interrupted cell leaves nothing behind


def test_a_spec_over_the_limits_exits_2_naming_the_limit_unless_lifted(tiny_spec_dict, tmp_path):
    spec = {**tiny_spec_dict, "dataset": {**tiny_spec_dict["dataset"], "points_per_subspace": 300}}
    path = _write(tmp_path, spec)
    env_limit = {"INDEXER_MAX_QUERIES": "10"}  # the tiny spec has 60 queries
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(path), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300,
                          env={"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", **env_limit})
    line = _one_error_line(proc)
    assert "max_queries: 60 queries, over the limit of 10" in line and not out.exists()
    lifted = subprocess.run(
        [sys.executable, "-m", "indexer.cli", "run", str(path), "--out", str(out), "--quiet", "--no-limits"],
        capture_output=True, text=True, timeout=300,
        env={"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", **env_limit})
    assert lifted.returncode == 0, lifted.stderr
    assert (out / "report.json").exists()


def test_a_reduction_wider_than_the_data_stops_before_any_work(tmp_path):
    spec = {"name": "wide", "dataset": {"kind": "glove", "n": 2000, "queries": 20},
            "backends": [{"name": "exact"}], "reductions": [{"name": "pca", "dims": 64}]}
    proc = _run(["run", str(_write(tmp_path, spec)), "--out", str(tmp_path / "out"), "--quiet"], tmp_path)
    assert "more dimensions than the input's 50" in _one_error_line(proc)


def test_a_dry_run_prints_the_estimate_and_runs_nothing(tiny_spec_dict, tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(_write(tmp_path, tiny_spec_dict)), "--out",
                           str(out), "--dry-run"], capture_output=True, text=True, timeout=300,
                          env={"INDEXER_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "cells: 9 indexes to build" in proc.stdout and "base: 1,200 vectors x 32 dims" in proc.stdout
    assert re.search(r"work: [\d.]+ core-hours \(build [\d.]+ s, .*\); about [\d.]+ s on \d+ cores", proc.stdout), proc.stdout
    assert not out.exists() and not data.exists()


def test_a_spec_over_the_work_limit_exits_2_with_its_estimate(tiny_spec_dict, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(_write(tmp_path, tiny_spec_dict)), "--out",
                           str(tmp_path / "out"), "--dry-run"], capture_output=True, text=True, timeout=300,
                          env={"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
                               "INDEXER_MAX_WORK": "0.000001"})
    line = _one_error_line(proc)
    assert "max_work: the spec's estimated work is" in line and "over the limit of 1e-06 core-hours" in line, line

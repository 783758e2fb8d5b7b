"""`indexer run` with its progress bar on, failing: the error is one line of its own, never the tail of a
progress line (the bar is ended first, and libraries draw no bars of their own under it), in a pipe and on a
terminal. And a spec whose systems are missing fails before the bar, naming them all at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(tmp_path: Path) -> dict[str, str]:
    return {"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
            "TERM": "xterm", "COLUMNS": "100"}


def _spec_failing_after_the_bar_starts(tmp_path: Path) -> Path:
    """A file dataset with a NaN row: admitted (its shape is fine), then refused while the run loads it."""
    base = np.ones((40, 4), np.float32)
    base[3, 1] = np.nan
    np.save(tmp_path / "base.npy", base)
    spec = {"name": "nanfile", "dataset": {"kind": "file", "path": str(tmp_path / "base.npy"), "query_count": 5},
            "backends": [{"name": "exact"}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _lines(output: str) -> list[str]:
    """The output as a log shows it: lines split at newlines, colours and cursor codes dropped, carriage returns
    kept (a redraw that was never ended shows as text before a \\r)."""
    return [ANSI.sub("", line).rstrip("\r") for line in output.split("\n")]


def _assert_error_on_its_own_line(output: str, progress_text: str) -> str:
    lines = _lines(output)
    assert any(progress_text in line for line in lines), output  # the bar was drawn, so the test means something
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, output
    assert errors[0].startswith("error: "), repr(errors[0])  # nothing before it on its line, not even a \r
    return errors[0]


def test_in_a_pipe_the_bar_ends_its_line_before_the_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "indexer.cli", "run", str(_spec_failing_after_the_bar_starts(tmp_path)),
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 2, proc.stdout
    assert "NaN" in _assert_error_on_its_own_line(proc.stdout, "nanfile: load dataset")


def _run_on_a_terminal(args: list[str], tmp_path: Path, timeout: float = 300) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal, as a user's shell would: rich draws and redraws its bar."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=_env(tmp_path))
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every holder of the terminal's other end has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_the_bar_ends_its_line_before_the_error(tmp_path: Path) -> None:
    code, output = _run_on_a_terminal(
        [sys.executable, "-m", "indexer.cli", "run", str(_spec_failing_after_the_bar_starts(tmp_path)),
         "--out", str(tmp_path / "out")], tmp_path)
    assert code == 2, output
    assert "\r" in output  # a terminal's bar: drawn in place
    assert "NaN" in _assert_error_on_its_own_line(output, "nanfile")


# The CLI with its run replaced by one that moves the bar, starts a library's own tqdm bar (as
# sentence-transformers does while embedding) and fails with the bar still open.
FAILS_UNDER_A_LIBRARY_BAR = """
import sys
import indexer.pipeline
from indexer.common.errors import UserError

def run_and_report(spec, *, progress, **kwargs):
    from tqdm import tqdm  # imported during the run, as the embedding library imports it
    progress(0.3, "embed corpus")
    bar = tqdm(total=10, desc="Batches", mininterval=0)
    bar.update(3)
    raise UserError("the model ran out of memory")

indexer.pipeline.run_and_report = run_and_report
from indexer.cli import app
sys.argv = ["indexer", *sys.argv[1:]]
app()
"""


def test_a_library_bar_under_ours_leaves_nothing_on_the_error_line(tiny_spec_dict: dict, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec_dict))
    args = [sys.executable, "-c", FAILS_UNDER_A_LIBRARY_BAR, "run", str(spec), "--out", str(tmp_path / "out")]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path),
                          timeout=300)
    assert proc.returncode == 2, proc.stdout
    assert _assert_error_on_its_own_line(proc.stdout, "tiny: embed corpus") == "error: the model ran out of memory"
    assert "Batches" not in proc.stdout
    code, output = _run_on_a_terminal(args, tmp_path)
    assert code == 2, output
    assert _assert_error_on_its_own_line(output, "tiny: embed corpus") == "error: the model ran out of memory"
    assert "Batches" not in output


# The CLI with two systems' packages hidden (their modules look uninstalled).
MISSING_SYSTEMS = """
import sys
from indexer.backends.declaration import Library
installed = Library.installed
Library.installed = lambda self: self.module not in {"usearch", "chromadb"} and installed(self)
from indexer.cli import app
sys.argv = ["indexer", *sys.argv[1:]]
app()
"""


def test_missing_systems_are_named_at_once_before_the_bar(tiny_spec_dict: dict, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**tiny_spec_dict, "backends": [
        {"name": "hnswlib"}, {"name": "usearch"}, {"name": "chroma"}]}))
    proc = subprocess.run([sys.executable, "-c", MISSING_SYSTEMS, "run", str(spec), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: backends usearch, chroma need the packages usearch, chromadb, which are not installed: "
        "pip install -e '.[chroma,usearch]'"]
    assert proc.stdout == ""  # no bar was started: it fails before any work
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()

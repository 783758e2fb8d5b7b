"""The short-answer soak (bench/soak_short_answers.py) runs end to end: real worker, real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_short_answer_searches_leave_server_memory_flat(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak_short_answers.py"), "--searches", "300",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    figures = re.search(r"short_answers=(\d+) .* rss_before_mib=([\d.]+) rss_after_mib=([\d.]+)", proc.stdout)
    assert figures is not None
    assert int(figures[1]) == 300 and float(figures[3]) <= 1.10 * float(figures[2])

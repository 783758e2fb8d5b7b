"""Time and peak memory of one `indexer run`, the whole process tree counted (driver and cell processes).

Memory is the tree's proportional set size (PSS: a page shared by k processes counts 1/k in each, so
memory-mapped inputs count once), sampled every half second; peak RSS of the driver is printed beside it.

    python bench/measure_run.py examples/scale-synthetic-1m.yaml --workers 2 [-- more indexer run options]

prints one line: spec, seconds, peak tree PSS, peak driver RSS, and the base vectors' size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(PSS of the process and its descendants, RSS of the process) in bytes."""
    pss = 0
    procs = [root]
    try:
        procs += root.children(recursive=True)
    except psutil.Error:
        pass
    for proc in procs:
        try:
            pss += proc.memory_full_info().pss
        except psutil.Error:
            pass
    try:
        rss = root.memory_info().rss
    except psutil.Error:
        rss = 0
    return pss, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--cache-dir", default=None, help="default: a fresh directory (a cold run)")
    parser.add_argument("--out", default=None, help="keep the report here (default: a scratch directory)")
    parser.add_argument("rest", nargs="*", help="more `indexer run` options, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="measure-run-") as scratch:
        cache = args.cache_dir or str(Path(scratch) / "cache")
        out = Path(args.out) if args.out else Path(scratch) / "out"
        command = [sys.executable, "-m", "indexer.cli", "run", args.spec, "--out", str(out),
                   "--cache-dir", cache, "--workers", str(args.workers), "--executor", args.executor, "-q",
                   "--no-limits", *args.rest]
        t0 = time.perf_counter()
        proc = subprocess.Popen(command)
        root = psutil.Process(proc.pid)
        peak = {"pss": 0, "rss": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pss, rss = tree_memory(root)
                peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        if code != 0:
            sys.exit(f"indexer run failed with exit code {code}")
        import json

        report = json.loads((out / "report.json").read_text())
        rows = report["rows"]
        n, dims = rows[0]["index_size"], rows[0]["dims"]
        index_mib = max(r["index_bytes"] for r in rows) / 2**20
        print(f"{Path(args.spec).name}: n={n:,} d={dims} workers={args.workers} {seconds:,.0f} s "
              f"({seconds / 60:.1f} min); peak memory {peak['pss'] / 2**20:,.0f} MiB (tree PSS), driver RSS "
              f"{peak['rss'] / 2**20:,.0f} MiB; vectors {n * dims * 4 / 2**20:,.0f} MiB, one index "
              f"{index_mib:,.0f} MiB")


if __name__ == "__main__":
    main()

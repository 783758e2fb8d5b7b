"""Soak: many searches that come up short, against a real server; its resident memory must stay flat.

An hnswlib graph built with M=2 leaves most queries unable to reach k points. hnswlib 0.8.0 raises
for those and leaks its result buffers on every raised call (one request once took the API to 23 GB),
so the backend asks each query only for what it can reach. This builds such an index through the
engine (spec -> worker), serves it with uvicorn, sends N single-vector searches with k near the
index size, and prints the server's RSS before and after. Exit 1 when RSS grew by more than 10%.

    python bench/soak_short_answers.py [--searches 2000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_service import build_index, server_env, start_server  # noqa: E402

POINTS, DIM = 3000, 64


def sparse_spec() -> dict[str, object]:
    return {
        "name": "soak-short-answers",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [32], "points_per_subspace": POINTS,
                    "queries_per_subspace": 10, "ambient_dim": DIM},
        "metric": "cosine",
        "k": 10,
        "backends": [{"name": "hnswlib", "M": 2, "ef_construction": 4, "ef_search": [10]}],
    }


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def soak(data_dir: Path, searches: int) -> tuple[float, float, int]:
    """(RSS before, RSS after, searches that came back short)."""
    env = server_env(data_dir, threads=1)
    env["INDEXER_MAX_K"] = str(POINTS)
    view = build_index(data_dir, sparse_spec(), env)
    proc, url = start_server(env, workers=1)
    try:
        rng = np.random.default_rng(0)
        queries = rng.standard_normal((searches + 100, DIM)).astype(np.float32).round(5).tolist()
        short = 0
        with httpx.Client(base_url=url, timeout=60) as client:

            def one(q: list[float]) -> int:
                r = client.post(f"/indexes/{view.id}/search", json={"vectors": [q], "k": POINTS})
                r.raise_for_status()
                return len(r.json()["results"][0])

            for q in queries[:100]:  # load the index, warm the allocators
                one(q)
            before = rss_mib(proc.pid)
            started = time.perf_counter()
            for q in queries[100:]:
                short += one(q) < POINTS
            seconds = time.perf_counter() - started
            after = rss_mib(proc.pid)
        print(f"searches={searches} short_answers={short} seconds={seconds:.1f} "
              f"rss_before_mib={before:.1f} rss_after_mib={after:.1f} growth={after / before - 1:+.1%}")
        return before, after, short
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        before, after, short = soak(args.data_dir or Path(tmp), args.searches)
    if short < args.searches // 2:
        print("too few short answers: the soak did not test what it should", file=sys.stderr)
        return 1
    return 0 if after <= before * 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())

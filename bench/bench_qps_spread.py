"""Is a QPS figure the index's or the neighbour's? The spread of QPS across orderings at equal ef, with one
worker against two, in one run of this script.

    python bench/bench_qps_spread.py [--points 40000] [--dim 64]

One hnswlib configuration in four orderings (random, lid_asc, lid_desc, category) searched at the same ef
values. With one worker nothing else runs while a cell times its searches; with two, the other cell is
building. The cells take the machine's timing lock (indexer/common/timing.py) so that no timed pass overlaps
a build: the spread (fastest / slowest ordering at one ef) with two workers should then stay within 1.2x of
one worker's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from indexer.engine.executors import ExecutorConfig
from indexer.engine.runner import run
from indexer.engine.spec import parse_spec
from indexer.model.results import DenseRow

ORDERINGS = ["random", "lid_asc", "lid_desc", "category"]
EFS = [10, 40, 160]


def spec_dict(points: int, dim: int) -> dict[str, Any]:
    return {
        "name": "bench-qps-spread",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [4, 8, 16, 32], "points_per_subspace": points // 4,
                    "queries_per_subspace": 250, "ambient_dim": dim, "seed": 1},
        "metric": "cosine", "k": 10, "orderings": ORDERINGS,
        "backends": [{"name": "hnswlib", "M": 16, "ef_construction": 100, "ef_search": EFS}],
        "recall_targets": [], "lid": {"k": 20},
    }


def spreads(rows: list[DenseRow]) -> dict[int, float]:
    """Per ef: the fastest ordering's QPS over the slowest's."""
    out = {}
    for ef in EFS:
        qps = [r.qps for r in rows if r.ef == ef]
        out[ef] = max(qps) / min(qps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    spec = parse_spec(spec_dict(args.points, args.dim))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        run(spec, cache_dir=cache)  # inputs (ground truth, LID) computed once, cells too
        figures = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            result = run(spec, cache_dir=cache, executor=ExecutorConfig("local", workers=workers), fresh=True)
            seconds = time.perf_counter() - t0
            rows = [r for r in result.rows if isinstance(r, DenseRow)]
            figures[workers] = spreads(rows)
            print(f"{workers} worker(s): {seconds:.1f} s; QPS by ordering at each ef:")
            for ef in EFS:
                by = {r.ordering: r.qps for r in rows if r.ef == ef}
                print(f"  ef {ef:>4}: " + "  ".join(f"{o} {by[o]:,.0f}" for o in ORDERINGS)
                      + f"   spread {figures[workers][ef]:.2f}x")
    print("spread with 2 workers / spread with 1 (target <= 1.2):")
    for ef in EFS:
        print(f"  ef {ef:>4}: {figures[2][ef] / figures[1][ef]:.2f}")


if __name__ == "__main__":
    main()

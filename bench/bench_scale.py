"""The executors against each other on one spec, in one run: what a second worker buys, what Ray costs.

    python bench/bench_scale.py [--points 100000] [--cells 4]

A sweep of `--cells` equal cells (hnswlib, random order, one seed each, two ef values and the cost of
recall 0.9): builds on one thread, which a second worker runs beside the first; the searches already use
every core in one worker, so a search-heavy sweep gains less. Its inputs (ground truth, LID) computed once beforehand so the figures are the cells' own:
  - local executor, 1 worker (in the driver, every core searching) against 2 workers: the speed-up
    (target on 2 cores: at least 1.8x);
  - Ray, 2 workers, against local with 2: the overhead per cell (Ray's start is reported apart);
  - peak memory of the 2-worker run (PSS of the process tree, sampled) against the vectors plus the
    indexes alive at once, after subtracting a fixed overhead: the same run's tree at 1,000 points.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def spec_dict(points: int, cells: int) -> dict[str, Any]:
    per = points // 4
    return {
        "name": "bench-scale",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [8, 16, 32, 64], "points_per_subspace": per,
                    "queries_per_subspace": 250, "ambient_dim": 128, "seed": 1},
        "metric": "cosine", "k": 10, "orderings": ["random"],
        "backends": [{"name": "hnswlib", "M": 16, "ef_construction": 100, "ef_search": [10, 40]}],
        "seeds": list(range(cells)), "lid": {"k": 20}, "recall_targets": [0.9],
    }


class PeakMemory:
    """The process tree's peak PSS while the block runs (a page shared by k processes counts 1/k each)."""

    def __enter__(self) -> PeakMemory:
        self.peak, self.done = 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        me = psutil.Process()
        while not self.done.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.done.wait(0.2)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def timed(spec: Any, cache: Path, executor: Any) -> tuple[float, int, Any]:
    from indexer.engine.runner import run

    with PeakMemory() as memory:
        t0 = time.perf_counter()
        result = run(spec, cache_dir=cache, executor=executor, fresh=True)
        seconds = time.perf_counter() - t0
    return seconds, memory.peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--cells", type=int, default=4)
    args = parser.parse_args()

    import ray

    from indexer.engine.executors import ExecutorConfig, cores
    from indexer.engine.runner import run
    from indexer.engine.spec import parse_spec

    spec = parse_spec(spec_dict(args.points, args.cells))
    small = parse_spec(spec_dict(1_000, 2))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        cache = Path(scratch) / "cache"
        run(spec, cache_dir=cache)  # the inputs, once: every timed run below rebuilds the cells only
        run(small, cache_dir=cache)
        one, _, result = timed(spec, cache, ExecutorConfig("local", workers=1))
        two, peak, _ = timed(spec, cache, ExecutorConfig("local", workers=2))
        _, fixed, _ = timed(small, cache, ExecutorConfig("local", workers=2))
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            on_ray, _, _ = timed(spec, cache, ExecutorConfig("ray", workers=2))
        finally:
            ray.shutdown()
    rows = result.rows
    vectors = rows[0].index_size * rows[0].dims * 4
    index = max(r.index_bytes for r in rows)
    alive = vectors + 2 * index  # the base (shared, memory-mapped) and the two indexes being built at once
    print(f"{args.cells} cells of hnswlib over {rows[0].index_size:,} x {rows[0].dims} on {cores()} cores")
    print(f"local, 1 worker:  {one:7.1f} s")
    print(f"local, 2 workers: {two:7.1f} s   speed-up {one / two:.2f}x (target >= 1.8)")
    print(f"ray, 2 workers:   {on_ray:7.1f} s   overhead {(on_ray - two) / args.cells:+.2f} s per cell against "
          f"local (ray.init took {ray_start:.1f} s, not counted)")
    print(f"peak memory, 2 workers: {peak / 2**20:,.0f} MiB; fixed overhead (same run at 1,000 points) "
          f"{fixed / 2**20:,.0f} MiB; vectors + 2 indexes {alive / 2**20:,.0f} MiB; "
          f"(peak - fixed) / (vectors + indexes) = {(peak - fixed) / alive:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()

"""What a run costs before and after its cells: the fixed part of `indexer run` when every input is cached.

    python bench/bench_fixed_cost.py [--points 80000] [--dim 128]

A spec of four orderings and one hnswlib configuration is run once to fill the cache; then the same command
a user types is timed again, cells and inputs cached, with one worker and with two. What remains is the
fixed cost of a run (target: under 5 s), broken down: the interpreter and imports (`indexer --version`),
each phase the engine logs (loading, cached ground truth and LID, space measures, the report), and the rest
(the pool's processes, reading finished cells). A second worker can only speed up the cells: this fixed
part is what keeps a whole run's speed-up below the two builds' ceiling.

Then the cells themselves: the same command with `--fresh` (every cell rebuilt, inputs cached) with one
worker and with two, beside the machine's ceiling measured in the same run: raw hnswlib builds of the same
size, one alone and then two at once in two processes (2.00 = two builds do not slow each other). Target:
the run's 2-worker speed-up at least 90% of that ceiling.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

INDEXER = Path(sys.executable).with_name("indexer")
PHASE = re.compile(r"INFO indexer\.engine\.runner: (?P<name>.+): (?P<seconds>[0-9.]+) s$")


def spec_dict(points: int, dim: int) -> dict[str, object]:
    return {
        "name": "bench-fixed-cost",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [8, 16, 32, 64], "points_per_subspace": points // 4,
                    "queries_per_subspace": 250, "ambient_dim": dim, "seed": 1},
        "metric": "cosine", "k": 10, "orderings": ["random", "lid_asc", "lid_desc", "category"],
        "backends": [{"name": "hnswlib", "M": 16, "ef_construction": 100, "ef_search": [10, 40]}],
        "recall_targets": [], "lid": {"k": 20},
    }


def raw_build(job: tuple[int, int, int]) -> float:
    """One raw hnswlib build on one thread, as a cell builds (M 16, ef_construction 100)."""
    import hnswlib
    import numpy as np

    points, dim, seed = job
    x = np.random.default_rng(seed).standard_normal((points, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(points, M=16, ef_construction=100, random_seed=seed)
    index.add_items(x, np.arange(points), num_threads=1)
    return time.perf_counter() - t0


def raw_ceiling(points: int, dim: int) -> tuple[float, float, list[float]]:
    """Throughput of two concurrent raw builds against one alone on this machine, now."""
    spawn = mp.get_context("spawn")
    with spawn.Pool(1) as pool:
        alone = pool.map(raw_build, [(points, dim, 0)])[0]
    with spawn.Pool(2) as pool:
        both = pool.map(raw_build, [(points, dim, 1), (points, dim, 2)])
    return 2 * alone / max(both), alone, both


def timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([str(INDEXER), *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stderr


def phases(log: str) -> dict[str, float]:
    """The engine's own phase durations (top-level phases only: a cell's are inside `cells`)."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        m = PHASE.search(line)
        if m and "seed=" not in m.group("name"):
            name = re.sub(r"^.*?: ", "", m.group("name")) if ": " in m.group("name") else m.group("name")
            out[name] = out.get(name, 0.0) + float(m.group("seconds"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=80_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as scratch:
        tmp = Path(scratch)
        spec = tmp / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_dict(args.points, args.dim)))
        common = [str(spec), "--cache-dir", str(tmp / "cache"), "--quiet", "--debug"]
        cold, _ = timed(["run", *common, "--out", str(tmp / "cold")])
        imports, _ = timed(["--version"])
        print(f"{args.points:,} x {args.dim}, 4 orderings x hnswlib (+ exact): first run {cold:.1f} s")
        print(f"interpreter and imports (`indexer --version`): {imports:.2f} s")
        for workers in (1, 2):
            total, log = timed(["run", *common, "--out", str(tmp / f"w{workers}"), "--workers", str(workers)])
            steps = phases(log)
            rest = total - imports - sum(steps.values())
            print(f"cached rerun, {workers} worker(s): {total:.2f} s (target under 5 s)")
            for name, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<40} {seconds:6.2f} s")
            print(f"  {'the rest (processes, cached cells)':<40} {rest:6.2f} s")
        fresh = {}
        for workers in (1, 2):
            fresh[workers], _ = timed(["run", *common, "--out", str(tmp / f"f{workers}"), "--workers", str(workers),
                                       "--fresh"])
        ceiling, alone, both = raw_ceiling(args.points // 4 * 4, args.dim)
        speedup = fresh[1] / fresh[2]
        print(f"cells rebuilt (--fresh), inputs cached: 1 worker {fresh[1]:.1f} s, 2 workers {fresh[2]:.1f} s: "
              f"{speedup:.2f}x")
        print(f"raw ceiling now: one hnswlib build alone {alone:.1f} s, two at once {both[0]:.1f} / {both[1]:.1f} s: "
              f"{ceiling:.2f}x")
        print(f"run speed-up / raw ceiling: {speedup / ceiling:.2f} (target at least 0.90)")


if __name__ == "__main__":
    main()

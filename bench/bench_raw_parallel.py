"""The machine's own ceiling for two workers: raw hnswlib, one single-thread build alone, then two at once.

    python bench/bench_raw_parallel.py

bench_scale's 2-worker speed-up is bounded by how much two concurrent builds slow each other down on
this machine (shared caches, memory bandwidth, the hypervisor); this measures that bound without the
engine: 100,000 x 128 unit vectors, hnswlib M 16 / ef_construction 100, one thread per build.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np


def build(seed: int) -> float:
    import hnswlib

    x = np.random.default_rng(seed).standard_normal((100_000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=128)
    index.init_index(100_000, M=16, ef_construction=100, random_seed=seed)
    index.add_items(x, np.arange(100_000), num_threads=1)
    return time.perf_counter() - t0


def main() -> None:
    spawn = mp.get_context("spawn")
    with spawn.Pool(1) as pool:
        alone = pool.map(build, [0])[0]
    with spawn.Pool(2) as pool:
        both = pool.map(build, [1, 2])
    print(f"one build alone {alone:.1f} s; two at once {both[0]:.1f} / {both[1]:.1f} s; "
          f"throughput of two workers {2 * alone / max(both):.2f}x one (2.00 = no contention)")


if __name__ == "__main__":
    main()

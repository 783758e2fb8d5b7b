"""Engine overhead against the raw libraries doing the same work, measured in the same run.

For one experiment's data (default: the lid-ordering spec's synthetic set, 48,000 x 384) it times
  - exact ground truth: indexer.science.groundtruth.exact_knn   vs  faiss.IndexFlatIP add + search
  - pointwise LID:      indexer.science.lid.pointwise_lid        vs  faiss self-search + the MLE in numpy
  - one index build:    indexer backend build (hnswlib)  vs  hnswlib.add_items with one thread
each in a fresh child process (so peak memory is per phase), best of --repeat, and prints the
ratios (target: each at most 1.2) and the peak resident memory of each side.

    python bench/bench_engine.py [--spec examples/lid-ordering.yaml] [--repeat 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np


def _data(spec_path: str) -> tuple[Any, np.ndarray, np.ndarray]:
    from indexer.datasets import load_dataset
    from indexer.engine.spec import load_spec
    from indexer.science.groundtruth import prepare_vectors

    spec = load_spec(spec_path)
    ds = load_dataset(spec.dataset, cache_dir=Path("/tmp/bench-engine-cache"))
    return spec, prepare_vectors(ds.base, spec.metric), prepare_vectors(ds.queries, spec.metric)


def _engine_gt(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    from indexer.science.groundtruth import exact_knn

    exact_knn(base, queries, spec.k, "ip")


def _raw_gt(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    index.search(queries, spec.k)


def _engine_lid(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    from indexer.science.lid import pointwise_lid

    pointwise_lid(base, spec.lid.k, spec.metric)


def _raw_lid(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    d2, _ = index.search(base, spec.lid.k + 1)
    d = np.sqrt(np.maximum(d2[:, 1:], 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        _ = -1.0 / np.mean(np.log(d / d[:, -1:]), axis=1)


def _order(n: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(n)


def _engine_build(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    from indexer.backends import make_index

    backend = next(b for b in spec.backends if b.name == "hnswlib")
    make_index(backend, base.shape[1], "ip", seed=0).build(base, _order(len(base)))


def _raw_build(spec: Any, base: np.ndarray, queries: np.ndarray) -> None:
    import hnswlib

    from indexer.model.seeds import library_seed

    backend = next(b for b in spec.backends if b.name == "hnswlib")
    order = _order(len(base))
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=backend.M, ef_construction=backend.ef_construction,
                     random_seed=library_seed(0, "hnswlib"))
    index.add_items(base[order], ids=order, num_threads=1)


PHASES = {
    "ground truth": (_engine_gt, _raw_gt),
    "pointwise LID": (_engine_lid, _raw_lid),
    "hnswlib build": (_engine_build, _raw_build),
}


def _child(fn_name: str, spec_path: str, conn: Any) -> None:
    spec, base, queries = _data(spec_path)
    fn = globals()[fn_name]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    fn(spec, base, queries)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((seconds, peak / 1024, (peak - before) / 1024))


def _measure(fn_name: str, spec_path: str) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(fn_name, spec_path, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="examples/lid-ordering.yaml")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    spec, base, _ = _data(args.spec)
    print(f"spec {args.spec}: base {base.shape}, k={spec.k}, lid.k={spec.lid.k}; best of {args.repeat}")
    print(f"{'phase':<16}{'engine s':>10}{'raw s':>10}{'ratio':>8}{'engine MiB':>12}{'raw MiB':>10}")
    worst = 0.0
    for phase, (engine, raw) in PHASES.items():
        e = min((_measure(engine.__name__, args.spec) for _ in range(args.repeat)), key=lambda r: r[0])
        r = min((_measure(raw.__name__, args.spec) for _ in range(args.repeat)), key=lambda r: r[0])
        ratio = e[0] / r[0]
        worst = max(worst, ratio)
        print(f"{phase:<16}{e[0]:>10.2f}{r[0]:>10.2f}{ratio:>8.2f}{e[1]:>12.0f}{r[1]:>10.0f}")
    print(f"worst time ratio {worst:.2f} (target <= 1.2); MiB = peak resident memory of the child process")


if __name__ == "__main__":
    main()

"""Concurrent clients: what one query per call costs through the project's backends against the raw
library, from one client and from one client per core, in one run of this script.

    python bench/bench_clients.py [--points 50000] [--dim 128] [--ef 40]

A row's `latency.qps_clients` is measured by indexer.engine.latency: threads of one process, each sending
one query per call. The raw figure is the same loop calling hnswlib.Index.knn_query (and faiss's HNSW
search) directly, so the ratio is the wrapper's cost (the shared-ef gate, padding, the answer's arrays).
Target: the wrapper within 1.5x of raw at one client, and not serialising clients (its clients/1-client
ratio within 0.8x of raw's).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from indexer.backends import new_index
from indexer.engine.latency import _concurrent_wall, _one_at_a_time, serving_cores


class Calls:
    """A search function as the engine's load generator calls an index: one query per call. Raw library
    calls and the project's backends go through the same loop (indexer.engine.latency), so the ratio
    is the backend's cost, not the harness's."""

    def __init__(self, search: Callable[[np.ndarray], object]) -> None:
        self._search = search

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> object:
        return self._search(queries)


def qps(search: Callable[[np.ndarray], object], queries: np.ndarray, clients: int) -> float:
    """Queries per second of `clients` closed-loop clients, each sending one query per call."""
    probe: Any = Calls(search)
    if clients == 1:
        return len(queries) / float(_one_at_a_time(probe, queries, 0, None).sum())
    return len(queries) / _concurrent_wall(probe, queries, 0, None, clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--ef", type=int, default=40)
    args = parser.parse_args()
    import faiss
    import hnswlib

    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.points, args.dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[rng.choice(len(base), args.queries, replace=False)] + 0.1 * rng.standard_normal(
        (args.queries, args.dim)).astype(np.float32)
    clients, k, ef = serving_cores(), 10, args.ef
    print(f"{args.points} x {args.dim}, {args.queries} queries one per call, k={k}, ef={ef}, {clients} clients")

    raw = hnswlib.Index(space="ip", dim=args.dim)
    raw.init_index(max_elements=args.points, M=16, ef_construction=100, random_seed=0)
    raw.add_items(base, np.arange(args.points))
    raw.set_ef(ef)
    ours = new_index("hnswlib", args.dim, "ip", params={"M": 16, "ef_construction": 100}, seed=0)
    ours.build(base, np.arange(args.points))

    raw_faiss = faiss.IndexHNSWFlat(args.dim, 16, faiss.METRIC_INNER_PRODUCT)
    raw_faiss.hnsw.efConstruction = 100
    raw_faiss.add(base)
    params = faiss.SearchParametersHNSW(efSearch=ef)
    ours_faiss = new_index("faiss_hnsw", args.dim, "ip", params={"M": 16, "ef_construction": 100}, seed=0)
    ours_faiss.build(base, np.arange(args.points))

    cases = {
        "hnswlib": (lambda q: raw.knn_query(q, k=k, num_threads=1), lambda q: ours.search(q, k, ef)),
        "faiss_hnsw": (lambda q: raw_faiss.search(q, k, params=params), lambda q: ours_faiss.search(q, k, ef)),
    }
    print(f"{'library':<11} {'raw 1':>8} {'ours 1':>8} {'ratio':>6} {'raw N':>8} {'ours N':>8} "
          f"{'raw N/1':>8} {'ours N/1':>8}")
    for name, (raw_search, our_search) in cases.items():
        raw_search(queries[:1]), our_search(queries[:1])  # warm up
        r1, o1 = qps(raw_search, queries, 1), qps(our_search, queries, 1)
        rn, on = qps(raw_search, queries, clients), qps(our_search, queries, clients)
        print(f"{name:<11} {r1:8.0f} {o1:8.0f} {r1 / o1:6.2f} {rn:8.0f} {on:8.0f} {rn / r1:8.2f} {on / o1:8.2f}")


if __name__ == "__main__":
    main()

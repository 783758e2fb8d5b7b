"""Query latency and QPS as a serving user meets them: one query per request, from one or many clients.

A row's `qps` searches the whole query set in one batch call; a service answers one query per request,
and several requests at once. These are ann-benchmarks' and VectorDBBench's other two figures: the
latency percentiles of one client sending one query at a time, and the QPS of `clients` concurrent
clients doing the same. Clients are threads of this process, as the API's request handlers are, so a
backend that holds the GIL or a lock while it searches shows it here (VectorDBBench uses processes; a
library that releases the GIL scales the same either way). Every pass holds the machine's timing lock
exclusively (indexer.common.timing), so no other cell builds or times meanwhile.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from indexer.backends import VectorIndex
from indexer.common import timing
from indexer.model.results import Latency

LATENCY_QUERIES = 200  # searched one at a time per ef, by one client and by every client (a bound on time)


def serving_cores() -> int:
    """The cores this process may run on: the concurrent clients of the many-client pass."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def single_query_latency(index: VectorIndex, queries: np.ndarray, k: int, ef: int | None,
                         clients: int | None = None) -> Latency:
    """p50/p95/p99 of one query at a time from one client, and QPS of one and of `clients` clients
    (default: one per core), over the first LATENCY_QUERIES queries."""
    sample = queries[:LATENCY_QUERIES]
    many = clients or serving_cores()
    with timing.exclusive():
        seconds = _one_at_a_time(index, sample, k, ef)
        wall = _concurrent_wall(index, sample, k, ef, many)
    ms = seconds * 1e3
    return Latency(queries=len(sample), p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)),
                   p99_ms=float(np.percentile(ms, 99)), qps_one_client=len(sample) / max(float(seconds.sum()), 1e-9),
                   clients=many, qps_clients=len(sample) / max(wall, 1e-9))


def _one_at_a_time(index: VectorIndex, sample: np.ndarray, k: int, ef: int | None) -> np.ndarray:
    seconds = np.empty(len(sample))
    for i in range(len(sample)):
        one = sample[i : i + 1]
        t0 = time.perf_counter()
        index.search(one, k, ef)
        seconds[i] = time.perf_counter() - t0
    return seconds


def _concurrent_wall(index: VectorIndex, sample: np.ndarray, k: int, ef: int | None, clients: int) -> float:
    """Wall seconds for `clients` threads to answer `sample` between them, each one query per call,
    taking the next unanswered query as it finishes one (a closed loop, as a load generator runs)."""
    next_query = iter(range(len(sample)))
    take = threading.Lock()
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client() -> None:
        start.wait()
        try:
            while True:
                with take:
                    i = next(next_query, None)
                if i is None:
                    return
                index.search(sample[i : i + 1], k, ef)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall

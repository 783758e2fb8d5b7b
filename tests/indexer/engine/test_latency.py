"""The serving measures: one query per call from one client and from many at once.

A fake index whose search sleeps (releasing the GIL, as hnswlib's does) tells the measure's own
arithmetic from the machine's: every query is answered exactly once, one client's p50 is the sleep,
and many clients overlap unless the index serialises them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest

from indexer.engine.latency import LATENCY_QUERIES, serving_cores, single_query_latency

SLEEP = 0.004


class SleepyIndex:
    def __init__(self, serialise: bool = False, fail_at: int | None = None) -> None:
        self.calls: Counter[int] = Counter()
        self._count = threading.Lock()
        self._serial = threading.Lock() if serialise else None
        self.fail_at = fail_at

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        assert len(queries) == 1, "one query per call"
        q = int(queries[0, 0])
        with self._count:
            self.calls[q] += 1
        if q == self.fail_at:
            raise RuntimeError("the backend broke")
        if self._serial is not None:
            with self._serial:
                time.sleep(SLEEP)
        else:
            time.sleep(SLEEP)
        return np.zeros((1, k), np.int64), np.zeros((1, k), np.float32)


def _queries(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)[:, None].repeat(4, axis=1)


def test_every_query_is_answered_once_by_one_client_and_once_by_the_many() -> None:
    index = SleepyIndex()
    lat = single_query_latency(index, _queries(LATENCY_QUERIES + 50), k=3, ef=10, clients=4)  # type: ignore[arg-type]
    assert lat.queries == LATENCY_QUERIES and lat.clients == 4
    assert set(index.calls) == set(range(LATENCY_QUERIES))  # the sample is the first LATENCY_QUERIES
    assert set(index.calls.values()) == {2}  # once in the one-client pass, once in the many-client pass
    assert SLEEP * 1e3 <= lat.p50_ms < SLEEP * 1e3 * 3
    assert lat.p50_ms <= lat.p95_ms <= lat.p99_ms


def test_clients_overlap_unless_the_index_serialises_them() -> None:
    free = single_query_latency(SleepyIndex(), _queries(60), k=1, ef=None, clients=4)  # type: ignore[arg-type]
    assert free.qps_clients is not None and free.qps_clients > 2.5 * free.qps_one_client
    serial = single_query_latency(SleepyIndex(serialise=True), _queries(60), k=1, ef=None,  # type: ignore[arg-type]
                                  clients=4)
    assert serial.qps_clients is not None and serial.qps_clients < 1.5 * serial.qps_one_client


def test_a_client_error_reaches_the_caller() -> None:
    index = SleepyIndex(fail_at=7)
    with pytest.raises(RuntimeError, match="the backend broke"):
        single_query_latency(index, _queries(20), k=1, ef=None, clients=3)  # type: ignore[arg-type]


def test_the_default_is_one_client_per_core() -> None:
    lat = single_query_latency(SleepyIndex(), _queries(8), k=1, ef=None)  # type: ignore[arg-type]
    assert lat.clients == serving_cores() >= 1

"""Concurrent searches that share an index-wide setting (hnswlib's ef, usearch's expansion).

Searches at the value already set run together; a search at another value never overlaps one that
holds a different value. Then the real libraries: many threads at mixed ef answer exactly what one
thread answers query by query.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.backends import new_index
from indexer.backends.shared_setting import SharedSetting


def test_holders_of_the_same_value_run_together() -> None:
    applied: list[int] = []
    setting = SharedSetting[int](applied.append)
    both_inside = threading.Barrier(2, timeout=5)

    def search() -> None:
        with setting.holding(40):
            both_inside.wait()  # raises BrokenBarrierError if the two were serialised

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(search) for _ in range(2)]:
            f.result()
    assert applied == [40]  # set once, shared


def test_a_different_value_waits_and_is_never_seen_by_another_holder() -> None:
    current: list[int | None] = [None]
    setting = SharedSetting[int](lambda v: current.__setitem__(0, v))
    broken: list[str] = []
    rng = random.Random(0)
    values = [rng.choice([10, 20, 80]) for _ in range(300)]

    def search(v: int) -> None:
        with setting.holding(v):
            if current[0] != v:
                broken.append(f"entered at {current[0]} wanting {v}")
            time.sleep(0.0005)
            if current[0] != v:
                broken.append(f"changed to {current[0]} under {v}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(search, values))
    assert broken == []


def test_forget_waits_for_running_searches_and_makes_the_next_one_set_again() -> None:
    applied: list[int] = []
    setting = SharedSetting[int](applied.append)
    with setting.holding(5):
        pass
    setting.forget()
    with setting.holding(5):
        pass
    assert applied == [5, 5]


@pytest.mark.parametrize("backend", ["hnswlib", "usearch"])
def test_many_threads_at_mixed_ef_answer_as_one_thread_does(backend: str) -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3000, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:200] + 0.05 * rng.standard_normal((200, 16)).astype(np.float32)
    index = new_index(backend, 16, "ip", params={"M": 4, "ef_construction": 16}, seed=0)
    index.build(base, np.arange(len(base)))
    efs = [10, 14, 200]  # small graphs and ef far apart: a leaked ef changes answers
    serial = {(i, ef): index.search(queries[i : i + 1], 10, ef)[0] for i in range(len(queries)) for ef in efs}
    assert any(not np.array_equal(serial[(i, 10)], serial[(i, 200)]) for i in range(len(queries)))
    jobs = [(i, ef) for _ in range(3) for i in range(len(queries)) for ef in efs]
    random.Random(1).shuffle(jobs)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda job: index.search(queries[job[0] : job[0] + 1], 10, job[1])[0], jobs))
    wrong = [job for job, ids in zip(jobs, got, strict=True) if not np.array_equal(ids, serial[job])]
    assert wrong == []
    index.close()

"""The ef ladder's rungs, each query's first rung with recall 1.0, the percentiles and capped share of those, and
the hardest tenth's recall beside the rest's: against direct computations on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.science.ef_ladder import (
    EF_LADDER_CAP,
    NOT_REACHED,
    capped_share,
    ef_percentile,
    first_full,
    ladder,
    ladder_cap,
)
from indexer.science.metrics import hardest_queries, recall_hardest


def test_the_ladder_doubles_from_k_to_its_cap() -> None:
    assert ladder(10, 1024) == [10, 20, 40, 80, 160, 320, 640, 1024]
    assert ladder(16, 64) == [16, 32, 64]
    assert ladder(10, 10) == [10]
    assert ladder_cap(10, 100_000, 4096) == EF_LADDER_CAP
    assert ladder_cap(10, 500, 4096) == 500  # the index size
    assert ladder_cap(10, 100_000, 1000) == 1000  # the backend's largest ef (pgvector)
    assert ladder_cap(100, 50, 4096) == 100  # never below k


def test_first_full_is_the_first_rung_at_recall_one() -> None:
    efs = [10, 20, 40]
    recall = np.array([[1.0, 0.9, 0.5, 0.8, np.nan],
                       [np.nan, 1.0, 0.9, 1.0, 0.7],
                       [np.nan, np.nan, 1.0, 0.9, 0.9]])  # NaN: not searched there
    np.testing.assert_array_equal(first_full(recall, efs), [10, 20, 40, 20, NOT_REACHED])
    with pytest.raises(ValueError):
        first_full(recall[:2], efs)


def test_percentiles_are_rungs_and_capped_queries_rank_last() -> None:
    rng = np.random.default_rng(1)
    first = rng.choice([10, 20, 40, 80], size=1_000)
    for q in (50, 90, 99):  # the smallest rung that q% of the queries reach within
        expected = min(ef for ef in (10, 20, 40, 80) if np.mean(first <= ef) >= q / 100)
        assert ef_percentile(first, q) == expected
    capped = first.copy()
    capped[:50] = NOT_REACHED  # 5% never reach 1.0: p99 falls among them, p50 does not move
    assert ef_percentile(capped, 99) is None
    assert ef_percentile(capped, 50) == ef_percentile(np.where(capped == NOT_REACHED, 10**9, capped), 50)
    assert capped_share(capped) == pytest.approx(0.05)
    assert capped_share(first) == 0.0


def test_the_hardest_tenth_by_relative_contrast() -> None:
    rng = np.random.default_rng(2)
    contrast = rng.uniform(1.0, 3.0, 95)
    recall = rng.uniform(0.0, 1.0, 95)
    hard = hardest_queries(contrast)
    order = np.argsort(contrast)
    assert hard.sum() == math.ceil(0.1 * 95) and set(np.flatnonzero(hard)) == set(order[:10])
    got = recall_hardest(recall, contrast)
    assert got == pytest.approx((recall[order[:10]].mean(), recall[order[10:]].mean()))
    contrast[0] = np.nan  # an undefined contrast is not counted among the hardest
    assert not hardest_queries(contrast)[0]

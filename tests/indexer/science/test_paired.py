"""Paired comparison: the difference against numpy, the bootstrap against one written independently here
(a plain loop with its own RNG), a planted shift found and identical runs left alone, the QPS ratio."""

from __future__ import annotations

import random

import numpy as np
import pytest

from indexer.science.paired import (
    Interval,
    bootstrap_means,
    paired_difference,
    percentile_interval,
    ratio_of_medians,
)


def _recalls(n: int, seed: int) -> np.ndarray:
    """Per-query recall@10 as the engine stores it: multiples of 0.1, piled up near 1 (float32)."""
    rng = np.random.default_rng(seed)
    return (np.minimum(10, rng.binomial(10, 0.85, size=n)) / 10).astype(np.float32)


def _loop_bootstrap_interval(diff: list[float], resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap of the mean, written independently: Python's RNG, a loop, sorted order statistics."""
    rnd = random.Random(seed)
    n = len(diff)
    means = sorted(sum(rnd.choices(diff, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    return means[int(tail * resamples)], means[int((1 - tail) * resamples) - 1]


def test_paired_difference_is_the_mean_of_per_query_differences() -> None:
    a, b = _recalls(300, 1), _recalls(300, 2)
    result = paired_difference(a=a, b=b, resamples=200)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert result.n == 300
    assert result.difference == pytest.approx(np.mean(b64 - a64), abs=1e-12)
    assert result.mean_a == pytest.approx(a64.mean(), abs=1e-12)
    assert result.mean_b == pytest.approx(b64.mean(), abs=1e-12)


def test_queries_without_a_recall_in_either_run_are_left_out() -> None:
    a = np.array([0.5, np.nan, 1.0, 0.7, 0.9])
    b = np.array([0.6, 0.8, np.nan, 0.7, 1.0])
    result = paired_difference(a=a, b=b, resamples=100)
    assert result.n == 3
    assert result.difference == pytest.approx(np.mean([0.1, 0.0, 0.1]))
    nothing = paired_difference(a=np.array([np.nan]), b=np.array([0.5]))
    assert nothing.n == 0 and np.isnan(nothing.difference) and not nothing.significant


def test_bootstrap_agrees_with_an_independent_loop() -> None:
    a, b = _recalls(400, 3), _recalls(400, 4)
    diff = (b.astype(np.float64) - a.astype(np.float64)).tolist()
    resamples = 4000
    ours = paired_difference(a=a, b=b, resamples=resamples, seed=11).interval
    low, high = _loop_bootstrap_interval(diff, resamples, 0.95, seed=12)
    # Monte-Carlo error of a 2.5% quantile from 4,000 resamples: about 0.04 standard errors of the mean;
    # the two estimates are independent, so allow 0.25 of a standard error (about 4.5 of their sigma)
    se = np.std(diff, ddof=1) / np.sqrt(len(diff))
    assert ours.low == pytest.approx(low, abs=0.25 * se)
    assert ours.high == pytest.approx(high, abs=0.25 * se)
    # and both agree with the normal approximation the bootstrap should approach on 400 queries
    mean = float(np.mean(diff))
    assert ours.low == pytest.approx(mean - 1.96 * se, abs=0.3 * se)
    assert ours.high == pytest.approx(mean + 1.96 * se, abs=0.3 * se)


def test_bootstrap_means_are_seeded_and_blocks_only_bound_memory() -> None:
    values = np.random.default_rng(5).normal(size=250)
    first = bootstrap_means(values, resamples=500, seed=3)
    assert np.array_equal(first, bootstrap_means(values, resamples=500, seed=3))
    assert not np.array_equal(first, bootstrap_means(values, resamples=500, seed=4))
    # one resample per block (block smaller than the data): the same distribution of means
    tiny_blocks = bootstrap_means(values, resamples=500, seed=3, block_draws=10)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert tiny_blocks.mean() == pytest.approx(values.mean(), abs=0.2 * se)
    assert tiny_blocks.std() == pytest.approx(se, rel=0.15)
    assert first.shape == tiny_blocks.shape == (500,)


def test_a_planted_shift_is_significant() -> None:
    a = _recalls(500, 6).astype(np.float64)
    b = a.copy()
    hurt = np.random.default_rng(7).choice(500, size=100, replace=False)
    b[hurt] = np.maximum(0.0, b[hurt] - 0.2)  # B loses 2 of 10 neighbours on a fifth of the queries
    result = paired_difference(a=a, b=b, resamples=2000)
    assert result.significant
    assert result.interval.high < 0 and result.difference == pytest.approx(np.mean(b - a))
    assert result.interval.low <= result.difference <= result.interval.high
    better = paired_difference(a=b, b=a, resamples=2000)
    assert better.significant and better.interval.low > 0


def test_identical_runs_and_a_balanced_change_are_not_significant() -> None:
    a = _recalls(500, 8)
    same = paired_difference(a=a, b=a.copy())
    assert same.difference == 0.0 and same.interval == Interval(0.0, 0.0) and not same.significant
    shifted = np.asarray(a, dtype=np.float64).copy()
    up, down = np.flatnonzero(shifted < 1.0)[:5], np.flatnonzero(shifted > 0.0)[-5:]
    shifted[up] += 0.1
    shifted[down] -= 0.1  # as many queries gain a neighbour as lose one: mean difference 0
    balanced = paired_difference(a=a, b=shifted)
    assert balanced.difference == pytest.approx(0.0, abs=1e-9)
    assert balanced.interval.low < 0 < balanced.interval.high and not balanced.significant


def test_a_single_changed_query_is_not_significant() -> None:
    """One query of 1,000 losing a neighbour: the resamples that leave it out see no change."""
    a = np.full(1000, 0.9)
    b = a.copy()
    b[17] = 0.8
    assert not paired_difference(a=a, b=b).significant


def test_paired_values_need_the_same_queries() -> None:
    with pytest.raises(ValueError, match="same queries"):
        paired_difference(a=np.ones(5), b=np.ones(6))


def test_percentile_interval_reads_the_quantiles() -> None:
    stats = np.arange(1001, dtype=np.float64)
    for confidence, (low, high) in ((0.95, (25.0, 975.0)), (0.5, (250.0, 750.0))):
        interval = percentile_interval(stats, confidence)
        assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(stats, 1.0)


def test_ratio_of_medians_and_its_interval() -> None:
    a = np.array([1000.0, 1100.0, 900.0])
    b = np.array([2000.0, 2300.0, 1900.0])
    r = ratio_of_medians(a=a, b=b, resamples=1000, seed=1)
    assert r.ratio == pytest.approx(2000.0 / 1000.0)
    assert r.interval is not None
    assert r.interval.low <= r.ratio <= r.interval.high
    assert r.interval.low >= b.min() / a.max() and r.interval.high <= b.max() / a.min()
    assert r.interval.low > 1.0  # every pass of B is faster than every pass of A
    single = ratio_of_medians(a=np.array([1000.0]), b=np.array([1500.0]))
    assert single.ratio == 1.5 and single.interval is None
    with pytest.raises(ValueError):
        ratio_of_medians(a=np.array([0.0]), b=np.array([1.0]))

"""Expansion and centre distance against numpy brute force over the vectors as indexed (unit-normalised for
cosine, raw for l2 and ip), and the centres' count, seeding and what they tell apart."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.science.query_hardness import (
    CENTRES_CAP,
    centre_count,
    centre_distance,
    expansion,
    kmeans_centres,
)


def _as_indexed(x: np.ndarray, metric: str) -> np.ndarray:
    """Float32 vectors as an index holds them (for cosine normalised in float64, then stored as float32)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return np.asarray(x, dtype=np.float64)


def _distances(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Every Euclidean query-to-base distance in float64 (queries x n)."""
    b, q = _as_indexed(base, metric), _as_indexed(queries, metric)
    return np.linalg.norm(q[:, None, :] - b[None, :, :], axis=2)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_expansion_is_the_2k_th_over_the_k_th_distance(metric: str, k: int) -> None:
    rng = np.random.default_rng(7)
    base = rng.standard_normal((400, 12)).astype(np.float32)
    queries = rng.standard_normal((25, 12)).astype(np.float32)
    ranked = np.sort(_distances(base, queries, metric), axis=1)
    expected = ranked[:, 2 * k - 1] / ranked[:, k - 1]
    np.testing.assert_allclose(expansion(base, queries, k, metric), expected, rtol=1e-9)
    assert (expected >= 1).all()


def test_expansion_edge_cases() -> None:
    base = np.zeros((6, 3), dtype=np.float32)
    base[3:] = 1.0  # three points at the origin, three at (1, 1, 1)
    queries = np.zeros((1, 3), dtype=np.float32)
    assert np.isinf(expansion(base, queries, 2, "l2")[0])  # the 2nd neighbour at 0, the 4th not
    assert np.isnan(expansion(base, queries, 1, "l2")[0])  # the 1st and 2nd both at 0: no scale
    assert np.isnan(expansion(base, queries, 4, "l2")[0])  # 2k > n


def test_centre_count_is_the_rounded_square_root_capped() -> None:
    assert [centre_count(n) for n in (1, 2, 10, 1_000, 10_000)] == [1, 1, 3, 32, 100]
    assert centre_count(5_000_000) == CENTRES_CAP


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_centre_distance_is_the_distance_to_the_nearest_centre(metric: str) -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((900, 8)).astype(np.float32)
    queries = rng.standard_normal((40, 8)).astype(np.float32)
    centres = kmeans_centres(base, metric)
    assert centres.shape == (centre_count(900), 8)
    np.testing.assert_array_equal(centres, kmeans_centres(base, metric))  # seeded: the same centres again
    # numpy: every centre's distance, the nearest by argmin
    every = np.linalg.norm(_as_indexed(queries, metric)[:, None, :] - centres.astype(np.float64)[None], axis=2)
    nearest = every[np.arange(len(queries)), np.argmin(every, axis=1)]
    np.testing.assert_allclose(centre_distance(queries, centres, metric), nearest, rtol=1e-9, atol=1e-12)


def test_a_query_outside_the_base_is_far_from_every_centre() -> None:
    """Three tight clusters: queries drawn from them sit near a centre, queries between them do not."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    base = (means[rng.integers(0, 3, 3_000)] + 0.3 * rng.standard_normal((3_000, 2))).astype(np.float32)
    inside = (means[rng.integers(0, 3, 50)] + 0.3 * rng.standard_normal((50, 2))).astype(np.float32)
    outside = (np.array([5.0, 5.0]) + 0.3 * rng.standard_normal((50, 2))).astype(np.float32)
    centres = kmeans_centres(base, "l2")
    assert centre_distance(outside, centres, "l2").min() > 2 * centre_distance(inside, centres, "l2").max()

"""Recall and summaries against brute-force Python, known values and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from indexer.science.metrics import (
    annb_distances,
    answer_shape,
    quantile_bins,
    recall_annb,
    recall_at_k,
    recall_by_bins,
    recall_by_group,
    row_isin,
    summarize,
)


def _recall_brute(found, truth, k, fs=None, ts=None, higher=True, rtol=1e-5) -> list[float]:
    """Per-query recall with Python sets and loops."""
    out = []
    for i in range(len(found)):
        tset = {int(t) for t in truth[i, :k] if t >= 0}
        seen: set[int] = set()
        hits = 0
        for j in range(k):
            f = int(found[i, j])
            if f < 0 or f in seen:
                continue
            seen.add(f)
            if f in tset:
                hits += 1
            elif fs is not None:
                kth = ts[i, k - 1]
                if (higher and fs[i, j] >= kth - rtol * abs(kth)) or (
                    not higher and fs[i, j] <= kth + rtol * abs(kth)
                ):
                    hits += 1
        out.append(min(hits, len(tset)) / len(tset) if tset else math.nan)
    return out


def test_known_values() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    found = np.array([[3, 2, 1], [4, 0, -1], [-1, -1, -1]])
    np.testing.assert_allclose(recall_at_k(found, truth, 3), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(recall_at_k(found, truth, 1), [0.0, 1.0, 0.0])  # only column 0 counts


def test_random_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        q, k = 30, int(rng.integers(1, 8))
        truth = np.array([rng.choice(40, size=10, replace=False) for _ in range(q)])
        found = rng.integers(-1, 40, size=(q, k + 2))  # padding and repeated ids included
        np.testing.assert_allclose(recall_at_k(found, truth, k), _recall_brute(found, truth, k))


def test_tie_tolerance_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    q, k = 50, 5
    truth = np.array([rng.choice(100, size=k, replace=False) for _ in range(q)])
    # Distances with deliberate ties at the k-th: integer-valued, so equal values are common.
    ts = np.sort(rng.integers(1, 6, size=(q, k)).astype(np.float64), axis=1)
    found = rng.integers(-1, 100, size=(q, k))
    fs = rng.integers(1, 8, size=(q, k)).astype(np.float64)
    got = recall_at_k(found, truth, k, found_scores=fs, truth_scores=ts, higher_is_better=False)
    np.testing.assert_allclose(got, _recall_brute(found, truth, k, fs, ts, higher=False))
    got_hi = recall_at_k(found, truth, k, found_scores=-fs, truth_scores=-ts, higher_is_better=True)
    np.testing.assert_allclose(got_hi, got)  # the same ranking seen as similarities


def test_tied_substitute_counts_and_is_capped() -> None:
    truth = np.array([[10, 11, 12]])
    ts = np.array([[0.9, 0.8, 0.8]])  # 12 is tied at the k-th score with other points
    found = np.array([[10, 11, 99]])  # 99 is not in the truth but has the k-th score
    assert recall_at_k(found, truth, 3)[0] == pytest.approx(2 / 3)
    fs = np.array([[0.9, 0.8, 0.8 * (1 - 5e-6)]])  # within 1e-5 relative
    assert recall_at_k(found, truth, 3, fs, ts)[0] == 1.0
    fs_worse = np.array([[0.9, 0.8, 0.79]])
    assert recall_at_k(found, truth, 3, fs_worse, ts)[0] == pytest.approx(2 / 3)
    # Every found id ties: still capped at 1.
    assert recall_at_k(np.array([[97, 98, 99]]), truth, 3, np.full((1, 3), 0.95), ts)[0] == 1.0
    with pytest.raises(ValueError, match="both"):
        recall_at_k(found, truth, 3, found_scores=fs)


def test_padded_truth_and_bad_k() -> None:
    truth = np.array([[1, -1, -1], [-1, -1, -1]])
    got = recall_at_k(np.array([[1, 2, 3], [1, 2, 3]]), truth, 3)
    assert got[0] == 1.0 and math.isnan(got[1])
    with pytest.raises(ValueError):
        recall_at_k(truth, truth, 0)
    with pytest.raises(ValueError, match="columns"):
        recall_at_k(truth, truth, 4)


def test_row_isin_against_numpy() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-3, 20, size=(40, 6))
    b = rng.integers(-3, 20, size=(40, 9))
    expected = np.array([np.isin(a[i], b[i]) for i in range(40)])
    np.testing.assert_array_equal(row_isin(a, b), expected)


def test_summarize_against_scipy() -> None:
    v = np.random.default_rng(3).uniform(0.5, 1.0, size=200)
    s = summarize(v)
    sem = stats.sem(v)
    lo, hi = stats.norm.interval(0.95, loc=v.mean(), scale=sem)
    assert s["n"] == 200 and s["mean"] == pytest.approx(v.mean())
    assert s["std"] == pytest.approx(v.std(ddof=1))
    assert s["ci95"] == pytest.approx((lo, hi))


def test_summarize_edges() -> None:
    assert summarize(np.array([0.7])) == {"mean": 0.7, "std": 0.0, "ci95": (0.7, 0.7), "n": 1}
    s = summarize(np.array([1.0, 1.0, 0.0]))  # wide interval: clipped to [0, 1]
    assert s["ci95"][1] == 1.0 and s["ci95"][0] >= 0.0
    s = summarize(np.array([0.0, 0.0, 1.0]))
    assert s["ci95"][0] == 0.0
    empty = summarize(np.array([np.nan]))
    assert empty["n"] == 0 and math.isnan(empty["mean"])


def test_recall_by_group() -> None:
    pq = np.array([1.0, 0.5, 0.0, 1.0, np.nan])
    groups = np.array([0, 0, 2, 2, 2])
    assert recall_by_group(pq, groups, ["sport", "tech", "politics"]) == {
        "sport": {"mean": 0.75, "n": 2},
        "politics": {"mean": 0.5, "n": 2},
    }
    assert set(recall_by_group(pq, groups)) == {"0", "2"}


def test_quantile_bins_cover_every_value() -> None:
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.normal(size=97), [np.nan, np.nan, np.nan]])
    assign, ranges = quantile_bins(v, 4)
    assert len(ranges) == 4
    assert (assign[-3:] == -1).all() and (assign[:-3] >= 0).all()
    for b, (lo, hi) in enumerate(ranges):
        inside = v[assign == b]
        last = b == len(ranges) - 1
        assert (inside >= lo).all() and ((inside <= hi) if last else (inside < hi)).all()
    counts = np.bincount(assign[assign >= 0])
    assert counts.min() >= 24 and counts.max() <= 25  # quartiles of 97 distinct values


def test_quantile_bins_with_ties_and_infinities() -> None:
    v = np.array([1.0] * 10 + [2.0, 3.0])  # the lower quartile edges coincide
    assign, ranges = quantile_bins(v, 4)
    assert ranges[0][0] == 1.0 and ranges[-1][1] == 3.0
    assert len({lo for lo, _ in ranges}) == len(ranges)  # merged, no repeated edge
    assert (assign[:10] == 0).all() and (assign >= 0).all()
    same, one = quantile_bins(np.full(5, 7.0), 3)
    assert one == [(7.0, 7.0)] and (same == 0).all()
    inf_assign, inf_ranges = quantile_bins(np.array([1.0, 2.0, 3.0, 4.0, np.inf]), 2)
    assert inf_assign[-1] == len(inf_ranges) - 1 and inf_ranges[-1][1] == math.inf
    assert quantile_bins(np.array([np.nan]), 3)[1] == []


def test_recall_by_bins_against_brute_force() -> None:
    rng = np.random.default_rng(5)
    values = rng.uniform(size=40)
    values[[0, 5]] = np.nan
    pq = rng.uniform(size=40)
    rows = recall_by_bins(pq, values, 4)
    assign, ranges = quantile_bins(values, 4)
    assert [r["bin"] for r in rows] == [0, 1, 2, 3, -1]
    for r in rows[:-1]:
        lo, hi = r["lo"], r["hi"]
        sel = [p for p, v in zip(pq, values, strict=True) if lo <= v < hi or (r["bin"] == 3 and v == hi)]
        assert r["n"] == len(sel) and r["recall"] == pytest.approx(np.mean(sel))
    assert rows[-1]["n"] == 2 and rows[-1]["recall"] == pytest.approx(pq[[0, 5]].mean())


def test_ann_benchmarks_recall_as_their_source_counts_it() -> None:
    """Their get_recall_values/knn_threshold re-implemented here: each of the first k returned distances
    within the k-th true distance + 1e-3 counts, repeats included; inf padding never."""
    rng = np.random.default_rng(0)
    truth = np.sort(rng.random((50, 12)), axis=1)
    found = np.sort(truth + rng.normal(0, 2e-3, truth.shape), axis=1)
    found[3, 4] = found[3, 3]  # a repeat counts twice
    found[5, 7:] = np.inf  # padding
    expected = []
    for i in range(len(found)):
        t = truth[i][10 - 1] + 1e-3
        expected.append(sum(1 for d in found[i][:10] if d <= t) / 10)
    np.testing.assert_allclose(recall_annb(found, truth, 10), expected)


def test_annb_distances_follow_their_metrics() -> None:
    a, b = np.array([3.0, 4.0]) / 5, np.array([1.0, 0.0])
    cos = float(a @ b)
    assert annb_distances(np.array([[cos]]), "cosine")[0, 0] == pytest.approx(1 - cos)  # angular: 1 - cos
    assert annb_distances(np.array([[25.0]]), "l2")[0, 0] == pytest.approx(5.0)  # euclidean, not squared
    assert annb_distances(np.array([[2.0]]), "ip")[0, 0] == -2.0


def test_answer_shape_counts_short_and_repeated_answers() -> None:
    found = np.array([[1, 2, 3], [1, 1, 2], [1, 2, -1], [4, 4, -1]])
    short, dup = answer_shape(found, 3)
    assert short.tolist() == [len({x for x in r if x >= 0}) < 3 for r in found.tolist()]
    assert dup.tolist() == [len([x for x in r if x >= 0]) > len({x for x in r if x >= 0}) for r in found.tolist()]

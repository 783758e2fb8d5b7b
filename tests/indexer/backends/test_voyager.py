"""voyager: the shared checks, its per-call ef, the seed it takes, its 8-bit storage types, the saved
file, and queries that reach fewer than k points (voyager raises RecallError for those)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.indexer.backends import kit

NAME = "voyager"
LEAN = {"M": 4, "ef_construction": 16}


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("dtype", ["float8", "e4m3"])
def test_8bit_storage_keeps_the_distance_convention(space: str, dtype: str) -> None:
    """8-bit storage: scores follow the same convention within the storage's rounding (~0.04 on unit
    vectors, hence the loose atol), and recall drops (hence the low floor, at a high ef)."""
    kit.check_recall_and_scores(NAME, {"dtype": dtype}, space, ef=100, floor=0.6, score_atol=0.08)


def test_the_seed_is_passed() -> None:
    """seeded=True: the same order under two seeds draws other levels, so the lean graph answers otherwise."""
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    a = kit.build(NAME, LEAN, x, order, "ip", seed=0).search(q, 10, 10)
    b = kit.build(NAME, LEAN, x, order, "ip", seed=1).search(q, 10, 10)
    assert not np.array_equal(a[0], b[0])


def test_ef_is_per_call_and_none_is_voyagers_default() -> None:
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    default = index.search(q, 10, None)
    np.testing.assert_array_equal(index.search(q, 10, 10)[0], default[0])  # Index.ef of a new index: 10
    assert index.search(q, 10, 60)[0].tolist() != default[0].tolist()
    np.testing.assert_array_equal(index.search(q, 10, None)[0], default[0])  # ef=60 did not stay behind
    assert (index.search(q, 20, 5)[0] >= 0).all()  # an ef below k is raised to k (voyager would refuse it)


def test_fewer_points_than_k_are_padded() -> None:
    x, q = kit.clustered_data(n=5, q=3)
    index = kit.build(NAME, {}, x, np.array([4, 2, 0, 1, 3]), "l2")
    for queries in (q, q[:1]):
        ids, scores = index.search(queries, 8, None)
        assert ids.shape == (len(queries), 8) and ids.dtype == np.int64 and scores.dtype == np.float32
        assert (np.sort(ids[:, :5], axis=1) == np.arange(5)).all()
        assert (ids[:, 5:] == -1).all() and np.isnan(scores[:, 5:]).all() and not np.isnan(scores[:, :5]).any()


def test_queries_that_reach_fewer_than_k_get_what_they_reach() -> None:
    """A sparse graph (M=2): voyager raises RecallError for the whole batch when one query comes up short;
    each query then gets the most voyager answers it, padded with -1, and the full ones are untouched."""
    import voyager

    x, _ = kit.clustered_data(n=2500, d=32, seed=3)
    index = kit.build(NAME, {"M": 2, "ef_construction": 4}, x, np.random.default_rng(4).permutation(len(x)), "ip")
    q = kit.clustered_data(n=10, d=32, q=30, seed=9)[1]
    k = len(x) - 10
    raw = index._index  # type: ignore[attr-defined]
    with pytest.raises(voyager.RecallError):
        raw.query(q, k=k, num_threads=1)
    ids, scores = index.search(q, k, None)
    returned = (ids >= 0).sum(axis=1)
    assert returned.min() < k
    for row in range(len(q)):
        got = int(returned[row])
        assert (ids[row, got:] == -1).all() and np.isnan(scores[row, got:]).all()
        assert len(set(ids[row, :got].tolist())) == got
        if got < k:
            with pytest.raises(voyager.RecallError):
                raw.query(q[row], k=got + 1, num_threads=1)
        labels, _ = raw.query(q[row], k=got, num_threads=1)
        assert set(labels.tolist()) == set(ids[row, :got].tolist())


@pytest.mark.parametrize("dtype", ["float32", "e4m3"])
def test_a_saved_index_loads_into_the_same_answers(tmp_path: Path, dtype: str) -> None:
    from indexer.backends import new_index

    x, q = kit.clustered_data(n=1500)
    index = kit.build(NAME, {"dtype": dtype}, x, np.random.default_rng(2).permutation(len(x)), "l2")
    index.save(tmp_path / "index.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.bin"]
    assert (tmp_path / "index.bin").stat().st_size == index.nbytes()
    loaded = new_index(NAME, x.shape[1], "l2", params={"dtype": dtype}, seed=0)
    loaded.load(tmp_path / "index.bin", len(x))
    for ef in (None, 12):
        for a, b in zip(index.search(q, 10, ef), loaded.search(q, 10, ef), strict=True):
            np.testing.assert_array_equal(a, b)
    index.close()
    loaded.close()
    loaded.close()  # safe twice

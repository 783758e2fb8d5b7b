"""usearch: the shared checks, its bf16 default storage against f32, the index-wide search ef, short
answers, the saved file, and the seed it does not take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.indexer.backends import kit

NAME = "usearch"
LEAN = {"M": 4, "ef_construction": 16}
# bf16 keeps 8 significant bits: scores are computed on the rounded vectors (and query), ~1e-3 off the
# exact float64 scores on unit vectors; f32 matches to float rounding
BF16_ATOL = 5e-3


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize(("dtype", "atol"), [("bf16", BF16_ATOL), ("f32", 1e-4)])
def test_recall_and_scores(space: str, dtype: str, atol: float) -> None:
    kit.check_recall_and_scores(NAME, {"dtype": dtype}, space, ef=None, score_atol=atol)


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_bf16_storage_rounds_the_scores_and_halves_the_vectors(space: str) -> None:
    """The default really stores bf16: its scores are off the exact ones by more than f32 rounding (and
    within BF16_ATOL), and its file is smaller by about 2 bytes per coordinate."""
    x, q = kit.clustered_data(n=1000)
    order = np.arange(len(x))
    err, size = {}, {}
    for dtype in ("bf16", "f32"):
        index = kit.build(NAME, {"dtype": dtype}, x, order, space)
        ids, scores = index.search(q, 10, None)
        err[dtype] = np.abs(scores - kit.exact_scores(x, q, ids, space)).max()
        size[dtype] = index.nbytes()
        assert index._index.dtype.name.lower() == dtype  # type: ignore[attr-defined]
        index.close()
    assert err["f32"] < 1e-5 < err["bf16"] < BF16_ATOL
    assert size["f32"] - size["bf16"] >= 2 * x.size * 0.9


def test_ef_is_set_per_search_and_none_is_usearchs_default() -> None:
    from usearch.compiled import DEFAULT_EXPANSION_SEARCH

    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    default = index.search(q, 10, None)
    assert index.search(q, 10, 10)[0].tolist() != default[0].tolist()  # ef matters on this lean graph
    np.testing.assert_array_equal(index.search(q, 10, DEFAULT_EXPANSION_SEARCH)[0], default[0])
    np.testing.assert_array_equal(index.search(q, 10, None)[0], default[0])  # ef=10 did not stay behind


def test_short_answers_are_padded() -> None:
    """Fewer points than k: what there is, then id -1 and nan; a single query too (usearch trims it)."""
    x, q = kit.clustered_data(n=5, q=3)
    index = kit.build(NAME, {}, x, np.array([4, 2, 0, 1, 3]), "l2")
    for queries in (q, q[:1]):
        ids, scores = index.search(queries, 8, None)
        assert ids.shape == (len(queries), 8) and ids.dtype == np.int64 and scores.dtype == np.float32
        assert (np.sort(ids[:, :5], axis=1) == np.arange(5)).all()
        assert (ids[:, 5:] == -1).all() and np.isnan(scores[:, 5:]).all() and not np.isnan(scores[:, :5]).any()


@pytest.mark.parametrize("dtype", ["bf16", "f32"])
def test_a_saved_index_loads_into_the_same_answers(tmp_path: Path, dtype: str) -> None:
    from indexer.backends import new_index

    x, q = kit.clustered_data(n=1500)
    index = kit.build(NAME, {"dtype": dtype}, x, np.random.default_rng(2).permutation(len(x)), "ip")
    index.save(tmp_path / "index.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.bin"]
    assert (tmp_path / "index.bin").stat().st_size == index.nbytes()
    loaded = new_index(NAME, x.shape[1], "ip", params={"dtype": dtype}, seed=0)
    loaded.load(tmp_path / "index.bin", len(x))
    for ef in (None, 12):
        for a, b in zip(index.search(q, 10, ef), loaded.search(q, 10, ef), strict=True):
            np.testing.assert_array_equal(a, b)
    index.close()
    loaded.close()
    loaded.close()  # safe twice


def test_the_seed_changes_nothing() -> None:
    """seeded=False: usearch's level generator is default-constructed, so two spec seeds build one index."""
    x, q = kit.clustered_data(n=2000, q=100, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    a = kit.build(NAME, LEAN, x, order, "ip", seed=0).search(q, 10, 10)
    b = kit.build(NAME, LEAN, x, order, "ip", seed=1).search(q, 10, 10)
    np.testing.assert_array_equal(a[0], b[0])

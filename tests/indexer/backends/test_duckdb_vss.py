"""duckdb_vss: the shared checks, the plan that scans the HNSW index, the database-wide search ef, short
answers, the extension loaded by path, the seed it does not take, and the index it does not save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.common.errors import UserError
from tests.indexer.backends import kit

NAME = "duckdb_vss"
LEAN = {"M": 4, "ef_construction": 16}


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_the_plan_scans_the_hnsw_index(space: str) -> None:
    """Without the index scan the ORDER BY ... LIMIT would be an exact search: recall 1 whatever ef."""
    x, q = kit.clustered_data(n=500)
    index = kit.build(NAME, {}, x, np.arange(len(x)), space)
    try:
        plan = index.plan(q[0], 10)  # type: ignore[attr-defined]
    finally:
        index.close()
    assert "HNSW_INDEX_SCAN" in plan


def test_ef_is_set_per_search_and_none_is_the_index_default() -> None:
    x, q = kit.clustered_data(n=3000, q=100, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    try:
        default = index.search(q, 10, None)
        low = index.search(q, 10, 10)
        assert low[0].tolist() != default[0].tolist()  # ef matters on this lean graph: it is the HNSW answer
        truth = kit.brute_force(x, q, 10, "ip")
        assert np.mean([len(set(a) & set(b)) for a, b in zip(low[0], truth, strict=True)]) < 10
        np.testing.assert_array_equal(index.search(q, 10, 64)[0], default[0])  # the default is ef 64
        np.testing.assert_array_equal(index.search(q, 10, None)[0], default[0])  # ef=10 did not stay behind
    finally:
        index.close()


def test_short_answers_are_padded() -> None:
    """Fewer points than k: what there is, then id -1 and nan."""
    x, q = kit.clustered_data(n=5, q=3)
    index = kit.build(NAME, {}, x, np.array([4, 2, 0, 1, 3]), "l2")
    try:
        ids, scores = index.search(q, 8, None)
    finally:
        index.close()
    assert ids.shape == (3, 8) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert (np.sort(ids[:, :5], axis=1) == np.arange(5)).all()
    assert (ids[:, 5:] == -1).all() and np.isnan(scores[:, 5:]).all() and not np.isnan(scores[:, :5]).any()


def test_the_seed_changes_nothing() -> None:
    """seeded=False: usearch's level generator is default-constructed, so two spec seeds build one index."""
    x, q = kit.clustered_data(n=2000, q=100, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    a = kit.build(NAME, LEAN, x, order, "ip", seed=0)
    b = kit.build(NAME, LEAN, x, order, "ip", seed=1)
    try:
        np.testing.assert_array_equal(a.search(q, 10, 10)[0], b.search(q, 10, 10)[0])
    finally:
        a.close()
        b.close()


def test_not_saved_and_closed_twice(tmp_path: Path) -> None:
    x, _ = kit.clustered_data(n=300)
    index = kit.build(NAME, {}, x, np.arange(len(x)), "ip")
    # the graph (links, at least M0 = 32 slots at layer 0) and the f32 vectors usearch keeps
    assert index.nbytes() >= len(x) * (x.shape[1] * 4 + 32 * 4)
    with pytest.raises(NotImplementedError):
        index.save(tmp_path / "index.bin")
    index.close()
    index.close()
    assert list(tmp_path.iterdir()) == []


def test_missing_extension_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.backends import duckdb_vss, new_index

    monkeypatch.setattr(duckdb_vss, "EXTENSION_PACKAGE", "no_such_duckdb_extension_package")
    index = new_index(NAME, 8, "ip", params={}, seed=0)
    x, _ = kit.clustered_data(n=20, d=8)
    with pytest.raises(UserError, match=r"pip install -e '\.\[duckdb-vss\]'"):
        index.build(x, np.arange(len(x)))
    index.close()

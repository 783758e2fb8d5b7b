"""lancedb: the shared checks for both index types, the plan that walks the index, ef (unset is 1.5 x k, never
below k), exact scores over SQ codes, short answers, the one-thread pin on rayon, the seed it does not take,
and the scratch directory it removes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from tests.indexer.backends import kit

# not importorskip: importing lancedb here, before the backend pins RAYON_NUM_THREADS, is what it refuses
if importlib.util.find_spec("lancedb") is None:
    pytest.skip("lancedb is not installed", allow_module_level=True)

NAME = "lancedb"
LEAN = {"M": 4, "ef_construction": 16}
TYPES = ["IVF_HNSW_SQ", "IVF_HNSW_FLAT"]


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("index_type", TYPES)
def test_recall_and_scores(space: str, index_type: str) -> None:
    # the scores are exact for SQ too: they are computed from the vectors, not read from the 8-bit codes
    kit.check_recall_and_scores(NAME, {"index_type": index_type}, space, ef=None)


def test_ids_follow_the_dataset_numbering() -> None:
    # ef given: unset, lance searches k=1 with ef 1 + 1 // 2 = 1, a single greedy step over SQ codes
    kit.check_ids_follow_the_dataset_numbering(NAME, {}, ef=32)


@pytest.mark.parametrize("index_type", TYPES)
def test_determinism_and_order(index_type: str) -> None:
    kit.check_determinism_and_order(NAME, {**LEAN, "index_type": index_type}, ef=10)


@pytest.mark.parametrize("index_type", TYPES)
def test_the_plan_walks_the_hnsw_index(index_type: str) -> None:
    x, q = kit.clustered_data(n=500)
    index = kit.build(NAME, {"index_type": index_type}, x, np.arange(len(x)), "ip")
    try:
        plan = index.plan(q[0], 10)  # type: ignore[attr-defined]
        (details,) = index._table.list_indices()  # type: ignore[attr-defined]
    finally:
        index.close()
    assert "ANNSubIndex" in plan and "metric=Cosine" in plan
    assert details.index_type == {"IVF_HNSW_SQ": "IvfHnswSq", "IVF_HNSW_FLAT": "IvfHnswFlat"}[index_type]
    assert details.index_details["hnsw"]["max_connections"] == 20
    assert details.index_details["hnsw"]["construction_ef"] == 300


def test_ef_unset_is_one_and_a_half_k_and_never_below_k() -> None:
    x, q = kit.clustered_data(n=3000, q=100, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    try:
        default = index.search(q, 10, None)
        np.testing.assert_array_equal(index.search(q, 10, 15)[0], default[0])  # 10 + 10 // 2
        assert index.search(q, 10, 200)[0].tolist() != default[0].tolist()  # ef matters on this lean graph
        np.testing.assert_array_equal(index.search(q, 10, 3)[0], index.search(q, 10, 10)[0])  # lance needs ef >= k
    finally:
        index.close()


def test_sq_codes_rank_approximately_and_flat_exactly() -> None:
    """SQ ranks by 8-bit codes: with a wide search it still misses some of the exact top 10 that FLAT finds."""
    x, q = kit.clustered_data(n=2000, q=100)
    truth = kit.brute_force(x, q, 10, "l2")
    recall = {}
    for index_type in TYPES:
        index = kit.build(NAME, {"index_type": index_type}, x, np.arange(len(x)), "l2")
        try:
            ids, scores = index.search(q, 10, 200)
        finally:
            index.close()
        recall[index_type] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
        assert (np.diff(scores, axis=1) >= 0).all()  # each row ordered by its exact squared L2
    assert recall["IVF_HNSW_FLAT"] == 1.0 > recall["IVF_HNSW_SQ"]


def test_short_answers_are_padded() -> None:
    """Fewer points than k: what there is, then id -1 and nan; a single query too (no query_index)."""
    x, q = kit.clustered_data(n=5, q=3)
    index = kit.build(NAME, {}, x, np.array([4, 2, 0, 1, 3]), "l2")
    try:
        for queries in (q, q[:1]):
            ids, scores = index.search(queries, 8, None)
            assert ids.shape == (len(queries), 8) and ids.dtype == np.int64 and scores.dtype == np.float32
            assert (np.sort(ids[:, :5], axis=1) == np.arange(5)).all()
            assert (ids[:, 5:] == -1).all() and np.isnan(scores[:, 5:]).all() and not np.isnan(scores[:, :5]).any()
    finally:
        index.close()


def test_the_seed_changes_nothing() -> None:
    """seeded=False: lance draws levels from a fixed seed (42), so two spec seeds build one index."""
    x, q = kit.clustered_data(n=2000, q=100, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    a = kit.build(NAME, LEAN, x, order, "ip", seed=0)
    b = kit.build(NAME, LEAN, x, order, "ip", seed=1)
    try:
        np.testing.assert_array_equal(a.search(q, 10, 10)[0], b.search(q, 10, 10)[0])
    finally:
        a.close()
        b.close()


def test_rayon_is_pinned_during_the_build_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.backends import lancedb_index, new_index
    from indexer.common.errors import UserError

    monkeypatch.setenv("RAYON_NUM_THREADS", "7")
    x, _ = kit.clustered_data(n=300)
    kit.build(NAME, {}, x, np.arange(len(x)), "ip").close()
    assert os.environ["RAYON_NUM_THREADS"] == "7"  # the caller's value is back
    monkeypatch.delenv("RAYON_NUM_THREADS")
    kit.build(NAME, {}, x, np.arange(len(x)), "ip").close()
    assert "RAYON_NUM_THREADS" not in os.environ
    # lancedb imported by someone else first: its pool may already run on every core, so no build
    monkeypatch.setattr(lancedb_index, "_imported_here", False)
    index = new_index(NAME, x.shape[1], "ip", params={}, seed=0)
    with pytest.raises(UserError, match="RAYON_NUM_THREADS=1"):
        index.build(x, np.arange(len(x)))
    assert index._dir is None  # type: ignore[attr-defined]  # refused before any scratch directory
    index.close()


def test_scratch_directory_removed_and_not_saved(tmp_path: Path) -> None:
    x, _ = kit.clustered_data(n=300)
    index = kit.build(NAME, {}, x, np.arange(len(x)), "ip")
    scratch = Path(index._dir)  # type: ignore[attr-defined]
    assert scratch.name.startswith("indexer-lancedb-") and scratch.is_dir()
    assert 0 < index.nbytes() < len(x) * x.shape[1] * 4 + len(x) * 2 * 20 * 4 * 2  # codes (1 byte) and links
    with pytest.raises(NotImplementedError):
        index.save(tmp_path / "index.bin")
    index.close()
    index.close()
    assert not scratch.exists()


def test_ef_construction_below_m_is_refused() -> None:
    from indexer.backends import new_index

    with pytest.raises(ValueError, match="ef_construction >= M"):
        new_index(NAME, 8, "ip", params={"M": 32, "ef_construction": 16}, seed=0)

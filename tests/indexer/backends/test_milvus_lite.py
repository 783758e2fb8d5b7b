"""Milvus Lite: the shared checks, the faiss HNSW graph every search walks (no brute-force memtable),
the per-search ef and its default, short answers, the scratch directory, and the seed it does not take."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.indexer.backends import kit

NAME = "milvus_lite"
LEAN = {"M": 4, "ef_construction": 16}


def test_every_row_is_in_one_faiss_hnsw_graph_built_with_the_parameters() -> None:
    """The flush leaves nothing in the memtable (which Milvus Lite would scan exactly), and the one segment's
    index is a faiss HNSW graph with this M and efConstruction, built in one thread that keeps its setting."""
    import faiss
    from milvus_lite.index.faiss_hnsw import FaissHnswIndex

    x, _ = kit.clustered_data(n=1200)
    threads = faiss.omp_get_max_threads()
    index = kit.build(NAME, {"M": 6, "ef_construction": 24}, x, np.arange(len(x)), "ip")
    try:
        col = index._col  # type: ignore[attr-defined]
        assert faiss.omp_get_max_threads() == threads  # the build's one thread was restored
        assert col._memtable.size() == 0
        segments = list(col._segment_cache.values())
        assert [s.num_rows for s in segments] == [len(x)]
        graph = segments[0].indexes["vector"]
        assert isinstance(graph, FaissHnswIndex) and graph.metric == "IP"
        assert graph._index.hnsw.efConstruction == 24 and graph._index.hnsw.nb_neighbors(1) == 6
        assert index.nbytes() > x.nbytes  # the faiss file holds the vectors and the links
    finally:
        index.close()


def test_ef_is_per_search_and_none_is_milvus_lites_default() -> None:
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    try:
        default = index.search(q, 10, None)
        assert index.search(q, 10, 10)[0].tolist() != default[0].tolist()  # ef matters on this lean graph
        np.testing.assert_array_equal(index.search(q, 10, 64)[0], default[0])
        np.testing.assert_array_equal(index.search(q, 10, None)[0], default[0])  # ef=10 did not stay behind
    finally:
        index.close()


def test_short_answers_are_padded() -> None:
    x, q = kit.clustered_data(n=5, q=3)
    index = kit.build(NAME, {}, x, np.array([4, 2, 0, 1, 3]), "l2")
    try:
        ids, scores = index.search(q, 8, None)
    finally:
        index.close()
    assert ids.shape == (3, 8) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert (np.sort(ids[:, :5], axis=1) == np.arange(5)).all()
    assert (ids[:, 5:] == -1).all() and np.isnan(scores[:, 5:]).all() and not np.isnan(scores[:, :5]).any()


def test_close_removes_the_scratch_directory_and_is_safe_twice(tmp_path: Path) -> None:
    from indexer.backends import new_index

    x, _ = kit.clustered_data(n=300)
    index = kit.build(NAME, {}, x, np.arange(len(x)), "l2")
    directory = index._dir  # type: ignore[attr-defined]
    assert directory is not None and os.path.isdir(directory)
    with pytest.raises(NotImplementedError):
        index.save(tmp_path / "index.bin")
    index.close()
    assert not os.path.exists(directory)
    index.close()
    failed = new_index(NAME, 8, "l2", params={}, seed=0)
    with pytest.raises(Exception):  # noqa: B017 (whatever the library raises on a wrong dimension)
        failed.build(x, np.arange(len(x)))
    leftover = failed._dir  # type: ignore[attr-defined]
    failed.close()
    failed.close()
    assert leftover is not None and not os.path.exists(leftover)


def test_the_seed_changes_nothing() -> None:
    """seeded=False: Milvus Lite never seeds faiss's level generator, so two spec seeds build one index."""
    x, q = kit.clustered_data(n=2000, q=100, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    answers = []
    for seed in (0, 1):
        index = kit.build(NAME, LEAN, x, order, "ip", seed=seed)
        answers.append(index.search(q, 10, 10)[0])
        index.close()
    np.testing.assert_array_equal(*answers)

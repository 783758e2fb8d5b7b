"""Chroma: the shared checks, builds that are not reproducible (as declared), the ef set per search by
modifying the collection's configuration and reopening, short answers, and the scratch directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.indexer.backends import kit

NAME = "chroma"
LEAN = {"M": 4, "ef_construction": 16}


def test_two_builds_in_one_order_differ() -> None:
    """deterministic=False is what Chroma does: a batch goes in in hash-map order on a thread pool, so two
    builds of the same data in the same order answer differently on a lean graph."""
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    answers = []
    for _ in range(2):
        index = kit.build(NAME, LEAN, x, order, "ip")
        answers.append(index.search(q, 10, 10)[0])
        index.close()
    assert not np.array_equal(*answers)


def test_ef_is_per_search_and_none_is_chromas_default() -> None:
    """Each ef is written to the collection's configuration and the index reopened with it: ef=10 answers
    differently from the default, and the default comes back (same graph, all points still there)."""
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    index = kit.build(NAME, LEAN, x, np.arange(len(x)), "ip")
    try:
        default = index.search(q, 10, None)
        assert index.search(q, 10, 10)[0].tolist() != default[0].tolist()  # ef matters on this lean graph
        assert index._col.configuration["hnsw"]["ef_search"] == 10  # type: ignore[attr-defined]
        assert index._col.count() == len(x)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(index.search(q, 10, None)[0], default[0])  # ef=10 did not stay behind
        np.testing.assert_array_equal(index.search(q, 10, 100)[0], default[0])
    finally:
        index.close()


def test_the_collection_has_the_configuration_and_no_telemetry() -> None:
    x, _ = kit.clustered_data(n=300)
    index = kit.build(NAME, {"M": 6, "ef_construction": 24}, x, np.arange(len(x)), "l2")
    try:
        hnsw = index._col.configuration["hnsw"]  # type: ignore[attr-defined]
        fields = ("space", "max_neighbors", "ef_construction", "ef_search")
        assert [hnsw[f] for f in fields] == ["l2", 6, 24, 100]
        assert index._client.get_settings().anonymized_telemetry is False  # type: ignore[attr-defined]
        directory = index._dir  # type: ignore[attr-defined]
        everything = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(directory) for f in fs)
        assert 0 < index.nbytes() < everything  # the HNSW files only, not the SQLite database
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
    failed = new_index(NAME, x.shape[1], "l2", params={}, seed=0)
    with pytest.raises(Exception):  # noqa: B017 (whatever the library raises on a repeated id)
        failed.build(x, np.array([0, 1, 1]))
    leftover = failed._dir  # type: ignore[attr-defined]
    failed.close()
    failed.close()
    assert leftover is not None and not os.path.exists(leftover)

"""Insertion orders: each is a permutation with the property that defines it, checked independently."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from indexer.common.errors import UserError
from indexer.science.orderings import KMEANS_NITER, ORDERINGS, insertion_order


def _is_permutation(order: np.ndarray, n: int) -> bool:
    return order.dtype == np.int64 and order.shape == (n,) and np.array_equal(np.sort(order), np.arange(n))


def _blocks_contiguous(seq: np.ndarray) -> bool:
    """Each value occupies one run: the number of runs equals the number of distinct values."""
    runs = 1 + int((seq[1:] != seq[:-1]).sum()) if len(seq) else 0
    return runs == len(np.unique(seq))


@pytest.fixture
def data() -> dict:
    rng = np.random.default_rng(42)
    n = 60
    lid = rng.uniform(1, 20, size=n).round(0)  # rounded: plenty of ties
    lid[[4, 17, 33]] = np.nan
    return {
        "n": n,
        "labels": rng.integers(0, 4, size=n),
        "lid": lid,
        "vectors": rng.normal(size=(n, 5)).astype(np.float32),
    }


def test_the_spec_accepts_exactly_the_registered_names_in_registry_order() -> None:
    from typing import get_args

    from indexer.engine.spec import OrderingName

    assert get_args(OrderingName) == tuple(ORDERINGS)


def test_every_ordering_says_what_it_is() -> None:
    assert all(ordering.description.strip() for ordering in ORDERINGS.values())


def test_importing_the_registry_leaves_faiss_unloaded() -> None:
    import subprocess
    import sys

    # a fresh interpreter: in this one another test has imported faiss already
    script = "import sys, indexer.engine.spec; print('faiss' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(ORDERINGS))
def test_every_ordering_is_a_permutation(name: str, data: dict) -> None:
    order = insertion_order(
        name,
        data["n"],
        rng=np.random.default_rng(0),
        labels=data["labels"],
        lid=data["lid"],
        vectors=data["vectors"],
        clusters=4,
    )
    assert _is_permutation(order, data["n"])


def test_given_is_identity() -> None:
    np.testing.assert_array_equal(insertion_order("given", 7, rng=np.random.default_rng(0)), np.arange(7))


def test_random_is_seeded() -> None:
    a = insertion_order("random", 100, rng=np.random.default_rng(1))
    b = insertion_order("random", 100, rng=np.random.default_rng(1))
    c = insertion_order("random", 100, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_lid_asc_and_desc(data: dict) -> None:
    lid, n = data["lid"], data["n"]
    nan_ids = {4, 17, 33}
    asc = insertion_order("lid_asc", n, rng=np.random.default_rng(0), lid=lid)
    desc = insertion_order("lid_desc", n, rng=np.random.default_rng(0), lid=lid)
    for order, sign in ((asc, 1), (desc, -1)):
        assert set(order[-3:]) == nan_ids  # NaN last either way
        vals = lid[order[:-3]]
        assert (np.diff(sign * vals) >= 0).all()  # monotone
        # Ties kept in ascending index order: within equal LID the ids increase.
        same = vals[1:] == vals[:-1]
        assert (np.diff(order[:-3])[same] > 0).all()
    # Brute force: a Python sort by (NaN last, value, index).
    key = lambda i: (np.isnan(lid[i]), lid[i] if not np.isnan(lid[i]) else 0, i)  # noqa: E731
    assert asc.tolist() == sorted(range(n), key=key)
    key_d = lambda i: (np.isnan(lid[i]), -lid[i] if not np.isnan(lid[i]) else 0, i)  # noqa: E731
    assert desc.tolist() == sorted(range(n), key=key_d)


def test_lid_inf_goes_to_the_high_end() -> None:
    lid = np.array([2.0, np.inf, 1.0, np.nan])
    rng = np.random.default_rng(0)
    assert insertion_order("lid_asc", 4, rng=rng, lid=lid).tolist() == [2, 0, 1, 3]
    assert insertion_order("lid_desc", 4, rng=rng, lid=lid).tolist() == [1, 0, 2, 3]


def test_category_blocks_are_contiguous_and_stable(data: dict) -> None:
    labels = data["labels"]
    order = insertion_order("category", data["n"], rng=np.random.default_rng(0), labels=labels)
    seq = labels[order]
    assert _blocks_contiguous(seq) and (np.diff(seq) >= 0).all()
    for lab in np.unique(labels):
        np.testing.assert_array_equal(order[seq == lab], np.flatnonzero(labels == lab))


def test_category_interleaved_hand_checked() -> None:
    labels = np.array([2, 0, 0, 1, 2, 0, 2, 2])
    # label 0: rows 1, 2, 5; label 1: row 3; label 2: rows 0, 4, 6, 7
    # round 1: 1, 3, 0; round 2: 2, 4; round 3: 5, 6; round 4: 7
    order = insertion_order("category_interleaved", 8, rng=np.random.default_rng(0), labels=labels)
    assert order.tolist() == [1, 3, 0, 2, 4, 5, 6, 7]


def test_category_interleaved_matches_python_round_robin(data: dict) -> None:
    labels = data["labels"]
    queues = {
        lab: [i for i in range(len(labels)) if labels[i] == lab] for lab in sorted(set(labels.tolist()))
    }
    expected: list[int] = []
    while any(queues.values()):
        for lab in sorted(queues):
            if queues[lab]:
                expected.append(queues[lab].pop(0))
    order = insertion_order("category_interleaved", data["n"], rng=np.random.default_rng(0), labels=labels)
    assert order.tolist() == expected


def test_cluster_blocks_match_an_independent_faiss_kmeans() -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=10, size=(5, 8))
    x = (centres[rng.integers(0, 5, size=500)] + rng.normal(size=(500, 8))).astype(np.float32)
    order = insertion_order("cluster", 500, rng=np.random.default_rng(3), vectors=x, clusters=5)
    # The ordering draws its k-means seed as the first integer from rng; redo the clustering here
    # and assign points to centroids by numpy brute force.
    seed = int(np.random.default_rng(3).integers(0, 2**31 - 1))
    km = faiss.Kmeans(8, 5, niter=KMEANS_NITER, seed=seed)
    km.train(x)
    d2 = ((x[:, None, :].astype(np.float64) - km.centroids[None].astype(np.float64)) ** 2).sum(axis=2)
    assign = d2.argmin(axis=1)
    seq = assign[order]
    assert _blocks_contiguous(seq) and (np.diff(seq) >= 0).all()  # clusters in id order
    for c in range(5):
        np.testing.assert_array_equal(order[seq == c], np.flatnonzero(assign == c))  # stable inside


def test_cluster_caps_clusters_at_n() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    order = insertion_order("cluster", 3, rng=np.random.default_rng(0), vectors=x, clusters=16)
    assert _is_permutation(order, 3)


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("category", "category labels"),
        ("category_interleaved", "category labels"),
        ("lid_asc", "pointwise LID"),
        ("lid_desc", "pointwise LID"),
        ("cluster", "vectors"),
    ],
)
def test_missing_inputs_raise_user_error(name: str, needs: str) -> None:
    with pytest.raises(UserError, match=f"ordering '{name}' needs {needs}; dataset glove has none"):
        insertion_order(name, 10, rng=np.random.default_rng(0), dataset="glove")


def test_unknown_ordering_and_wrong_length() -> None:
    with pytest.raises(UserError, match="unknown ordering"):
        insertion_order("alphabetical", 3, rng=np.random.default_rng(0))
    with pytest.raises(UserError, match="entries for 4 points"):
        insertion_order("category", 4, rng=np.random.default_rng(0), labels=np.array([0, 1]))


def test_missing_input_message_without_a_dataset_name() -> None:
    with pytest.raises(UserError, match="needs category labels; the dataset has none"):
        insertion_order("category", 3, rng=np.random.default_rng(0))

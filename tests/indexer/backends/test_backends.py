"""Each backend against numpy brute force and against the raw library called directly."""

from __future__ import annotations

import threading

import faiss
import hnswlib
import numpy as np
import pytest

from indexer.backends import make_index
from indexer.engine.spec import ExactBackend, FaissHnswBackend, HnswlibBackend
from indexer.model.seeds import library_seed


def _data(n: int = 2000, d: int = 24, q: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d)) * 3
    x = (centers[rng.integers(0, 20, n)] + rng.standard_normal((n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qv = (centers[rng.integers(0, 20, q)] + rng.standard_normal((q, d))).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    return x, qv


def _brute(x: np.ndarray, q: np.ndarray, k: int, space: str) -> np.ndarray:
    if space == "ip":
        return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


HNSW = [HnswlibBackend(name="hnswlib", M=16, ef_construction=100),
        FaissHnswBackend(name="faiss_hnsw", M=16, ef_construction=100)]


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("backend", HNSW + [ExactBackend(name="exact")], ids=lambda b: b.name)
def test_recall_against_numpy_brute_force(backend, space):
    x, q = _data()
    order = np.random.default_rng(1).permutation(len(x))
    index = make_index(backend, x.shape[1], space, seed=0)
    index.build(x, order)
    ids, scores = index.search(q, 10, 200)
    truth = _brute(x, q, 10, space)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert recall >= (1.0 if backend.name == "exact" else 0.97)
    # scores are the metric's own values for the returned ids, in the dataset's numbering
    expected = np.einsum("qkd,qd->qk", x[ids], q) if space == "ip" else ((x[ids] - q[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, expected, atol=1e-4)


@pytest.mark.parametrize("backend", HNSW + [ExactBackend(name="exact")], ids=lambda b: b.name)
def test_ids_follow_dataset_numbering_whatever_the_order(backend):
    x, _ = _data(n=500)
    order = np.random.default_rng(7).permutation(len(x))[::-1].copy()
    index = make_index(backend, x.shape[1], "l2", seed=0)
    index.build(x, order)
    ids, _ = index.search(x[:100], 1, 100)
    assert (ids[:, 0] == np.arange(100)).mean() >= 0.99


def test_hnswlib_matches_raw_library_built_in_the_same_order():
    x, q = _data()
    order = np.argsort(np.random.default_rng(3).random(len(x)))
    index = make_index(HNSW[0], x.shape[1], "ip", seed=5)
    index.build(x, order)
    raw = hnswlib.Index(space="ip", dim=x.shape[1])
    raw.init_index(max_elements=len(x), M=16, ef_construction=100, random_seed=library_seed(5, "hnswlib"))
    raw.add_items(x[order], ids=order, num_threads=1)
    raw.set_ef(20)
    want, _ = raw.knn_query(q, k=10, num_threads=1)
    got, _ = index.search(q, 10, 20)
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_faiss_matches_raw_library_with_one_add_per_vector():
    x, q = _data()
    order = np.random.default_rng(4).permutation(len(x))
    index = make_index(HNSW[1], x.shape[1], "l2", seed=0)
    index.build(x, order)
    raw = faiss.IndexHNSWFlat(x.shape[1], 16)
    raw.hnsw.efConstruction = 100
    raw.hnsw.rng = faiss.RandomGenerator(library_seed(0, "faiss_hnsw"))
    for i in order:
        raw.add(x[i : i + 1])
    _, internal = raw.search(q, 10, params=faiss.SearchParametersHNSW(efSearch=20))
    got, _ = index.search(q, 10, 20)
    np.testing.assert_array_equal(got, order[internal])


@pytest.mark.parametrize("backend", HNSW, ids=lambda b: b.name)
def test_same_order_and_seed_give_the_same_graph(backend):
    x, q = _data(n=1500)
    order = np.random.default_rng(2).permutation(len(x))
    results = []
    for _ in range(2):
        index = make_index(backend, x.shape[1], "ip", seed=11)
        index.build(x, order)
        results.append(index.search(q, 10, 12)[0])
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("backend", HNSW, ids=lambda b: b.name)
def test_per_call_ef_does_not_leak_between_threads(backend):
    x, q = _data(n=3000)
    index = make_index(backend, x.shape[1], "ip", seed=0)
    index.build(x, np.arange(len(x)))
    efs = [10, 200]
    alone = {ef: [index.search(q[i : i + 1], 10, ef)[0] for i in range(len(q))] for ef in efs}
    mismatches: list[tuple[int, int]] = []

    def worker(ef: int) -> None:
        for _ in range(3):
            for i in range(len(q)):
                if not np.array_equal(index.search(q[i : i + 1], 10, ef)[0], alone[ef][i]):
                    mismatches.append((ef, i))

    threads = [threading.Thread(target=worker, args=(ef,)) for ef in efs * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mismatches


@pytest.mark.parametrize("backend", HNSW + [ExactBackend(name="exact")], ids=lambda b: b.name)
def test_save_and_load_round_trip(backend, tmp_path):
    x, q = _data(n=800)
    order = np.random.default_rng(0).permutation(len(x))
    index = make_index(backend, x.shape[1], "ip", seed=0)
    index.build(x, order)
    index.save(tmp_path / "index.bin")
    loaded = make_index(backend, x.shape[1], "ip", seed=0)
    loaded.load(tmp_path / "index.bin", len(x))
    np.testing.assert_array_equal(index.search(q, 10, 30)[0], loaded.search(q, 10, 30)[0])
    assert loaded.nbytes() > x.nbytes * 0.9


def test_k_larger_than_index_pads_with_minus_one():
    x, q = _data(n=5)
    index = make_index(HNSW[0], x.shape[1], "ip", seed=0)
    index.build(x, np.arange(5))
    ids, _ = index.search(q[:2], 8, 10)
    assert ids.shape == (2, 8)
    assert (ids[:, 5:] == -1).all() and sorted(ids[0, :5]) == [0, 1, 2, 3, 4]


def test_faiss_level_assignment_follows_the_seed():
    x, _ = _data(n=1500)
    levels = []
    for seed in (0, 0, 1):
        index = make_index(HNSW[1], x.shape[1], "l2", seed=seed)
        index.build(x, np.arange(len(x)))
        levels.append(faiss.vector_to_array(index._index.hnsw.levels))
    assert np.array_equal(levels[0], levels[1]) and not np.array_equal(levels[0], levels[2])


@pytest.mark.parametrize("backend", HNSW, ids=lambda b: b.name)
def test_distinct_spec_seeds_build_distinct_graphs(backend):
    """Seeds are replicates: spec seeds 0 and 1 (which hnswlib's minstd once mapped to one state) and
    every other pair give different graphs in the same insertion order."""
    x, q = _data(n=1500)
    order = np.arange(len(x))
    found = []
    for seed in (0, 1, 2):
        index = make_index(backend, x.shape[1], "ip", seed=seed)
        index.build(x, order)
        found.append(index.search(q, 10, 10)[0])
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(found[a], found[b]), (a, b)


def test_library_seeds_are_distinct_nonzero_minstd_states():
    seeds = [library_seed(s, "hnswlib") for s in range(5000)]
    assert len(set(seeds)) == len(seeds)
    assert all(1 <= s <= 2**31 - 2 for s in seeds)
    assert library_seed(0, "hnswlib") != library_seed(0, "faiss_hnsw")
    assert library_seed(7, "hnswlib") == 1 + int.from_bytes(
        __import__("hashlib").sha256(b"hnswlib:7").digest()[:8], "little") % (2**31 - 2)


def test_hnswlib_answers_queries_that_reach_fewer_than_k_points():
    # two far-apart clusters and M=2: the graph can leave queries unable to reach k points, which
    # makes hnswlib reject a whole batch; each query must still get what it can reach, padded with -1
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 1000]).astype(np.float32)
    index = make_index(HnswlibBackend(name="hnswlib", M=2, ef_construction=2), 8, "l2", seed=0)
    index.build(x, np.arange(len(x)))
    ids, scores = index.search(x[:50], 400, 1)
    assert ids.shape == (50, 400)
    valid = ids >= 0
    assert valid[:, 0].all()
    expected = ((x[np.where(valid, ids, 0)] - x[:50, None]) ** 2).sum(-1)
    np.testing.assert_allclose(scores[valid], expected[valid], rtol=1e-4, atol=1e-3)

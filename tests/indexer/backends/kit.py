"""What every backend's tests check, once: recall and scores against numpy brute force, ids in the dataset's
numbering, determinism and order control as declared, the missing-extra error, and a run through the engine.

A backend's test file calls these with its own spec entry (a dict as a spec would hold it), so each file
holds only what is particular to its library.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.backends import BACKENDS, VectorIndex, new_index
from indexer.backends.declaration import Library
from indexer.common.errors import UserError
from indexer.engine.spec import parse_spec


def clustered_data(n: int = 2000, d: int = 24, q: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around 20 centres, and queries drawn the same way: neighbours that mean something."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d)) * 3
    x = (centers[rng.integers(0, 20, n)] + rng.standard_normal((n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qv = (centers[rng.integers(0, 20, q)] + rng.standard_normal((q, d))).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    return x, qv


def brute_force(x: np.ndarray, q: np.ndarray, k: int, space: str) -> np.ndarray:
    """Exact top-k ids in float64 numpy: ip highest first, l2 (squared) lowest first."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if space == "ip":
        return np.argsort(-(q64 @ x64.T), axis=1, kind="stable")[:, :k]
    d = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def exact_scores(x: np.ndarray, q: np.ndarray, ids: np.ndarray, space: str) -> np.ndarray:
    """The engine's score of each returned id: inner product (ip) or squared L2 (l2), in float64."""
    xs = x.astype(np.float64)[ids]
    if space == "ip":
        return np.einsum("qkd,qd->qk", xs, q.astype(np.float64))
    return ((xs - q.astype(np.float64)[:, None]) ** 2).sum(-1)


def build(name: str, params: dict[str, Any], x: np.ndarray, order: np.ndarray, space: str,
          seed: int = 0) -> VectorIndex:
    index = new_index(name, x.shape[1], space, params=params, seed=seed)
    index.build(x, order)
    return index


def check_recall_and_scores(name: str, params: dict[str, Any], space: str, *, ef: int | None,
                            floor: float = 0.95, score_atol: float = 1e-4) -> None:
    """Recall@10 against brute force above `floor`, ids in the dataset's numbering (built in a shuffled
    order), and scores equal to the exact scores of the returned ids (the engine's convention)."""
    x, q = clustered_data()
    order = np.random.default_rng(1).permutation(len(x))
    index = build(name, params, x, order, space)
    try:
        ids, scores = index.search(q, 10, ef)
    finally:
        index.close()
    assert ids.shape == (len(q), 10) and ids.dtype == np.int64 and scores.dtype == np.float32
    truth = brute_force(x, q, 10, space)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert recall >= floor, f"{name} {space}: recall@10 {recall:.3f} < {floor}"
    assert ((ids >= 0) & (ids < len(x))).all()
    np.testing.assert_allclose(scores, exact_scores(x, q, ids, space), atol=score_atol)


def check_ids_follow_the_dataset_numbering(name: str, params: dict[str, Any], *, ef: int | None) -> None:
    """Each base vector, searched for, comes back first under its own row number (whatever the order)."""
    x, _ = clustered_data(n=500)
    order = np.random.default_rng(7).permutation(len(x))[::-1].copy()
    index = build(name, params, x, order, "l2")
    try:
        ids, _ = index.search(x[:100], 1, ef)
    finally:
        index.close()
    assert (ids[:, 0] == np.arange(100)).mean() >= 0.98


def _answers(name: str, params: dict[str, Any], order: np.ndarray, x: np.ndarray, q: np.ndarray,
             ef: int | None) -> tuple[np.ndarray, np.ndarray]:
    index = build(name, params, x, order, "ip", seed=3)
    try:
        return index.search(q, 10, ef)
    finally:
        index.close()


def check_determinism_and_order(name: str, params: dict[str, Any], *, ef: int | None) -> None:
    """As declared: a deterministic backend answers identically from two builds in the same order; an
    order-controlled one answers differently from two different orders (lean graph, low ef: the order shows).
    """
    caps = BACKENDS[name].capabilities
    x, q = clustered_data(n=3000, q=200, seed=5)
    first = np.random.default_rng(11).permutation(len(x))
    a_ids, a_scores = _answers(name, params, first, x, q, ef)
    if caps.deterministic:
        b_ids, b_scores = _answers(name, params, first, x, q, ef)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_scores, b_scores)
    if caps.order_controlled:
        other = np.random.default_rng(12).permutation(len(x))
        c_ids, _ = _answers(name, params, other, x, q, ef)
        assert not np.array_equal(a_ids, c_ids), f"{name}: two insertion orders gave the same answers"


def check_missing_extra(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec naming the backend when its package is absent gets one line naming the extra to install."""
    library = BACKENDS[name].library
    assert library.extra is not None
    monkeypatch.setattr(Library, "installed", lambda self: False)
    with pytest.raises(UserError, match=rf"pip install -e '\.\[{library.extra}\]'") as err:
        new_index(name, 8, "ip", params={}, seed=0)
    assert "\n" not in str(err.value)


def check_engine_rows(name: str, entry: dict[str, Any], tmp_path: Path, *, floor: float = 0.8) -> list[Any]:
    """A tiny spec through the engine's one run path: rows carry the library's version and its order
    claim, recall is measured against exact search, and nothing of the system is left in the cache."""
    from indexer.engine.runner import run

    spec = parse_spec({
        "name": f"{name}-tiny",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 8], "points_per_subspace": 300,
                    "queries_per_subspace": 20, "ambient_dim": 16, "seed": 1},
        "k": 10, "lid": {"k": 10}, "orderings": ["random", "lid_asc"],
        "backends": [{"name": name, **entry}],
    })
    result = run(spec, cache_dir=tmp_path / "cache")
    rows = [r for r in result.rows if r.backend == name]
    declared = BACKENDS[name]
    assert rows and {r.ordering for r in rows} == {"random", "lid_asc"}
    for r in rows:
        assert r.library_version == importlib.metadata.version(declared.library.distribution)
        assert r.order_controlled is declared.capabilities.order_controlled
        assert r.recall is not None and r.recall >= floor, (r.ef, r.recall)
    return rows


def comparable(row: Any) -> dict[str, Any]:
    """A row without what may differ between runs of the same spec: timings, threads, file locations."""
    from indexer.model.results import DenseRow

    data: dict[str, Any] = row.model_dump(mode="json", exclude=DenseRow.VOLATILE)
    for cost in data.get("cost_at_recall") or []:
        cost.pop("qps", None)
        cost.pop("qps_range", None)
    return data


def assert_same_rows(a: Any, b: Any) -> None:
    """Two runs of one spec gave the same rows (timings aside) and the same neighbour files."""
    from indexer.model.results import DenseRow

    assert len(a.rows) == len(b.rows)
    for x, y in zip(a.rows, b.rows, strict=True):
        assert isinstance(x, DenseRow) and isinstance(y, DenseRow)
        assert comparable(x) == comparable(y)
        np.testing.assert_array_equal(np.load(x.neighbors), np.load(y.neighbors))

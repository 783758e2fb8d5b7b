"""Every search and evaluate request has a bound on its work and its response (settings: max_k,
max_ef, max_batch, max_results_per_request, max_text_chars), and integers are integers."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from indexer.settings import Settings

DEFAULTS = Settings()


def _vectors(count: int, dim: int = 32, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32).round(4).tolist()


def _search(client: httpx.Client, index: dict[str, Any], **body: Any) -> httpx.Response:
    return client.post(f"/indexes/{index['id']}/search", json=body)


def test_k_over_max_k_is_refused(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    r = _search(index_client, hnsw_index, vectors=_vectors(1), k=DEFAULTS.max_k + 1)
    assert r.status_code == 422 and "max_k" in r.json()["detail"]


def test_ef_over_max_ef_is_refused(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    r = _search(index_client, hnsw_index, vectors=_vectors(1), k=5, ef=DEFAULTS.max_ef + 1)
    assert r.status_code == 422 and "max_ef" in r.json()["detail"]


@pytest.mark.parametrize("count,k", [(1024, 1000), (101, 1000), (1000, 101)])
def test_queries_times_k_over_the_ceiling_is_refused(
    index_client: httpx.Client, hnsw_index: dict[str, Any], count: int, k: int
) -> None:
    assert count * k > DEFAULTS.max_results_per_request
    r = _search(index_client, hnsw_index, vectors=_vectors(count), k=k)
    assert r.status_code == 422, r.text[:300]
    assert "max_results_per_request" in r.json()["detail"] and f"{count * k:,}" in r.json()["detail"]


def test_texts_times_k_over_the_ceiling_is_refused(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    r = _search(index_client, hnsw_index, texts=["a query"] * 200, k=1000)
    assert r.status_code == 422 and "max_results_per_request" in r.json()["detail"]


def test_evaluate_counts_every_ef_value(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    held_out = 20  # the tiny spec's queries: 2 subspaces x 10
    efs = list(range(1000, 1032))
    assert held_out * 1000 * len(efs) > DEFAULTS.max_results_per_request
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"k": 1000, "ef": efs})
    assert r.status_code == 422 and "32 ef values" in r.json()["detail"]


def test_the_largest_allowed_search_answers_within_its_bound(
    index_client: httpx.Client, hnsw_index: dict[str, Any]
) -> None:
    """max_results_per_request results at most: about 50 bytes each (id, score, null title)."""
    count, k = 100, 1000
    assert count * k == DEFAULTS.max_results_per_request
    r = _search(index_client, hnsw_index, vectors=_vectors(count), k=k, ef=1000)
    assert r.status_code == 200
    assert sum(len(hits) for hits in r.json()["results"]) <= count * k
    print(f"largest search response: {len(r.content):,} bytes for {count * k:,} results")
    assert len(r.content) < 60 * DEFAULTS.max_results_per_request


@pytest.mark.parametrize(
    "body",
    [
        {"k": True},
        {"k": 10.0},
        {"k": "10"},
        {"ef": False},
        {"ef": 40.5},
        {"vectors": [[True] * 32]},
        {"vectors": [["0.5"] * 32]},
    ],
    ids=["k-true", "k-float", "k-string", "ef-false", "ef-float", "vector-bool", "vector-string"],
)
def test_booleans_strings_and_floats_are_not_integers(
    index_client: httpx.Client, hnsw_index: dict[str, Any], body: dict[str, Any]
) -> None:
    payload = {"vectors": _vectors(1), **body}
    r = _search(index_client, hnsw_index, **payload)
    assert r.status_code == 422, r.text


def test_evaluate_refuses_a_boolean_k(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"k": True})
    assert r.status_code == 422

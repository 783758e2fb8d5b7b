"""Indexes: list, search, evaluate, every bad input, and concurrent searches with different ef."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

UNKNOWN = "ffffffffffffffff"


def _vectors(loaded: Any, count: int, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, loaded.dim)).astype(np.float32).tolist()


def test_list_indexes(index_client: httpx.Client, built: dict[str, Any]) -> None:
    r = index_client.get("/indexes", params={"limit": 500})
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"items", "total", "offset", "limit"} and page["total"] == len(page["items"])
    mine = [i for i in page["items"] if i["experiment_id"] == built["experiment"]["id"]]
    assert {i["backend"] for i in mine} == {"hnswlib", "exact"}
    for item in mine:
        assert set(item) >= {"id", "experiment_id", "dataset", "ordering", "backend", "params", "reduction",
                             "dims", "metric", "model", "n", "dim", "size_bytes"}
        assert item["n"] == 1000 and item["dim"] == 32 and item["metric"] == "cosine"
        assert "path" not in item  # server paths stay on the server
    one = index_client.get(f"/indexes/{mine[0]['id']}")
    assert one.status_code == 200 and one.json() == mine[0]


def test_indexes_page_like_experiments(index_client: httpx.Client, built: dict[str, Any]) -> None:
    everything = index_client.get("/indexes", params={"limit": 500}).json()
    first = index_client.get("/indexes", params={"offset": 0, "limit": 1}).json()
    rest = index_client.get("/indexes", params={"offset": 1, "limit": 500}).json()
    assert first["total"] == rest["total"] == everything["total"] >= 2
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in everything["items"]]
    assert index_client.get("/indexes", params={"limit": 501}).status_code == 422


def test_search_matches_direct(index_client: httpx.Client, hnsw_index: dict[str, Any], loaded: Any) -> None:
    vectors = _vectors(loaded, 5)
    r = index_client.post(f"/indexes/{hnsw_index['id']}/search", json={"vectors": vectors, "k": 7, "ef": 32})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    ids, scores = loaded.search(np.asarray(vectors, dtype=np.float32), 7, 32)
    assert len(results) == 5
    for hits, row_ids, row_scores in zip(results, ids, scores, strict=True):
        assert [h["id"] for h in hits] == row_ids.tolist()
        assert np.allclose([h["score"] for h in hits], row_scores, rtol=1e-6)
        assert all("title" in h for h in hits)


def test_search_default_ef(index_client: httpx.Client, hnsw_index: dict[str, Any], loaded: Any) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/search", json={"vectors": _vectors(loaded, 1)})
    assert r.status_code == 200 and len(r.json()["results"][0]) == 10


def test_search_with_ef_below_k_searches_with_k(
    index_client: httpx.Client, hnsw_index: dict[str, Any], loaded: Any
) -> None:
    """Valid by the schema (ef is any positive integer), so accepted: every backend searches with at least k."""
    vectors = _vectors(loaded, 5, seed=3)
    r = index_client.post(f"/indexes/{hnsw_index['id']}/search", json={"vectors": vectors, "k": 10, "ef": 2})
    assert r.status_code == 200, r.text
    ids, _ = loaded.search(np.asarray(vectors, dtype=np.float32), 10, 10)
    assert [[h["id"] for h in hits] for hits in r.json()["results"]] == ids.tolist()


def test_evaluate_measures_an_ef_below_k_as_k(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"k": 10, "ef": [5, 40, 2, 10]})
    assert r.status_code == 200, r.text
    measured = r.json()["results"]
    assert [res["ef"] for res in measured] == [10, 40]
    again = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"k": 10, "ef": [10]}).json()["results"]
    assert measured[0] == again[0]


def test_concurrent_searches_with_different_ef(
    index_server: Any, hnsw_index: dict[str, Any], loaded: Any
) -> None:
    """Per-request ef must not leak between concurrent requests on one shared index."""
    queries = _vectors(loaded, 8, seed=1)
    efs = [10, 12, 16, 24, 40, 64, 128, 256]
    expected = {ef: loaded.search(np.asarray(queries, dtype=np.float32), 10, ef)[0].tolist() for ef in efs}
    jobs = [(ef, q) for _ in range(3) for ef in efs for q in range(len(queries))]

    def one(client: httpx.Client, ef: int, q: int) -> tuple[int, int, list[int]]:
        r = client.post(f"/indexes/{hnsw_index['id']}/search",
                        json={"vectors": [queries[q]], "k": 10, "ef": ef})
        assert r.status_code == 200, r.text
        return ef, q, [h["id"] for h in r.json()["results"][0]]

    limits = httpx.Limits(max_connections=16)
    with index_server.client(limits=limits) as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: one(client, *job), jobs))
    assert len(answers) == len(jobs)
    for ef, q, ids in answers:
        assert ids == expected[ef][q], (ef, q)


def test_evaluate_held_out(index_client: httpx.Client, hnsw_index: dict[str, Any], loaded: Any) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"k": 10, "ef": [10, 40, 200]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["k"] == 10 and body["queries"] == "held_out"
    assert body["n_queries"] == len(loaded.held_out_queries())
    recalls = [res["recall"] for res in body["results"]]
    assert [res["ef"] for res in body["results"]] == [10, 40, 200]
    assert all(0.0 <= x <= 1.0 for x in recalls)
    assert recalls[-1] >= recalls[0] and recalls[-1] > 0.9
    for res in body["results"]:
        assert len(res["per_query"]) == body["n_queries"]
        assert res["recall"] == pytest.approx(np.mean(res["per_query"]), abs=1e-5)


def test_evaluate_given_vectors_against_brute_force(
    index_client: httpx.Client, hnsw_index: dict[str, Any], loaded: Any
) -> None:
    vectors = _vectors(loaded, 6, seed=2)
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json={"vectors": vectors, "k": 5, "ef": [64]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queries"] == "given" and body["n_queries"] == 6
    # truth by numpy brute force (cosine), not by the code under test
    q = np.asarray(vectors, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base = loaded.base / np.linalg.norm(loaded.base, axis=1, keepdims=True)
    truth = np.argsort(-(q @ base.T), axis=1)[:, :5]
    found = loaded.search(np.asarray(vectors, dtype=np.float32), 5, 64)[0]
    per_query = [len(set(f) & set(t)) / 5 for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
    assert body["results"][0]["per_query"] == pytest.approx(per_query)


def test_exact_index_has_full_recall(index_client: httpx.Client, built: dict[str, Any]) -> None:
    exact = next(i for i in built["indexes"] if i["backend"] == "exact")
    r = index_client.post(f"/indexes/{exact['id']}/evaluate", json={"k": 10, "ef": [10]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["recall"] == pytest.approx(1.0)


def test_unknown_index_is_404(index_client: httpx.Client) -> None:
    assert index_client.get(f"/indexes/{UNKNOWN}").status_code == 404
    r = index_client.post(f"/indexes/{UNKNOWN}/search", json={"vectors": [[1.0] * 32]})
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"]
    assert index_client.post(f"/indexes/{UNKNOWN}/evaluate", json={}).status_code == 404


BAD_SEARCHES: list[tuple[str, dict[str, Any], str]] = [
    ("wrong dimension", {"vectors": [[0.5] * 31]}, "dimension 31"),
    ("ragged rows", {"vectors": [[0.5] * 32, [0.5] * 33]}, "vectors[1] has dimension 33"),
    ("empty batch", {"vectors": []}, "vectors"),
    ("empty vector", {"vectors": [[]]}, "vectors.0"),
    ("k zero", {"vectors": [[0.5] * 32], "k": 0}, "k"),
    ("k above n", {"vectors": [[0.5] * 32], "k": 1001}, "k: 1001 exceeds"),
    ("ef above max", {"vectors": [[0.5] * 32], "ef": 5000}, "max_ef"),
    ("both inputs", {"vectors": [[0.5] * 32], "texts": ["a"]}, "exactly one"),
    ("no input", {"k": 3}, "exactly one"),
    ("texts on a vector index", {"texts": ["hello"]}, "not built from text"),
    ("strings as numbers", {"vectors": [["a"] * 32]}, "vectors.0.0"),
    ("float32 overflow", {"vectors": [[1e39] * 32]}, "float32"),
    ("zero vector under cosine", {"vectors": [[0.0] * 32]}, "all zeros"),
    ("unknown field", {"vectors": [[0.5] * 32], "topk": 3}, "topk"),
    ("batch over max_batch", {"vectors": [[0.5] * 32] * 1025}, "batch limit"),
]


@pytest.mark.parametrize(("case", "body", "needle"), BAD_SEARCHES, ids=[c[0] for c in BAD_SEARCHES])
def test_bad_search_is_422(
    index_client: httpx.Client, hnsw_index: dict[str, Any], case: str, body: dict[str, Any], needle: str
) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/search", json=body)
    assert r.status_code == 422, (case, r.text)
    assert needle in r.json()["detail"], (case, r.json()["detail"])


@pytest.mark.parametrize("route", ["search", "evaluate"])
@pytest.mark.parametrize("raw", [b'{"k": "\xff"}', b"[" * 100_000 + b"]" * 100_000], ids=["not-utf8", "deep"])
def test_a_body_that_is_not_json_is_422(
    index_client: httpx.Client, hnsw_index: dict[str, Any], route: str, raw: bytes
) -> None:
    """Not UTF-8, or nested past Python's recursion limit: the 422 of any other invalid JSON, not a 400."""
    r = index_client.post(f"/indexes/{hnsw_index['id']}/{route}", content=raw,
                          headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["detail"].startswith("invalid request: body: not valid JSON")


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_tokens_are_422(index_client: httpx.Client, hnsw_index: dict[str, Any], token: bytes) -> None:
    # Python's json module accepts these tokens, so the body parses; validation must still refuse them
    raw = b'{"vectors": [[' + b", ".join([b"0.5"] * 31 + [token]) + b"]], \"k\": 3}"
    r = index_client.post(f"/indexes/{hnsw_index['id']}/search", content=raw,
                          headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "vectors.0.31" in r.json()["detail"] and "finite" in r.json()["detail"]


BAD_EVALUATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("ef above max", {"ef": [10, 99999]}, "max_ef"),
    ("empty ef", {"ef": []}, "ef"),
    ("k above n", {"k": 5000, "ef": [5000]}, "exceeds"),
    ("wrong dimension", {"vectors": [[1.0, 2.0]]}, "dimension 2"),
    ("NaN-free but empty vectors", {"vectors": []}, "vectors"),
]


@pytest.mark.parametrize(("case", "body", "needle"), BAD_EVALUATIONS, ids=[c[0] for c in BAD_EVALUATIONS])
def test_bad_evaluate_is_422(
    index_client: httpx.Client, hnsw_index: dict[str, Any], case: str, body: dict[str, Any], needle: str
) -> None:
    r = index_client.post(f"/indexes/{hnsw_index['id']}/evaluate", json=body)
    assert r.status_code == 422, (case, r.text)
    assert needle in r.json()["detail"], (case, r.json()["detail"])

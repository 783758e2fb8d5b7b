"""One query's answer (the index explorer's endpoint): the index's top k beside the exact top k, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

UNKNOWN = "ffffffffffffffff"


def test_the_answer_is_the_search_beside_exact_search(index_client: httpx.Client, hnsw_index: dict[str, Any],
                                                      loaded: Any) -> None:
    queries = loaded.held_out_queries()
    per_query = loaded.recall(queries, 10, [10])[0]
    number = len(queries) - 1
    r = index_client.get(f"/indexes/{hnsw_index['id']}/queries/{number}", params={"k": 10, "ef": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == number and body["n_queries"] == len(queries) and body["ef"] == 10
    ids, _ = loaded.search(queries[number : number + 1], 10, 10)
    assert [h["id"] for h in body["found"]] == [i for i in ids[0].tolist() if i >= 0]
    # exact: brute force in numpy over the indexed vectors, never the code under test
    q = queries[number] / np.linalg.norm(queries[number])
    base = loaded.base / np.linalg.norm(loaded.base, axis=1, keepdims=True)
    sims = base @ q
    assert {h["id"] for h in body["exact"]} == set(np.argsort(-sims, kind="stable")[:10].tolist())
    assert body["exact"][0]["score"] == pytest.approx(float(sims.max()), abs=1e-5)
    assert body["recall"] == pytest.approx(per_query[number], abs=1e-4)
    exact_ids = [h["id"] for h in body["exact"]]
    for hit in body["found"]:
        assert hit["true_rank"] == (exact_ids.index(hit["id"]) if hit["id"] in exact_ids else None)
        assert hit["hit"] or hit["true_rank"] is None
    for true in body["exact"]:
        found = [h["id"] for h in body["found"]]
        assert true["found_rank"] == (found.index(true["id"]) if true["id"] in found else None)


def test_an_ef_below_k_and_no_ef_search_with_k(index_client: httpx.Client, hnsw_index: dict[str, Any]) -> None:
    assert index_client.get(f"/indexes/{hnsw_index['id']}/queries/0", params={"k": 5, "ef": 2}).json()["ef"] == 5
    assert index_client.get(f"/indexes/{hnsw_index['id']}/queries/0", params={"k": 7}).json()["ef"] == 7


def test_an_experiments_indexes_are_listed_alone(index_client: httpx.Client, built: dict[str, Any]) -> None:
    exp_id = built["experiment"]["id"]
    page = index_client.get("/indexes", params={"experiment_id": exp_id}).json()
    assert page["total"] == len(built["indexes"]) and {i["experiment_id"] for i in page["items"]} == {exp_id}
    assert index_client.get("/indexes", params={"experiment_id": UNKNOWN}).json()["total"] == 0
    assert index_client.get("/indexes", params={"experiment_id": "../x"}).json()["total"] == 0
    assert index_client.get("/indexes", params={"experiment_id": "a" * 65}).status_code == 422


BAD_QUERIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("query past the last", "1000", {}, "held-out queries (0 to"),
    ("negative query", "-1", {}, "query"),
    ("query not a number", "first", {}, "query"),
    ("k zero", "0", {"k": 0}, "k"),
    ("k above n", "0", {"k": 1001}, "k: 1001 exceeds"),
    ("k above max_k", "0", {"k": 100_000}, "max_k"),
    ("ef zero", "0", {"ef": 0}, "ef"),
    ("ef above max", "0", {"ef": 99_999}, "max_ef"),
    ("ef not a number", "0", {"ef": "wide"}, "ef"),
]


@pytest.mark.parametrize(("case", "query", "params", "needle"), BAD_QUERIES, ids=[c[0] for c in BAD_QUERIES])
def test_bad_input_is_422(index_client: httpx.Client, hnsw_index: dict[str, Any], case: str, query: str,
                          params: dict[str, Any], needle: str) -> None:
    r = index_client.get(f"/indexes/{hnsw_index['id']}/queries/{query}", params=params)
    assert r.status_code == 422, (case, r.text)
    assert needle in r.json()["detail"], (case, r.json()["detail"])


def test_unknown_index_is_404(index_client: httpx.Client) -> None:
    r = index_client.get(f"/indexes/{UNKNOWN}/queries/0")
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"]


def test_in_the_schema(index_client: httpx.Client) -> None:
    schema = index_client.get("/openapi.json").json()
    operation = schema["paths"]["/indexes/{index_id}/queries/{query}"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"index_id", "query", "k", "ef"}
    assert "experiment_id" in {p["name"] for p in schema["paths"]["/indexes"]["get"]["parameters"]}


def test_measures_are_the_published_ones(index_client: httpx.Client, index_server: Any, built: dict[str, Any],
                                         hnsw_index: dict[str, Any]) -> None:
    row = next(r for r in built["experiment"]["rows"] if r["cell"] == hnsw_index["id"])
    published = np.load(next(index_server.data_dir.rglob(Path(row["query_measures"]).name)), allow_pickle=False)
    last = len(published) - 1
    r = index_client.get(f"/indexes/{hnsw_index['id']}/queries/{last}/measures")
    assert r.status_code == 200, r.text
    body = r.json()
    for name in ("lid", "relative_contrast", "expansion", "centre_distance"):
        assert body[name] == pytest.approx(float(published[last][name])), name
    bad = index_client.get(f"/indexes/{hnsw_index['id']}/queries/{last + 1}/measures")
    assert bad.status_code == 422 and "held-out queries" in bad.json()["detail"]
    assert index_client.get(f"/indexes/{hnsw_index['id']}/queries/-1/measures").status_code == 422
    assert index_client.get(f"/indexes/{UNKNOWN}/queries/0/measures").status_code == 404

"""Every search and evaluate request has a bound on its work and its response (settings: max_k,
max_ef, max_batch, max_results_per_request, max_text_chars), and integers are integers. A submitted spec is
held to the same ceilings as on the command line, and no float of any request is infinite or NaN."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.routing import APIRoute

from indexer.settings import Settings
from tests.nonfinite import NON_FINITE, finite_errors, float_fields

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


# ---- a spec's bounds, as the API answers them -------------------------------------------------------

OVER = 1_000_000_000


def _spec(**changes: Any) -> dict[str, Any]:
    return {"name": "bounds", "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "ambient_dim": 8},
            "backends": [{"name": "hnswlib"}], **changes}


@pytest.mark.parametrize(
    "entry, where, limit",
    [({"name": "faiss_hnsw", "ef_search": [OVER]}, "backends.0.faiss_hnsw.ef_search.0", DEFAULTS.max_ef),
     ({"name": "milvus_lite", "ef_construction": OVER}, "backends.0.milvus_lite.ef_construction", 4096),
     ({"name": "chroma", "M": OVER}, "backends.0.chroma.M", 512),
     ({"name": "pgvector", "ef_search": [OVER]}, "backends.0.pgvector.ef_search.0", 1000)],
    ids=["ef_search", "ef_construction", "M", "pgvector's own ef_search"],
)
def test_a_spec_over_a_backend_ceiling_is_422_naming_the_parameter_the_value_and_the_limit(
    client: httpx.Client, entry: dict[str, Any], where: str, limit: int
) -> None:
    r = client.post("/experiments", json=_spec(backends=[entry]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        f"invalid request: {where}: Input should be less than or equal to {limit}, got {OVER}")


def _routes() -> list[APIRoute]:
    """The routes of every router module (app.api.routes.*), as the app includes them."""
    import app.api.routes as package

    names = [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    routers = [importlib.import_module(name).router for name in names]
    return [route for router in routers for route in router.routes if isinstance(route, APIRoute)]


BODY_MODELS = [param.field_info.annotation for route in _routes() for param in route.dependant.body_params]
BODY_FLOATS = float_fields(*BODY_MODELS)
QUERY_FLOATS = [(route.path, param.name) for route in _routes() for param in route.dependant.query_params
                if param.field_info.annotation is float]


def test_the_walk_finds_the_floats_of_every_request() -> None:
    names = {(model.__name__, field) for model, field in BODY_FLOATS}
    assert {("SearchRequest", "vectors"), ("EvaluateRequest", "vectors"), ("AdviseSpec", "budget_minutes"),
            ("SyntheticDataset", "noise")} <= names
    assert ("/experiments/{experiment_id}/compare/{other_id}", "min_recall_drop") in QUERY_FLOATS


@pytest.mark.parametrize("value", NON_FINITE, ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("model, field", BODY_FLOATS, ids=[f"{m.__name__}.{f}" for m, f in BODY_FLOATS])
def test_every_float_of_a_request_body_refuses_a_non_finite_value(model: Any, field: str, value: float) -> None:
    assert finite_errors(model, field, value), f"{model.__name__}.{field} took {value}"


@pytest.mark.parametrize("token, shown", [(b"Infinity", "inf"), (b"-Infinity", "-inf"), (b"NaN", "nan")])
def test_a_non_finite_token_in_a_spec_is_422_naming_the_field_and_the_value(
    client: httpx.Client, token: bytes, shown: str
) -> None:
    raw = json.dumps(_spec(advise={"budget_minutes": 1.5})).encode().replace(b"1.5", token)
    r = client.post("/experiments", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        f"invalid request: advise.budget_minutes: Input should be a finite number, got {shown}")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("path, name", QUERY_FLOATS, ids=[f"{p} {n}" for p, n in QUERY_FLOATS])
def test_every_float_query_parameter_refuses_a_non_finite_value(
    client: httpx.Client, path: str, name: str, value: str
) -> None:
    r = client.get(re.sub(r"\{[^}]+\}", "x", path), params={name: value})
    assert r.status_code == 422, r.text
    assert f"{name}: Input should be a finite number, got '{value}'" in r.json()["detail"]  # read as text

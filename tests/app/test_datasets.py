"""GET /datasets: kinds with their spec fields, built-in data with sizes."""

from __future__ import annotations

import httpx


def test_kinds_with_schemas(client: httpx.Client) -> None:
    r = client.get("/datasets")
    assert r.status_code == 200
    body = r.json()
    kinds = {k["kind"]: k for k in body["kinds"]}
    assert set(kinds) == {"synthetic", "glove", "text", "file", "beir"}
    assert "intrinsic_dims" in kinds["synthetic"]["fields"]["properties"]
    assert kinds["synthetic"]["accepted_over_api"] is True
    assert kinds["file"]["accepted_over_api"] is False
    assert kinds["beir"]["accepted_over_api"] is False


def test_builtin_sizes(client: httpx.Client) -> None:
    builtin = {b["name"]: b for b in client.get("/datasets").json()["builtin"]}
    assert (builtin["glove-6B-50d"]["n"], builtin["glove-6B-50d"]["dim"]) == (400_000, 50)
    assert (builtin["bbc"]["n"], builtin["bbc"]["categories"]) == (2_225, 5)
    assert (builtin["wordnet"]["n"], builtin["wordnet"]["categories"]) == (117_659, 45)
    assert builtin["bbc"]["embedding_dim"] == 384

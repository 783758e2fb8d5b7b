"""Error bodies stay small whatever the request: the first problems only, every echoed piece clipped.

A tiny app with the real error handlers (no server, no store), so a 100,000-problem body is cheap to send.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from app.api.errors import MAX_DETAIL_CHARS, install_error_handlers
from indexer.common.errors import UserError
from indexer.engine.spec import MAX_ECHO_CHARS, MAX_REPORTED_PROBLEMS, ExperimentSpec

SMALL_BODY = 20_000


class Numbers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[int]


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/numbers")
    def numbers(body: Numbers) -> int:
        return len(body.items)

    @app.post("/specs")
    def specs(spec: ExperimentSpec) -> str:
        return spec.key()

    @app.get("/user-error")
    def user_error(size: int) -> None:
        raise UserError("x" * size)

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app())


def test_many_bad_items_give_a_small_body_that_counts_them(client: TestClient) -> None:
    start = time.monotonic()
    r = client.post("/numbers", json={"items": ["no"] * 100_000})
    elapsed = time.monotonic() - start
    assert r.status_code == 422
    assert len(r.content) < SMALL_BODY
    body = r.json()
    assert len(body["errors"]) == MAX_REPORTED_PROBLEMS
    assert body["errors"][0] == {"loc": ["body", "items", 0], "msg": "Input should be a valid integer, unable to "
                                 "parse string as an integer", "type": "int_parsing"}
    assert body["detail"].startswith("invalid request: items.0: Input should be a valid integer")
    assert body["detail"].endswith(f"... and {100_000 - MAX_REPORTED_PROBLEMS} more problems")
    assert elapsed < 30  # most of it is FastAPI's own validation; the handler looks at 20 errors


def test_a_long_key_is_clipped_everywhere(client: TestClient) -> None:
    r = client.post("/numbers", json={"items": [], "k" * 1_000_000: 1})
    assert r.status_code == 422 and len(r.content) < SMALL_BODY
    problem = r.json()["errors"][0]
    assert problem["loc"][0] == "body" and len(problem["loc"][1]) == MAX_ECHO_CHARS
    assert problem["loc"][1].endswith("...")
    assert "Extra inputs are not permitted" in r.json()["detail"]


def test_invalid_json_is_one_short_sentence(client: TestClient) -> None:
    r = client.post("/numbers", content=b'{"items": [' + b"1," * 500_000 + b"oops]}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < SMALL_BODY
    assert r.json()["detail"].startswith("invalid request: body: not valid JSON at character")


def test_few_problems_are_all_listed_without_a_count(client: TestClient) -> None:
    r = client.post("/numbers", json={"items": [1, "a", 2, "b"]})
    body = r.json()
    assert r.status_code == 422 and len(body["errors"]) == 2 and "more problem" not in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["body", "items", 1], ["body", "items", 3]]


def test_user_error_message_is_clipped(client: TestClient) -> None:
    r = client.get("/user-error", params={"size": 1_000_000})
    assert r.status_code == 422 and len(r.json()["detail"]) == MAX_DETAIL_CHARS
    assert client.get("/user-error", params={"size": 10}).json() == {"detail": "x" * 10}


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "t", "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "ambient_dim": 8},
        "backends": [{"name": "exact"}],
    }
    return {**spec, **changes}


@pytest.mark.parametrize(
    "change, field",
    [({"k": 10.0}, "k"), ({"k": True}, "k"), ({"seeds": [-1]}, "seeds.0"), ({"seeds": [1.5]}, "seeds.0"),
     ({"seeds": list(range(100_000))}, "seeds")],
)
def test_spec_bodies_are_strict_over_json(client: TestClient, change: dict[str, Any], field: str) -> None:
    r = client.post("/specs", json=_spec(**change))
    assert r.status_code == 422 and len(r.content) < SMALL_BODY
    assert f"invalid request: {field}: " in r.json()["detail"]


def test_a_valid_spec_body_keeps_its_key(client: TestClient) -> None:
    r = client.post("/specs", json=_spec())
    assert r.status_code == 200
    assert r.json() == ExperimentSpec.model_validate(json.loads(json.dumps(_spec()))).key()

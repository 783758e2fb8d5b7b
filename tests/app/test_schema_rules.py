"""The OpenAPI schema says what the API does. It states the rules the request models' validators enforce
(app/openapi.py, app/schemas.py): a body valid by the schema is one the model accepts, and one it refuses
the model refuses. And every error is documented as the JSON it is.

The schema is the app's own document; each body is checked against it with jsonschema and against the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from app.main import create_app
from app.schemas import SearchRequest
from indexer.model.options import ReductionSpec
from indexer.settings import Settings

REDUCTIONS: list[dict[str, Any]] = [
    {"name": "fft"}, {"name": "fft", "dims": None}, {"name": "fft", "dims": 8}, {"name": "fft", "dims": 8, "rule": "energy"},
    {"name": "none"}, {"name": "none", "dims": None, "rule": None}, {"name": "none", "dims": 8},
    {"name": "none", "rule": "low"}, {"name": "pca", "dims": 8}, {"name": "pca", "dims": 8, "rule": "low"},
    {"name": "truncate"}, {"name": "random_projection", "dims": 8, "seed": 3},
]
SEARCHES: list[dict[str, Any]] = [
    {"vectors": [[1.0]]}, {"texts": ["a"]}, {"vectors": [[1.0]], "texts": None}, {"texts": ["a"], "vectors": None},
    {"vectors": [[1.0]], "texts": ["a"]}, {}, {"vectors": None, "texts": None}, {"k": 3},
]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("schema-rules"))), configure_threads=False)
    return app.openapi()


def _schema_accepts(openapi: dict[str, Any], component: str, body: dict[str, Any]) -> bool:
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{component}", "components": openapi["components"]})
    return validator.is_valid(body)


def _model_accepts(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("body", REDUCTIONS, ids=[str(b) for b in REDUCTIONS])
def test_reduction_schema_agrees_with_the_model(openapi: dict[str, Any], body: dict[str, Any]) -> None:
    assert _schema_accepts(openapi, "ReductionSpec", body) == _model_accepts(ReductionSpec, body)


@pytest.mark.parametrize("body", SEARCHES, ids=[str(b) for b in SEARCHES])
def test_search_schema_agrees_with_the_model(openapi: dict[str, Any], body: dict[str, Any]) -> None:
    assert _schema_accepts(openapi, "SearchRequest", body) == _model_accepts(SearchRequest, body)


def test_every_error_is_documented_as_json(openapi: dict[str, Any]) -> None:
    """Whatever a route answers on success (GET / is an HTML page), its errors are JSON."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/json"], (method, path, code)

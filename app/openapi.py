"""The OpenAPI document: FastAPI's, plus the rules of the engine's model validators that pydantic cannot
put in a JSON schema, so that a request valid by the schema is one the API accepts (schemathesis checks
it: tests/app/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI

from indexer.model.options import ReductionSpec


def _reduction_rules() -> dict[str, Any]:
    """ReductionSpec's validator: `none` takes no dims or rule, every other reduction needs dims, and
    only fft takes a rule."""
    others = [n for n in get_args(ReductionSpec.model_fields["name"].annotation) if n not in ("none", "fft")]
    dims, null = {"type": "integer"}, {"type": "null"}
    return {"oneOf": [
        {"properties": {"name": {"const": "none"}, "dims": null, "rule": null}},
        {"properties": {"name": {"const": "fft"}, "dims": dims}, "required": ["dims"]},
        {"properties": {"name": {"enum": others}, "dims": dims, "rule": null}, "required": ["dims"]},
    ]}


# component schema -> what is merged into it
SCHEMA_RULES: dict[str, dict[str, Any]] = {"ReductionSpec": _reduction_rules()}


def install_schema_rules(app: FastAPI) -> None:
    """Serve FastAPI's OpenAPI document with SCHEMA_RULES merged into its component schemas."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # FastAPI builds the document once and keeps it
            schemas = build()["components"]["schemas"]
            for name, rules in SCHEMA_RULES.items():
                schemas[name].update(rules)
        return build()

    app.openapi = openapi  # type: ignore[method-assign]

"""The base of every model a user writes (the spec and each backend's parameters): strict, closed, and
brief in its errors, since they echo user input. Imports nothing from the engine, so both indexer.engine.spec
and the backends' declarations can build on it."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Errors echo user input: only the first problems, each piece clipped, so no message grows with the input.
MAX_REPORTED_PROBLEMS = 20
MAX_ECHO_CHARS = 200


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """At most `limit` characters of text that may come from the user, so no error echoes a huge input."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class Strict(BaseModel):
    # strict: `k: true` or `k: 10.0` is a mistake to report, not a value to coerce to 1 or 10
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, data: Any) -> Any:
        """One error for a mapping with far too many keys, instead of one per unknown key."""
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + MAX_REPORTED_PROBLEMS:
            unknown = itertools.islice((k for k in data if k not in cls.model_fields), 3)
            raise ValueError(
                f"too many keys ({len(data)}; {len(cls.model_fields)} known); unknown keys include "
                + ", ".join(repr(clip(str(k), 40)) for k in unknown)
            )
        return data

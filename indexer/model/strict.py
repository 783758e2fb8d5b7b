"""The base of every model a user writes (the spec and each backend's parameters): strict, closed, and
brief in its errors, since they echo user input. Imports nothing from the engine, so both indexer.engine.spec
and the backends' declarations can build on it."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Errors echo user input: only the first problems, each piece clipped, so no message grows with the input.
MAX_REPORTED_PROBLEMS = 20
MAX_ECHO_CHARS = 200
MAX_VALUE_CHARS = 40
# pydantic's errors on a number's range: their message names the limit; the value given is added to it
NUMBER_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """At most `limit` characters of text that may come from the user, so no error echoes a huge input."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def error_message(error: Mapping[str, Any]) -> str:
    """One validation error's message, clipped; a number out of range also says the value given, so with its
    location the line names the parameter, the value and the limit (`..., got 1000000000`)."""
    message = clip(str(error.get("msg", "")))
    if error.get("type") in NUMBER_RANGE_ERRORS and "input" in error:
        return f"{message}, got {clip(repr(error['input']), MAX_VALUE_CHARS)}"
    return message


class Strict(BaseModel):
    # strict: `k: true` or `k: 10.0` is a mistake to report, not a value to coerce to 1 or 10;
    # allow_inf_nan=False: YAML's .inf and .nan (and JSON's Infinity and NaN, which Python reads) are refused
    # in every float field, since no bound or budget means anything at them
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

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

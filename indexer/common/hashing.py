"""Content keys: the one way a JSON-able value becomes a short, stable name for cached work.

The value is written as canonical JSON (keys sorted, so dict order never matters) and hashed with
SHA-256; the key is the first `length` hex digits. Same content, same key, in every process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

COMPACT = (",", ":")  # the spec's canonical JSON and the cell keys
# json.dumps' own spacing: the runner's dataset, size and reduction cache keys were first written with
# it, and a key that changed would orphan every cached array under the old one.
SPACED = (", ", ": ")


def canonical_json(
    obj: Any, *, separators: tuple[str, str] = COMPACT, default: Callable[[Any], Any] | None = None
) -> str:
    """`obj` as JSON with sorted keys; `default` converts what JSON cannot hold (None: refuse it)."""
    return json.dumps(obj, sort_keys=True, separators=separators, default=default)


def content_key(
    obj: Any,
    length: int = 16,
    *,
    separators: tuple[str, str] = COMPACT,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """The first `length` hex digits of the SHA-256 of `obj`'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj, separators=separators, default=default).encode()).hexdigest()[:length]

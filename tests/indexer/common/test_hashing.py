"""Content keys: canonical JSON (sorted keys) hashed with SHA-256, fixed for good once written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from indexer.common.hashing import SPACED, canonical_json, content_key


def test_key_order_does_not_matter() -> None:
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})


def test_the_key_is_a_prefix_of_the_sha256_of_compact_sorted_json() -> None:
    obj = {"z": None, "a": {"y": 1.5, "x": "ü"}}
    blob = '{"a":{"x":"\\u00fc","y":1.5},"z":null}'
    assert canonical_json(obj) == blob
    digest = hashlib.sha256(blob.encode()).hexdigest()
    assert content_key(obj) == digest[:16]
    assert content_key(obj, length=64) == digest


def test_known_keys_never_change() -> None:
    # recorded values: a change here renames every cached result and job
    assert content_key({"name": "x", "k": 10}) == "06257e7b754f1028"
    assert content_key([1, 2, 3, 4], separators=SPACED) == "d1be96124d992521"


def test_spaced_json_with_default_str_matches_json_dumps_defaults() -> None:
    obj = {"b": Path("/data/x.npy"), "a": [1, 2]}
    expected = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert content_key(obj, separators=SPACED, default=str) == expected


def test_values_json_cannot_hold_are_refused_without_a_default() -> None:
    with pytest.raises(TypeError):
        content_key({"path": Path("/x")})

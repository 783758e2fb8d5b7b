"""indexer.datasets.embed: offline model resolution, cache keys, and embeddings against a direct encode."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets.embed import cache_path, embed_texts, model_identity, model_path
from indexer.model.datasets import DEFAULT_MODEL


def test_unknown_model_name_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="neither"):
        embed_texts(["x"], "sentence-transformers/some-hub-model", tmp_path)


def test_directory_without_model_files_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="modules.json"):
        model_path(str(tmp_path), tmp_path)


def test_empty_texts_and_bad_kind(tmp_path):
    with pytest.raises(DataError, match="no texts"):
        embed_texts([], DEFAULT_MODEL, tmp_path)
    with pytest.raises(ValueError, match="kind"):
        embed_texts(["x"], DEFAULT_MODEL, tmp_path, kind="passage")  # type: ignore[arg-type]


def test_cache_key_separates_texts_kind_and_model(tmp_path):
    key = cache_path(["ab", "c"], DEFAULT_MODEL, tmp_path)
    assert key == cache_path(["ab", "c"], DEFAULT_MODEL, tmp_path)
    assert key.parent == tmp_path / "embeddings"
    others = {
        cache_path(["a", "bc"], DEFAULT_MODEL, tmp_path),  # same characters, other split
        cache_path(["ab", "c"], DEFAULT_MODEL, tmp_path, kind="query"),
        cache_path(["ab", "c"], str(model_path(DEFAULT_MODEL, tmp_path)), tmp_path),  # same weights, as a path
    }
    assert key not in others and len(others) == 3


def test_local_model_identity_changes_with_its_files(tmp_path):
    (tmp_path / "modules.json").write_text("[]")
    before = model_identity(str(tmp_path), tmp_path)
    (tmp_path / "extra.bin").write_bytes(b"1")
    assert model_identity(str(tmp_path), tmp_path) != before


@pytest.mark.slow
def test_embeddings_equal_a_direct_encode(tmp_path, reference_model):
    texts = ["A cat sits on the mat.", "Stock markets fell sharply on Monday."]
    got = embed_texts(texts, DEFAULT_MODEL, tmp_path)
    want = reference_model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    assert got.dtype == np.float32 and got.shape == (2, 384)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # unit norm comes from MiniLM's own Normalize module; embed_texts adds no normalization of its own


@pytest.mark.slow
def test_paraphrases_are_closer_than_unrelated_sentences(tmp_path):
    texts = [
        "The weather today is sunny and warm.",
        "It is a warm, sunny day.",
        "The central bank raised interest rates.",
    ]
    v = embed_texts(texts, DEFAULT_MODEL, tmp_path)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


@pytest.mark.slow
def test_second_call_reads_the_cache(tmp_path):
    texts = ["first sentence", "second sentence"]
    first = embed_texts(texts, DEFAULT_MODEL, tmp_path)
    path = cache_path(texts, DEFAULT_MODEL, tmp_path)
    assert path.is_file()
    np.testing.assert_array_equal(np.load(path), first)
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temp file
    sentinel = np.full_like(first, 7.0)
    np.save(path, sentinel)  # a cache hit returns the file's content, not a fresh encode
    np.testing.assert_array_equal(embed_texts(texts, DEFAULT_MODEL, tmp_path), sentinel)


@pytest.mark.slow
def test_damaged_cache_file_is_recomputed(tmp_path):
    texts = ["a damaged cache"]
    good = embed_texts(texts, DEFAULT_MODEL, tmp_path)
    path = cache_path(texts, DEFAULT_MODEL, tmp_path)
    path.write_bytes(b"not a numpy file")
    np.testing.assert_allclose(embed_texts(texts, DEFAULT_MODEL, tmp_path), good, rtol=1e-5)
    np.testing.assert_allclose(np.load(path), good, rtol=1e-5)

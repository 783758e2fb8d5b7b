"""Server start: the embedding model of every text index is loaded before the first request."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from indexer.engine.spec import parse_spec
from indexer.service.store import Store
from indexer.settings import Settings


def _record(index_id: str, model: str | None) -> dict[str, object]:
    return {"id": index_id, "dataset": "bbc", "ordering": "random", "backend": "hnswlib", "params": {},
            "reduction_label": "none", "dims": 384, "metric": "cosine", "model": model, "n": 10,
            "size_bytes": 1, "path": f"cache/cells/{index_id}"}


def test_text_models_are_loaded_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.datasets.embed

    settings = Settings(data_dir=tmp_path)
    store = Store(settings.resolved_database_url)
    store.migrate()
    job, _ = store.submit(parse_spec({"name": "t", "dataset": {"kind": "text", "corpus": "bbc"},
                                      "backends": [{"name": "hnswlib"}]}))
    store.add_indexes(job.id, [_record("a1", "all-MiniLM-L6-v2"), _record("a2", "all-MiniLM-L6-v2"),
                               _record("a3", None)])
    loaded: list[str] = []
    monkeypatch.setattr(indexer.datasets.embed, "load_model", lambda name, cache_dir: loaded.append(name))
    with TestClient(create_app(settings, store, configure_threads=False)) as client:
        assert loaded == ["all-MiniLM-L6-v2"]  # once per model, before any request
        assert client.get("/health").status_code == 200

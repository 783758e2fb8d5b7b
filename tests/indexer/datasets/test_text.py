"""Text corpora: WordNet and BBC parsed against the raw files, split rules, qrels, embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import load_dataset
from indexer.datasets.embed import embed_texts
from indexer.datasets.text import (
    bbc_dir,
    cache_path,
    parse_bbc,
    parse_data_line,
    parse_wordnet,
    split_bbc,
    split_wordnet,
)
from indexer.model.datasets import DEFAULT_MODEL, TextDataset

WN = Path("/usr/share/wordnet")
DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def raw_line(name: str, offset: str) -> str:
    with (WN / name).open() as f:
        return next(line for line in f if line.startswith(offset + " "))


@pytest.fixture(scope="module")
def wordnet():
    return parse_wordnet()


@pytest.fixture(scope="module")
def bbc():
    return parse_bbc()


# ---------------------------------------------------------------- WordNet parsing


def test_one_document_per_synset_line(wordnet):
    lines = 0
    for name in DATA_FILES:
        with (WN / name).open() as f:
            lines += sum(1 for line in f if not line.startswith("  "))
    assert lines == 117_659
    assert len(wordnet.texts) == len(wordnet.doc_ids) == len(set(wordnet.doc_ids)) == lines


def test_known_synsets_match_their_raw_lines(wordnet):
    line = raw_line("data.noun", "00001740")
    assert line.startswith("00001740 03 n 01 entity 0 ")
    i = wordnet.doc_ids.index("n00001740")
    assert wordnet.texts[i] == line.split(" | ", 1)[1].strip()
    assert wordnet.query_texts[i] == "entity"
    assert wordnet.label_names[wordnet.labels[i]] == "noun.Tops"
    # a verb synset with several lemmas: lemma names keep their order, underscores become spaces
    line = raw_line("data.verb", "00001740")
    i = wordnet.doc_ids.index("v00001740")
    lemmas = line.split()[4 : 4 + 2 * int(line.split()[3], 16) : 2]
    assert wordnet.query_texts[i] == ", ".join(w.replace("_", " ") for w in lemmas)
    assert wordnet.label_names[wordnet.labels[i]] == "verb.body"


def test_adjective_markers_are_stripped():
    line = raw_line("data.adj", "00203495")
    _, lex, lemmas, gloss = parse_data_line(line)
    assert (lex, lemmas, gloss) == (0, ["guardant", "gardant", "full-face"], "looking forward")


def test_45_lexicographer_categories(wordnet):
    assert len(wordnet.label_names) == 45
    assert set(wordnet.labels.tolist()) == set(range(45))
    assert wordnet.label_names[44] == "adj.ppl"


def test_wordnet_split_keeps_query_glosses_and_is_seeded():
    n = 117_659
    spec = TextDataset(kind="text", corpus="wordnet", limit=1000, queries=50, seed=1)
    base, queries = split_wordnet(n, spec)
    assert len(base) == 1000 and len(queries) == 50
    assert set(queries) <= set(base)
    again = split_wordnet(n, spec)
    np.testing.assert_array_equal(base, again[0])
    np.testing.assert_array_equal(queries, again[1])
    other = split_wordnet(n, spec.model_copy(update={"seed": 2}))
    assert not np.array_equal(queries, other[1])
    full_base, _ = split_wordnet(n, TextDataset(kind="text", corpus="wordnet", queries=5))
    assert len(full_base) == n


def test_wordnet_limit_below_queries_is_a_data_error():
    with pytest.raises(DataError, match="limit"):
        split_wordnet(117_659, TextDataset(kind="text", corpus="wordnet", limit=10, queries=20))


# ---------------------------------------------------------------- BBC parsing


def test_bbc_has_every_article_file(bbc):
    root = bbc_dir()
    counts = {d.name: len(list(d.glob("*.txt"))) for d in root.iterdir() if d.is_dir()}
    assert sum(counts.values()) == len(bbc.texts) == 2225
    assert bbc.label_names == sorted(counts)
    for label, name in enumerate(bbc.label_names):
        assert int((bbc.labels == label).sum()) == counts[name]


def test_bbc_title_is_the_first_line(bbc):
    i = bbc.doc_ids.index("sports/199")  # the one Windows-1252 file
    raw = (bbc_dir() / "sports" / "199.txt").read_bytes().decode("cp1252")
    assert bbc.titles[i] == raw.splitlines()[0].strip() == "Chelsea sack Mutu"
    assert bbc.texts[i].startswith("Chelsea sack Mutu\n")
    assert "£15.8m" in bbc.texts[i]


def test_bbc_split_holds_queries_out():
    spec = TextDataset(kind="text", corpus="bbc", limit=300, queries=40, seed=5)
    base, queries = split_bbc(2225, spec)
    assert len(base) == 300 and len(queries) == 40 and not set(base) & set(queries)
    with pytest.raises(DataError, match="no articles"):
        split_bbc(2225, TextDataset(kind="text", corpus="bbc", queries=2225))


# ---------------------------------------------------------------- loading with embeddings


@pytest.mark.slow
def test_wordnet_load_is_a_known_item_task(embed_cache, wordnet):
    spec = TextDataset(kind="text", corpus="wordnet", limit=100, queries=15, seed=0)
    ds = load_dataset(spec, model=DEFAULT_MODEL, cache_dir=embed_cache)
    assert ds.base.shape == (100, 384) and ds.queries.shape == (15, 384)
    assert ds.model == DEFAULT_MODEL and len(ds.label_names) == 45
    for qid, qtext, qlabel in zip(ds.query_ids, ds.query_texts, ds.query_labels, strict=True):
        assert ds.qrels[qid] == {qid: 1}
        j = ds.doc_ids.index(qid)
        assert ds.labels[j] == qlabel
        assert qtext == wordnet.query_texts[wordnet.doc_ids.index(qid)]
    # each base row is the embedding of that synset's raw gloss
    j = 7
    pos, offset = ds.doc_ids[j][0], ds.doc_ids[j][1:]
    gloss = raw_line({"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}[pos], offset)
    gloss = gloss.split(" | ", 1)[1].strip()
    np.testing.assert_allclose(ds.base[j], embed_texts([gloss], DEFAULT_MODEL, embed_cache)[0], atol=1e-4)
    # lemmas find their own gloss far more often than chance (1/100); 7 of these 15 do at top-1
    b = ds.base / np.linalg.norm(ds.base, axis=1, keepdims=True)
    q = ds.queries / np.linalg.norm(ds.queries, axis=1, keepdims=True)
    top1 = np.argmax(q @ b.T, axis=1)
    hits = np.mean([ds.doc_ids[t] == qid for t, qid in zip(top1, ds.query_ids, strict=True)])
    assert hits >= 0.25


@pytest.mark.slow
def test_bbc_load_qrels_are_the_same_category(embed_cache):
    spec = TextDataset(kind="text", corpus="bbc", limit=12, queries=4, seed=0)
    ds = load_dataset(spec, cache_dir=embed_cache)
    assert ds.base.shape == (12, 384) and ds.queries.shape == (4, 384)
    assert not set(ds.query_ids) & set(ds.doc_ids)
    for qid, qtitle in zip(ds.query_ids, ds.query_texts, strict=True):
        category = qid.split("/")[0]
        assert ds.qrels[qid] == {d: 1 for d in ds.doc_ids if d.startswith(category + "/")}
        raw = (bbc_dir() / f"{qid}.txt").read_bytes().decode("utf-8", "replace")
        assert qtitle == raw.splitlines()[0].strip()


@pytest.mark.slow
def test_cached_full_corpus_embeddings_are_sliced(tmp_path, bbc):
    # a sentinel full-corpus cache: a limited load must take its rows instead of embedding
    full = cache_path(bbc.texts, DEFAULT_MODEL, tmp_path, "doc")
    full.parent.mkdir(parents=True)
    sentinel = np.arange(len(bbc.texts), dtype=np.float32)[:, None] * np.ones((1, 384), np.float32)
    np.save(full, sentinel)
    ds = load_dataset(TextDataset(kind="text", corpus="bbc", limit=30, queries=3), cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.base, sentinel[ds.extra["base_rows"]])

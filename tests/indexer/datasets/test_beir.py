"""BEIR loader: layout parsing, qrels filtering, error messages, and embedded texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import load_dataset
from indexer.datasets.beir import load, read_jsonl, read_qrels
from indexer.datasets.embed import embed_texts
from indexer.model.datasets import DEFAULT_MODEL, BeirDataset

DOCS = [
    {"_id": "d1", "title": "Python", "text": "A programming language with dynamic typing."},
    {"_id": "d2", "title": "", "text": "The cat sat on the mat."},
    {"_id": "d3", "title": "Paris", "text": "The capital of France."},
    {"_id": 4, "title": "Rain", "text": "Water falling from clouds."},
]
QUERIES = [
    {"_id": "q1", "text": "which language is dynamically typed"},
    {"_id": "q2", "text": "where is the cat"},
    {"_id": "q3", "text": "capital of France"},
    {"_id": "q4", "text": "an unjudged query"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t2\nq3\td1\t0\n"


def write_beir(root, docs=DOCS, queries=QUERIES, qrels: str | None = QRELS):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    if qrels is not None:
        (root / "qrels").mkdir(exist_ok=True)
        (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def _spec(root, **kw) -> BeirDataset:
    return BeirDataset(kind="beir", path=str(root), **kw)


def test_malformed_json_names_the_line(tmp_path):
    root = write_beir(tmp_path / "b")
    with (root / "corpus.jsonl").open("a") as f:
        f.write("\n{not json\n")
    with pytest.raises(DataError, match=r"corpus.jsonl line 6: malformed JSON"):
        read_jsonl(root / "corpus.jsonl")
    (root / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": "\xff"}\n')
    with pytest.raises(DataError, match=r"queries.jsonl line 2: not valid UTF-8"):
        read_jsonl(root / "queries.jsonl")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "no id"}', "line 2: expected an object with an '_id'"),
        ('["a"]', "line 2: expected an object"),
        ('{"_id": "d1"}', "line 2: duplicate _id 'd1'"),
    ],
)
def test_bad_records(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps(DOCS[0]) + "\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(DataError, match="directory not found"):
        load(_spec(tmp_path / "nowhere"), cache_dir=tmp_path)
    root = write_beir(tmp_path / "b")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="queries.jsonl"):
        load(_spec(root), cache_dir=tmp_path)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "corpus.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no records"):
        read_jsonl(tmp_path / "e" / "corpus.jsonl")


def test_qrels_parse_with_and_without_header(tmp_path):
    (tmp_path / "a.tsv").write_text(QRELS)
    (tmp_path / "b.tsv").write_text(QRELS.split("\n", 1)[1])
    want = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2, "d1": 0}}
    assert read_qrels(tmp_path / "a.tsv") == read_qrels(tmp_path / "b.tsv") == want
    (tmp_path / "c.tsv").write_text("q1\td1\t1\nq2 d2 1\n")
    with pytest.raises(DataError, match="line 2"):
        read_qrels(tmp_path / "c.tsv")


def test_qrels_on_unknown_ids_only_is_a_data_error(tmp_path):
    root = write_beir(tmp_path / "b", qrels="qX\td1\t1\nq1\tdX\t1\n")
    with pytest.raises(DataError, match="nothing left"):
        load(_spec(root), cache_dir=tmp_path)


@pytest.mark.slow
def test_load_keeps_judged_queries_and_embeds_title_plus_text(tmp_path, embed_cache):
    root = write_beir(tmp_path / "b", qrels=QRELS + "q1\tunknown-doc\t1\n")
    ds = load_dataset(_spec(root), model=DEFAULT_MODEL, cache_dir=embed_cache)
    assert ds.doc_ids == ["d1", "d2", "d3", "4"]
    assert ds.query_ids == ["q1", "q2", "q3"]  # q4 has no judgement
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2, "d1": 0}}
    assert ds.texts[0] == "Python A programming language with dynamic typing."
    assert ds.texts[1] == "The cat sat on the mat."
    assert ds.base.shape == (4, 384) and ds.queries.shape == (3, 384)
    want = embed_texts(["Paris The capital of France."], DEFAULT_MODEL, tmp_path / "fresh")
    np.testing.assert_allclose(ds.base[2], want[0], atol=1e-4)
    # the matching document is each query's nearest neighbour in this tiny corpus
    sims = ds.queries @ ds.base.T
    assert [ds.doc_ids[i] for i in sims.argmax(axis=1)] == ["d1", "d2", "d3"]


@pytest.mark.slow
def test_query_limit_is_seeded_and_without_qrels_all_queries_stay(tmp_path, embed_cache):
    root = write_beir(tmp_path / "b", qrels=None)
    full = load(_spec(root), cache_dir=embed_cache)
    assert full.qrels is None and full.query_ids == ["q1", "q2", "q3", "q4"]
    a = load(_spec(root, queries=2, seed=1), cache_dir=embed_cache)
    b = load(_spec(root, queries=2, seed=1), cache_dir=embed_cache)
    assert a.query_ids == b.query_ids and len(a.query_ids) == 2
    picked = [full.query_ids.index(q) for q in a.query_ids]
    np.testing.assert_allclose(a.queries, full.queries[picked], atol=1e-5)

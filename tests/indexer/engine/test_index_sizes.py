"""The index-size sweep's bookkeeping (relevant documents always indexed) and the dense/sparse/hybrid rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.common.errors import UserError
from indexer.engine import runner
from indexer.engine.spec import parse_spec


@pytest.mark.parametrize("size", [5, 40, 120])
def test_index_rows_keep_every_relevant_document(size):
    keep = np.array([3, 17, 42, 99], dtype=np.int64)
    rows = runner.index_rows(150, size, keep, seed=0)
    assert len(rows) == size and len(np.unique(rows)) == size
    assert set(keep) <= set(rows.tolist())
    assert rows.min() >= 0 and rows.max() < 150 and np.all(np.diff(rows) > 0)


def test_index_rows_are_seeded_and_all_means_everything():
    keep = np.array([1], dtype=np.int64)
    a, b, c = (runner.index_rows(1000, 100, keep, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(runner.index_rows(50, "all", keep, seed=0), np.arange(50))
    assert np.array_equal(runner.index_rows(50, 500, keep, seed=0), np.arange(50))


def test_index_smaller_than_the_relevant_set_is_refused():
    with pytest.raises(UserError, match="smaller than the 3 relevant"):
        runner.index_rows(100, 2, np.array([1, 2, 3]), seed=0)


def test_vector_dataset_subsets_measure_recall_against_the_subset(tiny_spec_dict, cache_dir):
    tiny_spec_dict.update(orderings=["random"], index_sizes=[300, "all"],
                          backends=[{"name": "exact"}, {"name": "hnswlib", "ef_search": [50]}])
    res = runner.run(parse_spec(tiny_spec_dict), cache_dir=cache_dir)
    assert sorted({r["index_size"] for r in res.rows}) == [300, 1200]
    small = [r for r in res.rows if r["index_size"] == 300]
    for r in small:
        rows = np.load(cache_dir / "cells" / r["cell"] / "rows.npy")
        found = np.load(r["neighbors"])
        assert set(found.ravel().tolist()) <= set(rows.tolist())  # never returns a document outside the index
    exact = next(r for r in small if r["backend"] == "exact")
    assert exact["recall"] == pytest.approx(1.0)


def _beir(tmp_path):
    topics = {
        "cats": ["Cats purr and chase mice.", "A kitten is a young cat.", "Lions are large wild cats."],
        "ships": ["A ship sails across the ocean.", "The harbour was full of boats.", "Sailors steer the vessel."],
        "bread": ["Bakers knead dough to make bread.", "Yeast makes bread rise.", "A loaf of rye bread."],
        "rain": ["Rain falls from dark clouds.", "An umbrella keeps you dry in a storm.", "Drizzle and showers."],
    }
    docs, qrels, queries = [], [], []
    for t, texts in topics.items():
        for i, text in enumerate(texts):
            docs.append({"_id": f"{t}{i}", "title": "", "text": text})
        qrels.append((f"q-{t}", f"{t}0"))
    filler = [f"Filler document number {i} about nothing in particular, topic {i % 7}." for i in range(30)]
    docs += [{"_id": f"f{i}", "title": "", "text": text} for i, text in enumerate(filler)]
    queries = [{"_id": "q-cats", "text": "why do cats purr"}, {"_id": "q-ships", "text": "ship on the ocean"},
               {"_id": "q-bread", "text": "how bakers make bread"}, {"_id": "q-rain", "text": "rain from clouds"}]
    (tmp_path / "qrels").mkdir(parents=True)
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels))
    return tmp_path


@pytest.mark.slow
def test_dense_sparse_hybrid_rows_on_a_small_beir_corpus(tmp_path, cache_dir):
    path = _beir(tmp_path / "beir")
    spec = parse_spec({
        "name": "dvs", "dataset": {"kind": "beir", "path": str(path)}, "k": 10,
        "backends": [{"name": "exact"}], "representations": ["dense", "sparse", "hybrid"],
        "index_sizes": [10, "all"], "lid": {"k": 3},
    })
    res = runner.run(spec, cache_dir=cache_dir)
    reps = {(r["representation"], r["index_size"]) for r in res.rows}
    assert reps == {(rep, n) for rep in ("dense", "sparse", "hybrid") for n in (10, 42)}
    for r in res.rows:
        assert 0.0 <= r["ndcg@10"] <= 1.0 and 0.0 <= r["mrr@10"] <= 1.0
        found = np.load(r["neighbors"])
        # every query's one relevant document is in every index, so a ten-document index returns it
        if r["index_size"] == 10 and r["representation"] != "sparse":
            assert r["recall@100"] == pytest.approx(1.0)
        assert found.shape == (4, 10)
    sparse_small = next(r for r in res.rows if r["representation"] == "sparse" and r["index_size"] == 10)
    # the queries share words with their relevant documents: BM25 ranks each first (checked by hand)
    assert sparse_small["mrr@10"] == pytest.approx(1.0)
    assert res.extras["crossings"]


@pytest.mark.slow
def test_sparse_without_judgements_is_a_user_error(tmp_path, cache_dir):
    path = _beir(tmp_path / "beir")
    (path / "qrels" / "test.tsv").unlink()
    spec = parse_spec({"name": "nojudge", "dataset": {"kind": "beir", "path": str(path)}, "k": 5,
                       "backends": [{"name": "exact"}], "representations": ["dense", "sparse"], "lid": {"k": 3}})
    with pytest.raises(UserError, match="relevance judgements"):
        runner.run(spec, cache_dir=cache_dir)

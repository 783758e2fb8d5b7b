"""BM25 scores checked against the formula computed by hand; RRF against a hand example and ranx."""

import math

import numpy as np
import pytest

from indexer.common.errors import DataError, UserError
from indexer.science.sparse import BM25Index, reciprocal_rank_fusion

# "the" is an English stopword and must not count in document length
DOCS = [
    "cat cat mat",
    "the dog chased cat",
    "bird song",
    "dog dog dog bark",
    "mat weaving the craft",
]
TOKENS = [[w for w in d.split() if w != "the"] for d in DOCS]


def lucene_bm25(query: list[str], tokens: list[list[str]], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Lucene BM25 (Kamphuis et al. 2020): idf = ln(1 + (N - df + .5)/(df + .5)), tf/(tf + k1(1 - b + b dl/avgdl))."""
    n = len(tokens)
    avgdl = sum(len(t) for t in tokens) / n
    out = np.zeros(n)
    for term in query:
        df = sum(term in t for t in tokens)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, t in enumerate(tokens):
            tf = t.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl))
    return out


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index().build(DOCS)


@pytest.mark.parametrize("query", ["cat dog", "mat", "dog bark", "cat mat craft"])
def test_scores_and_ranking_match_hand_computed_lucene_bm25(index, query) -> None:
    expected = lucene_bm25(query.split(), TOKENS)
    ids, scores = index.search([query], k=5)
    matched = np.flatnonzero(expected > 0)
    # expected order: score descending, ties to the lower id
    order = sorted(matched.tolist(), key=lambda i: (-expected[i], i))
    assert ids[0, : len(order)].tolist() == order
    assert (ids[0, len(order) :] == -1).all()
    np.testing.assert_allclose(scores[0, : len(order)], expected[order], rtol=1e-5)
    # the textbook (k1 + 1) * tf / (...) numerator only rescales every score by k1 + 1: same ranking
    textbook = expected * 2.5
    assert sorted(matched.tolist(), key=lambda i: (-textbook[i], i)) == order


def test_known_value_for_one_term(index) -> None:
    # "bird": N=5, df=1, dl=2, avgdl=15/5 (lengths 3, 3, 2, 4, 3)
    idf = math.log(1 + 4.5 / 1.5)
    tf_part = 1 / (1 + 1.5 * (0.25 + 0.75 * 2 / 3))
    ids, scores = index.search(["bird"], k=1)
    assert ids[0, 0] == 2
    assert scores[0, 0] == pytest.approx(idf * tf_part, rel=1e-5)


def test_k_beyond_corpus_pads_and_no_match_is_all_padding(index) -> None:
    ids, scores = index.search(["cat", "zebra", "the", ""], k=8)
    assert ids.shape == (4, 8) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids[0].tolist() == [0, 1, -1, -1, -1, -1, -1, -1]
    assert (ids[1:] == -1).all() and (scores[1:] == 0).all()
    assert index.search([], k=3)[0].shape == (0, 3)


def test_subset_keeps_dataset_ids_and_its_own_statistics() -> None:
    full = BM25Index().build(DOCS, doc_ids=np.arange(100, 105))
    sub = full.subset(np.array([103, 100, 101]))
    assert sub.num_docs == 3
    ids, scores = sub.search(["dog cat"], k=5)
    sub_tokens = [TOKENS[3], TOKENS[0], TOKENS[1]]
    expected = lucene_bm25(["dog", "cat"], sub_tokens)
    order = sorted(range(3), key=lambda i: (-expected[i], [103, 100, 101][i]))
    assert ids[0, :3].tolist() == [[103, 100, 101][i] for i in order]
    np.testing.assert_allclose(scores[0, :3], expected[order], rtol=1e-5)
    with pytest.raises(DataError, match="not in the index"):
        full.subset(np.array([100, 7]))
    assert 0 < sub.nbytes() < full.nbytes()


def test_ties_break_by_lower_dataset_id() -> None:
    idx = BM25Index().build(["apple pie", "banana", "apple pie", "apple pie"], doc_ids=np.array([9, 5, 3, 7]))
    ids, scores = idx.search(["apple"], k=2)
    assert ids[0].tolist() == [3, 7]
    assert scores[0, 0] == scores[0, 1]


def test_duplicate_doc_ids_rejected() -> None:
    with pytest.raises(DataError):
        BM25Index().build(["a b", "c d"], doc_ids=np.array([1, 1]))


def test_rrf_hand_computed() -> None:
    a = np.array([[10, 20, 30, -1]])
    b = np.array([[30, 40, -1, -1]])
    # 10: 1/61; 20: 1/62; 30: 1/63 + 1/61; 40: 1/62  -> 30, then 10, then 20 and 40 tied (lower id first)
    fused = reciprocal_rank_fusion([a, b], k=5, rrf_k=60)
    assert fused.tolist() == [[30, 10, 20, 40, -1]]
    assert reciprocal_rank_fusion([a, b], k=2).tolist() == [[30, 10]]


def test_rrf_empty_rows_and_repeats() -> None:
    a = np.array([[-1, -1], [5, 5]])
    b = np.array([[-1, -1], [6, -1]])
    fused = reciprocal_rank_fusion([a, b], k=3)
    # a repeated id counts once, at its best rank: 5 and 6 both score 1/61, tie to the lower id
    assert fused.tolist() == [[-1, -1, -1], [5, 6, -1]]


def reference_rrf(rows: list[list[int]], k: int, rrf_k: int = 60) -> list[int]:
    """Plain-dict RRF for one query, written from the definition."""
    fused: dict[int, float] = {}
    for ranking in rows:
        seen: set[int] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc < 0 or doc in seen:
                continue
            seen.add(doc)
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(fused, key=lambda d: (-fused[d], d))[:k]


def test_rrf_agrees_with_a_plain_reference_on_random_rankings() -> None:
    rng = np.random.default_rng(0)
    runs = []
    for depth in (20, 7, 12):
        run = np.stack([rng.integers(-1, 40, size=depth) for _ in range(25)])
        runs.append(run)
    ours = reciprocal_rank_fusion(runs, k=15, rrf_k=10)
    for i in range(25):
        expected = reference_rrf([r[i].tolist() for r in runs], k=15, rrf_k=10)
        assert ours[i].tolist() == expected + [-1] * (15 - len(expected))


def test_random_corpus_top_k_matches_hand_formula() -> None:
    rng = np.random.default_rng(2)
    vocab = [f"w{i:02d}" for i in range(30)]
    # Zipf-ish term choice so some terms are frequent and scores tie rarely but postings differ in length
    p = 1 / np.arange(1, 31)
    p /= p.sum()
    tokens = [list(rng.choice(vocab, size=rng.integers(1, 12), p=p)) for _ in range(300)]
    ids_map = rng.permutation(1000)[:300]
    idx = BM25Index().build([" ".join(t) for t in tokens], doc_ids=ids_map, k1=1.2, b=0.6)
    queries = [list(rng.choice(vocab, size=rng.integers(1, 4))) for _ in range(40)]
    got_ids, got_scores = idx.search([" ".join(q) for q in queries], k=25)
    strict_rows = 0
    for row, query in enumerate(queries):
        expected = lucene_bm25(query, tokens, k1=1.2, b=0.6)
        matched = np.flatnonzero(expected > 0)
        # exact ties (same term counts and length) break to the lower dataset id
        ranked = sorted(matched.tolist(), key=lambda i: (-expected[i], ids_map[i]))
        order = ranked[:25]
        np.testing.assert_allclose(got_scores[row, : len(order)], expected[order], rtol=1e-5)
        assert (got_ids[row, len(order) :] == -1).all()
        # bm25s scores in float32: a near-tie (not an exact one) may legitimately swap
        gaps = -np.diff(expected[ranked[:26]])
        if not np.any((gaps > 0) & (gaps < 1e-5 * expected[ranked[1:26]])):
            strict_rows += 1
            assert got_ids[row, : len(order)].tolist() == ids_map[order].tolist()
        else:
            assert set(got_ids[row, : len(order) - 1].tolist()) <= set(ids_map[ranked[:26]].tolist())
    assert strict_rows >= 35


def test_unsupported_method_and_empty_corpus() -> None:
    with pytest.raises(UserError):
        BM25Index().build(DOCS, method="bm25+")
    with pytest.raises(DataError, match="indexable"):
        BM25Index().build(["the", "of and"])

"""Sparse retrieval (BM25 via bm25s) and reciprocal rank fusion for the dense-vs-sparse study.

Results use the same table as dense search: ids (q, k) int64 in the dataset's own numbering,
padded with -1, and float32 scores; so recall, IR metrics and fusion treat both alike.
"""

from __future__ import annotations

import logging
import time

import bm25s
import numpy as np
import scipy.sparse

from indexer.common.errors import DataError, UserError

log = logging.getLogger(__name__)

_STOPWORDS = "en"
_QUERY_BATCH = 256
# methods whose score is 0 for a document matching no query term (bm25l and bm25+ add a constant to all)
METHODS = ("lucene", "robertson", "atire")


def tokenize(texts: list[str]) -> list[list[str]]:
    """bm25s's scikit-learn-style tokenizer, English stopwords, no stemmer.

    No stemmer on purpose: PyStemmer is optional, and results must not depend on whether it is installed.
    """
    # allow_empty=True makes a text with no tokens an empty list (not [""]), so its length is 0
    tokens: list[list[str]] = bm25s.tokenize(
        list(texts),
        stopwords=_STOPWORDS,
        stemmer=None,
        return_ids=False,
        show_progress=False,
        allow_empty=True,
    )
    return tokens


class BM25Index:
    """A BM25 index over a set of documents; ids returned are the dataset's own document ids.

    Tokens are kept so `subset` can rebuild over any subset of documents without re-tokenizing:
    a subset gets its own collection statistics (N, df, avgdl), as a real index of that size would.
    """

    def __init__(self) -> None:
        self._retriever: bm25s.BM25 | None = None
        self._term_matrix: scipy.sparse.csr_matrix | None = None
        self._tokens: list[list[str]] = []
        self._doc_ids = np.zeros(0, dtype=np.int64)
        self.params: dict[str, float | str] = {}
        self.build_seconds = 0.0

    @property
    def num_docs(self) -> int:
        return int(self._doc_ids.size)

    @property
    def doc_ids(self) -> np.ndarray:
        """Row i of the index is document doc_ids[i] of the dataset."""
        return self._doc_ids

    def build(
        self,
        texts: list[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        doc_ids: np.ndarray | None = None,
    ) -> BM25Index:
        """Tokenize and index `texts`; `doc_ids` (default 0..n-1) are the ids search returns."""
        ids = (
            np.arange(len(texts), dtype=np.int64) if doc_ids is None else np.asarray(doc_ids, dtype=np.int64)
        )
        if ids.shape != (len(texts),):
            raise DataError(f"doc_ids has shape {ids.shape}, expected ({len(texts)},)")
        return self._index(tokenize(texts), ids, k1=k1, b=b, method=method)

    def subset(self, doc_ids: np.ndarray) -> BM25Index:
        """A new index over the given dataset document ids (as passed to `build`), for the index-size sweep."""
        if self._retriever is None:
            raise UserError("BM25 index is empty: call build() first")
        wanted = np.asarray(doc_ids, dtype=np.int64).ravel()
        order = np.argsort(self._doc_ids, kind="stable")
        sorted_ids = self._doc_ids[order]
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), sorted_ids.size - 1)
        missing = wanted[sorted_ids[pos] != wanted]
        if missing.size:
            raise DataError(
                f"subset asks for {missing.size} document ids not in the index, e.g. {missing[:5].tolist()}"
            )
        rows = order[pos]
        params = self.params
        return BM25Index()._index(
            [self._tokens[r] for r in rows.tolist()],
            wanted,
            k1=float(params["k1"]),
            b=float(params["b"]),
            method=str(params["method"]),
        )

    def _index(
        self, tokens: list[list[str]], ids: np.ndarray, *, k1: float, b: float, method: str
    ) -> BM25Index:
        if not tokens:
            raise DataError("cannot build a BM25 index over zero documents")
        if not any(tokens):
            raise DataError("no document has an indexable term (all empty or stopwords)")
        if len(np.unique(ids)) != ids.size:
            raise DataError("doc_ids must be unique")
        if method not in METHODS:
            raise UserError(f"bm25 method {method!r} is not supported; use one of {METHODS}")
        start = time.perf_counter()
        retriever = bm25s.BM25(k1=k1, b=b, method=method)
        retriever.index(tokens, show_progress=False)
        s = retriever.scores
        n_terms = len(s["indptr"]) - 1
        # bm25s stores a CSC (doc x term) matrix; its transpose is the CSR (term x doc) matrix, no copy
        self._term_matrix = scipy.sparse.csc_matrix(
            (s["data"], s["indices"], s["indptr"]), shape=(s["num_docs"], n_terms)
        ).T.tocsr()
        self._retriever = retriever
        self._tokens = tokens
        self._doc_ids = ids
        self.params = {"k1": k1, "b": b, "method": method}
        self.build_seconds = time.perf_counter() - start
        log.debug(
            "bm25 index: %d docs, %d terms, %.2fs", ids.size, len(retriever.vocab_dict), self.build_seconds
        )
        return self

    def search(self, query_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by BM25 score; ties go to the lower document id, and non-matching documents are -1.

        Scores come from bm25s's precomputed (doc x term) matrix, summed per query term as bm25s does,
        but batched as one sparse product: faster than bm25s's per-query loop, and only documents that
        match a query term are candidates (bm25s's `retrieve` fails when k exceeds the corpus and pads
        with zero-score documents in arbitrary order).
        """
        if self._retriever is None or self._term_matrix is None:
            raise UserError("BM25 index is empty: call build() first")
        if k < 1:
            raise UserError(f"k must be >= 1, got {k}")
        q = len(query_texts)
        ids = np.full((q, k), -1, dtype=np.int64)
        scores = np.zeros((q, k), dtype=np.float32)
        if q == 0:
            return ids, scores
        vocab = self._retriever.vocab_dict
        rows, cols = [], []
        for row, terms in enumerate(tokenize(query_texts)):
            # repeated query terms count repeatedly, as in bm25s and a Lucene boolean query
            term_ids = [vocab[t] for t in terms if t in vocab]
            rows.extend([row] * len(term_ids))
            cols.extend(term_ids)
        counts = scipy.sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(q, self._term_matrix.shape[0])
        )
        for start in range(0, q, _QUERY_BATCH):
            # (batch x terms) @ (terms x docs): stored entries are exactly the matching documents
            hits = (counts[start : start + _QUERY_BATCH] @ self._term_matrix).tocsr()
            hits.sum_duplicates()
            for r in range(hits.shape[0]):
                lo, hi = hits.indptr[r], hits.indptr[r + 1]
                cand, cand_scores = hits.indices[lo:hi], hits.data[lo:hi].astype(np.float32)
                keep = cand_scores > 0
                cand, cand_scores = cand[keep], cand_scores[keep]
                if cand.size > k:
                    kth = np.partition(cand_scores, cand.size - k)[cand.size - k]
                    # every document tied with the k-th score stays, so the tie-break below is by id
                    tied_or_better = cand_scores >= kth
                    cand, cand_scores = cand[tied_or_better], cand_scores[tied_or_better]
                cand_ids = self._doc_ids[cand]
                top = np.lexsort((cand_ids, -cand_scores))[:k]
                ids[start + r, : top.size] = cand_ids[top]
                scores[start + r, : top.size] = cand_scores[top]
        return ids, scores

    def nbytes(self) -> int:
        """Rough size of the index: the CSC score matrix (data, indices, indptr), not the vocabulary."""
        if self._retriever is None:
            return 0
        s = self._retriever.scores
        return int(s["data"].nbytes + s["indices"].nbytes + s["indptr"].nbytes)


def reciprocal_rank_fusion(rankings: list[np.ndarray], k: int, rrf_k: int = 60) -> np.ndarray:
    """Fuse ranked id lists by RRF (Cormack et al. 2009): score(d) = sum 1 / (rrf_k + rank), rank from 1.

    Each ranking is (q, depth) ids padded with -1 (depths may differ); a document repeated within one
    row counts once, at its best rank. Ties go to the lower id. Returns (q, k) ids padded with -1.
    """
    if not rankings:
        raise UserError("reciprocal_rank_fusion needs at least one ranking")
    if k < 1:
        raise UserError(f"k must be >= 1, got {k}")
    arrays = [np.asarray(r, dtype=np.int64) for r in rankings]
    q = arrays[0].shape[0]
    if any(a.ndim != 2 or a.shape[0] != q for a in arrays):
        raise DataError(f"rankings must all be 2-D with {q} rows, got {[a.shape for a in arrays]}")
    rows_l, ids_l, contrib_l = [], [], []
    for a in arrays:
        rows = np.repeat(np.arange(q, dtype=np.int64), a.shape[1])
        ranks = np.tile(np.arange(1, a.shape[1] + 1, dtype=np.float64), q)
        flat = a.ravel()
        valid = flat >= 0
        rows, flat, ranks = rows[valid], flat[valid], ranks[valid]
        # first occurrence in row-major order is the best rank of a repeated document
        _, first = np.unique(np.stack([rows, flat]), axis=1, return_index=True)
        rows_l.append(rows[first])
        ids_l.append(flat[first])
        contrib_l.append(1.0 / (rrf_k + ranks[first]))
    out = np.full((q, k), -1, dtype=np.int64)
    rows = np.concatenate(rows_l)
    if rows.size == 0:
        return out
    ids = np.concatenate(ids_l)
    pairs, inverse = np.unique(np.stack([rows, ids]), axis=1, return_inverse=True)
    fused = np.bincount(inverse.ravel(), weights=np.concatenate(contrib_l))
    p_rows, p_ids = pairs
    order = np.lexsort((p_ids, -fused, p_rows))
    p_rows, p_ids = p_rows[order], p_ids[order]
    starts = np.searchsorted(p_rows, p_rows, side="left")
    pos = np.arange(p_rows.size) - starts
    keep = pos < k
    out[p_rows[keep], pos[keep]] = p_ids[keep]
    return out

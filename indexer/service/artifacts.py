"""Built indexes as the service sees them: opened from the cache, checked, searched thread-safely.

Only directories the engine wrote under the data directory are ever opened, and their files must
match the checksums the engine recorded (hnswlib's loader trusts its file, so nothing else may
reach it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends import BACKENDS, new_index
from indexer.common.errors import UserError
from indexer.common.fileio import sha256_file
from indexer.model.results import IndexRecord
from indexer.science import groundtruth, metrics
from indexer.science.judging import judge_answers


@dataclass(frozen=True, kw_only=True)
class _JudgeSpace:
    base: np.ndarray  # every dataset row, prepared for the metric
    queries: np.ndarray  # prepared likewise
    metric: str  # the space's metric (cosine, ip, l2)


@dataclass(frozen=True, kw_only=True)
class QueryAnswer:
    """One held-out query: the index's answer beside the exact one; scores exact in the original space."""

    query: int
    k: int
    found_ids: np.ndarray  # (<= k,) dataset numbering, -1 where the index returned fewer
    found_scores: np.ndarray  # exact score of each found id (NaN for -1)
    hits: np.ndarray  # whether each found id counts as a true neighbour (tie-tolerant)
    truth_ids: np.ndarray  # (k,) exact top k, best first
    truth_scores: np.ndarray
    recall: float
    higher_is_better: bool  # inner product (cosine, ip) or squared L2 distance


class ArtifactError(RuntimeError):
    """An index directory that is missing, outside the data directory, or fails its checksum."""


def _inside(path: Path, root: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ArtifactError(f"refusing to open {path}: outside the data directory")
    return resolved


@dataclass
class LoadedIndex:
    """One built index with the vectors it holds, so it can also answer exactly."""

    id: str
    meta: IndexRecord  # the cell's meta.json
    index: Any
    base: np.ndarray
    queries: np.ndarray
    titles: list[str] | None
    rows: np.ndarray  # dataset rows this index holds (an index-size subset, or all)
    reducer: Any = None
    original_base: np.ndarray | None = None  # every dataset row, prepared, before reduction (reduced indexes)
    cache_dir: Path | None = None  # the cache it was built in: a derived embedding model lives there too
    _model: Any = field(default=None, repr=False)
    _exact: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def metric(self) -> str:
        return self.meta.metric

    @property
    def dim(self) -> int:
        """The dimension a query vector must have: the original space's, before any reduction."""
        return self.meta.query_dim

    @property
    def n(self) -> int:
        return self.meta.n

    @property
    def backend(self) -> str:
        return self.meta.backend

    @property
    def model(self) -> str | None:
        return self.meta.model

    @property
    def is_text(self) -> bool:
        return self.model is not None

    def _to_space(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise UserError(f"query vectors must have dimension {self.dim}, got shape {q.shape}")
        if not np.isfinite(q).all():
            raise UserError("query vectors hold NaN or inf")
        q = groundtruth.prepare_vectors(q, self.metric)
        if self.reducer is not None:
            q = groundtruth.prepare_vectors(self.reducer.transform(q), self.metric)
        return q

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate search; ids in the dataset's numbering. Safe to call from many threads."""
        found: tuple[np.ndarray, np.ndarray] = self.index.search(self._to_space(queries), k, ef)
        return found

    def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the very vectors this index holds."""
        found: tuple[np.ndarray, np.ndarray] = self._exact_index().search(self._to_space(queries), k, None)
        return found

    def recall(self, queries: np.ndarray, k: int, efs: Sequence[int | None]) -> np.ndarray:
        """Per-query recall@k of the approximate search at each ef, shape (len(efs), q), as the runner
        measures a cell's rows: exact truth (ids and scores) over the rows this index holds, in the
        original space, and tie-tolerant matching, so a returned id as near as the k-th true neighbour
        counts (indexer.science.judging: every returned id re-scored exactly in the original space)."""
        in_space = self._to_space(queries)  # validates the queries
        judge = self._judge_space(queries)
        truth, truth_scores = self._truth(judge, k)
        out = np.empty((len(efs), len(in_space)), dtype=np.float64)
        for i, ef in enumerate(efs):
            found, _ = self.index.search(in_space, k, ef)  # the backend's scores are never trusted
            out[i] = judge_answers(found, base=judge.base, queries=judge.queries, truth_ids=truth,
                                   truth_scores=truth_scores, k=k, metric=judge.metric).recall
        return out

    def answer_query(self, number: int, k: int, ef: int | None) -> QueryAnswer:
        """Held-out query `number`: the index's top k at `ef` beside the exact top k over the rows it holds,
        every score exact in the original space, and which returned ids count as true neighbours (as `recall`
        counts them: tied with the k-th true neighbour counts)."""
        query = np.ascontiguousarray(self.queries[number : number + 1], dtype=np.float32)
        judge = self._judge_space(query)
        truth, truth_scores = self._truth(judge, k)
        found, _ = self.index.search(self._to_space(query), k, ef)
        found = np.asarray(found, dtype=np.int64)[:, :k]
        found_scores = groundtruth.pair_scores(judge.base, judge.queries, found, judge.metric)
        hits, denom = metrics.hits_at_k(found, truth, k, found_scores, truth_scores,
                                        higher_is_better=groundtruth.higher_is_better(judge.metric))
        recall = float(min(int(hits[0].sum()), int(denom[0])) / max(int(denom[0]), 1))
        return QueryAnswer(query=number, k=k, found_ids=found[0], found_scores=found_scores[0],
                           hits=hits[0], truth_ids=truth[0], truth_scores=np.asarray(truth_scores[0], np.float64),
                           recall=recall, higher_is_better=groundtruth.higher_is_better(judge.metric))

    def _judge_space(self, queries: np.ndarray) -> _JudgeSpace:
        """The vectors exact answers are judged in: the original space, also for a reduced index."""
        if self.reducer is None:
            return _JudgeSpace(base=self.base, queries=self._to_space(queries), metric=self._space())
        assert self.original_base is not None, "a reduced index is opened with its original vectors"
        return _JudgeSpace(base=self.original_base, metric=self._space(),
                           queries=groundtruth.prepare_vectors(np.asarray(queries, dtype=np.float32), self.metric))

    def _truth(self, judge: _JudgeSpace, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top k (dataset numbering, scores) over the rows this index holds."""
        held = judge.base if len(self.rows) == len(judge.base) else np.ascontiguousarray(judge.base[self.rows])
        positions, truth_scores = groundtruth.exact_knn(held, judge.queries, k, judge.metric)
        return self.rows[positions], truth_scores

    def _space(self) -> str:
        assert self.meta.space is not None, "open_index opens only cells the runner recorded in full"
        return self.meta.space

    def _exact_index(self) -> Any:
        with self._lock:
            if self._exact is None:
                exact = new_index("exact", self.base.shape[1], self._space(), params={}, seed=0)
                exact.build(self.base, self.rows)
                self._exact = exact
            return self._exact

    def held_out_queries(self) -> np.ndarray:
        """The dataset's held-out queries in the original space (what `search` expects)."""
        return self.queries

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.is_text:
            raise UserError(f"index {self.id} is not over a text corpus: send vectors, not texts")
        from indexer.datasets.embed import load_model

        with self._lock:
            if self._model is None:
                assert self.cache_dir is not None, "a text index is loaded from its cache"
                self._model = load_model(str(self.model), self.cache_dir)
        return np.asarray(self._model.encode(texts, batch_size=64, show_progress_bar=False), dtype=np.float32)

    def title(self, row: int) -> str | None:
        if self.titles is None or not 0 <= row < len(self.titles):
            return None
        return self.titles[row]


def open_index(path: Path, *, data_dir: Path) -> LoadedIndex:
    """Open a cell directory the engine wrote; refuse anything outside data_dir or not matching its checksums."""
    cell_dir = _inside(Path(path), data_dir)
    meta_path = cell_dir / "meta.json"
    if not (cell_dir / "answers.json").exists() or not meta_path.exists():
        raise ArtifactError(f"{cell_dir} is not a finished index")
    meta = IndexRecord.model_validate_json(meta_path.read_text())
    if meta.sha256 is None or meta.vectors is None or meta.space is None or meta.seed is None or meta.reduction is None:
        raise ArtifactError(f"{cell_dir} does not record its checksums, vectors, space, seed and reduction")
    declared = BACKENDS.get(meta.backend)
    if declared is not None and not declared.capabilities.servable:
        raise ArtifactError(f"backend {meta.backend} keeps its index only while the run measures it; "
                            "its rows and neighbours are in the experiment's report")
    index_file = cell_dir / "index.bin"
    for name, digest in meta.sha256.items():
        if sha256_file(cell_dir / name) != digest:
            raise ArtifactError(f"{cell_dir / name} does not match its recorded checksum")
    vdir = _inside(cell_dir.parent.parent / "vectors" / meta.vectors, data_dir)
    vmeta = json.loads((vdir / "meta.json").read_text())
    arrays = {}
    for name, digest in vmeta["files"].items():
        file = vdir / f"{name}.npy"
        if sha256_file(file) != digest:
            raise ArtifactError(f"{file} does not match its recorded checksum")
        arrays[name] = np.load(file, allow_pickle=False)
    index = new_index(meta.backend, arrays["base"].shape[1], meta.space, params=meta.params, seed=meta.seed)
    index.load(index_file, meta.n)
    reducer = None
    reduction = meta.reduction
    if reduction.name != "none":
        from indexer.science.reduce import fit_reduction

        # reductions are deterministic given (spec, base, seed): refit rather than unpickle state
        reducer = fit_reduction(reduction, arrays["original_base"], vmeta["reduction_seed"])
    return LoadedIndex(
        id=meta.id, meta=meta, index=index, base=arrays["base"],
        queries=arrays.get("original_queries", arrays["queries"]), titles=vmeta.get("titles"),
        rows=np.load(cell_dir / "rows.npy", allow_pickle=False), reducer=reducer,
        original_base=arrays.get("original_base"), cache_dir=cell_dir.parent.parent,
    )

"""What a run's rows say beyond themselves: model rankings under approximate search, where dense and
sparse quality curves cross as the index grows, and distributions of the space measures.

Pure functions over typed rows (or plain JSON rows, as a published report.json holds them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel

from indexer.backends import build_param_names
from indexer.model.results import (
    BuildParam,
    Crossing,
    Distribution,
    Histogram,
    ModelRank,
    ModelRanking,
    ResultModel,
    SpaceSummary,
)
from indexer.science import lid

Rows = Iterable[ResultModel | Mapping[str, Any]]


class Measured(BaseModel):
    """What the analyses read of a row: its search setting and its score under one measure."""

    representation: str
    model: str | None = None
    index_size: int
    reduction: str
    dims: int | None = None
    ordering: str | None  # None: BM25, which has no insertion order
    backend: str
    build_params: dict[str, BuildParam] = {}  # the row's backend's own
    ef: int | None = None
    seed: int | None = None
    score: float | None = None

    @classmethod
    def of(cls, row: ResultModel | Mapping[str, Any], measure: str) -> Measured:
        """The setting and score of a typed row, or of a plain JSON row (a report.json's)."""
        data = row.to_json() if isinstance(row, ResultModel) else dict(row)
        fields = {k: data[k] for k in cls.model_fields if k in data}
        params = {p: data[p] for p in build_param_names() if p in data}
        return cls.model_validate({**fields, "build_params": params, "score": data.get(measure)})


def _dense(measured: Iterable[Measured]) -> list[Measured]:
    """The dense rows that took the measure."""
    return [m for m in measured if m.representation == "dense" and m.score is not None]


def model_ranking(rows: Rows, measure: str = "ndcg@10") -> list[ModelRanking]:
    """Rank models by `measure` under exact search and under each HNSW setting; list every rank change.

    Elliott & Clark found that swapping exact kNN for HNSW moved models up to three places.
    """
    params = build_param_names()  # a setting is also what its index was built with
    groups: dict[tuple[Any, ...], dict[str | None, float]] = {}
    first: dict[tuple[Any, ...], Measured] = {}  # the setting's first row, which names it
    for r in _dense(Measured.of(row, measure) for row in rows):
        assert r.score is not None
        setting = (r.index_size, r.reduction, r.ordering, r.backend, *(r.build_params.get(p) for p in params),
                   r.ef, r.seed)
        groups.setdefault(setting, {})[r.model] = r.score
        first.setdefault(setting, r)
    out = []
    for setting, scores in groups.items():
        size, reduction, *_ = setting
        exact = next((v for s, v in groups.items() if s[0] == size and s[1] == reduction and s[3] == "exact"), None)
        if exact is None:
            continue
        exact_rank = {m: i + 1 for i, m in enumerate(sorted(exact, key=lambda m: -exact[m]))}
        rank = {m: i + 1 for i, m in enumerate(sorted(scores, key=lambda m: -scores[m]))}
        named = first[setting]
        assert named.ordering is not None  # a dense row's
        out.append(ModelRanking(
            index_size=named.index_size, reduction=named.reduction, ordering=named.ordering, backend=named.backend,
            build_params=named.build_params, ef=named.ef, seed=named.seed,
            ranking=[ModelRank(measure=measure, model=m, score=scores[m], rank=rank[m], exact_rank=exact_rank.get(m),
                               change=exact_rank.get(m, rank[m]) - rank[m])
                     for m in sorted(rank, key=lambda m: rank[m])],
            max_change=max(abs(exact_rank.get(m, rank[m]) - rank[m]) for m in rank),
        ))
    return out


def size_crossings(rows: Rows, measure: str = "ndcg@10") -> list[Crossing]:
    """Where, as the index grows, a dense setting's quality curve crosses BM25's (Reimers & Gurevych 2021)."""
    measured = [Measured.of(r, measure) for r in rows]
    sparse = {r.index_size: r.score for r in measured if r.representation == "sparse"}
    curves: dict[tuple[Any, ...], dict[int, float]] = {}
    first: dict[tuple[Any, ...], Measured] = {}  # the setting's first row, which names it
    for r in _dense(measured):
        assert r.score is not None
        setting = (r.model, r.reduction, r.dims, r.ordering, r.backend, r.ef, r.seed)
        curves.setdefault(setting, {})[r.index_size] = r.score
        first.setdefault(setting, r)
    out = []
    for setting, curve in curves.items():
        named = first[setting]
        sizes = sorted(set(curve) & set(sparse))
        diffs = [curve[n] - sparse[n] for n in sizes]  # type: ignore[operator]
        crossing = next(
            ((sizes[i], sizes[i + 1]) for i in range(len(diffs) - 1) if np.sign(diffs[i]) != np.sign(diffs[i + 1])),
            None,
        )
        assert named.ordering is not None  # a dense row's
        out.append(Crossing(
            model=named.model, reduction=named.reduction, dims=named.dims, ordering=named.ordering,
            backend=named.backend, ef=named.ef, seed=named.seed, dense_minus_sparse=dict(zip(sizes, diffs, strict=True)),
            crosses_between=list(crossing) if crossing else None,
        ))
    return out


def space_measures(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str) -> dict[str, np.ndarray]:
    """The costly space measures (cached by the runner): IsoScore of the indexed vectors and each
    query's relative contrast at k."""
    from indexer.science import space

    return {"isoscore": np.array(space.isoscore(vectors)),
            "relative_contrast": space.relative_contrast(vectors, queries, k, metric)}


def space_summary(lid_base: np.ndarray, lid_queries: np.ndarray, measures: Mapping[str, np.ndarray], *, dims: int,
                  n: int, reduction: dict[str, Any]) -> SpaceSummary:
    """Why a setting loses recall: LID (pointwise and global), IsoScore, relative contrast."""
    return SpaceSummary(
        lid_base=distribution(lid_base),
        lid_queries=distribution(lid_queries),
        lid_global=lid.global_lid(lid_base),
        isoscore=float(measures["isoscore"]),
        relative_contrast=distribution(measures["relative_contrast"]),
        dims=dims,
        n=n,
        reduction=reduction,
    )


def distribution(values: np.ndarray) -> Distribution:
    """Median, mean, 10th and 90th percentiles and a 20-bin histogram of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Distribution(n=0)
    counts, edges = np.histogram(v, bins=20)
    return Distribution(
        n=int(len(v)),
        median=float(np.median(v)),
        mean=float(np.mean(v)),
        p10=float(np.percentile(v, 10)),
        p90=float(np.percentile(v, 90)),
        histogram=Histogram(edges=edges.tolist(), counts=counts.tolist()),
    )

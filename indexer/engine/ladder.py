"""The ef ladder probe: each query searched at ef k, 2k, 4k, ... up to a cap (indexer.science.ef_ladder) until
its recall against exact kNN is 1.0, the ids of every search saved, so each query's smallest such ef is measured
again from them (indexer.engine.measure.ef_to_full) without the index."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from indexer.backends import BACKENDS, VectorIndex
from indexer.engine.measure import judge
from indexer.engine.space import Space
from indexer.engine.spec import Cell, ExperimentSpec
from indexer.model.answers import EfLadderAnswer
from indexer.science import ef_ladder


def cell_ladder(spec: ExperimentSpec, cell: Cell, n: int) -> list[int]:
    """The ef values a cell of n points is searched at (empty: its backend takes no ef)."""
    if cell.backend.ef_values() == [None]:
        return []
    return ef_ladder.ladder(spec.k, ef_ladder.ladder_cap(spec.k, n, BACKENDS[cell.backend.name].max_ef))


def probe_ef_ladder(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, out: Path,
                    prefix: str) -> EfLadderAnswer | None:
    """Search each query at each rung until its recall is 1.0 (judged by its ids against exact kNN in the original
    space, as every recall), saving the ids in `out` named with `prefix`; None for a backend without ef."""
    efs = cell_ladder(spec, cell, len(s.rows))
    if not efs:
        return None
    ids = np.full((len(efs), len(s.queries), spec.k), -1, dtype=np.int64)
    pending = np.arange(len(s.queries))
    t0 = time.perf_counter()
    for rung, ef in enumerate(efs):
        if not len(pending):
            break
        found = np.asarray(index.search(s.queries[pending], spec.k, ef)[0])[:, : spec.k]
        ids[rung, pending, : found.shape[1]] = found
        full = np.nan_to_num(judge(spec, s, ids[rung, pending], pending).recall, nan=0.0) >= ef_ladder.FULL
        pending = pending[~full]
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}ef-ladder.npy"
    # int32 where the ids fit (always, below 2^31 rows): a rung per ef of every query's k ids adds up
    small = len(s.dataset.base) < np.iinfo(np.int32).max
    np.save(out / name, ids.astype(np.int32) if small else ids)
    return EfLadderAnswer(efs=efs, cap=efs[-1], neighbors=name, seconds=seconds)

"""Filtered search at a runbook's checkpoints: the spec's filters asked of the live index while it churns.

A space's filters (indexer.engine.filtering) are masks over the dataset's rows with exact answers over the whole
index. At a checkpoint only the live points can pass: each mask is narrowed to them, its exact filtered kNN is
recomputed over the narrowed masks (in the original space, cached by the live set), and the live index answers
through its library's own filter (`search_filtered`, in each filter mode of the entry) with the mask carried
over to the ids the index holds (a re-inserted point under a new id passes as its row does). The ids returned
are judged as a filtered cell's are (indexer.engine.filtering.filtered_recall): ids not in the index counted
and dropped first, then ids the filter does not keep counted and dropped, then recall from the ids alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends import BACKENDS, VectorIndex
from indexer.backends.base import FilteredSearch
from indexer.common.hashing import content_key
from indexer.engine.filtering import Mode, distinct_ids, filtered_answers, filtered_recall
from indexer.engine.space import Space, SpaceFilter
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import ChurnFilteredRow
from indexer.science import filters, groundtruth, metrics

LiveFilters = Callable[[np.ndarray], list[SpaceFilter]]  # live dataset rows (bool) -> the filters over them


def live_filters(spec: ExperimentSpec, s: Space, cache_dir: Path) -> LiveFilters:
    """The space's filters narrowed to the live rows (a bool mask over the dataset's rows), with their exact
    filtered kNN over what passes (indexer.science.filters.filtered_knn, blocked), cached by the live set."""

    def narrowed(live_rows: np.ndarray) -> list[SpaceFilter]:
        digest = hashlib.sha256(np.packbits(live_rows).tobytes()).hexdigest()
        out = []
        for sf in s.filters:
            masks = sf.masks & live_rows[None, :]
            key = content_key({"space": s.key, "k": spec.k, "metric": spec.metric, "live": digest,
                               "filter": sf.workload.model_dump(mode="json"), "selectivity": sf.selectivity})

            def truth(masks: np.ndarray = masks, of_query: np.ndarray = sf.of_query) -> dict[str, np.ndarray]:
                on_rows = filters.FilterSet(name="live", kind="column", selectivity=None, masks=masks[:, s.rows],
                                            of_query=of_query)
                ids, scores = filters.filtered_knn(s.orig_base[s.rows], s.orig_queries, on_rows, spec.k, spec.metric)
                return {"ids": np.where(ids >= 0, s.rows[np.maximum(ids, 0)], -1), "scores": scores}

            gt = groundtruth.cached(Path(cache_dir) / "groundtruth", f"live-filtered-{key}", truth)
            out.append(dataclasses.replace(sf, masks=masks, truth_ids=gt["ids"], truth_scores=gt["scores"]))
        return out

    return narrowed


def checkpoint_filtered(spec: ExperimentSpec, s: Space, index: VectorIndex, narrowed: list[SpaceFilter], *,
                        live: np.ndarray, row: np.ndarray, efs: list[int | None], modes: list[Mode],
                        about: dict[str, Any]) -> list[ChurnFilteredRow]:
    """Each narrowed filter at each ef in each mode, on the live index: `live[id]` whether an id is in it and
    `row[id]` the dataset row it stands for; `about` names the cell and checkpoint (backend, build parameters,
    cell, seed, step, batch, operation)."""
    capabilities = BACKENDS[about["backend"]].capabilities
    if not isinstance(index, FilteredSearch):
        raise TypeError(f"backend {index.name} cannot filter")  # the spec refuses it first
    held = np.flatnonzero(live)
    out = []
    for sf in narrowed:
        allowed = np.zeros((len(sf.masks), len(live)), dtype=bool)  # over the ids the index holds
        allowed[:, held] = sf.masks[:, row[held]]
        valid = (sf.truth_ids >= 0).sum(axis=1)
        over_ids = dataclasses.replace(sf, masks=allowed)
        for mode in modes:
            for ef in efs:
                t0 = time.perf_counter()
                found = filtered_answers(spec, s, index, over_ids, ef, mode=mode)
                seconds = time.perf_counter() - t0
                known = (found >= 0) & (found < len(live))
                alive = known & live[np.where(known, found, 0)]
                rows = np.where(alive, row[np.where(alive, found, 0)], -1)
                recall, bad = filtered_recall(spec, s, sf, rows)
                summary = metrics.summarize(recall)
                returned = distinct_ids(rows)
                out.append(ChurnFilteredRow(
                    **about, live=len(held), strategy=str(capabilities.strategy(mode)),
                    filter_mode=mode, filter=sf.workload.name, filter_kind=sf.workload.kind,
                    selectivity=sf.selectivity, kept=sf.kept_points() / max(len(held), 1), ef=ef,
                    recall=summary["mean"], recall_ci95=list(summary["ci95"]),
                    queries_without_match=int((valid == 0).sum()), short_results=int((returned < valid).sum()),
                    violations=int(bad.sum()), deleted_returned=int(((found >= 0) & ~alive).sum()),
                    qps=len(s.queries) / max(seconds, 1e-9)))
    return out

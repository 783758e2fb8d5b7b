"""A runbook's plan over one space: every step turned into the rows it touches, before anything is built.

Pure: the steps (indexer.model.runbook), the number of indexed rows, their labels and LID, and a seed in; the
operations out, each naming the positions (in the space's indexed rows) it inserts, deletes or replaces, and
whether a checkpoint (and a baseline) follows it. Every problem a step can have with the data (a range past
the rows, a row inserted twice, a label the dataset lacks, a checkpoint with fewer than k points) is a
UserError naming the step, raised here, before a single index is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.common.errors import UserError
from indexer.model.runbook import (
    MAX_CHECKPOINTS,
    DeleteFraction,
    DeleteLabel,
    DeleteStep,
    InsertBy,
    InsertStep,
    RebuildStep,
    ReplaceRange,
    ReplaceStep,
    RowRange,
    RunbookStep,
    SearchStep,
    StepNaming,
    describe_step,
    rows_reached,
)
from indexer.science import orderings

ORDERING_OF = {"random": "random", "lid_asc": "lid_asc", "lid_desc": "lid_desc", "label": "category"}


@dataclass(frozen=True, kw_only=True, eq=False)
class PlannedOp:
    """One operation of the plan: `positions` (int64, in the space's indexed rows) it inserts, deletes or
    replaces (empty for a checkpoint step); a replace inserts `incoming` in their place (None: the same
    positions again), under the replaced points' ids where the backend allows; a checkpoint after it when
    `checkpoint`, with a fresh index over the points in the index beside it when `baseline`."""

    step: int
    batch: int | None
    operation: str  # insert, delete, replace, search, rebuild
    positions: np.ndarray
    checkpoint: bool
    baseline: bool
    incoming: np.ndarray | None = None

    def inserted(self) -> np.ndarray:
        """The positions it inserts (none for a delete or a checkpoint)."""
        if self.operation == "replace" and self.incoming is not None:
            return self.incoming
        return self.positions if self.operation in ("insert", "replace") else np.zeros(0, dtype=np.int64)


def plan_runbook(steps: Sequence[RunbookStep], *, n: int, k: int, seed: int, baseline: bool,
                 labels: np.ndarray | None = None, label_names: Sequence[str] | None = None,
                 lid: np.ndarray | None = None, naming: StepNaming = StepNaming()) -> list[PlannedOp]:
    """The runbook over n indexed rows (`labels`, `lid`: per row, where the dataset has them). `seed` draws
    the random insertion order; a fraction's draw is seeded by its own step's seed.

    A range names points by the row they were inserted as (a tag, as big-ann-benchmarks calls it): `holds[t]`
    is the position whose vector the point inserted as row t holds now (-1: none), `tag_of` the inverse. Only
    a replace by ranges makes them differ."""
    live = np.zeros(n, dtype=bool)
    ever = np.zeros(n, dtype=bool)
    holds = np.full(n, -1, dtype=np.int64)
    tag_of = np.full(n, -1, dtype=np.int64)
    plan: list[PlannedOp] = []
    empty = np.zeros(0, dtype=np.int64)
    for i, step in enumerate(steps):
        name = describe_step(i, step, naming)
        args = step.args()
        reach = rows_reached(args)
        if reach is not None and reach > n:
            raise UserError(f"{name}: asks for rows up to {reach}, but the index holds {n:,} rows")
        if isinstance(step, InsertStep) and isinstance(args, RowRange):
            positions = np.arange(args.start, args.end, dtype=np.int64)
            _absent(name, positions, live, holds)
            plan.append(PlannedOp(step=i, batch=None, operation="insert", positions=positions, checkpoint=False,
                                  baseline=False))
            live[positions] = ever[positions] = True
            holds[positions] = tag_of[positions] = positions
        elif isinstance(step, InsertStep) and isinstance(args, InsertBy):
            remaining = np.flatnonzero(~ever).astype(np.int64)
            if not len(remaining):
                raise UserError(f"{name}: every row has been inserted already")
            order = remaining[_order(name, args.by, remaining, seed=seed + i, labels=labels, lid=lid)]
            for b, start in enumerate(range(0, len(order), args.batch)):
                positions = order[start : start + args.batch]
                live[positions] = ever[positions] = True
                holds[positions] = tag_of[positions] = positions
                if args.checkpoints:
                    _enough(name, int(live.sum()), k)
                plan.append(PlannedOp(step=i, batch=b if args.checkpoints else None, operation="insert",
                                      positions=positions, checkpoint=args.checkpoints, baseline=baseline))
        elif isinstance(step, ReplaceStep) and isinstance(args, ReplaceRange):
            tags = np.arange(args.start, args.end, dtype=np.int64)
            positions = _held(name, tags, holds)
            incoming = np.arange(args.with_start, args.with_end, dtype=np.int64)
            live[positions] = False
            _absent(name, incoming, live)  # a vector is in the index once
            tag_of[positions] = -1
            live[incoming] = ever[incoming] = True
            holds[tags], tag_of[incoming] = incoming, tags
            plan.append(PlannedOp(step=i, batch=None, operation="replace", positions=positions, checkpoint=False,
                                  baseline=False, incoming=incoming))
        elif isinstance(step, (DeleteStep, ReplaceStep)):
            if isinstance(args, RowRange):
                positions = np.sort(_held(name, np.arange(args.start, args.end, dtype=np.int64), holds))
            else:
                positions = _chosen(name, args, live, labels, label_names, step_index=i)
            if isinstance(step, DeleteStep):
                live[positions] = False
                holds[tag_of[positions]] = -1
                tag_of[positions] = -1
            plan.append(PlannedOp(step=i, batch=None, operation=step.operation, positions=positions,
                                  checkpoint=False, baseline=False))
        else:
            assert isinstance(step, (SearchStep, RebuildStep))
            _enough(name, int(live.sum()), k)
            plan.append(PlannedOp(step=i, batch=None, operation=step.operation, positions=empty, checkpoint=True,
                                  baseline=baseline or isinstance(step, RebuildStep)))
    checkpoints = sum(op.checkpoint for op in plan)
    if checkpoints > MAX_CHECKPOINTS:
        raise UserError(f"runbook: {checkpoints:,} checkpoints (batches with checkpoints: true count one each); "
                        f"at most {MAX_CHECKPOINTS:,}")
    return plan


def _absent(name: str, positions: np.ndarray, live: np.ndarray, holds: np.ndarray | None = None) -> None:
    """Refuse inserting a row whose vector is in the index, or (given `holds`) as a row a point in the index
    was inserted as."""
    there = live[positions] if holds is None else live[positions] | (holds[positions] >= 0)
    if there.any():
        raise UserError(f"{name}: row {int(positions[there][0])} is in the index already")


def _held(name: str, tags: np.ndarray, holds: np.ndarray) -> np.ndarray:
    """The positions the points inserted as rows `tags` hold; each must be in the index."""
    positions: np.ndarray = holds[tags]
    if (positions < 0).any():
        raise UserError(f"{name}: row {int(tags[positions < 0][0])} is not in the index")
    return positions


def _enough(name: str, live: int, k: int) -> None:
    if live < k:
        raise UserError(f"{name}: a checkpoint over {live} points, fewer than k={k}")


def _order(name: str, by: str, remaining: np.ndarray, *, seed: int, labels: np.ndarray | None,
           lid: np.ndarray | None) -> np.ndarray:
    """A permutation of `remaining` (positions) in the step's order."""
    if by == "label" and labels is None:
        raise UserError(f"{name}: the dataset has no labels to order by")
    if by.startswith("lid") and (lid is None or not np.isfinite(lid[remaining]).all()):
        raise UserError(f"{name}: every point's LID is needed to order by it")
    return orderings.insertion_order(
        ORDERING_OF[by], len(remaining), rng=np.random.default_rng(seed),
        labels=None if labels is None else labels[remaining], lid=None if lid is None else lid[remaining])


def _chosen(name: str, args: object, live: np.ndarray, labels: np.ndarray | None,
            label_names: Sequence[str] | None, step_index: int) -> np.ndarray:
    """The positions a delete or replace by label or fraction takes (each in the index), ascending."""
    if isinstance(args, DeleteLabel):
        names = list(label_names or [])
        if labels is None or args.label not in names:
            known = ", ".join(names[:20]) if names else "none"
            raise UserError(f"{name}: the dataset has no label {args.label!r} (its labels: {known})")
        positions = np.flatnonzero(live & (labels == names.index(args.label))).astype(np.int64)
        if not len(positions):
            raise UserError(f"{name}: no point of label {args.label!r} is in the index")
        return positions
    assert isinstance(args, DeleteFraction)
    members = np.flatnonzero(live).astype(np.int64)
    if not len(members):
        raise UserError(f"{name}: the index is empty")
    count = max(1, round(args.fraction * len(members)))
    picked = np.random.default_rng([args.seed, step_index]).choice(members, size=count, replace=False)
    return np.sort(picked).astype(np.int64)

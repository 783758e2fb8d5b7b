"""A runbook: an index's life as an ordered list of steps (inserts, deletes, replacements, checkpoints), so
recall is measured while the index lives, not once after one build (indexer.engine.churn runs it).

In a spec, `runbook:` is a list; each step is a mapping with exactly one key, the operation:

    runbook:
      - insert: {start: 0, end: 5000}          # rows [start, end) of the indexed rows, in that order
      - insert: {by: lid_asc, batch: 1000, checkpoints: true}
                                               # every row not inserted yet, in that order (random, lid_asc,
                                               # lid_desc, label), `batch` rows at a time; a checkpoint after
                                               # each batch when `checkpoints` is true
      - search: {}                             # a checkpoint: the queries at every ef, measured
      - delete: {start: 0, end: 100}           # those rows (each must be in the index)
      - delete: {fraction: 0.5, seed: 1}       # a seeded random share of the points in the index
      - delete: {label: "comedy"}              # every point of that category in the index
      - replace: {fraction: 0.2, seed: 2}      # a seeded share of the index deleted, then its vectors inserted
                                               # again: under the same ids where the backend allows it, else
                                               # under new ids (the row's `reinserted_ids` says which)
      - replace: {start: 0, end: 100, with_start: 500, with_end: 600}
                                               # the points inserted as rows [start, end) take the vectors of
                                               # rows [with_start, with_end) (big-ann-benchmarks' replace)
      - rebuild: {}                            # a checkpoint that also builds a fresh index over the points in
                                               # the index (the baseline) and measures it beside the live one
    runbook_baseline: true                     # (beside `runbook`) every checkpoint also measures the baseline

Rows are positions in the space's indexed rows (every base row unless `index_sizes` subsamples), so a range
past their count is refused naming the step, before anything is built. Once `insert` puts a row in, a row
deleted may be inserted again by a later range; `insert: {by: ...}` takes only rows never inserted. The
insertion order of a runbook comes from its steps: a spec's `orderings` does not apply to it.

A range names points by the row they were inserted as (big-ann-benchmarks' tags): after a replace by ranges,
`delete: {start, end}` deletes the points inserted as those rows, whose vectors are now the replacing rows'.
`runbook_file:` (indexer.model.runbook_file) reads big-ann-benchmarks' own runbook files into these steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from indexer.model.strict import Strict

MAX_STEPS = 256  # steps in a runbook
# live points whose own search a churn checkpoint samples (indexer.engine.churn): fewer than a built cell's
# diagnostics (10,000), as every checkpoint repeats it and a database backend answers one SQL query per point; a
# share measured on 1,000 points is within about 3 points (95%), enough for a trend across checkpoints
CHURN_SELF_MISS_SAMPLE = 1_000
MAX_CHECKPOINTS = 1_024  # checkpoints once `insert: {by: ..., checkpoints: true}` is expanded into its batches
InsertOrder = Literal["random", "lid_asc", "lid_desc", "label"]
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
StepSeed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class RowRange(Strict):
    """Rows [start, end) of the indexed rows."""

    start: int = Field(ge=0)
    end: int = Field(ge=1)

    @model_validator(mode="after")
    def _ascending(self) -> RowRange:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self

    def describe(self) -> str:
        return f"rows {self.start}..{self.end}"


class ReplaceRange(Strict):
    """The points inserted as rows [start, end) take the vectors of rows [with_start, with_end), in order."""

    start: int = Field(ge=0)
    end: int = Field(ge=1)
    with_start: int = Field(ge=0)
    with_end: int = Field(ge=1)

    @model_validator(mode="after")
    def _same_length(self) -> ReplaceRange:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        if self.with_end - self.with_start != self.end - self.start:
            raise ValueError(f"rows {self.with_start}..{self.with_end} cannot replace the {self.end - self.start:,} "
                             f"points of rows {self.start}..{self.end}: the ranges differ in length")
        return self

    def describe(self) -> str:
        return f"rows {self.start}..{self.end} with rows {self.with_start}..{self.with_end}"


class InsertBy(Strict):
    """Every row not yet inserted, in an order, `batch` at a time."""

    by: InsertOrder
    batch: int = Field(ge=1, le=100_000_000)
    checkpoints: bool = Field(default=False, description="a checkpoint after each batch")

    def describe(self) -> str:
        return f"by {self.by} in batches of {self.batch}"


class DeleteFraction(Strict):
    """A seeded random share of the points in the index."""

    fraction: Fraction
    seed: StepSeed = 0

    def describe(self) -> str:
        return f"fraction {self.fraction:g} (seed {self.seed})"


class DeleteLabel(Strict):
    """Every point of one category (by its name) in the index."""

    label: str = Field(min_length=1, max_length=200)

    def describe(self) -> str:
        return f"label {self.label!r}"


class Nothing(Strict):
    """A step that takes no arguments: `{}`."""

    def describe(self) -> str:
        return ""


def _by_key(*keys: str, default: str) -> Any:
    """A discriminator: the tag of a mapping is the first of `keys` it holds, else `default`."""
    def tag(value: Any) -> str:
        if isinstance(value, dict):
            return next((k for k in keys if k in value), default)
        return next((k for k in keys if hasattr(value, k)), default)
    return Discriminator(tag)


InsertArgs = Annotated[Annotated[RowRange, Tag("range")] | Annotated[InsertBy, Tag("by")],
                       _by_key("by", default="range")]
DeleteArgs = Annotated[Annotated[RowRange, Tag("range")] | Annotated[DeleteFraction, Tag("fraction")]
                       | Annotated[DeleteLabel, Tag("label")], _by_key("fraction", "label", default="range")]


class InsertStep(Strict):
    insert: InsertArgs
    operation: ClassVar[str] = "insert"

    def args(self) -> RowRange | InsertBy:
        return self.insert


class DeleteStep(Strict):
    delete: DeleteArgs
    operation: ClassVar[str] = "delete"

    def args(self) -> RowRange | DeleteFraction | DeleteLabel:
        return self.delete


ReplaceArgs = Annotated[Annotated[DeleteFraction, Tag("fraction")] | Annotated[ReplaceRange, Tag("start")],
                        _by_key("start", default="fraction")]


class ReplaceStep(Strict):
    replace: ReplaceArgs
    operation: ClassVar[str] = "replace"

    def args(self) -> DeleteFraction | ReplaceRange:
        return self.replace


class SearchStep(Strict):
    search: Nothing
    operation: ClassVar[str] = "search"

    def args(self) -> Nothing:
        return self.search


class RebuildStep(Strict):
    rebuild: Nothing
    operation: ClassVar[str] = "rebuild"

    def args(self) -> Nothing:
        return self.rebuild


OPERATIONS = ("insert", "delete", "replace", "search", "rebuild")


def _operation(value: Any) -> str | None:
    """A step's tag: its one key (a mapping with another shape is refused by the union's own error)."""
    if isinstance(value, dict):
        keys = [k for k in value if k in OPERATIONS]
        return keys[0] if len(keys) == 1 and len(value) == 1 else None
    return getattr(value, "operation", None)


RunbookStep = Annotated[
    Annotated[InsertStep, Tag("insert")] | Annotated[DeleteStep, Tag("delete")]
    | Annotated[ReplaceStep, Tag("replace")] | Annotated[SearchStep, Tag("search")]
    | Annotated[RebuildStep, Tag("rebuild")],
    Discriminator(_operation, custom_error_type="runbook_step",
                  custom_error_message="a step is a mapping with exactly one key: insert, delete, replace, search "
                                       "or rebuild"),
]


@dataclass(frozen=True)
class StepNaming:
    """How errors name a step: `runbook step 3` (a spec's list, from 0) or `runbook_file step 4` (a file's own
    numbers, from 1)."""

    prefix: str = "runbook step"
    first: int = 0


def describe_step(index: int, step: InsertStep | DeleteStep | ReplaceStep | SearchStep | RebuildStep,
                  naming: StepNaming = StepNaming()) -> str:
    """`runbook step 3 (delete rows 0..100)`: how errors and rows name a step (`index`: its place in the list)."""
    what = step.args().describe()
    return f"{naming.prefix} {index + naming.first} ({step.operation}{' ' + what if what else ''})"


def rows_reached(args: object) -> int | None:
    """One past the largest row a step's arguments name (None: they name no row)."""
    if isinstance(args, RowRange):
        return args.end
    if isinstance(args, ReplaceRange):
        return max(args.end, args.with_end)
    return None


def has_checkpoint(steps: list[Any]) -> bool:
    """Whether the runbook measures anything: a search, a rebuild, or batches with checkpoints."""
    return any(isinstance(s, (SearchStep, RebuildStep))
               or (isinstance(s, InsertStep) and isinstance(s.insert, InsertBy) and s.insert.checkpoints)
               for s in steps)


def changes_the_set(steps: list[Any]) -> bool:
    """Whether the runbook deletes (a delete or a replace): only backends that delete can run it."""
    return any(isinstance(s, (DeleteStep, ReplaceStep)) for s in steps)


def reads_lid(steps: list[Any]) -> bool:
    """Whether an insert orders by LID (every point's LID is then estimated)."""
    return any(isinstance(s, InsertStep) and isinstance(s.insert, InsertBy) and s.insert.by.startswith("lid")
               for s in steps)


class RunbookCounts(Strict):
    """What a runbook asks of an index of n rows, counted without the data (labels unknown: a label delete
    counts as deleting nothing): for the admission estimate (indexer.engine.work)."""

    inserted: int  # points inserted over the runbook (re-inserts counted)
    checkpoints: int
    baselines: int  # checkpoints that also build a fresh index
    largest: int  # the most points in the index at once
    baseline_points: int  # points the fresh indexes hold, summed


def runbook_counts(steps: list[Any], n: int, *, baseline: bool) -> RunbookCounts:
    """Count the runbook's work over n rows (a range past n counts what lies inside it)."""
    live = inserted = checkpoints = baselines = largest = baseline_points = 0
    never = n
    for step in steps:
        args = step.args()
        if isinstance(step, InsertStep):
            count = (min(args.end, n) - min(args.start, n)) if isinstance(args, RowRange) else never
            live, inserted, never = live + count, inserted + count, max(0, never - count)
            if isinstance(args, InsertBy) and args.checkpoints and count:
                batches = -(-count // args.batch)
                checkpoints += batches
                baselines += batches if baseline else 0
                baseline_points += (live - count // 2) * batches if baseline else 0
        elif isinstance(step, DeleteStep):
            if isinstance(args, RowRange):
                live -= min(args.end, n) - min(args.start, n)
            elif isinstance(args, DeleteFraction):
                live -= round(args.fraction * live)
        elif isinstance(step, ReplaceStep):
            inserted += round(args.fraction * live) if isinstance(args, DeleteFraction) else args.end - args.start
        else:
            checkpoints += 1
            if baseline or isinstance(step, RebuildStep):
                baselines += 1
                baseline_points += max(live, 0)
        live = max(live, 0)
        largest = max(largest, live)
    return RunbookCounts(inserted=inserted, checkpoints=checkpoints, baselines=baselines, largest=largest,
                         baseline_points=baseline_points)


def range_problems(steps: list[Any], n: int, naming: StepNaming = StepNaming()) -> list[str]:
    """The steps whose rows reach past the n rows of the index (each named: `runbook step 2 (delete ...)`)."""
    return [f"{describe_step(i, s, naming)}: asks for rows up to {rows_reached(s.args())}, but the index holds "
            f"{n:,} rows" for i, s in enumerate(steps) if (rows_reached(s.args()) or 0) > n]

"""`runbook_file:` big-ann-benchmarks' streaming runbooks, read unchanged, as a spec's runbook steps.

Their format (github.com/harsha-simhadri/big-ann-benchmarks, `neurips23/runbooks/*.yaml`, read by
`benchmark/streaming/load_runbook.py` and replayed for the ground truth by `benchmark/streaming/compute_gt.py`,
at commit 452e508b) is one YAML mapping per dataset name, each holding `max_pts`, an optional `gt_url` and
steps numbered from 1:

    random-xs:
      max_pts: 10000
      1: {operation: insert, start: 0, end: 7500}      # the points of rows [start, end), each under its row
      2: {operation: search}                           # a checkpoint
      3: {operation: replace, tags_start: 0, tags_end: 2500, ids_start: 7500, ids_end: 10000}
                                                       # the points inserted as rows 0..2500 take the vectors
                                                       # of rows 7500..10000 (compute_gt: tag_to_id[tag] = id)
      4: {operation: delete, start: 2500, end: 5000}   # the points inserted as those rows (by tag)

Each step becomes one of indexer.model.runbook's: `insert` and `delete` a row range, `search` a checkpoint,
`replace` a ReplaceRange. Their ranges are positions in the base, so a range past the dataset's rows is refused
naming the step (`runbook_file step 4 (delete rows ...)`), as a spec's own runbook is. `max_pts` is their
index's capacity: read and checked to be a positive whole number, not used (the indexes here grow as they
fill). Where their loader stops quietly at the first missing step number, a gap here is refused; so is a key
other than the steps, `max_pts` and `gt_url`, a file over MAX_FILE_BYTES, and more than MAX_FILE_STEPS steps
(their longest published runbook, msmarco-100M's expiration-time one, has 2,894).
"""

from __future__ import annotations

import functools

import yaml
from pydantic import Field, ValidationError, model_validator

from indexer.model.runbook import (
    DeleteStep,
    InsertStep,
    Nothing,
    ReplaceRange,
    ReplaceStep,
    RowRange,
    RunbookStep,
    SearchStep,
    StepNaming,
)
from indexer.model.strict import Strict, clip, error_message

MAX_FILE_BYTES = 1 << 20  # 1 MiB; big-ann-benchmarks' largest runbook is 157 KB
MAX_FILE_STEPS = 4_096
FILE_NAMING = StepNaming(prefix="runbook_file step", first=1)  # their own step numbers
OPERATION_KEYS = {"insert": {"start", "end"}, "delete": {"start", "end"}, "search": set(),
                  "replace": {"tags_start", "tags_end", "ids_start", "ids_end"}}
ENTRY_KEYS = {"max_pts", "gt_url"}
THEIR_NAMES = {"start": "tags_start", "end": "tags_end", "with_start": "ids_start", "with_end": "ids_end"}


class RunbookFile(Strict):
    """A big-ann-benchmarks runbook file: its `path` (read by the CLI when it loads the spec; never over the
    API) or its contents as `text`, and the dataset entry to run (optional when the file holds one)."""

    path: str | None = Field(default=None, min_length=1, max_length=4096, exclude_if=lambda v: v is None,
                             description="the file, read when `indexer run` loads the spec (not over the API)")
    text: str | None = Field(default=None, max_length=MAX_FILE_BYTES,
                             description="the file's contents, unchanged (what the API takes)")
    dataset: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=lambda v: v is None,
                                description="the file's top-level key to run; optional when it has one")

    @model_validator(mode="after")
    def _read(self) -> RunbookFile:
        if self.text is None:
            raise ValueError("the file was not read: give its contents as `text` (`indexer run` reads `path` when "
                             "it loads a spec file)")
        if len(self.text.encode("utf-8")) > MAX_FILE_BYTES:
            raise ValueError(f"the file is over {MAX_FILE_BYTES:,} bytes")
        file_steps(self.text, self.dataset)  # its problems reported with the spec's
        return self

    def steps(self) -> list[RunbookStep]:
        assert self.text is not None
        return list(file_steps(self.text, self.dataset))


@functools.lru_cache(maxsize=8)
def file_steps(text: str, dataset: str | None) -> tuple[RunbookStep, ...]:
    """The steps of one dataset's entry of a runbook file's text (ValueError naming what is wrong)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {clip(' '.join(str(err).split()))}") from None
    except RecursionError:
        raise ValueError("nests too deeply to read") from None
    if not isinstance(data, dict) or not data:
        raise ValueError("must map dataset names to runbooks (big-ann-benchmarks' format)")
    names = [str(k) for k in data]
    if dataset is None:
        if len(data) > 1:
            raise ValueError(f"holds {len(data)} datasets ({clip(', '.join(names))}): name one as `dataset`")
        entry = next(iter(data.values()))
        dataset = names[0]
    elif dataset in data:
        entry = data[dataset]
    else:
        raise ValueError(f"has no dataset {dataset!r} (its datasets: {clip(', '.join(names))})")
    if not isinstance(entry, dict):
        raise ValueError(f"{dataset}: must be a mapping of numbered steps")
    numbers = sorted(k for k in entry if _whole(k))
    other = [str(k) for k in entry if not _whole(k) and k not in ENTRY_KEYS]
    if other:
        raise ValueError(f"{dataset}: unknown key{'s' if len(other) > 1 else ''} {clip(', '.join(other))} (a step "
                         f"is a whole number; besides them: {', '.join(sorted(ENTRY_KEYS))})")
    if not _whole(entry.get("max_pts")) or entry["max_pts"] < 1:
        raise ValueError(f"{dataset}: max_pts must be a positive whole number (their loader requires it)")
    if len(numbers) > MAX_FILE_STEPS:
        raise ValueError(f"{dataset}: {len(numbers):,} steps; at most {MAX_FILE_STEPS:,}")
    if numbers != list(range(1, len(numbers) + 1)):
        missing = next(i for i in range(1, len(numbers) + 2) if i not in entry)
        raise ValueError(f"{dataset}: steps are numbered 1, 2, 3...; step {missing} is missing")
    if not numbers:
        raise ValueError(f"{dataset}: no steps")
    return tuple(_step(dataset, i, entry[i]) for i in numbers)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _step(dataset: str, number: int, raw: object) -> RunbookStep:
    """Their step `number` as a runbook step."""
    where = f"{dataset}: {FILE_NAMING.prefix} {number}"
    if not isinstance(raw, dict) or raw.get("operation") not in OPERATION_KEYS:
        raise ValueError(f"{where}: operation must be one of {', '.join(OPERATION_KEYS)}")
    op = raw["operation"]
    given = set(raw) - {"operation"}
    if given != OPERATION_KEYS[op]:
        missing, extra = OPERATION_KEYS[op] - given, given - OPERATION_KEYS[op]
        problem = "; ".join([*(["needs " + ", ".join(sorted(missing))] if missing else []),
                             *(["takes no " + ", ".join(sorted(map(str, extra)))] if extra else [])])
        raise ValueError(f"{where} ({op}): {problem}")
    try:
        if op == "insert":
            return InsertStep(insert=RowRange.model_validate({"start": raw["start"], "end": raw["end"]}))
        if op == "delete":
            return DeleteStep(delete=RowRange.model_validate({"start": raw["start"], "end": raw["end"]}))
        if op == "search":
            return SearchStep(search=Nothing())
        return ReplaceStep(replace=ReplaceRange.model_validate(
            {"start": raw["tags_start"], "end": raw["tags_end"], "with_start": raw["ids_start"],
             "with_end": raw["ids_end"]}))
    except ValidationError as err:
        e = err.errors(include_url=False, include_context=False)[0]
        field = ".".join(THEIR_NAMES.get(str(p), str(p)) if op == "replace" else str(p) for p in e["loc"])
        raise ValueError(f"{where} ({op}): {field + ': ' if field else ''}{error_message(e)}") from None


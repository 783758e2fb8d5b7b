"""A run and its report, in one call: what `indexer run`, `indexer advise` and the worker do.

It sits above the engine and the report, so neither imports the other's way up: the runner measures, the
report writes what was measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from indexer.common.fileio import sweep_orphans
from indexer.engine.executors import ExecutorConfig
from indexer.engine.phases import Phases, Progress
from indexer.engine.runner import RunResult, run
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import parse_rows
from indexer.report import write_report


def run_and_report(
    spec: ExperimentSpec,
    *,
    cache_dir: Path,
    out_dir: Path,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    save_indexes: bool = False,
    executor: ExecutorConfig | None = None,
    fresh: bool = False,
) -> RunResult:
    """`run`, then write the report to out_dir (atomically): what `indexer run` and the worker do.

    With save_indexes the report also holds each built index that lives in one file (indexes/), and each
    row names its copy (`index_file`), so a third party can load the graph and check the figures."""
    result = run(spec, cache_dir=cache_dir, progress=progress, should_stop=should_stop, executor=executor,
                 fresh=fresh)
    sweep_orphans(Path(out_dir).parent)  # partial reports of killed runs beside this one
    phase = Phases(progress)
    phase.fraction = 1.0
    with phase("report"):
        write_report(spec, result.rows, out_dir, extras=result.extras, save_indexes=save_indexes)
    # the rows as published: neighbour files relative to the report, floats rounded to what they mean
    result.rows = parse_rows(json.loads((Path(out_dir) / "report.json").read_text())["rows"])
    return result


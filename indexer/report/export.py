"""`indexer export RUN --format annb|parquet OUT`: a published run in the files other tools read.

Formats are a registry (FORMATS); each writer fills a directory from the report's dense rows:
- annb (indexer.report.export_annb): ann-benchmarks' dataset and result HDF5 files, for their plot.py. One
  result file per dense row, of queries x (k x 8 + 4) bytes (int32 ids, float32 distances, a float32 time
  per query), plus one dataset file per (dataset, model, index size) of (index size + queries) x dims x 4
  + queries x k x 16 bytes. It reads the run's vectors from the engine's cache.
- parquet (indexer.report.export_parquet): one table of rows x queries lines (setting, recall, LID,
  relative contrast); about 20 bytes a line (zstd), since the setting repeats within a row's row group.

OUT is written whole into a hidden sibling and renamed into place, so a crash never leaves a partial OUT;
an OUT that already exists must be an empty directory: nothing of a user's is ever replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from indexer.common.errors import UserError
from indexer.common.fileio import fsync_dir, staging_path, sweep_orphans
from indexer.report.export_annb import write_annb
from indexer.report.export_parquet import write_parquet
from indexer.report.published import Published, read_published

log = logging.getLogger(__name__)



class Writer(Protocol):
    """A format: fills `into` from the report and returns lines for the user (how to use the files)."""

    def __call__(self, report: Published, into: Path, *, cache_dir: Path) -> list[str]: ...


FORMATS: dict[str, Writer] = {"annb": write_annb, "parquet": write_parquet}


@dataclass(frozen=True)
class Exported:
    """What an export wrote: into which directory, how much, and what the user should know."""

    out_dir: Path
    files: int
    bytes: int
    rows: int  # dense rows exported
    skipped: int  # sparse and hybrid rows left out
    notes: list[str]


def export_run(run_dir: Path, fmt: str, out_dir: Path, *, cache_dir: Path) -> Exported:
    """Export the report in `run_dir` as `fmt` into `out_dir` (created; atomically). UserError on bad input:
    an unknown format, a run that is not a report, an `out_dir` that exists and is not an empty directory,
    vectors missing from `cache_dir` (annb)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    _check_target(out_dir)
    report = read_published(Path(run_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(out_dir.parent)  # partial exports of killed processes beside this one
    tmp = staging_path(out_dir, "partial")
    try:
        tmp.mkdir()
        notes = FORMATS[fmt](report, tmp, cache_dir=Path(cache_dir))
        files = [p for p in tmp.rglob("*") if p.is_file()]
        _make_durable(tmp, files)
        _check_target(out_dir)  # again: something may have appeared while we wrote
        try:
            os.rename(tmp, out_dir)  # replaces an empty directory, never a non-empty one
        except OSError as err:
            raise UserError(f"{out_dir} appeared while exporting and is not empty: {err.strerror}") from None
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    log.info("exported %d rows of %s as %s into %s", len(report.dense), run_dir, fmt, out_dir)
    return Exported(out_dir=out_dir, files=len(files), bytes=size, rows=len(report.dense), skipped=report.skipped,
                    notes=notes)


def _check_target(out_dir: Path) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise UserError(f"{out_dir} exists and is not a directory; choose a new or empty directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} exists and is not empty; choose a new or empty directory")


def _make_durable(root: Path, files: list[Path]) -> None:
    """fsync every file, then every directory below `root` and `root` itself, before the rename publishes them."""
    for path in files:
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        fsync_dir(folder)
    fsync_dir(root)

"""The report directory: written whole into a hidden sibling, then renamed into place.

A directory named like the report is always a finished report: a crash leaves the previous one, never
half of one, and a directory holding anything but a report is never replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from indexer.common.errors import UserError
from indexer.common.fileio import fsync_dir, staging_path, write_durable
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import DenseRow, FilteredRow, ResultModel, RunExtras, extras_to_json
from indexer.report.html import render_html
from indexer.report.markdown import render_markdown
from indexer.report.results import Row, typed_rows
from indexer.report.rows import JsonRow, plain, round_row, rows_to_csv

log = logging.getLogger(__name__)

REPORT_PREFIX = "report."
NEIGHBORS_DIR = "neighbors"
INDEXES_DIR = "indexes"


def write_report(
    spec: ExperimentSpec, rows: Sequence[ResultModel | Mapping[str, Any]], out_dir: Path, *,
    extras: RunExtras | Mapping[str, Any] | None = None, save_indexes: bool = False,
) -> Path:
    """Write report.{json,csv,md,html} and the neighbour files into `out_dir`, atomically.

    Typed rows and extras (indexer.model.results) become plain JSON here, once; the report works on that.
    Refuses (UserError) to replace a directory holding anything but a previous report, so a wrong
    path never deletes a user's files.
    """
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(out_dir, "partial")
    try:
        tmp.mkdir(mode=0o755)
        (tmp / NEIGHBORS_DIR).mkdir()
        filtered = list(extras.filtered) if isinstance(extras, RunExtras) else []
        report_rows, published_filtered = _copy_neighbors(typed_rows(rows), filtered, tmp)
        if save_indexes:
            _copy_indexes(typed_rows(rows), report_rows, tmp)
        plain_extras = plain(extras_to_json(extras)) if extras is not None else None
        if plain_extras is not None and published_filtered:
            plain_extras["filtered"] = published_filtered
        # Render everything before writing anything: a rendering bug must not cost the old report.
        csv_text = rows_to_csv(report_rows)
        markdown = render_markdown(spec, report_rows, plain_extras)
        page = render_html(spec, report_rows, plain_extras)
        document = {
            "spec": spec.model_dump(mode="json"),
            "key": spec.key(),
            "rows": report_rows,
            "extras": plain_extras,
        }
        blob = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
        write_durable(tmp / "report.csv", csv_text.encode("utf-8"))
        write_durable(tmp / "report.md", markdown.encode("utf-8"))
        write_durable(tmp / "report.html", page.encode("utf-8"))
        write_durable(tmp / "report.json", blob.encode("utf-8"))  # last: the file readers treat as "the result"
        fsync_dir(tmp / NEIGHBORS_DIR)
        fsync_dir(tmp)
        _check_replaceable(out_dir)  # again: something may have appeared while we rendered
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote report %s (%d rows)", out_dir, len(report_rows))
    return out_dir


def _check_replaceable(out_dir: Path) -> None:
    """Only a missing path or a previous report (report.* files, neighbors/*.npy, indexes/<cell>/index.bin*)
    may be replaced."""
    if out_dir.is_symlink():
        raise UserError(f"report directory {out_dir} is a symbolic link; refusing to replace it")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a directory; refusing to replace it")
    foreign: list[str] = []
    for entry in out_dir.iterdir():
        if entry.name.startswith(REPORT_PREFIX) and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name == NEIGHBORS_DIR and entry.is_dir() and not entry.is_symlink():
            foreign += [
                f"{NEIGHBORS_DIR}/{p.name}"
                for p in entry.iterdir()
                if p.suffix != ".npy" or not p.is_file() or p.is_symlink()
            ]
            continue
        if entry.name == INDEXES_DIR and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{INDEXES_DIR}/{p.name}" for p in entry.iterdir()
                        if not p.is_dir() or p.is_symlink() or any(not f.name.startswith("index.bin") for f in p.iterdir())]
            continue
        foreign.append(entry.name)
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UserError(
            f"{out_dir} is not a report directory (it holds {shown}); refusing to replace it: "
            "choose an empty or new directory"
        )


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Rename the finished temp dir into place; the old report is moved aside first, then removed."""
    old: Path | None = None
    if out_dir.exists():
        old = staging_path(out_dir, "old")
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _copy_neighbors(rows: Sequence[Row], filtered: Sequence[FilteredRow],
                    dest: Path) -> tuple[list[JsonRow], list[JsonRow]]:
    """The rows and the filtered rows as published: their neighbour files copied into dest/neighbors and
    named relative to the report, values plain JSON, rounded to what they mean. A report is whole without
    the cache it was run from."""
    copied: dict[str, str | None] = {}
    used: set[str] = set()
    # The engine names files per cell directory (cells/<key>/neighbors-ef40.npy): where a basename is
    # shared by several sources, the copy is named <directory>-<basename> instead.
    sources = {f for r in rows for f in _published_files(r).values() if f} | {r.neighbors for r in filtered if r.neighbors}
    shared = {n for n in (Path(x).name for x in sources) if sum(Path(x).name == n for x in sources) > 1}

    def published(row: Row | FilteredRow, files: dict[str, str | None]) -> JsonRow:
        new = round_row(plain(row.to_json()))
        new.pop("ranking", None)  # the depth-100 ranking in the cache: an input of hybrid rows, not a result
        for field, source in files.items():
            if not source:
                continue
            if source not in copied:
                src = Path(source)
                copied[source] = _copy_one(src, dest, used, qualify=src.name in shared)
            new[field] = copied[source]
        return new

    return ([published(row, _published_files(row)) for row in rows],
            [published(row, {"neighbors": row.neighbors}) for row in filtered])


def _published_files(row: Row) -> dict[str, str | None]:
    """The files of a row that the report carries: its neighbours and, for dense rows, per-query recall and
    its space's per-query measures."""
    files = {"neighbors": row.neighbors}
    if isinstance(row, DenseRow):
        files["recall_file"] = row.recall_file
        files["query_measures"] = row.query_measures
    return files


def _copy_indexes(rows: Sequence[Row], published: list[JsonRow], dest: Path) -> None:
    """Put each built index that lives in one file (index.bin and its companions, in the row's cell
    directory) into dest/indexes/<cell>/, and name it in the published row (`index_file`)."""
    copied: dict[str, str] = {}
    for row, out in zip(rows, published, strict=True):
        if not isinstance(row, DenseRow) or not row.neighbors:
            continue
        cell_dir = Path(row.neighbors).parent
        if row.cell not in copied and (cell_dir / "index.bin").is_file():
            target = dest / INDEXES_DIR / row.cell
            target.mkdir(parents=True)
            for src in sorted(cell_dir.glob("index.bin*")):
                _link_or_copy(src, target / src.name)
            fsync_dir(target)
            copied[row.cell] = f"{INDEXES_DIR}/{row.cell}/index.bin"
        if row.cell in copied:
            out["index_file"] = copied[row.cell]


def _link_or_copy(src: Path, target: Path) -> None:
    """A hard link to the cached file where the filesystem allows (an index can be gigabytes), else a copy
    (another filesystem, links refused). Sharing the inode is safe: the cache and the report only ever
    replace a file (write a new one, rename it over), never write into one."""
    try:
        os.link(src, target)
    except OSError:  # EXDEV, EPERM, EMLINK, ENOTSUP, ...
        shutil.copyfile(src, target)


def _copy_one(src: Path, dest: Path, used: set[str], *, qualify: bool) -> str | None:
    if not src.is_file():
        log.warning("neighbour file %s is missing; the report row will not reference it", src)
        return None
    name = f"{src.parent.name}-{src.name}" if qualify and src.parent.name else src.name
    stem, suffix = name[: -len(src.suffix)] if src.suffix else name, src.suffix
    n = 1
    while name in used:  # two cache dirs may hold the same basename
        n += 1
        name = f"{stem}-{n}{suffix}"
    used.add(name)
    target = dest / NEIGHBORS_DIR / name
    shutil.copyfile(src, target)
    with open(target, "rb") as fh:
        os.fsync(fh.fileno())
    return f"{NEIGHBORS_DIR}/{name}"

"""Reports: turn result rows into report.json, report.csv, report.md and a self-contained report.html.

Every file is written into a temporary sibling directory that is renamed into place, so a directory
named like the report is always a finished report: a crash leaves the previous one, never half of one.
The markdown and HTML come from one document model (sections of paragraphs, tables and figures), so
both show the same numbers; figures are matplotlib SVG inlined in the HTML (no network, no scripts).
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from indexer import __version__
from indexer.errors import UserError
from indexer.fileio import staging_path
from indexer.spec import ExperimentSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

Row = dict[str, Any]

REPORT_PREFIX = "report."
NEIGHBORS_DIR = "neighbors"
IR_METRICS = ("ndcg@10", "mrr@10", "recall@100")
# CSV column order: what a reader scans first, then anything else sorted, then the bulky nested cells.
MAIN_COLUMNS = (
    "dataset", "model", "metric", "reduction", "dims", "representation", "index_size", "ordering",
    "backend", "M", "ef_construction", "ef", "k", "seed", "recall", "recall_std", "recall_ci95",
    "recall_within", *IR_METRICS, "build_seconds", "qps", "index_bytes", "bytes_per_vector",
)  # fmt: skip
TAIL_COLUMNS = ("recall_by_category", "recall_by_lid_bin", "neighbors")
# What splits the recall tables into sub-tables when it takes more than one value.
SECTION_KEYS = ("dataset", "model", "reduction", "representation", "index_size")
MISSING = "–"
TIE = 5e-4  # recall differences below this print as equal at three decimals

# Fixed colours and markers so one ordering looks the same in every plot of every report.
ORDERING_STYLE: dict[str, tuple[str, str]] = {
    "random": ("#4d4d4d", "o"),
    "given": ("#8c564b", "s"),
    "lid_asc": ("#1f77b4", "^"),
    "lid_desc": ("#d62728", "v"),
    "category": ("#2ca02c", "D"),
    "category_interleaved": ("#17becf", "P"),
    "cluster": ("#9467bd", "X"),
}
REPRESENTATION_COLORS = {"dense": "#1f77b4", "sparse": "#ff7f0e", "hybrid": "#2ca02c"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # fmt: skip
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")


# ---------------------------------------------------------------------------------------------------
# Public API


def write_report(
    spec: ExperimentSpec, rows: list[dict], out_dir: Path, *, extras: dict | None = None
) -> Path:
    """Write report.{json,csv,md,html} and the neighbour files into `out_dir`, atomically.

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
        report_rows = _copy_neighbors(rows, tmp)
        plain_extras = _plain(extras) if extras is not None else None
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
        _write_file(tmp / "report.csv", csv_text)
        _write_file(tmp / "report.md", markdown)
        _write_file(tmp / "report.html", page)
        _write_file(tmp / "report.json", blob)  # last: the file readers treat as "the result"
        _fsync_dir(tmp / NEIGHBORS_DIR)
        _fsync_dir(tmp)
        _check_replaceable(out_dir)  # again: something may have appeared while we rendered
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote report %s (%d rows)", out_dir, len(report_rows))
    return out_dir


def rows_to_csv(rows: list[dict]) -> str:
    """One line per row; nested values (dicts, lists) JSON-encoded in their cell, None as empty."""
    plain = [_plain(dict(r)) for r in rows if isinstance(r, Mapping)]
    seen: dict[str, None] = {}
    for r in plain:
        seen.update(dict.fromkeys(r))
    main = [c for c in MAIN_COLUMNS if c in seen]
    tail = [c for c in TAIL_COLUMNS if c in seen]
    rest = sorted(c for c in seen if c not in main and c not in tail)
    columns = main + rest + tail
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in plain:
        writer.writerow([_csv_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def render_markdown(spec: ExperimentSpec, rows: list[dict], extras: dict | None = None) -> str:
    """The report as GitHub-flavoured markdown (figures are HTML only)."""
    title, sections = _document(spec, rows, extras)
    out = [f"# {title}", "", f"Result key `{spec.key()}` · indexer {__version__}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for block in sec.blocks:
            out += _md_block(block)
    out += ["## Spec", "", "```json", json.dumps(spec.model_dump(mode="json"), indent=2), "```", ""]
    return "\n".join(out)


def render_html(spec: ExperimentSpec, rows: list[dict], extras: dict | None = None) -> str:
    """One self-contained page: inline CSS and SVG plots, no scripts, nothing fetched."""
    title, sections = _document(spec, rows, extras)
    esc = html.escape
    figure_count = itertools.count(1)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)} · indexer report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>{esc(title)}</h1>",
        f'<p class="meta">result key <code>{esc(spec.key())}</code> · indexer {esc(__version__)}'
        f" · {len(rows)} result rows</p></header>",
        "<nav><ol>"
        + "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
        + '<li><a href="#spec">Spec</a></li></ol></nav>',
    ]
    for sec in sections:
        parts.append(f'<section id="{sec.anchor}"><h2>{esc(sec.title)}</h2>')
        for block in sec.blocks:
            parts.append(_html_block(block, figure_count))
        parts.append("</section>")
    spec_json = json.dumps(spec.model_dump(mode="json"), indent=2)
    parts += [
        '<section id="spec"><h2>Spec</h2><details><summary>The experiment spec (canonical JSON)'
        f"</summary><pre>{esc(spec_json)}</pre></details></section>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------
# Atomic writing


def _check_replaceable(out_dir: Path) -> None:
    """Only a missing path or a previous report (report.* files, neighbors/*.npy) may be replaced."""
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
    _fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_file(path: Path, text: str) -> None:
    with open(path, "wb") as fh:
        fh.write(text.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries durable; some filesystems refuse, which is not fatal."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_neighbors(rows: Sequence[Mapping[str, Any]], dest: Path) -> list[Row]:
    """Copy each row's neighbour file into dest/neighbors and point the row at the relative copy."""
    copied: dict[str, str | None] = {}
    used: set[str] = set()
    out: list[Row] = []
    # The engine names files per cell directory (cells/<key>/neighbors-ef40.npy): where a basename is
    # shared by several sources, the copy is named <directory>-<basename> instead.
    sources = {
        str(r["neighbors"])
        for r in rows
        if isinstance(r, Mapping)
        and isinstance(r.get("neighbors"), str | os.PathLike)
        and str(r["neighbors"])
    }
    shared = {n for n in (Path(x).name for x in sources) if sum(Path(x).name == n for x in sources) > 1}
    for row in rows:
        if not isinstance(row, Mapping):
            log.warning("skipping a result row that is not a mapping: %r", type(row).__name__)
            continue
        new = round_row(_plain(dict(row)))
        new.pop("ranking", None)  # the depth-100 ranking in the cache: an input of hybrid rows, not a result
        src = row.get("neighbors")
        if isinstance(src, str | os.PathLike) and str(src):
            key = str(src)
            if key not in copied:
                copied[key] = _copy_one(Path(src), dest, used, qualify=Path(src).name in shared)
            new["neighbors"] = copied[key]
        out.append(new)
    return out


# Decimals each measure means: recall of k <= 1000 results needs 4, a time in seconds 4, a rate 1.
ROUNDING = {"qps": 1, "build_seconds": 4}
DEFAULT_DECIMALS = 4


def round_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with its floats rounded to what they mean (recall to 4 decimals, qps to 1)."""
    return {key: _round(value, ROUNDING.get(key, DEFAULT_DECIMALS)) for key, value in row.items()}


def _round(value: Any, decimals: int) -> Any:
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {k: _round(v, decimals) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, decimals) for v in value]
    return value


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


# ---------------------------------------------------------------------------------------------------
# Plain values


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump(mode="json"))
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _mean(values: Iterable[Any]) -> float | None:
    nums = [x for x in (_num(v) for v in values) if x is not None]
    return sum(nums) / len(nums) if nums else None


def _std(values: Iterable[Any]) -> float | None:
    nums = [x for x in (_num(v) for v in values) if x is not None]
    if len(nums) < 2:
        return None
    return float(np.std(nums, ddof=1))


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _sortable(value: Any) -> tuple:
    """Numbers before strings before None, so mixed columns sort without TypeError."""
    n = _num(value)
    if n is not None:
        return (0, n, "")
    if value is None:
        return (2, 0.0, "")
    return (1, 0.0, str(value))


def _f3(x: float | None) -> str:
    return MISSING if x is None else f"{x:.3f}"


def _pts(x: float | None) -> str:
    return MISSING if x is None else f"{x * 100:.1f}"


def _count(x: float | None) -> str:
    return MISSING if x is None else f"{x:,.0f}"


def _secs(x: float | None) -> str:
    if x is None:
        return MISSING
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def _megabytes(x: float | None) -> str:
    return MISSING if x is None else f"{x / 1e6:,.1f}"


def _compact(x: float | None) -> str:
    """Short number for dense cells: 12,300 -> 12.3k."""
    if x is None:
        return MISSING
    if abs(x) >= 10_000:
        return f"{x / 1000:,.0f}k"
    if abs(x) >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2f}"


# ---------------------------------------------------------------------------------------------------
# The results, grouped the way the report reads them


ColKey = tuple[Any, Any, Any, Any]  # backend, M, ef_construction, ef
ConfigKey = tuple[Any, Any, Any]  # backend, M, ef_construction


class _Results:
    """Rows plus the orders and labels that the spec implies (spec order first, then what rows add)."""

    def __init__(self, spec: ExperimentSpec, rows: Sequence[Any]) -> None:
        self.spec = spec
        given = [dict(r) for r in rows if isinstance(r, Mapping)]
        self.n_rows = len(given)
        self.k = spec.k
        self.preferred: dict[str, list[Any]] = {
            "model": list(spec.models()),
            "reduction": [r.label for r in spec.reductions],
            "representation": list(spec.representations),
            "ordering": list(spec.orderings),
            "backend": list(dict.fromkeys(b.name for b in spec.backends)),
        }
        # Orderings are those of the graph indexes; a row whose search cannot depend on the insertion
        # order (BM25, exact; the engine labels BM25 "given") is shown under every one of them.
        graph = [r for r in given if _num(r.get("ef")) is not None]
        self.orderings: list[str] = self.ordered("ordering", self.distinct("ordering", graph or given))
        self.rows = []
        for r in given:
            if graph and _num(r.get("ef")) is None and r.get("ordering") not in self.orderings:
                self.rows += [{**r, "ordering": o} for o in self.orderings]
            else:
                self.rows.append(r)
        self.section_keys = [k for k in SECTION_KEYS if len(self.distinct(k)) > 1]
        self.multi_seed = len([s for s in self.distinct("seed") if s is not None]) > 1
        configs: dict[str, set[tuple[Any, Any]]] = {}
        for r in self.rows:
            configs.setdefault(str(r.get("backend")), set()).add((r.get("M"), r.get("ef_construction")))
        self._ambiguous = {name for name, cs in configs.items() if len(cs) > 1}

    def distinct(self, key: str, rows: Iterable[Row] | None = None) -> list[Any]:
        return list(dict.fromkeys(_hashable(r.get(key)) for r in (self.rows if rows is None else rows)))

    def rank(self, key: str, value: Any) -> tuple:
        preferred = self.preferred.get(key, [])
        if value in preferred:
            return (0, preferred.index(value), (0, 0.0, ""))
        return (1, 0, _sortable(value))

    def ordered(self, key: str, values: Iterable[Any]) -> list[Any]:
        return sorted(values, key=lambda v: self.rank(key, v))

    def group(self, rows: Iterable[Row], keys: Sequence[str]) -> list[tuple[tuple[Any, ...], list[Row]]]:
        groups: dict[tuple[Any, ...], list[Row]] = {}
        for r in rows:
            groups.setdefault(tuple(_hashable(r.get(k)) for k in keys), []).append(r)
        order = sorted(groups, key=lambda t: tuple(self.rank(k, v) for k, v in zip(keys, t, strict=True)))
        return [(t, groups[t]) for t in order]

    def sections(
        self, rows: Iterable[Row] | None = None, keys: Sequence[str] | None = None
    ) -> list[tuple[str, list[Row]]]:
        keys = self.section_keys if keys is None else keys
        rows = self.rows if rows is None else rows
        return [(section_label(keys, t), rs) for t, rs in self.group(rows, keys)]

    @staticmethod
    def config_of(row: Row) -> ConfigKey:
        return (_hashable(row.get("backend")), row.get("M"), row.get("ef_construction"))

    @staticmethod
    def col_of(row: Row) -> ColKey:
        return (_hashable(row.get("backend")), row.get("M"), row.get("ef_construction"), row.get("ef"))

    def config_label(self, config: ConfigKey) -> str:
        name, m, efc = config
        label = str(name) if name is not None else "backend?"
        if label in self._ambiguous:
            label += f" M={m} efC={efc}"
        return label

    def col_label(self, col: ColKey) -> str:
        label = self.config_label(col[:3])
        return label if col[3] is None else f"{label} ef={col[3]}"

    def _config_rank(self, config: ConfigKey) -> tuple:
        return (self.rank("backend", config[0]), _sortable(config[1]), _sortable(config[2]))

    def columns(self, rows: Iterable[Row]) -> list[ColKey]:
        cols = dict.fromkeys(self.col_of(r) for r in rows)
        return sorted(cols, key=lambda c: (self._config_rank(c[:3]), c[3] is not None, _sortable(c[3])))

    def column_groups(self, cols: Sequence[ColKey]) -> tuple[list[tuple[str, int]], list[str]]:
        """Group header cells for HTML tables: one per backend config, `ef=…` under it."""
        groups: list[tuple[str, int]] = []
        subs: list[str] = []
        for config, members in itertools.groupby(cols, key=lambda c: c[:3]):
            ms = list(members)
            groups.append((self.config_label(config), len(ms)))
            single = len(ms) == 1 and ms[0][3] is None
            subs += ["" if single else (f"ef={c[3]}" if c[3] is not None else MISSING) for c in ms]
        return groups, subs

    def configs(self, rows: Iterable[Row]) -> list[ConfigKey]:
        return sorted(dict.fromkeys(self.config_of(r) for r in rows), key=self._config_rank)

    def picked_columns(self, rows: Sequence[Row], *, highest: bool) -> list[ColKey]:
        """One column per backend config: its lowest (or highest) ef; backends without ef as they are."""
        picked = []
        for config in self.configs(rows):
            cols = [c for c in self.columns(rows) if c[:3] == config]
            with_ef = [c for c in cols if _num(c[3]) is not None]
            if with_ef:
                picked.append(
                    max(with_ef, key=lambda c: c[3]) if highest else min(with_ef, key=lambda c: c[3])
                )
            else:
                picked.append(cols[0])
        return picked


def section_label(keys: Sequence[str], values: Sequence[Any]) -> str:
    """A readable name for a group: 'model X · reduction fft-low-64 · sparse'."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            parts.append(f"{key.replace('_', ' ')} {MISSING}")
        elif key == "model":
            parts.append(f"model {value}")
        elif key == "reduction":
            parts.append("no reduction" if value == "none" else f"reduction {value}")
        elif key == "index_size":
            n = _num(value)
            parts.append(f"index size {n:,.0f}" if n is not None else f"index size {value}")
        else:
            parts.append(str(value))
    return " · ".join(parts) or "all results"


def _by(rows: Iterable[Row], key: str, value: Any) -> list[Row]:
    return [r for r in rows if _hashable(r.get(key)) == value]


def _with_col(res: _Results, rows: Iterable[Row], col: ColKey) -> list[Row]:
    return [r for r in rows if res.col_of(r) == col]


def _trivially_exact(rows: Sequence[Row]) -> bool:
    """Exact search scored against itself is 1.0 everywhere: nothing to plot or break down."""
    recalls = [_num(r.get("recall")) for r in rows]
    return (
        bool(rows)
        and all(r.get("backend") == "exact" for r in rows)
        and all(x is not None and x >= 0.9995 for x in recalls)
    )


def _category_recalls(rows: Iterable[Row]) -> dict[str, tuple[float, int]]:
    """Mean recall per category over rows (seeds), with the query count."""
    acc: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for r in rows:
        cats = r.get("recall_by_category")
        if not isinstance(cats, Mapping):
            continue
        for name, entry in cats.items():
            value = entry.get("recall") if isinstance(entry, Mapping) else entry
            x = _num(value)
            if x is None:
                continue
            acc.setdefault(str(name), []).append(x)
            n = _num(entry.get("n")) if isinstance(entry, Mapping) else None
            counts[str(name)] = int(n) if n is not None else counts.get(str(name), 0)
    return {name: (sum(v) / len(v), counts.get(name, 0)) for name, v in acc.items()}


def _lid_bins(rows: Iterable[Row]) -> dict[int, dict[str, float | None]]:
    """Mean recall per query-LID bin over rows, keeping each bin's LID range."""
    acc: dict[int, dict[str, list[float]]] = {}
    for r in rows:
        bins = r.get("recall_by_lid_bin")
        if not isinstance(bins, list):
            continue
        for i, entry in enumerate(bins):
            if not isinstance(entry, Mapping):
                continue
            b = _num(entry.get("bin"))
            slot = acc.setdefault(int(b) if b is not None else i, {"recall": [], "lo": [], "hi": [], "n": []})
            for key in slot:
                x = _num(entry.get(key))
                if x is not None:
                    slot[key].append(x)
    return {b: {key: _mean(vals) for key, vals in slot.items()} for b, slot in sorted(acc.items())}


def _ci(rows: Iterable[Row]) -> tuple[float, float] | None:
    los, his = [], []
    for r in rows:
        ci = r.get("recall_ci95")
        if isinstance(ci, list | tuple) and len(ci) == 2:
            lo, hi = _num(ci[0]), _num(ci[1])
            if lo is not None and hi is not None:
                los.append(lo)
                his.append(hi)
    return (sum(los) / len(los), sum(his) / len(his)) if los else None


def _family(reduction: Any) -> str:
    """'fft-low-64' -> 'fft-low': the reduction without its size, one line in a dims plot."""
    return re.sub(r"-\d+$", "", str(reduction))


# ---------------------------------------------------------------------------------------------------
# Document model shared by markdown and HTML


@dataclass
class _Para:
    text: str
    only: str | None = None  # "md" or "html": a block that only one format shows


@dataclass
class _Heading:
    text: str


@dataclass
class _Bullets:
    items: list[str]


@dataclass
class _Pre:
    text: str
    only: str | None = None


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    strong: set[tuple[int, int]] = field(default_factory=set)
    left: int = 1  # the first `left` columns are labels, the rest numbers
    caption: str = ""
    # HTML only: a header row of (label, span) over the number columns, and the short header below
    # each ("" when the group has one column and needs no second line).
    groups: list[tuple[str, int]] | None = None
    sub_headers: list[str] | None = None


@dataclass
class _Group:
    """Blocks shown together; with a summary they fold into <details> in the HTML."""

    blocks: list[Any]
    summary: str | None = None


@dataclass
class _Figure:
    caption: str
    draw: Callable[[], Figure]


Block = _Para | _Heading | _Bullets | _Pre | _Table | _Figure | _Group


@dataclass
class _Section:
    anchor: str
    title: str
    blocks: list[Block]


def _document(
    spec: ExperimentSpec, rows: Sequence[Any], extras: Mapping[str, Any] | None
) -> tuple[str, list[_Section]]:
    res = _Results(spec, rows)
    extras = extras if isinstance(extras, Mapping) else {}
    highlights: list[str] = []
    sections = [_overview_section(res)]
    body: list[_Section | None] = [
        _recall_section(res, highlights),
        _category_section(res, highlights),
        _lid_bin_section(res),
        _lid_section(res, extras, highlights),
        _reduction_section(res),
        _speed_section(res),
        _ir_section(res),
        _model_ranking_section(res, extras, highlights),
        _index_size_section(res, highlights),
        _notes_section(extras),
    ]
    if highlights:
        sections.append(_Section("highlights", "Highlights", [_Bullets(highlights)]))
    sections += [s for s in body if s is not None and s.blocks]
    return spec.name, sections


def _overview_section(res: _Results) -> _Section:
    spec = res.spec
    backends = []
    for b in spec.backends:
        params = [f"{k}={getattr(b, k)}" for k in ("M", "ef_construction") if hasattr(b, k)]
        efs = getattr(b, "ef_search", None)
        if efs:
            params.append("ef " + ", ".join(str(e) for e in efs))
        backends.append(b.name + (f" ({'; '.join(params)})" if params else ""))
    sizes = ", ".join(f"{s:,}" if isinstance(s, int) else str(s) for s in spec.index_sizes)
    grid = [
        f"Metric {spec.metric}; recall@{spec.k} against exact k-nearest neighbours.",
        "Insertion orderings: " + ", ".join(spec.orderings) + ".",
        "Backends: " + "; ".join(backends) + ".",
        "Reductions: " + ", ".join(r.label for r in spec.reductions) + ".",
        "Representations: " + ", ".join(spec.representations) + f"; index sizes: {sizes}.",
        f"Seeds: {', '.join(str(s) for s in spec.seeds)}; pointwise LID with k={spec.lid.k}, "
        f"{spec.lid_bins} query-LID bins.",
        f"{res.n_rows} result rows (one per index build and ef).",
    ]
    return _Section("overview", "Overview", [_Para(_describe_dataset(spec)), _Bullets(grid)])


def _describe_dataset(spec: ExperimentSpec) -> str:
    d = spec.dataset.model_dump(mode="json")
    kind = d.get("kind")
    if kind == "synthetic":
        dims = d["intrinsic_dims"]
        return (
            f"Synthetic data: {len(dims)} random linear subspaces of intrinsic dimension "
            f"{', '.join(str(x) for x in dims)} in {d['ambient_dim']}-d, {d['points_per_subspace']:,} "
            f"points and {d['queries_per_subspace']:,} queries per subspace (noise {d['noise']}, "
            f"{'unit-normalised' if d['normalize'] else 'not normalised'}, seed {d['seed']}). "
            "Each subspace is a category."
        )
    if kind == "glove":
        return (
            f"GloVe 6B 50-d word vectors: {d['n']:,} base vectors and {d['queries']:,} held-out queries "
            f"(split seed {d['seed']})."
        )
    if kind == "text":
        limit = f"at most {d['limit']:,}" if d.get("limit") else "all"
        return (
            f"Text corpus '{d['corpus']}' ({limit} documents, {d['queries']:,} queries), embedded with "
            f"{', '.join(d['models'])}."
        )
    if kind == "file":
        if d.get("queries"):
            queries = f"queries from {d['queries']}"
        else:
            queries = f"{d['query_count']:,} queries split off with seed {d['seed']}"
        return f"User vectors from {d['path']}; {queries}."
    if kind == "beir":
        limit = f", at most {d['queries']:,} queries" if d.get("queries") else ""
        return f"BEIR-layout corpus at {d['path']}{limit}, embedded with {', '.join(d['models'])}."
    return f"Dataset: {json.dumps(d)}"


# --- recall -----------------------------------------------------------------------------------------


def _recall_section(res: _Results, highlights: list[str]) -> _Section:
    blocks: list[Block] = [
        _Para(
            f"Mean recall@{res.k} against exact kNN in the original space"
            + (", mean ± standard deviation over seeds" if res.multi_seed else "")
            + (
                ", one row per insertion ordering. Best ordering per column in bold; the last row is the "
                "spread between the best and worst ordering, in points (1 point = 0.01 recall)."
                if len(res.orderings) > 1
                else f" ({res.orderings[0] if res.orderings else 'one'} insertion ordering)."
            )
        )
    ]
    spreads: list[tuple[float, str, str, str, float, str, float]] = []
    tables: list[Block] = []
    sections = res.sections()
    if len(res.orderings) == 1 and len(sections) > 1:
        if _recall_columns(res, res.rows):
            tables.append(_recall_by_group_table(res, sections))
        sections = []
    for label, srows in sections:
        cols = _recall_columns(res, srows)
        if not cols:
            continue
        if len(sections) > 1:
            tables.append(_Heading(label))
        groups, subs = res.column_groups(cols)
        table = _Table(["ordering"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs)
        means: dict[ColKey, dict[str, float]] = {c: {} for c in cols}
        for ordering in res.orderings:
            line = [str(ordering)]
            for col in cols:
                cell = _with_col(res, _by(srows, "ordering", ordering), col)
                per_seed = [_mean(r.get("recall") for r in rs) for _, rs in res.group(cell, ["seed"])]
                m = _mean(per_seed)
                if m is not None:
                    means[col][ordering] = m
                sd = _std(per_seed)
                line.append(_f3(m) + (f" ± {sd:.3f}" if sd is not None else ""))
            table.rows.append(line)
        if len(res.orderings) > 1:
            spread_line = ["spread (pts)"]
            for j, col in enumerate(cols):
                vals = means[col]
                if len(vals) < 2 or not _ordering_matters(res, col):
                    spread_line.append(MISSING)
                    continue
                best = max(vals, key=lambda o: vals[o])
                worst = min(vals, key=lambda o: vals[o])
                spread = vals[best] - vals[worst]
                if spread >= TIE:  # a bold winner among equals would mislead
                    table.strong.add((res.orderings.index(best), j + 1))
                spread_line.append(_pts(spread))
                spreads.append((spread, label, res.col_label(col), best, vals[best], worst, vals[worst]))
            table.rows.append(spread_line)
        tables.append(table)
    if spreads:
        spread, label, col_label, best, bv, worst, wv = max(spreads)
        where = col_label + (f", {label}" if len(sections) > 1 else "")
        highlights.append(
            f"Insertion order moved mean recall@{res.k} by up to {spread * 100:.1f} points "
            f"({where}: {best} {bv:.3f} vs {worst} {wv:.3f})."
        )
    figure = _recall_vs_ef_figure(res)
    if figure is not None:
        blocks.append(figure)
    blocks += tables
    title = "Recall by insertion order" if len(res.orderings) > 1 else "Recall"
    return _Section("recall", title, blocks)


def _recall_columns(res: _Results, rows: Sequence[Row]) -> list[ColKey]:
    """Columns that have a recall against exact kNN (BM25 and hybrid rows are scored by IR metrics)."""
    with_recall = [r for r in rows if _num(r.get("recall")) is not None]
    return res.columns(with_recall)


def _recall_by_group_table(res: _Results, sections: list[tuple[str, list[Row]]]) -> _Table:
    """One ordering: a single table, one line per result group, (backend, ef) columns."""
    cols = _recall_columns(res, res.rows)
    groups, subs = res.column_groups(cols)
    table = _Table(["results"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs)
    for label, srows in sections:
        if not any(_num(r.get("recall")) is not None for r in srows):
            continue
        line = [label]
        for col in cols:
            per_seed = [
                _mean(r.get("recall") for r in rs)
                for _, rs in res.group(_with_col(res, srows, col), ["seed"])
            ]
            sd = _std(per_seed)
            line.append(_f3(_mean(per_seed)) + (f" ± {sd:.3f}" if sd is not None else ""))
        table.rows.append(line)
    return table


# --- categories -------------------------------------------------------------------------------------


def _ordering_matters(res: _Results, col: ColKey) -> bool:
    """Exact search and BM25 (no ef) return the same whatever the insertion order."""
    return len(res.orderings) < 2 or col[3] is not None


def _category_section(res: _Results, highlights: list[str]) -> _Section | None:
    if not any(
        isinstance(r.get("recall_by_category"), Mapping) and r["recall_by_category"] for r in res.rows
    ):
        return None
    several = len(res.orderings) > 1
    headers = ["backend / ef"]
    if several:
        headers += ["most order-sensitive category", "best → worst ordering", "spread (pts)"]
    headers += ["weakest category", "recall vs all", "gap (pts)"]
    tables: list[Block] = []
    best_gap: tuple[float, str] | None = None
    sections = res.sections()
    for label, srows in sections:
        table = _Table(headers, [])
        for col in res.columns(srows):
            crows = _with_col(res, srows, col)
            if _trivially_exact(crows) or not _ordering_matters(res, col):
                continue
            per_ordering = {o: _category_recalls(_by(crows, "ordering", o)) for o in res.orderings}
            per_ordering = {o: c for o, c in per_ordering.items() if c}
            if not per_ordering:
                continue
            line = [res.col_label(col)]
            if several:
                spread_row = _largest_spread(per_ordering)
                if spread_row is None or spread_row[2] - spread_row[4] < TIE:
                    line += ["(none: equal under every ordering)", MISSING, MISSING]
                else:
                    cat, best_o, best, worst_o, worst = spread_row
                    line += [cat, f"{best_o} {best:.3f} → {worst_o} {worst:.3f}", _pts(best - worst)]
                    text = (
                        f"The biggest per-category gap between orderings: category '{cat}' under "
                        f"{res.col_label(col)}"
                        + (f" ({label})" if len(sections) > 1 else "")
                        + f" reaches {best:.3f} with {best_o} but {worst:.3f} with {worst_o} "
                        f"({(best - worst) * 100:.1f} points)."
                    )
                    if best_gap is None or best - worst > best_gap[0]:
                        best_gap = (best - worst, text)
            cats: dict[str, list[float]] = {}
            for c in per_ordering.values():
                for name, (value, _n) in c.items():
                    cats.setdefault(name, []).append(value)
            cat_means = {name: sum(v) / len(v) for name, v in cats.items()}
            overall = _mean(r.get("recall") for r in crows)
            weakest = min(cat_means, key=lambda n: cat_means[n])
            gap = cat_means[weakest] - overall if overall is not None else None
            line += [weakest, f"{_f3(cat_means[weakest])} vs {_f3(overall)}", _pts(gap)]
            table.rows.append(line)
        if table.rows:
            tables += ([_Heading(label)] if len(sections) > 1 else []) + [table]
    if not tables:
        return None
    explain = (
        "For each backend and ef: "
        + (
            "the category whose recall differs most between insertion orderings (best and worst "
            "ordering, means over seeds), and "
            if several
            else ""
        )
        + "the category with the lowest recall (averaged over orderings) against the overall mean "
        "recall; a negative gap means below the mean."
        + (" Exact search and BM25 are left out: the insertion order cannot change them." if several else "")
    )
    blocks: list[Block] = [_Para(explain)]
    figure = _category_figure(res)
    if figure is not None:
        blocks.append(figure)
    blocks.append(_fold(tables, "Per-category tables"))
    if best_gap is not None:
        highlights.append(best_gap[1])
    return _Section("categories", "Recall by category", blocks)


def _fold(blocks: list[Block], summary: str) -> Block:
    """Long runs of tables fold away in the HTML (the figure says it faster); short ones stay open."""
    n_rows = sum(len(b.rows) for b in blocks if isinstance(b, _Table))
    if n_rows <= 16:
        return _Group(blocks)
    return _Group(blocks, summary=f"{summary} ({n_rows} rows)")


def _largest_spread(
    per_ordering: Mapping[str, Mapping[str, tuple[float, int]]],
) -> tuple[str, str, float, str, float] | None:
    """The category whose recall varies most across orderings, with its best and worst ordering."""
    found: tuple[float, str, str, float, str, float] | None = None
    names = sorted({n for c in per_ordering.values() for n in c})
    for name in names:
        vals = {o: c[name][0] for o, c in per_ordering.items() if name in c}
        if len(vals) < 2:
            continue
        best = max(vals, key=lambda o: vals[o])
        worst = min(vals, key=lambda o: vals[o])
        spread = vals[best] - vals[worst]
        if found is None or spread > found[0]:
            found = (spread, name, best, vals[best], worst, vals[worst])
    return None if found is None else found[1:]


# --- query LID bins ---------------------------------------------------------------------------------


def _lid_bin_panels(res: _Results) -> list[tuple[str, ColKey, list[Row]]]:
    """(section label, column, rows) at each backend's lowest ef, where bins have data."""
    panels = []
    for label, srows in res.sections():
        for col in res.picked_columns(srows, highest=False):
            crows = _with_col(res, srows, col)
            if _trivially_exact(crows) or not _ordering_matters(res, col) or not _lid_bins(crows):
                continue
            panels.append((label, col, crows))
    return panels


def _lid_bin_section(res: _Results) -> _Section | None:
    panels = _lid_bin_panels(res)
    if not panels:
        return None
    blocks: list[Block] = [
        _Para(
            f"Queries split into quantile bins of their pointwise LID (low to high); mean recall@{res.k} "
            "per bin and insertion ordering, at each backend's smallest ef (where the search is least "
            "forgiving)."
        )
    ]
    figure = _lid_bin_figure(res, panels)
    if figure is not None:
        blocks.append(figure)
    tables: list[Block] = []
    for label, col, crows in panels:
        if len(panels) > 1:
            tables.append(_Heading(f"{res.col_label(col)}" + (f" · {label}" if res.section_keys else "")))
        bins_all = _lid_bins(crows)
        headers = ["ordering"] + [_bin_label(b, info) for b, info in bins_all.items()]
        table = _Table(headers, [])
        for ordering in res.orderings:
            bins = _lid_bins(_by(crows, "ordering", ordering))
            if bins:
                table.rows.append([str(ordering)] + [_f3(bins.get(b, {}).get("recall")) for b in bins_all])
        counts = [bins_all[b].get("n") for b in bins_all]
        if any(c is not None for c in counts):
            table.rows.append(["queries"] + [_count(c) for c in counts])
        tables.append(table)
    blocks.append(_fold(tables, "Per-bin tables"))
    return _Section("lid-bins", "Recall by query LID", blocks)


def _bin_label(b: int, info: Mapping[str, float | None]) -> str:
    lo, hi = info.get("lo"), info.get("hi")
    if lo is None or hi is None:
        return f"bin {b + 1}"
    return f"bin {b + 1} (LID {lo:.1f}–{hi:.1f})"


# --- LID distribution -------------------------------------------------------------------------------


def _lid_sets(extras: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], str]:
    """LID distributions of base and queries: `extras["lid"]`, else those of the first space measured."""
    lid = extras.get("lid")
    if isinstance(lid, Mapping):
        sets = {str(name): v for name, v in lid.items() if isinstance(v, Mapping)}
        if sets:
            return sets, ""
    space = extras.get("space")
    if isinstance(space, Mapping):
        for label, entry in space.items():
            if isinstance(entry, Mapping):
                sets = {
                    name: entry[key]
                    for name, key in (("base", "lid_base"), ("queries", "lid_queries"))
                    if isinstance(entry.get(key), Mapping)
                }
                if sets:
                    return sets, str(label)
    return {}, ""


def _space_columns(stats: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(key, header) for every number or distribution (shown by its median) the spaces report."""
    preferred = ["dims", "n", "isoscore", "lid_median", "lid_global", "lid_base", "lid_queries", "relative_contrast_median",
                 "relative_contrast"]  # fmt: skip
    found: dict[str, str] = {}
    for entry in stats:
        for key, value in entry.items():
            if _num(value) is not None:
                found.setdefault(key, key.replace("_", " "))
            elif isinstance(value, Mapping) and _num(value.get("median")) is not None:
                found.setdefault(key, f"{key.replace('_', ' ')} (median)")
    order = [k for k in preferred if k in found] + sorted(k for k in found if k not in preferred)
    return [(k, found[k]) for k in order]


def _space_value(key: str, value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("median")
    x = _num(value)
    if key in ("dims", "n"):
        return _count(x)
    return _f2(x) if "lid" in key else _f3(x)


def _lid_section(res: _Results, extras: Mapping[str, Any], highlights: list[str]) -> _Section | None:
    space = extras.get("space")
    blocks: list[Block] = []
    stats_keys = ("median", "mean", "p10", "p90", "n")
    sets, where = _lid_sets(extras)
    if sets:
        blocks.append(
            _Para(
                f"Pointwise local intrinsic dimensionality (maximum-likelihood estimate from the "
                f"{res.spec.lid.k} nearest neighbours) of the base vectors and the queries"
                + (f", in space {where}." if where else ".")
            )
        )
        present = [k for k in stats_keys if any(_num(s.get(k)) is not None for s in sets.values())]
        table = _Table(["points"] + present, [])
        for name, s in sets.items():
            table.rows.append(
                [name] + [_count(_num(s.get(k))) if k == "n" else _f2(_num(s.get(k))) for k in present]
            )
        blocks.append(table)
        medians = [
            f"{name} {_f2(_num(s.get('median')))}" for name, s in sets.items() if _num(s.get("median"))
        ]
        if medians:
            highlights.append("Median pointwise LID: " + ", ".join(medians) + ".")
        for name, s in sets.items():
            hist = _histogram(s)
            if hist is not None:
                blocks.append(_Pre(f"LID histogram, {name}\n" + _text_histogram(*hist), only="md"))
        figure = _lid_figure(sets)
        if figure is not None:
            blocks.append(figure)
    stats = (
        {str(k): v for k, v in space.items() if isinstance(v, Mapping)} if isinstance(space, Mapping) else {}
    )
    columns = _space_columns(list(stats.values()))
    if stats and columns:
        table = _Table(["space"] + [header for _, header in columns], [])
        for name, entry in stats.items():
            table.rows.append([name] + [_space_value(key, entry.get(key)) for key, _ in columns])
        blocks += [
            _Heading("How each space is used"),
            _Para(
                "IsoScore: how uniformly the space's dimensions are used (1 = isotropic). Relative contrast: "
                "mean distance over nearest-neighbour distance per query (near 1 means hard queries). LID "
                "medians per space."
            ),
            table,
        ]
    if not blocks:
        return None
    return _Section("lid", "Intrinsic dimensionality", blocks)


def _f2(x: float | None) -> str:
    return MISSING if x is None else f"{x:.2f}"


def _histogram(stats: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
    hist = stats.get("histogram")
    if not isinstance(hist, Mapping):
        return None
    edges = [_num(e) for e in hist.get("edges") or []]
    counts = [_num(c) for c in hist.get("counts") or []]
    if not counts or len(edges) != len(counts) + 1 or any(v is None for v in edges + counts):
        return None
    return [float(e) for e in edges if e is not None], [float(c) for c in counts if c is not None]


def _text_histogram(edges: list[float], counts: list[float], width: int = 40) -> str:
    """A bar chart in characters, for readers of the markdown."""
    while len(counts) > 24:  # merge neighbours until it fits a screen
        counts = [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)]
        edges = edges[::2] if (len(edges) - 1) % 2 == 0 else edges[::2] + [edges[-1]]
    top = max(counts) or 1.0
    lines = []
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        bar = "█" * int(round(c / top * width))
        lines.append(f"{lo:8.2f} – {hi:8.2f} │{bar} {c:,.0f}")
    return "\n".join(lines)


# --- reductions -------------------------------------------------------------------------------------


def _reduction_section(res: _Results) -> _Section | None:
    if len(res.distinct("reduction")) < 2:
        return None
    keys = [k for k in res.section_keys if k != "reduction"]
    blocks: list[Block] = [
        _Para(
            f"Mean recall@{res.k} against exact kNN in the original space for each reduction; in "
            "parentheses, against exact kNN in the reduced space itself (what an index on the reduced "
            "vectors can at best find). Averaged over orderings and seeds; HNSW at its largest ef."
        )
    ]
    for label, srows in res.sections(
        rows=[r for r in res.rows if _num(r.get("recall")) is not None], keys=keys
    ):
        cols = res.picked_columns(srows, highest=True)
        if keys:
            blocks.append(_Heading(label))
        table = _Table(["reduction", "dims"] + [res.col_label(c) for c in cols], [], left=1)
        for _, rrows in res.group(srows, ["reduction"]):
            line = [str(rrows[0].get("reduction")), _count(_mean(r.get("dims") for r in rrows))]
            for col in cols:
                crows = _with_col(res, rrows, col)
                recall = _mean(r.get("recall") for r in crows)
                within = _mean(r.get("recall_within") for r in crows)
                line.append(_f3(recall) + (f" ({within:.3f})" if within is not None else ""))
            table.rows.append(line)
        blocks.append(table)
    figure = _dims_figure(res, keys)
    if figure is not None:
        blocks.append(figure)
    return _Section("reductions", "Dimensionality reduction", blocks)


# --- speed and size ---------------------------------------------------------------------------------


def _speed_section(res: _Results) -> _Section | None:
    if not any(_num(r.get(k)) is not None for r in res.rows for k in ("build_seconds", "qps", "index_bytes")):
        return None
    multi = len(res.section_keys) > 0
    sections = res.sections()
    build = _Table(
        (["results"] if multi else [])
        + ["backend", "build s", "build s (min–max)", "index MB", "bytes/vector"],
        [],
    )
    for label, srows in sections:
        for config in res.configs(srows):
            crows = [r for r in srows if res.config_of(r) == config]
            builds = [b for b in (_num(r.get("build_seconds")) for r in crows) if b is not None]
            span = f"{min(builds):.2f}–{max(builds):.2f}" if builds else MISSING
            if builds and f"{min(builds):.2f}" == f"{max(builds):.2f}":
                span = MISSING
            build.rows.append(
                ([label] if multi else [])
                + [
                    res.config_label(config),
                    _secs(_mean(builds)),
                    span,
                    _megabytes(_mean(r.get("index_bytes") for r in crows)),
                    _count(_mean(r.get("bytes_per_vector") for r in crows)),
                ]
            )
    span_col = len(build.headers) - 4
    if all(line[span_col] == MISSING for line in build.rows):
        build.headers.pop(span_col)
        for line in build.rows:
            line.pop(span_col)
    blocks: list[Block] = [
        _Para(
            "Build seconds and sizes averaged over orderings and seeds (the range shows how much the "
            "ordering and seed changed the build time); queries per second averaged the same way."
        ),
        build,
    ]
    cols = res.columns(res.rows)
    if any(_num(r.get("qps")) is not None for r in res.rows):
        groups, subs = res.column_groups(cols)
        qps = _Table(
            ["results"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs,
            caption="Queries per second",
        )  # fmt: skip
        for label, srows in sections:
            qps.rows.append(
                [label] + [_compact(_mean(r.get("qps") for r in _with_col(res, srows, c))) for c in cols]
            )
        blocks.append(qps)
    return _Section("speed", "Build time, size and speed", blocks)


# --- IR metrics -------------------------------------------------------------------------------------


def _ir_section(res: _Results) -> _Section | None:
    rows = [r for r in res.rows if any(_num(r.get(m)) is not None for m in IR_METRICS)]
    if not rows:
        return None
    note = ""
    if len(res.distinct("index_size", rows)) > 1:
        biggest = max((_num(r.get("index_size")) or 0.0 for r in rows), default=0.0)
        rows = [r for r in rows if (_num(r.get("index_size")) or 0.0) == biggest]
        note = f" At the largest index size ({biggest:,.0f}); the section on index size shows the rest."
    metrics = [m for m in IR_METRICS if any(_num(r.get(m)) is not None for r in rows)]
    keys = [k for k in res.section_keys if k != "index_size"]
    by_ordering = len(res.distinct("ordering", rows)) > 1
    id_headers = (
        [k.replace("_", " ") for k in keys] + ["backend / ef"] + (["ordering"] if by_ordering else [])
    )
    table = _Table(id_headers + [f"recall@{res.k}"] + metrics, [], left=len(id_headers))
    group_keys = keys + (["ordering"] if by_ordering else [])
    for values, grows in res.group(rows, group_keys):
        for col in res.columns(grows):
            crows = _with_col(res, grows, col)
            ident = [str(v) if v is not None else MISSING for v in values]
            if by_ordering:
                ident = ident[:-1] + [res.col_label(col), ident[-1]]
            else:
                ident = ident + [res.col_label(col)]
            table.rows.append(ident + [_f3(_mean(r.get(m) for r in crows)) for m in ["recall", *metrics]])
    return _Section(
        "ir",
        "Retrieval quality",
        [
            _Para(
                "Retrieval quality against the relevance judgements (qrels), next to recall against "
                "exact kNN; means over seeds." + note
            ),
            table,
        ],
    )


# --- model ranking --------------------------------------------------------------------------------


def _model_ranking_section(
    res: _Results, extras: Mapping[str, Any], highlights: list[str], limit: int = 30
) -> _Section | None:
    """How the ranking of embedding models changes when exact search is swapped for HNSW."""
    entries = [
        e for e in extras.get("model_ranking") or []
        if isinstance(e, Mapping) and isinstance(e.get("ranking"), list) and e.get("backend") != "exact"
    ]  # fmt: skip
    if not entries:
        return None
    measure = next(
        (k for e in entries for m in e["ranking"] if isinstance(m, Mapping) for k in m if "@" in k), "ndcg@10"
    )
    varying = [
        k
        for k in ("index_size", "reduction", "ordering", "seed")
        if len({_hashable(e.get(k)) for e in entries}) > 1
    ]
    table = _Table(
        ["backend / ef"]
        + [k.replace("_", " ") for k in varying]
        + [f"models by {measure} (change vs exact)", "max change"],
        [],
    )
    entries.sort(key=lambda e: -(_num(e.get("max_change")) or 0.0))
    for e in entries[:limit]:
        col = (e.get("backend"), e.get("M"), e.get("ef_construction"), e.get("ef"))
        ranked = []
        for m in e["ranking"]:
            if not isinstance(m, Mapping):
                continue
            change = _num(m.get("change")) or 0.0
            arrow = "=" if change == 0 else (f"↑{change:.0f}" if change > 0 else f"↓{-change:.0f}")
            ranked.append(f"{m.get('model')} {_f3(_num(m.get(measure)))} ({arrow})")
        table.rows.append(
            [res.col_label(col)]
            + [str(e.get(k)) for k in varying]
            + ["; ".join(ranked), _count(_num(e.get("max_change")))]
        )
    top = entries[0]
    worst = _num(top.get("max_change")) or 0.0
    col = (top.get("backend"), top.get("M"), top.get("ef_construction"), top.get("ef"))
    if worst > 0:
        highlights.append(
            f"Swapping exact search for {res.col_label(col)} moved an embedding model by up to {worst:.0f} "
            f"place{'s' if worst != 1 else ''} in the {measure} ranking."
        )
    else:
        highlights.append(
            f"The {measure} ranking of the models is the same under exact and approximate search."
        )
    note = f" The {limit} settings with the largest changes are shown." if len(entries) > limit else ""
    return _Section(
        "models",
        "Model ranking: exact vs approximate",
        [
            _Para(
                f"Models ranked by {measure} under each approximate-search setting; in parentheses, how many "
                "places each moved against its rank under exact search (↑ better, ↓ worse)." + note
            ),
            table,
        ],
    )


# --- index size -------------------------------------------------------------------------------------


Curve = tuple[str, str, dict[float, float]]  # label, representation, size -> quality


def _size_curves(res: _Results) -> tuple[str, list[Curve]]:
    """Quality vs index size per (model, reduction, representation, backend, ef), over orderings and seeds."""
    rows = [r for r in res.rows if _num(r.get("index_size")) is not None]
    quality = "ndcg@10" if any(_num(r.get("ndcg@10")) is not None for r in rows) else "recall"
    keys = [k for k in ("model", "reduction") if k in res.section_keys]
    curves: list[Curve] = []
    for values, grows in res.group(rows, keys + ["representation"]):
        rep = str(values[-1])
        for col in res.columns(grows):
            crows = _with_col(res, grows, col)
            points: dict[float, float] = {}
            for size, srows in res.group(crows, ["index_size"]):
                q = _mean(r.get(quality) for r in srows)
                if q is not None:
                    points[float(size[0])] = q
            if points:
                # a sparse curve has no model or reduction: name it by what it is
                parts = [] if rep == "sparse" else [str(v) for v in values[:-1] if v is not None]
                label = " · ".join(parts + [rep, res.col_label(col)])
                curves.append((label, rep, points))
    return quality, curves


def _index_size_section(res: _Results, highlights: list[str]) -> _Section | None:
    if len(res.distinct("index_size")) < 2:
        return None
    quality, curves = _size_curves(res)
    if not curves:
        return None
    sizes = sorted({s for _, _, pts in curves for s in pts})
    table = _Table(["index size"] + [label for label, _, _ in curves], [])
    for s in sizes:
        line = [f"{s:,.0f}"]
        values = {i: pts.get(s) for i, (_, _, pts) in enumerate(curves)}
        present = {i: v for i, v in values.items() if v is not None}
        for i in range(len(curves)):
            line.append(_f3(values[i]))
        if len(present) > 1:
            table.strong.add((len(table.rows), 1 + max(present, key=lambda i: present[i])))
        table.rows.append(line)
    statements = _crossings(curves)
    blocks: list[Block] = [
        _Para(
            f"{quality} as the index grows, per representation (means over orderings and seeds); "
            "the best curve at each size in bold. Dense retrieval is expected to lose ground as "
            "distractors accumulate: where a sparse curve overtakes a dense one, the curves cross."
        ),
        table,
    ]
    if statements:
        blocks.append(_Bullets(statements))
        crossing = [s for s in statements if "cross" in s and not s.startswith("No crossing")]
        if crossing:
            highlights.append("Index size: " + crossing[0])
    figure = _size_figure(res, quality, curves)
    if figure is not None:
        blocks.append(figure)
    return _Section("index-size", "Quality vs index size", blocks)


def _crossings(curves: Sequence[Curve], limit: int = 12) -> list[str]:
    """Say, for each sparse curve against each dense or hybrid one, whether and where they cross.

    Crossings come first: they are the finding (Reimers & Gurevych); the rest say who stays ahead.
    """
    out: list[str] = []
    pairs = [(a, b) for a, b in itertools.combinations(curves, 2) if a[1] != b[1] and "sparse" in (a[1], b[1])]
    for (la, _, pa), (lb, _, pb) in pairs:
        sizes = sorted(set(pa) & set(pb))
        if len(sizes) < 2:
            continue
        diffs = [pa[s] - pb[s] for s in sizes]
        signs = [0 if abs(d) < 5e-4 else (1 if d > 0 else -1) for d in diffs]
        events = []
        last_i, last_sign = None, 0
        for i, sgn in enumerate(signs):
            if sgn == 0:
                continue
            if last_sign and sgn != last_sign and last_i is not None:
                events.append((last_i, i))
            last_i, last_sign = i, sgn
        if not events:
            nonzero = [s for s in signs if s]
            if not nonzero:
                out.append(f"{la} and {lb} are level at every size.")
                continue
            lead, other = (la, lb) if nonzero[0] > 0 else (lb, la)
            out.append(
                f"No crossing: {lead} stays ahead of {other} at every size (margin "
                f"{abs(diffs[0]) * 100:.1f} points at {sizes[0]:,.0f}, {abs(diffs[-1]) * 100:.1f} at "
                f"{sizes[-1]:,.0f})."
            )
            continue
        for i, j in events:
            s0, s1 = sizes[i], sizes[j]
            d0, d1 = diffs[i], diffs[j]
            t = d0 / (d0 - d1)
            if s0 > 0 and s1 > 0:  # interpolate on a log axis: sizes grow geometrically
                at = math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
            else:
                at = s0 + t * (s1 - s0)
            ahead, behind = (la, lb) if d0 > 0 else (lb, la)
            out.append(
                f"{behind} overtakes {ahead} between {s0:,.0f} and {s1:,.0f} documents; the curves "
                f"cross near {at:,.0f} ({la}: {pa[s0]:.3f} → {pa[s1]:.3f}; {lb}: {pb[s0]:.3f} → "
                f"{pb[s1]:.3f})."
            )
    out.sort(key=lambda line: line.startswith(("No crossing", "…")) or " are level " in line)
    if len(out) > limit:
        out = out[:limit] + [f"… and {len(out) - limit} more pairs (see the table)."]
    return out


# --- notes ------------------------------------------------------------------------------------------


def _notes_section(extras: Mapping[str, Any]) -> _Section | None:
    blocks: list[Block] = []
    notes = extras.get("notes")
    if isinstance(notes, list) and notes:
        blocks.append(_Bullets([str(n) for n in notes]))
    gt = extras.get("groundtruth")
    if isinstance(gt, Mapping) and gt:
        table = _Table(["ground truth", "value"], [])
        for key, value in gt.items():
            shown = _csv_cell(_plain(value)) if not isinstance(value, float) else f"{value:.4g}"
            table.rows.append([str(key), shown])
        blocks += [_Heading("Ground truth"), table]
    return _Section("notes", "Notes", blocks) if blocks else None


# ---------------------------------------------------------------------------------------------------
# Markdown and HTML writers


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_NUMERIC_CELL = re.compile(r"^[-+−]?\d")


def _numeric_columns(table: _Table) -> set[int]:
    """Columns whose every filled cell starts with a number: right-aligned."""
    out = set()
    for j in range(len(table.headers)):
        cells = [line[j] for line in table.rows if j < len(line) and line[j] != MISSING]
        if cells and all(_NUMERIC_CELL.match(c) for c in cells):
            out.add(j)
    return out


def _md_block(block: Block) -> list[str]:
    if isinstance(block, _Group):
        return [line for b in block.blocks for line in _md_block(b)]
    if isinstance(block, _Figure) or getattr(block, "only", None) == "html":
        return []
    if isinstance(block, _Para):
        return [block.text, ""]
    if isinstance(block, _Heading):
        return [f"### {block.text}", ""]
    if isinstance(block, _Bullets):
        return [f"- {item}" for item in block.items] + [""]
    if isinstance(block, _Pre):
        return ["```", block.text, "```", ""]
    out = [f"*{block.caption}*", ""] if block.caption else []
    out.append("| " + " | ".join(_md_escape(h) for h in block.headers) + " |")
    numeric = _numeric_columns(block)
    out.append("|" + "|".join("---:" if i in numeric else ":---" for i in range(len(block.headers))) + "|")
    for i, line in enumerate(block.rows):
        cells = [
            f"**{_md_escape(c)}**" if (i, j) in block.strong else _md_escape(c) for j, c in enumerate(line)
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _html_block(block: Block, figure_count: Iterator[int]) -> str:
    esc = html.escape
    if getattr(block, "only", None) == "md":
        return ""
    if isinstance(block, _Para):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, _Heading):
        return f"<h3>{esc(block.text)}</h3>"
    if isinstance(block, _Bullets):
        return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, _Pre):
        return f"<pre>{esc(block.text)}</pre>"
    if isinstance(block, _Figure):
        number = next(figure_count)
        return _html_figure(block, number)
    if isinstance(block, _Group):
        inner = "".join(_html_block(b, figure_count) for b in block.blocks)
        if block.summary is None:
            return inner
        return f"<details><summary>{esc(block.summary)}</summary>{inner}</details>"
    parts = ['<div class="table-wrap"><table>']
    if block.caption:
        parts.append(f"<caption>{esc(block.caption)}</caption>")
    numeric = _numeric_columns(block)
    parts.append(_html_thead(block, numeric))
    parts.append("<tbody>")
    for i, line in enumerate(block.rows):
        cells = []
        for j, c in enumerate(line):
            text = f"<strong>{esc(c)}</strong>" if (i, j) in block.strong else esc(c)
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _html_thead(block: _Table, numeric: set[int]) -> str:
    esc = html.escape
    if not block.groups or not block.sub_headers:
        cells = [
            f'<th class="num">{esc(h)}</th>' if j in numeric else f"<th>{esc(h)}</th>"
            for j, h in enumerate(block.headers)
        ]
        return "<thead><tr>" + "".join(cells) + "</tr></thead>"
    top = [f'<th rowspan="2">{esc(h)}</th>' for h in block.headers[: block.left]]
    bottom = []
    col = 0
    for label, span in block.groups:
        subs = block.sub_headers[col : col + span]
        if span == 1 and not subs[0]:
            top.append(f'<th rowspan="2" class="num">{esc(label)}</th>')
        else:
            top.append(f'<th colspan="{span}" class="group">{esc(label)}</th>')
            bottom += [f'<th class="num">{esc(h)}</th>' for h in subs]
        col += span
    return f"<thead><tr>{''.join(top)}</tr><tr>{''.join(bottom)}</tr></thead>"


def _html_figure(block: _Figure, number: int) -> str:
    caption = f"<figcaption>Figure {number}. {html.escape(block.caption)}</figcaption>"
    try:
        svg = _render_svg(block.draw, prefix=f"f{number}-")
    except Exception as err:  # a plot must not cost the report its tables
        log.exception("figure %d failed", number)
        return f'<p class="warn">Figure {number} could not be drawn: {html.escape(repr(err))}</p>'
    return f"<figure>{svg}{caption}</figure>"


_CSS = """
:root{--fg:#1c2330;--muted:#5a6477;--line:#dde2ea;--accent:#2456a4;--head:#eef1f6;--stripe:#f7f9fc}
*{box-sizing:border-box}
body{margin:0;background:#eef1f5;color:var(--fg);
 font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:28px 40px 72px;background:#fff;min-height:100vh}
h1{font-size:1.75rem;margin:0 0 .2em;line-height:1.25;overflow-wrap:anywhere}
h2{font-size:1.28rem;margin:2.2em 0 .6em;padding-bottom:.25em;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:1.5em 0 .3em;color:var(--muted);font-weight:600}
p{margin:.5em 0;max-width:80ch}
.meta{color:var(--muted);margin:0}
code{font-size:.9em;background:var(--stripe);padding:.05em .3em;border-radius:3px}
nav ol{display:flex;flex-wrap:wrap;gap:.2em 1.3em;padding:.6em 0;margin:1em 0 0;list-style:none;
 border-top:1px solid var(--line);border-bottom:1px solid var(--line);font-size:.92rem}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
ul{padding-left:1.3em;max-width:90ch}
li{margin:.2em 0}
.table-wrap{overflow-x:auto;margin:.5em 0 1.2em}
table{border-collapse:collapse;font-size:.87rem;font-variant-numeric:tabular-nums}
th,td{padding:.32em .75em;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
th.group{text-align:center;border-bottom:1px solid #c5ccd8}
th.num{text-align:right}
td.num,td:first-child{white-space:nowrap}
details{margin:.6em 0 1.2em}
details>summary{font-size:.92rem}
tbody tr:nth-child(even){background:var(--stripe)}
td.num{text-align:right;white-space:nowrap}
td strong{color:#0d5c24}
caption{caption-side:top;text-align:left;color:var(--muted);font-size:.85rem;padding-bottom:.3em}
figure{margin:1.2em 0 1.8em}
figure svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.86rem;margin-top:.4em;max-width:95ch}
pre{background:var(--stripe);border:1px solid var(--line);padding:.8em;overflow-x:auto;font-size:.8rem;
 line-height:1.3}
details summary{cursor:pointer;color:var(--accent)}
.warn{color:#a12a2a}
"""


# ---------------------------------------------------------------------------------------------------
# Figures (matplotlib, imported lazily: markdown and CSV never pay for it)


_RC: dict[str, Any] = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5.0,
    "svg.fonttype": "none",  # text stays text: smaller and searchable
    "svg.hashsalt": "indexer-report",  # deterministic ids
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
}


def _render_svg(draw: Callable[[], Figure], prefix: str) -> str:
    """Draw, serialise as SVG, strip the XML prolog and metadata, and make its ids unique in the page."""
    import matplotlib

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = draw()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    if ids:
        pattern = re.compile(
            r'(id="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r')(?=["\)])'
        )
        text = pattern.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
    return text


T = TypeVar("T")
MAX_PANELS = 12  # beyond this a figure is slow to draw and too small to read; the tables hold all numbers


def _cap(panels: list[T], limit: int) -> tuple[list[T], str]:
    """Keep the first `limit` panels and say so in the caption."""
    if len(panels) <= limit:
        return panels, ""
    return panels[:limit], f" Showing the first {limit} of {len(panels)} panels; the tables hold all results."


def _grid(
    n: int, *, ncols_max: int = 3, panel_w: float = 3.9, panel_h: float = 2.9, sharey: bool = True
) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols_max, n))
    nrows = math.ceil(n / ncols)
    if ncols == 1:
        panel_w *= 1.6
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + 0.45), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _legend(fig: Figure, axes: Sequence[Axes], title: str | None = None) -> None:
    """One legend for the whole figure, above the panels, without repeated entries."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                handles.setdefault(label, h)
    if handles:
        # As many columns as fit the figure's width (about 0.075 in per character at 9 pt).
        entry = 0.6 + 0.075 * max(len(label) for label in handles)
        ncols = max(1, min(len(handles), 7, int(fig.get_figwidth() // entry)))
        fig.legend(
            list(handles.values()), list(handles), loc="outside upper center",
            ncols=ncols, frameon=False, title=title,
        )  # fmt: skip


def _ordering_style(res: _Results, ordering: str) -> tuple[str, str]:
    if ordering in ORDERING_STYLE:
        return ORDERING_STYLE[ordering]
    i = res.orderings.index(ordering) if ordering in res.orderings else 0
    return PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]


def _fit_y(ax: Axes, values: Sequence[float], min_span: float = 0.05) -> None:
    """Fit the y range to the lines, not to the confidence bands (which may span the whole axis);
    never narrower than `min_span`, so noise of a few queries does not look like an effect."""
    if not values:
        return
    lo, hi = min(values), max(values)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = 0.08 * (hi - lo)
    ax.set_ylim(max(-0.005, lo - pad), min(1.005, hi + pad) if hi <= 1.0 else hi + pad)


def _ef_axis(ax: Axes, efs: Sequence[float]) -> None:
    """A log axis when ef spans a wide range; ticks exactly at the measured ef values."""
    efs = sorted(set(efs))
    if not efs:
        return
    if min(efs) > 0 and max(efs) / min(efs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(efs, [f"{e:g}" for e in efs])
    ax.minorticks_off()
    ax.set_xlabel("ef (search)")


Series = tuple[str, str, str, list[Row]]  # label, colour, marker, rows


def _recall_vs_ef_figure(res: _Results) -> _Figure | None:
    """Lines per ordering in a panel per (result group, backend); with one ordering, lines per group."""
    by_group = len(res.orderings) == 1 and len(res.sections()) > 1
    panels: list[tuple[str, list[Series], list[Row]]] = []
    if by_group:
        graph = [r for r in res.rows if _num(r.get("ef")) is not None and _num(r.get("recall")) is not None]
        for config in res.configs(graph):
            crows = [r for r in graph if res.config_of(r) == config]
            series = [
                (label, PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], rows)
                for i, (label, rows) in enumerate(res.sections(crows))
            ]
            panels.append((res.config_label(config), series, []))
    else:
        for label, srows in res.sections():
            graph = [r for r in srows if _num(r.get("ef")) is not None and _num(r.get("recall")) is not None]
            flat = [r for r in srows if _num(r.get("ef")) is None]
            for config in res.configs(graph):
                grows = [r for r in graph if res.config_of(r) == config]
                series = [
                    (str(o), *_ordering_style(res, o), _by(grows, "ordering", o)) for o in res.orderings
                ]
                title = res.config_label(config) + (f"\n{label}" if res.section_keys else "")
                panels.append((title, series, flat))
    if not panels:
        return None
    panels, capped = _cap(panels, MAX_PANELS)

    def draw() -> Figure:
        fig, axes = _grid(len(panels), sharey=False)
        ncols = min(3, len(panels))
        for idx, (ax, (title, series, flat)) in enumerate(zip(axes, panels, strict=True)):
            efs: list[float] = []
            shown: list[float] = []
            for label, color, marker, rows in series:
                xs, ys, lo, hi = [], [], [], []
                for ef, erows in res.group(rows, ["ef"]):
                    m = _mean(r.get("recall") for r in erows)
                    if m is None:
                        continue
                    xs.append(float(ef[0]))
                    ys.append(m)
                    ci = _ci(erows)
                    lo.append(ci[0] if ci else m)
                    hi.append(ci[1] if ci else m)
                if not xs:
                    continue
                efs += xs
                shown += ys
                ax.plot(xs, ys, color=color, marker=marker, label=label)
                if len(xs) > 1:
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.07, linewidth=0)
            for ref in res.configs(flat):
                rrows = [r for r in flat if res.config_of(r) == ref]
                m = _mean(r.get("recall") for r in rrows)
                if m is None or _trivially_exact(rrows):
                    continue
                shown.append(m)
                ax.axhline(m, color="0.45", linestyle="--", linewidth=1.0)
                ax.annotate(
                    f"{res.config_label(ref)} {m:.3f}", xy=(0.99, m), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="0.3",
                )  # fmt: skip
            _ef_axis(ax, efs)
            _fit_y(ax, shown)
            ax.set_title(title)
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        _legend(fig, axes, title=None if by_group else "insertion ordering")
        return fig

    if by_group:
        what = f"one line per result group ({res.orderings[0]} ordering); one panel per backend"
    else:
        what = "one line per insertion ordering; one panel per backend" + (
            " and result group" if res.section_keys else ""
        )
    return _Figure(
        f"Recall@{res.k} against exact kNN as ef grows, {what}. Shaded: mean 95% confidence interval over "
        "queries. Dashed lines: backends without ef (e.g. exact search in a reduced space)." + capped,
        draw,
    )


def _lid_bin_figure(res: _Results, panels: list[tuple[str, ColKey, list[Row]]]) -> _Figure | None:
    panels, capped = _cap(panels, MAX_PANELS // 2)

    def draw() -> Figure:
        fig, axes = _grid(len(panels), sharey=False)
        ncols = min(3, len(panels))
        for idx, (ax, (label, col, crows)) in enumerate(zip(axes, panels, strict=True)):
            bins_all = _lid_bins(crows)
            xs = list(range(len(bins_all)))
            for ordering in res.orderings:
                bins = _lid_bins(_by(crows, "ordering", ordering))
                ys = [bins.get(b, {}).get("recall") for b in bins_all]
                if all(y is None for y in ys):
                    continue
                color, marker = _ordering_style(res, ordering)
                ax.plot(xs, [np.nan if y is None else y for y in ys], color=color, marker=marker,
                        label=str(ordering))  # fmt: skip
            ticks = []
            for b, info in bins_all.items():
                lo, hi = info.get("lo"), info.get("hi")
                ticks.append(f"{lo:.1f}–{hi:.1f}" if lo is not None and hi is not None else f"bin {b + 1}")
            ax.set_xticks(xs, ticks, rotation=20 if len(xs) > 4 else 0)
            ax.set_xlabel("query LID (bin range)")
            ax.set_title(res.col_label(col) + (f"\n{label}" if res.section_keys else ""))
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        _legend(fig, axes, title="insertion ordering")
        return fig

    return _Figure(
        "Recall by query-LID bin (low to high LID, quantile bins), one line per insertion ordering, at "
        "each backend's smallest ef. High-LID queries are usually the hard ones." + capped,
        draw,
    )


def _category_figure(res: _Results, max_categories: int = 40) -> _Figure | None:
    panels = []
    for label, srows in res.sections():
        for col in res.picked_columns(srows, highest=False):
            crows = _with_col(res, srows, col)
            if col[3] is not None and _category_recalls(crows):
                panels.append((label, col, crows))
    if not panels:
        return None
    panels, capped = _cap(panels, MAX_PANELS // 2)
    # One category order for every panel (worst on top), so panels read side by side.
    overall = _category_recalls(itertools.chain.from_iterable(p[2] for p in panels))
    names = sorted(overall, key=lambda n: overall[n][0])
    dropped = 0
    if len(names) > max_categories:
        spread = {}
        for n in names:
            vals = [
                c[n][0]
                for _, _, crows in panels
                for o in res.orderings
                if n in (c := _category_recalls(_by(crows, "ordering", o)))
            ]
            spread[n] = max(vals) - min(vals) if vals else 0.0
        keep = set(sorted(names, key=lambda n: -spread[n])[:max_categories])
        dropped = len(names) - len(keep)
        names = [n for n in names if n in keep]

    def draw() -> Figure:
        ncols = 2 if len(panels) > 1 else 1
        fig, axes = _grid(len(panels), ncols_max=ncols, panel_w=4.6, panel_h=0.8 + 0.24 * len(names))
        ys = list(range(len(names)))
        for ax, (label, col, crows) in zip(axes, panels, strict=True):
            per_ordering = {o: _category_recalls(_by(crows, "ordering", o)) for o in res.orderings}
            for y, name in zip(ys, names, strict=True):
                vals = [c[name][0] for c in per_ordering.values() if name in c]
                if len(vals) > 1:
                    ax.plot([min(vals), max(vals)], [y, y], color="0.75", linewidth=3, solid_capstyle="round",
                            zorder=1)  # fmt: skip
            for ordering, cats in per_ordering.items():
                pts = [(cats[n][0], y) for y, n in zip(ys, names, strict=True) if n in cats]
                if not pts:
                    continue
                color, marker = _ordering_style(res, ordering)
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, s=26,
                           label=str(ordering), zorder=2)  # fmt: skip
            ax.set_yticks(ys, [_shorten(n) for n in names])
            ax.set_ylim(len(names) - 0.5, -0.5)
            ax.set_xlabel(f"recall@{res.k}")
            ax.grid(axis="y", alpha=0.15)
            ax.set_title(res.col_label(col) + (f"\n{label}" if res.section_keys else ""))
        _legend(fig, axes, title="insertion ordering")
        return fig

    note = f" The {dropped} categories whose recall varies least are left out." if dropped else ""
    return _Figure(
        "Recall by category, one marker per insertion ordering (grey bar: the spread between the best and "
        "worst ordering), at each backend's smallest ef; weakest categories on top." + note + capped,
        draw,
    )


def _shorten(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _lid_figure(sets: Mapping[str, Mapping[str, Any]]) -> _Figure | None:
    hists = {name: h for name, s in sets.items() if (h := _histogram(s)) is not None}
    if not hists:
        return None

    def draw() -> Figure:
        fig, (ax,) = _grid(1, panel_h=2.8)
        for i, (name, (edges, counts)) in enumerate(hists.items()):
            total = sum(counts) or 1.0
            widths = np.diff(edges)
            density = [c / total / w if w > 0 else 0.0 for c, w in zip(counts, widths, strict=True)]
            color = PALETTE[i % len(PALETTE)]
            ax.stairs(density, edges, color=color, linewidth=1.8, label=name)
            ax.stairs(density, edges, color=color, alpha=0.12, fill=True)
            median = _num(sets[name].get("median"))
            if median is not None:
                ax.axvline(median, color=color, linestyle=":", linewidth=1.2)
        ax.set_xlabel("pointwise LID (MLE)")
        ax.set_ylabel("density")
        _legend(fig, [ax])
        return fig

    return _Figure("Distribution of pointwise LID (dotted: medians).", draw)


def _dims_figure(res: _Results, keys: Sequence[str]) -> _Figure | None:
    panels = []
    for label, srows in res.sections(
        rows=[r for r in res.rows if _num(r.get("recall")) is not None], keys=keys
    ):
        for col in res.picked_columns(srows, highest=True):
            crows = _with_col(res, srows, col)
            if any(_num(r.get("dims")) is not None for r in crows):
                panels.append((label, col, crows))
    if not panels:
        return None
    panels, capped = _cap(panels, MAX_PANELS)
    families = list(dict.fromkeys(_family(r) for r in res.ordered("reduction", res.distinct("reduction"))))
    families = [f for f in families if f != "none"]

    def draw() -> Figure:
        fig, axes = _grid(len(panels))
        ncols = min(3, len(panels))
        within_drawn = False
        for idx, (ax, (label, col, crows)) in enumerate(zip(axes, panels, strict=True)):
            all_dims: list[float] = []
            for i, fam in enumerate(families):
                frows = [r for r in crows if _family(r.get("reduction")) == fam]
                pts = []
                for dims, drows in res.group(frows, ["dims"]):
                    d = _num(dims[0])
                    if d is None:
                        continue
                    pts.append(
                        (
                            d,
                            _mean(r.get("recall") for r in drows),
                            _mean(r.get("recall_within") for r in drows),
                        )
                    )
                pts.sort()
                if not pts:
                    continue
                color, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
                xs = [p[0] for p in pts]
                all_dims += xs
                ax.plot(xs, [np.nan if p[1] is None else p[1] for p in pts], color=color, marker=marker,
                        label=fam)  # fmt: skip
                if any(p[2] is not None for p in pts):
                    within_drawn = True
                    ax.plot(xs, [np.nan if p[2] is None else p[2] for p in pts], color=color, linestyle=":",
                            linewidth=1.1, alpha=0.8)  # fmt: skip
            base = _mean(r.get("recall") for r in crows if r.get("reduction") == "none")
            if base is not None:
                ax.axhline(base, color="0.4", linestyle="--", linewidth=1.0, label="no reduction")
            if all_dims:
                _dims_axis(ax, all_dims)
            ax.set_title(res.col_label(col) + (f"\n{label}" if keys else ""))
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        if within_drawn:  # a legend entry for the dotted lines, which carry no label of their own
            axes[0].plot([], [], color="0.35", linestyle=":", label="vs the reduced space's exact kNN")
        _legend(fig, axes, title="reduction")
        return fig

    return _Figure(
        f"Recall@{res.k} against exact kNN in the original space as the reduced dimension grows, one line "
        "per reduction (solid); dotted: against the reduced space's own exact kNN; dashed: no reduction. "
        "Averaged over orderings and seeds, HNSW at its largest ef." + capped,
        draw,
    )


def _dims_axis(ax: Axes, dims: Sequence[float]) -> None:
    ds = sorted(set(dims))
    if min(ds) > 0 and max(ds) / min(ds) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ds, [f"{d:g}" for d in ds])
    ax.minorticks_off()
    ax.set_xlabel("dimensions kept")


def _size_figure(res: _Results, quality: str, curves: Sequence[Curve]) -> _Figure | None:
    if not curves:
        return None

    def draw() -> Figure:
        fig, (ax,) = _grid(1, panel_h=3.4)
        seen: dict[str, int] = {}
        sizes: list[float] = []
        for label, rep, pts in curves:
            n = seen.get(rep, 0)
            seen[rep] = n + 1
            xs = sorted(pts)
            sizes += xs
            color = REPRESENTATION_COLORS.get(rep, PALETTE[(len(seen) + 3) % len(PALETTE)])
            ax.plot(xs, [pts[x] for x in xs], color=color, linestyle=LINESTYLES[n % len(LINESTYLES)],
                    marker=MARKERS[n % len(MARKERS)], label=label)  # fmt: skip
        if sizes and min(sizes) > 0 and max(sizes) / min(sizes) >= 8:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("index size (documents)")
        ax.set_ylabel(quality)
        _legend(fig, [ax])
        return fig

    return _Figure(
        f"{quality} as the index grows, one line per representation and backend (colour: representation). "
        "Where lines cross, the cheaper or sparser representation overtakes.",
        draw,
    )

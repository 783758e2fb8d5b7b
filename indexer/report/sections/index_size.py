"""Quality against index size, and where a sparse curve crosses a dense one."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Figure, Para, Section, Table, drawn
from indexer.report.figures import LINESTYLES, MARKERS, PALETTE, REPRESENTATION_COLORS, grid, legend
from indexer.report.results import GroupKey, Results, measure, with_col
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


Curve = tuple[str, str, dict[float, float]]  # label, representation, size -> quality


def index_size_section(res: Results, highlights: list[str]) -> Section | None:
    if len(res.distinct("index_size")) < 2:
        return None
    quality, curves = _size_curves(res)
    if not curves:
        return None
    sizes = sorted({s for _, _, pts in curves for s in pts})
    table = Table(["index size"] + [label for label, _, _ in curves], [])
    for s in sizes:
        line = [f"{s:,.0f}"]
        values = {i: pts.get(s) for i, (_, _, pts) in enumerate(curves)}
        present = {i: v for i, v in values.items() if v is not None}
        for i in range(len(curves)):
            line.append(cells.f3(values[i]))
        if len(present) > 1:
            table.strong.add((len(table.rows), 1 + max(present, key=lambda i: present[i])))
        table.rows.append(line)
    statements = _crossings(curves)
    blocks: list[Block] = [
        Para(
            f"{quality} as the index grows, per representation (means over orderings and seeds); "
            "the best curve at each size in bold. Dense retrieval is expected to lose ground as "
            "distractors accumulate: where a sparse curve overtakes a dense one, the curves cross."
        ),
        table,
    ]
    if statements:
        blocks.append(Bullets(statements))
        crossing = [s for s in statements if "cross" in s and not s.startswith("No crossing")]
        if crossing:
            highlights.append("Index size: " + crossing[0])
    blocks += drawn(_size_figure(res, quality, curves))
    return Section("index-size", "Quality vs index size", blocks)


def _size_curves(res: Results) -> tuple[str, list[Curve]]:
    """Quality vs index size per (model, reduction, representation, backend, ef), over orderings and seeds."""
    rows = res.rows
    quality = "ndcg@10" if any(measure(r, "ndcg@10") is not None for r in rows) else "recall"
    keys: list[GroupKey] = [k for k in ("model", "reduction") if k in res.section_keys]
    curves: list[Curve] = []
    for values, grows in res.group(rows, keys + ["representation"]):
        rep = str(values[-1])
        for col in res.columns(grows):
            crows = with_col(res, grows, col)
            points: dict[float, float] = {}
            for size, srows in res.group(crows, ["index_size"]):
                q = mean(measure(r, quality) for r in srows)
                if q is not None:
                    points[float(size[0])] = q
            if points:
                # a sparse curve has no model or reduction: name it by what it is
                parts = [] if rep == "sparse" else [str(v) for v in values[:-1] if v is not None]
                label = " · ".join(parts + [rep, res.col_label(col)])
                curves.append((label, rep, points))
    return quality, curves


def _crossings(curves: Sequence[Curve], limit: int = 12) -> list[str]:
    """Say, for each sparse curve against each dense or hybrid one, whether and where they cross.

    Crossings come first: they are the finding (Reimers & Gurevych); the rest say who stays ahead.
    """
    out: list[str] = []
    pairs = [
        (a, b) for a, b in itertools.combinations(curves, 2) if a[1] != b[1] and "sparse" in (a[1], b[1])
    ]
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


def _size_figure(res: Results, quality: str, curves: Sequence[Curve]) -> Figure | None:
    if not curves:
        return None

    def draw() -> MplFigure:
        fig, (ax,) = grid(1, panel_h=3.4)
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
        legend(fig, [ax])
        return fig

    return Figure(
        f"{quality} as the index grows, one line per representation and backend (colour: representation). "
        "Where lines cross, the cheaper or sparser representation overtakes.",
        draw,
    )

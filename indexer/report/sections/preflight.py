"""Pre-flight: what the data checks found in each space before any index was built (shown first)."""

from __future__ import annotations

from collections.abc import Callable

from indexer.model.preflight import (
    NEAR_DEPTH,
    NEAR_FRACTION,
    TIE_RTOL,
    GroundTruthCheck,
    Preflight,
    VectorCheck,
)
from indexer.model.results import RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Para, Section, Table


def preflight_section(extras: RunExtras) -> Section | None:
    if not extras.preflight:
        return None
    spaces = list(extras.preflight.items())
    k = spaces[0][1].k
    blocks: list[Block] = [
        Para(
            "Checks of each space's vectors and ground truth before any index was built. Exact duplicates, zero "
            "vectors and norms cover every row; near-duplicates (closer than "
            f"{NEAR_FRACTION:.0%} of the median nearest-neighbour distance, among the {NEAR_DEPTH} "
            f"nearest), tied {k}-th and {k + 1}-th exact scores (within {TIE_RTOL:g} of the score scale) "
            "and the ground truth re-searched by float64 brute force (tie-tolerant) run on seeded samples of the "
            "sizes shown. NaN or inf anywhere stops a run."
        ),
        Table(["check"] + [label for label, _ in spaces], [row for row in (
            [name] + [value(pre) for _, pre in spaces] for name, value in _ROWS
        ) if any(cell != cells.MISSING for cell in row[1:])]),
    ]
    warnings = [f"{label}: {w}" if len(spaces) > 1 else w for label, pre in spaces for w in pre.warnings]
    blocks.append(Bullets(warnings) if warnings else Para("Nothing found that would make the recall numbers "
                                                          "ambiguous."))
    return Section("preflight", "Pre-flight", blocks)


def _of(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,}"


def _vectors(v: VectorCheck) -> str:
    return f"{v.n:,}, {v.zero:,} zero"


def _norms(v: VectorCheck) -> str:
    span = f"{cells.f3(v.norm_min)}–{cells.f3(v.norm_max)}"
    return f"{span} ({v.not_unit:,} not unit)"


def _check(c: GroundTruthCheck | None) -> str:
    return cells.MISSING if c is None else f"{c.mismatches:,} of {c.sample:,}"


def _near(p: Preflight) -> str:
    near = p.near_duplicates
    found = f"{_of(near.points, near.sample)} sampled points"
    return found + (f"; {near.groups:,} groups, largest {near.largest:,}" if near.groups else "")


def _exact(p: Preflight) -> str:
    d = p.duplicates
    return f"{d.groups:,} groups, largest {d.largest:,}" + (f" (e.g. ids {', '.join(map(str, d.example))})"
                                                             if d.groups else "")


# The table's rows: what each says, and its cell for one space.
_ROWS: tuple[tuple[str, Callable[[Preflight], str]], ...] = (
    ("base vectors", lambda p: _vectors(p.base)),
    ("queries", lambda p: _vectors(p.queries)),
    ("base norms", lambda p: _norms(p.base)),
    ("query norms", lambda p: _norms(p.queries)),
    ("exact duplicates in the base", _exact),
    ("near-duplicates in the base", _near),
    ("queries equal to a base vector", lambda p: f"{p.queries_in_base:,}"),
    ("queries with the k-th and (k+1)-th scores tied", lambda p: _of(p.ties.tied, p.ties.sample) + " sampled"),
    ("ground truth mismatches", lambda p: _check(p.groundtruth) + " sampled"),
    ("reduced space's ground truth mismatches", lambda p: _check(p.groundtruth_within)),
    ("seconds", lambda p: cells.secs(p.seconds)),
)

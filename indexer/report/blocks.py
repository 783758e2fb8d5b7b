"""The document model shared by Markdown and HTML: sections of paragraphs, tables and figures."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.report.cells import MISSING

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


@dataclass
class Para:
    text: str
    only: str | None = None  # "md" or "html": a block that only one format shows


@dataclass
class Heading:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Pre:
    text: str
    only: str | None = None


@dataclass
class Table:
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
class Group:
    """Blocks shown together; with a summary they fold into <details> in the HTML."""

    blocks: list[Any]
    summary: str | None = None


@dataclass
class Figure:
    """A plot, drawn only when the HTML is rendered (the Markdown leaves it out)."""

    caption: str
    draw: Callable[[], MplFigure]


Block = Para | Heading | Bullets | Pre | Table | Figure | Group


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block]


def drawn(figure: Figure | None) -> list[Block]:
    """A section's figure where its data allows one (the figure helpers return None when there is nothing
    to draw), as blocks to add."""
    return [] if figure is None else [figure]


def fold(blocks: list[Block], summary: str) -> Block:
    """Long runs of tables fold away in the HTML (the figure says it faster); short ones stay open."""
    n_rows = sum(len(b.rows) for b in blocks if isinstance(b, Table))
    if n_rows <= 16:
        return Group(blocks)
    return Group(blocks, summary=f"{summary} ({n_rows} rows)")


_NUMERIC_CELL = re.compile(r"^[-+−]?\d")


def numeric_columns(table: Table) -> set[int]:
    """Columns whose every filled cell starts with a number: right-aligned."""
    out = set()
    for j in range(len(table.headers)):
        cells = [line[j] for line in table.rows if j < len(line) and line[j] != MISSING]
        if cells and all(_NUMERIC_CELL.match(c) for c in cells):
            out.add(j)
    return out

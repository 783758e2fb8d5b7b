"""Notes: what the run wants a reader to know, and how the ground truth was computed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexer.report.blocks import Block, Bullets, Heading, Section, Table
from indexer.report.rows import csv_cell, plain


def notes_section(extras: Mapping[str, Any]) -> Section | None:
    blocks: list[Block] = []
    notes = extras.get("notes")
    if isinstance(notes, list) and notes:
        blocks.append(Bullets([str(n) for n in notes]))
    gt = extras.get("groundtruth")
    if isinstance(gt, Mapping) and gt:
        table = Table(["ground truth", "value"], [])
        for key, value in gt.items():
            shown = csv_cell(plain(value)) if not isinstance(value, float) else f"{value:.4g}"
            table.rows.append([str(key), shown])
        blocks += [Heading("Ground truth"), table]
    return Section("notes", "Notes", blocks) if blocks else None

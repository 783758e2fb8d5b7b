"""Notes: what the run wants a reader to know."""

from __future__ import annotations

from indexer.model.results import RunExtras
from indexer.report.blocks import Bullets, Section


def notes_section(extras: RunExtras) -> Section | None:
    return Section("notes", "Notes", [Bullets(list(extras.notes))]) if extras.notes else None

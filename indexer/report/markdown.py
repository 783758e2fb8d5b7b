"""The report as GitHub-flavoured Markdown (figures are HTML only; a text histogram stands in for one)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from indexer import __version__
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import ResultModel, RunExtras
from indexer.report.blocks import Block, Bullets, Figure, Group, Heading, Para, Pre, numeric_columns
from indexer.report.document import document


def render_markdown(spec: ExperimentSpec, rows: Sequence[ResultModel | Mapping[str, Any]],
                    extras: RunExtras | Mapping[str, Any] | None = None) -> str:
    """The report as GitHub-flavoured markdown (figures are HTML only)."""
    title, sections = document(spec, rows, extras)
    out = [f"# {title}", "", f"Result key `{spec.key()}` · indexer {__version__}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for block in sec.blocks:
            out += _md_block(block)
    out += ["## Spec", "", "```json", json.dumps(spec.model_dump(mode="json"), indent=2), "```", ""]
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Group):
        return [line for b in block.blocks for line in _md_block(b)]
    if isinstance(block, Figure) or getattr(block, "only", None) == "html":
        return []
    if isinstance(block, Para):
        return [block.text, ""]
    if isinstance(block, Heading):
        return [f"### {block.text}", ""]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items] + [""]
    if isinstance(block, Pre):
        return ["```", block.text, "```", ""]
    out = [f"*{block.caption}*", ""] if block.caption else []
    out.append("| " + " | ".join(_md_escape(h) for h in block.headers) + " |")
    numeric = numeric_columns(block)
    out.append("|" + "|".join("---:" if i in numeric else ":---" for i in range(len(block.headers))) + "|")
    for i, line in enumerate(block.rows):
        cells = [
            f"**{_md_escape(c)}**" if (i, j) in block.strong else _md_escape(c) for j, c in enumerate(line)
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]

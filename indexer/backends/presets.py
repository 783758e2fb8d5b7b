"""Presets: other systems' out-of-the-box HNSW settings, to measure what their users get by default.

`preset: pgvector` on an HNSW backend sets its M, ef_construction and ef sweep to what pgvector uses
when nobody tunes it (explicit fields still win; see declaration.py). The values are data, in presets.yaml
beside this file, each with where it was read: the installed package's code for the systems in this
environment, the system's source or documentation page and version for the servers. Each system means M as
hnswlib does (M links per node on the upper layers, 2*M on layer 0), so M carries over unchanged. This
module keeps only the loading and the rules.

Some systems pick their search-time ef per query from the number of results asked for (Weaviate's
dynamic ef, Elasticsearch's num_candidates, ...). A preset is read before the spec's k is known, so
those presets state the ef at DEFAULT_K, the spec's default k, and name their rule (`ef_rule`, one of
EF_RULES) so the value is checked when loaded and recomputed for another k.

Nothing here imports an index library: the spec imports this module at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_K = 10  # the spec's default k: the k at which a k-dependent default ef is stated
PRESET_FIELDS = ("M", "ef_construction")  # the build parameters a preset sets; it sets the ef sweep too
PRESETS_FILE = Path(__file__).with_name("presets.yaml")


@dataclass(frozen=True)
class Preset:
    """One system's default HNSW settings and where they were read."""

    system: str  # the system, as its users name it
    M: int  # links per node on the upper layers (2*M on layer 0)
    ef_construction: int
    ef_search: tuple[int, ...]  # the ef sweep: the system's default ef, at DEFAULT_K when it depends on k
    source: str  # the file or page the values were read from
    version: str  # the version of that package, source or page
    note: str = ""  # how a dynamic or unusual default maps onto M / ef_construction / ef
    ef_at_k: Callable[[int], int] | None = None  # the system's ef for k results, where it depends on k


def _weaviate_ef(k: int) -> int:
    """Weaviate's ef -1: 8*k clamped into [dynamicEfMin 100, dynamicEfMax 500], then at least k."""
    return max(min(max(8 * k, 100), 500), k)


def _elasticsearch_ef(k: int) -> int:
    """num_candidates left out: Java's Math.round(min(10_000, 1.5f * k)), which rounds halves up."""
    return math.floor(min(10_000, 1.5 * k) + 0.5)


def _lancedb_ef(k: int) -> int:
    """Lance's HnswQueryParams: ef unset -> k + k / 2 (integer), with refine_factor 1."""
    return k + k // 2


def _milvus_ef(k: int) -> int:
    """knowhere's BaseHnswConfig.CheckAndAdjust: ef unset -> max(k, kEfMinValue 16)."""
    return max(k, 16)


def _vespa_ef(k: int) -> int:
    """find_top_k explores targetHits + hnsw.exploreAdditionalHits (0); targetHits taken as k."""
    return k + 0


def _mongodb_ef(k: int) -> int:
    """numCandidates has no default; the docs recommend at least 20 times limit."""
    return 20 * k


EF_RULES: dict[str, Callable[[int], int]] = {
    "weaviate": _weaviate_ef, "elasticsearch": _elasticsearch_ef, "lancedb": _lancedb_ef, "milvus": _milvus_ef,
    "vespa": _vespa_ef, "mongodb": _mongodb_ef,
}


class _Entry(BaseModel):
    """One system's entry in presets.yaml, as written there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(min_length=1)
    M: int = Field(ge=2)
    ef_construction: int = Field(ge=1)
    ef_search: tuple[int, ...] = Field(min_length=1)
    ef_rule: Literal[tuple(EF_RULES)] | None = None  # type: ignore[valid-type]
    source: str = Field(min_length=1)
    version: str = Field(min_length=1)
    note: str = ""


def load_presets(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    """The presets of `path`, in file order; a rule-bound ef must equal its rule at DEFAULT_K."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of preset name to settings")
    out = {}
    for name, fields in raw.items():
        entry = _Entry.model_validate(fields)
        rule = EF_RULES[entry.ef_rule] if entry.ef_rule is not None else None
        if rule is not None and entry.ef_search != (rule(DEFAULT_K),):
            raise ValueError(f"{path}: {name}'s ef_search {list(entry.ef_search)} is not its rule "
                             f"{entry.ef_rule!r} at k={DEFAULT_K} ({rule(DEFAULT_K)})")
        out[str(name)] = Preset(system=entry.system, M=entry.M, ef_construction=entry.ef_construction,
                                ef_search=entry.ef_search, source=entry.source, version=entry.version,
                                note=entry.note, ef_at_k=rule)
    return out


PRESETS: dict[str, Preset] = load_presets()


def preset_names() -> list[str]:
    """The preset names, in table order, for error messages and the schema."""
    return list(PRESETS)


def markdown_table() -> str:
    """The README's preset table: one row per preset, so the README and PRESETS cannot drift apart."""
    header = (
        f"| preset | system | M | ef_construction | ef (k={DEFAULT_K}) | source | version | how the default maps |",
        "|---|---|---|---|---|---|---|---|",
    )
    rows = [
        f"| `{name}` | {p.system} | {p.M} | {p.ef_construction} | {', '.join(map(str, p.ef_search))} "
        f"| {p.source} | {p.version} | {p.note} |"
        for name, p in PRESETS.items()
    ]
    return "\n".join((*header, *rows)) + "\n"

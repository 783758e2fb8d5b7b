"""Specs before they are experiments: POST /specs/validate checks one as POST /experiments would, GET
/specs/examples lists specs to start from (the workbench's gallery): the repository's examples/ and one small
study per preset (indexer/backends/presets.yaml)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.api.errors import error_responses
from app.schemas import ExampleOut, SpecCheckOut, SpecTextIn
from app.spec_check import check_spec_text
from indexer.backends.presets import PRESETS, Preset
from indexer.settings import Settings

router = APIRouter(prefix="/specs", tags=["specs"], responses=error_responses(401, 503))

# the source checkout's examples/, beside app/ (an installed package has none: set INDEXER_EXAMPLES_DIR)
CHECKOUT_EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MAX_EXAMPLE_BYTES = 64 * 1024  # examples are a few KiB; a larger file there is not one


def examples_dir(settings: Settings) -> Path:
    return settings.examples_dir if settings.examples_dir is not None else CHECKOUT_EXAMPLES


def _description(text: str) -> str:
    """The file's leading comment lines, joined: what the example is for."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def read_examples(folder: Path) -> list[ExampleOut]:
    """Every *.yaml directly in `folder`, by name; regular files of at most MAX_EXAMPLE_BYTES only."""
    found = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_EXAMPLE_BYTES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found.append(ExampleOut(name=path.stem, kind="example", description=_description(text), text=text))
    return found


def preset_example(name: str, preset: Preset) -> ExampleOut:
    """The quickstart's data searched by hnswlib at one system's defaults, beside exact search."""
    settings = f"M {preset.M}, ef_construction {preset.ef_construction}, ef {list(preset.ef_search)}"
    text = (f"# {preset.system}'s default HNSW settings ({preset.version}): {settings}, built by hnswlib\n"
            f"name: preset-{name}\n"
            "dataset: {kind: synthetic, intrinsic_dims: [2, 8, 32, 64], points_per_subspace: 2500,\n"
            "          queries_per_subspace: 100, ambient_dim: 384, normalize: true, seed: 1}\n"
            "metric: cosine\n"
            "k: 10\n"
            "backends:\n"
            f"  - {{name: hnswlib, preset: {name}}}\n"
            "  - {name: exact}\n")
    return ExampleOut(name=f"preset-{name}", kind="preset", description=_description(text), text=text)


@router.post("/validate", response_model=SpecCheckOut, responses=error_responses(413, 422))
def validate_spec(body: SpecTextIn, settings: SettingsDep) -> SpecCheckOut:
    """Check a spec as POST /experiments would, without queueing it: the text (YAML or JSON) is parsed, validated,
    checked for what the API refuses and against the server's limits. Every problem comes with its field and its
    line in the text; a spec that parses also comes with the admission estimate (cells, bytes, expected time),
    its experiment id and its JSON, the body to POST. 200 whether or not the spec is valid."""
    return check_spec_text(body.text, settings)


@router.get("/examples", response_model=list[ExampleOut])
def list_examples(settings: SettingsDep) -> list[ExampleOut]:
    """Specs to start from, each with a description and its text (YAML): the examples directory's files by name
    (none when the server has no such directory: INDEXER_EXAMPLES_DIR, by default the source checkout's
    examples/), then one small study per preset (hnswlib at that system's defaults)."""
    return read_examples(examples_dir(settings)) + [preset_example(n, p) for n, p in PRESETS.items()]

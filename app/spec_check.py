"""What the API refuses in a spec, shared by POST /experiments (which answers 422 at the first refusal) and
POST /specs/validate (which lists every problem at its line in the editor's text, with the estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.schemas import EstimateOut, SpecCheckOut, SpecProblem
from app.spec_text import ParsedText, SpecTextError, locate, parse_spec_text
from indexer.datasets.models import DERIVED_MODELS
from indexer.engine.admission import Estimate, describe_estimate, estimate, problems
from indexer.engine.executors.config import cores
from indexer.engine.spec import ExperimentSpec
from indexer.model.datasets import DEFAULT_MODEL
from indexer.model.strict import MAX_REPORTED_PROBLEMS, clip, error_message
from indexer.settings import Settings

# dataset kinds that name a file on the server: the CLI's, never a request's
PATH_KINDS = frozenset({"file", "beir"})
# embedding models a request may name: the packaged one and those derived from packaged weights
API_MODELS = frozenset({DEFAULT_MODEL, *DERIVED_MODELS})


@dataclass(frozen=True)
class Refusal:
    """A reason the API does not take a spec that is otherwise valid."""

    loc: tuple[str | int, ...]
    message: str  # one sentence that begins with the field


def _nul_field(value: Any, where: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """The first field holding a NUL character: PostgreSQL cannot store one in text or JSON."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_field(item, (*where, key))
        if found is not None:
            return found
    return None


def api_refusals(spec: ExperimentSpec) -> list[Refusal]:
    """What the API refuses that the CLI runs: file paths and local models (no path from a request is ever
    opened), and NUL characters (PostgreSQL stores none)."""
    found = []
    if spec.dataset.kind in PATH_KINDS:
        found.append(Refusal(("dataset", "kind"), (
            f"dataset.kind: {spec.dataset.kind!r} datasets are not accepted over the API: place the data "
            "under the data directory and run it with the CLI (`indexer run`)")))
    if spec.runbook_file is not None and spec.runbook_file.path is not None:
        found.append(Refusal(("runbook_file", "path"), (
            "runbook_file.path: a file path is not accepted over the API: give the runbook file's contents as "
            "runbook_file.text, or run the spec with the CLI (`indexer run`)")))
    bad = _nul_field(spec.model_dump(mode="json"))
    if bad is not None:
        where = ".".join(str(p) for p in bad) or "spec"
        found.append(Refusal(bad, f"{where}: contains a NUL character (\\u0000), which cannot be stored"))
    unknown = [m for m in getattr(spec.dataset, "models", []) if m not in API_MODELS]
    if unknown:
        # any other name is a local directory on the server: a path from the request
        found.append(Refusal(("dataset", "models"), (
            f"dataset.models: {unknown} are not available over the API; choose from {sorted(API_MODELS)} "
            "or run a local model directory with the CLI")))
    return found


def estimate_out(est: Estimate, settings: Settings) -> EstimateOut:
    on = settings.workers or cores()
    work = est.work
    return EstimateOut(
        cells=est.cells, base_vectors=est.base_vectors, dim=est.dim, queries=est.queries,
        embedded_texts=est.embedded_texts, base_bytes=est.base_bytes,
        core_seconds=work.core_seconds if work else None,
        expected_seconds=work.core_seconds / max(on, 1) if work else None, cores=on,
        largest_index_bytes=work.largest_index_bytes if work else None,
        peak_bytes=work.peak_bytes(on) if work else None, summary=describe_estimate(est, on),
    )


def _problem(parsed: ParsedText, loc: tuple[str | int, ...] | list[str | int], message: str) -> SpecProblem:
    where = locate(parsed.root, loc)
    return SpecProblem(loc=list(loc), line=where.line, column=where.column, msg=message)


def _field_of(sentence: str) -> tuple[str | int, ...]:
    """`lid.k: 20 needs ...` -> ("lid", "k"); a limit's name (`max_cells: ...`) is no field and locates at the
    top of the spec."""
    head = sentence.split(":", 1)[0] if ":" in sentence else ""
    if not head or " " in head:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in head.split("."))


def check_spec_text(text: str, settings: Settings) -> SpecCheckOut:
    """Everything POST /experiments would refuse in this text, each at its line, and the spec's estimate."""
    try:
        parsed = parse_spec_text(text)
    except SpecTextError as err:
        line, column = (err.position.line, err.position.column) if err.position else (None, None)
        return SpecCheckOut(valid=False, problems=[SpecProblem(loc=[], line=line, column=column, msg=str(err))],
                            estimate=None, id=None, spec=None)
    try:
        # through JSON, as POST /experiments receives it: YAML's dates and other non-JSON values are refused
        data = json.loads(json.dumps(parsed.data))
    except (TypeError, ValueError) as err:
        return SpecCheckOut(valid=False, problems=[_problem(parsed, (), f"spec: not JSON data: {clip(str(err))}")],
                            estimate=None, id=None, spec=None)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_context=False)[:MAX_REPORTED_PROBLEMS]
        found = []
        for e in errors:
            loc = [p if isinstance(p, int) else clip(str(p)) for p in e["loc"]]
            where = clip(".".join(str(p) for p in loc)) or "spec"
            found.append(_problem(parsed, loc, f"{where}: {error_message(e)}"))
        return SpecCheckOut(valid=False, problems=found, estimate=None, id=None, spec=None)
    except RecursionError:
        return SpecCheckOut(valid=False, problems=[_problem(parsed, (), "spec: nested too deeply")],
                            estimate=None, id=None, spec=None)
    found = [_problem(parsed, r.loc, r.message) for r in api_refusals(spec)]
    found += [_problem(parsed, _field_of(p), p) for p in problems(spec, settings.limits())]
    return SpecCheckOut(valid=not found, problems=found, estimate=estimate_out(estimate(spec), settings),
                        id=spec.key(), spec=spec.model_dump(mode="json"))

"""Every example README.md quotes runs, shrunk to a smoke size, through `indexer run` with the default executor.

The README promises `indexer run examples/X.yaml --out DIR`; a user gets the local pool (as many workers as
cores), which pickles every cell to a spawned process. Nothing else runs the examples that way, so a backend
entry that cannot travel (the PicklingError of the deployed systems) or a spec field only an example uses
would reach users first. Each example is shrunk by generic code, one function per dataset kind, keeping
every axis (backends, orderings, reductions, representations, models, seeds, index sizes, advise grid,
diagnostics), so a new or changed example is tested as it is written.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.datasets.text import wordnet_dir
from indexer.engine.runner import lid_method
from indexer.engine.spec import ExperimentSpec, built_backends, parse_spec
from indexer.model.results import DenseRow, ResultRow, parse_rows

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# `examples/lid-ordering.yaml`, and globs such as `examples/systems-*-ordering.yaml`
QUOTED = re.compile(r"examples/([A-Za-z0-9_.*?-]+)\.yaml")
INDEXER = Path(sys.executable).with_name("indexer")  # the console script a user runs, in this environment
RUN_TIMEOUT_SECONDS = 600

# The smoke size: enough points for every ordering, LID (k 20) and 16 k-means clusters, small enough that
# every example together runs in under 4 minutes on 2 cores.
SYNTHETIC_POINTS_PER_SUBSPACE = 250
SYNTHETIC_QUERIES_PER_SUBSPACE = 8
GLOVE_N = 1_000
GLOVE_QUERIES = 30
TEXT_LIMIT = 200
TEXT_QUERIES = 20
SELF_MISS_SAMPLE = 100
LID_SAMPLE = 200
# WordNet has 117,659 synsets; an example without `limit` indexes them all
TEXT_CORPUS_SIZE = {"wordnet": 117_659, "bbc": 2_225}

# Examples that fail for a reason in the engine, not in the shrinking: name -> the reason (strict xfail, so
# the test says when the fix lands).
KNOWN_ENGINE_FAILURES: dict[str, str] = {}


def quoted_patterns(readme: str) -> list[str]:
    """The example names README.md quotes, globs kept as written, in order of first mention."""
    return list(dict.fromkeys(QUOTED.findall(readme)))


def quoted_examples() -> list[Path]:
    """Every examples/*.yaml a quoted name or glob matches."""
    patterns = quoted_patterns((ROOT / "README.md").read_text(encoding="utf-8"))
    found = {p for pattern in patterns for p in EXAMPLES.glob(f"{pattern}.yaml")}
    return sorted(found)


# ---------------------------------------------------------------- shrinking, one function per dataset kind


@dataclass(frozen=True)
class Shrunk:
    """A spec's dataset (or the whole spec) at smoke size, with the base sizes it was shrunk between."""

    data: dict[str, Any]
    full_base: int  # base vectors of the example as written
    base: int  # base vectors at smoke size


def _shrink_synthetic(dataset: dict[str, Any]) -> Shrunk:
    subspaces = len(dataset["intrinsic_dims"])
    points = dataset.get("points_per_subspace", 8000)
    small = {**dataset, "points_per_subspace": min(points, SYNTHETIC_POINTS_PER_SUBSPACE),
             "queries_per_subspace": min(dataset.get("queries_per_subspace", 300), SYNTHETIC_QUERIES_PER_SUBSPACE)}
    return Shrunk(small, points * subspaces, small["points_per_subspace"] * subspaces)


def _shrink_glove(dataset: dict[str, Any]) -> Shrunk:
    full = dataset.get("n", 50_000)
    small = {**dataset, "n": min(full, GLOVE_N), "queries": min(dataset.get("queries", 1_000), GLOVE_QUERIES)}
    return Shrunk(small, full, small["n"])


def _shrink_text(dataset: dict[str, Any]) -> Shrunk:
    full = dataset.get("limit") or TEXT_CORPUS_SIZE[dataset["corpus"]]
    small = {**dataset, "limit": min(full, TEXT_LIMIT), "queries": min(dataset.get("queries", 500), TEXT_QUERIES)}
    return Shrunk(small, full, small["limit"])


SHRINKERS: dict[str, Callable[[dict[str, Any]], Shrunk]] = {
    "synthetic": _shrink_synthetic,
    "glove": _shrink_glove,
    "text": _shrink_text,
}


def _spread_index_sizes(sizes: list[int | str], floor: int, base: int) -> list[int | str]:
    """The spec's index sizes below the shrunk base, as many distinct ones as it had, in the same order:
    clamping each to the base would merge them with `all` and drop the axis."""
    counts = sorted({s for s in sizes if isinstance(s, int)})
    if not counts:
        return sizes
    step = (base - floor) / len(counts)
    assert step >= 1, f"the shrunk base of {base} has no room for {len(counts)} index sizes above {floor}"
    new = {size: floor + math.floor(i * step) for i, size in enumerate(counts)}
    return [new[s] if isinstance(s, int) else s for s in sizes]


def shrink_spec(data: dict[str, Any]) -> Shrunk:
    """A smoke-sized copy of a spec read from YAML: the dataset shrunk by its kind's function, everything
    sized by the data clamped to it, every axis of the grid kept."""
    kind = data["dataset"]["kind"]
    assert kind in SHRINKERS, f"no smoke size for dataset kind {kind!r}: add a shrinker to this test"
    shrunk = SHRINKERS[kind](data["dataset"])
    dataset, full_base, base = shrunk.data, shrunk.full_base, shrunk.base
    small = {**data, "dataset": dataset}
    lid = dict(data.get("lid", {}))
    lid_k = lid.get("k", 20)
    # a relevant document (a query's own gloss) is always kept, so no index may hold fewer than the queries
    relevant = dataset.get("queries", 0) if kind == "text" else 0
    smallest_index = max(data.get("k", 10), lid_k + 1, relevant, data.get("clusters", 0))
    if "index_sizes" in data:
        small["index_sizes"] = _spread_index_sizes(data["index_sizes"], smallest_index, base)
    if "sample" in lid:
        lid["sample"] = min(lid["sample"], LID_SAMPLE)
    # keep the LID method the full-size run gets: above exact_up_to points `auto` builds a kNN graph
    if lid.get("method", "auto") == "auto" and full_base > lid.get("exact_up_to", 200_000):
        lid["exact_up_to"] = base - 1
    if lid:
        small["lid"] = lid
    if "clusters" in data:
        small["clusters"] = min(data["clusters"], base)
    if data.get("diagnostics") is not None:
        sample = data["diagnostics"].get("self_miss_sample", 10_000)
        small["diagnostics"] = {**data["diagnostics"], "self_miss_sample": min(sample, SELF_MISS_SAMPLE)}
    if data.get("advise") is not None:  # the grid's corners: the cheapest and the richest graph
        advise = dict(data["advise"])
        for axis in ("M", "ef_construction"):
            if axis in advise:
                advise[axis] = sorted({min(advise[axis]), max(advise[axis])})
        small["advise"] = advise
    return Shrunk(small, full_base, base)


def _axes(spec: ExperimentSpec, base: int) -> dict[str, Any]:
    """What a shrunk spec must keep of its original: every axis of the grid, what a cell is built with and
    how LID is estimated for the LID orderings (exact, or from a kNN graph above `lid.exact_up_to`)."""
    return {
        "lid_estimate": lid_method(spec, base, every_point=True),
        "metric": spec.metric,
        "k": spec.k,
        "models": spec.models(),
        "orderings": spec.orderings,
        "backends": [b.model_dump(mode="json") for b in spec.backends],
        "seeds": spec.seeds,
        "reductions": [r.model_dump(mode="json") for r in spec.reductions],
        "representations": spec.representations,
        "index_sizes": len(spec.index_sizes),
        "all": "all" in spec.index_sizes,
        "lid_k": spec.lid.k,
        "lid_method": spec.lid.method,
        "recall_targets": spec.recall_targets,
        "diagnostics": spec.diagnostics is not None,
        "advise": spec.advise is not None,
        "lid_bins": spec.lid_bins,
    }


# ---------------------------------------------------------------- running


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """One cache per dataset kind for the module: specs and their inputs are content-keyed, so examples
    on the same shrunk data share its loading, embeddings, ground truth and LID."""
    made: dict[str, Path] = {}

    def cache_for(kind: str) -> Path:
        if kind not in made:
            made[kind] = tmp_path_factory.mktemp(f"cache-{kind}")
        return made[kind]

    return cache_for


@pytest.fixture(scope="module")
def timing_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A timing lock of this module's own: the machine's (indexer.common.timing) would make these runs wait
    for every other run's timed searches on the machine, which a smoke test does not measure."""
    return tmp_path_factory.mktemp("timing") / "indexer-timing.lock"


def _default_env(data_dir: Path, lock: Path) -> dict[str, str]:
    """This environment minus anything that would choose the executor: the run gets the CLI's default."""
    env = {k: v for k, v in os.environ.items() if k not in ("INDEXER_WORKERS", "INDEXER_EXECUTOR")}
    env.update(INDEXER_DATA_DIR=str(data_dir), INDEXER_TIMING_LOCK=str(lock), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    return env


def check_report(spec: ExperimentSpec, rows: list[ResultRow]) -> None:
    """Every backend entry has dense rows in every model, index size, reduction, ordering, seed and ef it
    asks for, every dense recall is a number in [0, 1], and every representation asked for is there."""
    dense = [r for r in rows if isinstance(r, DenseRow)]
    assert {r.representation for r in rows} == set(spec.representations)
    for entry in spec.backends:
        for built in built_backends(spec, entry):
            mine = [r for r in dense if r.backend == built.name and r.build_params == built.build_params()]
            assert mine, f"no rows for backend {built.label()}"
            sizes = {r.index_size for r in mine}
            assert len(sizes) == len(spec.index_sizes), f"{built.label()}: index sizes {sorted(sizes)}"
            found = {(r.model, r.index_size, r.reduction, r.ordering, r.seed, r.ef) for r in mine}
            expected = set(itertools.product(spec.models(), sizes, [red.label for red in spec.reductions],
                                             spec.orderings, spec.seeds, built.ef_values()))
            assert expected <= found, f"{built.label()}: no rows for {sorted(expected - found, key=str)[:5]}"
    for row in dense:
        where = f"{row.backend} {row.build_params} {row.reduction} {row.ordering} ef={row.ef}"
        assert isinstance(row.recall, float) and 0.0 <= row.recall <= 1.0, f"{where}: recall {row.recall}"


def check_churn(spec: ExperimentSpec, rows: list[dict[str, Any]]) -> None:
    """A runbook's example: every backend entry has checkpoint rows for every seed and ef it asks for, every
    recall is a number in [0, 1], and no row returned a deleted id."""
    assert rows, "a runbook spec with no churn rows"
    for entry in spec.backends:
        mine = [r for r in rows if r["backend"] == entry.name
                and all(r.get(k) == v for k, v in entry.build_params().items())]
        found = {(r["seed"], r["ef"]) for r in mine}
        expected = set(itertools.product(spec.seeds, entry.ef_values()))
        assert expected <= found, f"{entry.label()}: no checkpoint rows for {sorted(expected - found, key=str)[:5]}"
    for row in rows:
        assert isinstance(row["recall"], float) and 0.0 <= row["recall"] <= 1.0, row
        assert row["deleted_returned"] == 0, row


def _example_param(path: Path) -> Any:
    reason = KNOWN_ENGINE_FAILURES.get(path.stem)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_readme_quotes_only_examples_that_exist():
    patterns = quoted_patterns((ROOT / "README.md").read_text(encoding="utf-8"))
    assert patterns, "README.md quotes no examples/*.yaml: the pattern in this test is out of date"
    missing = [p for p in patterns if not list(EXAMPLES.glob(f"{p}.yaml"))]
    assert not missing, f"README.md quotes examples that do not exist: {missing}"


@pytest.mark.parametrize("example", [pytest.param(p, id=p.stem) for p in quoted_examples()])
def test_smoke_size_keeps_every_axis_of_the_example(example: Path) -> None:
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    shrunk = shrink_spec(data)
    assert _axes(parse_spec(shrunk.data), shrunk.base) == _axes(parse_spec(data), shrunk.full_base)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("example", [_example_param(p) for p in quoted_examples()])
def test_example_runs_at_smoke_size_with_the_default_executor(example: Path, tmp_path: Path,
                                                              caches: Callable[[str], Path], timing_lock: Path) -> None:
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    dataset = parse_spec(data).dataset
    if dataset.kind == "text" and dataset.corpus == "wordnet" and not (wordnet_dir() / "data.noun").is_file():
        pytest.skip(f"{example.name} needs Debian's wordnet-base in {wordnet_dir()}: "
                    "bash scripts/install-system.sh wordnet (CI installs it)")
    shrunk = shrink_spec(data)
    small = parse_spec(shrunk.data)

    spec_path = tmp_path / example.name
    spec_path.write_text(yaml.safe_dump(shrunk.data, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    cli = [str(INDEXER)] if INDEXER.exists() else [sys.executable, "-m", "indexer.cli"]
    command = [*cli, "run", str(spec_path), "--out", str(out), "--cache-dir", str(caches(dataset.kind)), "--quiet"]
    proc = subprocess.run(command, capture_output=True, text=True, env=_default_env(tmp_path / "data", timing_lock),
                          timeout=RUN_TIMEOUT_SECONDS, cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["spec"]["name"] == small.name
    if small.runbook_steps():
        check_churn(small, report["extras"]["churn"])
    else:
        check_report(small, parse_rows(report["rows"]))

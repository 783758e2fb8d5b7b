"""`runbook_file:` big-ann-benchmarks' runbook YAML read unchanged: a small one written here in their format and
two of their published files (tests/data/big-ann-benchmarks, MIT, copied unchanged) parse into the steps they
mean, replay to the live set their ground-truth script computes, and run at a tiny size with hnswlib and exact;
a bad file is a spec error naming what is wrong (exit 2 from the CLI), a step past the rows names its number."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from indexer.engine import runner
from indexer.engine.admission import AdmissionError, admit
from indexer.engine.runbook import plan_runbook
from indexer.engine.spec import ExperimentSpec, SpecError, load_spec, parse_spec
from indexer.model.runbook import DeleteStep, InsertStep, ReplaceRange, ReplaceStep, SearchStep
from indexer.model.runbook_file import MAX_FILE_BYTES, MAX_FILE_STEPS, file_steps

DATA = Path(__file__).resolve().parents[2] / "data" / "big-ann-benchmarks"
K = 10
# their format (neurips23/runbooks/simple_runbook.yaml's shape): a key per dataset, numbered steps, max_pts
THEIRS = """\
tiny-a:
  max_pts: 600
  1:
    operation: "insert"
    start: 0
    end: 500
  2:
    operation: "search"
  3:
    operation: "delete"
    start: 0
    end: 250
  4:
    operation: "search"
  5:
    operation: "insert"
    start: 500
    end: 600
  6:
    operation: "replace"
    tags_start: 250
    tags_end: 300
    ids_start: 0
    ids_end: 50
  7:
    operation: "search"
  gt_url: "https://example.invalid/tiny-a"
tiny-b:
  max_pts: 100
  1: {operation: insert, start: 0, end: 100}
  2: {operation: search}
"""


def _spec(runbook_file: dict, backends: list[dict] | None = None, points: int = 300, **more: object) -> ExperimentSpec:
    return parse_spec({"name": "big-ann", "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 8],
                                                      "points_per_subspace": points, "queries_per_subspace": 20,
                                                      "ambient_dim": 16, "seed": 3},
                       "metric": "l2", "k": K, "backends": backends or [{"name": "exact"}],
                       "runbook_file": runbook_file, **more})


def _replay(path_or_text: str, dataset: str) -> list[set[int]]:
    """The live rows at each search, replayed as their compute_gt.py does (tag -> id, by tag), independently."""
    entry = yaml.safe_load(path_or_text)[dataset]
    tag_to_id: dict[int, int] = {}
    out = []
    i = 1
    while i in entry:
        e = entry[i]
        if e["operation"] == "insert":
            tag_to_id.update({t: t for t in range(e["start"], e["end"])})
        elif e["operation"] == "delete":
            for t in range(e["start"], e["end"]):
                tag_to_id.pop(t)
        elif e["operation"] == "replace":
            for j in range(e["tags_end"] - e["tags_start"]):
                tag_to_id[e["tags_start"] + j] = e["ids_start"] + j
        else:
            out.append(set(tag_to_id.values()))
        i += 1
    return out


def _planned_live(text: str, dataset: str | None, n: int) -> list[set[int]]:
    live = np.zeros(n, dtype=bool)
    out = []
    for op in plan_runbook(list(file_steps(text, dataset)), n=n, k=K, seed=0, baseline=False):
        if op.operation in ("delete", "replace"):
            live[op.positions] = False
        live[op.inserted()] = True
        if op.checkpoint:
            out.append(set(np.flatnonzero(live).tolist()))
    return out


def test_their_format_parses_into_the_steps_it_means() -> None:
    steps = file_steps(THEIRS, "tiny-a")
    assert [type(s) for s in steps] == [InsertStep, SearchStep, DeleteStep, SearchStep, InsertStep, ReplaceStep,
                                        SearchStep]
    assert steps[5].replace == ReplaceRange(start=250, end=300, with_start=0, with_end=50)  # type: ignore[union-attr]
    assert [s.model_dump() for s in file_steps(THEIRS.split("tiny-b:")[0], None)] == [s.model_dump() for s in steps]
    assert _planned_live(THEIRS, "tiny-a", 600) == _replay(THEIRS, "tiny-a")


@pytest.mark.parametrize(("name", "dataset", "n"), [("simple_replace_runbook.yaml", "random-xs", 10_000),
                                                    ("delete_runbook.yaml", "random-xs-clustered", 10_000)])
def test_their_published_runbooks_replay_to_their_ground_truths_live_sets(name: str, dataset: str, n: int) -> None:
    text = (DATA / name).read_text()
    assert _planned_live(text, dataset, n) == _replay(text, dataset)


def test_a_published_runbook_runs_with_hnswlib_and_exact(cache_dir: Path, tmp_path: Path) -> None:
    """simple_replace_runbook.yaml (random-xs: 10,000 rows; inserts, two replaces, a delete) on 10,000 tiny
    vectors, read from the file by the CLI's loader; exact answers every checkpoint perfectly, no backend returns
    a point that is not in the index, and hnswlib with replace_deleted re-inserts under new ids."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "big-ann", "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 8], "points_per_subspace": 5_000,
                                       "queries_per_subspace": 10, "ambient_dim": 8, "seed": 3},
        "metric": "l2", "k": K, "runbook_file": {"path": str(DATA / "simple_replace_runbook.yaml")},
        "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [40]},
                     {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [40], "replace_deleted": True},
                     {"name": "exact"}]}))
    spec = load_spec(spec_path)
    assert spec.runbook_file is not None and spec.runbook_file.text == (DATA / "simple_replace_runbook.yaml").read_text()
    rows = runner.run(spec, cache_dir=cache_dir).extras.churn
    assert len(rows) == 3 * 4  # three entries, four searches
    assert all(r.deleted_returned == 0 and r.short_results == 0 for r in rows)
    assert all(r.recall == 1.0 for r in rows if r.backend == "exact")
    assert all((r.recall or 0) > 0.7 for r in rows)  # measured: 0.77-0.89 at M 8, ef 40
    assert [r.live for r in rows if r.backend == "exact"] == [7_500, 7_500, 7_500, 5_000]
    assert [r.step for r in rows if r.backend == "exact"] == [1, 3, 5, 7]  # 0-based places of their searches
    assert {r.reinserted_ids for r in rows if r.deletes == "repair"} == {"new"}


def _many_steps(count: int) -> str:
    return "x:\n  max_pts: 10\n  1: {operation: insert, start: 0, end: 10}\n" + "".join(
        f"  {i}: {{operation: search}}\n" for i in range(2, count + 1))


@pytest.mark.parametrize(("text", "dataset", "message"), [
    ("x: [1, 2", None, "not valid YAML"),
    ("- 1\n- 2\n", None, "must map dataset names to runbooks"),
    (THEIRS, None, "holds 2 datasets (tiny-a, tiny-b): name one as `dataset`"),
    (THEIRS, "tiny-c", "has no dataset 'tiny-c' (its datasets: tiny-a, tiny-b)"),
    ("x:\n  1: {operation: search}\n", None, "max_pts must be a positive whole number"),
    ("x:\n  max_pts: 5\n  1: {operation: insert, start: 0, end: 5}\n  3: {operation: search}\n", None,
     "step 2 is missing"),
    ("x:\n  max_pts: 5\n  1: {operation: upsert, start: 0, end: 5}\n", None,
     "runbook_file step 1: operation must be one of insert, delete, search, replace"),
    ("x:\n  max_pts: 5\n  1: {operation: insert, start: 0}\n", None, "runbook_file step 1 (insert): needs end"),
    ("x:\n  max_pts: 5\n  1: {operation: insert, start: 5, end: 2}\n", None, "end (2) must be greater than start"),
    ("x:\n  max_pts: 5\n  1: {operation: replace, tags_start: 0, tags_end: 2, ids_start: 0, ids_end: 3}\n", None,
     "the ranges differ in length"),
    ("x:\n  max_pts: 5\n  colour: red\n  1: {operation: search}\n", None, "unknown key colour"),
    (_many_steps(MAX_FILE_STEPS + 1), None, f"{MAX_FILE_STEPS + 1:,} steps; at most {MAX_FILE_STEPS:,}"),
])
def test_a_bad_file_is_a_spec_error_naming_what_is_wrong(text: str, dataset: str | None, message: str) -> None:
    given = {"text": text, **({"dataset": dataset} if dataset else {})}
    with pytest.raises(SpecError, match="runbook_file") as err:
        _spec(given)
    assert message in str(err.value)


def test_a_step_past_the_rows_is_refused_by_its_number() -> None:
    spec = _spec({"text": THEIRS, "dataset": "tiny-a"})  # 600 rows: all of them fit
    admit(spec, None)
    small = _spec({"text": THEIRS, "dataset": "tiny-a"}, points=250)  # 500 rows
    with pytest.raises(AdmissionError, match=r"runbook_file step 5 \(insert rows 500\.\.600\): asks for rows up to "
                                             r"600, but the index holds 500 rows"):
        admit(small, None)


def test_a_file_over_the_size_limit_or_both_runbooks_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("x:\n  max_pts: 1\n" + "#" * MAX_FILE_BYTES)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                                    "backends": [{"name": "exact"}], "runbook_file": {"path": str(big)}}))
    with pytest.raises(SpecError, match=f"at most {MAX_FILE_BYTES:,} bytes"):
        load_spec(spec)
    with pytest.raises(SpecError, match=r"runbook_file: .*the file was not read"):
        _spec({"path": str(big)})
    with pytest.raises(SpecError, match="either runbook or runbook_file"):
        _spec({"text": THEIRS, "dataset": "tiny-b"}, runbook=[{"search": {}}])


def test_the_cli_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "runbook.yaml"
    bad.write_text("x:\n  max_pts: 5\n  1: {operation: insert, start: 0, end: 5}\n  3: {operation: search}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                                    "backends": [{"name": "exact"}], "runbook_file": {"path": str(bad)}}))
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(spec), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={"INDEXER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert "step 2 is missing" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

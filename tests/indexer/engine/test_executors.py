"""The executors: the same rows whichever runs the cells and however many at once; cancel stops running
cells; a finished cell is reused, and --fresh reruns it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexer.common.errors import UserError
from indexer.engine import runner
from indexer.engine.executors import Cancelled, ExecutorConfig
from indexer.engine.spec import parse_spec
from tests.indexer.backends.kit import assert_same_rows

ray = pytest.importorskip("ray")  # installed by scripts/test.sh (the `ray` extra); a missing one fails there


@pytest.fixture
def spec_dict(tiny_spec_dict: dict) -> dict:
    tiny_spec_dict["orderings"] = ["random", "lid_asc", "lid_desc", "category", "cluster"]
    tiny_spec_dict["clusters"] = 4
    return tiny_spec_dict


def children() -> set[int]:
    """Our live descendants (a module's Ray is among them; tests compare before and after), without
    multiprocessing's resource tracker, which the first spawn starts for the life of the interpreter."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())}


@pytest.fixture(scope="module")
def local_ray():
    """A Ray started inside the test session, two CPUs, shut down after this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_rows_do_not_depend_on_the_executor_or_the_worker_count(spec_dict, tmp_path, local_ray):
    spec = parse_spec(spec_dict)
    one = runner.run(spec, cache_dir=tmp_path / "one")  # in the driver, one cell at a time
    two = runner.run(spec, cache_dir=tmp_path / "two", executor=ExecutorConfig("local", workers=2))
    on_ray = runner.run(spec, cache_dir=tmp_path / "ray", executor=ExecutorConfig("ray", workers=2))
    assert len(one.rows) == 5 * (2 + 2 + 1)  # orderings x (hnswlib's and faiss's ef values + exact)
    assert_same_rows(one, two)
    assert_same_rows(one, on_ray)
    # the driver wrote every Ray cell into its own cache: the files the rows name are there, complete
    for row in on_ray.rows:
        assert Path(row.neighbors).is_file() and str(tmp_path / "ray") in row.neighbors
    assert all((Path(r.path) / "answers.json").is_file() for r in on_ray.indexes)  # type: ignore[arg-type]
    # and a rerun on either executor reads the finished cells instead of building them
    again = runner.run(spec, cache_dir=tmp_path / "ray", executor=ExecutorConfig("local", workers=2))
    assert [r.build_seconds for r in again.rows] == [r.build_seconds for r in on_ray.rows]


def test_filtered_rows_do_not_depend_on_the_executor(tiny_spec_dict, tmp_path, local_ray):
    """The filters travel with every cell to a Ray task, its filtered answers come back with its files."""
    spec = parse_spec({**tiny_spec_dict, "orderings": ["random"],
                       "filters": [{"name": "rnd", "kind": "random", "selectivities": [0.2, 0.01]},
                                   {"name": "own", "kind": "label"}]})
    one = runner.run(spec, cache_dir=tmp_path / "one")
    on_ray = runner.run(spec, cache_dir=tmp_path / "ray", executor=ExecutorConfig("ray", workers=2))

    def measured(rows):
        return [(r.backend, r.filter, r.selectivity, r.ef, r.recall, r.short_results, r.mean_returned, r.violations,
                 [(c.target, c.ef) for c in r.cost_at_recall]) for r in rows]

    assert one.extras.filtered and measured(on_ray.extras.filtered) == measured(one.extras.filtered)
    for row in on_ray.extras.filtered:
        assert Path(row.neighbors).is_file() and str(tmp_path / "ray") in row.neighbors  # type: ignore[arg-type]


def test_pool_processes_read_the_space_memory_mapped_and_leave_nothing_behind(spec_dict, tmp_path, monkeypatch):
    from indexer.engine.executors.pool import PoolExecutor

    spec = parse_spec(spec_dict)  # cosine: the prepared base is a new file, not the dataset's
    cache = tmp_path / "cache"
    linked: dict[str, Path | None] = {}  # file name in the shared directory -> where its symlink points
    prepare = PoolExecutor._prepare

    def spy(self: PoolExecutor, space: object) -> None:
        prepare(self, space)  # type: ignore[arg-type]
        assert self.space_dir is not None
        linked.update({p.name: p.resolve() if p.is_symlink() else None for p in self.space_dir.iterdir()})
        base = np.load(self.space_dir / "base.npy")
        np.testing.assert_allclose(np.linalg.norm(base, axis=1), 1.0, rtol=1e-5)  # the prepared vectors

    monkeypatch.setattr(PoolExecutor, "_prepare", spy)
    before = children()
    runner.run(spec, cache_dir=cache, executor=ExecutorConfig("local", workers=2))
    # the base the processes map is the driver's own prepared file (one copy in the page cache for all),
    # the smaller arrays are written for them
    target = linked["base.npy"]
    assert target is not None and target.parent.name.startswith(".prepared")
    assert linked["queries.npy"] is None
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith((".shared", ".prepared"))]
    assert not leftovers  # the run's shared arrays and prepared vectors are gone
    assert children() <= before  # and so are its processes


def test_fresh_reruns_every_cell_and_keeps_the_inputs(spec_dict, tmp_path):
    spec = parse_spec({**spec_dict, "orderings": ["random"]})
    cache = tmp_path / "cache"
    first = runner.run(spec, cache_dir=cache, executor=ExecutorConfig("local", workers=2))
    inputs = {p: p.stat().st_mtime_ns for p in (cache / "groundtruth").iterdir()} | {
        p: p.stat().st_mtime_ns for p in (cache / "lid").iterdir()}
    cells = {p.name: p.stat().st_ino for p in (cache / "cells").iterdir()}
    again = runner.run(spec, cache_dir=cache, executor=ExecutorConfig("local", workers=2), fresh=True)
    assert {p.name: p.stat().st_ino for p in (cache / "cells").iterdir()}.keys() == cells.keys()
    assert all((cache / "cells" / name).stat().st_ino != ino for name, ino in cells.items())  # rebuilt
    assert {p: p.stat().st_mtime_ns for p in inputs} == inputs  # ground truth and LID were not recomputed
    assert_same_rows(first, again)


def slow_spec() -> dict:
    """One cell that takes far longer than the test waits: 40,000 points at ef_construction 400."""
    return {
        "name": "slow", "dataset": {"kind": "synthetic", "intrinsic_dims": [24, 32], "points_per_subspace": 20_000,
                                    "queries_per_subspace": 20, "ambient_dim": 64, "seed": 3},
        "metric": "l2", "k": 10, "orderings": ["random", "category"],
        "backends": [{"name": "hnswlib", "M": 48, "ef_construction": 800, "ef_search": [10]}],
        "seeds": [0], "lid": {"k": 10, "sample": 200},
    }


def cancel_while_running(spec: dict, cache: Path, executor: ExecutorConfig) -> tuple[float, list[str]]:
    """Run `spec`, flip should_stop once a cell has been running for a second; the seconds until the run
    raised Cancelled, and the messages it reported."""
    messages: list[str] = []
    started: dict[str, float] = {}

    def progress(_fraction: float, message: str) -> None:
        messages.append(message)
        if ": space measures" in message:  # the phase, then the time left
            started.setdefault("cells", time.monotonic())

    def should_stop() -> bool:
        return "cells" in started and time.monotonic() - started["cells"] > 3.0

    with pytest.raises(Cancelled):
        runner.run(parse_spec(spec), cache_dir=cache, progress=progress, should_stop=should_stop, executor=executor)
    return time.monotonic() - started["cells"] - 3.0, messages


def test_cancel_stops_running_pool_cells(tmp_path):
    before = children()
    took, _ = cancel_while_running(slow_spec(), tmp_path / "cache", ExecutorConfig("local", workers=2))
    assert took < 10  # the builds (minutes) were killed, not waited for
    assert children() <= before
    cells = tmp_path / "cache" / "cells"
    assert not cells.exists() or not any(cells.iterdir())  # nothing half-written carries a cell's name


def test_cancel_of_a_running_ray_job_kills_its_tasks(tmp_path, local_ray):
    took, _ = cancel_while_running(slow_spec(), tmp_path / "cache", ExecutorConfig("ray", workers=2))
    assert took < 15
    deadline = time.monotonic() + 20
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2  # both tasks are gone, their CPUs free again
    cells = tmp_path / "cache" / "cells"
    assert not cells.exists() or not any(cells.iterdir())  # nothing half-written carries a cell's name


def test_a_failing_cell_fails_the_run_with_its_own_error(spec_dict, tmp_path, monkeypatch):
    spec = parse_spec({**spec_dict, "orderings": ["random"], "backends": [{"name": "hnswlib", "M": 8,
                                                                          "ef_construction": 40, "ef_search": [10]}]})
    # a pool process is spawned, so a monkeypatch here does not reach it: break the cell through its input
    before = children()
    monkeypatch.setattr("indexer.engine.executors.pool.space_facts",
                        lambda s: (_ for _ in ()).throw(UserError("the shared space could not be described")))
    with pytest.raises(UserError, match="could not be described"):
        runner.run(spec, cache_dir=tmp_path / "cache", executor=ExecutorConfig("local", workers=2))
    assert children() <= before
    assert not [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith((".shared", ".prepared"))]


def test_workers_below_one_and_unknown_executors_are_user_errors(tmp_path):
    from indexer.engine.executors import executor_config

    with pytest.raises(UserError, match="workers must be at least 1"):
        executor_config("local", 0, None)
    with pytest.raises(UserError, match="unknown executor 'dask'"):
        executor_config("dask", None, None)
    assert executor_config("ray", 3, "head:6379") == ExecutorConfig("ray", 3, "head:6379")


def test_threads_per_cell_divide_the_cores(tmp_path):
    from indexer.engine.executors import cores, open_executor

    with open_executor(ExecutorConfig("local", workers=2), tmp_path) as pool:
        assert (pool.workers, pool.threads) == (2, max(1, cores() // 2))
    with open_executor(ExecutorConfig("local", workers=1), tmp_path) as alone:
        assert (alone.workers, alone.threads) == (1, cores())


def test_runbook_cells_do_not_depend_on_the_executor(tiny_spec_dict, tmp_path, local_ray):
    """Runbook cells go to the executor too (several at once): the pool's and Ray's rows, filtered ones
    included, equal the driver's one-by-one rows, timings and memory aside; the driver writes each cell, so a
    rerun on any executor reads them."""
    spec = parse_spec({**tiny_spec_dict, "orderings": ["random"], "seeds": [0, 1],
                       "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]},
                                    {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40],
                                     "replace_deleted": True}],
                       "filters": [{"name": "rnd", "kind": "random", "selectivities": [0.3]}],
                       "runbook": [{"insert": {"by": "random", "batch": 400, "checkpoints": True}},
                                   {"delete": {"fraction": 0.4, "seed": 1}}, {"search": {}},
                                   {"replace": {"fraction": 0.5, "seed": 2}}, {"rebuild": {}}]})

    def measured(res):
        rows = [r.model_dump(exclude={"update_seconds", "qps", "baseline_qps", "baseline_build_seconds",
                                      "rss_bytes", "ef_at_target"}) for r in res.extras.churn]
        reach = [[(t.target, t.ef, t.baseline_ef) for t in r.ef_at_target] for r in res.extras.churn]
        filtered = [r.model_dump(exclude={"qps"}) for r in res.extras.churn_filtered]
        return rows, reach, filtered

    one = runner.run(spec, cache_dir=tmp_path / "one")
    assert len({r.cell for r in one.extras.churn}) == 4 and one.extras.churn_filtered
    two = runner.run(spec, cache_dir=tmp_path / "two", executor=ExecutorConfig("local", workers=2))
    on_ray = runner.run(spec, cache_dir=tmp_path / "ray", executor=ExecutorConfig("ray", workers=2))
    assert measured(two) == measured(one)
    assert measured(on_ray) == measured(one)
    again = runner.run(spec, cache_dir=tmp_path / "ray", executor=ExecutorConfig("local", workers=2))
    assert [r.update_seconds for r in again.extras.churn] == [r.update_seconds for r in on_ray.extras.churn]

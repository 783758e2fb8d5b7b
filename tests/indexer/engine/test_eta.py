"""Progress in words: a space is named in words (not `n=all/none`), and every message ends with the expected
time left, which starts from the work model's estimate and is corrected by how long finished work took."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexer.engine import runner
from indexer.engine.eta import Eta, space_words, time_left_words
from indexer.engine.spec import parse_spec
from indexer.model.options import ReductionSpec

LEFT = re.compile(r" \(about ([0-9.]+) (s|min|h) left\)$")
UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_before_anything_finishes_the_plan_is_spread_over_the_cores() -> None:
    eta = Eta(parallel=4, clock=Clock())
    assert eta.left() is None and eta.words() == ""  # no plan yet: nothing promised
    eta.plan(400.0)
    assert eta.left() == 100.0


def test_the_estimate_is_corrected_by_how_long_finished_work_took() -> None:
    clock = Clock()
    eta = Eta(parallel=2, clock=clock)
    eta.plan(100.0)
    clock.now += 20.0
    eta.done(10.0)  # 10 estimated seconds took 20: the rest will take twice the estimate too
    assert eta.left() == pytest.approx(180.0)
    clock.now += 10.0
    eta.done(40.0)  # 50 estimated in 30 s: faster than thought
    assert eta.left() == pytest.approx(50.0 * 30.0 / 50.0)
    eta.done(50.0)
    assert eta.left() == 0.0 and eta.words() == ""


def test_cached_work_leaves_the_plan_without_speeding_the_rate() -> None:
    clock = Clock()
    eta = Eta(clock=clock)
    eta.plan(100.0)
    clock.now += 10.0
    eta.done(10.0)
    eta.skipped(60.0)  # found in the cache: no work, and no claim that work goes six times faster
    assert eta.left() == pytest.approx(30.0)


@pytest.mark.parametrize(("seconds", "words"), [
    (0.4, "about 5 s left"), (41, "about 45 s left"), (60, "about 1 min left"), (61, "about 2 min left"),
    (3000, "about 50 min left"), (9000, "about 2.5 h left")])
def test_time_left_in_words_rounds_up(seconds: float, words: str) -> None:
    assert time_left_words(seconds) == words


@pytest.mark.parametrize(("model", "size", "reduction", "words"), [
    (None, "all", {"name": "none"}, "all points, no reduction"),
    (None, 5000, {"name": "pca", "dims": 8}, "5,000 points, PCA to 8 dims"),
    ("all-MiniLM-L6-v2", "all", {"name": "fft", "dims": 64}, "model all-MiniLM-L6-v2, all points, FFT (lowest "
                                                               "frequencies) to 64 dims"),
    (None, 100, {"name": "random_projection", "dims": 16}, "100 points, random projection to 16 dims")])
def test_a_space_in_words(model: str | None, size: int | str, reduction: dict, words: str) -> None:
    assert space_words(model, size, ReductionSpec.model_validate(reduction)) == words


def _seconds(message: str) -> float | None:
    found = LEFT.search(message)
    return None if found is None else float(found.group(1)) * UNIT_SECONDS[found.group(2)]


def test_a_run_reports_its_space_in_words_and_a_shrinking_time_left(tiny_spec_dict: dict, tmp_path: Path) -> None:
    messages: list[str] = []
    spec = parse_spec({**tiny_spec_dict, "orderings": ["random"], "reductions": [
        {"name": "none"}, {"name": "pca", "dims": 8}], "backends": [
        {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10]}, {"name": "exact"}]})
    runner.run(spec, cache_dir=tmp_path / "cache", progress=lambda f, m: messages.append(m))
    assert not any("n=all" in m or "/none" in m for m in messages), messages
    assert any(m.startswith("all points, no reduction: ground truth") for m in messages), messages
    ticks = [m for m in messages if " cells done" in m]
    assert [m.split(" (")[0] for m in ticks] == [  # counted over the run, across its spaces
        f"all points, {space}: {i} of 4 cells done"
        for space, i in (("no reduction", 1), ("no reduction", 2), ("PCA to 8 dims", 3), ("PCA to 8 dims", 4))]
    assert _seconds(messages[0]) is not None, messages[0]  # from the admission estimate, before any work
    left = [_seconds(m) for m in ticks]
    assert left[-1] is None  # every cell done: nothing left by the plan
    assert all(s is not None for s in left[:-1]), ticks
    assert left[0] >= left[-2], ticks  # type: ignore[operator]
    assert messages[-1] == "done"


def test_the_plans_parts_add_up_to_the_work_estimate(tiny_spec_dict: dict) -> None:
    """What the cells and spaces credit when they end is the whole estimate, so the time left reaches 0 when
    the last cell does, whatever the grid (index sizes, reductions, a backend without ef)."""
    from indexer.engine.spec import cells
    from indexer.engine.work import cell_work, run_plan, work

    spec = parse_spec({**tiny_spec_dict, "index_sizes": [300, "all"], "reductions": [
        {"name": "none"}, {"name": "pca", "dims": 8}]})
    base, native, queries = 1200, 32, 60
    plan = run_plan(spec, base, native, queries)
    expected = work(spec, base, {None: native}, queries)
    assert expected is not None and plan.total_seconds == pytest.approx(expected.core_seconds)
    cells_part = sum(cell_work(c, base if c.index_size == "all" else c.index_size, c.reduction.dims or native,
                               queries, k=spec.k).seconds for c in cells(spec)) * plan.cell_scale
    spaces = len(spec.index_sizes) * len(spec.reductions)
    assert cells_part + spaces * plan.space_seconds + plan.embed_seconds == pytest.approx(plan.total_seconds)

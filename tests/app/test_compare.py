"""GET /experiments/{a}/compare/{b}: two finished experiments cell by cell, as `indexer compare` does."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.app.apiharness import REPO, TINY_SPEC, WORKER_SECONDS, Server, make_spec, start_thread_server

HNSW = TINY_SPEC["backends"][0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server of its own with experiments run by the real worker: `a` (ef 10, 40), `b` (ef 10, 20: the same
    cells at ef 10 and exact), `other` (another dataset), and `queued` (never run)."""
    srv = start_thread_server(tmp_path_factory.mktemp("api-compare"))
    specs = {
        "a": make_spec("compare-a"),
        "b": make_spec("compare-b", backends=[{**HNSW, "ef_search": [10, 20]}, {"name": "exact"}]),
        "other": make_spec("compare-other", dataset={**TINY_SPEC["dataset"], "intrinsic_dims": [2, 4]}),
    }
    worker = None
    try:
        with srv.client() as c:
            ids = {name: c.post("/experiments", json=spec).json()["id"] for name, spec in specs.items()}
            # one worker for the three jobs (a worker per job would start three times), running each job's
            # cells in its child (no pool of processes to start for a few tiny cells)
            worker = subprocess.Popen([sys.executable, "-m", "indexer.cli", "worker", "--poll-seconds", "0.2"],
                                      cwd=REPO, env={**srv.env, "INDEXER_WORKERS": "1"}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + WORKER_SECONDS
            while True:
                jobs = [c.get(f"/experiments/{i}").json() for i in ids.values()]
                if all(j["status"] == "succeeded" for j in jobs):
                    break
                problems = [(j["name"], j["status"], j["error"]) for j in jobs]
                assert worker.poll() is None and time.monotonic() < deadline, problems
                assert not any(j["status"] == "failed" for j in jobs), problems
                time.sleep(0.2)
            worker.terminate()  # idle now: stopped before the job that must stay queued is submitted
            worker.wait(timeout=30)
            ids["queued"] = c.post("/experiments", json=make_spec("compare-queued")).json()["id"]
        yield srv, ids
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        srv.stop()


@pytest.fixture()
def api(finished: tuple[Server, dict[str, str]]) -> Iterator[httpx.Client]:
    with finished[0].client() as c:
        yield c


@pytest.fixture()
def ids(finished: tuple[Server, dict[str, str]]) -> dict[str, str]:
    return finished[1]


def test_the_same_cells_of_two_experiments_compare_equal(api: httpx.Client, ids: dict[str, str]) -> None:
    r = api.get(f"/experiments/{ids['a']}/compare/{ids['b']}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["a"] == ids["a"] and body["b"] == ids["b"] and body["resamples"] == 2000
    assert {(c["cell"]["backend"], c["cell"]["ef"]) for c in body["cells"]} == {("hnswlib", 10), ("exact", None)}
    for change in body["cells"]:  # the same index searched at the same ef: the same answers
        recall = change["recall"]
        assert recall["queries"] == 20 and recall["difference"] == 0.0 and recall["interval"] == [0.0, 0.0]
        assert not recall["significant"] and not change["worse"]
        assert change["qps"]["ratio"] > 0 and change["cell"]["build_params"] == (
            {"M": HNSW["M"], "ef_construction": HNSW["ef_construction"]} if change["cell"]["backend"] == "hnswlib"
            else {})
    assert body["worse"] == 0 and body["untested"] == 0
    assert [c["ef"] for c in body["only_in_a"]] == [40] and [c["ef"] for c in body["only_in_b"]] == [20]


def test_an_experiment_against_itself(api: httpx.Client, ids: dict[str, str]) -> None:
    body = api.get(f"/experiments/{ids['a']}/compare/{ids['a']}", params={"min_recall_drop": 0.01}).json()
    assert len(body["cells"]) == 3 and body["worse"] == 0 and body["min_recall_drop"] == 0.01


def test_unknown_ids_are_404(api: httpx.Client, ids: dict[str, str]) -> None:
    for path in (f"/experiments/0000000000000000/compare/{ids['a']}",
                 f"/experiments/{ids['a']}/compare/0000000000000000",
                 f"/experiments/{ids['queued']}/compare/..%2F..%2Fetc"):
        r = api.get(path)
        assert r.status_code == 404, (path, r.text)


def test_an_unfinished_experiment_is_409(api: httpx.Client, ids: dict[str, str]) -> None:
    r = api.get(f"/experiments/{ids['a']}/compare/{ids['queued']}")
    assert r.status_code == 409 and "queued" in r.json()["detail"], r.text


def test_different_datasets_are_422(api: httpx.Client, ids: dict[str, str]) -> None:
    r = api.get(f"/experiments/{ids['a']}/compare/{ids['other']}")
    assert r.status_code == 422 and "datasets differ (intrinsic_dims)" in r.json()["detail"], r.text


@pytest.mark.parametrize("value", ["-0.1", "1.5", "x"])
def test_bad_min_recall_drop_is_422(api: httpx.Client, ids: dict[str, str], value: str) -> None:
    r = api.get(f"/experiments/{ids['a']}/compare/{ids['b']}", params={"min_recall_drop": value})
    assert r.status_code == 422 and "min_recall_drop" in r.json()["detail"], r.text


def test_work_past_the_bound_is_422(api: httpx.Client, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The server runs in this process: with a bound of one cell's draws, two matched cells are refused."""
    from app.api.routes import experiments

    monkeypatch.setattr(experiments, "MAX_COMPARE_DRAWS", 20 * 2000)  # one cell of 20 queries
    r = api.get(f"/experiments/{ids['a']}/compare/{ids['b']}")
    assert r.status_code == 422 and "max_compare_draws" in r.json()["detail"], r.text


def test_the_route_needs_the_api_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_thread_server(tmp_path_factory.mktemp("api-compare-keyed"), api_key="k3y")
    try:
        path = f"{srv.url}/experiments/abc/compare/def"
        assert httpx.get(path).status_code == 401
        assert httpx.get(path, headers={"X-API-Key": "k3y"}).status_code == 404
    finally:
        srv.stop()

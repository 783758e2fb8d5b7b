"""The service takes a spec with a runbook as the CLI does (a step outside the dataset's rows is a 422 naming it),
runs it in the worker, and shows its checkpoints while it runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.app.apiharness import REPO, WORKER_SECONDS, own_server
from tests.app.apiharness import make_spec as spec

RUNBOOK = [{"insert": {"start": 0, "end": 100}}, {"search": {}}, {"delete": {"fraction": 0.5, "seed": 1}},
           {"insert": {"by": "random", "batch": 50, "checkpoints": True}}, {"rebuild": {}}]


def test_a_runbook_spec_is_accepted_and_a_step_past_the_rows_refused(client: httpx.Client) -> None:
    body = spec("churn", seeds=[160], backends=[{"name": "hnswlib", "M": 8, "ef_construction": 40}, {"name": "exact"}],
                runbook=RUNBOOK, runbook_baseline=True)
    made = client.post("/experiments", json=body)
    assert made.status_code == 202, made.text
    stored = client.get(f"/experiments/{made.json()['id']}").json()["spec"]
    assert stored["runbook"][2] == {"delete": {"fraction": 0.5, "seed": 1}} and stored["runbook_baseline"] is True
    far = client.post("/experiments", json={**body, "runbook": [{"insert": {"start": 0, "end": 10_000_000}},
                                                                 {"search": {}}]})
    assert far.status_code == 422 and "runbook step 0 (insert rows 0..10000000)" in far.text, far.text


BIG_ANN = ("tiny:\n  max_pts: 100\n  1: {operation: insert, start: 0, end: 100}\n  2: {operation: search}\n"
           "  3: {operation: delete, start: 0, end: 50}\n  4: {operation: search}\n")


def test_a_runbook_file_is_taken_by_its_text_never_by_its_path(client: httpx.Client) -> None:
    """big-ann-benchmarks' format as `runbook_file.text`: accepted and stored; a bad file, a step past the rows (by
    its own number) or a path: 422."""
    body = spec("churn-file", seeds=[161], backends=[{"name": "hnswlib", "M": 8, "ef_construction": 40}],
                runbook_file={"text": BIG_ANN})
    made = client.post("/experiments", json=body)
    assert made.status_code == 202, made.text
    assert client.get(f"/experiments/{made.json()['id']}").json()["spec"]["runbook_file"]["text"] == BIG_ANN
    gap = client.post("/experiments", json={**body, "runbook_file": {"text": BIG_ANN.replace("  3:", "  5:")}})
    assert gap.status_code == 422 and "step 3 is missing" in gap.text, gap.text
    far = client.post("/experiments", json={**body, "runbook_file": {"text": BIG_ANN.replace("end: 50", "end: 10000000")}})
    assert far.status_code == 422 and "runbook_file step 3 (delete rows 0..10000000)" in far.text, far.text
    path = client.post("/experiments", json={**body, "runbook_file": {"path": "/etc/passwd", "text": BIG_ANN}})
    assert path.status_code == 422 and "runbook_file.path" in path.text, path.text


def test_the_worker_runs_a_runbook_and_the_api_shows_its_checkpoints(tmp_path: Path) -> None:
    """A runbook spec through the real server and worker: while it runs, the experiment's message names the
    checkpoint it reached (polled here as a client would), its progress never goes back, and the report it
    ends with holds a row per checkpoint and ef, none returning a deleted id."""
    runbook = [{"insert": {"start": 0, "end": 5000}}, {"search": {}},
               {"insert": {"by": "random", "batch": 1000, "checkpoints": True}},
               {"delete": {"fraction": 0.3, "seed": 1}}, {"search": {}},
               {"replace": {"fraction": 0.5, "seed": 2}}, {"search": {}}]
    body = spec("churn-worker", seeds=[162], backends=[{"name": "hnswlib", "M": 16, "ef_construction": 100,
                                                         "ef_search": [10, 40]}],
                runbook=runbook, runbook_baseline=True)
    body["dataset"] = {**body["dataset"], "points_per_subspace": 5000}  # long enough to be seen between checkpoints
    with own_server(tmp_path / "data") as srv, srv.client() as c:
        made = c.post("/experiments", json=body)
        assert made.status_code == 202, made.text
        exp_id = made.json()["id"]
        worker = subprocess.Popen([sys.executable, "-m", "indexer.cli", "worker", "--once", "--poll-seconds", "0.2"],
                                  cwd=REPO, env=srv.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen: list[tuple[float, str]] = []
        deadline = time.monotonic() + WORKER_SECONDS
        while True:
            exp = c.get(f"/experiments/{exp_id}").json()
            seen.append((exp["progress"], exp.get("message") or ""))
            if exp["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        _, err = worker.communicate(timeout=WORKER_SECONDS)
        assert exp["status"] == "succeeded", f"{exp}\n{err[-3000:]}"
        progress = [p for p, _ in seen]
        assert progress == sorted(progress), progress
        shown = [m for _, m in seen if "checkpoint" in m]
        assert shown and all(re.search(r"runbook hnswlib .*: checkpoint \d+ of 8 \(after step \d+", m) for m in shown), \
            sorted({m for _, m in seen})
        report = c.get(f"/experiments/{exp_id}/report", params={"format": "json"}).json()
    rows = report["extras"]["churn"]
    assert len(rows) == 8 * 2  # 1 search + 5 batches + 2 searches, at two ef
    assert all(r["deleted_returned"] == 0 and r["baseline_recall"] is not None for r in rows)

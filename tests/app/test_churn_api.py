"""The service takes a spec with a runbook as the CLI does; a step outside the dataset's rows is a 422 naming it."""

from __future__ import annotations

import httpx

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
    unable = client.post("/experiments", json={**body, "backends": [{"name": "usearch"}]})
    assert unable.status_code == 422 and "usearch cannot run a runbook" in unable.text, unable.text

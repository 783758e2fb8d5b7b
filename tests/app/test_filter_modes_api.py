"""The service takes a spec's filter modes as the CLI does: a mode the backend has queues, one it lacks is a 422
naming the backend's modes."""

from __future__ import annotations

import httpx

from tests.app.apiharness import make_spec as spec

FILTERS = [{"name": "rnd", "kind": "random", "selectivities": [0.1]}]


def test_a_filter_mode_is_accepted_and_one_the_backend_lacks_refused(client: httpx.Client) -> None:
    body = spec("modes", seeds=[160], filters=FILTERS,
                backends=[{"name": "pgvector", "filter_mode": ["off", "relaxed_order"], "max_scan_tuples": 5000}])
    made = client.post("/experiments", json=body)
    assert made.status_code == 202, made.text
    entry = client.get(f"/experiments/{made.json()['id']}").json()["spec"]["backends"][0]
    assert entry["filter_mode"] == ["off", "relaxed_order"] and entry["max_scan_tuples"] == 5000
    refused = client.post("/experiments", json={**body, "backends": [{"name": "pgvector", "filter_mode": "loose"}]})
    assert refused.status_code == 422, refused.text
    assert "pgvector has no filter mode 'loose'; its modes: off, relaxed_order, strict_order" in refused.text

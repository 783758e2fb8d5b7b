"""Experiments: submit (idempotent), validate, list and page, get, cancel, report."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.apiharness import Server
from tests.app.apiharness import make_spec as spec


def test_submit_then_same_spec_is_same_job(client: httpx.Client) -> None:
    body = spec("idempotent", seeds=[101])
    first = client.post("/experiments", json=body)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "queued" and first.json()["created"] is True
    assert first.headers["location"] == f"/experiments/{first.json()['id']}"
    again = client.post("/experiments", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["created"] is False


def test_a_spec_with_filters_is_accepted_and_a_bad_workload_refused(client: httpx.Client) -> None:
    """The service takes the CLI's spec: filter workloads queue like any spec; a workload the spec's rules
    refuse is a 422 naming the problem."""
    filters = [{"name": "rnd", "kind": "random", "selectivities": [0.5, 0.01]}, {"name": "own", "kind": "label"}]
    body = spec("filtered", seeds=[150], filters=filters)
    made = client.post("/experiments", json=body)
    assert made.status_code == 202, made.text
    assert client.get(f"/experiments/{made.json()['id']}").json()["spec"]["filters"][0]["selectivities"] == [0.5, 0.01]
    refused = client.post("/experiments", json={**body, "filters": [{"name": "rnd", "kind": "random"}]})
    assert refused.status_code == 422 and "needs selectivities" in refused.text, refused.text


def test_a_column_filter_is_refused_at_submission(client: httpx.Client, tmp_path: Path) -> None:
    """A column filter reads an attribute stored with a user's file. Over a built-in dataset the spec refuses
    it; over a file the API refuses the file itself (it never opens a path from a request), so a missing
    attribute is a 422 at submission too, though only the CLI, which reads the file, can name it."""
    import numpy as np

    from indexer.engine.spec import parse_spec

    column = {"name": "tenant", "kind": "column", "attribute": "tenant", "allowed": [[1, 2]]}
    synthetic = client.post("/experiments", json=spec("column", seeds=[151], filters=[column]))
    assert synthetic.status_code == 422, synthetic.text
    assert "tenant is a column filter" in synthetic.text and "not with a synthetic dataset" in synthetic.text
    missing = tmp_path / "no-attribute.npy"  # a file holding vectors but no `no-attribute.tenant.npy` beside it
    np.save(missing, np.ones((20, 4), dtype=np.float32))
    body = spec("column", seeds=[152], filters=[column], dataset={"kind": "file", "path": str(missing)})
    on_file = client.post("/experiments", json=body)
    assert on_file.status_code == 422 and "'file' datasets are not accepted over the API" in on_file.text
    assert client.get(f"/experiments/{parse_spec(body).key()}").status_code == 404  # no job for a worker to fail


def test_get_experiment(client: httpx.Client) -> None:
    exp_id = client.post("/experiments", json=spec("get-me", seeds=[102])).json()["id"]
    r = client.get(f"/experiments/{exp_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == exp_id and body["name"] == "get-me" and body["status"] == "queued"
    assert body["progress"] == 0.0 and body["rows"] is None and body["report_formats"] == []
    assert body["spec"]["dataset"]["intrinsic_dims"] == [2, 8]


def test_list_pages_and_filters(client: httpx.Client) -> None:
    ids = [client.post("/experiments", json=spec(f"page-{i}", seeds=[200 + i])).json()["id"] for i in range(3)]
    first = client.get("/experiments", params={"limit": 2, "offset": 0}).json()
    assert first["limit"] == 2 and first["offset"] == 0 and len(first["items"]) == 2
    assert first["total"] >= 3
    second = client.get("/experiments", params={"limit": 2, "offset": 2}).json()
    seen = {i["id"] for i in first["items"]} | {i["id"] for i in second["items"]}
    assert len(seen) == len(first["items"]) + len(second["items"])  # pages do not overlap
    assert ids[-1] == first["items"][0]["id"]  # newest first
    queued = client.get("/experiments", params={"status": "queued", "limit": 500}).json()
    assert all(i["status"] == "queued" for i in queued["items"])
    assert set(ids) <= {i["id"] for i in queued["items"]}


def test_list_filters_by_name(client: httpx.Client) -> None:
    """A part of the name, any case; LIKE's `%` and `_` match only themselves; with status and paging."""
    names = ["Name-Filter 50%_a", "name-filter 50xya", "name-filter other"]
    ids = [client.post("/experiments", json=spec(n, seeds=[260 + i])).json()["id"] for i, n in enumerate(names)]

    def listed(**params: Any) -> list[str]:
        page = client.get("/experiments", params={"limit": 500, **params}).json()
        assert page["total"] == len(page["items"])
        return [i["id"] for i in page["items"]]

    assert listed(name="NAME-FILTER") == ids[::-1]
    assert listed(name="50%_") == [ids[0]]
    assert listed(name="filter 50") == [ids[1], ids[0]]
    assert listed(name="name-filter", status="cancelled") == []
    first = client.get("/experiments", params={"name": "name-filter", "limit": 1, "offset": 1}).json()
    assert first["total"] == 3 and [i["id"] for i in first["items"]] == [ids[1]]
    assert client.get("/experiments", params={"name": "x" * 201}).status_code == 422


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"status": "done"}, "status"), ({"limit": 0}, "limit"), ({"limit": 100000}, "limit"),
     ({"offset": -1}, "offset"), ({"offset": "x"}, "offset")],
)
def test_list_bad_params(client: httpx.Client, params: dict[str, Any], needle: str) -> None:
    r = client.get("/experiments", params=params)
    assert r.status_code == 422
    assert needle in r.json()["detail"]


def test_cancel_queued_never_runs(client: httpx.Client) -> None:
    exp_id = client.post("/experiments", json=spec("cancel-me", seeds=[300])).json()["id"]
    r = client.post(f"/experiments/{exp_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.get(f"/experiments/{exp_id}").json()["status"] == "cancelled"
    # cancelling again: it is finished, so 409, and it stays as it is
    again = client.post(f"/experiments/{exp_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert client.get(f"/experiments/{exp_id}").json()["status"] == "cancelled"


def test_unknown_ids_are_404(client: httpx.Client) -> None:
    for method, path in (("GET", "/experiments/0000000000000000"),
                         ("POST", "/experiments/0000000000000000/cancel"),
                         ("GET", "/experiments/0000000000000000/report"),
                         ("GET", "/experiments/..%2F..%2Fetc/report")):
        r = client.request(method, path)
        assert r.status_code == 404, (path, r.text)
        assert "detail" in r.json()


def test_report_404_until_finished(client: httpx.Client) -> None:
    exp_id = client.post("/experiments", json=spec("not-yet", seeds=[301])).json()["id"]
    r = client.get(f"/experiments/{exp_id}/report", params={"format": "json"})
    assert r.status_code == 404
    assert "queued" in r.json()["detail"]


def test_report_bad_format(client: httpx.Client) -> None:
    exp_id = client.post("/experiments", json=spec("fmt", seeds=[302])).json()["id"]
    r = client.get(f"/experiments/{exp_id}/report", params={"format": "pdf"})
    assert r.status_code == 422 and "format" in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"k": 0}, "k"),
        ({"backends": []}, "backends"),
        ({"backends": [{"name": "annoy"}]}, "backends"),
        ({"dataset": {"kind": "synthetic", "intrinsic_dims": [64], "ambient_dim": 32}}, "ambient_dim"),
        ({"dataset": {"kind": "nope"}}, "dataset"),
        ({"orderings": ["random", "random"]}, "orderings"),
        ({"surprise": 1}, "surprise"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_spec_names_the_field(client: httpx.Client, change: dict[str, Any], needle: str) -> None:
    r = client.post("/experiments", json=spec("bad", **change))
    assert r.status_code == 422, r.text
    body = r.json()
    assert needle in body["detail"], body
    assert body["errors"], body


def test_missing_field(client: httpx.Client) -> None:
    body = spec("no-backends")
    del body["backends"]
    r = client.post("/experiments", json=body)
    assert r.status_code == 422 and "backends" in r.json()["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"text"', b"null"])
def test_body_not_a_spec(client: httpx.Client, raw: bytes) -> None:
    r = client.post("/experiments", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str)


def test_nan_token_in_spec(client: httpx.Client) -> None:
    raw = b'{"name": "nan", "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "noise": NaN},' \
          b' "backends": [{"name": "exact"}]}'
    r = client.post("/experiments", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "noise" in r.json()["detail"]


@pytest.mark.parametrize("dataset", [
    {"kind": "file", "path": "/etc/passwd"},
    {"kind": "beir", "path": "../../secrets"},
])
def test_path_datasets_refused(client: httpx.Client, dataset: dict[str, Any]) -> None:
    r = client.post("/experiments", json=spec("paths", dataset=dataset))
    assert r.status_code == 422
    assert "not accepted over the API" in r.json()["detail"]


def test_model_directories_refused(client: httpx.Client) -> None:
    dataset = {"kind": "text", "corpus": "bbc", "models": ["all-MiniLM-L6-v2", "/root/some-model"]}
    r = client.post("/experiments", json=spec("model-path", dataset=dataset))
    assert r.status_code == 422
    assert "/root/some-model" in r.json()["detail"] and "not available over the API" in r.json()["detail"]


def test_report_of_finished_experiment(index_client: httpx.Client, built: dict[str, Any]) -> None:
    client = index_client
    exp = built["experiment"]
    assert exp["progress"] == 1.0 and exp["rows"], exp
    assert set(exp["report_formats"]) == {"json", "csv", "md", "html"}
    media = {"json": "application/json", "csv": "text/csv", "md": "text/markdown", "html": "text/html"}
    for fmt, kind in media.items():
        r = client.get(f"/experiments/{exp['id']}/report", params={"format": fmt})
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["content-type"].startswith(kind), (fmt, r.headers["content-type"])
        assert len(r.content) > 20
    assert isinstance(client.get(f"/experiments/{exp['id']}/report?format=json").json(), dict | list)


def test_cancel_running_stops_at_next_cell(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A running job told to cancel stops at its next cell; the worker records it as cancelled."""
    from tests.app.apiharness import REPO, server_env, start_thread_server

    srv = start_thread_server(tmp_path_factory.mktemp("api-cancel"))
    env = server_env(srv.data_dir, job_lease_seconds="3")  # heartbeats (and cancel checks) each second
    many_cells = spec(
        "cancel-running",
        dataset={"kind": "synthetic", "intrinsic_dims": [4, 16], "points_per_subspace": 2000,
                 "queries_per_subspace": 20, "ambient_dim": 32},
        orderings=["random", "given", "lid_asc", "lid_desc"], seeds=[0, 1, 2, 3, 4],
        backends=[{"name": "hnswlib", "ef_construction": 200}],
    )
    worker = None
    try:
        with srv.client() as c:
            exp_id = c.post("/experiments", json=many_cells).json()["id"]
            worker = subprocess.Popen(
                [sys.executable, "-m", "indexer.cli", "worker", "--once", "--poll-seconds", "0.2"],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            deadline = time.monotonic() + 60
            while (exp := c.get(f"/experiments/{exp_id}").json())["progress"] == 0.0:
                assert exp["status"] in ("queued", "running") and time.monotonic() < deadline, exp
                time.sleep(0.1)
            r = c.post(f"/experiments/{exp_id}/cancel")
            assert r.status_code == 200
            if r.json()["status"] == "succeeded":
                pytest.skip("the job finished before the cancel arrived; machine too fast for this spec")
            assert r.json()["status"] == "running", r.json()
            _, stderr = worker.communicate(timeout=90)
            final = c.get(f"/experiments/{exp_id}").json()
            assert final["status"] == "cancelled", (final, stderr[-3000:])
            assert final["progress"] < 1.0 and final["rows"] is None
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        srv.stop()


def test_nul_character_refused(client: httpx.Client) -> None:
    """PostgreSQL cannot store a NUL in text or JSON: refused on every database, naming the field."""
    r = client.post("/experiments", json=spec("nul\u0000name"))
    assert r.status_code == 422 and r.json()["detail"].startswith("name:"), r.text
    r = client.post("/experiments", json=spec("nul-model", dataset={"kind": "text", "corpus": "bbc",
                                                                    "models": ["a\u0000b"]}))
    assert r.status_code == 422 and "dataset.models.0" in r.json()["detail"], r.text


@pytest.mark.parametrize("bad_id", ["a%00b", "%2e%2e", "x" * 65, "caf%C3%A9"])
def test_implausible_ids_are_404(client: httpx.Client, bad_id: str) -> None:
    for method, path in (("GET", f"/experiments/{bad_id}"), ("POST", f"/experiments/{bad_id}/cancel"),
                         ("GET", f"/indexes/{bad_id}"), ("POST", f"/indexes/{bad_id}/search")):
        kwargs: dict[str, Any] = {"json": {"vectors": [[1.0]]}} if path.endswith("search") else {}
        r = client.request(method, path, **kwargs)
        assert r.status_code == 404, (path, r.text)


def test_a_spec_over_the_limits_is_refused_before_it_is_queued(client: httpx.Client) -> None:
    dataset = {"kind": "synthetic", "intrinsic_dims": [2, 4, 8], "points_per_subspace": 1_000_000_000,
               "ambient_dim": 256}
    r = client.post("/experiments", json=spec("terabytes", dataset=dataset))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "max_base_bytes" in detail and "2.8 TiB" in detail
    listed = client.get("/experiments", params={"limit": 500}).json()["items"]
    assert all(item["name"] != "terabytes" for item in listed)


def test_a_spec_asking_for_days_of_work_is_refused_with_its_estimate(client: httpx.Client) -> None:
    """Every other limit passes (896 builds, 2 GiB of base vectors): the estimated work refuses it."""
    dataset = {"kind": "synthetic", "intrinsic_dims": [16, 32, 64, 128], "points_per_subspace": 250_000,
               "queries_per_subspace": 250, "ambient_dim": 512}
    r = client.post("/experiments", json=spec(
        "days", dataset=dataset, backends=[{"name": "hnswlib"}, {"name": "faiss_hnsw"}],
        orderings=["given", "random", "lid_asc", "lid_desc", "category", "category_interleaved", "cluster"],
        advise={"M": [8, 16, 32, 64, 128, 256, 512, 384], "ef_construction": [64, 128, 256, 512, 1024, 2048, 4096,
                                                                              3000]}))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "max_work" in detail and "core-hours" in detail and "largest index" in detail, detail
    assert "max_cells" not in detail and "max_base_bytes" not in detail, detail


def test_rows_name_neighbour_files_relative_to_the_report_and_serve_them(
    index_client: httpx.Client, built: dict[str, Any], loaded: Any
) -> None:
    import io

    import numpy as np

    exp = built["experiment"]
    for row in exp["rows"]:
        assert row["neighbors"].startswith("neighbors/") and row["recall"] == round(row["recall"], 4)
        assert "ranking" not in row
    row = next(r for r in exp["rows"] if r["backend"] == "hnswlib" and r["ef"] == 10)
    r = index_client.get(f"/experiments/{exp['id']}/{row['neighbors']}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    served = np.load(io.BytesIO(r.content), allow_pickle=False)
    expected, _ = loaded.search(loaded.held_out_queries(), 10, 10)
    np.testing.assert_array_equal(served, expected)


@pytest.mark.parametrize("name", ["..%2Freport.json", ".hidden.npy", "report.json", "missing.npy",
                                  "n" * 252 + ".npy", "n" * 4092 + ".npy", "%C3%A9" * 127 + ".npy", "x%00.npy"],
                         ids=["dotdot", "hidden", "not-npy", "missing", "256-bytes", "4096-bytes",
                              "258-bytes-of-utf8", "nul"])
def test_neighbour_names_outside_the_folder_are_404(
    index_client: httpx.Client, built: dict[str, Any], name: str
) -> None:
    """Names the file system refuses (over 255 bytes, a NUL) are missing names, not a 500."""
    r = index_client.get(f"/experiments/{built['experiment']['id']}/neighbors/{name}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json", r.text[:300]
    assert len(r.content) < 1000


def test_a_symlink_in_the_neighbours_folder_is_not_followed(
    index_client: httpx.Client, index_server: Server, built: dict[str, Any], tmp_path: Path
) -> None:
    """A link to a file outside the report is 404; the report's own files are served as before."""
    exp = built["experiment"]
    served = next(r["neighbors"] for r in exp["rows"])
    folder = next((index_server.data_dir / "reports" / exp["id"]).glob(f"*/{served}")).parent
    secret = tmp_path / "secret.npy"
    secret.write_bytes(b"not for clients")
    link = folder / "linked.npy"
    link.symlink_to(secret)
    try:
        r = index_client.get(f"/experiments/{exp['id']}/neighbors/linked.npy")
        assert r.status_code == 404 and b"not for clients" not in r.content
    finally:
        link.unlink()
    assert index_client.get(f"/experiments/{exp['id']}/{served}").status_code == 200


def test_cancelling_a_finished_experiment_is_409(index_client: httpx.Client, built: dict[str, Any]) -> None:
    r = index_client.post(f"/experiments/{built['experiment']['id']}/cancel")
    assert r.status_code == 409 and "already succeeded" in r.json()["detail"]

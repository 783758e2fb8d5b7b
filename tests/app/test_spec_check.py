"""POST /specs/validate: what POST /experiments would say, at the spec's lines, with the estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.app.apiharness import REPO, make_spec

QUICKSTART = (REPO / "examples" / "quickstart.yaml").read_text()


def _check(client: httpx.Client, text: str) -> dict[str, Any]:
    r = client.post("/specs/validate", json={"text": text})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_valid_spec_gets_its_estimate_id_and_body(client: httpx.Client) -> None:
    got = _check(client, QUICKSTART)
    assert got["valid"] and got["problems"] == []
    est = got["estimate"]
    assert est["cells"] == 12 and est["base_vectors"] == 10_000 and est["dim"] == 384 and est["queries"] == 400
    assert est["base_bytes"] == 10_000 * 384 * 4 and est["expected_seconds"] > 0 and est["cores"] >= 1
    assert est["summary"].startswith("cells: 12 indexes to build")
    # the body it returns is what POST /experiments takes, and the id is the job it makes
    made = client.post("/experiments", json=got["spec"])
    assert made.status_code in (200, 202) and made.json()["id"] == got["id"]


def test_json_text_checks_as_yaml(client: httpx.Client) -> None:
    import json

    assert _check(client, json.dumps(make_spec("as-json", seeds=[400]), indent=2))["valid"]


def test_validation_errors_come_at_their_lines(client: httpx.Client) -> None:
    text = QUICKSTART.replace("k: 10", "k: 0").replace("M: 16, ef_construction: 128", "M: 0, ef_construction: 128", 1)
    got = _check(client, text)
    assert not got["valid"] and got["estimate"] is None and got["spec"] is None
    lines = {p["msg"].split(":")[0]: p["line"] for p in got["problems"]}
    k_line = text.splitlines().index("k: 0") + 1
    backend_line = next(i for i, line in enumerate(text.splitlines(), 1) if "M: 0," in line)
    assert lines["k"] == k_line
    assert lines["backends.0.hnswlib.M"] == backend_line


def test_what_the_api_refuses_is_refused_with_the_same_words(client: httpx.Client, tmp_path: Path) -> None:
    body = make_spec("file-data", seeds=[401], dataset={"kind": "file", "path": str(tmp_path / "x.npy")})
    got = _check(client, yaml.safe_dump(body, sort_keys=False))
    posted = client.post("/experiments", json=body)
    assert posted.status_code == 422
    assert [p["msg"] for p in got["problems"]] == [posted.json()["detail"]]
    kind_line = next(i for i, line in enumerate(yaml.safe_dump(body, sort_keys=False).splitlines(), 1)
                     if "kind: file" in line)
    assert got["problems"][0]["line"] == kind_line and got["problems"][0]["loc"] == ["dataset", "kind"]


def test_over_the_limits_keeps_the_estimate(client: httpx.Client) -> None:
    big = make_spec("too-big", dataset={"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 50_000_000,
                                        "queries_per_subspace": 10, "ambient_dim": 64})
    got = _check(client, yaml.safe_dump(big))
    assert not got["valid"] and any(p["msg"].startswith("max_base_bytes") for p in got["problems"])
    assert got["estimate"]["base_vectors"] == 50_000_000
    assert client.post("/experiments", json=big).status_code == 422


@pytest.mark.parametrize(("text", "needle", "line"), [
    ("name: [x\n", "not valid YAML/JSON", 2),
    ("a: &x {}\nb: *x\n", "aliases", 1),
    ("", "empty", 1),
    ("name: x\nwhen: 2024-01-01\n", "not JSON data", 1),
])
def test_text_that_is_no_spec(client: httpx.Client, text: str, needle: str, line: int) -> None:
    got = _check(client, text)
    assert not got["valid"] and needle in got["problems"][0]["msg"] and got["problems"][0]["line"] == line


def test_bounded(client: httpx.Client) -> None:
    r = client.post("/specs/validate", json={"text": "#" * (256 * 1024 + 1)})
    assert r.status_code == 422 and "text" in r.json()["detail"]
    assert client.post("/specs/validate", json={"text": "x", "other": 1}).status_code == 422


def test_examples_are_listed_and_all_check(client: httpx.Client) -> None:
    from indexer.backends.presets import PRESETS

    examples = client.get("/specs/examples").json()
    names = [e["name"] for e in examples]
    files = [p.stem for p in sorted((REPO / "examples").glob("*.yaml"))]
    assert names == files + [f"preset-{name}" for name in PRESETS]
    assert [e["kind"] for e in examples] == ["example"] * len(files) + ["preset"] * len(PRESETS)
    pgvector = examples[names.index("preset-pgvector")]
    assert pgvector["description"].startswith("pgvector's default HNSW settings")
    assert "{name: hnswlib, preset: pgvector}" in pgvector["text"]
    quick = examples[names.index("quickstart")]
    assert quick["text"] == QUICKSTART and quick["description"].startswith("The README's main job")
    for example in examples:  # every example is a spec the API validates (some are over its limits)
        got = _check(client, example["text"])
        assert got["estimate"] is not None, (example["name"], got["problems"])
        if example["kind"] == "preset":
            assert got["valid"], got["problems"]

"""The README's API examples ("The API, one call per route") run against a real server and worker, in the
README's order: each call answers as its comment says (a stated status such as `409 once it has finished`, or
`again: 200`), else 2xx.

What a reader substitutes is substituted here, nothing else: the example ids become the run's own, `$INDEX` its
hnswlib index, the `...` of a vector that vector's remaining numbers; `@spec.json` is the quickstart the README
converts, at the examples' smoke size (tests/test_examples.py: every axis kept, so its cells and files are named
as a user's are). A placeholder in a path keeps the README's form: the example neighbour file must be named the
way the run names its own, or the test fails (the README's `neighbors-ef40.npy` of before answered 404: with
several cells, the names carry the cell).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.app.apiharness import REPO, Server, own_server, run_worker_once
from tests.test_examples import shrink_spec

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SECTION = "**The API, one call per route**"
EXPERIMENT = "53e4da697125652f"  # the README's example ids
OTHER_EXPERIMENT = "9f0c2b7a1d3e4f56"
STATED_STATUS = re.compile(r"^(?:again:\s*)?(\d{3})\b")
NEIGHBOUR_FILE = re.compile(r"/neighbors/([^/?\s]+\.npy)")


@dataclass(frozen=True)
class Call:
    """One example call: the README's line, its method and URL, its body, and the status its comment states."""

    line: str
    method: str
    url: str
    body: str | None
    status: int | None  # None: any 2xx


def readme_block(readme: str) -> str:
    """The section's first bash block."""
    after = readme[readme.index(SECTION):]
    block = after[after.index("```bash\n") + len("```bash\n"):]
    return block[:block.index("```")]


def readme_calls(readme: str) -> list[Call]:
    """The calls of the section's first bash block: curl lines (with their continuations) and the pages it
    opens (xdg-open: a GET)."""
    calls = []
    for line in readme_block(readme).replace("\\\n", " ").splitlines():
        code, _, comment = line.partition("  # ")
        words = shlex.split(code, comments=True)
        if not words or words[0] not in ("curl", "xdg-open"):
            continue
        method, body, url = "GET", None, None
        rest = iter(words[1:])
        for word in rest:
            if word == "-X":
                method = next(rest)
            elif word == "-d":
                body = next(rest)
            elif word == "-H":
                next(rest)
            elif "localhost:8000" in word:
                url = word
        assert url is not None, line
        stated = STATED_STATUS.match(comment.strip())
        calls.append(Call(line, method, url.split("localhost:8000", 1)[1] or "/", body,
                          int(stated.group(1)) if stated else None))
    return calls


def test_the_section_is_found_and_holds_every_route() -> None:
    calls = readme_calls((REPO / "README.md").read_text(encoding="utf-8"))
    paths = {c.url.split("?")[0] for c in calls}
    assert {"/health", "/experiments", f"/experiments/{EXPERIMENT}", "/indexes"} <= paths, paths
    assert any(NEIGHBOUR_FILE.search(c.url) for c in calls)


def _vectors_filled(body: str, dims: int) -> str:
    """`[[0.1, 0.2, ...]]` with its `...` replaced by the numbers that give the vector `dims` values."""
    def filled(match: re.Match[str]) -> str:
        given = [float(x) for x in match.group(1).split(",") if x.strip()]
        return json.dumps(given + [0.1] * (dims - len(given)))
    return re.sub(r"\[([0-9.,\s-]*),\s*\.\.\.\]", filled, body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with own_server(tmp_path_factory.mktemp("api-readme-data")) as srv:
        yield srv


def test_every_readme_api_example_answers_as_it_says(server: Server) -> None:
    calls = readme_calls((REPO / "README.md").read_text(encoding="utf-8"))
    submitted: str | None = None  # the id the README's POST got
    run: dict[str, Any] = {}  # once run: the experiment, its hnswlib index
    with server.client() as c:
        for call in calls:
            url, body = call.url, call.body
            if EXPERIMENT in url and not run:
                # the README's POST queued the spec; the worker runs it before it is read, as in a user's session
                assert submitted is not None, "the README reads an experiment before it submits one"
                done = run_worker_once(server)
                run["experiment"] = c.get(f"/experiments/{submitted}").json()
                assert run["experiment"]["status"] == "succeeded", f"{run['experiment']}\n{done.stderr[-3000:]}"
                run["index"] = next(i for i in c.get("/indexes").json()["items"] if i["backend"] == "hnswlib")
            if run:
                url = url.replace(EXPERIMENT, submitted or "").replace(OTHER_EXPERIMENT, submitted or "")
                url = url.replace("$INDEX", run["index"]["id"])
                if (file := NEIGHBOUR_FILE.search(url)) is not None:
                    url = url.replace(file.group(1), _served_name(file.group(1), run["experiment"]["rows"]))
            if body == "@spec.json":
                body = json.dumps(_quickstart())
            elif body is not None and "..." in body:
                body = _vectors_filled(body, int(run["index"]["dims"]))
            r = c.request(call.method, url, content=body,
                          headers={"content-type": "application/json"} if body is not None else {})
            if call.status is not None:
                assert r.status_code == call.status, (call.line, r.status_code, r.text[:500])
            else:
                assert 200 <= r.status_code < 300, (call.line, r.status_code, r.text[:500])
            if call.method == "POST" and url == "/experiments":
                submitted = r.json()["id"]


def _quickstart() -> dict[str, Any]:
    """The spec the README's python line writes to spec.json, at smoke size."""
    line = next(line for line in readme_block((REPO / "README.md").read_text(encoding="utf-8")).splitlines()
                if "> spec.json" in line)
    example = re.search(r"open\(\"(examples/[^\"]+\.yaml)\"\)", line)
    assert example is not None, line
    return shrink_spec(yaml.safe_load((REPO / example.group(1)).read_text(encoding="utf-8"))).data


def _served_name(example: str, rows: list[dict[str, Any]]) -> str:
    """The run's own file for the README's example name, of the same form: the engine's file at that ef
    (`neighbors-ef40.npy`) after a cell key where the example has one, the key the run's own. The example as
    written when no row names a file of its form, so the call answers what a reader's would (the README's
    `neighbors-ef40.npy` of before: 404, as the real names carry the cell)."""
    form = re.fullmatch(r"([0-9a-f]{16}-)?(neighbors-ef\d+\.npy)", example)
    if form is None:
        return example
    key, base = form.groups()
    pattern = rf"[0-9a-f]{{16}}-{re.escape(base)}" if key else re.escape(base)
    matching = [name for r in rows if r.get("neighbors") and re.fullmatch(pattern, name := Path(r["neighbors"]).name)]
    return matching[0] if matching else example

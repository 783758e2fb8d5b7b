"""The compare page and the index explorer in a real browser (fixtures and console checks of test_pages)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app import test_pages
from tests.app.apiharness import Server, make_spec, own_server, run_worker_once
from tests.app.screens import screenshot
from tests.app.test_pages import KEY, expect, needs_chromium

# test_pages's fixtures, shared by name: its browser, its tab that fails on console problems, its servers
browser, page, page_server, keyed = test_pages.browser, test_pages.page, test_pages.page_server, test_pages.keyed

pytestmark = pytest.mark.e2e
HNSW = {"name": "hnswlib", "M": 8, "ef_construction": 64}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any], dict[str, Any]]]:
    """A server of its own with two succeeded experiments that share cells (same data and seed; B sweeps one
    more ef), each run by the real worker."""
    with own_server(tmp_path_factory.mktemp("workbench-compare")) as srv, srv.client() as c:
        done = []
        for name, efs in (("wb-compare-a", [10, 40]), ("wb-compare-b", [10, 20, 40])):
            exp_id = c.post("/experiments", json=make_spec(
                name, backends=[{**HNSW, "ef_search": efs}, {"name": "exact"}])).json()["id"]
            worker = run_worker_once(srv)
            exp = c.get(f"/experiments/{exp_id}").json()
            assert exp["status"] == "succeeded", worker.stderr[-4000:]
            done.append(exp)
        yield srv, done[0], done[1]


@needs_chromium
def test_compare_two_runs(two_runs: tuple[Server, dict[str, Any], dict[str, Any]], page: Any,
                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    request.node.allowed_console = ("status of 404",)  # the unknown experiment at the end
    srv, a, b = two_runs
    page.goto(f"{srv.url}/pages/experiments/{a['id']}")
    expect(page.locator("#status")).to_have_text("succeeded")
    page.get_by_role("link", name="Compare").click()  # opens the compare page with A chosen
    page.wait_for_url(re.compile(rf"/pages/compare\?a={a['id']}$"))
    expect(page.locator("#compare-status")).to_have_text("Choose two succeeded experiments.")
    expect(page.get_by_label("Experiment A")).to_have_value(a["id"])
    assert page.evaluate("document.activeElement.id") == "experiment-b"  # the keyboard is where the pick is
    page.get_by_label("Experiment B").select_option(b["id"])
    page.keyboard.press("Tab")  # to "Show comparison"
    page.keyboard.press("Enter")
    expect(page.locator("#compare-status")).to_have_text("B: wb-compare-b against A: wb-compare-a.")
    expect(page.locator("#curves .main-svg").first).to_be_attached()  # plotly drew the chart
    expect(page.locator("#curves .legendtext")).to_have_count(2)  # A and B, one ordering each
    expect(page.locator("#curves .legendtext").first).to_have_text("A: random")
    comparison = httpx.get(f"{srv.url}/experiments/{a['id']}/compare/{b['id']}").json()
    rows = page.locator("#cells tbody tr")
    expect(rows).to_have_count(len(comparison["cells"]))  # ef=10 and ef=40 of hnswlib, and exact
    expect(rows.filter(has_text="ef=40")).to_have_count(1)
    expect(rows.filter(has_text="ef=20")).to_have_count(0)  # only in B: no pair
    expect(page.locator("#cells-summary")).to_contain_text(f"{len(comparison['cells'])} matching cell(s)")
    assert f"a={a['id']}&b={b['id']}" in page.url  # the pick survives a reload
    screenshot(page, tmp_path, "compare-1280.png")

    page.goto(f"{srv.url}/pages/compare?a={a['id']}&b=ffffffffffffffff")  # an unknown experiment: said in words
    expect(page.locator("#compare-status")).to_contain_text("Cannot compare: no experiment with id")
    expect(rows).to_have_count(0)


def _changing_query(srv: Server, index_id: str, n_queries: int) -> tuple[int, int, int]:
    """A query whose answer at ef=10 misses neighbours that a wider search finds: (query, misses, wide ef)."""
    with srv.client() as c:
        for query in range(n_queries):
            narrow = c.get(f"/indexes/{index_id}/queries/{query}", params={"k": 10, "ef": 10}).json()
            wide = c.get(f"/indexes/{index_id}/queries/{query}", params={"k": 10, "ef": 200}).json()
            if narrow["recall"] < wide["recall"]:
                return query, sum(h["found_rank"] is None for h in narrow["exact"]), 200
    pytest.skip("no query of the tiny index gains recall from ef=10 to 200")


@needs_chromium
def test_explore_an_index(page_server: Server, built: dict[str, Any], page: Any, tmp_path: Path) -> None:
    exp = built["experiment"]
    hnsw = next(i for i in built["indexes"] if i["backend"] == "hnswlib")
    n_queries = httpx.get(f"{page_server.url}/indexes/{hnsw['id']}/queries/0").json()["n_queries"]
    query, misses, wide = _changing_query(page_server, hnsw["id"], n_queries)

    page.goto(f"{page_server.url}/pages/experiments/{exp['id']}")
    page.get_by_role("link", name="Explore").click()
    page.wait_for_url(f"**/pages/experiments/{exp['id']}/explore")
    expect(page.get_by_label("Index")).to_have_value(hnsw["id"])  # the graph index first
    status = page.locator("#answer-status")
    expect(status).to_have_text("Type a query's number.")

    slider = page.get_by_role("slider", name="ef")
    slider.fill("10")
    page.get_by_label("Query").fill(str(query))
    expect(status).to_have_attribute("data-missed", str(misses))
    expect(status).to_contain_text(f"Query {query} of {n_queries}: recall@10")
    expect(page.locator("#found tbody tr")).to_have_count(10)
    expect(page.locator("#exact tbody tr")).to_have_count(10)
    expect(page.locator("#exact tbody tr.missed")).to_have_count(misses)
    expect(page.locator("#found-title")).to_have_text("Approximate answer at ef=10")
    screenshot(page, tmp_path, "explore-1280.png")

    slider.focus()  # the keyboard moves the slider; each step re-runs the search once typing pauses
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#found-title")).to_have_text("Approximate answer at ef=13")
    slider.fill(str(wide))
    expect(page.locator("#found-title")).to_have_text(f"Approximate answer at ef={wide}")
    expect(status).not_to_have_attribute("data-missed", str(misses))  # the wider search found more
    expect(page.locator("#exact tbody tr.missed")).not_to_have_count(misses)

    page.get_by_label("Query").fill("99999")
    expect(status).to_have_text(f"Query: the dataset has {n_queries} held-out queries (0 to {n_queries - 1}).")
    page.get_by_label("Query").fill("first")
    expect(status).to_contain_text("give a query's number")
    assert page.locator("#answers").is_hidden()


@needs_chromium
def test_compare_and_explore_ask_for_the_key(keyed: Server, page: Any, request: pytest.FixtureRequest) -> None:
    request.node.allowed_console = ("status of 401",)  # each refused fetch is a failed resource load
    with keyed.client(headers={"X-API-Key": KEY}) as c:
        secret = c.get("/experiments").json()["items"][0]
    for path in (f"/pages/compare?a={secret['id']}&b={secret['id']}", f"/pages/experiments/{secret['id']}/explore"):
        page.goto(f"{keyed.url}{path}")
        expect(page.locator("#key-form")).to_be_visible()
        expect(page.locator("#main")).to_be_hidden()
        expect(page.get_by_text(secret["name"])).to_have_count(0)
        assert page.locator("#experiment-a option", has_text=secret["name"]).count() == 0


def test_the_new_pages_are_shells_with_a_strict_policy(page_server: Server, built: dict[str, Any]) -> None:
    exp_id = built["experiment"]["id"]
    for path in (f"/pages/compare?a={exp_id}&b={exp_id}", f"/pages/experiments/{exp_id}/explore"):
        r = httpx.get(f"{page_server.url}{path}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "script-src 'self';" in r.headers["content-security-policy"]
        assert built["experiment"]["name"] not in r.text and "<script>" not in r.text
        assert not re.search(r"\son[a-z]+\s*=", r.text, re.IGNORECASE)  # no inline handlers
    assert httpx.get(f"{page_server.url}/pages/experiments/..%2Fx/explore").status_code == 404
    for name in ("compare.js", "explore.js"):
        assert httpx.get(f"{page_server.url}/static/workbench/{name}").status_code == 200


@needs_chromium
def test_phone_width_is_readable(two_runs: tuple[Server, dict[str, Any], dict[str, Any]], browser: Any,
                                 tmp_path: Path) -> None:
    srv, a, b = two_runs
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        tab = context.new_page()
        tab.goto(f"{srv.url}/pages/compare?a={a['id']}&b={b['id']}")
        expect(tab.locator("#cells tbody tr").first).to_be_visible()
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls in its own box
        screenshot(tab, tmp_path, "compare-390.png")
        tab.goto(f"{srv.url}/pages/experiments/{a['id']}/explore?query=0&ef=10")
        expect(tab.locator("#found tbody tr")).to_have_count(10)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(tab, tmp_path, "explore-390.png")
    finally:
        context.close()

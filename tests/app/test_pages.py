"""The workbench in a real browser: Playwright for Python driving the system Chromium (no browser download).

Pages are shells whose scripts read the JSON API; these tests drive them as a user would and fail on any
console error, uncaught exception or Content-Security-Policy violation of a page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.apiharness import Server, make_spec, own_server, run_worker_once, start_thread_server
from tests.app.screens import screenshot

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
pytestmark = pytest.mark.e2e
TRICKY_NAME = "wb-page <b>&amp; test \"quoted\" 100%_x"
KEY = "workbench-key"
TIMEOUT_MS = 20_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[dev]')")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


class Console:
    """Everything a page reported: console messages, uncaught exceptions, CSP violations."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def problems(self) -> list[str]:
        return [m for m in self.messages if m.startswith(("error", "pageerror", "csp"))
                or "Content Security Policy" in m]


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab (own sessionStorage) at desktop width; fails the test on a console problem."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    console = Console()
    tab.on("console", lambda m: console.messages.append(f"{m.type}: {m.text}"))
    tab.on("pageerror", lambda e: console.messages.append(f"pageerror: {e}"))
    tab.console_log = console
    yield tab
    context.close()
    allowed = getattr(request.node, "allowed_console", ())
    problems = [m for m in console.problems() if not any(a in m for a in allowed)]
    assert not problems, problems


@pytest.fixture(scope="module")
def page_server(index_server: Server, built: dict[str, Any]) -> Server:
    """The index server with a succeeded experiment and one whose name needs escaping (cancelled, so
    it never reaches a worker)."""
    with index_server.client() as c:
        exp_id = c.post("/experiments", json=make_spec(TRICKY_NAME, seeds=[900])).json()["id"]
        assert c.post(f"/experiments/{exp_id}/cancel").json()["status"] == "cancelled"
    return index_server


def _rows(page: Any) -> Any:
    return page.locator("#experiments tbody tr[data-id]")


def _filter(page: Any, *, name: str | None = None, status: str | None = None) -> None:
    """Set a filter and wait until the table shows its answer."""
    table = page.locator("#experiments")
    if name is not None:
        page.get_by_label("Name").fill(name)
        expect(table).to_have_attribute("data-name", name.strip())
    if status is not None:
        page.get_by_label("Status").select_option(status)
        expect(table).to_have_attribute("data-status", status)


def test_pages_are_shells_with_a_strict_policy(page_server: Server, built: dict[str, Any]) -> None:
    """No data in the HTML (the scripts fetch it with the key), scripts only from the app."""
    for path in ("/", "/pages/new", f"/pages/experiments/{built['experiment']['id']}"):
        r = httpx.get(f"{page_server.url}{path}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        policy = r.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe-eval" not in policy
        assert built["experiment"]["name"] not in r.text
        assert "<script>" not in r.text and not re.search(r"\son[a-z]+\s*=", r.text, re.IGNORECASE)  # no inline code
    assert httpx.get(f"{page_server.url}/pages/experiments/..%2Fx").status_code == 404
    assert httpx.get(f"{page_server.url}/static/workbench/nope.js").status_code == 404
    plotly = httpx.get(f"{page_server.url}/static/workbench/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000


@needs_chromium
def test_experiments_page_lists_and_filters(page_server: Server, built: dict[str, Any], page: Any,
                                            tmp_path: Path) -> None:
    """On the shared server, where other tests (the fuzzer) queue experiments of their own: each check filters
    down to the experiments made here."""
    page.goto(f"{page_server.url}/")
    expect(_rows(page).first).to_be_visible()
    screenshot(page, tmp_path, "experiments-1280.png")
    exp = built["experiment"]
    done = page.locator(f'tr[data-id="{exp["id"]}"]')
    _filter(page, name=exp["name"].upper())  # any part, any case
    expect(done.locator(".status")).to_have_text("succeeded")
    expect(done.locator("td.progress")).to_have_text("100%")
    expect(done.get_by_role("link", name="html")).to_have_attribute(
        "href", f"/experiments/{exp['id']}/report?format=html")

    # the tricky name is shown as text, never as markup
    _filter(page, name="<b>&amp; test")
    expect(_rows(page)).to_have_count(1)
    expect(_rows(page).first.locator("td.name a")).to_have_text(TRICKY_NAME)
    assert page.locator("#experiments tbody b").count() == 0
    expect(page.locator("#summary")).to_have_text("1 experiment(s) match.")
    _filter(page, name="wb-no-such-experiment")
    expect(_rows(page)).to_have_count(0)
    expect(page.locator("#experiments tbody")).to_contain_text("No experiment matches these filters.")
    _filter(page, name='"quoted" 100%_x')  # LIKE's wildcards match only themselves (more in test_experiments)
    expect(_rows(page)).to_have_count(1)
    assert "100%25_x" in page.url  # the filter survives a reload
    page.reload()
    expect(page.get_by_label("Name")).to_have_value('"quoted" 100%_x')
    expect(_rows(page).first.locator("td.name a")).to_have_text(TRICKY_NAME)

    _filter(page, name=exp["name"], status="succeeded")
    expect(done).to_be_visible()
    _filter(page, status="cancelled")
    expect(done).to_have_count(0)
    _filter(page, name=TRICKY_NAME)
    expect(_rows(page).first.locator(".status")).to_have_text("cancelled")

    # keyboard: the name of an experiment is a link that opens its page
    _filter(page, name=exp["name"], status="")
    link = done.get_by_role("link", name=exp["name"])
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("succeeded")


@needs_chromium
def test_phone_width_is_readable(page_server: Server, built: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        for path in ("/", "/pages/new", f"/pages/experiments/{built['experiment']['id']}"):
            tab.goto(f"{page_server.url}{path}")
            expect(tab.locator("h1")).to_be_visible()
            if path == "/":
                expect(_rows(tab).first).to_be_visible()
            else:
                tab.wait_for_load_state("networkidle")
            # the page itself never scrolls sideways (a wide table scrolls inside its own box)
            assert tab.evaluate("document.documentElement.scrollWidth") <= 390, path
            screenshot(tab, tmp_path, f"{path.strip('/').replace('/', '-') or 'home'}-390.png")
    finally:
        context.close()


BAD_SPEC = """name: bad-line
dataset: {kind: synthetic, intrinsic_dims: [2], points_per_subspace: 100,
          queries_per_subspace: 5, ambient_dim: 16}
metric: cosine
k: 0
backends:
  - {name: exact}
"""


def _tiny_yaml(name: str, seed: int) -> str:
    return f"""# a tiny spec typed into the editor
name: {name}
dataset: {{kind: synthetic, intrinsic_dims: [2, 4], points_per_subspace: 200, queries_per_subspace: 5,
          ambient_dim: 16}}
metric: cosine
k: 5
seeds: [{seed}]
backends:
  - {{name: hnswlib, M: 8, ef_construction: 32, ef_search: [8, 16, 32]}}
  - {{name: exact}}
"""


@needs_chromium
def test_new_experiment_shows_errors_at_their_line_and_the_estimate(page_server: Server, page: Any,
                                                                    tmp_path: Path) -> None:
    page.goto(f"{page_server.url}/pages/new")
    spec = page.get_by_label("Spec")
    expect(page.locator("#example option[value=quickstart]")).to_have_count(1)
    expect(page.locator("#check-status")).to_have_text("The spec is valid.")  # quickstart, prefilled
    expect(page.locator("#estimate")).to_contain_text("12 indexes to build")
    screenshot(page, tmp_path, "new-1280.png")

    spec.fill(BAD_SPEC)
    expect(page.locator("#check-status")).to_have_text("1 problem(s) found.")
    problem = page.locator("#problems li")
    expect(problem).to_contain_text("Line 5: k: Input should be greater than or equal to 1")
    expect(spec).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Run")).to_be_disabled()
    problem.get_by_role("button", name="Line 5").click()  # selects the line in the editor
    assert page.evaluate("document.activeElement.id") == "spec"
    assert page.evaluate("(() => { const t = document.getElementById('spec');"
                         " return t.value.slice(t.selectionStart, t.selectionEnd); })()") == "k: 0"

    spec.fill("name: [unclosed\n")
    expect(problem).to_contain_text("not valid YAML/JSON")
    expect(problem).to_contain_text("Line 2")

    spec.fill(BAD_SPEC.replace("k: 0", "k: 5"))
    expect(page.locator("#check-status")).to_have_text("The spec is valid.")
    expect(page.locator("#estimate")).to_contain_text("1 indexes to build")
    expect(page.locator("#estimate")).to_contain_text("100 vectors × 16 dims")
    expect(page.get_by_role("button", name="Run")).to_be_enabled()

    examples = {e["name"]: e["text"] for e in httpx.get(f"{page_server.url}/specs/examples").json()}
    page.get_by_label("Example").select_option("lid-ordering")
    page.get_by_role("button", name="Load example").click()
    expect(spec).to_have_value(examples["lid-ordering"])
    page.get_by_label("Example").select_option("preset-pgvector")  # presets are in the gallery too
    page.get_by_role("button", name="Load example").click()
    expect(spec).to_have_value(examples["preset-pgvector"])
    expect(page.locator("#check-status")).to_have_text("The spec is valid.")
    expect(page.locator("#example-description")).to_contain_text("pgvector's default HNSW settings")


@pytest.fixture(scope="module")
def run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server and queue of its own: the worker must find only the job the form submits."""
    with own_server(tmp_path_factory.mktemp("workbench-run")) as srv:
        yield srv


@needs_chromium
def test_run_opens_the_experiment_page_which_follows_it_to_succeeded(run_server: Server, page: Any,
                                                                      tmp_path: Path) -> None:
    name = "workbench-run <i>"
    page.goto(f"{run_server.url}/pages/new")
    expect(page.locator("#check-status")).to_have_text("The spec is valid.")
    page.get_by_label("Spec").fill(_tiny_yaml('"workbench-run <i>"', 911))
    expect(page.locator("#estimate")).to_contain_text("2 indexes to build")
    run = page.get_by_role("button", name="Run")
    expect(run).to_be_enabled()
    run.click()
    page.wait_for_url("**/pages/experiments/*")
    exp_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#title")).to_have_text(name)
    expect(page.locator("#status")).to_have_text("queued")
    with run_server.client() as c:
        queued = c.get("/experiments", params={"status": "queued"}).json()["items"]
        assert [e["id"] for e in queued] == [exp_id]  # the form created it; the worker will find it alone

    worker: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: worker.update(done=run_worker_once(run_server)))
    thread.start()  # the page polls while the worker runs
    expect(page.locator("#status")).to_have_text("succeeded", timeout=300_000)
    thread.join()
    expect(page.locator("#percent")).to_have_text("100%")
    expect(page.get_by_role("link", name="Report (HTML)")).to_be_visible()
    expect(page.locator("#chart .main-svg").first).to_be_attached()  # plotly drew the chart
    expect(page.locator("#chart .legendtext")).to_have_count(1)  # one ordering (random)
    screenshot(page, tmp_path, "experiment-1280.png")


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose store holds 1,050 experiments (queued; no worker ever sees them)."""
    from indexer.engine.spec import parse_spec
    from indexer.service.store import Store

    srv = start_thread_server(tmp_path_factory.mktemp("workbench-crowded"))
    store = Store(f"sqlite:///{(srv.data_dir / 'indexer.db').resolve()}")
    template = parse_spec(make_spec("crowd"))
    for i in range(CROWD):
        store.submit(template.model_copy(update={"name": f"crowd {i:04d}", "seeds": [i]}))
    yield srv
    srv.stop()


CROWD = 1_050


def _shown_ms(page: Any) -> float:
    """Milliseconds from the navigation's start to the first rows in the table (experiments.js marks it)."""
    return float(page.evaluate("performance.getEntriesByName('experiments-shown')[0].startTime"))


@needs_chromium
def test_a_thousand_experiments_page_on_the_server(crowded: Server, page: Any) -> None:
    for _ in range(2):  # the second load is the one a user sees again and again: scripts cached, server warm
        page.goto(f"{crowded.url}/")
        expect(page.locator("#page-info")).to_have_text(f"1–50 of {CROWD:,}")
    shown_ms = _shown_ms(page)
    expect(_rows(page)).to_have_count(50)
    expect(_rows(page).first.locator("td.name")).to_have_text(f"crowd {CROWD - 1:04d}")  # newest first
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-info")).to_have_text(f"51–100 of {CROWD:,}")
    expect(_rows(page).first.locator("td.name")).to_have_text(f"crowd {CROWD - 51:04d}")
    _filter(page, name="crowd 104")
    expect(page.locator("#page-info")).to_have_text("1–10 of 10")  # a filter starts at the first page
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    # the issue asks for 200 ms; measured here 70-90 ms warm; the bound leaves room for a loaded CI machine
    print(f"experiments page with {CROWD:,} experiments: first rows {shown_ms:.0f} ms after navigation")
    assert shown_ms < 1_000


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_thread_server(tmp_path_factory.mktemp("workbench-keyed"), api_key=KEY)
    with srv.client(headers={"X-API-Key": KEY}) as c:
        assert c.post("/experiments", json=make_spec("keyed secret run", seeds=[77])).status_code == 202
    yield srv
    srv.stop()


@needs_chromium
def test_a_key_is_asked_once_and_kept_for_the_tab(keyed: Server, page: Any, request: pytest.FixtureRequest) -> None:
    # the browser logs each refused fetch (401) as a failed resource load
    request.node.allowed_console = ("status of 401",)
    page.goto(f"{keyed.url}/")
    form = page.locator("#key-form")
    expect(form).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    expect(page.get_by_text("keyed secret run")).to_have_count(0)

    page.get_by_label("API key").fill("wrong")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-problem")).to_contain_text("refused")
    expect(page.get_by_text("keyed secret run")).to_have_count(0)

    page.get_by_label("API key").fill(KEY)
    page.keyboard.press("Enter")
    expect(_rows(page).first.locator("td.name")).to_have_text("keyed secret run")
    expect(form).to_be_hidden()

    page.get_by_role("link", name="New experiment").click()  # the same tab: no second question
    expect(page.locator("#check-status")).to_have_text("The spec is valid.")
    expect(form).to_be_hidden()

    other = page.context.browser.new_context().new_page()  # another tab's session: asked again
    try:
        other.goto(f"{keyed.url}/")
        expect(other.locator("#key-form")).to_be_visible()
    finally:
        other.context.close()


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=60,
        )


@needs_chromium
def test_html_report_renders_sandboxed(page_server: Server, built: dict[str, Any]) -> None:
    """The report page is served sandboxed with no scripts allowed, and still renders (it has none)."""
    url = f"{page_server.url}/experiments/{built['experiment']['id']}/report?format=html"
    r = httpx.get(url)
    assert r.headers["content-security-policy"] == "sandbox"
    assert "<script" not in r.text.lower()
    assert r.headers["x-content-type-options"] == "nosniff"
    dom = _chromium("--dump-dom", "--virtual-time-budget=3000", url).stdout
    assert built["experiment"]["name"] in dom and "Recall" in dom


def test_the_readme_screenshots_are_the_tests_pngs() -> None:
    """Every screenshot the README shows is a file these tests write (by their names), and a real PNG."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", readme)
    assert len(shown) == 5, shown
    ours = set(re.findall(r'"([\w-]+-1280\.png)"', Path(__file__).read_text()
                          + (Path(__file__).parent / "test_pages_compare_explore.py").read_text()))
    for name in shown:
        path = Path(__file__).resolve().parents[2] / name
        assert path.name in ours, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

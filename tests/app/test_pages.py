"""GET /: the experiments page, rendered by headless Chromium (screenshot and DOM)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.apiharness import Server, make_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
TRICKY_NAME = "page <b>&amp; test"


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=60,
        )


@pytest.fixture(scope="module")
def page_server(index_server: Server, built: dict[str, Any]) -> Server:
    """The index server with a succeeded experiment and one whose name needs escaping (cancelled, so
    it never reaches a worker)."""
    with index_server.client() as c:
        exp_id = c.post("/experiments", json=make_spec(TRICKY_NAME, seeds=[900])).json()["id"]
        assert c.post(f"/experiments/{exp_id}/cancel").json()["status"] == "cancelled"
    return index_server


def test_page_html(page_server: Server, built: dict[str, Any]) -> None:
    r = httpx.get(f"{page_server.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "page &lt;b&gt;&amp;amp; test" in r.text  # escaped, never injected
    exp_id = built["experiment"]["id"]
    links = re.findall(r'href="(/experiments/[^"]+/report\?format=\w+)"', r.text)
    assert f"/experiments/{exp_id}/report?format=html" in links
    for link in links:
        assert httpx.get(f"{page_server.url}{link}").status_code == 200, link


@needs_chromium
def test_page_in_chromium(page_server: Server, built: dict[str, Any], tmp_path: Path) -> None:
    shot = tmp_path / "page.png"  # kept under pytest's basetemp for a look after the run
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,700", f"{page_server.url}/")
    assert shot.is_file(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5_000  # a blank page compresses far smaller

    dom = _chromium("--dump-dom", f"{page_server.url}/").stdout
    assert built["experiment"]["name"] in dom
    assert "page &lt;b&gt;&amp;amp; test" in dom  # shown as text, no <b> element made
    assert 'class="status succeeded"' in dom and 'class="status cancelled"' in dom


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

"""Screenshots the browser tests take: kept under the test's tmp_path, and also written to
$INDEXER_SCREENSHOTS_DIR when it is set (`INDEXER_SCREENSHOTS_DIR=docs/screenshots pytest tests/app/test_pages*.py`
makes the README's pictures, so they come from the tests, never from a hand-made page)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """A full-page PNG of `page` named `name` in tmp_path (and in $INDEXER_SCREENSHOTS_DIR)."""
    path = tmp_path / name
    page.screenshot(path=path, full_page=True)
    published = os.environ.get("INDEXER_SCREENSHOTS_DIR")
    if published:
        Path(published).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(published) / name)
    return path

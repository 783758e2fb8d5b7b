"""The LRU of loaded indexes: one load per index however many requests ask at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.index_cache import IndexCache


def test_concurrent_misses_load_once() -> None:
    calls: list[Path] = []
    lock = threading.Lock()

    def slow_loader(path: Path) -> str:
        with lock:
            calls.append(path)
        time.sleep(0.05)
        return f"loaded {path.name}"

    cache = IndexCache(slow_loader, capacity=2)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: cache.get("a", Path("/x/a")), range(16)))
    assert got == ["loaded a"] * 16 and calls == [Path("/x/a")]


def test_least_recently_used_is_evicted() -> None:
    loads: list[str] = []

    def loader(path: Path) -> str:
        loads.append(path.name)
        return path.name

    cache = IndexCache(loader, capacity=2)
    cache.get("a", Path("a"))
    cache.get("b", Path("b"))
    cache.get("a", Path("a"))  # a is now the most recent
    cache.get("c", Path("c"))  # evicts b
    assert len(cache) == 2
    cache.get("a", Path("a"))
    cache.get("b", Path("b"))
    assert loads == ["a", "b", "c", "b"]


def test_failed_load_is_not_cached() -> None:
    attempts = []

    def flaky(path: Path) -> str:
        attempts.append(path)
        if len(attempts) == 1:
            raise FileNotFoundError(path)
        return "ok"

    cache = IndexCache(flaky)
    try:
        cache.get("a", Path("a"))
    except FileNotFoundError:
        pass
    assert cache.get("a", Path("a")) == "ok" and len(attempts) == 2


def test_peek_never_loads() -> None:
    cache = IndexCache(lambda p: p.name)
    assert cache.peek("a") is None
    cache.get("a", Path("a"))
    assert cache.peek("a") == "a"

"""A small LRU of loaded indexes: loading reads and checks a file, far slower than a search.

Loads of different indexes run in parallel; concurrent requests for the same index wait for one load.
An evicted index stays alive while requests still hold it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class IndexCache:
    def __init__(self, loader: Callable[[Path], Any], capacity: int = 4) -> None:
        self._loader = loader
        self._capacity = max(1, capacity)
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, key: str) -> Any | None:
        """The loaded index if cached (marking it recently used), else None; never loads."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def get(self, key: str, path: Path) -> Any:
        """The loaded index for `key`, loading it from `path` on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another request may have loaded it while we waited
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            log.info("loading index %s from %s", key, path)
            loaded = self._loader(path)
            with self._lock:
                self._items[key] = loaded
                self._items.move_to_end(key)
                while len(self._items) > self._capacity:
                    evicted, _ = self._items.popitem(last=False)
                    log.info("evicted index %s from the cache", evicted)
                self._loading.pop(key, None)
            return loaded

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

"""An index-wide search setting that concurrent searches share.

hnswlib's ef and usearch's expansion live on the index, not on the call (hnswlib#64): a search that sets
one value while another is running changes that one's answer. A plain lock around set-and-search is
correct but serialises every client, so concurrent QPS would measure the wrapper's lock, not the library
(which searches in parallel with the GIL released, hnswlib#29/#104). Here searches that need the value
already set run together; one that needs another value waits until they finish, then sets it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedSetting(Generic[T]):
    """`with setting.holding(v):` runs the block while the index's setting is `v`, and no one changes it."""

    def __init__(self, apply: Callable[[T], None]):
        self._apply = apply
        self._cond = threading.Condition()
        self._value: T | None = None
        self._active = 0

    @contextmanager
    def holding(self, value: T) -> Iterator[None]:
        with self._cond:
            while self._active and self._value != value:
                self._cond.wait()
            if self._active == 0 and self._value != value:
                self._apply(value)
                self._value = value
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    def forget(self) -> None:
        """The index was replaced (built or loaded): its setting is unknown until the next search sets it."""
        with self._cond:
            while self._active:
                self._cond.wait()
            self._value = None

"""Library loggers that say nothing a log reader needs: quieted wherever this project configures logging."""

from __future__ import annotations

import logging

# faiss's loader reports each instruction set it tries at INFO, including "Could not load library with AVX512
# support due to: ModuleNotFoundError" on every CPU without that build: a normal fallback that reads as an
# error. alembic names its plugins at INFO on every start-up.
QUIET_LOGGERS = ("faiss.loader", "alembic")


def quiet_library_loggers() -> None:
    """QUIET_LOGGERS at WARNING: their failures still show, their start-up chatter does not. Call it before
    faiss is first imported (it logs while it loads)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

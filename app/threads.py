"""Thread counts for the server process, set once at startup.

The server is concurrent across requests (FastAPI's threadpool), so each search should use few threads
of its own: otherwise every request thread may spawn a full OpenMP/BLAS pool and 2 cores thrash.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(threads: int) -> None:
    """Cap OpenMP (faiss), BLAS (numpy) and torch threads at `threads` per calling thread."""
    # read by libraries loaded later (torch reads OMP_NUM_THREADS when first imported)
    for var in _ENV_VARS:
        os.environ.setdefault(var, str(threads))
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss is a dependency; keep the server up regardless
        log.warning("faiss not importable; OpenMP threads not set")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # no context manager: the limit stays for the process
    except ImportError:  # pragma: no cover
        log.warning("threadpoolctl not importable; BLAS threads not set")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    log.info("search threads per request: %d", threads)

"""The FastAPI app: `create_app(settings)` for tests and embedding, `app` for `uvicorn app.main:app`.

The API only reads results and queues jobs; experiments run in the worker (`indexer worker`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.api.deps import ApiKey, Services
from app.api.errors import install_error_handlers
from app.api.routes import datasets, experiments, health, indexes, pages, specs
from app.docs import install_docs
from app.index_cache import IndexCache
from app.limits import BodyDeadline, BodySizeLimit, ServerLimits
from app.openapi import install_schema_rules
from app.threads import limit_threads
from indexer.service.store import Store
from indexer.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    store = Store(settings.resolved_database_url, max_attempts=settings.job_max_attempts)
    store.migrate()
    return store


def _index_loader(data_dir: Path) -> Callable[[Path], Any]:
    """open_index confined to data_dir (it refuses paths outside it and checks checksums)."""

    def load(path: Path) -> Any:
        from indexer.service.artifacts import open_index

        return open_index(path, data_dir=data_dir)

    return load


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, configure_threads: bool = True,
    limits: ServerLimits | None = None,
) -> FastAPI:
    """Build the app; the store opens (and migrates) at startup unless one is given.

    `configure_threads=False` leaves the process's thread limits alone (an app embedded in a
    process that has its own, such as a test run). `limits` default to the environment's.
    """
    settings = settings or get_settings()
    limits = limits or ServerLimits()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_threads:
            limit_threads(settings.search_threads)
        app.state.services = Services(
            settings=settings,
            store=store if store is not None else _open_store(settings),
            indexes=IndexCache(
                _index_loader(settings.data_dir),
                capacity=settings.index_cache_size,
            ),
        )
        log.info("serving data dir %s, store %s", settings.data_dir, _redacted(settings))
        _load_text_models(app.state.services.store, settings.cache_dir)
        yield

    app = FastAPI(
        title="indexer",
        summary="HNSW recall against exact kNN: experiments, built indexes, search and evaluation",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local files
        redoc_url=None,
    )
    install_docs(app)
    install_schema_rules(app)
    install_error_handlers(app)
    app.include_router(health.router)
    # without a key the check is left out entirely (and the schema shows no security scheme); an empty
    # INDEXER_API_KEY (as compose passes when unset) means no key, not "the empty key"
    guard = [ApiKey] if settings.api_key else []
    for module in (datasets, experiments, indexes, specs):
        app.include_router(module.router, dependencies=guard)
    # the workbench's pages and files hold no data (their scripts fetch it with the key): no key needed
    app.include_router(pages.router)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    # added last, so it runs first: BodySizeLimit reads the body through its deadline
    app.add_middleware(BodyDeadline, seconds=limits.body_timeout_seconds)
    return app


def _load_text_models(store: Store, cache_dir: Path) -> None:
    """Load the embedding model of every text index now, so the first text search does not pay for it
    (11.6 s once); a model that fails to load is logged, and its searches answer 422 as before."""
    from indexer.datasets.embed import load_model

    for model in store.index_models():
        started = time.perf_counter()
        try:
            load_model(model, cache_dir)
        except Exception as err:  # noqa: BLE001 - the server still serves everything else
            log.warning("embedding model %s not loaded at start: %s", model, err)
            continue
        log.info("embedding model %s loaded in %.1f s", model, time.perf_counter() - started)


def _redacted(settings: Settings) -> str:
    """The database URL without its password, for the log."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a log line must not stop the server
        return "<unparsable database url>"


app = create_app()

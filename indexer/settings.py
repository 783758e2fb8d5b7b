"""Settings from the environment (prefix INDEXER_), shared by the CLI, the worker and the API."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.backends.declaration import MAX_EF
from indexer.engine.admission import Limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore")

    data_dir: Path = Path(".indexer-data")
    database_url: str | None = None  # default: SQLite inside data_dir
    api_key: SecretStr | None = None  # never printed: repr and logs show '**********'
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 3
    job_cancel_poll_seconds: float = 1.0  # how often a worker looks for a cancel of its running job
    job_cancel_grace_seconds: float = 2.0  # then the child may stop at a cell boundary; then SIGTERM
    job_kill_grace_seconds: float = 2.0  # after SIGTERM, SIGKILL
    job_shutdown_grace_seconds: float = 5.0  # a stopping worker's child, before SIGTERM
    # per request: what one search or evaluate call may ask for (422 past any of these)
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1024  # query vectors or texts
    max_k: int = 1000
    max_ef: int = MAX_EF  # the same ceiling as a spec's ef_search values
    max_results_per_request: int = 100_000  # queries x k (x ef values, for evaluate)
    max_text_chars: int = 2000  # one query text; the model reads its first 256 tokens anyway
    max_title_chars: int = 200  # one hit's title in a response
    search_threads: int = 1  # threads per request; the server is concurrent across requests
    # where a job's cells run (indexer.engine.executors.config.executor_config checks them): local processes or
    # Ray; cells at once (None: all cores)
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None  # a Ray cluster's head, host:port or ray://...; None: a local Ray per run
    index_cache_size: int = 4  # loaded indexes the server keeps; each holds its vectors and graph
    # the workbench's gallery of example specs (GET /examples); None: examples/ of the source checkout
    examples_dir: Path | None = None
    # per job: what one spec may ask for (indexer.engine.admission; the CLI may lift these, the API may not)
    max_cells: int = Limits.max_cells
    max_base_bytes: int = Limits.max_base_bytes
    max_queries: int = Limits.max_queries
    max_clusters: int = Limits.max_clusters
    max_embedded_texts: int = Limits.max_embedded_texts
    max_work: float = Field(default=Limits.max_work, gt=0, allow_inf_nan=False)  # estimated core-hours
    max_index_bytes: int = Limits.max_index_bytes

    def limits(self) -> Limits:
        return Limits(max_cells=self.max_cells, max_base_bytes=self.max_base_bytes, max_queries=self.max_queries,
                      max_clusters=self.max_clusters, max_embedded_texts=self.max_embedded_texts,
                      max_work=self.max_work, max_index_bytes=self.max_index_bytes)

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'indexer.db').resolve()}"


class ServerLimits(BaseSettings):
    """Per-connection limits of the HTTP server, from the environment (prefix INDEXER_)."""

    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore")

    # 30 s lets the largest body (max_body_bytes, 8 MiB) arrive at 2.3 Mbit/s
    body_timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)  # from a request's headers to the last byte of its body; 408 after
    # from a connection's opening, or a request's first byte, to the end of its headers; 408 and closed after
    # (a connection that sent nothing is closed without an answer). In `indexer serve` (app/http_protocol.py)
    header_timeout_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    keep_alive_seconds: int = Field(default=5, ge=1)  # an idle connection between requests is closed after this
    # concurrent connections and requests; past it the server answers 503 (JSON, with Retry-After). Each may
    # buffer a body of up to max_body_bytes, so 100 bound the buffered bodies to 800 MiB by default
    max_connections: int = Field(default=100, ge=1)

    def uvicorn_options(self) -> dict[str, Any]:
        """The keyword arguments of `uvicorn.run` that apply these limits."""
        return {"timeout_keep_alive": self.keep_alive_seconds, "limit_concurrency": self.max_connections}


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings from the environment (prefix INDEXER_), shared by the CLI, the worker and the API."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore")

    data_dir: Path = Path(".indexer-data")
    database_url: str | None = None  # default: SQLite inside data_dir
    api_key: str | None = None
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 3
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1024
    max_ef: int = 4096
    search_threads: int = 1  # threads per request; the server is concurrent across requests

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'indexer.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

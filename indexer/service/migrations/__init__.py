"""Alembic migrations for the job store; run by `indexer.service.store.Store.migrate()`."""

"""Alembic migrations for the job store; run by `indexer.store.Store.migrate()`."""

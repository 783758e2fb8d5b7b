"""The HTTP service: FastAPI routers over the engine in `indexer/` (which never imports this package)."""

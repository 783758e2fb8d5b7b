"""The HTTP service: FastAPI routers over the engine in `indexer/` (which never imports this package)."""

from indexer.common.logs import quiet_library_loggers

# before any module of the app imports faiss, whose loader logs its fallbacks as it loads (`uvicorn app.main:app`
# with an INFO log config, `indexer serve`)
quiet_library_loggers()

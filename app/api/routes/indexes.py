"""Built indexes: list them, search one, measure its recall against exact search.

Endpoints are plain `def`, so FastAPI runs them in its threadpool and many searches proceed at once;
the loaded index keeps a per-call ef, so concurrent requests with different ef do not interfere.
"""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse

from app.api.deps import Services, ServicesDep, SettingsDep, StoreDep
from app.api.errors import error_responses
from app.api.routes.experiments import report_dir
from app.schemas import (
    MAX_OFFSET,
    MAX_PAGE,
    EvaluateOut,
    EvaluateRequest,
    IndexOut,
    IndexPage,
    QueryAnswerOut,
    QueryMeasuresOut,
    SearchOut,
    SearchRequest,
    plausible_id,
)
from indexer.model.results import QUERY_MEASURE_FIELDS, DenseRow
from indexer.service.artifacts import ArtifactError
from indexer.service.views import IndexSummary, IndexView
from indexer.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/indexes", tags=["indexes"], responses=error_responses(401, 503))


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def to_out(view: IndexView) -> IndexOut:
    return IndexOut.model_validate(view.model_dump(include=set(IndexSummary.model_fields)))


def _view_or_404(store: Any, index_id: str) -> Any:
    view = store.get_index(index_id) if plausible_id(index_id) else None
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no index with id {index_id!r}")
    return view


def _load(index_id: str, services: Services) -> Any:
    """The loaded index; its file path comes from the store, and open_index confines it to data_dir.

    A cached index answers without a store query: an index id names one immutable build (the cell key).
    """
    cached = services.indexes.peek(index_id)
    if cached is not None:
        return cached
    view = _view_or_404(services.store, index_id)
    try:
        return services.indexes.get(view.id, services.settings.data_dir / view.path)
    except (ArtifactError, OSError) as err:
        # missing, unfinished or corrupted files: a server-side state the client cannot fix by retrying
        log.error("index %s cannot be opened: %s", view.id, err)
        raise HTTPException(status.HTTP_409_CONFLICT, f"index {view.id} cannot be opened: {err}") from None


def _queries(vectors: list[list[float]], index: Any, settings: Settings, field: str) -> np.ndarray:
    """Vectors as a float32 (q, dim) array, or a 422 naming the row and the problem."""
    if len(vectors) > settings.max_batch:
        raise _unprocessable(f"{field}: {len(vectors)} vectors exceed the batch limit of {settings.max_batch}")
    for row, vec in enumerate(vectors):
        if len(vec) != index.dim:
            raise _unprocessable(
                f"{field}[{row}] has dimension {len(vec)}, but index {index.id} takes {index.dim}"
            )
    queries = np.asarray(vectors, dtype=np.float32)
    finite = np.isfinite(queries).all(axis=1)
    if not finite.all():  # values finite as JSON doubles can still overflow float32
        row = int(np.flatnonzero(~finite)[0])
        raise _unprocessable(f"{field}[{row}] holds values outside the float32 range")
    if index.metric == "cosine":
        zero = ~queries.any(axis=1)
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            raise _unprocessable(f"{field}[{row}] is all zeros: cosine similarity needs a non-zero vector")
    return queries


def _check_k(k: int, index: Any, settings: Settings) -> None:
    if k > settings.max_k:
        raise _unprocessable(f"k: {k} exceeds the server's max_k of {settings.max_k}")
    if k > index.n:
        raise _unprocessable(f"k: {k} exceeds the {index.n} vectors in index {index.id}")


def _check_results(queries: int, k: int, settings: Settings, field: str, sweeps: int = 1) -> None:
    """Bound the work and the response of one request: queries x k (x ef values) results at most."""
    results = queries * k * sweeps
    if results > settings.max_results_per_request:
        per = f" x {sweeps} ef values" if sweeps > 1 else ""
        raise _unprocessable(
            f"{field}: {queries} queries x k={k}{per} = {results:,} results exceed the server's "
            f"max_results_per_request of {settings.max_results_per_request:,}; send fewer queries or a smaller k"
        )


def _check_texts(texts: list[str], settings: Settings) -> None:
    if len(texts) > settings.max_batch:
        raise _unprocessable(f"texts: {len(texts)} texts exceed the batch limit of {settings.max_batch}")
    for row, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            raise _unprocessable(
                f"texts[{row}] has {len(text):,} characters, over the server's max_text_chars of "
                f"{settings.max_text_chars:,}"
            )


def _check_ef(ef: int, settings: Settings, field: str = "ef") -> None:
    if ef > settings.max_ef:
        raise _unprocessable(f"{field}: {ef} exceeds the server's max_ef of {settings.max_ef}")


def _score(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _clip(title: str | None, limit: int) -> str | None:
    return title if title is None or len(title) <= limit else title[: limit - 1] + "\u2026"


@router.get("", response_model=IndexPage, responses=error_responses(422))
def list_indexes(
    store: StoreDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    experiment_id: Annotated[str | None, Query(max_length=64, description="only this experiment's indexes")] = None,
) -> IndexPage:
    """The indexes the worker has built and kept, newest first, a page at a time."""
    if experiment_id is not None and not plausible_id(experiment_id):
        return IndexPage(items=[], total=0, offset=offset, limit=limit)  # no experiment has such an id
    views, total = store.page_indexes(offset=offset, limit=limit, experiment_id=experiment_id)
    return IndexPage(items=[to_out(v) for v in views], total=total, offset=offset, limit=limit)


@router.get("/{index_id}", response_model=IndexOut, responses=error_responses(404))
def get_index(index_id: str, store: StoreDep) -> IndexOut:
    return to_out(_view_or_404(store, index_id))


@router.post("/{index_id}/search", response_model=SearchOut, responses=error_responses(404, 409, 413, 422))
def search(index_id: str, body: SearchRequest, services: ServicesDep) -> JSONResponse:
    """k nearest neighbours of each vector (or embedded text), in the dataset's own numbering; an ef below
    k searches with k."""
    settings = services.settings
    index = _load(index_id, services)
    _check_k(body.k, index, settings)
    if body.ef is not None:
        _check_ef(body.ef, settings)
    field, asked = ("texts", body.texts) if body.texts is not None else ("vectors", body.vectors)
    assert asked is not None  # the model guarantees exactly one
    _check_results(len(asked), body.k, settings, field)
    if body.texts is not None:
        _check_texts(body.texts, settings)
        if not index.is_text:
            raise _unprocessable(f"texts: index {index.id} was not built from text; send 'vectors'")
        queries = np.ascontiguousarray(index.embed(body.texts), dtype=np.float32)
    else:
        assert body.vectors is not None  # the model guarantees exactly one
        queries = _queries(body.vectors, index, settings, "vectors")
    ids, scores = index.search(queries, body.k, max(body.ef, body.k) if body.ef is not None else None)
    results = [
        [
            {"id": int(i), "score": _score(s), "title": _clip(index.title(int(i)), settings.max_title_chars)}
            for i, s in zip(row_ids.tolist(), row_scores.tolist(), strict=True)
            if i >= 0  # -1 pads rows with fewer than k results
        ]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]
    # built from plain ints, finite floats and str|None, so it skips FastAPI's second validation pass
    # (a measurable share of a single-vector search); schemathesis checks it against SearchOut
    return JSONResponse({"results": results})


@router.post("/{index_id}/evaluate", response_model=EvaluateOut, responses=error_responses(404, 409, 413, 422))
def evaluate(index_id: str, body: EvaluateRequest, services: ServicesDep) -> EvaluateOut:
    """Recall@k per ef against exact search over the index's own vectors, per query and on average.

    Measured as the report measures it: a returned id exactly as near as the k-th true neighbour is a
    hit, and a reduced index is judged against exact search in the original space. An ef below k is
    measured, and reported, as k: every backend searches with at least k.
    """
    settings = services.settings
    index = _load(index_id, services)
    _check_k(body.k, index, settings)
    for pos, ef in enumerate(body.ef):
        _check_ef(ef, settings, field=f"ef[{pos}]")
    efs = list(dict.fromkeys(max(ef, body.k) for ef in body.ef))  # keep order, drop repeats
    if body.vectors is not None:
        queries, source = _queries(body.vectors, index, settings, "vectors"), "given"
    else:
        queries, source = np.ascontiguousarray(index.held_out_queries(), dtype=np.float32), "held_out"
        if queries.ndim != 2 or len(queries) == 0:
            raise _unprocessable(f"index {index.id} has no held-out queries; send 'vectors'")
    _check_results(len(queries), body.k, settings, "vectors" if source == "given" else "held-out queries",
                   sweeps=len(efs))
    # the engine's own measure (tie-tolerant, in the original space), so this agrees with the report's rows
    recalls = index.recall(queries, body.k, efs)
    results = [
        {"ef": ef, "recall": round(float(per_query.mean()), 4), "per_query": per_query.round(4).tolist()}
        for ef, per_query in zip(efs, recalls, strict=True)
    ]
    return EvaluateOut.model_validate(
        {"index_id": index.id, "k": body.k, "n_queries": len(queries), "queries": source,
         "results": results}
    )


@router.get("/{index_id}/queries/{query}", response_model=QueryAnswerOut,
            responses=error_responses(404, 409, 422))
def answer_query(
    index_id: str,
    query: Annotated[int, Path(ge=0, le=MAX_OFFSET, description="a query's number among the dataset's queries")],
    services: ServicesDep,
    k: Annotated[int, Query(ge=1, description="neighbours to show; at most the server's max_k")] = 10,
    ef: Annotated[int | None, Query(ge=1, description="search breadth, at most the server's max_ef; "
                                                       "below k (and by default) k")] = None,
) -> QueryAnswerOut:
    """One of the dataset's held-out queries (the numbering of the rows' neighbour files): the index's top k
    at `ef` beside the exact top k over the vectors the index holds, each score exact in the original space,
    each returned id marked as a hit or a miss as the report counts recall (a tie with the k-th true
    neighbour is a hit). What the workbench's index explorer shows."""
    settings = services.settings
    index = _load(index_id, services)
    _check_k(k, index, settings)
    if ef is not None:
        _check_ef(ef, settings)
    n_queries = len(index.held_out_queries())
    if query >= n_queries:
        raise _unprocessable(f"query: {query} is not one of index {index.id}'s {n_queries} held-out queries "
                             f"(0 to {n_queries - 1})")
    used_ef = max(ef, k) if ef is not None else k
    answer = index.answer_query(query, k, used_ef)
    true_rank = {int(i): r for r, i in enumerate(answer.truth_ids.tolist()) if i >= 0}
    found_rank = {int(i): r for r, i in reversed(list(enumerate(answer.found_ids.tolist()))) if i >= 0}
    found = [
        {"id": int(i), "score": _score(s), "title": _clip(index.title(int(i)), settings.max_title_chars),
         "hit": bool(h), "true_rank": true_rank.get(int(i))}
        for i, s, h in zip(answer.found_ids.tolist(), answer.found_scores.tolist(), answer.hits.tolist(), strict=True)
        if i >= 0  # -1 pads an answer with fewer than k results
    ]
    exact = [
        {"id": int(i), "score": _score(s), "title": _clip(index.title(int(i)), settings.max_title_chars),
         "found_rank": found_rank.get(int(i))}
        for i, s in zip(answer.truth_ids.tolist(), answer.truth_scores.tolist(), strict=True) if i >= 0
    ]
    return QueryAnswerOut.model_validate(
        {"index_id": index.id, "query": query, "n_queries": n_queries, "k": k, "ef": used_ef,
         "recall": round(answer.recall, 4), "higher_is_better": answer.higher_is_better,
         "found": found, "exact": exact})


@router.get("/{index_id}/queries/{query}/measures", response_model=QueryMeasuresOut,
            responses=error_responses(404, 422))
def query_measures(
    index_id: str,
    query: Annotated[int, Path(ge=0, le=MAX_OFFSET, description="a query's number among the dataset's queries")],
    store: StoreDep,
    settings: SettingsDep,
) -> QueryMeasuresOut:
    """The query's LID, relative contrast, expansion and distance to the nearest k-means centre in the index's
    space, as the experiment's report published them (404 when it published none)."""
    view = _view_or_404(store, index_id)
    path = _measures_file(settings, store.get(view.experiment_id), view.id)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the report of index {view.id} has no query measures")
    measures = np.load(path, mmap_mode="r", allow_pickle=False)
    if measures.dtype.names is None or not set(QUERY_MEASURE_FIELDS) <= set(measures.dtype.names):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the query measures of index {view.id} are of an older format")
    if query >= len(measures):
        raise _unprocessable(f"query: {query} is not one of index {view.id}'s {len(measures)} held-out queries "
                             f"(0 to {len(measures) - 1})")
    record = measures[query]
    return QueryMeasuresOut.model_validate(
        {"index_id": view.id, "query": query, **{name: _score(float(record[name])) for name in QUERY_MEASURE_FIELDS}})


def _measures_file(settings: Settings, job: Any, index_id: str) -> pathlib.Path | None:
    """The query measures file a succeeded job's rows of this index name, if it is a regular file inside the
    job's report folder."""
    if job is None or job.status != "succeeded":
        return None
    row = next((r for r in job.rows or [] if isinstance(r, DenseRow) and r.cell == index_id
                and r.query_measures is not None), None)
    folder = report_dir(settings, job)
    if row is None or row.query_measures is None or folder is None:
        return None
    try:
        path = (folder / row.query_measures).resolve(strict=True)
    except (OSError, ValueError):
        return None
    return path if path.is_relative_to(folder) and path.is_file() else None

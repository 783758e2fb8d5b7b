"""A user corpus in the BEIR layout: corpus.jsonl, queries.jsonl and optional qrels/test.tsv.

This is how users bring relevance judgements (no packaged corpus ships any). Documents embed as
`title + " " + text`; with qrels, only judged queries are kept, so IR metrics are defined for all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from indexer.common.errors import DataError
from indexer.datasets.base import Dataset
from indexer.datasets.embed import embed_texts
from indexer.model.datasets import DEFAULT_MODEL, BeirDataset

log = logging.getLogger(__name__)

QRELS_FILE = Path("qrels") / "test.tsv"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records with a string `_id`; errors name the file and the 1-based line."""
    if not path.is_file():
        raise DataError(f"BEIR file not found: {path}")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open("rb") as f:  # bytes, so that bad UTF-8 is reported with its line too
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{path.name} line {lineno}: not valid UTF-8") from None
            except json.JSONDecodeError as err:
                raise DataError(f"{path.name} line {lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(rec, dict) or "_id" not in rec:
                raise DataError(f"{path.name} line {lineno}: expected an object with an '_id'")
            rec["_id"] = str(rec["_id"])
            if rec["_id"] in seen:
                raise DataError(f"{path.name} line {lineno}: duplicate _id {rec['_id']!r}")
            seen.add(rec["_id"])
            records.append(rec)
    if not records:
        raise DataError(f"{path.name} holds no records")
    return records


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query-id -> {corpus-id: score}; the header line is optional."""
    qrels: dict[str, dict[str, int]] = {}
    # undecodable bytes become U+FFFD: such ids match nothing and are dropped with a warning
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if not line.strip() or (lineno == 1 and parts[0] == "query-id"):
                continue
            try:
                qid, did, score = parts
                qrels.setdefault(qid, {})[did] = int(score)
            except ValueError:
                raise DataError(
                    f"{path.name} line {lineno}: expected 'query-id<TAB>corpus-id<TAB>integer score'"
                ) from None
    return qrels


def _doc_text(rec: dict[str, Any]) -> str:
    title = str(rec.get("title") or "").strip()
    text = str(rec.get("text") or "").strip()
    return f"{title} {text}".strip()


def known_qrels(
    qrels: dict[str, dict[str, int]], doc_ids: set[str], query_ids: set[str]
) -> dict[str, dict[str, int]]:
    """Drop judgements on unknown ids and queries with no relevant document left."""
    kept: dict[str, dict[str, int]] = {}
    dropped = 0
    for qid, judged in qrels.items():
        if qid not in query_ids:
            dropped += len(judged)
            continue
        known = {d: s for d, s in judged.items() if d in doc_ids}
        dropped += len(judged) - len(known)
        if any(s > 0 for s in known.values()):
            kept[qid] = known
    if dropped:
        log.warning("qrels: dropped %d judgements that name unknown query or document ids", dropped)
    if not kept:
        raise DataError("qrels match no known query and document ids: nothing left to evaluate")
    return kept


def load(spec: BeirDataset, *, model: str | None = None, cache_dir: Path) -> Dataset:
    model = model or DEFAULT_MODEL
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DataError(f"BEIR directory not found: {root}")
    corpus = read_jsonl(root / "corpus.jsonl")
    queries = read_jsonl(root / "queries.jsonl")
    doc_ids = [r["_id"] for r in corpus]
    qrels = None
    if (root / QRELS_FILE).is_file():
        qrels = known_qrels(read_qrels(root / QRELS_FILE), set(doc_ids), {q["_id"] for q in queries})
        queries = [q for q in queries if q["_id"] in qrels]
    if spec.queries is not None and spec.queries < len(queries):
        rows = np.sort(np.random.default_rng(spec.seed).choice(len(queries), spec.queries, replace=False))
        queries = [queries[i] for i in rows]
    query_ids = [q["_id"] for q in queries]
    if qrels is not None:
        qrels = {qid: qrels[qid] for qid in query_ids}
    texts = [_doc_text(r) for r in corpus]
    query_texts = [str(q.get("text") or "").strip() for q in queries]
    return Dataset(
        name=f"beir-{root.name}",
        base=embed_texts(texts, model, cache_dir, kind="doc"),
        queries=embed_texts(query_texts, model, cache_dir, kind="query"),
        texts=texts,
        query_texts=query_texts,
        titles=[(str(r.get("title") or "").strip() or t)[:120] for r, t in zip(corpus, texts, strict=True)],
        doc_ids=doc_ids,
        query_ids=query_ids,
        qrels=qrels,
        model=model,
    )

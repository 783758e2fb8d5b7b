"""Builds gather `vectors[order]` a chunk at a time (indexer.backends.base.chunks), never a permuted copy of the
whole matrix: a deterministic backend built in chunks of 97 rows answers (and saves) exactly as one built in a
single chunk, the COPY stream pgvector sends is the same bytes either way, and every backend builds from a
read-only memmap of the base matrix."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.backends import BACKENDS, base
from tests.indexer.backends import kit

SMALL = 97  # rows per chunk: a prime, so no chunk boundary lines up with a library's own power-of-two sizes
HUGE = 1 << 40
EF = 10  # low, on lean graphs: a different graph shows in the answers
# the deterministic backends whose build adds the rows in BUILD_CHUNK chunks, with lean graphs
CHUNKED: dict[str, dict[str, Any]] = {
    "hnswlib": {"M": 4, "ef_construction": 16},
    "faiss_hnsw": {"M": 4, "ef_construction": 16},
    "exact": {},
    "usearch": {"M": 4, "ef_construction": 16},
    "voyager": {"M": 4, "ef_construction": 16},
    "duckdb_vss": {"M": 4, "ef_construction": 16},
    "lancedb": {"M": 4, "ef_construction": 16},
}


def _require(name: str) -> None:
    if not BACKENDS[name].library.installed():
        pytest.skip(f"{BACKENDS[name].library.distribution} is not installed")


def _spy_on_chunks(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Record the size of every chunk the backend's build takes (through base.chunks, so BUILD_CHUNK holds)."""
    sizes: list[int] = []

    def spy(order: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
        for rows in base.chunks(order, size):
            sizes.append(len(rows))
            yield rows

    monkeypatch.setattr(sys.modules[BACKENDS[name].index.__module__], "chunks", spy)
    return sizes


def _build_and_answer(name: str, x: np.ndarray, order: np.ndarray, q: np.ndarray, saved: Path | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    index = kit.build(name, CHUNKED.get(name, {}), x, order, "ip", seed=3)
    try:
        if saved is not None:
            saved.mkdir()
            index.save(saved / "index")
        return index.search(q, 10, EF)
    finally:
        index.close()


def _saved_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_chunks_cover_the_order_in_consecutive_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    order = np.random.default_rng(0).permutation(1000)
    monkeypatch.setattr(base, "BUILD_CHUNK", SMALL)
    got = list(base.chunks(order))
    assert [len(c) for c in got] == [SMALL] * (1000 // SMALL) + [1000 % SMALL]
    np.testing.assert_array_equal(np.concatenate(got), order)
    assert [len(c) for c in base.chunks(order, 400)] == [400, 400, 200]
    assert list(base.chunks(order[:0])) == []
    with pytest.raises(ValueError, match="positive"):
        list(base.chunks(order, 0))


@pytest.mark.parametrize("name", list(CHUNKED))
def test_chunked_build_is_the_one_chunk_build(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The claim that adding consecutive chunks of `order` builds what one call does, checked on the answers
    (ids and scores) and, for a backend that saves to a file, on the saved bytes."""
    _require(name)
    assert BACKENDS[name].capabilities.deterministic, f"{name}: only a deterministic build can be compared"
    servable = BACKENDS[name].capabilities.servable
    x, q = kit.clustered_data(n=2000, q=200, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    sizes = _spy_on_chunks(monkeypatch, name)

    monkeypatch.setattr(base, "BUILD_CHUNK", HUGE)
    whole_ids, whole_scores = _build_and_answer(name, x, order, q, tmp_path / "whole" if servable else None)
    assert sizes == [len(x)]
    sizes.clear()
    monkeypatch.setattr(base, "BUILD_CHUNK", SMALL)
    part_ids, part_scores = _build_and_answer(name, x, order, q, tmp_path / "parts" if servable else None)
    assert len(sizes) == -(-len(x) // SMALL) and sum(sizes) == len(x)

    np.testing.assert_array_equal(part_ids, whole_ids)
    np.testing.assert_array_equal(part_scores, whole_scores)
    if servable:
        assert _saved_bytes(tmp_path / "parts") == _saved_bytes(tmp_path / "whole")


@pytest.mark.parametrize("precision", ["f32", "f16"])  # a vector column, a halfvec column
def test_pgvector_copy_stream_is_the_same_in_chunks(precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pgvector is not deterministic, so its chunked COPY is checked on what it sends: the same bytes."""
    from indexer.backends.pgvector_index import COPY_SIGNATURE, COPY_TRAILER, PgvectorIndex

    x, _ = kit.clustered_data(n=1000)
    order = np.random.default_rng(2).permutation(len(x))
    index = PgvectorIndex(x.shape[1], "ip", M=4, ef_construction=16, precision=precision, seed=0)  # no server yet
    monkeypatch.setattr(base, "BUILD_CHUNK", HUGE)
    whole = list(index._copy_data(x, order))
    monkeypatch.setattr(base, "BUILD_CHUNK", SMALL)
    parts = list(index._copy_data(x, order))
    assert len(whole) == 3 and len(parts) == 2 + -(-len(x) // SMALL)
    assert parts[0] == COPY_SIGNATURE and parts[-1] == COPY_TRAILER
    assert b"".join(parts) == b"".join(whole)


@pytest.fixture
def read_only_base(tmp_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The base matrix in memory, the same matrix as a read-only memmap of an .npy file, and queries."""
    x, q = kit.clustered_data(n=1000)
    path = tmp_path / "base.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=x.shape)
    out[:] = x
    out.flush()
    del out
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    return x, mapped, q


@pytest.mark.parametrize("name", list(BACKENDS))
def test_build_from_a_read_only_memmap(name: str, read_only_base: tuple[np.ndarray, np.ndarray, np.ndarray],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backend builds from a read-only memmap (in several chunks): a deterministic one answers as when
    built from the array in memory, any other finds the true neighbours."""
    _require(name)
    x, mapped, q = read_only_base
    order = np.random.default_rng(4).permutation(len(x))
    monkeypatch.setattr(base, "BUILD_CHUNK", 300)
    params = CHUNKED.get(name, {})

    def answers(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = kit.build(name, params, vectors, order, "ip", seed=3)
        try:
            return index.search(q, 10, EF if name in CHUNKED else None)
        finally:
            index.close()

    ids, scores = answers(mapped)
    if BACKENDS[name].capabilities.deterministic:
        in_memory_ids, in_memory_scores = answers(x)
        np.testing.assert_array_equal(ids, in_memory_ids)
        np.testing.assert_array_equal(scores, in_memory_scores)
    else:
        truth = kit.brute_force(x, q, 10, "ip")
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
        assert recall >= 0.9, f"{name}: recall@10 {recall:.3f} from a memmap"

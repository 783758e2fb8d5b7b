"""The hnswlib graph read from a saved index file, block by block, against independent readings.

Three witnesses: a byte-by-byte parse of the same file written here with `struct` (no code shared with
the reader), hnswlib's own pickled state (`read_graph(__getstate__)`), and the vectors that were
inserted. Blocks are shrunk to a few rows so their boundaries fall mid-graph. Reachability is checked
against networkx, and the memory a first search costs (`_reach`) against the index file's size.
"""

from __future__ import annotations

import struct
import tempfile
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib
import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import breadth_first_order, connected_components

from indexer.backends import hnswlib_graph
from indexer.backends.hnswlib_graph import HnswGraph, ReachableCounts, read_graph, read_graph_file
from indexer.backends.hnswlib_index import HnswlibIndex

DIM = 12


@dataclass
class _Reference:
    """What the file says, parsed one field at a time."""

    links: list[list[int]]  # layer-0 list of each internal id, in file order
    labels: list[int]
    levels: list[int]
    upper: list[list[list[int]]]  # upper[node][level - 1]
    vectors: np.ndarray  # (n, dim) float32, every node
    entry_point: int
    max_level: int


def _parse_by_hand(path: Path) -> _Reference:
    raw = path.read_bytes()
    at0, _, n, size, label_at, data_at, max_level, entry, max_m, _, _, _, _ = struct.unpack_from("<6QiI3QdQ", raw)
    pos, dim = 96, (label_at - data_at) // 4
    links, labels, vectors = [], [], np.empty((n, dim), dtype=np.float32)
    for i in range(n):
        row = raw[pos + i * size : pos + (i + 1) * size]
        count = struct.unpack_from("<I", row, at0)[0] & 0xFFFF
        links.append(list(struct.unpack_from(f"<{count}I", row, at0 + 4)))
        labels.append(struct.unpack_from("<Q", row, label_at)[0])
        vectors[i] = np.frombuffer(row[data_at : data_at + 4 * dim], dtype=np.float32)
    pos += n * size
    levels, upper, per_level = [], [], 4 * (max_m + 1)
    for _ in range(n):
        nbytes = struct.unpack_from("<I", raw, pos)[0]
        pos += 4
        lists = []
        for level in range(nbytes // per_level):
            start = pos + level * per_level
            count = struct.unpack_from("<I", raw, start)[0] & 0xFFFF
            lists.append(list(struct.unpack_from(f"<{count}I", raw, start + 4)))
        levels.append(nbytes // per_level)
        upper.append(lists)
        pos += nbytes
    assert pos == len(raw)
    return _Reference(links, labels, levels, upper, vectors, entry, max_level)


def _index(space: str, m: int, n: int, seed: int = 0) -> tuple[hnswlib.Index, np.ndarray, np.ndarray]:
    """A raw hnswlib index over n random points, labelled by a shuffled, spread-out numbering."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    labels = rng.permutation(n) * 3 + 7
    index = hnswlib.Index(space=space, dim=DIM)
    index.init_index(max_elements=n + 10, M=m, ef_construction=max(m, 20), random_seed=seed + 1)
    index.add_items(x, labels, num_threads=1)
    return index, x, labels


def _saved(index: hnswlib.Index, tmp_path: Path) -> Path:
    path = tmp_path / "index.bin"
    index.save_index(str(path))
    return path


def _descended(g: HnswGraph) -> np.ndarray:
    return np.union1d(np.flatnonzero(g.levels >= 1), [g.entry_point])


def _assert_same(a: HnswGraph, b: HnswGraph, layer0: bool = True) -> None:
    assert a.layer0.shape == b.layer0.shape
    if layer0:
        assert np.array_equal(a.layer0.indptr, b.layer0.indptr)
        assert np.array_equal(a.layer0.indices, b.layer0.indices)
        assert (a.layer0 != b.layer0).nnz == 0
    assert np.array_equal(a.levels, b.levels) and np.array_equal(a.labels, b.labels)
    assert (a.entry_point, a.max_level, a.space) == (b.entry_point, b.max_level, b.space)
    for v in np.flatnonzero(a.levels >= 1):
        for level in range(1, int(a.levels[v]) + 1):
            assert np.array_equal(a.upper_neighbors(int(v), level), b.upper_neighbors(int(v), level))
    assert np.array_equal(a._vector_row, b._vector_row)
    rows = a._vector_row[_descended(a)]
    assert np.array_equal(a._vectors[rows], b._vectors[rows])


def _assert_matches_reference(g: HnswGraph, ref: _Reference) -> None:
    n = len(ref.links)
    assert g.n == n and g.layer0.shape == (n, n)
    for i in range(n):
        assert g.layer0.indices[g.layer0.indptr[i] : g.layer0.indptr[i + 1]].tolist() == sorted(set(ref.links[i]))
    assert g.labels.tolist() == ref.labels and g.levels.tolist() == ref.levels
    assert (g.entry_point, g.max_level) == (ref.entry_point, ref.max_level)
    for v in range(n):
        for level in range(1, ref.levels[v] + 1):
            assert g.upper_neighbors(v, level).tolist() == ref.upper[v][level - 1]
    desc = _descended(g)
    np.testing.assert_array_equal(g._vectors[g._vector_row[desc]], ref.vectors[desc])
    assert (g._vector_row[np.setdiff1d(np.arange(n), desc)] == -1).all()


@pytest.fixture(params=["default", "tiny"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Default blocks, or blocks of a few rows (an odd byte count: they never divide a row evenly)."""
    if request.param == "tiny":
        monkeypatch.setattr(hnswlib_graph, "BLOCK_BYTES", 1001)
    return str(request.param)


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("m", [2, 8, 16])
def test_file_reader_equals_a_hand_parse_and_the_state_parse(space: str, m: int, blocks: str,
                                                             tmp_path: Path) -> None:
    index, _, _ = _index(space, m, 700, seed=m)
    path = _saved(index, tmp_path)
    graph = read_graph_file(path, space)
    _assert_matches_reference(graph, _parse_by_hand(path))
    _assert_same(graph, read_graph(index.__getstate__()[0], space))
    if blocks == "tiny":
        assert hnswlib_graph._rows_per_block(index.__getstate__()[0]["size_data_per_element"]) < 20


def test_many_upper_levels(blocks: str, tmp_path: Path) -> None:
    index, _, _ = _index("l2", 2, 3000, seed=3)
    path = _saved(index, tmp_path)
    graph = read_graph_file(path, "l2")
    assert graph.max_level >= 6  # M = 2: half the nodes rise a level, so about log2(3000) levels
    _assert_matches_reference(graph, _parse_by_hand(path))
    _assert_same(graph, read_graph(index.__getstate__()[0], "l2"))


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_an_index_of_one_point(space: str, tmp_path: Path) -> None:
    index, x, labels = _index(space, 8, 1)
    path = _saved(index, tmp_path)
    graph = read_graph_file(path, space)
    assert graph.n == 1 and graph.layer0.nnz == 0 and graph.entry_point == 0
    assert graph.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(graph._vectors, x)
    _assert_matches_reference(graph, _parse_by_hand(path))
    _assert_same(graph, read_graph(index.__getstate__()[0], space))
    assert ReachableCounts(graph).safe_k == 1


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_graph_holds_what_was_inserted(space: str, blocks: str, tmp_path: Path) -> None:
    index, x, labels = _index(space, 4, 1500, seed=5)
    graph = read_graph_file(_saved(index, tmp_path), space)
    row_of = {int(label): i for i, label in enumerate(labels)}
    assert sorted(graph.labels.tolist()) == sorted(labels.tolist())
    desc = _descended(graph)
    np.testing.assert_array_equal(graph._vectors[graph._vector_row[desc]],
                                  x[[row_of[int(v)] for v in graph.labels[desc]]])
    assert len(graph._vectors) == len(desc) < graph.n  # only the nodes the descent visits
    degrees = np.diff(graph.layer0.indptr)
    assert degrees.max() <= 2 * 4 and degrees.min() >= 1  # max_M0 = 2M; every node was linked
    src = np.repeat(np.arange(graph.n), degrees)
    assert (graph.layer0.indices != src).all()  # hnswlib links no node to itself
    assert graph.layer0.has_sorted_indices


def test_reachable_counts_against_networkx(blocks: str, tmp_path: Path) -> None:
    """Block-wise condensation gives what brute-force descendants give, for every start node."""
    index, _, _ = _index("ip", 2, 1500, seed=11)
    graph = read_graph_file(_saved(index, tmp_path), "ip")
    reach = ReachableCounts(graph)
    dg = nx.DiGraph()
    dg.add_nodes_from(range(graph.n))
    dg.add_edges_from(zip(*graph.layer0.nonzero(), strict=True))
    starts = graph.start_nodes()
    counts = {int(s): len(nx.descendants(dg, int(s))) + 1 for s in starts}
    assert min(counts.values()) < graph.n  # M = 2 strands some nodes: the case under test occurs
    assert all(reach.of_node(s) == c for s, c in counts.items())
    assert reach.safe_k == min(counts.values())
    condensed = nx.condensation(dg)
    assert reach._dag.nnz == condensed.number_of_edges()


def test_csgraph_routines_copy_nothing_of_the_layer0_matrix(tmp_path: Path) -> None:
    """The CSR's stride-0 float64 data passes scipy's validate_graph as is: no copy of data or indices."""
    index, _, _ = _index("l2", 16, 4000, seed=2)
    layer0 = read_graph_file(_saved(index, tmp_path), "l2").layer0
    assert layer0.data.strides == (0,) and layer0.indices.dtype == np.int32
    connected_components(layer0, directed=True, connection="strong")  # warm up
    for run in (lambda: connected_components(layer0, directed=True, connection="strong"),
                lambda: breadth_first_order(layer0, 0, directed=True, return_predecessors=False)):
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < layer0.indices.nbytes / 2, (peak, layer0.indices.nbytes)


def _state(index: HnswlibIndex) -> dict[str, Any]:
    assert index._index is not None
    return dict(index._index.__getstate__()[0])


class _NoState:
    """An hnswlib.Index whose state may not be taken."""

    def __init__(self, inner: hnswlib.Index) -> None:
        self.inner = inner

    def __getstate__(self) -> object:
        raise AssertionError("__getstate__ copies the whole index")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _built(n: int, d: int, m: int = 16, efc: int = 40) -> HnswlibIndex:
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    index = HnswlibIndex(d, "l2", M=m, ef_construction=efc, seed=1)
    index.build(x, np.arange(n))
    return index


def test_reach_and_graph_read_a_temporary_file_and_remove_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    index = _built(500, 8, m=4)
    expected = read_graph(_state(index), "l2")
    index._index = _NoState(index._index)  # type: ignore[assignment]
    reach = index._reach()
    _assert_same(reach.graph, expected, layer0=False)  # the upper layers the descent reads
    assert reach.graph.layer0.nnz == 0  # layer 0 is not kept once the components are counted
    assert index.graph().n == 500
    assert list(tmp_path.iterdir()) == []

    def broken(path: Path, space: str) -> HnswGraph:
        assert path.is_file()
        raise OSError("disk gone")

    monkeypatch.setattr(hnswlib_graph, "read_graph_file", broken)
    index._reachable = None
    with pytest.raises(OSError):
        index._reach()
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    index, _, _ = _index("l2", 4, 200)
    path = _saved(index, tmp_path)
    whole = path.read_bytes()
    for cut in (50, 96 + 1000, len(whole) - 4):
        path.write_bytes(whole[:cut])
        with pytest.raises(ValueError):
            read_graph_file(path, "l2")


def test_first_search_memory_stays_well_below_one_index() -> None:
    """tracemalloc peak of `_reach()` (the work of a first search) under half the index file, where
    `__getstate__` alone copies all of level 0 (a copy hnswlib mallocs, which tracemalloc cannot see)."""
    _built(300, 8)._reach()  # first-use allocations (imports, caches) out of the measure
    index = _built(30_000, 128)
    file_bytes = index.nbytes()
    tracemalloc.start()
    index._reach()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    state = _state(index)
    state_copy = state["data_level0"].nbytes + state["link_lists"].nbytes
    print(f"\nindex file {file_bytes / 2**20:.1f} MiB; _reach peak {peak / 2**20:.1f} MiB "
          f"({peak / file_bytes:.2f}x); the old path's __getstate__ copy alone {state_copy / 2**20:.1f} MiB "
          f"({state_copy / file_bytes:.2f}x)")
    assert peak < 0.5 * file_bytes
    assert state_copy > 2 * peak

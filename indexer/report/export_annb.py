"""A run in ann-benchmarks' files, so their `plot.py` draws it: a result HDF5 per dense row and the dataset
HDF5 their recall is computed against.

The layout is theirs (erikbern/ann-benchmarks at f402b2c: results.py `build_result_filepath`,
`store_results`; runner.py's attributes; datasets.py `write_output`):

    data/<dataset>.hdf5                                  train, test, neighbors, distances
    results/<dataset>/<k>/<algo>-batch/<arguments>.hdf5  times, neighbors, distances

How a row maps onto it:
- dataset: one per (dataset, model, index size): the index's rows of the ORIGINAL vectors and the queries,
  named `<dataset>[-<model>]-<size>-<distance>-<8 hex of the data>`, so runs over the same data plot together
  and different data never share a name. Reduced rows belong to their unreduced dataset: the engine measures
  their recall against exact search in the original space, and ann-benchmarks stores the distance of each
  returned point in the dataset's space, so both recalls agree.
- algo: `<backend>-<ordering>[-<reduction>]` (one plot line each); arguments: [distance, build parameters and
  seed] + [ef], named as `build_result_filepath` names them.
- ids are positions in `train` (the index's rows in ascending dataset order; the dataset's own ids when the
  index holds every row); -1 and an infinite distance pad a short answer, as `store_results` pads.
- distances are recomputed exactly (float64, then stored as their float32) from the vectors in the engine's
  cache: angular = 1 - cos, euclidean = the L2 distance, not squared.
- times: the engine times the whole query set as one batch (the median of `qps_passes` passes), so each query
  gets 1 / qps and the run is in batch mode (`plot.py --batch`); index_size is in kB, as theirs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from indexer.common.errors import UserError
from indexer.common.fileio import sha256_file
from indexer.common.hashing import content_key
from indexer.model.results import DenseRow, IndexRecord
from indexer.report.published import Published, describe
from indexer.science import groundtruth
from indexer.science.metrics import annb_distances

DISTANCES = {"cosine": "angular", "l2": "euclidean"}  # ann-benchmarks has no inner-product distance


@dataclass(frozen=True)
class _Vectors:
    """What a row was measured against: the original vectors (prepared), its index's rows, and their id."""

    base: np.ndarray  # every dataset row, memory-mapped
    queries: np.ndarray
    rows: np.ndarray  # the rows the index holds, ascending
    data_key: str  # 8 hex digits of the files' and rows' content


def write_annb(report: Published, into: Path, *, cache_dir: Path) -> list[str]:
    """Write ann-benchmarks' data/ and results/ for every dense row into `into`; return the commands that
    plot them."""
    metrics = {r.metric for r in report.dense}
    metric = metrics.pop() if len(metrics) == 1 else None
    if metric not in DISTANCES:
        raise UserError(f"ann-benchmarks measures angular (cosine) or euclidean (l2) distance; this run's "
                        f"metric is {metric or 'mixed'}")
    distance = DISTANCES[metric]
    datasets: dict[str, list[tuple[DenseRow, _Vectors]]] = {}
    loaded: dict[str, _Vectors] = {}
    for row in report.dense:
        vectors = _vectors_of(row, cache_dir, loaded, report.directory)
        datasets.setdefault(dataset_name(row, distance, vectors.data_key), []).append((row, vectors))
    written: set[Path] = set()
    commands = []
    for name, members in datasets.items():
        k = members[0][0].k
        _write_dataset(into / "data" / f"{name}.hdf5", members[0][1], k, metric, distance)
        for row, vectors in members:
            path = into / result_path(name, row, distance)
            if path in written:
                raise UserError(f"two rows map to one ann-benchmarks file {path.relative_to(into)}: "
                                f"their labels differ only in punctuation ({describe(row)})")
            written.add(path)
            _write_result(path, name, row, report.array(row, "neighbors"), vectors, metric, distance)
        commands.append(f"  python plot.py --dataset {name} --count {k} --batch")
    return ["to plot, copy data/ and results/ into an ann-benchmarks checkout and run there:", *commands]


def dataset_name(row: DenseRow, distance: str, data_key: str) -> str:
    """The ann-benchmarks dataset a row belongs to: `<dataset>[-<model>]-<index size>-<distance>-<data key>`."""
    parts = [row.dataset, row.model, str(row.index_size), distance, data_key]
    return "-".join(_plain(p) for p in parts if p)


def algo_name(row: DenseRow) -> str:
    """The ann-benchmarks algorithm (one line of their plot) a row belongs to: `<backend>-<ordering>[-<reduction>]`."""
    parts = [row.backend, row.ordering, row.reduction if row.reduction != "none" else None]
    return "-".join(_plain(p) for p in parts if p)


def result_path(dataset: str, row: DenseRow, distance: str) -> Path:
    """`build_result_filepath(dataset, k, definition, query_arguments, batch_mode=True)`, relative to results/'s
    parent: the arguments are [distance, build parameters and seed], the query arguments [ef] (none: exact)."""
    arguments = [distance, {**row.build_params, "seed": row.seed}] + ([row.ef] if row.ef is not None else [])
    file = re.sub(r"\W+", "_", json.dumps(arguments, sort_keys=True)).strip("_") + ".hdf5"
    return Path("results", dataset, str(row.k), f"{algo_name(row)}-batch", file)


def _plain(text: str) -> str:
    """A label as a file name: anything but letters, digits, `_`, `.` and `-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _vectors_of(row: DenseRow, cache_dir: Path, loaded: dict[str, _Vectors], run: Path) -> _Vectors:
    """The cached vectors the row's cell indexed: cells/<cell>/meta.json names them, rows.npy beside it."""
    cell_dir = cache_dir / "cells" / row.cell
    hint = f"pass --cache-dir with the cache `indexer run` used for {run}"
    if not (cell_dir / "meta.json").is_file() or not (cell_dir / "rows.npy").is_file():
        raise UserError(f"the vectors of {run} are not in the cache {cache_dir} (no cells/{row.cell}): {hint}")
    record = IndexRecord.model_validate_json((cell_dir / "meta.json").read_bytes())
    vdir = cache_dir / "vectors" / str(record.vectors)
    if record.vectors is None or not (vdir / "meta.json").is_file():
        raise UserError(f"the vectors of cell {row.cell} are not in the cache {cache_dir}: {hint}")
    rows_sha = (record.sha256 or {}).get("rows.npy") or sha256_file(cell_dir / "rows.npy")
    key = f"{record.vectors}-{rows_sha}"
    if key not in loaded:
        # reduced vectors keep the originals beside them (indexer.engine.runner._write_vectors)
        prefix = "original_" if (vdir / "original_base.npy").is_file() else ""
        files = json.loads((vdir / "meta.json").read_text())["files"]
        data_key = content_key([files[f"{prefix}base"], files[f"{prefix}queries"], rows_sha], 8)
        loaded[key] = _Vectors(base=np.load(vdir / f"{prefix}base.npy", mmap_mode="r"),
                               queries=np.load(vdir / f"{prefix}queries.npy"), rows=np.load(cell_dir / "rows.npy"),
                               data_key=data_key)
    return loaded[key]


def distances(vectors: _Vectors, ids: np.ndarray, metric: str) -> np.ndarray:
    """ann-benchmarks' distance (float64) of each query to each of its ids (dataset numbering); inf at -1."""
    # cosine vectors are prepared unit length, so 1 - q.b is 1 - cos (a zero vector is at 1 from everything)
    scores = groundtruth.pair_scores(vectors.base, vectors.queries, ids, metric)
    return np.where(ids >= 0, annb_distances(scores, metric), np.inf)


def _write_dataset(path: Path, vectors: _Vectors, k: int, metric: str, distance: str) -> None:
    """`write_output`'s file: train (the index's rows), test, and the exact top k of each query in train."""
    path.parent.mkdir(parents=True, exist_ok=True)
    train_rows = vectors.rows
    sub = np.ascontiguousarray(vectors.base[train_rows])
    positions, _ = groundtruth.exact_knn_float64(sub, vectors.queries, k, metric)
    truth = distances(vectors, train_rows[positions], metric)
    order = np.lexsort((positions, truth), axis=1)  # by distance, ties by id
    with h5py.File(path, "w") as f:
        f.attrs["type"] = "dense"
        f.attrs["distance"] = distance
        f.attrs["dimension"] = int(sub.shape[1])
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=sub)
        f.create_dataset("test", data=np.asarray(vectors.queries, dtype=np.float32))
        f.create_dataset("neighbors", data=np.take_along_axis(positions, order, axis=1).astype(np.int64))
        f.create_dataset("distances", data=np.take_along_axis(truth, order, axis=1))


def _write_result(path: Path, dataset: str, row: DenseRow, ids: np.ndarray, vectors: _Vectors, metric: str,
                  distance: str) -> None:
    """`store_results`' file for one row, with the attributes `runner.run` and `run_individual_query` set."""
    if ids.shape != (len(vectors.queries), row.k):
        raise UserError(f"row {describe(row)}: its neighbours are {ids.shape}, expected "
                        f"({len(vectors.queries)}, {row.k}) for its queries and k")
    valid = ids >= 0
    found = distances(vectors, ids, metric)
    # dataset ids -> positions in train; the index holds only its rows, so every valid id is among them
    positions = np.where(valid, np.searchsorted(vectors.rows, np.where(valid, ids, 0)), -1)
    if not np.array_equal(vectors.rows[np.minimum(positions[valid], len(vectors.rows) - 1)], ids[valid]):
        raise UserError(f"row {describe(row)}: its neighbours name rows its index does not hold")
    seconds = 1.0 / row.qps
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs.update({
            "build_time": row.build_seconds,
            "index_size": row.index_bytes / 1024,
            "algo": algo_name(row),
            "dataset": dataset,
            "batch_mode": True,
            "best_search_time": seconds,
            "candidates": float(valid.sum(axis=1).mean()),
            "expect_extra": False,
            "name": f"{algo_name(row)}({json.dumps(row.build_params, sort_keys=True)}, seed={row.seed}, "
                    f"ef={row.ef if row.ef is not None else 'exact'})",
            "run_count": row.qps_passes,
            "distance": distance,
            "count": row.k,
        })
        f.create_dataset("times", data=np.full(len(ids), seconds, dtype=np.float32))
        f.create_dataset("neighbors", data=positions.astype(np.int32))
        f.create_dataset("distances", data=found.astype(np.float32))

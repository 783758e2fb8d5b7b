"""File loader: arrays written by numpy, h5py and by hand (fvecs bytes) come back exactly."""

from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import load_dataset
from indexer.datasets.files import load
from indexer.model.datasets import FileDataset


def _spec(path, **kw) -> FileDataset:
    return FileDataset(kind="file", path=str(path), **kw)


def _vectors(n=50, d=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _write_fvecs(path, rows) -> None:
    with open(path, "wb") as f:
        for row in rows:
            f.write(struct.pack("<i", len(row)) + struct.pack(f"<{len(row)}f", *row))


def test_npy_split_partitions_the_rows(tmp_path):
    x = _vectors()
    np.save(tmp_path / "x.npy", x)
    ds = load_dataset(_spec(tmp_path / "x.npy", query_count=10, seed=1), cache_dir=tmp_path)
    base_rows, query_rows = ds.extra["base_rows"], ds.extra["query_rows"]
    assert ds.base.shape == (40, 8) and ds.queries.shape == (10, 8)
    assert sorted([*base_rows, *query_rows]) == list(range(50))
    np.testing.assert_array_equal(ds.base, x[base_rows])
    np.testing.assert_array_equal(ds.queries, x[query_rows])
    again = load(_spec(tmp_path / "x.npy", query_count=10, seed=1), cache_dir=tmp_path)
    other = load(_spec(tmp_path / "x.npy", query_count=10, seed=2), cache_dir=tmp_path)
    np.testing.assert_array_equal(again.extra["query_rows"], query_rows)
    assert not np.array_equal(other.extra["query_rows"], query_rows)


def test_npy_with_a_queries_file_and_integer_data(tmp_path):
    x, q = np.arange(40).reshape(10, 4), _vectors(3, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "q.npy", q.astype(np.float64))
    ds = load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path)
    assert ds.base.dtype == np.float32 and ds.queries.dtype == np.float32
    np.testing.assert_array_equal(ds.base, x.astype(np.float32))
    np.testing.assert_array_equal(ds.queries, q)


def test_fvecs_round_trip_from_hand_written_bytes(tmp_path):
    x, q = _vectors(6, 5), _vectors(2, 5, seed=1)
    _write_fvecs(tmp_path / "x.fvecs", x)
    _write_fvecs(tmp_path / "q.fvecs", q)
    ds = load_dataset(_spec(tmp_path / "x.fvecs", queries=str(tmp_path / "q.fvecs")), cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.base, x)
    np.testing.assert_array_equal(ds.queries, q)


def test_fvecs_rows_of_different_dimension(tmp_path):
    # 4-d then 2-d then 4-d: 5 + 3 + 5 = 13 int32 words, not a multiple of 5 -> corrupt
    _write_fvecs(tmp_path / "bad.fvecs", [[1, 2, 3, 4], [1, 2], [1, 2, 3, 4]])
    with pytest.raises(DataError, match="not a valid .fvecs"):
        load(_spec(tmp_path / "bad.fvecs", query_count=1), cache_dir=tmp_path)
    # 2-d, 2-d, 3-d, 1-d: 3 + 3 + 4 + 2 = 12 words, a multiple of 3, so only the row check catches it
    _write_fvecs(tmp_path / "bad2.fvecs", [[1, 2], [1, 2], [1, 2, 3], [1]])
    with pytest.raises(DataError, match="row 2 has dimension 3, expected 2"):
        load(_spec(tmp_path / "bad2.fvecs", query_count=1), cache_dir=tmp_path)


def test_fvecs_empty_or_truncated(tmp_path):
    (tmp_path / "empty.fvecs").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load(_spec(tmp_path / "empty.fvecs"), cache_dir=tmp_path)
    _write_fvecs(tmp_path / "t.fvecs", _vectors(3, 4))
    data = (tmp_path / "t.fvecs").read_bytes()
    (tmp_path / "t.fvecs").write_bytes(data[:-4])
    with pytest.raises(DataError, match="not a valid"):
        load(_spec(tmp_path / "t.fvecs", query_count=1), cache_dir=tmp_path)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x01", b"\x00\x01\x02", b"\x04\x00\x00\x00"])
def test_fvecs_with_bytes_past_the_last_whole_row(tmp_path, extra):
    _write_fvecs(tmp_path / "t.fvecs", _vectors(3, 4))
    (tmp_path / "t.fvecs").write_bytes((tmp_path / "t.fvecs").read_bytes() + extra)
    with pytest.raises(DataError, match="not a whole number of rows"):
        load(_spec(tmp_path / "t.fvecs", query_count=1), cache_dir=tmp_path)


def test_fvecs_shorter_than_one_word(tmp_path):
    (tmp_path / "t.fvecs").write_bytes(b"\x04\x00")
    with pytest.raises(DataError, match="not a valid .fvecs"):
        load(_spec(tmp_path / "t.fvecs", query_count=1), cache_dir=tmp_path)


def _write_hdf5(path, **datasets) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "angular"
        for name, arr in datasets.items():
            f.create_dataset(name, data=arr)


def test_hdf5_train_test_neighbors(tmp_path):
    x, q = _vectors(30, 6), _vectors(4, 6, seed=1)
    nn = np.argsort(-(q @ x.T), axis=1)[:, :5].astype(np.int32)
    _write_hdf5(tmp_path / "a.hdf5", train=x, test=q, neighbors=nn)
    ds = load_dataset(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path)
    np.testing.assert_array_equal(ds.base, x)
    np.testing.assert_array_equal(ds.queries, q)
    assert ds.groundtruth.dtype == np.int64
    np.testing.assert_array_equal(ds.groundtruth, nn)
    assert ds.extra["distance"] == "angular"


def test_hdf5_without_test_splits_train(tmp_path):
    _write_hdf5(tmp_path / "a.h5", train=_vectors(20, 3))
    ds = load(_spec(tmp_path / "a.h5", query_count=5), cache_dir=tmp_path)
    assert ds.base.shape == (15, 3) and ds.queries.shape == (5, 3) and ds.groundtruth is None


@pytest.mark.parametrize(
    "neighbors, message",
    [
        (np.zeros((3, 5), np.int64), r"shape \(3, 5\), expected \(4, k>=1\)"),
        (np.zeros((4, 0), np.int64), "expected"),
        (np.full((4, 2), 30), "outside 0..29"),
        (np.full((4, 2), -1), "outside"),
        (np.zeros((4, 2), np.float32), "integer"),
    ],
)
def test_hdf5_bad_neighbors(tmp_path, neighbors, message):
    _write_hdf5(tmp_path / "a.hdf5", train=_vectors(30, 6), test=_vectors(4, 6), neighbors=neighbors)
    with pytest.raises(DataError, match=message):
        load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path)


def test_hdf5_errors(tmp_path):
    _write_hdf5(tmp_path / "no_train.hdf5", test=_vectors(4, 6))
    with pytest.raises(DataError, match="no 'train'"):
        load(_spec(tmp_path / "no_train.hdf5"), cache_dir=tmp_path)
    (tmp_path / "fake.hdf5").write_bytes(b"this is not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load(_spec(tmp_path / "fake.hdf5"), cache_dir=tmp_path)
    _write_hdf5(tmp_path / "both.hdf5", train=_vectors(4, 6), test=_vectors(2, 6))
    np.save(tmp_path / "q.npy", _vectors(2, 6))
    with pytest.raises(DataError, match="already holds its queries"):
        load(_spec(tmp_path / "both.hdf5", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["train", "test", "neighbors"])
def test_hdf5_group_where_an_array_belongs(tmp_path, name):
    arrays = {"train": _vectors(30, 6), "test": _vectors(4, 6), "neighbors": np.zeros((4, 2), np.int64)}
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        for key, arr in arrays.items():
            if key == name:
                f.create_group(key).create_dataset("inner", data=arr)
            else:
                f.create_dataset(key, data=arr)
    with pytest.raises(DataError, match=f"'{name}' is a group, not a dataset"):
        load(_spec(tmp_path / "g.hdf5"), cache_dir=tmp_path)


def test_path_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load(_spec(tmp_path / "missing.npy"), cache_dir=tmp_path)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unknown data file extension '.csv'"):
        load(_spec(tmp_path / "x.csv"), cache_dir=tmp_path)
    np.save(tmp_path / "x.npy", _vectors(5, 2))
    with pytest.raises(DataError, match="not found"):
        load(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(10, np.float32), "2-d"),
        (np.zeros((2, 3, 4), np.float32), "2-d"),
        (np.array([["a", "b"]]), "numbers"),
    ],
)
def test_npy_shape_and_dtype_errors(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=message):
        load(_spec(tmp_path / "x.npy"), cache_dir=tmp_path)


def test_npy_corrupt_or_pickled(tmp_path):
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        load(_spec(tmp_path / "c.npy"), cache_dir=tmp_path)
    np.save(tmp_path / "o.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable .npy"):
        load(_spec(tmp_path / "o.npy"), cache_dir=tmp_path)
    full = _vectors(10, 4)
    np.save(tmp_path / "t.npy", full)
    (tmp_path / "t.npy").write_bytes((tmp_path / "t.npy").read_bytes()[:-20])
    with pytest.raises(DataError, match="not a readable .npy"):
        load(_spec(tmp_path / "t.npy", query_count=1), cache_dir=tmp_path)


def test_split_that_leaves_no_base(tmp_path):
    np.save(tmp_path / "x.npy", _vectors(5, 2))
    with pytest.raises(DataError, match="no base vectors"):
        load(_spec(tmp_path / "x.npy", query_count=5), cache_dir=tmp_path)


def test_nan_and_dimension_mismatch_are_caught_by_validate(tmp_path):
    x = _vectors(10, 4)
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match="NaN"):
        load_dataset(_spec(tmp_path / "nan.npy", query_count=2, seed=0), cache_dir=tmp_path)
    np.save(tmp_path / "x.npy", _vectors(10, 4))
    np.save(tmp_path / "q.npy", _vectors(2, 5))
    with pytest.raises(DataError, match="dimension"):
        load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path)

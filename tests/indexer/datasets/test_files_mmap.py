"""User files without copies: float32 .npy and .fvecs memory-mapped, large HDF5 and splits converted
in chunks into the cache, validation in row blocks."""

from __future__ import annotations

import os
import struct

import h5py
import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import base as dataset_base
from indexer.datasets import files, load_dataset
from tests.indexer.datasets.test_files import _spec, _vectors, _write_fvecs  # the file fixtures, shared


def _mapped(arr: np.ndarray) -> bool:
    """Is arr, or an array it views, a memory map of a file?"""
    while isinstance(arr, np.ndarray):
        if isinstance(arr, np.memmap) and arr._mmap is not None:
            return True
        arr = arr.base
    return False


@pytest.fixture
def chunked(monkeypatch):
    """Convert every base through the cache, 3 rows (of 8 float64 columns) per chunk."""
    monkeypatch.setattr(files, "CACHE_THRESHOLD_BYTES", 0)
    monkeypatch.setattr(files, "CHUNK_BYTES", 3 * 8 * 8)


def test_float32_npy_is_the_file_memory_mapped(tmp_path):
    x = _vectors()
    np.save(tmp_path / "x.npy", x)
    arr = files.read_npy(tmp_path / "x.npy")
    assert isinstance(arr, np.memmap) and _mapped(arr) and not arr.flags.writeable
    np.testing.assert_array_equal(arr, x)
    ds = load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "x.npy")), cache_dir=tmp_path)
    assert _mapped(ds.base) and not ds.base.flags.writeable  # validate kept it, no copy
    np.testing.assert_array_equal(ds.base, x)


@pytest.mark.parametrize("layout", ["float64", "int16", "big-endian", "fortran"])
def test_other_npy_layouts_are_converted(tmp_path, layout):
    x = _vectors(20, 6)
    stored = {
        "float64": x.astype(np.float64),
        "int16": (x * 100).astype(np.int16),
        "big-endian": x.astype(">f4"),
        "fortran": np.asfortranarray(x),
    }[layout]
    np.save(tmp_path / "x.npy", stored)
    arr = files.read_npy(tmp_path / "x.npy")
    assert not _mapped(arr) and arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, stored.astype(np.float32))


def test_fvecs_is_a_read_only_view_of_the_file(tmp_path):
    x = _vectors(11, 5)
    _write_fvecs(tmp_path / "x.fvecs", x)
    arr = files.read_fvecs(tmp_path / "x.fvecs")
    assert _mapped(arr) and not arr.flags.writeable and arr.dtype == np.float32
    decoded = np.fromfile(tmp_path / "x.fvecs", dtype="<f4").reshape(11, 6)[:, 1:]
    np.testing.assert_array_equal(arr, decoded)
    np.testing.assert_array_equal(arr, x)


@pytest.mark.parametrize("bad_row", [0, 2, 3, 4, 9])
def test_fvecs_dimension_is_checked_in_every_chunk(tmp_path, monkeypatch, bad_row):
    monkeypatch.setattr(files, "CHUNK_BYTES", 3 * 4 * 4)  # 3 rows of (1 + 3) words per chunk
    rows = [[1.0, 2.0, 3.0]] * 10
    _write_fvecs(tmp_path / "x.fvecs", rows)
    data = bytearray((tmp_path / "x.fvecs").read_bytes())
    data[bad_row * 16 : bad_row * 16 + 4] = struct.pack("<i", 7)
    (tmp_path / "x.fvecs").write_bytes(bytes(data))
    if bad_row == 0:  # the first row sets the dimension (160 bytes are 5 rows of 8 words)
        match = "row 1 has dimension 3, expected 7"
    else:
        match = f"row {bad_row} has dimension 7, expected 3"
    with pytest.raises(DataError, match=match):
        files.read_fvecs(tmp_path / "x.fvecs")


def test_large_fvecs_base_is_made_contiguous_in_the_cache(tmp_path, chunked):
    x, q = _vectors(17, 8), _vectors(3, 8, seed=1)
    _write_fvecs(tmp_path / "x.fvecs", x)
    np.save(tmp_path / "q.npy", q)
    ds = load_dataset(_spec(tmp_path / "x.fvecs", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path / "c")
    assert _mapped(ds.base) and ds.base.flags.c_contiguous
    assert [p.parent.name for p in (tmp_path / "c").rglob("*.npy")] == ["files"]
    np.testing.assert_array_equal(ds.base, x)


def _write_train(path, train, **more) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train, chunks=(4, train.shape[1]))
        for name, arr in more.items():
            f.create_dataset(name, data=arr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_hdf5_train_read_in_chunks_equals_the_whole_read(tmp_path, chunked, dtype):
    train = (_vectors(23, 8) * 10).astype(dtype)
    _write_train(tmp_path / "a.hdf5", train, test=_vectors(4, 8, seed=1))
    with h5py.File(tmp_path / "a.hdf5", "r") as f:
        whole = np.asarray(f["train"][()], dtype=np.float32)
    cache = tmp_path / "cache"
    ds = files.load(_spec(tmp_path / "a.hdf5"), cache_dir=cache)
    assert _mapped(ds.base) and not ds.base.flags.writeable
    assert ds.base.dtype == np.float32 and ds.base.shape == (23, 8)
    np.testing.assert_array_equal(ds.base, whole)
    (stored,) = (cache / "files").glob("*.npy")
    assert stored.name == f"{files._file_key(tmp_path / 'a.hdf5', 'train')}.npy"


def test_hdf5_conversion_is_reused_until_the_file_changes(tmp_path, chunked, monkeypatch):
    _write_train(tmp_path / "a.hdf5", _vectors(10, 8), test=_vectors(2, 8))
    files.load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path / "cache")
    (stored,) = (tmp_path / "cache" / "files").glob("*.npy")
    stamp = stored.stat().st_mtime_ns

    def never(*args, **kwargs):
        raise AssertionError("converted again")

    with monkeypatch.context() as m:
        m.setattr(files, "save_rows", never)
        again = files.load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path / "cache")
    assert stored.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.base, _vectors(10, 8))
    _write_train(tmp_path / "a.hdf5", _vectors(10, 8, seed=5), test=_vectors(2, 8))
    os.utime(tmp_path / "a.hdf5", ns=(stamp, stamp + 10**9))  # a clock too coarse to tell the writes apart
    changed = files.load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(changed.base, _vectors(10, 8, seed=5))
    assert len(list((tmp_path / "cache" / "files").glob("*.npy"))) == 2


def test_hdf5_without_a_cache_dir_or_small_stays_in_memory(tmp_path, monkeypatch):
    _write_train(tmp_path / "a.hdf5", _vectors(10, 8), test=_vectors(2, 8))
    small = files.load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path / "cache")
    assert not _mapped(small.base) and not (tmp_path / "cache").exists()
    monkeypatch.setattr(files, "CACHE_THRESHOLD_BYTES", 0)
    uncached = files.load(_spec(tmp_path / "a.hdf5"), cache_dir=None)
    assert not _mapped(uncached.base)
    np.testing.assert_array_equal(uncached.base, _vectors(10, 8))


def test_hdf5_chunked_train_keeps_the_shape_and_dtype_checks(tmp_path, chunked):
    with h5py.File(tmp_path / "a.hdf5", "w") as f:
        f.create_dataset("train", data=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(DataError, match=r"a.hdf5:train must be a 2-d array, got shape \(2, 3, 4\)"):
        files.load(_spec(tmp_path / "a.hdf5"), cache_dir=tmp_path)
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f.create_dataset("train", data=np.array([[b"a", b"b"]]))
    with pytest.raises(DataError, match="must hold numbers"):
        files.load(_spec(tmp_path / "b.hdf5"), cache_dir=tmp_path)


@pytest.mark.parametrize("suffix", ["npy", "fvecs", "hdf5"])
def test_large_split_is_gathered_in_chunks(tmp_path, chunked, suffix):
    x = _vectors(31, 8)
    path = tmp_path / f"x.{suffix}"
    if suffix == "npy":
        np.save(path, x)
    elif suffix == "fvecs":
        _write_fvecs(path, x)
    else:
        _write_train(path, x)
    ds = load_dataset(_spec(path, query_count=7, seed=3), cache_dir=tmp_path / "cache")
    base_rows, query_rows = files.split_rows(31, 7, 3, path.name)
    np.testing.assert_array_equal(ds.extra["base_rows"], base_rows)
    assert _mapped(ds.base)
    np.testing.assert_array_equal(ds.base, x[base_rows])
    np.testing.assert_array_equal(ds.queries, x[query_rows])
    other = files.load(_spec(path, query_count=7, seed=4), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(other.base, x[files.split_rows(31, 7, 4, path.name)[0]])


def test_validate_finds_nan_rows_block_by_block(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_base, "_FINITE_BLOCK_ELEMENTS", 2 * 4)  # 2 rows of 4 per block
    x = _vectors(11, 4)
    x[[0, 3, 4, 10], [1, 0, 3, 2]] = [np.nan, np.inf, -np.inf, np.nan]
    x[3, 2] = np.nan  # a second bad value in a row counts once
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "q.npy", _vectors(2, 4))
    with pytest.raises(DataError, match="base holds NaN or inf in 4 rows"):
        load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.npy")), cache_dir=tmp_path)
    assert dataset_base.nonfinite_rows(np.zeros((0, 4), np.float32)) == 0
    assert dataset_base.nonfinite_rows(x) == 4

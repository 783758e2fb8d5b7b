"""A user's integer attributes read with the vectors: HDF5 datasets `<attribute>` and `<attribute>_test`,
`<stem>.<attribute>.npy` beside .npy and .fvecs files, a held-out split applied to them as to the vectors,
only the attributes named read, and every unusable column refused naming the file and the attribute."""

from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import load_dataset
from indexer.model.datasets import FileDataset

N, Q, D = 60, 7, 4


def _spec(path, **kw) -> FileDataset:
    return FileDataset(kind="file", path=str(path), **kw)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def _hdf5(path, **arrays) -> None:
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            f[name] = arr


def test_hdf5_columns_for_train_and_test_and_only_those_named(tmp_path) -> None:
    tenant, query_tenant = np.arange(N) % 5, np.arange(Q) % 3
    _hdf5(tmp_path / "d.hdf5", train=_vectors(N), test=_vectors(Q, 1), tenant=tenant.astype(np.uint16),
          tenant_test=query_tenant, score=np.zeros(N, np.float32))  # `score` is never read, so never refused
    ds = load_dataset(_spec(tmp_path / "d.hdf5"), cache_dir=tmp_path, attributes=["tenant"],
                      query_attributes=["tenant"])
    assert set(ds.attributes) == set(ds.query_attributes) == {"tenant"}
    assert ds.attributes["tenant"].dtype == np.int64
    np.testing.assert_array_equal(ds.attributes["tenant"], tenant)
    np.testing.assert_array_equal(ds.query_attributes["tenant"], query_tenant)
    only_base = load_dataset(_spec(tmp_path / "d.hdf5"), cache_dir=tmp_path, attributes=["tenant"])
    assert set(only_base.attributes) == {"tenant"} and only_base.query_attributes == {}
    plain = load_dataset(_spec(tmp_path / "d.hdf5"), cache_dir=tmp_path)
    assert plain.attributes == {} and plain.query_attributes == {}


def test_a_held_out_split_applies_to_the_attribute(tmp_path) -> None:
    x, tenant = _vectors(N), np.random.default_rng(3).integers(0, 1000, N)
    _hdf5(tmp_path / "d.h5", train=x, tenant=tenant)
    ds = load_dataset(_spec(tmp_path / "d.h5", query_count=Q, seed=4), cache_dir=tmp_path, attributes=["tenant"],
                      query_attributes=["tenant"])
    base_rows, query_rows = ds.extra["base_rows"], ds.extra["query_rows"]
    for i, row in enumerate(query_rows):  # a query's own value is the value of the row it was taken from
        np.testing.assert_array_equal(ds.queries[i], x[row])
        assert ds.query_attributes["tenant"][i] == tenant[row]
    np.testing.assert_array_equal(ds.attributes["tenant"], tenant[base_rows])
    np.testing.assert_array_equal(ds.base, x[base_rows])


def test_npy_and_fvecs_columns_beside_the_vectors_and_the_queries(tmp_path) -> None:
    np.save(tmp_path / "x.npy", _vectors(N))
    np.save(tmp_path / "x.tenant.npy", np.arange(N, dtype=np.int8) % 7)
    with open(tmp_path / "q.fvecs", "wb") as f:
        for row in _vectors(Q, 1):
            f.write(struct.pack("<i", D) + struct.pack(f"<{D}f", *row))
    np.save(tmp_path / "q.tenant.npy", np.full(Q, 2, dtype=np.int64))
    ds = load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.fvecs")), cache_dir=tmp_path,
                      attributes=["tenant"], query_attributes=["tenant"])
    np.testing.assert_array_equal(ds.attributes["tenant"], np.arange(N) % 7)
    np.testing.assert_array_equal(ds.query_attributes["tenant"], np.full(Q, 2))


def test_an_hdf5_queries_file_without_test_holds_its_column_under_the_plain_name(tmp_path) -> None:
    np.save(tmp_path / "x.npy", _vectors(N))
    np.save(tmp_path / "x.tenant.npy", np.zeros(N, dtype=np.int64))
    _hdf5(tmp_path / "q.hdf5", train=_vectors(Q, 1), tenant=np.ones(Q, dtype=np.int32))
    ds = load_dataset(_spec(tmp_path / "x.npy", queries=str(tmp_path / "q.hdf5")), cache_dir=tmp_path,
                      attributes=["tenant"], query_attributes=["tenant"])
    np.testing.assert_array_equal(ds.query_attributes["tenant"], np.ones(Q))


@pytest.mark.parametrize("arrays, problem", [
    ({}, r"attribute 'tenant': d.hdf5 has no dataset 'tenant' \(found: test, train\)"),
    ({"tenant": np.zeros(N)}, "d.hdf5:tenant holds float64 values; a column filter compares integers"),
    ({"tenant": np.zeros(N, bool)}, "d.hdf5:tenant holds booleans"),
    ({"tenant": np.zeros((N, 2), np.int64)}, r"d.hdf5:tenant has shape \(60, 2\); expected \(60,\)"),
    ({"tenant": np.zeros(N + 1, np.int64)}, r"d.hdf5:tenant has shape \(61,\); expected \(60,\)"),
    ({"tenant": np.full(N, 2**63, np.uint64)}, "holds values above"),
    ({"tenant": np.zeros(N, np.int64)}, "d.hdf5 has no dataset 'tenant_test'"),  # the query side is missing
    ({"tenant": np.zeros(N, np.int64), "tenant_test": np.zeros(Q - 1, np.int64)},
     r"d.hdf5:tenant_test has shape \(6,\); expected \(7,\)"),
])
def test_an_unusable_hdf5_column_names_the_file_the_attribute_and_the_problem(tmp_path, arrays, problem) -> None:
    _hdf5(tmp_path / "d.hdf5", train=_vectors(N), test=_vectors(Q, 1), **arrays)
    with pytest.raises(DataError, match=problem) as err:
        load_dataset(_spec(tmp_path / "d.hdf5"), cache_dir=tmp_path, attributes=["tenant"],
                     query_attributes=["tenant"])
    assert "attribute 'tenant'" in str(err.value)


def test_an_hdf5_group_under_the_attribute_name_is_refused(tmp_path) -> None:
    _hdf5(tmp_path / "d.hdf5", train=_vectors(N), test=_vectors(Q, 1))
    with h5py.File(tmp_path / "d.hdf5", "a") as f:
        f.create_group("tenant")
    with pytest.raises(DataError, match="d.hdf5 has a group or link, not a dataset, under 'tenant'"):
        load_dataset(_spec(tmp_path / "d.hdf5"), cache_dir=tmp_path, attributes=["tenant"])

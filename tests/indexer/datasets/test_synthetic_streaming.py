"""The streamed synthetic path: same vectors as the in-memory one, written once, memory-mapped."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.common.errors import UserError
from indexer.datasets import load_dataset, synthetic
from indexer.model.datasets import SyntheticDataset


def _spec(**kw) -> SyntheticDataset:
    base = dict(kind="synthetic", intrinsic_dims=[3, 7, 1], points_per_subspace=53,
                queries_per_subspace=5, ambient_dim=12, seed=4)
    return SyntheticDataset(**{**base, **kw})


def _stream(monkeypatch, rows: int, ambient: int = 12) -> None:
    """Stream every set, `rows` rows per chunk."""
    monkeypatch.setattr(synthetic, "STREAM_THRESHOLD_BYTES", 0)
    monkeypatch.setattr(synthetic, "STREAM_CHUNK_BYTES", 8 * ambient * rows)


def test_sequential_standard_normal_draws_equal_one_draw():
    whole = np.random.default_rng(9).standard_normal((1000, 7))
    rng = np.random.default_rng(9)
    parts = [rng.standard_normal((m, 7)) for m in (1, 13, 400, 586)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # and the generator ends in the same state
    assert rng.standard_normal() == np.random.default_rng(9).standard_normal(7001)[-1]


@pytest.mark.parametrize("noise", [0.0, 0.25])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("rows", [1, 7, 53, 1000])
def test_streamed_equals_in_memory(monkeypatch, tmp_path, noise, normalize, rows):
    spec = _spec(noise=noise, normalize=normalize)
    expected = synthetic.load(spec)
    assert isinstance(expected.base, np.ndarray) and not isinstance(expected.base, np.memmap)
    _stream(monkeypatch, rows)
    ds = synthetic.load(spec, cache_dir=tmp_path)
    assert isinstance(ds.base, np.memmap) and not ds.base.flags.writeable
    assert ds.base.dtype == np.float32 and ds.base.shape == expected.base.shape
    np.testing.assert_allclose(ds.base, expected.base, rtol=1e-6, atol=1e-6)
    # the queries come after every base draw: equal queries mean the random stream was kept
    np.testing.assert_allclose(ds.queries, expected.queries, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds.labels, expected.labels)
    np.testing.assert_array_equal(ds.query_labels, expected.query_labels)
    assert ds.labels.dtype == ds.query_labels.dtype == np.int64
    assert ds.label_names == expected.label_names


def test_second_load_reuses_the_files(monkeypatch, tmp_path):
    _stream(monkeypatch, 10)
    spec = _spec(noise=0.1)
    first = synthetic.load(spec, cache_dir=tmp_path)
    files = sorted((tmp_path / "synthetic").iterdir())
    assert [p.suffix for p in files] == [".npy", ".npy"]  # base and queries, no staging left behind
    stamps = {p: p.stat().st_mtime_ns for p in files}

    def never(*args, **kwargs):
        raise AssertionError("the set was generated again")

    monkeypatch.setattr(synthetic, "subspace_basis", never)
    again = synthetic.load(spec, cache_dir=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    np.testing.assert_array_equal(again.base, first.base)
    np.testing.assert_array_equal(again.queries, first.queries)


def test_another_spec_gets_another_file(monkeypatch, tmp_path):
    _stream(monkeypatch, 10)
    a = synthetic.load(_spec(seed=1), cache_dir=tmp_path)
    b = synthetic.load(_spec(seed=2), cache_dir=tmp_path)
    assert a.base.filename != b.base.filename
    assert not np.array_equal(a.base, b.base)


def test_a_file_of_the_wrong_shape_is_generated_again(monkeypatch, tmp_path):
    _stream(monkeypatch, 10)
    spec = _spec()
    path = synthetic.load(spec, cache_dir=tmp_path).base.filename
    np.save(path, np.zeros((3, 3), dtype=np.float32))
    ds = synthetic.load(spec, cache_dir=tmp_path)
    np.testing.assert_allclose(ds.base, synthetic._in_memory(spec)[0], rtol=1e-6, atol=1e-6)


def test_streaming_needs_a_cache_dir(monkeypatch):
    _stream(monkeypatch, 10)
    with pytest.raises(UserError, match="needs a cache_dir"):
        synthetic.load(_spec())


def test_small_sets_stay_in_memory(tmp_path):
    ds = synthetic.load(_spec(), cache_dir=tmp_path)
    assert not isinstance(ds.base, np.memmap) and ds.base.flags.writeable
    assert not (tmp_path / "synthetic").exists()


def test_the_threshold_is_the_float32_base_size(monkeypatch, tmp_path):
    spec = _spec()
    size = synthetic.base_bytes(spec)
    assert size == 3 * 53 * 12 * 4
    monkeypatch.setattr(synthetic, "STREAM_THRESHOLD_BYTES", size)
    assert not isinstance(synthetic.load(spec, cache_dir=tmp_path).base, np.memmap)
    monkeypatch.setattr(synthetic, "STREAM_THRESHOLD_BYTES", size - 1)
    assert isinstance(synthetic.load(spec, cache_dir=tmp_path).base, np.memmap)


def _mapped(arr: np.ndarray) -> bool:
    """Is arr, or an array it views, a memory map?"""
    while arr is not None:
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base if isinstance(arr.base, np.ndarray) else None
    return False


def test_validated_streamed_base_is_not_copied(monkeypatch, tmp_path):
    _stream(monkeypatch, 10)
    ds = load_dataset(_spec(), cache_dir=tmp_path)
    assert _mapped(ds.base) and not ds.base.flags.writeable

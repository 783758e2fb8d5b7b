"""Prepared vectors written to a file and mapped: the same values as `prepare_vectors` in memory,
checked against numpy's own normalisation, and recognisable as a whole-file map by `npy_file_of`."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.common.fileio import npy_file_of
from indexer.science import groundtruth
from indexer.science.groundtruth import prepare_to_file, prepare_vectors


def _gauss(n: int, d: int, seed: int, dtype: type = np.float32) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)
    x[3] = 0.0  # a zero row stays zero under cosine
    return x


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_file_holds_what_prepare_vectors_returns(tmp_path, monkeypatch, metric, dtype):
    monkeypatch.setattr(groundtruth, "_PAIR_BLOCK_ELEMENTS", 7 * 16)  # 7 rows a block: boundaries mid-set
    x = _gauss(50, 16, 1, dtype)
    got = prepare_to_file(x, metric, tmp_path / "sub" / "p.npy")
    assert isinstance(got, np.memmap) and not got.flags.writeable and got.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got), prepare_vectors(x, metric))
    x64 = x.astype(np.float64)  # and against numpy directly, in float64
    if metric == "cosine":
        norms = np.linalg.norm(x64, axis=1, keepdims=True)
        x64 = np.divide(x64, norms, out=np.zeros_like(x64), where=norms > 0)
    np.testing.assert_array_equal(np.asarray(got), x64.astype(np.float32))
    assert npy_file_of(got) == tmp_path / "sub" / "p.npy"


def test_a_read_only_float32_map_is_kept_for_l2_and_ip_but_normalised_for_cosine(tmp_path):
    np.save(tmp_path / "x.npy", _gauss(20, 8, 2))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert prepare_to_file(mapped, "l2", tmp_path / "p.npy") is mapped
    assert not (tmp_path / "p.npy").exists()  # nothing written when nothing changes
    cosine = prepare_to_file(mapped, "cosine", tmp_path / "p.npy")
    np.testing.assert_allclose(np.linalg.norm(cosine[np.arange(20) != 3], axis=1), 1.0, rtol=1e-6)


def test_npy_file_of_names_only_a_map_of_the_whole_file(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(24, dtype=np.float32).reshape(6, 4))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert npy_file_of(mapped) == tmp_path / "a.npy"
    for part in (mapped[:3], mapped[2:], mapped[:, :2], mapped.T, mapped[[0, 2]], np.array(mapped),
                 np.arange(4.0)):
        assert npy_file_of(part) is None  # a part, a copy or plain memory: another process needs a copy

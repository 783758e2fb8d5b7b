"""Precision: each library's stored vectors, decoded, against a numpy implementation of the same quantization
(from the library's source, cited in its backend's file); exact search over them against numpy brute force over
the numpy-quantized vectors; a precision a backend does not ship refused naming those it does; cache keys that
stay where the parameter is at its default."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.backends import BACKENDS
from indexer.backends.base import StoresVectors
from indexer.backends.precision import bytes_per_vector
from indexer.engine.spec import SpecError, parse_spec
from indexer.engine.spec import cells as spec_cells
from indexer.science import groundtruth
from tests.indexer.backends import kit

LEAN = {"M": 8, "ef_construction": 32}
K = 10


def _data(space: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors for ip; for l2 the same scaled by 3 and shifted, so a scale or an offset matters."""
    x, q = kit.clustered_data(n=600, d=24, q=40)
    return (x, q) if space == "ip" else (x * 3 + 0.25, q * 3 + 0.25)


def _stored(name: str, params: dict, x: np.ndarray, space: str) -> tuple[np.ndarray, StoresVectors]:
    """The index's stored vectors in the dataset's numbering (built in a shuffled order)."""
    order = np.random.default_rng(1).permutation(len(x))
    index = kit.build(name, {**LEAN, **params}, x, order, space)
    assert isinstance(index, StoresVectors)
    rows, vectors = index.stored_vectors()
    out = np.full(x.shape, np.nan, dtype=np.float32)
    out[rows] = vectors
    assert sorted(rows.tolist()) == list(range(len(x)))
    return out, index


# numpy implementations of each quantization, from the sources cited in the backends' files


def bf16_nearest_even(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 rounded to nearest, ties to even, back to float32."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def bf16_half_away(x: np.ndarray) -> np.ndarray:
    """faiss's encode_bf16: (bits + 0x8000) >> 16, ties away from zero."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((((b + 0x8000) >> 16) << 16) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


def fp16_half_away(x: np.ndarray) -> np.ndarray:
    """faiss's encode_fp16 (ryg's float_to_half_fast3, faiss/utils/fp16-inl.h:32-84): the 13 dropped mantissa
    bits rounded half up in magnitude, ties away from zero (normal half range; below it, numpy's)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    mag = np.abs(x).view(np.uint32).astype(np.uint64)
    rounded = (((mag + 0x1000) >> 13) << 13).astype(np.uint32).view(np.float32)
    return np.where(np.abs(x) >= 2.0**-14, np.sign(x) * rounded, x.astype(np.float16).astype(np.float32))


def faiss_sq8(x: np.ndarray) -> np.ndarray:
    """QT_8bit with RS_minmax: per-dimension min and range, code int(255 * t), decoded (code + 0.5) / 255."""
    vmin, vmax = x.min(axis=0), x.max(axis=0)
    vdiff = (vmax - vmin).astype(np.float32)
    t = np.clip((x - vmin) / vdiff, 0.0, 1.0).astype(np.float32)
    code = (np.float32(255) * t).astype(np.int32)
    return (vmin + ((code + np.float32(0.5)) / np.float32(255)) * vdiff).astype(np.float32)


def usearch_i8(x: np.ndarray) -> np.ndarray:
    """cast_to_i8_gt: x / ||x|| * 127, clamped to [-127, 127], truncated; decoded code / 127."""
    x64 = x.astype(np.float64)
    code = np.trunc(np.clip(x64 * 127.0 / np.linalg.norm(x64, axis=1, keepdims=True), -127, 127))
    return (code.astype(np.int8).astype(np.float32) / np.float32(127)).astype(np.float32)


def signs(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, -1.0).astype(np.float32)


def voyager_float8(x: np.ndarray) -> np.ndarray:
    """int8 in units of 1/127, the conversion truncating toward zero."""
    return (np.trunc(x * np.float32(127)).astype(np.int8).astype(np.float32) / np.float32(127)).astype(np.float32)


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_two_bf16_roundings_differ_on_a_tie() -> None:
    """The numpy references themselves: 1 + 2^-8 is halfway between two bf16 values."""
    tie = np.array([1 + 2**-8, -(1 + 2**-8), 1 + 3 * 2**-8], dtype=np.float32)
    np.testing.assert_array_equal(bf16_nearest_even(tie), [1.0, -1.0, 1 + 2**-6])
    np.testing.assert_array_equal(bf16_half_away(tie), [1 + 2**-7, -(1 + 2**-7), 1 + 2**-6])


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_faiss_stores_what_its_quantizers_compute(space: str) -> None:
    x, _ = _data(space)
    # a bf16 tie, then an f16 one: faiss rounds both away from zero
    ties = np.array([[1 + 2**-8] * x.shape[1], [-(1 + 2**-11)] * x.shape[1]], dtype=np.float32)
    x = np.vstack([x, ties])
    f16, _ = _stored("faiss_hnsw", {"precision": "f16"}, x, space)
    normal = np.abs(x) >= 2.0**-14  # below, half subnormals: to one subnormal step (2^-24)
    np.testing.assert_array_equal(f16[normal], fp16_half_away(x)[normal])
    np.testing.assert_allclose(f16, fp16_half_away(x), rtol=0, atol=2.0**-24)
    assert f16[-1, 0] == -(1 + 2**-10)  # numpy's float16 would give -1
    bf16, _ = _stored("faiss_hnsw", {"precision": "bf16"}, x, space)
    np.testing.assert_array_equal(bf16, bf16_half_away(x))
    assert not np.array_equal(bf16, bf16_nearest_even(x))
    sq8, _ = _stored("faiss_hnsw", {"precision": "i8"}, x, space)
    np.testing.assert_allclose(sq8, faiss_sq8(x), rtol=0, atol=1e-6)
    f32, _ = _stored("faiss_hnsw", {}, x, space)
    np.testing.assert_array_equal(f32, x)


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_usearch_stores_what_its_casts_compute(space: str) -> None:
    x, _ = _data(space)
    ties = np.array([[1 + 2**-8] * x.shape[1]], dtype=np.float32)  # usearch rounds a bf16 tie to the even
    x = np.vstack([x, ties, -ties * (1 + 2**-3)])  # and an f16 tie (1 + 2^-11 times 1 + 2^-3... rounds below)
    as_compared = _normalised if space == "ip" else (lambda v: v)  # cos compares normalised vectors
    bf16, _ = _stored("usearch", {"precision": "bf16"}, x, space)
    np.testing.assert_allclose(bf16, as_compared(bf16_nearest_even(x)), rtol=0, atol=1e-7)
    if space == "l2":  # unnormalised, the rounding itself shows
        np.testing.assert_array_equal(bf16, bf16_nearest_even(x))
        assert not np.array_equal(bf16, bf16_half_away(x))
    f16, _ = _stored("usearch", {"precision": "f16"}, x, space)
    np.testing.assert_allclose(f16, as_compared(x.astype(np.float16).astype(np.float32)), rtol=0, atol=1e-7)
    i8, _ = _stored("usearch", {"precision": "i8"}, x, space)
    np.testing.assert_allclose(i8, as_compared(usearch_i8(x)), rtol=0, atol=1e-6)
    binary, _ = _stored("usearch", {"precision": "binary"}, x, space)
    np.testing.assert_array_equal(binary, signs(x))


def test_usearch_i8_loses_a_vectors_length_under_l2() -> None:
    """usearch scales each vector to unit length before coding it (cast_to_i8_gt): a long and a short vector
    of one direction are stored alike."""
    x, _ = _data("l2")
    both = np.vstack([x, 5 * x[:1]])
    stored, _ = _stored("usearch", {"precision": "i8"}, both, "l2")
    np.testing.assert_array_equal(stored[0], stored[-1])
    assert np.linalg.norm(stored, axis=1) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_voyager_float8_stores_truncated_127ths(space: str) -> None:
    x, _ = kit.clustered_data(n=600, d=24, q=40)
    x = x * 0.9 if space == "l2" else x  # Float8 refuses a coordinate outside [-128/127, 1]
    stored, _ = _stored("voyager", {"precision": "float8"}, x, space)
    # Cosine normalises before it converts (x is already unit); the stored vectors are not normalised again
    np.testing.assert_allclose(stored, voyager_float8(x), rtol=0, atol=1e-6)


# exact search over what the index stores, against numpy brute force over the numpy-quantized vectors

CASES = [("faiss_hnsw", "f16", fp16_half_away, None),
         ("faiss_hnsw", "bf16", bf16_half_away, None),
         ("faiss_hnsw", "i8", faiss_sq8, None),
         ("usearch", "bf16", bf16_nearest_even, bf16_nearest_even),
         ("usearch", "i8", usearch_i8, usearch_i8),
         ("usearch", "binary", signs, signs)]


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize(("name", "precision", "quantize", "quantize_queries"), CASES)
def test_exact_search_over_the_stored_vectors_is_brute_force_over_the_quantized(
        name: str, precision: str, quantize, quantize_queries, space: str) -> None:
    x, q = _data(space)
    _, index = _stored(name, {"precision": precision}, x, space)
    rows, vectors = index.stored_vectors()
    found, _ = groundtruth.exact_knn(vectors, index.stored_queries(q), K, space)
    got = rows[found]
    xs, qs = quantize(x), (q if quantize_queries is None else quantize_queries(q))
    if name == "usearch" and space == "ip" and precision != "binary":  # usearch's cos: normalised vectors
        xs, qs = _normalised(xs), _normalised(qs)
    want = kit.brute_force(xs, qs, K, space)
    if precision == "binary":  # Hamming ties are many: each found id is as near as brute force's k-th
        hamming = (xs[None, :, :] != qs[:, None, :]).sum(-1)
        kth = np.sort(hamming, axis=1)[:, K - 1]
        assert (np.take_along_axis(hamming, got, axis=1).max(axis=1) <= kth).all()
    else:  # ties aside: the same sets, to a boundary swap or two
        overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(got, want, strict=True)])
        assert overlap >= 0.99


def test_bytes_per_vector() -> None:
    assert [bytes_per_vector(p, 100) for p in ("f32", "f16", "bf16", "i8", "binary", "e4m3", "float8")] == \
        [400, 200, 200, 100, 13, 100, 100]
    with pytest.raises(ValueError, match="f32, f16"):
        bytes_per_vector("pq", 100)


# the spec: names, refusals, aliases, keys


def _spec(*entries: dict) -> object:
    return parse_spec({"name": "p", "dataset": {"kind": "synthetic", "intrinsic_dims": [2],
                                                "points_per_subspace": 50, "queries_per_subspace": 5,
                                                "ambient_dim": 8}, "k": 5, "backends": list(entries)})


@pytest.mark.parametrize(("entry", "names"), [
    ({"name": "faiss_hnsw", "precision": "binary"}, "its precisions: f32, f16, bf16, i8"),
    ({"name": "usearch", "precision": "e4m3"}, "its precisions: bf16, f16, f32, i8, binary"),
    ({"name": "voyager", "precision": "i8"}, "its precisions: f32, float8, e4m3"),
    ({"name": "hnswlib", "precision": "f16"}, "hnswlib stores f32 only and takes no precision"),
])
def test_a_precision_not_shipped_is_refused_naming_those_shipped(entry: dict, names: str) -> None:
    with pytest.raises(SpecError, match=names):
        _spec(entry)


def test_every_library_names_its_precisions() -> None:
    assert BACKENDS["faiss_hnsw"].precisions() == ("f32", "f16", "bf16", "i8")
    assert BACKENDS["usearch"].precisions() == ("bf16", "f16", "f32", "i8", "binary")
    assert BACKENDS["voyager"].precisions() == ("f32", "float8", "e4m3")
    assert BACKENDS["hnswlib"].precisions() == ("f32",)


def test_usearch_takes_its_earlier_dtype_and_names_it_precision() -> None:
    spec = _spec({"name": "usearch", "dtype": "f16"})
    entry = spec.backends[0]  # type: ignore[attr-defined]
    assert entry.build_params()["precision"] == "f16" and "dtype" not in entry.build_params()


def test_default_precision_keeps_the_keys_of_faiss_and_voyager() -> None:
    """faiss_hnsw at f32 keys as before (no precision in its key); voyager's key spells its precision as its
    earlier dtype did (float32 for f32), so both keep every cached cell; a voyager spec saying dtype: float32
    is the same cell."""
    spec = _spec({"name": "faiss_hnsw"}, {"name": "voyager"}, {"name": "voyager", "dtype": "float32"},
                 {"name": "voyager", "precision": "e4m3"})
    cells = spec_cells(spec)  # type: ignore[arg-type]
    keyed = [c._keyed()["backend"] for c in cells]
    assert "precision" not in keyed[0] and "precision" not in keyed[1]
    assert keyed[1]["dtype"] == "float32" and keyed[2] == keyed[1] and keyed[3]["dtype"] == "e4m3"
    assert cells[1].build_key(spec) == cells[2].build_key(spec)  # type: ignore[arg-type]

"""Reductions checked against independent numpy computations, never against their own output."""

import numpy as np
import pytest

from indexer.common.errors import DataError, UserError
from indexer.model.options import ReductionSpec
from indexer.science.reduce import REDUCTIONS, fit_reduction


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    # anisotropic so PCA has well separated components
    scales = np.linspace(3.0, 0.1, 32)
    base = (rng.standard_normal((600, 32)) * scales + 0.5).astype(np.float32)
    queries = (rng.standard_normal((40, 32)) * scales + 0.5).astype(np.float32)
    return base, queries


def test_registry_covers_the_spec() -> None:
    assert set(REDUCTIONS) == {"none", "fft", "pca", "random_projection", "truncate"}


def test_none_is_identity(data) -> None:
    base, queries = data
    red = fit_reduction(ReductionSpec(name="none"), base, seed=0)
    out = red.transform(queries)
    assert out.dtype == np.float32 and red.dims == 32
    np.testing.assert_array_equal(out, queries)


def test_fft_low_matches_numpy_full_fft_magnitudes(data) -> None:
    base, queries = data
    red = fit_reduction(ReductionSpec(name="fft", dims=10, rule="low"), base, seed=0)
    expected = np.abs(np.fft.fft(queries.astype(np.float64), axis=1))[:, :10]
    out = red.transform(queries)
    assert out.shape == (40, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    desc = red.describe()
    assert desc["bins"] == list(range(10)) and desc["rule"] == "low" and desc["linear"] is False


def test_fft_default_rule_is_low(data) -> None:
    base, _ = data
    assert fit_reduction(ReductionSpec(name="fft", dims=4), base, seed=0).describe()["rule"] == "low"


def test_fft_energy_keeps_most_energetic_bins(data) -> None:
    rng = np.random.default_rng(1)
    d = 32
    t = np.arange(d)
    # energy concentrated in bins 3 and 11 (plus a DC offset), by construction
    amp = rng.standard_normal((500, 3))
    base = amp[:, :1] * np.cos(2 * np.pi * 3 * t / d) + 2 * amp[:, 1:2] * np.sin(2 * np.pi * 11 * t / d) + 0.7
    base = base + 0.01 * rng.standard_normal((500, d))
    red = fit_reduction(ReductionSpec(name="fft", dims=3, rule="energy"), base, seed=0)
    assert red.describe()["bins"] == [0, 3, 11]
    # independent: mean |X_j|^2 over the full spectrum's first half, top 3 bins
    power = (np.abs(np.fft.fft(base, axis=1)) ** 2).mean(axis=0)[: d // 2 + 1]
    assert sorted(np.argsort(power)[::-1][:3].tolist()) == [0, 3, 11]
    np.testing.assert_allclose(
        red.transform(base[:5]), np.abs(np.fft.fft(base[:5], axis=1))[:, [0, 3, 11]], rtol=1e-5, atol=1e-4
    )


def test_fft_magnitude_spectrum_is_symmetric_so_dims_are_capped(data) -> None:
    base, _ = data
    spectrum = np.abs(np.fft.fft(base[:3].astype(np.float64), axis=1))
    np.testing.assert_allclose(spectrum[:, 1:], spectrum[:, :0:-1], rtol=1e-9, atol=1e-9)
    fit_reduction(ReductionSpec(name="fft", dims=17), base, seed=0)  # 32 // 2 + 1 distinct bins
    with pytest.raises(UserError, match="17 distinct"):
        fit_reduction(ReductionSpec(name="fft", dims=18), base, seed=0)


def test_pca_spans_the_svd_subspace_and_matches_projections_up_to_sign(data) -> None:
    base, queries = data
    red = fit_reduction(ReductionSpec(name="pca", dims=5), base, seed=0)
    x = base.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    expected = (queries - mean) @ vt[:5].T
    out = red.transform(queries).astype(np.float64)
    for j in range(5):
        corr = np.corrcoef(out[:, j], expected[:, j])[0, 1]
        assert abs(corr) > 0.9999
        # same scale too: the projection is onto a unit vector
        np.testing.assert_allclose(np.abs(out[:, j]), np.abs(expected[:, j]), rtol=1e-3, atol=1e-3)
    # the projector onto the fitted subspace equals the SVD one
    comps = red.matrix.astype(np.float64)
    np.testing.assert_allclose(comps @ comps.T, vt[:5].T @ vt[:5], atol=1e-5)
    assert 0 < red.describe()["explained_variance_ratio"] < 1


def test_pca_dims_error(data) -> None:
    base, _ = data
    with pytest.raises(UserError, match="min"):
        fit_reduction(ReductionSpec(name="pca", dims=33), base, seed=0)
    with pytest.raises(UserError):
        fit_reduction(ReductionSpec(name="pca", dims=4), base[:3], seed=0)


def test_random_projection_preserves_distances_jl(data) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 512)).astype(np.float32)
    red = fit_reduction(ReductionSpec(name="random_projection", dims=256), x, seed=11)
    y = red.transform(x).astype(np.float64)
    i, j = np.triu_indices(60, k=1)
    d_in = np.linalg.norm(x[i].astype(np.float64) - x[j], axis=1)
    d_out = np.linalg.norm(y[i] - y[j], axis=1)
    ratio = d_out / d_in
    # JL: with 256 dims, relative error ~ sqrt(2/256) ~ 0.09 per pair; 4 sigma bound
    assert np.all(np.abs(ratio - 1) < 0.35)
    assert abs(np.mean(ratio**2) - 1) < 0.05


def test_random_projection_is_seeded(data) -> None:
    base, queries = data
    spec = ReductionSpec(name="random_projection", dims=8)
    a = fit_reduction(spec, base, seed=5).transform(queries)
    b = fit_reduction(spec, base, seed=5).transform(queries)
    c = fit_reduction(spec, base, seed=6).transform(queries)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # the documented construction: x @ R with R ~ N(0, 1/dims) from default_rng(seed)
    r = np.random.default_rng(5).standard_normal((32, 8)) / np.sqrt(8)
    np.testing.assert_allclose(a, queries.astype(np.float64) @ r, rtol=1e-4, atol=1e-4)


def test_truncate_and_dims_errors(data) -> None:
    base, queries = data
    red = fit_reduction(ReductionSpec(name="truncate", dims=7), base, seed=0)
    np.testing.assert_array_equal(red.transform(queries), queries[:, :7])
    with pytest.raises(UserError, match="only 32"):
        fit_reduction(ReductionSpec(name="truncate", dims=33), base, seed=0)


def test_transform_rejects_wrong_width(data) -> None:
    base, _ = data
    red = fit_reduction(ReductionSpec(name="pca", dims=4), base, seed=0)
    with pytest.raises(DataError):
        red.transform(np.zeros((2, 31), dtype=np.float32))


@pytest.mark.parametrize(
    "spec",
    [
        ReductionSpec(name="none"),
        ReductionSpec(name="fft", dims=6, rule="energy"),
        ReductionSpec(name="pca", dims=6),
        ReductionSpec(name="random_projection", dims=6),
        ReductionSpec(name="truncate", dims=6),
    ],
)
def test_describe_names_dims(spec, data) -> None:
    base, queries = data
    red = fit_reduction(spec, base, seed=0)
    desc = red.describe()
    assert desc["name"] == spec.name and desc["dims"] == red.dims == red.transform(queries).shape[1]

"""Space measures against known values and numpy brute force."""

import numpy as np
import pytest

from indexer.common.errors import DataError, UserError
from indexer.science.space import isoscore, relative_contrast, space_summary


def paper_isoscore(points: np.ndarray) -> float:
    """IsoScore written from the paper's steps (Rudman et al. 2022, Algorithm 1), in numpy."""
    x = points - points.mean(axis=0)
    n = x.shape[1]
    # 1-2: reorient to principal components; the variance vector is the covariance eigenvalues
    variances = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    # 3: normalise to the norm of the ones vector
    normed = variances * np.sqrt(n) / np.linalg.norm(variances)
    # 4: isotropy defect
    defect = np.linalg.norm(normed - 1) / np.sqrt(2 * (n - np.sqrt(n)))
    # 5-6: fraction of dimensions used, rescaled to [0, 1]
    phi = (n - defect**2 * (n - np.sqrt(n))) ** 2 / n**2
    return float((n * phi - 1) / (n - 1))


def test_isoscore_isotropic_gaussian_is_near_one() -> None:
    x = np.random.default_rng(0).standard_normal((5000, 16))
    assert isoscore(x) > 0.95


def test_isoscore_on_a_line_is_zero() -> None:
    rng = np.random.default_rng(1)
    direction = rng.standard_normal(16)
    x = rng.standard_normal((5000, 1)) * direction + 3.0
    assert isoscore(x) < 1 / 16
    assert abs(isoscore(x)) < 1e-3


def test_isoscore_on_a_4d_subspace_is_k_minus_1_over_d_minus_1() -> None:
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.standard_normal((16, 4)))
    x = rng.standard_normal((5000, 4)) @ basis.T
    score = isoscore(x)
    assert 1 / 16 < score < 0.95
    assert score == pytest.approx(3 / 15, abs=0.03)


def test_isoscore_matches_the_papers_algorithm_on_an_anisotropic_cloud() -> None:
    rng = np.random.default_rng(3)
    x = (
        rng.standard_normal((2000, 10))
        * np.linspace(0.2, 3.0, 10)
        @ np.linalg.qr(rng.standard_normal((10, 10)))[0]
    )
    assert isoscore(x) == pytest.approx(paper_isoscore(x), abs=1e-4)


def test_isoscore_rejects_degenerate_input() -> None:
    with pytest.raises(DataError):
        isoscore(np.ones((10, 4)))
    with pytest.raises(DataError):
        isoscore(np.ones((1, 4)))


def brute_rc(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = np.linalg.norm(queries[:, None, :].astype(np.float64) - base[None, :, :], axis=2)
    return d.mean(axis=1) / np.sort(d, axis=1)[:, k - 1]


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.standard_normal((400, 12)).astype(np.float32), rng.standard_normal((30, 12)).astype(np.float32)


def test_relative_contrast_matches_brute_force(small) -> None:
    base, queries = small
    rc = relative_contrast(base, queries, k=10, metric="l2", sample=10_000)
    np.testing.assert_allclose(rc, brute_rc(base, queries, 10), rtol=1e-4)
    assert np.all(rc > 1)


def test_relative_contrast_cosine_uses_normalised_vectors(small) -> None:
    base, queries = small
    scale = np.random.default_rng(5).uniform(0.5, 4.0, size=(400, 1)).astype(np.float32)
    unit_b = base / np.linalg.norm(base, axis=1, keepdims=True)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    rc = relative_contrast(base * scale, queries, k=5, metric="cosine", sample=10_000)
    np.testing.assert_allclose(rc, brute_rc(unit_b, unit_q, 5), rtol=1e-4)
    assert np.all(rc > 1)


def test_relative_contrast_sample_is_seeded_and_close(small) -> None:
    base, queries = small
    a = relative_contrast(base, queries, k=10, metric="l2", sample=200, seed=1)
    b = relative_contrast(base, queries, k=10, metric="l2", sample=200, seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, brute_rc(base, queries, 10), rtol=0.05)


def test_relative_contrast_errors_and_duplicates(small) -> None:
    base, queries = small
    with pytest.raises(UserError):
        relative_contrast(base, queries, k=401, metric="l2")
    with pytest.raises(UserError):
        relative_contrast(base, queries, k=1, metric="hamming")
    rc = relative_contrast(base, base[:3], k=1, metric="l2")
    assert np.all(np.isinf(rc))


def test_space_summary(small) -> None:
    base, queries = small
    lid_b = np.concatenate([np.arange(1.0, 101.0), [np.inf]])
    lid_q = np.array([2.0, 4.0, np.nan, 6.0])
    out = space_summary(base, queries, 10, "l2", lid_b, lid_q, sample=10_000)
    assert out["isoscore"] == pytest.approx(paper_isoscore(base.astype(np.float64)), abs=1e-4)
    assert out["lid_base_median"] == pytest.approx(50.5)
    assert out["lid_base_p10"] == pytest.approx(np.percentile(np.arange(1.0, 101.0), 10))
    assert out["lid_queries_mean"] == pytest.approx(4.0)
    rc = brute_rc(base, queries, 10)
    assert out["rc_median"] == pytest.approx(np.median(rc), rel=1e-4)
    assert out["rc_p90"] == pytest.approx(np.percentile(rc, 90), rel=1e-4)
    assert out["rc_infinite"] == 0 and out["rc_k"] == 10


def test_isoscore_of_a_large_set_reads_its_blocked_covariance_and_gives_the_same_score(monkeypatch) -> None:
    import indexer.science.space as space

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3000, 12)) * np.linspace(0.1, 4.0, 12) @ np.linalg.qr(rng.standard_normal((12, 12)))[0]
         + 5.0).astype(np.float32)
    direct = isoscore(x)
    monkeypatch.setattr(space, "ISOSCORE_DIRECT_ROWS", 100)
    monkeypatch.setattr(space, "_BLOCK_ROWS", 257)  # blocks that do not divide the rows
    np.testing.assert_allclose(space.covariance(x), np.cov(x.astype(np.float64).T), rtol=1e-9, atol=1e-12)
    assert isoscore(x) == pytest.approx(direct, abs=1e-9)
    assert isoscore(x) == pytest.approx(paper_isoscore(x.astype(np.float64)), abs=1e-6)
    with pytest.raises(DataError, match="identical points"):
        isoscore(np.ones((500, 4)))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_relative_contrast_over_base_blocks_equals_one_search(small, monkeypatch, metric) -> None:
    """The k-th neighbour is found a base block at a time (blocks of 7 rows here, so k spans several
    blocks): the same distances as one search, and brute force agrees; a NaN anywhere is still refused."""
    from indexer.science import space

    base, queries = small
    whole = relative_contrast(base, queries, k=10, metric=metric, sample=10_000)
    monkeypatch.setattr(space, "_SEARCH_BLOCK_BYTES", 7 * 4 * base.shape[1])
    monkeypatch.setattr(space, "_BLOCK_ROWS", 7)
    np.testing.assert_allclose(relative_contrast(base, queries, k=10, metric=metric, sample=10_000), whole,
                               rtol=1e-6)
    unit = (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)) if metric == "cosine" else (lambda x: x)
    np.testing.assert_allclose(whole, brute_rc(unit(base), unit(queries), 10), rtol=1e-4)
    broken = base.copy()
    broken[-1, 0] = np.nan  # in the last block only
    with pytest.raises(DataError, match="NaN"):
        relative_contrast(broken, queries, k=10, metric=metric)

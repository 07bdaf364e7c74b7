"""Similarity measures against plain float64 references written from the papers' definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untrainable import similarity as S

# ----------------------------------------------------------------------------- references (numpy, float64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().reshape(t.shape[0], -1).numpy()


def ref_hsic(k: np.ndarray, l: np.ndarray, debiased: bool) -> float:
    n = k.shape[0]
    if not debiased:  # Gretton et al. 2005: tr(KHLH) / (n-1)^2
        h = np.eye(n) - np.ones((n, n)) / n
        return np.trace(k @ h @ l @ h) / (n - 1) ** 2
    k, l = k.copy(), l.copy()  # Song et al. 2012, eq. 5
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def ref_cka_from_grams(k: np.ndarray, l: np.ndarray, debiased: bool) -> float:
    return ref_hsic(k, l, debiased) / np.sqrt(ref_hsic(k, k, debiased) * ref_hsic(l, l, debiased))


def ref_linear_cka(x, y, debiased=False) -> float:
    x, y = _np(x), _np(y)
    return ref_cka_from_grams(x @ x.T, y @ y.T, debiased)


def ref_rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(x), 1)
    sigma = threshold * np.sqrt(np.median(d2[iu]))  # median distance, odd number of pairs below
    return np.exp(-d2 / (2 * sigma**2))


def ref_rbf_cka(x, y, threshold=0.5, debiased=False) -> float:
    return ref_cka_from_grams(ref_rbf_gram(_np(x), threshold), ref_rbf_gram(_np(y), threshold), debiased)


def ref_procrustes(x, y) -> float:
    x, y = _np(x), _np(y)
    x, y = x - x.mean(0), y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    # pad to equal width, solve min_Q ||X - Y Q|| directly (Schoenemann 1966)
    d = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    u, _, vt = np.linalg.svd(y.T @ x)
    q = u @ vt
    return float(np.linalg.norm(x - y @ q) ** 2)


def ref_cca(x, y) -> float:
    """Mean squared canonical correlation from whitened cross-covariance (Hotelling 1936)."""
    x, y = _np(x), _np(y)
    x, y = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = x.T @ x, y.T @ y, x.T @ y

    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(w**-0.5) @ v.T

    rho = np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)
    return float((rho**2).sum() / min(x.shape[1], y.shape[1]))


def ref_rsa(x, y) -> float:
    x, y = _np(x), _np(y)
    iu = np.triu_indices(len(x), 1)
    a, b = (1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu]
    return float(np.corrcoef(a, b)[0, 1])


def ref_spearman_rsa(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = _np(x), _np(y)
    iu = np.triu_indices(len(x), 1)
    return float(spearmanr((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu]).statistic)


# ----------------------------------------------------------------------------- data


def pair(n: int, dx: int, dy: int, seed: int = 0, noise: float = 1.0, dtype=torch.float64):
    """Two related representations: ``y`` a random linear map of ``x`` (through ReLU) plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=g, dtype=torch.float64)
    y = torch.relu(x @ torch.randn(dx, dy, generator=g, dtype=torch.float64) / dx**0.5)
    y = y + noise * torch.randn(n, dy, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def random_orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


# feature space (d < n), Gram space (d > n) and mixed shapes; the dispatch must not matter
SHAPES = [(40, 6, 9), (25, 60, 80), (30, 8, 120)]


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("n,dx,dy", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_reference(n, dx, dy, debiased):
    x, y = pair(n, dx, dy)
    x = x + 3.0  # an offset: the reference centres by H, we centre the features
    got = S.linear_cka(x, y, debiased=debiased)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert got.item() == pytest.approx(ref_linear_cka(x, y, debiased), abs=1e-10)


@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_feature_and_gram_space_agree(n, dx, dy):
    x, y = pair(n, dx, dy, seed=3)
    for debiased in (False, True):
        a = S.linear_cka(x, y, debiased, space="feature")
        b = S.linear_cka(x, y, debiased, space="gram")
        assert a.item() == pytest.approx(b.item(), abs=1e-12)
    with pytest.raises(ValueError, match="unknown space"):
        S.linear_cka(x, y, space="diagonal")


def test_use_feature_space_picks_the_cheaper_side():
    assert S.use_feature_space(4096, 64, 64)
    assert not S.use_feature_space(64, 4096, 4096)
    assert not S.use_feature_space(256, 8192, 10)


@pytest.mark.parametrize("n,dx,dy", SHAPES)
@pytest.mark.parametrize("threshold", [0.3, 0.5, 1.0])
@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka_matches_reference(n, dx, dy, threshold, debiased):
    x, y = pair(n, dx, dy, seed=1)
    got = S.rbf_cka(x, y, threshold=threshold, debiased=debiased)
    assert got.item() == pytest.approx(ref_rbf_cka(x, y, threshold, debiased), abs=1e-10)


def test_rbf_cka_large_bandwidth_approaches_linear():
    x, y = pair(50, 6, 8, seed=2)
    assert S.rbf_cka(x, y, threshold=200.0).item() == pytest.approx(S.linear_cka(x, y).item(), abs=1e-4)


@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_procrustes_matches_reference(n, dx, dy):
    x, y = pair(n, dx, dy, seed=4)
    assert S.procrustes_distance(x, y).item() == pytest.approx(ref_procrustes(x, y), abs=1e-10)


def test_cca_matches_reference():
    x, y = pair(60, 5, 8, seed=6)
    assert S.cca_similarity(x, y).item() == pytest.approx(ref_cca(x, y), abs=1e-10)


def test_cca_is_degenerate_when_d_reaches_n_but_svcca_is_not():
    """With d >= n - 1 every centred direction is in the span: R²_CCA = 1 for unrelated data."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 40, generator=g, dtype=torch.float64)
    y = torch.randn(20, 50, generator=g, dtype=torch.float64)
    assert S.cca_similarity(x, y).item() == pytest.approx(1.0, abs=1e-10)
    # SVCCA on the top 3 directions of each: unrelated, so well below 1
    assert S.cca_similarity(x, y, keep=3).item() < 0.7


def test_svcca_keep_fraction_counts_directions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 10, generator=g, dtype=torch.float64) * torch.tensor([10.0] * 2 + [1e-3] * 8, dtype=torch.float64)
    basis = S.orthonormal_basis(x, 0.99, 1e-6)
    assert basis.shape[1] == 2
    assert S.orthonormal_basis(x, 4, 1e-6).shape[1] == 4
    assert torch.allclose(basis.T @ basis, torch.eye(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_rsa_matches_reference(n, dx, dy):
    x, y = pair(n, dx, dy, seed=7)
    assert S.rsa_similarity(x, y).item() == pytest.approx(ref_rsa(x, y), abs=1e-10)
    assert S.rsa_similarity(x, y, method="spearman").item() == pytest.approx(ref_spearman_rsa(x, y), abs=1e-10)


# ----------------------------------------------------------------------------- properties

SIMILARITIES = {
    "linear_cka": S.linear_cka,
    "linear_cka_debiased": lambda x, y: S.linear_cka(x, y, debiased=True),
    "rbf_cka": S.rbf_cka,
    "cca": S.cca_similarity,
    "rsa": S.rsa_similarity,
}


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_self_similarity_is_one_and_symmetric(name):
    f = SIMILARITIES[name]
    x, y = pair(40, 6, 9, seed=8)
    assert f(x, x).item() == pytest.approx(1.0, abs=1e-10)
    assert f(x, y).item() == pytest.approx(f(y, x).item(), abs=1e-10)
    assert S.procrustes_distance(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert S.procrustes_distance(x, y).item() == pytest.approx(S.procrustes_distance(y, x).item(), abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_bounds(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 12, generator=g, dtype=torch.float64)
    y = torch.randn(30, 7, generator=g, dtype=torch.float64)
    for f in (S.linear_cka, S.rbf_cka, S.cca_similarity):
        assert 0.0 <= f(x, y).item() <= 1.0 + 1e-12
    assert -1.0 <= S.rsa_similarity(x, y).item() <= 1.0
    assert 0.0 <= S.procrustes_distance(x, y).item() <= 2.0
    # debiased CKA is ~0 for unrelated data and may be slightly negative
    assert abs(S.linear_cka(x, y, debiased=True).item()) < 0.2


INVARIANT_TO_ROTATION = ["linear_cka", "linear_cka_debiased", "rbf_cka", "cca"]


@pytest.mark.parametrize("n,dx,dy", SHAPES)
def test_orthogonal_and_scale_invariance(n, dx, dy):
    x, y = pair(n, dx, dy, seed=9)
    xq = 3.7 * x @ random_orthogonal(dx, 1) + 5.0
    yq = 0.2 * y @ random_orthogonal(dy, 2) - 1.0
    for name in INVARIANT_TO_ROTATION:
        f = SIMILARITIES[name]
        assert f(xq, yq).item() == pytest.approx(f(x, y).item(), abs=1e-9), name
    assert S.procrustes_distance(xq, yq).item() == pytest.approx(S.procrustes_distance(x, y).item(), abs=1e-9)
    # RSA is invariant to scaling and offsets but not to rotations of the feature basis
    assert S.rsa_similarity(3.7 * x + 5.0, 0.2 * y - 1.0).item() == pytest.approx(S.rsa_similarity(x, y).item(), abs=1e-9)
    assert abs(S.rsa_similarity(xq, yq).item() - S.rsa_similarity(x, y).item()) > 1e-3


def test_what_is_not_invariant_to_general_linear_maps():
    """An invertible, badly conditioned linear map: only CCA ignores it."""
    x, y = pair(60, 6, 8, seed=10)
    g = torch.Generator().manual_seed(11)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64) @ torch.diag(torch.logspace(0, 2, 6, dtype=torch.float64))
    xa = x @ a
    assert S.cca_similarity(xa, y).item() == pytest.approx(S.cca_similarity(x, y).item(), abs=1e-9)
    for f in (S.linear_cka, S.rbf_cka, S.procrustes_distance):
        assert abs(f(xa, y).item() - f(x, y).item()) > 1e-2, f.__name__


def test_isotropic_but_not_anisotropic_scaling():
    x, y = pair(40, 6, 9, seed=12)
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 20.0], dtype=torch.float64)
    assert abs(S.linear_cka(x * scale, y).item() - S.linear_cka(x, y).item()) > 1e-2


# ----------------------------------------------------------------------------- numerics


def _post_relu_like(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = pair(n, d, d, seed=seed, dtype=torch.float64)
    return torch.relu(x), y


@pytest.mark.parametrize("n,d", [(64, 32), (64, 512), (256, 64)])
@pytest.mark.parametrize("debiased", [False, True])
def test_float32_with_large_common_offset(n, d, debiased):
    x64, y64 = _post_relu_like(n, d, seed=13)
    x32, y32 = (x64 + 1e3).float(), (y64 + 1e3).float()
    # the same float32 inputs in float64, centred first: with an offset of 1e3 even a float64
    # reference loses the debiased value to cancellation (HSIC is unchanged by centring)
    xr, yr = x32.double(), y32.double()
    want = ref_linear_cka(xr - xr.mean(0), yr - yr.mean(0), debiased)
    got = S.linear_cka(x32, y32, debiased=debiased)
    assert abs(got.item() - want) < 1e-5
    # and the offset barely matters at all (only through rounding of the inputs)
    assert abs(got.item() - ref_linear_cka(x64, y64, debiased)) < 1e-3


def test_authors_float32_formulation_fails_with_offset():
    """The failure the module exists to avoid: K = XXᵀ in float32, centred afterwards by H K H."""
    x64, y64 = _post_relu_like(64, 512, seed=14)
    x32, y32 = (x64 + 1e3).float(), (y64 + 1e3).float()
    naive = S.authors_linear_cka(x32, y32).item()
    want = ref_linear_cka(x32, y32)
    # without an offset the authors' formulation is right: it computes the same quantity
    assert S.authors_linear_cka(x64, y64).item() == pytest.approx(ref_linear_cka(x64, y64), abs=1e-4)
    assert abs(naive - want) > 1e-3  # cancellation
    assert abs(S.linear_cka(x32, y32).item() - want) < 1e-5


def test_half_precision_is_upcast():
    x, y = pair(64, 16, 16, seed=15)
    got = S.linear_cka(x.half(), y.bfloat16())
    assert got.item() == pytest.approx(ref_linear_cka(x.half(), y.bfloat16()), abs=1e-5)
    assert S.flatten(x.half()).dtype == torch.float32


def test_conv_maps_are_flattened():
    g = torch.Generator().manual_seed(16)
    x = torch.randn(20, 3, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randn(20, 5, 2, 2, generator=g, dtype=torch.float64)
    assert S.linear_cka(x, y).item() == pytest.approx(S.linear_cka(x.flatten(1), y.flatten(1)).item(), abs=1e-12)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("n,dx,dy", [(12, 3, 4), (8, 10, 12)])
def test_gradients_float64(n, dx, dy):
    x, y = pair(n, dx, dy, seed=17)
    x.requires_grad_(True)
    checks = [
        lambda a: S.linear_cka(a, y),
        lambda a: S.linear_cka(a, y, debiased=True),
        lambda a: S.rbf_cka(a, y),
        lambda a: S.rbf_cka(a, y, debiased=True),
        lambda a: S.procrustes_distance(a, y),
        lambda a: S.rsa_similarity(a, y),
    ]
    for f in checks:
        assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)


def test_gradient_flows_from_float32():
    x, y = pair(32, 8, 8, seed=18, dtype=torch.float32)
    x.requires_grad_(True)
    loss = 1 - S.linear_cka(x, y)
    loss.backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- minibatch CKA


def test_minibatch_cka_single_batch_is_debiased_cka():
    x, y = pair(50, 6, 9, seed=19)
    acc = S.MinibatchCKA()
    acc.update([x, y], [y])
    got = acc.compute()
    assert got.shape == (2, 1)
    assert got[0, 0].item() == pytest.approx(S.linear_cka(x, y, debiased=True).item(), abs=1e-10)
    assert got[1, 0].item() == pytest.approx(1.0, abs=1e-10)


def test_minibatch_cka_converges_to_full_data_debiased():
    g = torch.Generator().manual_seed(20)
    n = 4096
    x = torch.randn(n, 10, generator=g, dtype=torch.float64)
    y = torch.tanh(x @ torch.randn(10, 12, generator=g, dtype=torch.float64)) + 0.5 * torch.randn(n, 12, generator=g, dtype=torch.float64)
    full = S.linear_cka(x, y, debiased=True).item()
    errors = {}
    for m in (16, 256):
        acc = S.MinibatchCKA()
        for start in range(0, n, m):
            acc.update([x[start : start + m]], [y[start : start + m]])
        errors[m] = abs(acc.compute()[0, 0].item() - full)
    assert errors[256] < 0.01
    assert errors[256] < errors[16] or errors[16] < 0.01


def test_minibatch_cka_self_comparison_has_unit_diagonal():
    x, y = pair(64, 6, 9, seed=21)
    acc = S.MinibatchCKA()
    acc.update([x, y])
    acc.update([x + 1, 2 * y])
    m = acc.compute()
    assert torch.allclose(torch.diagonal(m), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(m, m.T)


# ----------------------------------------------------------------------------- errors


def test_mismatched_n_is_an_error():
    x, y = torch.randn(10, 3), torch.randn(11, 3)
    for f in (S.linear_cka, S.rbf_cka, S.procrustes_distance, S.cca_similarity, S.rsa_similarity):
        with pytest.raises(ValueError, match="same examples"):
            f(x, y)
    acc = S.MinibatchCKA()
    with pytest.raises(ValueError, match="same examples"):
        acc.update([x], [y])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_debiased_needs_four_examples(n):
    x, y = torch.randn(n, 5), torch.randn(n, 5)
    with pytest.raises(ValueError, match="n >= 4|at least n=4"):
        S.linear_cka(x, y, debiased=True)
    with pytest.raises(ValueError, match="n >= 4|at least n=4"):
        S.rbf_cka(x, y, debiased=True)
    with pytest.raises(ValueError, match="n >= 4"):
        S.MinibatchCKA().update([x], [y])


def test_other_errors():
    with pytest.raises(ValueError, match="before any update"):
        S.MinibatchCKA().compute()
    with pytest.raises(ValueError, match="threshold"):
        S.rbf_cka(torch.randn(8, 2), torch.randn(8, 2), threshold=0)
    with pytest.raises(ValueError, match="method"):
        S.rsa_similarity(torch.randn(8, 2), torch.randn(8, 2), method="kendall")


def test_compress_preserves_every_rotation_invariant_measure():
    x, y = pair(20, 50, 70, seed=22)
    cx, cy = S.compress(x), S.compress(y)
    assert cx.shape == (20, 20)
    for f in (S.linear_cka, S.rbf_cka, S.procrustes_distance):
        assert f(cx, cy).item() == pytest.approx(f(x, y).item(), abs=1e-9), f.__name__
    assert S.cca_similarity(cx, y, keep=4).item() == pytest.approx(S.cca_similarity(x, y, keep=4).item(), abs=1e-9)
    assert S.compare_rdms(S.rdm(x), S.rdm(y)).item() == pytest.approx(ref_rsa(x, y), abs=1e-10)


# ----------------------------------------------------------------------------- constant representations


def _constant(n: int, d: int, value: float = 0.1) -> torch.Tensor:
    """Every example the same (a dead or saturated layer); 0.1 is not exact in binary, so centring
    leaves rounding rather than exact zeros."""
    return torch.full((n, d), value) * torch.linspace(0.5, 2.0, d)


@pytest.mark.parametrize("measure", [S.rbf_cka, S.procrustes_distance, S.cca_similarity, S.rsa_similarity])
def test_every_normalised_measure_of_a_constant_layer_raises(measure):
    x = torch.randn(30, 12)
    with pytest.raises(S.ConstantRepresentationError, match="constant"):
        measure(x, _constant(30, 12))


def test_a_layer_with_little_but_real_spread_is_not_constant():
    x = torch.randn(64, 16)
    y = 1000 + 0.01 * torch.randn(64, 16)  # spread 1e-5 of the offset: far above float32 rounding
    assert torch.isfinite(S.linear_cka(x, y))
    assert S.linear_cka(y, y).item() == pytest.approx(1.0, abs=1e-5)


def test_minibatch_cka_with_a_layer_that_never_varies_raises():
    acc = S.MinibatchCKA()
    for _ in range(2):
        acc.update([torch.randn(8, 5), _constant(8, 5)], [torch.randn(8, 3)])
    with pytest.raises(S.ConstantRepresentationError, match=r"layers \[1\].*network A"):
        acc.compute()
    varies_later = S.MinibatchCKA()  # constant in one batch only: the estimate is still defined
    varies_later.update([_constant(8, 5)], [torch.randn(8, 3)])
    varies_later.update([torch.randn(8, 5)], [torch.randn(8, 3)])
    assert torch.isfinite(varies_later.compute()).all()

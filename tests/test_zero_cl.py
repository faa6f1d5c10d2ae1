"""Zero-CL (Zhang et al., ICLR 2022): oracle, properties, finite gradients, errors.

The oracle below is written from the formula in the docstring of ``w2reg.zero_cl`` with
numpy/scipy in float64 (whitening matrix by ``scipy.linalg.sqrtm`` and an inverse, not by an
eigendecomposition), independent of the torch code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import inv, sqrtm

import w2reg
from w2reg.zero_cl import ZeroCLLoss, zero_cl_loss, zero_fcl_loss, zero_icl_loss

EPS = 1e-2
STD_EPS = 1e-5


# ----------------------------------------------------------------------------- oracle
def _std(x: np.ndarray, axis: int) -> np.ndarray:
    c = x - x.mean(axis=axis, keepdims=True)
    return c / np.sqrt((c**2).mean(axis=axis, keepdims=True) + STD_EPS)


def _whitening(x: np.ndarray, eps: float) -> np.ndarray:
    """(x^T x / n + eps I)^{-1/2} for (n, k) x."""
    cov = x.T @ x / x.shape[0]
    return np.real(inv(sqrtm(cov + eps * np.eye(cov.shape[0]))))


def oracle_fcl(z1: np.ndarray, z2: np.ndarray, eps: float = EPS, frozen=None) -> float:
    s1, s2 = _std(z1, 0), _std(z2, 0)
    w1, w2 = frozen if frozen is not None else (_whitening(s1, eps), _whitening(s2, eps))
    c = (s1 @ w1).T @ (s2 @ w2) / z1.shape[0]
    return float(np.sum((1.0 - np.diag(c)) ** 2))


def oracle_icl(z1: np.ndarray, z2: np.ndarray, eps: float = EPS, frozen=None) -> float:
    s1, s2 = _std(z1, 1), _std(z2, 1)
    w1, w2 = frozen if frozen is not None else (_whitening(s1.T, eps), _whitening(s2.T, eps))
    c = (w1 @ s1) @ (w2 @ s2).T / z1.shape[1]
    return float(np.sum((1.0 - np.diag(c)) ** 2))


def oracle_cl(z1: np.ndarray, z2: np.ndarray, a: float = 1.0, b: float = 1.0) -> float:
    return a * oracle_icl(z1, z2) + b * oracle_fcl(z1, z2)


def _pair(n: int, m: int, dtype=torch.float64, noise: float = 0.3) -> tuple[torch.Tensor, ...]:
    z1 = torch.randn(n, m, dtype=dtype)
    z2 = z1 + noise * torch.randn(n, m, dtype=dtype)
    return z1, z2


SHAPES = [(8, 5), (6, 6), (5, 9), (32, 16), (16, 40)]


# ----------------------------------------------------------------------------- oracle tests
@pytest.mark.parametrize("n,m", SHAPES)
def test_matches_float64_oracle(n: int, m: int) -> None:
    z1, z2 = _pair(n, m)
    a, b = z1.numpy(), z2.numpy()
    assert float(zero_fcl_loss(z1, z2)) == pytest.approx(oracle_fcl(a, b), rel=1e-9)
    assert float(zero_icl_loss(z1, z2)) == pytest.approx(oracle_icl(a, b), rel=1e-9)
    assert float(zero_cl_loss(z1, z2)) == pytest.approx(oracle_cl(a, b), rel=1e-9)


def test_float32_matches_oracle() -> None:
    z1, z2 = _pair(64, 32, dtype=torch.float32)
    ref = oracle_cl(z1.double().numpy(), z2.double().numpy())
    out = zero_cl_loss(z1, z2)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(ref, rel=1e-4)


def test_weights_combine_linearly() -> None:
    z1, z2 = _pair(12, 7)
    icl, fcl = zero_icl_loss(z1, z2), zero_fcl_loss(z1, z2)
    out = zero_cl_loss(z1, z2, instance_weight=0.3, feature_weight=2.5)
    assert float(out) == pytest.approx(0.3 * float(icl) + 2.5 * float(fcl), rel=1e-12)
    ref = oracle_cl(z1.numpy(), z2.numpy(), 0.3, 2.5)
    assert float(out) == pytest.approx(ref, rel=1e-9)


def _fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("n,m", [(7, 4), (4, 7)])
def test_gradient_matches_oracle_with_stop_gradient_whitening(n: int, m: int) -> None:
    """The whitening matrices are constants in backward (authors' ``.detach()``)."""
    z1, z2 = _pair(n, m)
    a, b = z1.numpy(), z2.numpy()
    fz = (_whitening(_std(a, 0), EPS), _whitening(_std(b, 0), EPS))
    iz = (_whitening(_std(a, 1).T, EPS), _whitening(_std(b, 1).T, EPS))

    def f1(x: np.ndarray) -> float:
        return oracle_icl(x, b, frozen=iz) + oracle_fcl(x, b, frozen=fz)

    def f2(x: np.ndarray) -> float:
        return oracle_icl(a, x, frozen=iz) + oracle_fcl(a, x, frozen=fz)

    x1, x2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    zero_cl_loss(x1, x2).backward()
    np.testing.assert_allclose(x1.grad.numpy(), _fd_grad(f1, a), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(x2.grad.numpy(), _fd_grad(f2, b), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- properties
def test_exported_from_package() -> None:
    assert w2reg.zero_cl_loss is zero_cl_loss
    assert w2reg.ZeroCLLoss is ZeroCLLoss
    assert {"zero_cl_loss", "ZeroCLLoss"} <= set(w2reg.__all__)


def test_symmetric_in_the_two_views() -> None:
    z1, z2 = _pair(20, 12)
    assert float(zero_cl_loss(z1, z2)) == pytest.approx(float(zero_cl_loss(z2, z1)), rel=1e-12)


@pytest.mark.parametrize("fn", [zero_icl_loss, zero_fcl_loss])
def test_invariant_to_common_permutations(fn) -> None:
    z1, z2 = _pair(24, 10)
    ref = float(fn(z1, z2))
    rows, cols = torch.randperm(24), torch.randperm(10)
    assert float(fn(z1[rows], z2[rows])) == pytest.approx(ref, rel=1e-10)
    assert float(fn(z1[:, cols], z2[:, cols])) == pytest.approx(ref, rel=1e-10)


def test_fcl_invariant_to_per_feature_affine_maps_and_sign_flips() -> None:
    z1, z2 = _pair(40, 8)
    ref = float(zero_fcl_loss(z1, z2))
    scale1, scale2 = torch.rand(8, dtype=z1.dtype) + 0.5, torch.rand(8, dtype=z1.dtype) + 0.5
    shift1, shift2 = torch.randn(8, dtype=z1.dtype), torch.randn(8, dtype=z1.dtype)
    affine = float(zero_fcl_loss(z1 * scale1 + shift1, z2 * scale2 + shift2))
    assert affine == pytest.approx(ref, rel=1e-4)
    signs = torch.tensor([1.0, -1, 1, -1, -1, 1, 1, -1], dtype=z1.dtype)
    assert float(zero_fcl_loss(z1 * signs, z2 * signs)) == pytest.approx(ref, rel=1e-10)


def test_icl_invariant_to_per_instance_affine_maps() -> None:
    z1, z2 = _pair(8, 40)
    ref = float(zero_icl_loss(z1, z2))
    s1, s2 = torch.rand(8, 1, dtype=z1.dtype) + 0.5, torch.rand(8, 1, dtype=z1.dtype) + 0.5
    b1, b2 = torch.randn(8, 1, dtype=z1.dtype), torch.randn(8, 1, dtype=z1.dtype)
    assert float(zero_icl_loss(z1 * s1 + b1, z2 * s2 + b2)) == pytest.approx(ref, rel=1e-4)


def test_identical_full_rank_views_give_zero_loss() -> None:
    """With eps -> 0 whitening makes C = I exactly when the standardised data has full rank."""
    z = torch.randn(64, 16, dtype=torch.float64)  # N - 1 >= m: features full rank
    assert float(zero_fcl_loss(z, z, eps=1e-12)) < 1e-12
    z = torch.randn(16, 64, dtype=torch.float64)  # m - 1 >= N: instances full rank
    assert float(zero_icl_loss(z, z, eps=1e-12)) < 1e-12


@pytest.mark.parametrize("fn,n,m", [(zero_fcl_loss, 128, 32), (zero_icl_loss, 32, 128)])
def test_aligned_views_score_better_than_unrelated_views(fn, n: int, m: int) -> None:
    z = torch.randn(n, m, dtype=torch.float64)
    aligned = float(fn(z, z + 0.05 * torch.randn_like(z)))
    unrelated = float(fn(z, torch.randn_like(z)))
    assert 0 <= aligned < 0.1 * unrelated


def test_icl_on_more_instances_than_features_is_bounded_by_rank() -> None:
    """N > m: the instance Gram has rank <= m - 1, so sum_i C_ii <= m - 1 even for z1 == z2."""
    n, m = 64, 8
    z = torch.randn(n, m, dtype=torch.float64)
    lower = n * (1 - (m - 1) / n) ** 2  # Cauchy-Schwarz on sum_i (1 - C_ii)^2
    assert float(zero_icl_loss(z, z, eps=1e-12)) >= lower - 1e-9


def test_collapse_is_penalised() -> None:
    """A constant embedding standardises to 0: every diagonal entry of C is 0."""
    n, m = 16, 8
    const = torch.ones(n, m, dtype=torch.float64)
    assert float(zero_fcl_loss(const, const)) == pytest.approx(m)
    assert float(zero_icl_loss(const, const)) == pytest.approx(n)


def test_module_matches_functional_and_has_no_state() -> None:
    z1, z2 = _pair(10, 6)
    crit = ZeroCLLoss(instance_weight=0.5, feature_weight=2.0, eps=1e-3)
    expected = zero_cl_loss(z1, z2, instance_weight=0.5, feature_weight=2.0, eps=1e-3)
    assert float(crit(z1, z2)) == pytest.approx(float(expected), rel=1e-12)
    assert list(crit.parameters()) == [] and list(crit.buffers()) == []
    assert crit.state_dict() == {}
    assert "instance_weight=0.5" in repr(crit)


# ----------------------------------------------------------------------------- finite gradients
def _degenerate_inputs() -> dict[str, torch.Tensor]:
    n, m = 16, 12
    base = torch.randn(n, m)
    dim_collapse = torch.zeros(n, m)
    dim_collapse[:, :2] = torch.randn(n, 2)
    return {
        "all_rows_identical": torch.randn(1, m).repeat(n, 1),
        "all_zero": torch.zeros(n, m),
        "dimensional_collapse": dim_collapse,
        "duplicated_rows": base[: n // 2].repeat(2, 1),
        "rank_one": torch.randn(n, 1) @ torch.randn(1, m),
        "huge": 1e4 * base,
        "tiny": 1e-6 * base,
    }


@pytest.mark.parametrize("case", sorted(_degenerate_inputs()))
def test_finite_gradients_on_degenerate_inputs(case: str) -> None:
    z = _degenerate_inputs()[case]
    for other in (z.clone(), torch.randn_like(z)):
        x1 = z.clone().requires_grad_(True)
        x2 = other.clone().requires_grad_(True)
        loss = zero_cl_loss(x1, x2)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(x1.grad).all() and torch.isfinite(x2.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype: torch.dtype) -> None:
    z1, z2 = _pair(32, 16, dtype=torch.float32)
    ref = float(zero_cl_loss(z1.to(dtype).float(), z2.to(dtype).float()))
    x1, x2 = z1.to(dtype).requires_grad_(True), z2.to(dtype).requires_grad_(True)
    out = zero_cl_loss(x1, x2)
    assert out.dtype == dtype
    assert float(out.detach()) == pytest.approx(ref, rel=1e-2)
    out.backward()
    assert torch.isfinite(x1.grad.float()).all() and torch.isfinite(x2.grad.float()).all()


def test_under_cpu_autocast() -> None:
    layer = torch.nn.Linear(16, 24)
    x1, x2 = torch.randn(32, 16), torch.randn(32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z1, z2 = layer(x1), layer(x2)
        assert z1.dtype == torch.bfloat16
        loss = zero_cl_loss(z1, z2)
    loss.float().backward()
    assert torch.isfinite(loss.float())
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_shape_only_tensors_give_a_shape_only_result(dtype: torch.dtype) -> None:
    """Meta tensors (shape only, as in torch.compile's tracing) go through as W2's do: the
    core's one autocast-off rule has nothing to disable there (before: 'unsupported
    scalarType' from torch.autocast(device_type='meta'))."""
    z = torch.empty(16, 8, device="meta", dtype=dtype)
    for fn in (zero_cl_loss, zero_fcl_loss, zero_icl_loss):
        out = fn(z, z)
        assert out.device.type == "meta" and out.shape == () and out.dtype == dtype
    assert w2reg.w2_uniformity(z).device.type == "meta"


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "z1,z2,match",
    [
        (torch.randn(8), torch.randn(8), r"z1 must be 2-D .*\(8,\)"),
        (torch.randn(2, 4, 4), torch.randn(2, 4, 4), r"z1 must be 2-D .*\(2, 4, 4\)"),
        (torch.randn(8, 4), torch.randn(8, 5), r"z1 and z2 must have the same shape .*\(8, 5\)"),
        (torch.ones(8, 4, dtype=torch.long), torch.ones(8, 4), r"z1 .*floating .*torch.int64"),
        (torch.randn(8, 4), torch.full((8, 4), float("nan")), r"z2 contains NaN or Inf"),
        (torch.randn(8, 4), torch.full((8, 4), float("inf")), r"z2 contains NaN or Inf"),
        (torch.randn(1, 4), torch.randn(1, 4), r"at least 2 rows and 2 columns.*\(1, 4\)"),
        (torch.randn(8, 1), torch.randn(8, 1), r"at least 2 rows and 2 columns.*\(8, 1\)"),
    ],
)
def test_bad_inputs_raise_named_value_errors(z1, z2, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        zero_cl_loss(z1, z2)


def test_bad_hyperparameters_raise() -> None:
    z1, z2 = _pair(8, 4)
    with pytest.raises(ValueError, match="eps must be > 0"):
        zero_cl_loss(z1, z2, eps=0.0)
    with pytest.raises(ValueError, match="std_eps must be > 0"):
        zero_cl_loss(z1, z2, std_eps=-1.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        ZeroCLLoss(eps=-1.0)
    with pytest.raises(ValueError, match=r"eps must be > 0 \(the whitening ridge\).*'0\.01'"):
        zero_cl_loss(z1, z2, eps="0.01")
    with pytest.raises(ValueError, match="std_eps must be > 0.*inf"):
        ZeroCLLoss(std_eps=float("inf"))
    with pytest.raises(ValueError, match="instance_weight must be a finite, non-negative"):
        zero_cl_loss(z1, z2, instance_weight=-1.0)
    with pytest.raises(ValueError, match="feature_weight must be a finite, non-negative"):
        ZeroCLLoss(feature_weight=None)

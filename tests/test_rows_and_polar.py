"""Direct tests of two building blocks: ``normalize_rows`` and ``polar_factor``.

Oracles in float64 numpy: row norms by ``np.linalg.norm`` of the rows divided by their largest
entry, the polar factor ``U V^T`` by numpy's SVD of a matrix with a chosen spectrum.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle import polar_and_spectrum

from w2reg._polar import polar_factor
from w2reg.functional import normalize_rows


# ------------------------------------------------------------------------ normalize_rows
def _unit_oracle(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    scale = np.abs(z).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    y = z / scale
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return y / norm


@pytest.mark.parametrize(
    "dtype,scales",
    [
        (torch.float32, [1e-30, 1e-12, 1.0, 1e12, 1e30]),
        (torch.float64, [1e-300, 1e-150, 1.0, 1e150, 1e300]),
    ],
)
def test_rows_of_any_scale_come_out_of_unit_norm(dtype: torch.dtype, scales: list[float]) -> None:
    base = torch.randn(len(scales), 16, dtype=torch.float64)
    z = (base * torch.tensor(scales, dtype=torch.float64)[:, None]).to(dtype)
    y = normalize_rows(z)
    assert y.dtype == dtype
    norms = torch.linalg.vector_norm(y.double(), dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), rtol=0, atol=1e-6), norms
    want = _unit_oracle(z.double().numpy())
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert np.abs(y.double().numpy() - want).max() < tol


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_narrow_dtypes_are_kept_and_rounded_once(dtype: torch.dtype) -> None:
    z = torch.randn(32, 8).to(dtype)
    y = normalize_rows(z)
    assert y.dtype == dtype
    want = torch.from_numpy(_unit_oracle(z.double().numpy())).to(dtype)  # one rounding
    assert torch.equal(y, want)


def test_a_zero_row_stays_at_the_origin_with_its_gradient_passed_through() -> None:
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    y = normalize_rows(z)
    assert torch.equal(y[1], torch.zeros(2, dtype=torch.float64))
    g = torch.tensor([[1.0, 2.0], [5.0, -7.0]], dtype=torch.float64)
    y.backward(g)
    assert torch.equal(z.grad[1], g[1])  # as if its norm were 1: finite, unchanged
    # the unit row: (g - y (y . g)) / ||z||, y = (0.6, 0.8), ||z|| = 5
    yy = torch.tensor([0.6, 0.8], dtype=torch.float64)
    assert torch.allclose(z.grad[0], (g[0] - yy * (yy @ g[0])) / 5.0, rtol=1e-15, atol=0)


def test_gradient_matches_autograd_of_the_plain_formula() -> None:
    z = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(16, 8, dtype=torch.float64)
    normalize_rows(z).backward(g)
    ref = z.detach().clone().requires_grad_()
    (ref / torch.linalg.vector_norm(ref, dim=1, keepdim=True)).backward(g)
    assert torch.allclose(z.grad, ref.grad, rtol=1e-12, atol=1e-14)


def test_tiny_rows_are_normalised_where_F_normalize_gives_up() -> None:
    z = torch.randn(4, 8) * 1e-20
    ours = normalize_rows(z)
    theirs = torch.nn.functional.normalize(z, dim=1)  # eps=1e-12: left at norm 1e-20
    assert torch.allclose(torch.linalg.vector_norm(ours, dim=1), torch.ones(4), atol=1e-6)
    assert float(torch.linalg.vector_norm(theirs, dim=1).max()) < 1e-6


# -------------------------------------------------------------------------- polar_factor
def _with_spectrum(n: int, m: int, s: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = min(n, m)
    u, _ = np.linalg.qr(rng.standard_normal((n, k)))
    v, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return (u * s) @ v.T


@pytest.mark.parametrize("n,m", [(64, 32), (32, 64), (48, 48)])
def test_polar_factor_is_u_v_transpose(n: int, m: int) -> None:
    s = np.geomspace(1.0, 1e-2, min(n, m))  # resolved directions: within float32 reach
    x = _with_spectrum(n, m, s)
    p = polar_factor(torch.from_numpy(x))
    assert p.dtype == torch.float32 and p.shape == (n, m)
    want, _, _, _ = polar_and_spectrum(x)
    assert np.abs(p.double().numpy() - want).max() < 1e-4
    # value and gradient of the nuclear norm: <P, X> = sum of the singular values
    assert float((p.double() * torch.from_numpy(x)).sum()) == pytest.approx(s.sum(), rel=1e-5)


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1e10, 1e30])
def test_polar_factor_is_scale_invariant(scale: float) -> None:
    x = torch.from_numpy(_with_spectrum(40, 24, np.geomspace(1.0, 0.05, 24)))
    want = polar_factor(x)
    got = polar_factor((x * scale).float())
    assert torch.allclose(got, want, atol=1e-5)


def test_polar_factor_of_degenerate_inputs_is_bounded() -> None:
    assert torch.equal(polar_factor(torch.zeros(16, 8)), torch.zeros(16, 8))  # X = 0 -> P = 0
    s = np.r_[np.ones(4), np.zeros(12)]  # rank 4 of 16: null directions stay null
    x = _with_spectrum(32, 16, s)
    p = polar_factor(torch.from_numpy(x)).double().numpy()
    _, u, _, vt = polar_and_spectrum(x)
    diag = np.diag(u.T @ p @ vt.T)
    assert np.allclose(diag[:4], 1.0, atol=1e-5)
    assert np.abs(diag[4:]).max() < 1e-3
    assert np.linalg.norm(p, 2) <= 1 + 1e-3
    identical = polar_factor(torch.ones(32, 16))  # rank one: P = 1 1^T / sqrt(32 * 16)
    assert torch.allclose(identical, torch.full((32, 16), (32 * 16) ** -0.5), atol=1e-6)

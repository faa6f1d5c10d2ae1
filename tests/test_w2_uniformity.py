"""w2_uniformity against independent float64 oracles: values, gradients, collapse, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oracle import bures_w2, eig_w2

import w2reg
from w2reg import w2_uniformity

# (N, m): N < m, N = m, N > m. sqrtm oracle where scipy is quick enough, eigvalsh beyond.
SQRTM_SIZES = [(64, 16), (64, 2048), (128, 128), (1024, 16), (256, 64)]
EIG_SIZES = [(512, 2048), (1024, 2048), (1024, 256)]


def _data(n: int, m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # an anisotropic cloud with a non-zero mean, so every term of W2 matters
    scale = torch.linspace(0.2, 2.0, m, dtype=torch.float64)
    return torch.randn(n, m, generator=g, dtype=torch.float64) * scale + 0.3


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("n,m", SQRTM_SIZES)
@pytest.mark.parametrize("normalize", [True, False])
def test_value_matches_scipy_sqrtm_bures(n: int, m: int, normalize: bool) -> None:
    z = _data(n, m)
    got = float(w2_uniformity(z, normalize=normalize))
    want = bures_w2(z.numpy(), normalize=normalize)
    assert _rel(got, want) < 1e-5
    got_sq = float(w2_uniformity(z, normalize=normalize, squared=True))
    assert _rel(got_sq, want**2) < 1e-5


@pytest.mark.parametrize("n,m", EIG_SIZES)
def test_value_matches_scipy_eigvalsh_large(n: int, m: int) -> None:
    z = _data(n, m, seed=1)
    assert _rel(float(w2_uniformity(z)), eig_w2(z.numpy())) < 1e-5


def _nuclear_reference(z: torch.Tensor, normalize: bool) -> torch.Tensor:
    """An independent autograd path: torch's SVD-based nuclear norm (backward U V^T)."""
    x = torch.nn.functional.normalize(z, dim=1) if normalize else z
    n, m = x.shape
    mu = x.mean(0)
    xc = (x - mu) / math.sqrt(n)
    nuc = torch.linalg.matrix_norm(xc, ord="nuc")
    return (mu @ mu + 1 + xc.pow(2).sum() - 2 / math.sqrt(m) * nuc).sqrt()


@pytest.mark.parametrize("n,m", [(64, 256), (128, 128), (512, 64), (64, 2048), (1024, 16)])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradient_matches_independent_autograd(n: int, m: int, normalize: bool) -> None:
    z = _data(n, m, seed=2).requires_grad_()
    (g_ours,) = torch.autograd.grad(w2_uniformity(z, normalize=normalize), z)
    z_ref = z.detach().clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(_nuclear_reference(z_ref, normalize), z_ref)
    assert torch.linalg.norm(g_ours - g_ref) / torch.linalg.norm(g_ref) < 1e-5


@pytest.mark.parametrize("n,m", [(64, 16), (48, 40), (200, 24)])
def test_gradient_matches_sqrtm_finite_differences(n: int, m: int) -> None:
    """Directional derivatives of the scipy-sqrtm oracle (central differences, float64).

    N > m only: with N <= m the centred Gram is singular and sqrtm loses the digits a finite
    difference needs; those sizes are covered by the SVD autograd reference above.
    """
    z = _data(n, m, seed=3).requires_grad_()
    (grad,) = torch.autograd.grad(w2_uniformity(z), z)
    rng = np.random.default_rng(0)
    base = z.detach().numpy()
    h = 1e-5
    for _ in range(3):
        v = rng.standard_normal(base.shape)
        v /= np.linalg.norm(v)
        fd = (bures_w2(base + h * v) - bures_w2(base - h * v)) / (2 * h)
        ours = float((grad.numpy() * v).sum())
        assert abs(ours - fd) <= 1e-5 * float(grad.norm())


def _assert_finite_grad(z: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_()
    value = w2_uniformity(z)
    value.backward()
    value = value.detach()
    assert torch.isfinite(value)
    assert z.grad is not None and torch.isfinite(z.grad).all()
    return value


def test_complete_collapse_is_finite_and_maximal_spread_penalty() -> None:
    z = torch.randn(1, 32).repeat(64, 1)
    value = _assert_finite_grad(z)
    # all rows equal: S = 0, |mu| = 1, so W2^2 = 1 + 1 = 2
    assert abs(float(value) - math.sqrt(2.0)) < 1e-6


@pytest.mark.parametrize("k", [1, 2, 5])
def test_dimensional_collapse_is_finite(k: int) -> None:
    z = torch.zeros(128, 64)
    z[:, :k] = torch.randn(128, k)
    _assert_finite_grad(z)


def test_duplicated_rows_and_repeated_eigenvalues_are_finite() -> None:
    _assert_finite_grad(torch.randn(16, 32).repeat(8, 1))
    # +-e_i: mean 0 and covariance exactly I/m -> every eigenvalue repeated, W2 exactly 0
    eye = torch.eye(16)
    value = _assert_finite_grad(torch.cat([eye, -eye]))
    assert float(value) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs(dtype: torch.dtype) -> None:
    z = torch.randn(256, 64).to(dtype).requires_grad_()
    value = w2_uniformity(z)
    assert value.dtype == dtype
    value.backward()
    assert z.grad is not None and z.grad.dtype == dtype and torch.isfinite(z.grad).all()
    want = bures_w2(z.detach().double().numpy())
    assert _rel(float(value), want) < (1e-2 if dtype != torch.float32 else 1e-5)


def test_cpu_autocast_runs_in_float64() -> None:
    lin = torch.nn.Linear(32, 64)
    x = torch.randn(128, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = lin(x)
        assert z.dtype == torch.bfloat16
        value = w2_uniformity(z)
    value.float().backward()
    assert torch.isfinite(lin.weight.grad).all()
    assert _rel(float(value), bures_w2(z.detach().double().numpy())) < 1e-2


@pytest.mark.parametrize("method", ["exact", "iterative", "eigh32"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_grad_path_gives_same_value(method: str, dtype: torch.dtype) -> None:
    """Without gradients a method may skip what only the backward needs (``need_polar``
    False: "exact" then takes eigenvalues only); the value is the same. Each method by
    name: "auto" on CPU is "eigh32", which has no such branch."""
    from w2reg._methods import IMPLEMENTATIONS

    z = torch.randn(100, 30, dtype=dtype)
    with torch.no_grad():
        a = w2_uniformity(z, method=method)
    b = w2_uniformity(z.clone().requires_grad_(), method=method)
    assert b.requires_grad and not a.requires_grad
    assert float(a) == pytest.approx(
        float(b.detach()), rel=1e-12 if dtype == torch.float64 else 1e-6
    )
    forward, _ = IMPLEMENTATIONS[method]
    xc = (z - z.mean(dim=0)).to(torch.float64 if dtype == torch.float64 else torch.float32)
    (value, saved, _), (value_g, saved_g, _) = forward(xc, False), forward(xc, True)
    assert float(value) == pytest.approx(float(value_g), rel=1e-12)
    if method == "exact":  # the no-grad path is the one without eigenvectors
        assert saved == () and len(saved_g) == 2


def test_finite_sample_floor_matches_paper() -> None:
    # paper.md: about 0.37 for N=512, m=256 on a truly uniform sample
    z = torch.randn(512, 256, dtype=torch.float64)
    assert 0.34 < float(w2_uniformity(z)) < 0.40


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.randn(8), r"z must be 2-D .*\(8,\)"),
        (torch.randn(2, 3, 4), r"z must be 2-D .*\(2, 3, 4\)"),
        (torch.randn(1, 8), r"at least 2 rows .*\(1, 8\)"),
        (torch.randn(8, 0), r"at least one column .*\(8, 0\)"),
        (torch.ones(8, 4, dtype=torch.long), r"floating dtype, got torch.int64 .*\(8, 4\)"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), r"NaN or Inf .*\(2, 2\)"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), r"NaN or Inf"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        w2_uniformity(bad)


def test_module_weights_views_and_exposes_unweighted_value() -> None:
    z0, z1 = torch.randn(64, 32), torch.randn(64, 32)
    reg = w2reg.W2Uniformity(w2reg.LinearDecay(2.0, 0.0, epochs=4))
    reg.set_epoch(1)
    out = reg(z0, z1)
    plain = w2_uniformity(torch.cat([z0, z1]))
    assert torch.allclose(out, 1.5 * plain)
    assert reg.last_weight == 1.5 and torch.allclose(reg.last_value, plain)
    assert list(reg.parameters()) == [] and reg.state_dict() == {}
    with pytest.raises(ValueError, match="views"):
        reg(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="at least one view"):
        reg()


@pytest.mark.parametrize("term", ["w2", "lu"])
def test_views_with_different_row_counts_are_refused(term: str) -> None:
    # two views of one batch have one row per image each: (64, m) and (48, m) are not that, and
    # were concatenated silently into a 112-row W2 (issue 19)
    reg = w2reg.W2Uniformity() if term == "w2" else w2reg.Regularizer("lu")
    with pytest.raises(ValueError, match=r"one batch.*\(64, 8\), \(48, 8\)"):
        reg(torch.randn(64, 8), torch.randn(48, 8))
    assert reg.last_value is None  # nothing was computed
    reg(torch.randn(48, 8), torch.randn(48, 8))  # one batch: fine


# ------------------------------------------------------------------ row normalisation (robust)
@pytest.mark.parametrize(
    "dtype,decades", [(torch.float32, 30), (torch.float64, 300), (torch.float16, 4)]
)
def test_rows_of_any_scale_are_normalised(dtype: torch.dtype, decades: int) -> None:
    # F.normalize leaves rows with norm < 1e-12 unnormalised: W2 was 20% off here
    g = torch.Generator().manual_seed(0)
    base = torch.randn(256, 32, generator=g, dtype=torch.float64)
    scales = 10.0 ** torch.linspace(-decades, decades, 256, dtype=torch.float64)
    z = (base * scales[:, None]).to(dtype)
    # the oracle normalises naively: give it the rows at unit scale (float64) or the rounded
    # rows themselves (float32/16, whose squares fit float64)
    want = bures_w2((base if dtype == torch.float64 else z.double()).numpy())
    value = w2_uniformity(z)  # in the input dtype: float16 rounds the result to ~5e-4
    assert _rel(float(value), want) < (1e-6 if dtype != torch.float16 else 1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_all_zero_row_stays_at_the_origin_with_a_finite_gradient(dtype: torch.dtype) -> None:
    # F.normalize gave this row a gradient of 5.8e9 (Inf in float16)
    z = torch.randn(128, 64, dtype=torch.float64)
    z[5] = 0
    leaf = z.to(dtype).requires_grad_()
    value = w2_uniformity(leaf)
    value.backward()
    assert torch.isfinite(leaf.grad).all() and float(leaf.grad.abs().max()) < 1.0
    # the definition: the zero row is a point at the origin, the others are on the sphere
    rows = z.to(dtype).double().numpy()
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = np.where(norms > 0, rows / np.where(norms > 0, norms, 1), 0)
    want = bures_w2(unit, normalize=False)
    assert _rel(float(value.detach()), want) < (1e-6 if dtype == torch.float32 else 1e-2)


# ------------------------------------------------------------------ logged value precision
def test_last_value_keeps_float32_precision_under_bf16() -> None:
    # bf16-mixed used to log W2 rounded to bf16 (1.3515625 for 1.35468)
    lin = torch.nn.Linear(32, 64)
    x = torch.randn(256, 32)
    reg = w2reg.W2Uniformity(0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = lin(x)
        term = reg(z[:128], z[128:])
    assert term.dtype == torch.bfloat16  # the loss stays in the input dtype
    assert reg.last_value is not None and reg.last_value.dtype == torch.float32
    exact = float(w2_uniformity(z.detach().double()))
    assert _rel(float(reg.last_value), exact) < 1e-6
    assert _rel(float(term), 0.5 * exact) < 1e-2
    reg(z.detach().double())
    assert reg.last_value.dtype == torch.float64


# ------------------------------------------------------------------ shape-only tensors
@pytest.mark.parametrize("method", w2reg.METHODS)
def test_meta_tensors_pass_through_shape_only(method: str) -> None:
    z = torch.empty(64, 16, device="meta", requires_grad=True)
    value = w2_uniformity(z, method=method)
    assert value.device.type == "meta" and value.shape == ()
    value.backward()
    assert z.grad is not None and z.grad.shape == z.shape
    reg = w2reg.W2Uniformity(1.0, method=method)
    assert reg(z[:32], z[32:]).device.type == "meta"


def test_fake_tensors_pass_through_shape_only() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        z = torch.randn(64, 16)
        value = w2_uniformity(z)
        assert value.shape == () and value.dtype == torch.float32


# ------------------------------------------------------------------ options and checks
def test_bad_method_is_named() -> None:
    with pytest.raises(ValueError, match=r"method must be one of .*'svd'"):
        w2_uniformity(torch.randn(8, 4), method="svd")
    with pytest.raises(ValueError, match="method must be one of"):
        w2reg.W2Uniformity(1.0, method="fast")


@pytest.mark.parametrize("method", ["auto", "iterative", "exact"])
def test_unchecked_nan_propagates_into_the_value(method: str) -> None:
    """Where the NaN check does not run (here: under torch.compile on CPU; on accelerators
    without strict checks) a NaN in z must give NaN, never a plausible W2. Before, the final
    square root's subgradient guard mapped NaN to 0.0, the best possible W2."""
    bad = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [2.0, 0.5]])
    compiled = torch.compile(lambda z: w2_uniformity(z, method=method), backend="eager")
    assert math.isnan(float(compiled(bad)))
    assert math.isnan(float(compiled(bad.double())))
    assert float(compiled(torch.ones(4, 3))) == pytest.approx(
        float(w2_uniformity(torch.ones(4, 3)))
    )


def test_strict_checks_switch() -> None:
    """The switch itself: it returns the old setting, refuses non-bools, and leaves the CPU's
    checks as they are (they run either way: free there). What it switches on, the reading
    of accelerator data, is tested where there is one: tests/test_cuda.py
    (test_strict_checks_read_cuda_data_only_when_on)."""
    bad = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    for strict in (False, True):
        old = w2reg.set_strict_checks(strict)
        try:
            assert old is False and w2reg._validation.strict_checks() is strict
            with pytest.raises(ValueError, match="NaN or Inf"):
                w2_uniformity(bad)
            w2_uniformity(torch.empty(8, 4, device="meta"))  # no data: nothing to read
        finally:
            assert w2reg.set_strict_checks(False) is strict
    for value in ("yes", 1, None):
        with pytest.raises(ValueError, match="enabled must be True or False"):
            w2reg.set_strict_checks(value)  # type: ignore[arg-type]
    assert w2reg._validation.strict_checks() is False

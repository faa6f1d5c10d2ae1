"""CUDA checks (skipped without a GPU): same values as on CPU, autocast, collapse safety."""

from __future__ import annotations

import pytest
import torch

from w2reg import W2Uniformity, w2_uniformity

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("n,m", [(512, 256), (512, 2048), (4096, 256)])
def test_cuda_matches_cpu_value_and_gradient(n: int, m: int) -> None:
    z = torch.randn(n, m, dtype=torch.float64)
    zc = z.clone().requires_grad_()
    zg = z.cuda().requires_grad_()
    vc, vg = w2_uniformity(zc), w2_uniformity(zg)
    vc.backward()
    vg.backward()
    assert abs(float(vc) - float(vg)) / float(vc) < 1e-10
    assert torch.allclose(zc.grad, zg.grad.cpu(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_and_collapse_are_finite(dtype: torch.dtype) -> None:
    lin = torch.nn.Linear(64, 256).cuda()
    x = torch.randn(512, 64, device="cuda")
    x[:, 8:] = 0  # low-rank input -> dimensionally collapsed projections
    with torch.autocast("cuda", dtype=dtype):
        z = lin(x)
        value = W2Uniformity(1.0)(z[:256], z[256:])
    assert value.dtype == dtype
    value.float().backward()
    assert torch.isfinite(lin.weight.grad).all()
    collapsed = torch.ones(256, 128, device="cuda", requires_grad=True)
    w2_uniformity(collapsed).backward()
    assert torch.isfinite(collapsed.grad).all()


def test_strict_checks_read_cuda_data_only_when_on() -> None:
    """Off (default): NaN on the GPU is not looked for (that would sync the host) and
    propagates; on: it is found and named, as on CPU."""
    import w2reg

    bad = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [2.0, 0.5]], device="cuda")
    assert torch.isnan(w2_uniformity(bad)).item()
    old = w2reg.set_strict_checks(True)
    try:
        with pytest.raises(ValueError, match=r"z contains NaN or Inf .*\(3, 2\)"):
            w2_uniformity(bad)
    finally:
        w2reg.set_strict_checks(old)


def test_cuda_default_is_iterative_and_matches_float64() -> None:
    from oracle import eig_w2

    from w2reg._methods import resolve_method

    z = torch.randn(512, 256, device="cuda")
    assert resolve_method("auto", z) == "iterative"
    want = eig_w2(z.double().cpu().numpy())
    got = float(w2_uniformity(z))
    assert abs(got - want) / want < 1e-6
    # the TF32 flag is restored after the iteration
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        assert abs(float(w2_uniformity(z)) - want) / want < 1e-6  # TF32 off inside
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("method", ["auto", "iterative"])
def test_training_path_does_not_synchronise(method: str) -> None:
    lin = torch.nn.Linear(64, 256).cuda()
    x = torch.randn(512, 64, device="cuda")
    reg = W2Uniformity(0.5, method=method)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            z = lin(x)
            loss = reg(z[:256], z[256:]) + w2_uniformity(z, method=method)
        loss.float().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(lin.weight.grad).all()


def test_lightly_model_training_step_does_not_synchronise() -> None:
    pytest.importorskip("lightly")
    from torch import nn

    from w2reg.adapters.lightly_methods import BYOLW2

    backbone = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    model = BYOLW2(backbone=backbone, feature_dim=16, proj_hidden_dim=64, proj_output_dim=32)
    model = model.cuda().train()
    views = [torch.randn(64, 3, 32, 32, device="cuda") for _ in range(2)]
    batch = (views, torch.zeros(64, dtype=torch.long, device="cuda"))
    model.training_step(batch, 0)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.training_step(batch, 1)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert model.w2reg.loss.last_value is not None
    assert model.w2reg.loss.last_value.dtype == torch.float32

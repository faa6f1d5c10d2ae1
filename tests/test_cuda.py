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

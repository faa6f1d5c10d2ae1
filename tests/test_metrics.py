"""Monitoring metrics against numpy references and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import wang_isola

import w2reg


def test_wang_isola_uniformity_matches_numpy() -> None:
    z = torch.randn(60, 12, dtype=torch.float64)
    assert abs(float(w2reg.wang_isola_uniformity(z)) - wang_isola(z.numpy())) < 1e-10
    assert abs(float(w2reg.wang_isola_uniformity(z, t=0.5)) - wang_isola(z.numpy(), 0.5)) < 1e-10


def test_alignment_is_mean_squared_distance_of_normalised_pairs() -> None:
    z1, z2 = torch.randn(20, 8), torch.randn(20, 8)
    a, b = F.normalize(z1, dim=1).numpy(), F.normalize(z2, dim=1).numpy()
    want = float(np.mean(np.sum((a - b) ** 2, axis=1)))
    assert abs(float(w2reg.alignment(z1, z2)) - want) < 1e-5
    assert float(w2reg.alignment(z1, z1)) < 1e-6
    with pytest.raises(ValueError, match=r"z1 and z2 must have the same shape .*\(20, 8\)"):
        w2reg.alignment(z1, z2[:, :4])


def test_align_uniform_loss_is_align_plus_mean_uniformity() -> None:
    z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
    want = (
        w2reg.alignment(z1, z2)
        + 0.5 * (w2reg.wang_isola_uniformity(z1) + w2reg.wang_isola_uniformity(z2)) / 2
    )
    assert torch.allclose(w2reg.align_uniform_loss(z1, z2, lam=0.5), want)
    assert torch.allclose(w2reg.AlignUniformLoss(lam=0.5)(z1, z2), want)


def test_effective_rank_bounds_and_collapse() -> None:
    full = torch.linalg.qr(torch.randn(64, 64))[0][:, :16] * 8  # 16 equal singular values
    assert abs(float(w2reg.effective_rank(full)) - 16) < 1e-2
    rank_one = torch.randn(64, 1) @ torch.randn(1, 16)
    assert abs(float(w2reg.effective_rank(rank_one)) - 1) < 1e-2
    assert float(w2reg.effective_rank(torch.zeros(8, 4))) == 1.0


def test_effective_rank_matches_rankme_formula() -> None:
    z = torch.randn(50, 10, dtype=torch.float64)
    s = np.linalg.svd(z.numpy(), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert abs(float(w2reg.effective_rank(z)) - math.exp(-(p * np.log(p)).sum())) < 1e-9


def test_singular_values_are_sqrt_of_covariance_eigenvalues() -> None:
    z = torch.randn(100, 6, dtype=torch.float64)
    x = F.normalize(z, dim=1).numpy()
    cov = np.cov(x, rowvar=False, bias=True)
    want = np.sqrt(np.sort(np.linalg.eigvalsh(cov))[::-1])
    got = w2reg.singular_values(z).numpy()
    assert np.allclose(got, want, atol=1e-10)
    collapsed = z.clone()
    collapsed[:, 3:] = 0
    assert (w2reg.singular_values(collapsed)[3:] < 1e-12).all()

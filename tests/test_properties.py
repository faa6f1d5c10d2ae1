"""The paper's four properties of a uniformity metric (Table 1), and collapse sensitivity,
checked on the real functions: W2 has all of them; Wang-Isola's L_U fails the cloning ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from w2reg import w2_uniformity, wang_isola_uniformity


def _sphere(n: int = 256, m: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, m, generator=g, dtype=torch.float64), dim=1)


def _w2(z: torch.Tensor) -> float:
    return float(w2_uniformity(z))


def _lu(z: torch.Tensor) -> float:
    return float(wang_isola_uniformity(z))


def test_instance_permutation_constraint() -> None:
    z = _sphere()
    perm = torch.randperm(z.shape[0])
    assert abs(_w2(z[perm]) - _w2(z)) < 1e-12
    assert abs(_lu(z[perm]) - _lu(z)) < 1e-12


def test_instance_cloning_constraint_w2_holds_lu_fails() -> None:
    z = _sphere()
    cloned = z.repeat(3, 1)
    assert abs(_w2(cloned) - _w2(z)) < 1e-10
    # L_U counts the clone pairs (distance 0, exp = 1): it changes
    assert abs(_lu(cloned) - _lu(z)) > 1e-2


def test_feature_cloning_constraint_w2_worse_lu_unchanged() -> None:
    z = _sphere()
    cloned = torch.cat([z, z], dim=1) / 2**0.5
    assert _w2(cloned) > _w2(z) + 0.05
    # pairwise distances are preserved, so L_U cannot see it
    assert abs(_lu(cloned) - _lu(z)) < 1e-10


def test_feature_baby_constraint_w2_worse_lu_unchanged() -> None:
    z = _sphere()
    baby = F.normalize(torch.cat([z, torch.zeros_like(z[:, :8])], dim=1), dim=1)
    assert _w2(baby) > _w2(z) + 0.05
    assert abs(_lu(baby) - _lu(z)) < 1e-10


def test_w2_grows_monotonically_with_dimensional_collapse() -> None:
    z = _sphere(n=2048, m=64)
    values = []
    for eta in [0.0, 0.2, 0.4, 0.6, 0.8, 0.95]:
        k = int(round((1 - eta) * z.shape[1]))
        collapsed = z.clone()
        collapsed[:, k:] = 0
        values.append(_w2(F.normalize(collapsed, dim=1)))
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_identical_views_collapse_is_worst() -> None:
    z = _sphere()
    assert _w2(z[:1].repeat(256, 1)) > _w2(z) + 1.0

"""AlignUniform and Zero-CL as solo-learn methods (current, Hydra/cfg solo-learn only).

Both are ``solo.methods.base.BaseMethod`` subclasses in solo-learn's own shape: a
``projector``, ``forward``/``multicrop_forward`` returning ``out["z"]``, a ``training_step``
that adds the method's loss to the online classifier's loss, and a static
``add_and_assert_specific_cfg``. :func:`w2reg.adapters.solo.register` puts them in
``solo.methods.METHODS`` as ``align_uniform`` and ``zero_cl`` (and their W2 variants as
``align_uniform_w2`` and ``zero_cl_w2``). The losses themselves are w2reg's.

Projector of both: ``Linear -> BN -> ReLU -> Linear -> BN -> ReLU -> Linear``
(``features_dim -> proj_hidden_dim -> proj_hidden_dim -> proj_output_dim``), the paper's
512 -> 2048 -> 2048 -> 256 with ``proj_hidden_dim=2048, proj_output_dim=256``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.base import BaseMethod
from solo.utils.misc import omegaconf_select
from torch import Tensor, nn

import w2reg

__all__ = ["AlignUniform", "ZeroCL"]


def _mlp_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


def _require(cfg: omegaconf.DictConfig, key: str, kind: str = "positive int") -> None:
    if omegaconf.OmegaConf.is_missing(cfg, key) or omegaconf_select(cfg, key) is None:
        raise ValueError(f"{key} is required ({kind}) but missing from the cfg")


def _positive(cfg: omegaconf.DictConfig, key: str, *, integer: bool = False) -> None:
    value = omegaconf_select(cfg, key)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{key} must be {kind}, got {value!r}")


class _ProjectorMethod(BaseMethod):
    """Shared part: the projector, the forwards, the pairing of the large crops."""

    def __init__(self, cfg: omegaconf.DictConfig) -> None:
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        self.projector = _mlp_projector(
            self.features_dim, kwargs.proj_hidden_dim, kwargs.proj_output_dim
        )

    @staticmethod
    def _add_and_assert_projector_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        for key in ("method_kwargs.proj_hidden_dim", "method_kwargs.proj_output_dim"):
            _require(cfg, key)
            _positive(cfg, key, integer=True)
        return cfg

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        """The parent's parameter groups plus the projector's."""
        return super().learnable_params + [
            {"name": "projector", "params": self.projector.parameters()}
        ]

    def forward(self, X: Tensor) -> dict[str, Any]:
        """Backbone, online classifier and projector: adds ``out["z"]``, shape ``(B, m)``."""
        out = super().forward(X)
        out["z"] = self.projector(out["feats"])
        return out

    def multicrop_forward(self, X: Tensor) -> dict[str, Any]:
        """Backbone and projector for small crops: adds ``out["z"]``, shape ``(B, m)``."""
        out = super().multicrop_forward(X)
        out["z"] = self.projector(out["feats"])
        return out

    def _pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        raise NotImplementedError

    def _ssl_loss(self, Z: Sequence[Tensor]) -> Tensor:
        """Mean of the pair loss over all pairs of large crops (one pair with two crops)."""
        large = list(Z[: self.num_large_crops])
        pairs = list(itertools.combinations(large, 2))
        if not pairs:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 large crops, got {len(large)}"
            )
        return sum(self._pair_loss(a, b) for a, b in pairs) / len(pairs)


class AlignUniform(_ProjectorMethod):
    """Alignment + uniformity (Wang & Isola, ICML 2020), as a solo-learn method.

    Loss per pair of large crops with projections ``z1, z2`` of shape ``(B, m)``::

        L = L_A(z1, z2) + lamb * (L_U(z1) + L_U(z2)) / 2
        L_A = mean_i ||z1_i - z2_i||^alpha,   L_U(z) = log mean_{i<j} exp(-t ||z_i - z_j||^2)

    on L2-normalised projections (:func:`w2reg.align_uniform_loss`), computed on each rank's
    batch as in Wang & Isola's reference code.

    Extra cfg settings:
        method_kwargs:
            proj_hidden_dim (int): hidden width of the projector (paper: 2048).
            proj_output_dim (int): projection dimension ``m`` (paper: 256).
            lamb (float): weight of the uniformity term (default 1.0).
            t (float): temperature of ``L_U`` (default 2.0).
            alpha (float): exponent of ``L_A`` (default 2.0).
    """

    def __init__(self, cfg: omegaconf.DictConfig) -> None:
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        self.lamb: float = float(kwargs.lamb)
        self.t: float = float(kwargs.t)
        self.alpha: float = float(kwargs.alpha)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """solo's base defaults and checks, then the projector sizes, ``lamb``, ``t``, ``alpha``.

        Raises:
            ValueError: a key is missing or not a positive number (the message names it).
        """
        cfg = super(AlignUniform, AlignUniform).add_and_assert_specific_cfg(cfg)
        cfg = _ProjectorMethod._add_and_assert_projector_cfg(cfg)
        cfg.method_kwargs.lamb = omegaconf_select(cfg, "method_kwargs.lamb", 1.0)
        cfg.method_kwargs.t = omegaconf_select(cfg, "method_kwargs.t", 2.0)
        cfg.method_kwargs.alpha = omegaconf_select(cfg, "method_kwargs.alpha", 2.0)
        for key in ("lamb", "t", "alpha"):
            _positive(cfg, f"method_kwargs.{key}")
        return cfg

    def _pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return w2reg.align_uniform_loss(z1, z2, lam=self.lamb, t=self.t, alpha=self.alpha)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> Tensor:
        """Base step (online classifier) + AlignUniform loss; logs ``train_align_uniform_loss``.

        Args:
            batch: ``[indexes, [X_1, ..., X_crops], targets]`` as solo-learn's loaders give it.
            batch_idx: index of the batch.
        """
        out = super().training_step(batch, batch_idx)
        loss = self._ssl_loss(out["z"])
        with torch.no_grad():
            z1, z2 = out["z"][0], out["z"][1]
            metrics = {
                "train_alignment": w2reg.alignment(z1, z2, alpha=self.alpha),
                "train_uniformity": w2reg.wang_isola_uniformity(torch.cat([z1, z2]), t=self.t),
            }
        self.log("train_align_uniform_loss", loss, on_epoch=True, sync_dist=True)
        self.log_dict(metrics, on_epoch=True, sync_dist=True)
        return loss + out["loss"]


class ZeroCL(_ProjectorMethod):
    """Zero-CL: instance-wise and feature-wise whitening (Zhang et al., ICLR 2022).

    "Zero-CL: Instance and Feature decorrelation for negative-free symmetric contrastive
    learning", OpenReview RAW9tCdVxLj. The loss per pair of large crops is
    :func:`w2reg.zero_cl_loss` on the ``(B, m)`` projections (its documentation gives the
    formula); it is computed on each rank's batch.

    Extra cfg settings:
        method_kwargs:
            proj_hidden_dim (int): hidden width of the projector (paper: 2048).
            proj_output_dim (int): projection dimension ``m`` (paper: 256).
            loss_kwargs (dict): extra keyword arguments of :func:`w2reg.zero_cl_loss`
                (default: none, its defaults).
    """

    def __init__(self, cfg: omegaconf.DictConfig) -> None:
        super().__init__(cfg)
        loss_kwargs = cfg.method_kwargs.loss_kwargs
        self.loss_kwargs: dict[str, Any] = dict(
            omegaconf.OmegaConf.to_container(loss_kwargs) if loss_kwargs else {}
        )

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """solo's base defaults and checks, then the projector sizes and ``loss_kwargs``.

        Raises:
            ValueError: a key is missing or invalid (the message names it).
        """
        cfg = super(ZeroCL, ZeroCL).add_and_assert_specific_cfg(cfg)
        cfg = _ProjectorMethod._add_and_assert_projector_cfg(cfg)
        cfg.method_kwargs.loss_kwargs = omegaconf_select(cfg, "method_kwargs.loss_kwargs", {})
        if not isinstance(cfg.method_kwargs.loss_kwargs, (dict, omegaconf.DictConfig)):
            raise ValueError(
                "method_kwargs.loss_kwargs must be a mapping, got "
                f"{cfg.method_kwargs.loss_kwargs!r}"
            )
        return cfg

    def _pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return w2reg.zero_cl_loss(z1, z2, **self.loss_kwargs)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> Tensor:
        """Base step (online classifier) + Zero-CL loss; logs ``train_zero_cl_loss``.

        Args:
            batch: ``[indexes, [X_1, ..., X_crops], targets]`` as solo-learn's loaders give it.
            batch_idx: index of the batch.
        """
        out = super().training_step(batch, batch_idx)
        loss = self._ssl_loss(out["z"])
        self.log("train_zero_cl_loss", loss, on_epoch=True, sync_dist=True)
        return loss + out["loss"]

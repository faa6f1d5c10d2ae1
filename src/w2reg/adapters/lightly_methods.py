"""The eight methods of Fang et al. (ICLR 2024) as lightly-style LightningModules, +/- a term.

lightly 1.6 ships no method classes any more; these are written the way lightly's own
examples write them (``examples/pytorch_lightning/*.py``), from lightly's parts: heads
(:mod:`lightly.models.modules`), losses (:mod:`lightly.loss`), memory banks and
``update_momentum``, on the paper's recipe (:mod:`w2reg.adapters.lightly_recipe`). Each plain
class is an ordinary LightningModule; the ``...W2`` class next to it is
:func:`~w2reg.adapters._lightning.regularize_class` of it (what
:func:`w2reg.adapters.lightly.w2_regularized` does) with three more arguments, all saved in
the hyperparameters (so ``load_from_checkpoint`` rebuilds the same model):

* ``w2_weight``: a number or a :class:`w2reg.Schedule`; ``None``: the method's default for
  the term (:func:`w2reg.adapters.defaults.default_weight`, on the loss scales of these
  models);
* ``w2_method``: how W2's nuclear norm is computed (:data:`w2reg.METHODS`);
* ``w2_term``: ``"w2"`` (default), ``"lu"`` (Wang & Isola's L_U, the paper's baseline) or a
  callable ``term(z) -> scalar`` (lightly's ``SIGReg()``, ...; give ``w2_weight`` with it).

The term is computed on the online ``projection_head`` outputs of every view; with
``gather_distributed=True`` on the global batch, like lightly's criterion. A checkpoint of a
``...W2`` model loads into the plain class with ``strict=True`` (nothing is added to the
``state_dict``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from w2reg.schedules import WeightLike
from w2reg.terms import TermLike
from w2reg.zero_cl import zero_cl_loss

from ._imports import missing
from .defaults import PAPER_METHODS, canonical
from .lightly_recipe import RecipeModel, pairs, projection_mlp
from .lightly_variants import w2_variant

try:
    from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss
    from lightly.loss.hypersphere_loss import HypersphereLoss
    from lightly.models.modules import (
        BarlowTwinsProjectionHead,
        BYOLPredictionHead,
        NNCLRPredictionHead,
        NNCLRProjectionHead,
        NNMemoryBankModule,
        SimSiamPredictionHead,
        SimSiamProjectionHead,
    )
    from lightly.models.utils import deactivate_requires_grad, update_momentum
except ImportError as err:
    raise missing("w2reg.adapters.lightly", "lightly", err) from err

__all__ = [
    "MODELS",
    "W2_MODELS",
    "AlignUniform",
    "AlignUniformW2",
    "BYOL",
    "BYOLW2",
    "BarlowTwins",
    "BarlowTwinsW2",
    "MoCoV2",
    "MoCoV2W2",
    "NNCLR",
    "NNCLRW2",
    "SimCLR",
    "SimCLRW2",
    "SimSiam",
    "SimSiamW2",
    "ZeroCL",
    "ZeroCLW2",
    "create_model",
]


class SimCLR(RecipeModel):
    """SimCLR (Chen et al., ICML 2020): NT-Xent with in-batch negatives, temperature 0.2.

    ``loss = mean over view pairs of NTXentLoss(z_i, z_j)`` (lightly's NT-Xent already
    averages both directions over the ``2B`` anchors).

    Default W2 weight: ``DEFAULTS["simclr"]`` (0.5, ours; the argument is there).
    """

    method_key = "simclr"

    def __init__(self, *, temperature: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_head = projection_mlp(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )
        self.criterion = NTXentLoss(
            temperature=temperature, gather_distributed=self.gather_distributed
        )

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        losses = [self.criterion(z[i], z[j]) for i, j in pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class MoCoV2(RecipeModel):
    """MoCo v2 (Chen et al., 2020) as in the paper's code: symmetric, queue of 4096 keys.

    Queries from the online branch, keys from a momentum copy of backbone and head
    (``copy.deepcopy``, updated with lightly's ``update_momentum``, momentum a cosine from
    0.99 to 0.999 over all steps). One call of lightly's ``NTXentLoss(memory_bank_size=
    (4096, 256))`` on the concatenated pairs ``(q_0, k_1), (q_1, k_0)``: negatives are the
    queue before this step, and the queue receives ``[k_1; k_0]`` exactly once per step.
    ``loss = 2 * that mean`` = the sum of the two directional InfoNCE terms, the scale of the
    paper's reference code, so the paper's weight applies. Extra crops are queries against
    both global keys in the same call (the queue then also receives those keys again).

    Default W2 weight: ``DEFAULTS["mocov2"]`` (the paper's 1.0, constant).
    """

    method_key = "mocov2"

    def __init__(
        self,
        *,
        temperature: float = 0.2,
        memory_bank_size: int = 4096,
        momentum_start: float = 0.99,
        momentum_end: float = 0.999,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.projection_head = projection_mlp(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NTXentLoss(
            temperature=temperature,
            memory_bank_size=(memory_bank_size, self.proj_output_dim),
            gather_distributed=self.gather_distributed,
        )
        self.momentum_start, self.momentum_end = momentum_start, momentum_end

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """Momentum-branch projections (no gradients)."""
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        m = self._momentum(self.momentum_start, self.momentum_end)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)
        q = [self.project(x) for x in views]
        k = [self.keys(x) for x in views[:2]]
        ij = pairs(len(q), symmetric=False)
        queries = torch.cat([q[j] for _, j in ij])
        keys = torch.cat([k[i] for i, _ in ij])
        return 2.0 * self.criterion(queries, keys)


class NNCLR(RecipeModel):
    """NNCLR (Dwibedi et al., ICCV 2021): nearest-neighbour positives from a 4096 bank.

    lightly's ``NNCLRProjectionHead`` (BN on every layer, 512 -> 2048 -> 2048 -> 256) and
    ``NNCLRPredictionHead`` (256 -> 4096 -> 256, NNCLR paper), ``NNMemoryBankModule`` of
    ``(4096, 256)`` queried with the detached projections of the two global views and
    updated once per step (with the second one, as lightly's example), NT-Xent at 0.2:
    ``loss = mean over (i, j) of NTXentLoss(NN(z_i), p_j)``.

    Default W2 weight: ``DEFAULTS["nnclr"]`` (0.5, ours; the argument is there). The W2 term
    is taken on the online projections ``z`` before the memory-bank swap.
    """

    method_key = "nnclr"

    def __init__(
        self,
        *,
        temperature: float = 0.2,
        memory_bank_size: int = 4096,
        pred_hidden_dim: int = 4096,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        out = self.proj_output_dim
        self.projection_head = NNCLRProjectionHead(
            self.feature_dim, self.hparams.proj_hidden_dim, out
        )
        self.prediction_head = NNCLRPredictionHead(out, pred_hidden_dim, out)
        self.memory_bank = NNMemoryBankModule(size=(memory_bank_size, out))
        self.criterion = NTXentLoss(
            temperature=temperature, gather_distributed=self.gather_distributed
        )

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        p = [self.prediction_head(zi) for zi in z]
        nn_ = [self.memory_bank(z[i].detach(), update=(i == 1)) for i in range(2)]
        ij = pairs(len(z), symmetric=False)
        return torch.stack([self.criterion(nn_[i], p[j]) for i, j in ij]).mean()


class BYOL(RecipeModel):
    """BYOL (Grill et al., NeurIPS 2020) with the paper's settings.

    Online: projector 512 -> 2048 -> 2048 -> 256 and lightly's ``BYOLPredictionHead``
    256 -> 2048 -> 256 (the paper's run script); target: momentum copies (``copy.deepcopy``)
    updated by lightly's ``update_momentum`` with momentum 0.99 (constant, as the paper's
    code; pass ``momentum_end=1.0`` for BYOL's cosine increase).
    ``loss = 2 * mean over (i, j) of (2 - 2 cos(p_j, t_i))`` computed with lightly's
    ``NegativeCosineSimilarity``; for two views this is the sum of both directions, the
    scale of the paper's reference code, so the paper's weight applies.

    Default W2 weight: ``DEFAULTS["byol"]`` (the paper's 0.2, constant).
    """

    method_key = "byol"

    def __init__(
        self,
        *,
        pred_hidden_dim: int = 2048,
        momentum_start: float = 0.99,
        momentum_end: float = 0.99,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        out = self.proj_output_dim
        self.projection_head = projection_mlp(self.feature_dim, self.hparams.proj_hidden_dim, out)
        self.prediction_head = BYOLPredictionHead(out, pred_hidden_dim, out)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.momentum_start, self.momentum_end = momentum_start, momentum_end

    @torch.no_grad()
    def targets(self, x: Tensor) -> Tensor:
        """Target-branch projections (no gradients)."""
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        m = self._momentum(self.momentum_start, self.momentum_end)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)
        p = [self.prediction_head(self.project(x)) for x in views]
        t = [self.targets(x) for x in views[:2]]
        ij = pairs(len(p), symmetric=False)
        losses = [2.0 + 2.0 * self.criterion(p[j], t[i]) for i, j in ij]
        return 2.0 * torch.stack(losses).mean()


class SimSiam(RecipeModel):
    """SimSiam (Chen & He, CVPR 2021): BYOL without the momentum encoder.

    lightly's ``SimSiamProjectionHead`` (512 -> 2048 -> 2048 -> 256, BN on every layer, the
    last without affine) and ``SimSiamPredictionHead`` (256 -> 512 -> 256, SimSiam's
    predictor width); targets are the detached online projections.
    ``loss = 2 * mean over (i, j) of (2 - 2 cos(p_j, stopgrad(z_i)))``, the same scale as
    :class:`BYOL`.

    Default W2 weight: ``DEFAULTS["simsiam"]`` (0.2, ours; the argument is there).
    """

    method_key = "simsiam"

    def __init__(self, *, pred_hidden_dim: int = 512, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        out = self.proj_output_dim
        self.projection_head = SimSiamProjectionHead(
            self.feature_dim, self.hparams.proj_hidden_dim, out
        )
        self.prediction_head = SimSiamPredictionHead(out, pred_hidden_dim, out)
        self.criterion = NegativeCosineSimilarity()

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        p = [self.prediction_head(zi) for zi in z]
        ij = pairs(len(z), symmetric=False)
        losses = [2.0 + 2.0 * self.criterion(p[j], z[i].detach()) for i, j in ij]
        return 2.0 * torch.stack(losses).mean()


class AlignUniform(RecipeModel):
    """Wang & Isola (ICML 2020): ``L_A + lam * (L_U(z_1) + L_U(z_2)) / 2``, ``t = 2``, lam 1.

    lightly's ``HypersphereLoss(t=2, lam=1, alpha=2)``; projector 512 -> 2048 -> 2048 -> 256.
    ``loss = mean over view pairs``.

    Default W2 weight: ``DEFAULTS["align_uniform"]`` (0.2, ours; the argument is there).
    """

    method_key = "align_uniform"

    def __init__(self, *, lam: float = 1.0, t: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_head = projection_mlp(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )
        self.criterion = HypersphereLoss(t=t, lam=lam, alpha=2.0)

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        # float32: lightly's HypersphereLoss uses torch.pdist, which has no bf16/fp16 kernels
        z = [self.project(x).float() for x in views]
        losses = [self.criterion(z[i], z[j]) for i, j in pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class BarlowTwins(RecipeModel):
    """Barlow Twins (Zbontar et al., ICML 2021) with lightly's loss (lambda 5e-3).

    lightly's ``BarlowTwinsProjectionHead`` (512 -> 2048 -> 2048 -> 256) and
    ``BarlowTwinsLoss`` (on-diagonal + 5e-3 off-diagonal of the batch-standardised
    cross-correlation, the same scale as the paper's code); ``loss = mean over view pairs``.

    Default W2 weight: ``DEFAULTS["barlow_twins"]`` as ``LinearDecay(30, 0,
    epochs=max_epochs)`` (the paper's 30 -> 0, linear per epoch).
    """

    method_key = "barlow_twins"

    def __init__(self, *, lambda_param: float = 5e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_head = BarlowTwinsProjectionHead(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )
        self.criterion = BarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=self.gather_distributed
        )

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        losses = [self.criterion(z[i], z[j]) for i, j in pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class ZeroCL(RecipeModel):
    """Zero-CL (Zhang et al., ICLR 2022): instance- and feature-wise whitening losses.

    The loss is :func:`w2reg.zero_cl_loss` (``z1, z2`` the ``(B, 256)`` projections of the
    two views); projector 512 -> 2048 -> 2048 -> 256. ``loss = mean over view pairs``.

    Default W2 weight: ``DEFAULTS["zero_cl"]`` (the paper's 30, constant).
    """

    method_key = "zero_cl"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_head = projection_mlp(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        losses = [zero_cl_loss(z[i], z[j]) for i, j in pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


# -- the regularized variants (w2reg.adapters.lightly_variants) ------------------------------
SimCLRW2 = w2_variant(SimCLR, __name__)
MoCoV2W2 = w2_variant(MoCoV2, __name__)
NNCLRW2 = w2_variant(NNCLR, __name__)
BYOLW2 = w2_variant(BYOL, __name__)
SimSiamW2 = w2_variant(SimSiam, __name__)
AlignUniformW2 = w2_variant(AlignUniform, __name__)
BarlowTwinsW2 = w2_variant(BarlowTwins, __name__)
ZeroCLW2 = w2_variant(ZeroCL, __name__)

_PLAIN = (SimCLR, MoCoV2, NNCLR, BYOL, SimSiam, AlignUniform, BarlowTwins, ZeroCL)
_W2 = (SimCLRW2, MoCoV2W2, NNCLRW2, BYOLW2, SimSiamW2, AlignUniformW2, BarlowTwinsW2, ZeroCLW2)

#: The plain model classes by their keys, in the order of the paper's tables
#: (:data:`w2reg.adapters.defaults.PAPER_METHODS`, the one list of the eight).
MODELS: dict[str, type[RecipeModel]] = {
    key: c for key in PAPER_METHODS for c in _PLAIN if c.method_key == key
}

#: The regularized model classes, same keys.
W2_MODELS: dict[str, type[RecipeModel]] = {
    key: c for key in PAPER_METHODS for c in _W2 if c.method_key == key
}


def create_model(
    method: str,
    *,
    w2: bool = True,
    w2_weight: WeightLike | None = None,
    w2_method: str = "auto",
    w2_term: TermLike = "w2",
    batch_size: int = 256,
    max_epochs: int = 500,
    lr: float | None = None,
    **kwargs: Any,
) -> RecipeModel:
    """One of the eight methods, with (default) or without the regularizer term.

    Args:
        method: a key of :data:`MODELS` (``"simclr"``, ``"mocov2"``, ``"nnclr"``,
            ``"byol"``, ``"simsiam"``, ``"align_uniform"``, ``"barlow_twins"``, ``"zero_cl"``)
            or another library's name of one (``"mocov2plus"``).
        w2: return the ``...W2`` class (``False``: the plain method).
        w2_weight: number or :class:`w2reg.Schedule`; ``None`` -> the method's default for
            the term (:func:`w2reg.adapters.defaults.default_weight`; Barlow Twins' decays
            over ``max_epochs``).
        w2_method: how W2's nuclear norm is computed (``"auto"``, ``"exact"``,
            ``"iterative"``, ``"eigh32"``; see :func:`w2reg.w2_uniformity`).
        w2_term: ``"w2"``, ``"lu"`` or a callable ``term(z) -> scalar``.
        batch_size: training batch size (scales the learning rate).
        max_epochs: planned epochs; give the ``Trainer`` the same.
        lr: weights' learning rate (``None``: ``0.2 * batch_size / 256``).
        **kwargs: passed to the class (``backbone``, ``feature_dim``, ``proj_hidden_dim``,
            ``proj_output_dim``, ``pred_hidden_dim``, ``memory_bank_size``, ``temperature``...).

    Raises:
        ValueError: an unknown method (the message lists them), or a ``w2_*`` setting given
            with ``w2=False``.
    """
    key = canonical(method)
    common = dict(batch_size=batch_size, max_epochs=max_epochs, lr=lr, **kwargs)
    if not w2:
        given = {
            k: v
            for k, v, default in (
                ("w2_weight", w2_weight, None),
                ("w2_method", w2_method, "auto"),
                ("w2_term", w2_term, "w2"),
            )
            if v is not default and v != default
        }
        if given:
            raise ValueError(f"{given} given with w2=False")
        return MODELS[key](**common)
    return W2_MODELS[key](w2_weight=w2_weight, w2_method=w2_method, w2_term=w2_term, **common)


#: Names of 0.1 (``w2reg.METHODS`` is the nuclear-norm methods; these are models).
METHODS = MODELS
W2_METHODS = W2_MODELS

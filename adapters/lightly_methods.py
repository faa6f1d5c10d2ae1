"""The eight methods of Fang et al. (ICLR 2024) as lightly-style LightningModules.

lightly 1.6 ships no method classes any more; these are written the way lightly's own
examples write them (``examples/pytorch_lightning/*.py``), from lightly's parts: heads
(:mod:`lightly.models.modules`), losses (:mod:`lightly.loss`), memory banks,
``update_momentum`` / ``cosine_schedule`` and ``LARS``. Each plain class is an ordinary
LightningModule; the ``...W2`` class next to it is ``regularize_class`` of it (the same thing
:func:`w2reg.adapters.lightly.w2_regularized` does) with an extra ``w2_weight`` argument, so a
checkpoint of the W2 model loads into the plain one with ``strict=True``.

Common recipe (paper Sec. 5 and its reference code, github.com/statsle/WassersteinSSL):

* backbone: torchvision ResNet-18, CIFAR variant (3x3 stride-1 ``conv1``, no max-pool,
  ``fc`` removed), 512-d features; ``forward(x)`` returns them, shape ``(B, 512)``;
* ``projection_head`` 512 -> 2048 -> 2048 -> 256 (BN + ReLU between), predictor where the
  method has one;
* LARS (momentum 0.9, trust coefficient 0.02 as in the reference code), learning rate
  ``0.2 * batch_size / 256`` for weights and ``0.005 * batch_size / 256`` for biases and norm
  parameters (which get no weight decay and no LARS adaptation), weight decay 1e-4, 10 linear
  warm-up epochs (at most a tenth of a shorter run) then cosine to 0.001x, stepped per
  optimizer step;
* temperature 0.2, memory bank 4096 (MoCo v2, NNCLR), momentum 0.99 (BYOL) and a cosine
  0.99 -> 0.999 (MoCo v2) over all training steps.

``training_step(batch, batch_idx)`` takes ``batch = (views, targets, ...)`` where ``views``
is the list of image tensors a lightly transform yields (two views, or more with
multi-crop: the first two are the global views that give targets/keys, every view is
passed through the online branch). Each class's default W2 weight is its entry of the one
table of defaults, :data:`w2reg.adapters.defaults.DEFAULTS`, whose reference loss scales
these models are written on; the argument for each value that is not the paper's is there.

Under a Lightning ``Trainer`` the schedules (learning rate, momentum, W2 weight) follow the
trainer's steps and epochs. In a plain PyTorch loop give the model the run's length,
``max_epochs`` and ``steps_per_epoch``; it then counts its own steps (one optimizer step per
``training_step`` call)::

    model = create_model("byol", max_epochs=5, steps_per_epoch=len(loader))
    optimizer, scheduler = model.optimizer_and_scheduler()
    for epoch in range(5):
        for batch in loader:                      # (views, targets) from a lightly transform
            loss = model.training_step(batch, 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()                      # per step, as under the Trainer
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from w2reg._methods import check_method
from w2reg.schedules import LinearDecay, WeightLike
from w2reg.zero_cl import zero_cl_loss

from ._imports import lightning, missing
from ._lightning import regularize_class
from .defaults import PAPER_METHODS, default_weights

try:
    import torchvision
    from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import (
        BarlowTwinsProjectionHead,
        BYOLPredictionHead,
        NNCLRPredictionHead,
        NNCLRProjectionHead,
        NNMemoryBankModule,
        SimSiamPredictionHead,
        SimSiamProjectionHead,
    )
    from lightly.models.modules.heads import ProjectionHead
    from lightly.models.utils import (
        deactivate_requires_grad,
        get_weight_decay_parameters,
        update_momentum,
    )
    from lightly.utils.lars import LARS
    from lightly.utils.scheduler import cosine_schedule
except ImportError as err:
    raise missing("w2reg.adapters.lightly", "lightly", err) from err

LightningModule = lightning("w2reg.adapters.lightly", "lightly").LightningModule

try:
    from lightly.loss.hypersphere_loss import HypersphereLoss as _AlignUniformLoss
except ImportError:  # pragma: no cover - lightly builds without it
    from w2reg import AlignUniformLoss as _AlignUniformLoss

__all__ = [
    "METHODS",
    "W2_METHODS",
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
    "cifar_resnet18",
    "create_model",
]


def cifar_resnet18(width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs, at base width ``width`` (64: the paper's).

    3x3 stride-1 ``conv1``, no max-pool, no ``fc``; torchvision's ``BasicBlock`` stages of
    ``[2, 2, 2, 2]`` blocks with ``width * (1, 2, 4, 8)`` channels and torchvision's weight
    initialisation, so every width has the parameter names of ``torchvision.models.resnet18``.
    ``width=16`` is the "quarter width" network (16-32-64-128) of the CPU study: about 12x
    fewer operations per image. Maps ``(B, 3, H, W)`` images to ``(B, 8 * width)`` features
    (512 at full width).

    Example:
        >>> cifar_resnet18(16)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    if width != 64:
        block = torchvision.models.resnet.BasicBlock
        net.inplanes = width  # _make_layer grows the stages from here, as ResNet.__init__ does
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(block, width, 2)
        net.layer2 = net._make_layer(block, 2 * width, 2, stride=2)
        net.layer3 = net._make_layer(block, 4 * width, 2, stride=2)
        net.layer4 = net._make_layer(block, 8 * width, 2, stride=2)
        for module in net.modules():  # the initialisation ResNet.__init__ gives its layers
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def projection_mlp(input_dim: int, hidden_dim: int, output_dim: int) -> ProjectionHead:
    """The paper's projector as a lightly ``ProjectionHead``: in -> h -> h -> out.

    ``Linear(no bias) + BN + ReLU`` twice, then a plain ``Linear`` (with bias), as in the
    paper's reference code.
    """
    return ProjectionHead(
        [
            (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
            (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
            (hidden_dim, output_dim, None, None),
        ]
    )


def _views(batch: Any) -> list[Tensor]:
    """The list of image views of a ``(views, targets, ...)`` batch (at least two)."""
    views = batch[0] if isinstance(batch, (tuple, list)) and batch else None
    if (
        not isinstance(views, (tuple, list))
        or len(views) < 2
        or not all(isinstance(v, Tensor) and v.dim() == 4 for v in views)
    ):
        got = (
            [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in views]
            if isinstance(views, (tuple, list))
            else type(views).__name__
        )
        raise ValueError(
            "batch must be (views, targets, ...) with views a list of at least two (B, C, H, W) "
            f"image tensors, as lightly's transforms produce; got views={got}"
        )
    return list(views)


def _pairs(n_views: int, symmetric: bool) -> list[tuple[int, int]]:
    """``(i, j)`` index pairs: ``i`` one of the two global views, ``j`` any other view.

    Symmetric losses get each unordered pair once; asymmetric ones (target ``i``,
    prediction/query ``j``) get both orders. Two views: ``[(0, 1)]`` or ``[(0, 1), (1, 0)]``.
    """
    if symmetric:
        return [(i, j) for i in range(2) for j in range(i + 1, n_views)]
    return [(i, j) for i in range(2) for j in range(n_views) if j != i]


def _warmup_cosine(step: int, total_steps: int, warmup_steps: int, end: float = 0.001) -> float:
    """LR factor: linear warm-up to 1 over ``warmup_steps``, then lightly's cosine to ``end``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return cosine_schedule(step - warmup_steps, max(total_steps - warmup_steps, 1), 1.0, end)


def _batches_per_epoch(trainer: Any) -> int | None:
    """The trainer's training batches per epoch, loading its dataloader if need be."""
    batches = getattr(trainer, "num_training_batches", None)
    # a Trainer with only max_steps has not loaded the data when the optimizer is built;
    # Lightning >= 2.0 loads it with fit_loop.setup_data(), 1.x with reset_train_dataloader()
    setup = getattr(getattr(trainer, "fit_loop", None), "setup_data", None)
    if not callable(setup):
        reset = getattr(trainer, "reset_train_dataloader", None)
        setup = (lambda: reset(trainer.lightning_module)) if callable(reset) else None
    if not (isinstance(batches, (int, float)) and math.isfinite(batches)) and setup is not None:
        setup()
        batches = getattr(trainer, "num_training_batches", None)
    if isinstance(batches, (int, float)) and math.isfinite(batches) and batches > 0:
        return int(batches)
    return None


class _Method(LightningModule):
    """Shared parts: backbone, the recipe's optimizer and schedule, batch handling.

    Args:
        backbone: maps images to ``(B, feature_dim)`` features (``None``: the CIFAR
            ResNet-18). Tests pass a tiny one.
        feature_dim: width of the backbone's features (512 for ResNet-18).
        proj_hidden_dim, proj_output_dim: projector widths (2048, 256 in the paper).
        batch_size: the training batch size, used only to scale the learning rate.
        max_epochs: the planned training length in epochs: horizon of epoch-based defaults
            (BarlowTwins' W2 decay) and of the schedules when the trainer has no
            ``max_epochs``. Give the trainer the same number.
        steps_per_epoch: optimizer steps per epoch, needed only outside a Trainer (a plain
            loop: ``len(loader)``); the run then has ``max_epochs * steps_per_epoch`` steps.
            Under a Trainer the trainer's own count is used.
        lr: learning rate of the weights; ``None`` -> ``0.2 * batch_size / 256``. Biases and
            norm parameters get ``lr * 0.005 / 0.2``.
        weight_decay: 1e-4 (not applied to biases and norm parameters).
        warmup_epochs: linear warm-up length in epochs (may be fractional); ``None``: the
            paper's 10, but at most a tenth of the run (0.5 for a 5-epoch run). A warm-up
            longer than half the run warns.
        gather_distributed: gather across ranks (DDP) in lightly's criterion and, in the
            ``...W2`` classes, for the W2 term (statistics of the global batch).
    """

    #: The method's key in :data:`w2reg.adapters.defaults.DEFAULTS` and :data:`METHODS`.
    method_key: str = ""

    def __init__(
        self,
        *,
        backbone: nn.Module | None = None,
        feature_dim: int = 512,
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 256,
        batch_size: int = 256,
        max_epochs: int = 500,
        steps_per_epoch: int | None = None,
        lr: float | None = None,
        weight_decay: float = 1e-4,
        warmup_epochs: float | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        for arg, value in (
            ("feature_dim", feature_dim),
            ("proj_hidden_dim", proj_hidden_dim),
            ("proj_output_dim", proj_output_dim),
            ("batch_size", batch_size),
            ("max_epochs", max_epochs),
            ("steps_per_epoch", 1 if steps_per_epoch is None else steps_per_epoch),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if warmup_epochs is not None and (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, (int, float))
            or not math.isfinite(warmup_epochs)
            or warmup_epochs < 0
        ):
            raise ValueError(f"warmup_epochs must be None or a number >= 0, got {warmup_epochs!r}")
        self.save_hyperparameters(ignore=["backbone", "w2_weight", "w2_method"])
        self.backbone = backbone if backbone is not None else cifar_resnet18()
        self.feature_dim = feature_dim
        self.proj_output_dim = proj_output_dim
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.lr = 0.2 * batch_size / 256 if lr is None else float(lr)
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.gather_distributed = gather_distributed
        self._run: tuple[int, float] | None = None  # (total steps, steps per epoch), cached
        self._plain_steps = 0  # steps taken outside a Trainer

    @property
    def default_w2_weight(self) -> WeightLike:
        """W2 weight of the ``...W2`` class when ``w2_weight`` is not given: the method's entry
        of :data:`w2reg.adapters.defaults.DEFAULTS`, decaying over ``max_epochs`` if it does."""
        start, end = default_weights(self.method_key)
        return start if start == end else LinearDecay(start, end, epochs=self.max_epochs)

    # -- the network ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Backbone features ``(B, feature_dim)`` of images ``x`` (what a linear probe uses)."""
        return self.backbone(x).flatten(start_dim=1)

    def project(self, x: Tensor) -> Tensor:
        """Online projection ``projection_head(backbone(x))``, shape ``(B, proj_output_dim)``."""
        return self.projection_head(self.forward(x))

    def ssl_loss(self, views: list[Tensor]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        if self._attached_trainer() is None:
            return self._plain_training_step(batch)
        views = _views(batch)
        loss = self.ssl_loss(views)
        self.log(
            "train_loss",
            loss.detach(),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=views[0].shape[0],
        )
        return loss

    # -- schedules -----------------------------------------------------------------------------
    def _attached_trainer(self) -> Any:
        return getattr(self, "_trainer", None)

    @property
    def current_step(self) -> int:
        """Optimizer steps taken: the trainer's ``global_step``, else this model's own count."""
        trainer = self._attached_trainer()
        return int(trainer.global_step) if trainer is not None else self._plain_steps

    def _plain_training_step(self, batch: Any) -> Tensor:
        """A step outside a Trainer: epoch-based W2 weights follow the model's own count."""
        reg = getattr(self, "w2reg", None)
        if reg is not None and self.steps_per_epoch is not None:
            epoch = min(self._plain_steps // self.steps_per_epoch, self.max_epochs - 1)
            reg.loss.set_epoch(epoch, self.max_epochs)
        loss = self.ssl_loss(_views(batch))
        self._plain_steps += 1
        return loss

    def run_length(self) -> tuple[int, float]:
        """``(total optimizer steps, steps per epoch)`` of the run the schedules span.

        Under a Trainer: its ``estimated_stepping_batches`` and its batches per epoch (over
        ``accumulate_grad_batches``). Outside: ``max_epochs * steps_per_epoch`` from the
        constructor; without ``steps_per_epoch`` a ``ValueError`` says what to pass.
        """
        if self._run is None:
            trainer = self._attached_trainer()
            if trainer is None:
                if self.steps_per_epoch is None:
                    raise ValueError(
                        f"{type(self).__name__}: outside a Lightning Trainer the learning-rate "
                        "and momentum schedules need the run's length; create the model with "
                        "steps_per_epoch=len(train_loader) (and max_epochs=the epochs you run, "
                        f"now {self.max_epochs}), or train it with a Trainer"
                    )
                spe = float(self.steps_per_epoch)
                self._run = (self.max_epochs * self.steps_per_epoch, spe)
            else:
                total = getattr(trainer, "estimated_stepping_batches", None)
                if total is None or not math.isfinite(total) or total < 1:
                    raise ValueError(
                        f"{type(self).__name__}: the trainer cannot tell the run's length "
                        f"(estimated_stepping_batches={total!r}); give the Trainer max_epochs "
                        "or max_steps and a dataloader with a length"
                    )
                total = int(total)
                batches = _batches_per_epoch(trainer)
                accumulate = max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1)
                if batches is not None:
                    spe = float(math.ceil(batches / accumulate))
                else:  # no per-epoch count: spread the steps over the planned epochs
                    epochs = trainer.max_epochs
                    epochs = epochs if isinstance(epochs, int) and epochs > 0 else self.max_epochs
                    spe = max(total / epochs, 1.0)
                self._run = (total, spe)
        return self._run

    def total_steps(self) -> int:
        """Optimizer steps of the whole run (see :meth:`run_length`)."""
        return self.run_length()[0]

    def warmup_steps(self) -> int:
        """Linear warm-up length in steps (see ``warmup_epochs``); warns when it is too long."""
        total, spe = self.run_length()
        run_epochs = total / spe
        if self.warmup_epochs is None:
            epochs = min(10.0, 0.1 * run_epochs)
        else:
            epochs = float(self.warmup_epochs)
            if epochs > 0.5 * run_epochs:
                warnings.warn(
                    f"{type(self).__name__}: warmup_epochs={self.warmup_epochs} is more than "
                    f"half of this {run_epochs:g}-epoch run ({total} steps): the learning rate "
                    f"{'never reaches' if epochs >= run_epochs else 'barely reaches'} its peak "
                    f"{self.lr:g}. Pass a shorter warmup_epochs (None: at most a tenth of "
                    "the run).",
                    UserWarning,
                    stacklevel=2,
                )
        return min(int(round(epochs * spe)), total)

    def _momentum(self, start: float, end: float) -> float:
        step = self.current_step
        if start == end or step == 0:  # the cosine starts at `start`: no run length needed
            return start
        steps = self.total_steps()
        return cosine_schedule(min(step, steps), steps, start, end)

    def optimizer_and_scheduler(self) -> tuple[torch.optim.Optimizer, Any]:
        """The recipe's LARS optimizer and its per-step warm-up + cosine ``LambdaLR``.

        Call ``scheduler.step()`` after every ``optimizer.step()`` in a plain loop (the
        Trainer does it when it gets them from :meth:`configure_optimizers`).
        """
        self._run = None  # a new fit may have a new length
        trainable = {id(p) for p in self.parameters() if p.requires_grad}
        decay, no_decay = get_weight_decay_parameters([self])
        groups = [
            {
                "name": "weights",
                "params": [p for p in decay if id(p) in trainable],
                "weight_decay": self.weight_decay,
                "lr": self.lr,
            },
            {
                "name": "biases_and_norms",
                "params": [p for p in no_decay if id(p) in trainable],
                "weight_decay": 0.0,
                "lr": self.lr * 0.005 / 0.2,
            },
        ]
        optimizer = LARS(groups, lr=self.lr, momentum=0.9, trust_coefficient=0.02)
        total, warmup = self.total_steps(), self.warmup_steps()

        def factor(step: int) -> float:
            return _warmup_cosine(step, total, warmup)

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.optimizer_and_scheduler()
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]


class SimCLR(_Method):
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
        losses = [self.criterion(z[i], z[j]) for i, j in _pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class MoCoV2(_Method):
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
        pairs = _pairs(len(q), symmetric=False)
        queries = torch.cat([q[j] for _, j in pairs])
        keys = torch.cat([k[i] for i, _ in pairs])
        return 2.0 * self.criterion(queries, keys)


class NNCLR(_Method):
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
        pairs = _pairs(len(z), symmetric=False)
        return torch.stack([self.criterion(nn_[i], p[j]) for i, j in pairs]).mean()


class BYOL(_Method):
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
        pairs = _pairs(len(p), symmetric=False)
        losses = [2.0 + 2.0 * self.criterion(p[j], t[i]) for i, j in pairs]
        return 2.0 * torch.stack(losses).mean()


class SimSiam(_Method):
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
        pairs = _pairs(len(z), symmetric=False)
        losses = [2.0 + 2.0 * self.criterion(p[j], z[i].detach()) for i, j in pairs]
        return 2.0 * torch.stack(losses).mean()


class AlignUniform(_Method):
    """Wang & Isola (ICML 2020): ``L_A + lam * (L_U(z_1) + L_U(z_2)) / 2``, ``t = 2``, lam 1.

    lightly's ``HypersphereLoss(t=2, lam=1, alpha=2)`` where lightly has it, else
    :class:`w2reg.AlignUniformLoss` (the same objective); projector 512 -> 2048 -> 2048 ->
    256. ``loss = mean over view pairs``.

    Default W2 weight: ``DEFAULTS["align_uniform"]`` (0.2, ours; the argument is there).
    """

    method_key = "align_uniform"

    def __init__(self, *, lam: float = 1.0, t: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.projection_head = projection_mlp(
            self.feature_dim, self.hparams.proj_hidden_dim, self.proj_output_dim
        )
        self.criterion = _AlignUniformLoss(t=t, lam=lam, alpha=2.0)

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        # float32: lightly's HypersphereLoss uses torch.pdist, which has no bf16/fp16 kernels
        z = [self.project(x).float() for x in views]
        losses = [self.criterion(z[i], z[j]) for i, j in _pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class BarlowTwins(_Method):
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
        losses = [self.criterion(z[i], z[j]) for i, j in _pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


class ZeroCL(_Method):
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
        self._loss_fn = zero_cl_loss

    def ssl_loss(self, views: list[Tensor]) -> Tensor:
        z = [self.project(x) for x in views]
        losses = [self._loss_fn(z[i], z[j]) for i, j in _pairs(len(z), symmetric=True)]
        return torch.stack(losses).mean()


# -- the W2 variants ---------------------------------------------------------------------------
def _configured_weight(model: nn.Module) -> WeightLike:
    """The ``w2_weight`` given to the constructor, else the class's documented default."""
    weight = model.__dict__.get("_w2_weight")
    return model.default_w2_weight if weight is None else weight  # type: ignore[return-value]


def _w2_variant(cls: type[_Method]) -> type[_Method]:
    base = regularize_class(cls, head="projection_head", weight=_configured_weight)

    def __init__(
        self: Any, *, w2_weight: WeightLike | None = None, w2_method: str = "auto", **kwargs: Any
    ) -> None:
        check_method(w2_method, "w2_method")
        # Set before nn.Module.__init__ runs; read by _configured_weight once the model is
        # built. object.__setattr__ keeps it out of the module tree and the hyperparameters.
        object.__setattr__(self, "_w2_weight", w2_weight)
        base.__init__(self, **kwargs)
        # one switch for DDP: the criterion and the W2 term both use the global batch
        self.w2reg.loss.gather_distributed = self.gather_distributed
        self.w2reg.loss.method = w2_method

    name = f"{cls.__name__}W2"
    variant = type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": (
                f"{cls.__name__} + the W2 uniformity term on ``projection_head`` "
                "(Fang et al., ICLR 2024).\n\n"
                "Takes the arguments of the plain class, ``w2_weight`` (a number or a\n"
                "w2reg Schedule; ``None``: the class's ``default_w2_weight``) and\n"
                '``w2_method`` (see :func:`w2reg.w2_uniformity`; default ``"auto"``).\n\n'
                f"{cls.__doc__ or ''}"
            ),
        },
    )
    return variant


SimCLRW2 = _w2_variant(SimCLR)
MoCoV2W2 = _w2_variant(MoCoV2)
NNCLRW2 = _w2_variant(NNCLR)
BYOLW2 = _w2_variant(BYOL)
SimSiamW2 = _w2_variant(SimSiam)
AlignUniformW2 = _w2_variant(AlignUniform)
BarlowTwinsW2 = _w2_variant(BarlowTwins)
ZeroCLW2 = _w2_variant(ZeroCL)

_PLAIN = (SimCLR, MoCoV2, NNCLR, BYOL, SimSiam, AlignUniform, BarlowTwins, ZeroCL)
_W2 = (SimCLRW2, MoCoV2W2, NNCLRW2, BYOLW2, SimSiamW2, AlignUniformW2, BarlowTwinsW2, ZeroCLW2)

#: The plain method classes by their keys, in the order of the paper's tables
#: (:data:`w2reg.adapters.defaults.PAPER_METHODS`, the one list of the eight).
METHODS: dict[str, type[_Method]] = {
    key: c for key in PAPER_METHODS for c in _PLAIN if c.method_key == key
}

#: The W2-regularized classes, same keys.
W2_METHODS: dict[str, type[_Method]] = {
    key: c for key in PAPER_METHODS for c in _W2 if c.method_key == key
}


def create_model(
    method: str,
    *,
    w2: bool = True,
    w2_weight: WeightLike | None = None,
    w2_method: str = "auto",
    batch_size: int = 256,
    max_epochs: int = 500,
    lr: float | None = None,
    **kwargs: Any,
) -> LightningModule:
    """One of the eight methods, with (default) or without the W2 term.

    Args:
        method: a key of :data:`METHODS` (``"simclr"``, ``"mocov2"``, ``"nnclr"``,
            ``"byol"``, ``"simsiam"``, ``"align_uniform"``, ``"barlow_twins"``, ``"zero_cl"``).
        w2: return the ``...W2`` class (``False``: the plain method).
        w2_weight: number or :class:`w2reg.Schedule`; ``None`` -> the method's default, its
            entry of :data:`w2reg.adapters.defaults.DEFAULTS` (the paper's four, our four
            with their arguments; Barlow Twins' decays over ``max_epochs``).
        w2_method: how W2's nuclear norm is computed (``"auto"``, ``"exact"``,
            ``"iterative"``, ``"eigh32"``; see :func:`w2reg.w2_uniformity`).
        batch_size: training batch size (scales the learning rate).
        max_epochs: planned epochs; give the ``Trainer`` the same.
        lr: weights' learning rate (``None``: ``0.2 * batch_size / 256``).
        **kwargs: passed to the class (``backbone``, ``feature_dim``, ``proj_hidden_dim``,
            ``proj_output_dim``, ``pred_hidden_dim``, ``memory_bank_size``, ``temperature``...).
    """
    key = method.lower().replace("-", "_") if isinstance(method, str) else method
    if key not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    common = dict(batch_size=batch_size, max_epochs=max_epochs, lr=lr, **kwargs)
    if not w2:
        if w2_weight is not None:
            raise ValueError(f"w2_weight={w2_weight!r} was given with w2=False")
        return METHODS[key](**common)
    return W2_METHODS[key](w2_weight=w2_weight, w2_method=w2_method, **common)

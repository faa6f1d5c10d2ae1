"""The paper's training recipe as a LightningModule base class, from lightly's parts.

Common recipe of the ready models (Fang et al., ICLR 2024, Sec. 5, and its reference code,
github.com/statsle/WassersteinSSL):

* backbone: torchvision ResNet-18, CIFAR variant (:func:`w2reg.adapters.backbones.cifar_resnet18`),
  512-d features; ``forward(x)`` returns them, shape ``(B, 512)``;
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
passed through the online branch).

Under a Lightning ``Trainer`` the schedules (learning rate, momentum) follow the trainer's
steps and epochs. In a plain PyTorch loop give the model the run's length, ``max_epochs`` and
``steps_per_epoch``; it then counts its own steps (one optimizer step per ``training_step``
call) and reports its epoch (:meth:`RecipeModel.training_progress`)::

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

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from w2reg._validation import check_positive_int

from ._imports import lightning, missing
from ._lightning import steps_per_epoch
from .backbones import cifar_resnet18

try:
    from lightly.models.modules.heads import ProjectionHead
    from lightly.models.utils import get_weight_decay_parameters
    from lightly.utils.lars import LARS
    from lightly.utils.scheduler import cosine_schedule
except ImportError as err:
    raise missing("w2reg.adapters.lightly", "lightly", err) from err

LightningModule = lightning("w2reg.adapters.lightly", "lightly").LightningModule

__all__ = ["RecipeModel", "pairs", "projection_mlp", "views_of"]


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


def views_of(batch: Any) -> list[Tensor]:
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


def pairs(n_views: int, symmetric: bool) -> list[tuple[int, int]]:
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


class RecipeModel(LightningModule):
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
        gather_distributed: gather across ranks (DDP) in lightly's criterion (and, in the
            regularized classes, for the term: statistics of the global batch).
    """

    #: The method's key in :data:`w2reg.adapters.defaults.DEFAULTS` (and ``MODELS``).
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
        ):
            check_positive_int(value, arg)
        if steps_per_epoch is not None:
            check_positive_int(steps_per_epoch, "steps_per_epoch")
        if warmup_epochs is not None and (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, (int, float))
            or not math.isfinite(warmup_epochs)
            or warmup_epochs < 0
        ):
            raise ValueError(f"warmup_epochs must be None or a number >= 0, got {warmup_epochs!r}")
        self.save_hyperparameters(ignore=["backbone"])
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
        views = views_of(batch)
        loss = self.ssl_loss(views)
        if self._attached_trainer() is None:  # a plain loop: the model counts its steps
            self._plain_steps += 1
            return loss
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

    def training_progress(self) -> tuple[int, int] | None:
        """``(epoch, max_epochs)`` of a plain loop, from this model's own step count.

        ``None`` under a Trainer (its epoch counts) or without ``steps_per_epoch``. Anything
        that follows epochs (an epoch-based weight schedule) reads it.
        """
        if self._attached_trainer() is not None or self.steps_per_epoch is None:
            return None
        epoch = min(self._plain_steps // self.steps_per_epoch, self.max_epochs - 1)
        return epoch, self.max_epochs

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
                per_epoch = steps_per_epoch(trainer, _batches_per_epoch(trainer))
                if per_epoch is not None:
                    spe = float(per_epoch)
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

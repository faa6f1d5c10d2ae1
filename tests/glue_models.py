"""Models, data and helpers shared by the held-out glue tests (``test_*glue*.py``).

The two LightningModules are written the way lightly's own examples write them
(``examples/pytorch_lightning/simclr.py`` and ``byol.py`` of lightly: a ``backbone``, a
``projection_head``, momentum copies made with ``copy.deepcopy``, a lightly criterion, the
example's ``training_step``), with a tiny backbone so a step takes milliseconds on a CPU.
Everything here is module-level, so instances pickle into fresh processes (``ddp_spawn``,
``torch.load`` in a subprocess).
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import torch
from gloo_teardown import end_process_group
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from quiet_trainer import lightning
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

B = 8  # rows per view and step
DIM = 8  # projection width


def tiny_backbone() -> nn.Module:
    """``Conv -> ReLU -> global pool``: ``(B, 3, 32, 32) -> (B, 8, 1, 1)``."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
    )


class SimCLR(lightning.LightningModule):
    """lightly's ``examples/pytorch_lightning/simclr.py`` with a tiny backbone."""

    def __init__(self):
        super().__init__()
        self.backbone = tiny_backbone()
        self.projection_head = SimCLRProjectionHead(8, 16, DIM)
        self.criterion = NTXentLoss()

    def forward(self, x):
        x = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(x)
        return z

    def training_step(self, batch, batch_index):
        (x0, x1) = batch[0]
        z0 = self.forward(x0)
        z1 = self.forward(x1)
        loss = self.criterion(z0, z1)
        return loss

    def configure_optimizers(self):
        optim = torch.optim.SGD(self.parameters(), lr=0.06)
        return optim


class BYOL(lightning.LightningModule):
    """lightly's ``examples/pytorch_lightning/byol.py`` with a tiny backbone."""

    def __init__(self):
        super().__init__()
        self.backbone = tiny_backbone()
        self.projection_head = BYOLProjectionHead(8, 16, DIM)
        self.prediction_head = BYOLPredictionHead(DIM, 16, DIM)

        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

        self.criterion = NegativeCosineSimilarity()

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(y)
        p = self.prediction_head(z)
        return p

    def forward_momentum(self, x):
        y = self.backbone_momentum(x).flatten(start_dim=1)
        z = self.projection_head_momentum(y)
        z = z.detach()
        return z

    def training_step(self, batch, batch_idx):
        momentum = cosine_schedule(self.current_epoch, 10, 0.996, 1)
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        (x0, x1) = batch[0]
        p0 = self.forward(x0)
        z0 = self.forward_momentum(x0)
        p1 = self.forward(x1)
        z1 = self.forward_momentum(x1)
        loss = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.06)


EXAMPLES = {"simclr": SimCLR, "byol": BYOL}


# -- the ready models (w2reg.adapters.lightly_methods) with tiny parts ----------------------------
def ready_backbone() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def ready_kwargs(method: str, **extra: Any) -> dict[str, Any]:
    """Constructor arguments of a tiny ready model (momentum constant: no run length needed
    outside a Trainer)."""
    kw: dict[str, Any] = dict(
        backbone=ready_backbone(), feature_dim=8, proj_hidden_dim=16, proj_output_dim=DIM
    )
    if method in ("mocov2", "nnclr"):
        kw["memory_bank_size"] = 64
    if method in ("nnclr", "byol", "simsiam"):
        kw["pred_hidden_dim"] = 16
    if method == "mocov2":
        kw["momentum_end"] = 0.99
    kw.update(extra)
    return kw


# -- data ------------------------------------------------------------------------------------------
class RandomViews(Dataset):
    """``([view_0, view_1], 0)`` samples of random 32x32 images, as a lightly transform gives."""

    def __init__(self, n: int = 2 * B, seed: int = 0, dtype: torch.dtype = torch.float32):
        g = torch.Generator().manual_seed(seed)
        self.views = [torch.randn(n, 3, 32, 32, generator=g).to(dtype) for _ in range(2)]

    def __len__(self) -> int:
        return len(self.views[0])

    def __getitem__(self, i: int):
        return [v[i] for v in self.views], 0


def loader(n: int = 2 * B, batch_size: int = B, **kw: Any) -> DataLoader:
    return DataLoader(RandomViews(n, **kw), batch_size=batch_size, drop_last=True)


def batch_of(n: int = B, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple:
    """One ``(views, targets)`` batch of ``n`` rows per view."""
    data = RandomViews(n, seed=seed, dtype=dtype)
    return [v.clone() for v in data.views], torch.zeros(n, dtype=torch.long)


def online_projections(model: nn.Module, views: list[Tensor]) -> Tensor:
    """``projection_head(backbone(v))`` of every view, concatenated, without gradients
    (train-mode batch norm: the rows the step itself computes)."""
    with torch.no_grad():
        return torch.cat([model.projection_head(model.backbone(v).flatten(1)) for v in views])


# -- user terms and weights (module level: they pickle) -------------------------------------------
def spread(z: Tensor) -> Tensor:
    """A user's term: the mean per-dimension variance of the raw projections."""
    return z.var(dim=0).mean()


def weight_of_model(model: nn.Module) -> float:
    """A user's weight function ``(model) -> weight`` (module level: it pickles)."""
    return 0.25 * len(list(model.projection_head.parameters())) / 6


# -- multi-process helpers -------------------------------------------------------------------------
def watchdog(seconds: float) -> None:
    """End this worker with exit code 3 if it is still running after ``seconds`` (a collective
    that never returns must fail the test, not hang it)."""
    import threading

    timer = threading.Timer(seconds, os._exit, (3,))
    timer.daemon = True
    timer.start()


def leave() -> None:
    """End a worker that succeeded without tearing gloo down (tests/test_distributed.py)."""
    torch.distributed.barrier()
    os._exit(0)


class DestroyProcessGroup(lightning.Callback):
    """Tear gloo down before a ``ddp_spawn`` worker exits: left alive, on torch 2.14 / Python
    3.13 the worker aborts at exit ("terminate called without an active exception") in about
    1 of 3 runs, with or without w2reg. One thread per worker (two processes on a small
    machine: no oversubscription)."""

    def setup(self, trainer, pl_module, stage):
        torch.set_num_threads(1)

    def teardown(self, trainer, pl_module, stage):
        end_process_group()  # Lightning's ddp_spawn leaves the group alive (tests/gloo_teardown.py)


def close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def settings_of(model: nn.Module) -> dict[str, Any]:
    """What a regularized model computes with, read from its regularizer (``model.w2reg``):
    head, weight schedule (type, parameters; not its position), method, normalize, term and
    gathering. Read with ``getattr`` so the same helper reads the 0.1 glue (354286e)."""
    reg = model.w2reg
    loss = reg.loss
    term = getattr(loss, "term", None)
    schedule = dict(loss.schedule.state_dict())
    schedule.pop("epoch", None)
    schedule.pop("total_epochs", None)
    return {
        "head": reg.head_name,
        "schedule": schedule,
        "method": getattr(term, "method", getattr(loss, "method", None)),
        "normalize": getattr(term, "normalize", getattr(loss, "normalize", None)),
        "term": getattr(term, "name", "w2"),
        "gather_distributed": loss.gather_distributed,
    }

"""Real stable-pretraining objects for the spt tests: tiny modules, fake two-view data, a quiet
Trainer. Nothing is mocked: the modules are ``spt.Module`` built from spt's forward functions
and spt's method classes, trained by spt's own ``training_step``.

Imported by the ``test_spt_*.py`` files after they ``importorskip("stable_pretraining")``.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import pytest
import stable_pretraining as spt
import torch
from stable_pretraining import forward as spt_forward
from stable_pretraining import losses
from stable_pretraining.backbone import TeacherStudentWrapper
from torch import nn

B = 8  #: images per batch (two views each)
FEATURES = 16  #: backbone output
PROJ = 6  #: projector output


@pytest.fixture(autouse=True)
def quiet_spt(tmp_path_factory: pytest.TempPathFactory) -> None:
    """spt's logging at ERROR, no progress bar, its cache in a temporary folder instead of
    ~/.cache/stable-pretraining, and its default callbacks but the environment dump.

    ``EnvironmentDumpCallback`` inventories every installed package at each ``fit`` (1.4 s of
    a 1.5 s tiny fit here, 17 times the rest); :data:`WITH_ENV_DUMP` turns it back on (the
    DDP worker and one test keep spt's full default set)."""
    spt.set(
        verbose="ERROR",
        progress_bar="none",
        cache_dir=str(tmp_path_factory.getbasetemp() / "spt-cache"),
        default_callbacks={"env_dump": False},
    )


#: ``spt.set(**WITH_ENV_DUMP)``: all of spt's default callbacks, as a user's Trainer gets them
WITH_ENV_DUMP = {"default_callbacks": {"env_dump": True}}


class Views(torch.utils.data.Dataset):
    """``{"views": [{"image", "label"}, {"image", "label"}]}`` items (what spt's
    ``MultiViewTransform`` gives), the same for every ``seed``; ``views=False``: one view."""

    def __init__(self, n: int = B, seed: int = 0, views: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 8, 8, generator=g)
        self.noise = 0.3 * torch.randn(2, n, 3, 8, 8, generator=g)
        self.labels = torch.arange(n) % 3
        self.views = views

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not self.views:
            return {"image": self.images[i], "label": self.labels[i]}
        return {
            "views": [
                {"image": self.images[i] + self.noise[v, i], "label": self.labels[i]}
                for v in range(2)
            ]
        }


def loader(n: int = B, seed: int = 0, views: bool = True) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(Views(n, seed, views), batch_size=B, shuffle=False)


def backbone() -> nn.Module:
    """A tiny CNN giving (N, FEATURES); no BatchNorm, so a (1, 3, 224, 224) probe works."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, FEATURES),
    )


def projector() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 12), nn.ReLU(), nn.Linear(12, PROJ))


SGD = {"optimizer": {"type": "SGD", "lr": 0.5}}


def _fn(name: str) -> Callable[..., Any]:
    """spt's forward function ``name`` (0.1.8: ``forward.simclr``; 0.1.7: ``simclr_forward``)."""
    fn = getattr(spt_forward, name, None)
    return fn if callable(fn) else getattr(spt_forward, f"{name}_forward")


def from_forward(name: str, temperature: float = 0.5) -> spt.Module:
    """``spt.Module`` from spt's forward function ``name``, as spt's docstrings build them."""
    common: dict[str, Any] = {"forward": _fn(name), "optim": copy.deepcopy(SGD)}
    if name == "simclr":
        return spt.Module(
            backbone=backbone(),
            projector=projector(),
            simclr_loss=losses.NTXEntLoss(temperature=temperature),
            **common,
        )
    if name == "byol":
        return spt.Module(
            backbone=TeacherStudentWrapper(backbone()),
            projector=TeacherStudentWrapper(projector()),
            predictor=nn.Linear(PROJ, PROJ),
            byol_loss=losses.BYOLLoss(),
            **common,
        )
    if name == "nnclr":
        return spt.Module(
            backbone=backbone(),
            projector=projector(),
            predictor=nn.Linear(PROJ, PROJ),
            nnclr_loss=losses.NTXEntLoss(temperature=temperature),
            hparams={"support_set_size": 4 * B, "projection_dim": PROJ},
            **common,
        )
    if name == "barlow_twins":
        return spt.Module(
            backbone=backbone(),
            projector=projector(),
            barlow_loss=losses.BarlowTwinsLoss(),
            **common,
        )
    if name == "vicreg":
        return spt.Module(
            backbone=backbone(), projector=projector(), vicreg_loss=losses.VICRegLoss(), **common
        )
    raise KeyError(name)


def two_views(self: spt.Module, batch: dict[str, Any], stage: str) -> dict[str, Any]:
    """The ``(batch, stage)`` forward a method class trains through (spt 0.1.7 / 0.1.8's
    classes take ``forward(view1, view2)``; spt's benchmark scripts attach one like this)."""
    if "views" not in batch:  # validation: one view, no loss
        out = type(self).forward(self, batch["image"])
        return {"embedding": out.embedding, "label": batch["label"]}
    v1, v2 = (view["image"] for view in batch["views"])
    out = type(self).forward(self, v1, v2)
    return {"loss": out.loss, "embedding": out.embedding.detach()}


def from_class(name: str) -> spt.Module:
    """spt's method class ``name`` on the tiny backbone, trained through :func:`two_views`."""
    from stable_pretraining import methods

    small: dict[str, dict[str, Any]] = {
        "SimCLR": {"projector_dims": (12, PROJ)},
        "BYOL": {"projector_dims": (12, PROJ), "predictor_dims": (12, PROJ)},
        "MoCov2": {"projector_dims": (12, PROJ), "queue_length": 4 * B},
        "NNCLR": {"projector_dims": (12, PROJ), "predictor_hidden_dim": 12, "queue_length": 4 * B},
        "SimSiam": {"projector_dim": PROJ, "predictor_hidden_dim": 4},
        "BarlowTwins": {"projector_dims": (12, PROJ)},
        "VICReg": {"projector_dims": (12, PROJ)},
    }
    module = getattr(methods, name)(backbone(), **small[name])
    module.forward = types.MethodType(two_views, module)
    module.optim = copy.deepcopy(SGD)
    return module


FORWARDS = ("simclr", "byol", "nnclr", "barlow_twins", "vicreg")
CLASSES = ("SimCLR", "BYOL", "MoCov2", "NNCLR", "SimSiam", "BarlowTwins", "VICReg")


def build(kind: str) -> spt.Module:
    """``"forward:simclr"`` or ``"class:BYOL"``."""
    how, name = kind.split(":")
    return from_forward(name) if how == "forward" else from_class(name)


def trainer(**kw: Any) -> pl.Trainer:
    """A CPU Trainer without logger, checkpoints, bars or sanity steps (spt's default
    callbacks, which its entry point adds to every Trainer, stay: they are what users get)."""
    args: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    args.update(kw)
    return pl.Trainer(**args)


class Steps(pl.Callback):
    """Records the loss spt's ``training_step`` backpropagated (its returned state's)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.losses.append(outputs["loss"].detach().double())


def keep_outputs(module: nn.Module) -> list[torch.Tensor]:
    """The outputs ``module`` computes with gradients, from now on (an independent record)."""
    kept: list[torch.Tensor] = []

    def hook(mod: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if torch.is_grad_enabled() and output.requires_grad:
            kept.append(output.detach().double().clone())

    module.register_forward_hook(hook)
    return kept

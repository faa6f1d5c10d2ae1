"""Tiny solo-learn models for the tests: a tiny backbone and cfgs built like solo's own tests.

solo-learn's tests (tests/methods/utils.py) build models from a plain OmegaConf cfg; so do
these. :class:`TinyBackbone` (16 features) makes a training step take milliseconds; register
it in solo's backbone table (``BaseMethod._BACKBONES[name] = factory``) under the name the cfg
gives (:func:`make_cfg`'s ``backbone``).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

BATCH = 4
NUM_CLASSES = 3

#: Method-specific keys of the tiny cfgs (the rest come from solo's defaults).
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    "simclr": {"temperature": 0.2},
    "mocov2plus": {"temperature": 0.2, "queue_size": 8},
    "nnclr": {"temperature": 0.2, "pred_hidden_dim": 16, "queue_size": 8},
    "byol": {"pred_hidden_dim": 16},
    "simsiam": {"pred_hidden_dim": 16},
    "align_uniform": {},
    "barlow_twins": {},
    "zero_cl": {},
    "vicreg": {},
    "swav": {"temperature": 0.1, "num_prototypes": 10, "queue_size": 0},
}
MOMENTUM = {"mocov2plus", "byol"}


class TinyBackbone(nn.Module):
    """A 3 -> 8 channel conv and a linear layer: 16 features, any image size."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def make_cfg(
    method: str,
    *,
    backbone: str,
    max_epochs: int = 3,
    small_crops: int = 0,
    **kwargs: Any,
) -> Any:
    """A tiny cfg for ``method`` (``<name>`` or ``<name>_w2``); ``kwargs`` go to method_kwargs."""
    base = method[: -len("_w2")] if method.endswith("_w2") else method
    cfg: dict[str, Any] = {
        "name": "test",
        "method": method,
        "backbone": {"name": backbone},
        "data": {
            "dataset": "custom",
            "train_path": ".",
            "val_path": None,
            "format": "image_folder",
            "num_workers": 0,
            "num_large_crops": 2,
            "num_small_crops": small_crops,
            "num_classes": NUM_CLASSES,
        },
        "optimizer": {
            "name": "lars",
            "batch_size": BATCH,
            "lr": 0.3,
            "classifier_lr": 0.1,
            "weight_decay": 1e-5,
            "kwargs": {"momentum": 0.9},
        },
        "scheduler": {"name": "warmup_cosine", "warmup_epochs": 0},
        "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False},
        "performance": {"disable_channel_last": True},
        "max_epochs": max_epochs,
        "devices": 1,
        "accelerator": "cpu",
        "num_nodes": 1,
        "method_kwargs": {
            "proj_hidden_dim": 16,
            "proj_output_dim": 8,
            **METHOD_KWARGS.get(base, {}),
            **kwargs,
        },
    }
    if base in MOMENTUM:
        cfg["momentum"] = {"base_tau": 0.99, "final_tau": 1.0}
    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg

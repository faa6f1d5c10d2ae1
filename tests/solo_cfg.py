"""Tiny solo-learn models for the tests: a tiny backbone and cfgs built like solo's own tests.

solo-learn's tests (tests/methods/utils.py) build models from a plain OmegaConf cfg; so do
these. :class:`TinyBackbone` (16 features) makes a training step take milliseconds; register
it in solo's backbone table (``BaseMethod._BACKBONES[name] = factory``) under the name the cfg
gives (:func:`make_cfg`'s ``backbone``). :data:`RULE_CASES` are the settings rule's cases
that both solo-learn APIs are tested on (test_solo_adapter.py, test_solo_legacy.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from w2reg.adapters.defaults import LU_RELATIVE_WEIGHT

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


def tiny_backbone(method: str, **kwargs: Any) -> nn.Module:
    """A backbone factory of solo's table (module level: a model holding it pickles)."""
    return TinyBackbone()


@contextmanager
def backbone(name: str, factory: Callable[..., nn.Module] = tiny_backbone) -> Iterator[None]:
    """``factory`` in solo-learn's backbone table under ``name`` while the block runs."""
    from solo.methods.base import BaseMethod

    BaseMethod._BACKBONES[name] = factory
    try:
        yield
    finally:
        BaseMethod._BACKBONES.pop(name, None)


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
    from omegaconf import OmegaConf  # current solo-learn only (solo-learn 1.0.2 has none)

    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


class Views(torch.utils.data.Dataset):
    """solo-learn's pre-training sample format: ``(index, [view_1, view_2], label)``, 16x16."""

    def __init__(self, n: int = 4 * BATCH) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, list[torch.Tensor], int]:
        g = torch.Generator().manual_seed(i)
        return i, [torch.randn(3, 16, 16, generator=g) for _ in range(2)], i % NUM_CLASSES


def loader(n: int = 4 * BATCH) -> torch.utils.data.DataLoader:
    """Batches of :data:`BATCH` :class:`Views`, the last incomplete one dropped."""
    return torch.utils.data.DataLoader(Views(n), batch_size=BATCH, drop_last=True)


def trainer(pl: Any, **kwargs: Any) -> Any:
    """A quiet one-CPU ``pl.Trainer`` (``pl``: the Lightning package solo-learn uses)."""
    quiet = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**quiet, **kwargs})


#: The one default-weight rule (w2reg.adapters.solo_weights.w2_settings), as both solo-learn
#: APIs must apply it: (method, W2 keys and method keys given, expected (a_max, a_min)).
#: A constant default stays constant at the chosen w2_weight; a decaying one keeps its end.
RULE_CASES: list[tuple[str, dict[str, Any], tuple[float, float]]] = [
    ("byol", {"w2_weight": 3.0}, (3.0, 3.0)),  # BYOL's default 0.2 is constant
    ("byol", {"w2_weight": 0.5}, (0.5, 0.5)),
    ("byol", {}, (0.2, 0.2)),
    ("simclr", {"w2_weight": 2.0, "w2_final_weight": 1}, (2.0, 1.0)),
    ("barlow_twins", {"w2_weight": 10.0, "scale_loss": 1.0}, (10.0, 0.0)),  # 30 -> 0 decays
    ("barlow_twins", {"w2_final_weight": 5.0, "scale_loss": 1.0}, (30.0, 5.0)),
    ("barlow_twins", {"w2_final_weight": 0.5, "scale_loss": 0.1}, (3.0, 0.5)),
    ("barlow_twins", {"scale_loss": 0.1}, (3.0, 0.0)),
    # L_U: LU_RELATIVE_WEIGHT x BYOL's 0.2 (defaults.default_weights("byol", "lu")), x 1
    ("byol", {"w2_term": "lu"}, (LU_RELATIVE_WEIGHT * 0.2, LU_RELATIVE_WEIGHT * 0.2)),
    ("simsiam", {"w2_term": "lu", "w2_weight": 0.4}, (0.4, 0.4)),
]

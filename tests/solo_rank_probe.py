"""A user module for the solo-learn entry script's ``--import``, as the multi-process tests use it.

What a user's own module does there, for real, in every rank before ``main_pretrain.py`` runs:

* adds a backbone to solo-learn's backbone table (here :data:`TINY`,
  ``solo_cfg.TinyBackbone``, so that a 2-process CPU run takes seconds instead of minutes);
* adds a method class to ``solo.methods.METHODS`` (here ``rank_probe``: solo-learn's Barlow
  Twins, unchanged but for a record of what each rank computed), so that the entry script's
  ``register(ALL)`` makes ``method=rank_probe_w2`` available in every rank.

The record, per rank and training step, written to ``$W2REG_PROBE_DIR/rank<r>.pt``: the rank,
the world size, the global step, the W2 value and weight the regularizer used in that step,
the rank's own projections (every crop, as the projector produced them) and sample indexes.

``$W2REG_PROBE_CIFAR_SUMS`` (a JSON file ``{"dataset": ..., "checksums": ...}`` from
:func:`cifar_fixture.write`) points torchvision's CIFAR loader at the tiny fixture's MD5s in
every rank, as ``cifar_fixture.use_fixture_checksums`` does in-process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from solo.methods import METHODS
from solo.methods.barlow_twins import BarlowTwins
from solo.methods.base import BaseMethod
from solo_cfg import TinyBackbone
from torch import nn

TINY = "w2reg_probe_tiny"
PROBE_DIR = "W2REG_PROBE_DIR"
CIFAR_SUMS = "W2REG_PROBE_CIFAR_SUMS"


def tiny_backbone(method: str, **kwargs: Any) -> nn.Module:
    return TinyBackbone()


class RankProbe(BarlowTwins):
    """solo-learn's Barlow Twins, recording per rank what it computed in each training step."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._kept: list[torch.Tensor] = []
        self._records: list[dict[str, Any]] = []
        self.projector.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.training and torch.is_grad_enabled():
            self._kept.append(output.detach().double().cpu())

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(*args, **kwargs)
        batch = args[1] if len(args) > 1 else kwargs["batch"]
        regularizer = getattr(self, "w2reg", None)  # set in the _w2 variant
        self._records.append(
            {
                "rank": self.global_rank,
                "world_size": self.trainer.world_size,
                "step": self.global_step,
                "w2": None if regularizer is None else float(regularizer.loss.last_value),
                "weight": None if regularizer is None else regularizer.loss.last_weight,
                "z": torch.cat(self._kept),
                "indexes": batch[0].detach().cpu(),
            }
        )
        self._kept = []
        out = Path(os.environ[PROBE_DIR]) / f"rank{self.global_rank}.pt"
        torch.save(self._records, out)


def _use_fixture_checksums() -> None:
    path = os.environ.get(CIFAR_SUMS)
    if not path:
        return
    from torchvision import datasets

    spec = json.loads(Path(path).read_text())
    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[spec["dataset"]]
    for attr in ("train_list", "test_list", "meta"):
        setattr(cls, attr, spec["checksums"][attr])


BaseMethod._BACKBONES[TINY] = tiny_backbone
METHODS["rank_probe"] = RankProbe
_use_fixture_checksums()

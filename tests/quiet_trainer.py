"""A quiet CPU ``Trainer`` for the lightly tests, from the package the adapter's models use."""

from __future__ import annotations

from typing import Any

import pytest

try:  # the package the adapter's models subclass: lightning.pytorch, else pytorch_lightning
    import lightning.pytorch as lightning
except ImportError:  # pragma: no cover
    lightning = pytest.importorskip("pytorch_lightning")


def trainer(**kw: Any) -> Any:
    """``lightning.Trainer`` on one CPU without logger, checkpoints, bars or sanity steps."""
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
    return lightning.Trainer(**args)

"""The Python blocks of README.md and docs/ that need lightly, Lightning or torchvision run.

Collected in the lightly envs (``test_lightly_*.py``), where W2REG_REQUIRE=lightly makes a
skip here fail the env; elsewhere it skips. The convention: tests/doc_snippets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightly", reason="the lightly snippets need lightly")
pytest.importorskip("lightning.pytorch", reason="the lightly snippets use lightning.pytorch")
pytest.importorskip("torchvision", reason="the lightly snippets need torchvision")

from doc_snippets import page_names, parametrize_pages, run_page  # noqa: E402


def test_the_pages_with_lightly_snippets() -> None:
    assert page_names("lightly") >= {"README.md", "docs/lightly.md", "docs/monitoring.md"}


@parametrize_pages("lightly")
def test_lightly_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)


# -- the facts the lightly page states (issue 19: they disagreed with the code) -----------------
ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "lightly.md"


def test_the_one_line_uses_the_tables_simclr_weight_at_its_temperature() -> None:
    """The page's (and the README's) SimCLR weight is ``DEFAULTS["simclr"]``, for the loss
    scale the table states (it said "0.1 / T at T = 0.5" beside a table entry of 0.5 at 0.2)."""
    import re

    from w2reg.adapters.defaults import DEFAULTS, default_weights

    page = PAGE.read_text(encoding="utf-8")
    weight = re.search(r"@w2_regularized\(weight=([0-9.]+)\)", page)
    temperature = re.search(r"NTXentLoss\(temperature=([0-9.]+)\)", page)
    assert weight and temperature, "the page's one line names no weight or no NTXent temperature"
    weight, temperature = float(weight.group(1)), float(temperature.group(1))
    assert weight == default_weights("simclr")[0]
    assert f"T = {temperature:g}" in DEFAULTS["simclr"].loss
    assert f"**{weight:g}**" in page and '`DEFAULTS["simclr"]`' in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"@w2_regularized\(weight=([0-9.]+)\)(.*)", readme)
    assert float(shown.group(1)) == weight and f"T = {temperature:g}" in shown.group(2)


def test_the_logged_keys_are_where_the_page_says(tmp_path) -> None:
    """CSV columns and ``logged_metrics``: ``<name>_step`` and ``<name>_epoch`` only;
    ``callback_metrics`` also the plain names, the epoch's mean (the page named only those)."""
    import csv

    import lightning.pytorch as pl
    import torch
    import torchvision
    import torchvision.transforms as T
    from lightning.pytorch.loggers import CSVLogger

    from w2reg.adapters.backbones import cifar_resnet18
    from w2reg.adapters.lightly import log_keys, w2_regularized
    from w2reg.adapters.lightly_methods import BYOL

    augment = T.Compose([T.RandomResizedCrop(32), T.ToTensor()])
    images = torchvision.datasets.FakeData(
        16, (3, 32, 32), transform=lambda im: [augment(im), augment(im)]
    )
    loader = torch.utils.data.DataLoader(images, batch_size=8, drop_last=True)
    model = w2_regularized(BYOL, weight=0.2)(
        backbone=cifar_resnet18(4), feature_dim=32, proj_hidden_dim=16, proj_output_dim=8,
        pred_hidden_dim=16, max_epochs=1, batch_size=8,
    )  # fmt: skip
    logger = CSVLogger(str(tmp_path))
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=logger, log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, loader)

    names = log_keys("w2")
    assert names == ("train_w2_uniformity", "train_w2_weight", "train_w2_loss")
    forked = {f"{n}_{when}" for n in names for when in ("step", "epoch")}
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        columns = set(next(csv.reader(f)))
    assert forked <= columns and not set(names) & columns
    assert forked <= set(trainer.logged_metrics) and not set(names) & set(trainer.logged_metrics)
    cm = trainer.callback_metrics
    assert forked | set(names) <= set(cm)
    for n in names:
        assert float(cm[n]) == pytest.approx(float(cm[f"{n}_epoch"]))
    bar = set(trainer.progress_bar_metrics)
    assert {"train_w2_uniformity_step", "train_w2_uniformity_epoch"} <= bar

    page = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "`<name>_step` (every logged step) and `<name>_epoch` (the epoch's mean)" in page
    assert "columns of the CSV logger's `metrics.csv`" in page
    assert "Only `trainer.callback_metrics`" in page and "also has the plain names" in page

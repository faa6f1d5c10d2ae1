"""w2reg.adapters.callbacks.UniformityMonitor with real Lightning Trainers and loggers."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

try:  # Lightning 2.x; the compatibility matrix also runs with pytorch_lightning alone
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

    PACKAGE = "lightning"
except ImportError:
    pytest.importorskip("pytorch_lightning", reason="needs lightning or pytorch_lightning")
    from pytorch_lightning import LightningModule, Trainer
    from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

    PACKAGE = "pytorch_lightning"
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import w2reg
from w2reg.adapters.callbacks import KEYS, UniformityMonitor, measure, monitor_class_for


class LightlyStyle(LightningModule):
    """forward() returns backbone features; projection_head is applied in training_step."""

    def __init__(self, rank: int | None = None) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.projection_head = nn.Linear(16, 6)
        if rank is not None:  # a dimensionally collapsed head: output rank `rank`
            with torch.no_grad():
                self.projection_head.weight[rank:] = 0
                self.projection_head.bias[rank:] = 0
        self.train_modes: list[bool] = []

    def forward(self, x):
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        self.train_modes.append(self.training)
        x = batch[0]
        z = self.projection_head(self(x))
        return z.pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class SoloStyle(LightningModule):
    """forward() returns a dict with "z" from ``projector`` (solo-learn's convention)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(8, 16)
        self.projector = nn.Linear(16, 5)

    def forward(self, x):
        feats = self.backbone(x)
        return {"feats": feats, "z": self.projector(feats)}


def _loader(n: int = 64, batch_size: int = 16, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return DataLoader(TensorDataset(x, torch.zeros(n)), batch_size=batch_size)


class TwoViews(Dataset):
    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 8, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return [self.x[i], self.x[i] + 0.1], 0


def _trainer(tmp_path: Path, callbacks, logger=None, max_epochs: int = 3) -> Trainer:
    return Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger if logger is not None else CSVLogger(tmp_path),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_logs_every_n_epochs_and_last(tmp_path):
    model = LightlyStyle()
    monitor = UniformityMonitor(_loader(), every_n_epochs=2)
    trainer = _trainer(tmp_path, [monitor])
    trainer.fit(model, _loader())
    assert [h["epoch"] for h in monitor.history] == [1, 2]  # every 2nd epoch, and the last
    for key in ("w2", "lu", "effective_rank", "sv_top", "sv_tail"):
        assert f"uniformity/{key}" in trainer.callback_metrics
    assert "uniformity/alignment" not in trainer.callback_metrics  # one view per image
    # The training steps ran in train mode; the monitor left the model in train mode.
    assert all(model.train_modes) and model.training
    # The values are the core's, on the normalised projections of the held-out data.
    model.eval()
    with torch.no_grad():
        z = torch.cat([model.projection_head(model(x)) for x, _ in _loader()])
    last = monitor.last
    assert last["n_samples"] == 64
    assert last["w2"] == pytest.approx(float(w2reg.w2_uniformity(z)), rel=1e-5)
    assert last["lu"] == pytest.approx(float(w2reg.wang_isola_uniformity(z)), rel=1e-5)
    assert last["effective_rank"] == pytest.approx(
        float(w2reg.effective_rank(F.normalize(z, dim=1))), rel=1e-4
    )
    assert len(last["spectrum"]) == 6
    assert float(trainer.callback_metrics["uniformity/w2"]) == pytest.approx(last["w2"], rel=1e-5)
    # ...and they reach the logger's files.
    trainer.logger.finalize("success")
    rows = list(csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")))
    logged = [r for r in rows if r.get("uniformity/w2")]
    assert len(logged) == 2


def test_eval_mode_during_measurement_and_embed_fn(tmp_path):
    modes: list[bool] = []

    def embed(model, x):
        modes.append(model.training)
        return model.projection_head(model(x))

    model = LightlyStyle()
    monitor = UniformityMonitor(_loader(), embed_fn=embed, max_samples=40)
    _trainer(tmp_path, [monitor], max_epochs=1).fit(model, _loader())
    assert modes and not any(modes)
    assert model.training
    assert monitor.last["n_samples"] == 40


def test_sees_dimensional_collapse():
    healthy = UniformityMonitor(_loader(256)).compute(LightlyStyle())
    collapsed = UniformityMonitor(_loader(256)).compute(LightlyStyle(rank=1))
    assert collapsed["effective_rank"] < 1.5 < 3 < healthy["effective_rank"]
    assert collapsed["w2"] > healthy["w2"] + 0.3
    assert collapsed["sv_tail"] < 1e-6 < healthy["sv_tail"]


def test_solo_style_dict_output_and_views_give_alignment(tmp_path):
    model = SoloStyle()
    result = UniformityMonitor(DataLoader(TwoViews(), batch_size=8)).compute(model)
    assert result["n_samples"] == 40
    with torch.no_grad():
        x = TwoViews().x
        z0, z1 = model.projector(model.backbone(x)), model.projector(model.backbone(x + 0.1))
    assert result["alignment"] == pytest.approx(float(w2reg.alignment(z0, z1)), rel=1e-5)
    assert result["w2"] == pytest.approx(float(w2reg.w2_uniformity(z0)), rel=1e-5)
    # head=None measures forward's own output ("z" of the dict).
    plain = UniformityMonitor(DataLoader(TwoViews(), batch_size=8), head=None).compute(model)
    assert plain["w2"] == pytest.approx(result["w2"], rel=1e-6)


class FigureWriter:
    def __init__(self) -> None:
        self.figures: list[tuple[str, int]] = []

    def add_figure(self, tag, figure, global_step=None, close=True):
        assert figure.axes
        self.figures.append((tag, global_step))


class FigureLogger(Logger):
    """A Lightning logger whose experiment takes figures, like TensorBoard's SummaryWriter."""

    def __init__(self) -> None:
        super().__init__()
        self._writer = FigureWriter()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self):
        return "figures"

    @property
    def version(self):
        return 0

    @property
    def experiment(self):
        return self._writer

    def log_metrics(self, metrics, step=None):
        self.metrics.append(dict(metrics))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_spectrum_image_to_figure_logger_and_save_dir(tmp_path):
    logger = FigureLogger()
    monitor = UniformityMonitor(_loader(), save_dir=tmp_path / "spectra", on_train_start=True)
    _trainer(tmp_path, [monitor], logger=logger, max_epochs=2).fit(LightlyStyle(), _loader())
    assert [tag for tag, _ in logger._writer.figures] == ["uniformity/spectrum"] * 3
    assert sorted(p.name for p in (tmp_path / "spectra").iterdir()) == [
        "spectrum_epoch0000.png",
        "spectrum_epoch0001.png",
        "spectrum_start.png",
    ]
    assert any("uniformity/w2" in m for m in logger.metrics)


def test_torch_tensorboard_writer(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoardLogger needs tensorboard")
    monitor = UniformityMonitor(_loader())
    logger = TensorBoardLogger(tmp_path)
    _trainer(tmp_path, [monitor], logger=logger, max_epochs=1).fit(LightlyStyle(), _loader())
    assert monitor.last is not None


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="head='nope'"):
        UniformityMonitor(_loader(), head="nope").compute(LightlyStyle())
    with pytest.raises(ValueError, match="every_n_epochs"):
        UniformityMonitor(_loader(), every_n_epochs=0)
    with pytest.raises(ValueError, match="dataloader must yield images"):
        UniformityMonitor([("a", "b")]).compute(LightlyStyle())
    with pytest.raises(ValueError, match="at least 2"):
        measure([torch.randn(1, 4)])
    assert set(KEYS) >= {"w2", "lu", "effective_rank", "alignment"}


def test_pytorch_lightning_trainer(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class PLModel(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Linear(8, 16)
            self.projection_head = nn.Linear(16, 4)

        def forward(self, x):
            return self.backbone(x)

        def training_step(self, batch, batch_idx):
            return self.projection_head(self(batch[0])).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    cls = monitor_class_for("pytorch_lightning")
    assert issubclass(cls, pl.Callback)
    monitor = cls(_loader())
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(PLModel(), _loader())
    assert "uniformity/w2" in trainer.callback_metrics
    assert monitor_class_for(PACKAGE) is UniformityMonitor


def test_spectrum_figure_leaves_the_matplotlib_backend_alone(tmp_path):
    """The figure renders headless without switching the user's backend (issue 11)."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('template')\n"
        "from w2reg.adapters.callbacks import spectrum_figure\n"
        f"spectrum_figure([1.0, 0.5, 0.1], title='t').savefig({str(tmp_path / 's.png')!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "template"
    assert (tmp_path / "s.png").stat().st_size > 0


class BrokenLogger(FigureLogger):
    """A logger whose experiment fails for a reason of its own (not a missing package)."""

    @property
    def experiment(self):
        raise RuntimeError("the experiment server refused the run")


def test_a_failing_logger_is_not_swallowed(tmp_path):
    """Only a missing package (ImportError) makes a logger figure-less; other errors surface."""
    from w2reg.adapters.callbacks import _figure_loggers

    good, broken = FigureLogger(), BrokenLogger()
    assert _figure_loggers(Trainer(logger=[good], default_root_dir=tmp_path)) == [good]
    with pytest.raises(RuntimeError, match="server refused"):
        _figure_loggers(Trainer(logger=[good, broken], default_root_dir=tmp_path))

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


# -- arguments are checked when the monitor is made (issue 20), the floor and the alarm (18) --
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prefix": None}, "prefix must be a string"),  # logged 'Nonew2' before
        ({"prefix": 3}, "prefix must be a string"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"every_n_epochs": 1.5}, "every_n_epochs"),
        ({"head": ""}, "head must be"),
        ({"head": 3}, "head must be"),
        ({"embed_fn": "model"}, "embed_fn must be callable"),
        ({"max_samples": 1}, "max_samples"),
        ({"max_samples": 2.5}, "max_samples"),
        ({"lu_max_samples": 1}, "lu_max_samples"),
        ({"lu_max_samples": "all"}, "lu_max_samples"),
        ({"w2_method": "fast"}, "w2_method"),
        ({"log_images": "no"}, "log_images must be True or False"),
        ({"on_train_start": 1}, "on_train_start must be True or False"),
        ({"save_dir": 5}, "save_dir must be"),
        ({"collapse_fraction": 0.0}, "collapse_fraction"),
        ({"collapse_fraction": 1.5}, "collapse_fraction"),
        ({"collapse_fraction": "0.1"}, "collapse_fraction"),
        ({"collapse_fraction": True}, "collapse_fraction"),
    ],
)
def test_every_argument_is_checked_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniformityMonitor(_loader(), **kwargs)


@pytest.mark.parametrize("loader", [None, 5, "images"])
def test_the_dataloader_is_checked_at_construction(loader):
    with pytest.raises(ValueError, match="dataloader must be an iterable of batches"):
        UniformityMonitor(loader)


def test_an_empty_prefix_logs_bare_keys(tmp_path):
    monitor = UniformityMonitor(_loader(), prefix="")
    trainer = _trainer(tmp_path, [monitor], max_epochs=1)
    trainer.fit(LightlyStyle(), _loader())
    assert {"w2", "w2_floor", "effective_rank"} <= set(trainer.callback_metrics)


def test_logs_the_floor_of_its_sample_size(tmp_path):
    monitor = UniformityMonitor(_loader(64), max_samples=48)
    trainer = _trainer(tmp_path, [monitor], max_epochs=1)
    trainer.fit(LightlyStyle(), _loader())
    last = monitor.last
    assert (last["n_samples"], last["dim"]) == (48, 6)
    assert last["w2_floor"] == pytest.approx(w2reg.w2_floor(48, 6), rel=1e-12)
    assert last["w2_above_floor"] == pytest.approx(last["w2"] - last["w2_floor"], abs=1e-12)
    for key in ("w2_floor", "w2_above_floor", "effective_rank"):
        logged = float(trainer.callback_metrics[f"uniformity/{key}"])
        assert logged == pytest.approx(last[key], rel=1e-5, abs=1e-6)


def test_uniform_projections_sit_on_the_floor():
    """A model whose projections are uniform on the sphere scores its floor, not 0."""
    n, m = 1024, 64

    class Uniform(nn.Module):
        def forward(self, x):
            return x

    loader = DataLoader(TensorDataset(torch.randn(n, m, dtype=torch.float64)), batch_size=256)
    result = UniformityMonitor(loader, head=None).compute(Uniform())
    assert result["w2_floor"] == pytest.approx(w2reg.w2_floor(n, m))
    # one measurement's own spread at (1024, 64) is about 0.002 (tests/test_floor.py)
    assert abs(result["w2_above_floor"]) < 0.01 < result["w2"]


def test_collapse_alarm_warns_once(tmp_path):
    """Effective rank below the fraction of min(N, m): one CollapseWarning, not one per epoch."""
    from w2reg.adapters.callbacks import CollapseWarning

    monitor = UniformityMonitor(_loader(), collapse_fraction=0.5)
    with pytest.warns(CollapseWarning, match="effective rank") as record:
        _trainer(tmp_path, [monitor], max_epochs=3).fit(LightlyStyle(rank=1), _loader())
    assert sum(issubclass(w.category, CollapseWarning) for w in record) == 1
    assert monitor.collapse_epoch == 0 and len(monitor.history) == 3
    healthy = UniformityMonitor(_loader(), collapse_fraction=0.2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        _trainer(tmp_path, [healthy], max_epochs=1).fit(LightlyStyle(), _loader())
    assert healthy.collapse_epoch is None


def test_no_per_step_hooks():
    """The monitor works at epoch ends only: nothing runs (or synchronises) in a training step."""
    base = UniformityMonitor.__mro__[-2]  # Lightning's Callback
    for hook in ("on_train_batch_start", "on_train_batch_end", "on_before_backward"):
        assert getattr(UniformityMonitor, hook) is getattr(base, hook), hook


def test_the_split_modules_keep_the_old_names():
    """callbacks.py was split by job (issue 20): its names still import from it."""
    from w2reg import metrics
    from w2reg.adapters import callbacks, embedding

    assert callbacks.measure is metrics.measure and callbacks.KEYS is metrics.KEYS
    assert callbacks.embed_loader is embedding.embed_loader
    assert callbacks.embed_labelled is embedding.embed_labelled
    for name in callbacks.__all__:
        assert hasattr(callbacks, name), name


def test_the_embedding_loop_and_the_metrics_need_no_lightning():
    """adapters/embedding.py and w2reg.metrics import (and run) with Lightning blocked."""
    code = (
        "import sys\n"
        "for name in ('lightning', 'pytorch_lightning', 'lightly'):\n"
        "    sys.modules[name] = None\n"
        "import torch\n"
        "from w2reg.adapters.embedding import embed_loader\n"
        "from w2reg.metrics import measure\n"
        "views = embed_loader(torch.nn.Linear(8, 4), [torch.randn(6, 8)], head=None)\n"
        "print(measure(views)['n_samples'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "6"

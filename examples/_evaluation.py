"""The example scripts' evaluation: kNN, linear probes and the test-set uniformity metrics.

* kNN top-1 (k = 200, t = 0.1, lightly's ``knn_predict``) on L2-normalised backbone
  features, during training (:class:`KNNMonitor`) and after (:func:`knn_accuracy`);
* linear probe with augmentation, as the paper (:func:`linear_probe_class`: lightly's
  ``LinearClassifier`` trained through the frozen backbone, SGD lr 0.3, momentum 0.9, wd
  1e-6, cosine), or on frozen, precomputed features without augmentation
  (:func:`feature_probe`: the same optimizer, seconds instead of a pass through the backbone
  per epoch; what the study uses);
* W2, L_U, effective rank and spectrum of the normalised test-set projections and the
  alignment of two augmented views of every test image (:func:`test_metrics`).

The embedding loop and the every-n-epochs rule are the ones of
``w2reg.adapters.callbacks`` (``embed_labelled``, ``epoch_due``), shared with its
``UniformityMonitor``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

import w2reg
from w2reg.adapters.callbacks import embed_labelled, embed_loader, epoch_due, measure
from w2reg.adapters.lightly_recipe import LightningModule

#: The Lightning package of the ready lightly models ("lightning.pytorch" or
#: "pytorch_lightning"): their Trainer and callbacks must come from it.
LIGHTNING = LightningModule.__module__.split(".core")[0]
_Callback: Any = importlib.import_module(LIGHTNING).Callback


def features(model: nn.Module, loader: DataLoader) -> tuple[Tensor, Tensor]:
    """L2-normalised backbone features ``model(images)`` ``(N, d)`` and targets ``(N,)``."""
    (feats,), targets = embed_labelled(model, loader, head=None)
    return F.normalize(feats, dim=1), targets.long()


def knn_from_features(
    bank: Tensor,
    bank_targets: Tensor,
    feats: Tensor,
    targets: Tensor,
    *,
    num_classes: int,
    k: int = 200,
    t: float = 0.1,
) -> float:
    """Weighted kNN top-1 (%) of normalised ``feats`` against a normalised ``bank``."""
    from lightly.utils.benchmarking import knn_predict

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bank_t = bank.to(device).t().contiguous()
    bank_targets = bank_targets.to(device)
    k = min(k, bank.shape[0])
    correct = 0
    for start in range(0, feats.shape[0], 1024):
        chunk = feats[start : start + 1024].to(device)
        pred = knn_predict(chunk, bank_t, bank_targets, num_classes, k, t)
        correct += int((pred[:, 0].cpu() == targets[start : start + 1024]).sum())
    return 100.0 * correct / max(feats.shape[0], 1)


def knn_accuracy(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    *,
    num_classes: int,
    k: int = 200,
    t: float = 0.1,
) -> float:
    """Weighted kNN top-1 (%) on the backbone features (lightly's ``knn_predict``)."""
    bank, bank_targets = features(model, train_loader)
    feats, targets = features(model, test_loader)
    return knn_from_features(bank, bank_targets, feats, targets, num_classes=num_classes, k=k, t=t)


class KNNMonitor(_Callback):
    """kNN top-1 on the test set every ``every_n_epochs`` epochs, logged as ``val_knn_top1``."""

    def __init__(
        self,
        train_loader: DataLoader,
        test_loader: DataLoader,
        *,
        num_classes: int,
        every_n_epochs: int = 10,
        k: int = 200,
        t: float = 0.1,
    ) -> None:
        super().__init__()
        self.train_loader, self.test_loader = train_loader, test_loader
        self.num_classes, self.every_n_epochs, self.k, self.t = num_classes, every_n_epochs, k, t
        self.history: list[tuple[int, float]] = []

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not epoch_due(trainer, self.every_n_epochs):
            return
        acc = knn_accuracy(
            pl_module,
            self.train_loader,
            self.test_loader,
            num_classes=self.num_classes,
            k=self.k,
            t=self.t,
        )
        self.history.append((int(trainer.current_epoch), acc))
        pl_module.log("val_knn_top1", acc, on_epoch=True, prog_bar=True)


# -- linear probes -------------------------------------------------------------------------------
def linear_probe_class() -> type:
    """lightly's ``LinearClassifier`` with the paper's optimizer.

    lightly's uses SGD lr ``0.1 * batch / 256``, momentum 0.9, no weight decay; the paper
    (Fang et al.) trains the probe for 100 epochs with SGD lr 0.3, momentum 0.9, weight
    decay 1e-6 and a cosine schedule. Only ``configure_optimizers`` changes. Needs
    lightly >= 1.5.20 (the first whose ``LinearClassifier`` takes ``lr``).
    """
    import inspect

    from lightly.utils.benchmarking import LinearClassifier

    if "lr" not in inspect.signature(LinearClassifier.__init__).parameters:
        import lightly

        raise SystemExit(
            f"the linear probe needs lightly >= 1.5.20 (installed: {lightly.__version__}); "
            "upgrade lightly or pass --no-eval"
        )
    from lightly.utils.scheduler import CosineWarmupScheduler

    class PaperLinearProbe(LinearClassifier):
        def __init__(self, *args: Any, weight_decay: float = 1e-6, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.weight_decay = weight_decay

        def configure_optimizers(self) -> Any:  # type: ignore[override]
            optimizer = torch.optim.SGD(
                self.get_trainable_parameters(),
                lr=self.get_effective_lr(),
                momentum=0.9,
                weight_decay=self.weight_decay,
            )
            steps = max(int(self.trainer.estimated_stepping_batches), 1)
            scheduler = CosineWarmupScheduler(optimizer, warmup_epochs=0, max_epochs=steps)
            return [optimizer], [{"scheduler": scheduler, "interval": "step"}]

    return PaperLinearProbe


def feature_probe(
    train_feats: Tensor,
    train_targets: Tensor,
    test_feats: Tensor,
    test_targets: Tensor,
    *,
    num_classes: int,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 0.3,
    weight_decay: float = 1e-6,
    seed: int = 0,
) -> float:
    """Linear-probe top-1 (%) on frozen, precomputed features (no augmentation).

    A ``Linear(d, num_classes)`` on the features standardised with the training set's mean
    and std (what a ``BatchNorm1d`` without affine would do at the end of training), trained
    with the paper's probe optimizer: SGD lr ``0.3 * batch / 256``, momentum 0.9, weight
    decay 1e-6, cosine to 0 over ``epochs`` epochs, cross-entropy.
    """
    g = torch.Generator().manual_seed(seed)
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    x_train, x_test = (train_feats - mean) / std, (test_feats - mean) / std
    y_train = train_targets.long()
    linear = nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(x_train.shape[1])
        linear.weight.uniform_(-bound, bound, generator=g)
        linear.bias.zero_()
    optimizer = torch.optim.SGD(
        linear.parameters(), lr=lr * batch_size / 256, momentum=0.9, weight_decay=weight_decay
    )
    n = x_train.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(linear(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    with torch.no_grad():
        pred = linear(x_test).argmax(1)
    return 100.0 * float((pred == test_targets.long()).float().mean())


# -- the test-set uniformity metrics -----------------------------------------------------------
def test_metrics(
    model: nn.Module,
    test_loader: DataLoader,
    views_loader: DataLoader,
    *,
    lu_max_samples: int | None = 10_000,
) -> dict[str, Any]:
    """Uniformity of the normalised test-set projections and the alignment of two views.

    ``w2``, ``lu`` (on the first ``lu_max_samples`` rows: ``O(N^2)`` memory),
    ``effective_rank``, ``sv_top``, ``sv_tail``, ``spectrum`` and ``n_samples`` of the
    projections of ``test_loader`` (no augmentation; ``w2reg.adapters.callbacks.measure``),
    and ``alignment``: :func:`w2reg.alignment` of two augmented views of every test image
    (``views_loader``).
    """
    result = measure(embed_loader(model, test_loader), lu_max_samples=lu_max_samples)
    view_0, view_1 = embed_loader(model, views_loader)[:2]
    result["alignment"] = float(w2reg.alignment(view_0.double(), view_1.double()))
    return result

"""Shared parts of the CIFAR example scripts: data, transforms, evaluation, paper numbers.

* Data: torchvision's ``CIFAR10`` / ``CIFAR100`` (``download=True`` by default). When the
  files are missing and cannot be downloaded, :func:`load_cifar` raises :class:`DataMissing`
  whose message says where to put them; the scripts turn it into a clean exit.
* Transforms: lightly's (``SimCLRTransform``, ``BYOLTransform``) with CIFAR settings:
  32x32 crops of scale 0.08-1, colour jitter 0.4/0.4/0.2-0.4/0.1, no blur, CIFAR mean/std.
* Evaluation: kNN (k = 200, t = 0.1, lightly's ``knn_predict``) during training as a
  callback and after; a linear probe on frozen backbone features with lightly's
  ``LinearClassifier`` and the paper's optimizer (SGD lr 0.3, momentum 0.9, wd 1e-6, cosine);
  W2, L_U, effective rank and alignment of the normalised projections of the test set
  (``w2reg.adapters.callbacks``).
"""

from __future__ import annotations

import json
import math
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

try:  # the package the lightly adapter's models subclass: `lightning` 2.x, else the old name
    from lightning.pytorch import Callback, LightningModule

    LIGHTNING = "lightning.pytorch"
except ImportError:  # pragma: no cover
    from pytorch_lightning import Callback, LightningModule

    LIGHTNING = "pytorch_lightning"

CIFAR = {
    "cifar10": {
        "classes": 10,
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2470, 0.2435, 0.2616],
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    },
    "cifar100": {
        "classes": 100,
        "mean": [0.5071, 0.4865, 0.4409],
        "std": [0.2673, 0.2564, 0.2762],
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    },
}

METHOD_NAMES = (
    "simclr",
    "mocov2",
    "nnclr",
    "byol",
    "simsiam",
    "align_uniform",
    "barlow_twins",
    "zero_cl",
)

#: Linear-probe top-1 (%) and test-set W2 published by Fang et al. (ICLR 2024),
#: as ``PAPER[method][w2][dataset] = (acc, w2)``; ``None`` where the paper has no such run.
PAPER: dict[str, dict[bool, dict[str, tuple[float, float] | None]]] = {
    "simclr": {False: {"cifar10": (89.85, 1.04), "cifar100": (63.43, 1.05)}},
    "nnclr": {False: {"cifar10": (87.46, 1.23), "cifar100": (54.90, 1.23)}},
    "simsiam": {False: {"cifar10": (86.71, 1.19), "cifar100": (56.10, 1.21)}},
    "align_uniform": {False: {"cifar10": (90.37, 0.94), "cifar100": (65.08, 0.95)}},
    "mocov2": {
        False: {"cifar10": (90.65, 1.06), "cifar100": (60.27, 1.07)},
        True: {"cifar10": (91.41, 0.33), "cifar100": (63.68, 0.28)},
    },
    "byol": {
        False: {"cifar10": (89.53, 1.21), "cifar100": (63.66, 1.20)},
        True: {"cifar10": (90.31, 0.38), "cifar100": (65.16, 0.36)},
    },
    "barlow_twins": {
        False: {"cifar10": (91.16, 0.22), "cifar100": (68.19, 0.23)},
        True: {"cifar10": (91.43, 0.19), "cifar100": (68.47, 0.19)},
    },
    "zero_cl": {
        False: {"cifar10": (91.35, 0.15), "cifar100": (68.50, 0.15)},
        True: {"cifar10": (91.42, 0.14), "cifar100": (68.55, 0.14)},
    },
}


def paper_result(method: str, w2: bool, dataset: str) -> tuple[float, float] | None:
    """``(linear top-1 %, test W2)`` from the paper, or ``None`` if it has no such run."""
    return PAPER.get(method, {}).get(w2, {}).get(dataset)


# -- data ----------------------------------------------------------------------------------------
class DataMissing(RuntimeError):
    """CIFAR is not on disk and could not be downloaded; the message says what to do."""


def missing_message(dataset: str, root: str | Path, reason: str) -> str:
    info = CIFAR[dataset]
    root = Path(root).resolve()
    return (
        f"{dataset.upper()} is not in {root} and could not be downloaded ({reason}).\n"
        f"Download {info['url']}\n"
        f"and either put the archive at {root / str(info['archive'])} (it is extracted on the "
        f"next run) or extract it so that {root / str(info['folder'])}/ exists.\n"
        f"Then rerun with --data-dir {root}."
    )


def load_cifar(dataset: str, root: str | Path, *, train: bool, download: bool = True) -> Dataset:
    """torchvision's CIFAR dataset (PIL images, int targets), or :class:`DataMissing`."""
    from torchvision import datasets

    if dataset not in CIFAR:
        raise ValueError(f"dataset must be one of {sorted(CIFAR)}, got {dataset!r}")
    cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
    try:
        return cls(str(root), train=train, download=download)
    except (urllib.error.URLError, OSError) as exc:  # no network, DNS, refused, disk
        raise DataMissing(missing_message(dataset, root, f"download failed: {exc}")) from None
    except RuntimeError as exc:  # "Dataset not found or corrupted", bad checksum
        reason = str(exc).split(".")[0] if download else "--no-download was given"
        raise DataMissing(missing_message(dataset, root, reason)) from None


class Transformed(Dataset):
    """``(transform(image), target)`` of a base ``(image, target)`` dataset."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Any]) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.base[index]
        return self.transform(image), target


def subset(dataset: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` items (``None`` or ``n >= len``: the dataset)."""
    total = len(dataset)  # type: ignore[arg-type]
    if n is None or n >= total:
        return dataset
    g = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(total, generator=g)[:n].tolist())


def _normalize(dataset: str) -> dict[str, list[float]]:
    return {"mean": list(CIFAR[dataset]["mean"]), "std": list(CIFAR[dataset]["std"])}  # type: ignore[arg-type]


def ssl_transform(method: str, dataset: str) -> Callable[[Any], list[Tensor]]:
    """lightly's two-view transform for ``method`` with CIFAR settings.

    BYOL, BarlowTwins and Zero-CL get BYOL's asymmetric views (solarisation on view 2),
    the others SimCLR's symmetric views; no Gaussian blur at 32x32 (as in the CIFAR recipes
    of lightly's and solo-learn's benchmarks).
    """
    from lightly.transforms import (
        BYOLTransform,
        BYOLView1Transform,
        BYOLView2Transform,
        SimCLRTransform,
    )

    norm = _normalize(dataset)
    if method in ("byol", "barlow_twins", "zero_cl"):
        return BYOLTransform(
            view_1_transform=BYOLView1Transform(input_size=32, gaussian_blur=0.0, normalize=norm),
            view_2_transform=BYOLView2Transform(
                input_size=32, gaussian_blur=0.0, solarization_prob=0.2, normalize=norm
            ),
        )
    return SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0, normalize=norm)


def eval_transform(dataset: str) -> Callable[[Any], Tensor]:
    """ToTensor + CIFAR normalisation (kNN bank, test set, uniformity metrics)."""
    from torchvision import transforms as T

    info = CIFAR[dataset]
    return T.Compose([T.ToTensor(), T.Normalize(info["mean"], info["std"])])


def probe_transform(dataset: str) -> Callable[[Any], Tensor]:
    """Linear-probe training augmentation: random resized crop + horizontal flip."""
    from torchvision import transforms as T

    info = CIFAR[dataset]
    return T.Compose(
        [
            T.RandomResizedCrop(32, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(info["mean"], info["std"]),
        ]
    )


# -- kNN -----------------------------------------------------------------------------------------
@torch.no_grad()
def features(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[Tensor, Tensor]:
    """L2-normalised ``model(images)`` features and targets of a loader (eval mode)."""
    was_training = model.training
    model.eval()
    feats, targets = [], []
    try:
        for images, target, *_ in loader:
            out = model(images.to(device)).flatten(start_dim=1)
            feats.append(F.normalize(out.float(), dim=1))
            targets.append(torch.as_tensor(target).to(device))
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(targets)


def knn_accuracy(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    *,
    num_classes: int,
    k: int = 200,
    t: float = 0.1,
    device: torch.device | None = None,
) -> float:
    """Weighted kNN top-1 (%) on the backbone features (lightly's ``knn_predict``)."""
    from lightly.utils.benchmarking import knn_predict

    if device is None:
        device = next(model.parameters()).device
    bank, bank_targets = features(model, train_loader, device)
    feats, targets = features(model, test_loader, device)
    k = min(k, bank.shape[0])
    correct = 0
    for start in range(0, feats.shape[0], 1024):
        pred = knn_predict(
            feats[start : start + 1024], bank.t().contiguous(), bank_targets, num_classes, k, t
        )
        correct += int((pred[:, 0] == targets[start : start + 1024]).sum())
    return 100.0 * correct / max(feats.shape[0], 1)


class KNNMonitor(Callback):
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
        epoch = int(trainer.current_epoch)
        last = epoch + 1 >= (trainer.max_epochs or 0)
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        acc = knn_accuracy(
            pl_module,
            self.train_loader,
            self.test_loader,
            num_classes=self.num_classes,
            k=self.k,
            t=self.t,
        )
        self.history.append((epoch, acc))
        pl_module.log("val_knn_top1", acc, on_epoch=True, prog_bar=True)


# -- linear probe --------------------------------------------------------------------------------
def linear_probe_class() -> type[LightningModule]:
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


# -- reporting -----------------------------------------------------------------------------------
def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of results rows (measured next to the paper's numbers)."""

    def fmt(v: Any, spec: str) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return format("-", ">" + spec.split(".")[0])
        return format(v, spec)

    head = (
        f"{'dataset':<9}{'method':<14}{'W2':<4}{'linear':>8}{'kNN':>8}{'W2 test':>9}"
        f"{'L_U':>8}{'erank':>8}{'align':>8}  {'paper acc':>9}{'paper W2':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        paper = r.get("paper") or {}
        lines.append(
            f"{r['dataset']:<9}{r['method']:<14}{'yes' if r['w2'] else 'no':<4}"
            f"{fmt(r.get('linear_top1'), '8.2f')}{fmt(r.get('knn_top1'), '8.2f')}"
            f"{fmt(r.get('test_w2'), '9.3f')}{fmt(r.get('test_lu'), '8.3f')}"
            f"{fmt(r.get('test_effective_rank'), '8.1f')}{fmt(r.get('test_alignment'), '8.3f')}"
            f"  {fmt(paper.get('linear_top1'), '9.2f')}{fmt(paper.get('w2'), '9.2f')}"
        )
    return "\n".join(lines)


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))
    return path

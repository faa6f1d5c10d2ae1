"""The example scripts' data: five datasets as RGB PIL images of one size, and the transforms.

========================  ===================================================================
``--dataset``             what is read (``--data-dir``), train / test split
========================  ===================================================================
``cifar10``, ``cifar100``  torchvision's ``CIFAR10`` / ``CIFAR100`` (downloaded only with
                          ``--download``); the official train / test split
``fashion-mnist``         torchvision's ``FashionMNIST`` (28x28 grey, used as RGB at 32x32),
                          from torchvision's layout ``<data-dir>/FashionMNIST/raw/`` or, read
                          in place, the gzipped idx files in ``<data-dir>``, in
                          ``<data-dir>/FashionMNIST/raw/`` or where Debian's
                          ``dataset-fashion-mnist`` installs them
                          (``/usr/share/datasets/fashion-mnist``); the official 60,000 / 10,000
``imagefolder``           torchvision's ``ImageFolder`` (one sub-folder per class, any image
                          size, resized to ``size`` on the short side and centre-cropped):
                          ``<data-dir>/train`` and ``<data-dir>/test`` (or ``val``) when they
                          exist, else a seeded split of ``<data-dir>`` keeping ``test_fraction``
                          of every class for the test set
``fake``                  torchvision's ``FakeData`` (random images made in memory, random
                          labels): 1,024 train and 256 test images, nothing on disk
========================  ===================================================================

Every dataset yields ``(PIL RGB image of size x size, int target)``, so the augmentations
(lightly's ``SimCLRTransform`` / ``BYOLTransform`` with the CIFAR settings), the evaluation
transforms and the evaluation code are the same for all of them; only the normalisation
statistics differ (:data:`DATASETS`).
"""

from __future__ import annotations

import gzip
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

#: Where Debian's ``dataset-fashion-mnist`` package puts the gzipped idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """Facts of one ``--dataset`` choice (``num_classes`` ``None``: read from the folders)."""

    name: str
    num_classes: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    how_to_get: str


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        "cifar10",
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and either put the "
        "archive at {root}/cifar-10-python.tar.gz (it is extracted on the next run) or "
        "extract it so that {root}/cifar-10-batches-py/ exists.",
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "Download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and either put the "
        "archive at {root}/cifar-100-python.tar.gz (it is extracted on the next run) or "
        "extract it so that {root}/cifar-100-python/ exists.",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        10,
        (0.2860, 0.2860, 0.2860),
        (0.3530, 0.3530, 0.3530),
        "Install it offline with `apt-get install dataset-fashion-mnist` (found automatically "
        f"in {DEBIAN_FASHION_MNIST}), or put the four *-idx?-ubyte.gz files in {{root}}, "
        "or let torchvision download it (--download, with network).",
    ),
    "imagefolder": DatasetInfo(
        "imagefolder",
        None,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "Give --data-dir a folder with one sub-folder of images per class (or train/ and "
        "test/ folders of that form).",
    ),
    "fake": DatasetInfo("fake", 10, IMAGENET_MEAN, IMAGENET_STD, "(made in memory)"),
}

#: ``--dataset`` choices.
NAMES = tuple(DATASETS)


class DataMissing(RuntimeError):
    """The dataset is not on disk and could not be downloaded; the message says what to do."""


def missing_message(dataset: str, root: str | Path, reason: str) -> str:
    root = Path(root).resolve()
    label = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}.get(dataset, dataset)
    return (
        f"{label} is not in {root} ({reason}).\n"
        f"{DATASETS[dataset].how_to_get.format(root=root)}\n"
        f"Then rerun with --data-dir {root}."
    )


# -- the base datasets -------------------------------------------------------------------------
class Mapped(Dataset):
    """``(fn(image), target)`` of a base ``(image, target)`` dataset."""

    def __init__(self, base: Dataset, fn: Callable[[Any], Any]) -> None:
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.base[index]
        return self.fn(image), int(target)

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.base, "classes", []))


#: ``Transformed(base, transform)``: the name the training code reads best with.
Transformed = Mapped


class _ToRGB:
    """PIL image -> RGB, short side resized to ``size`` and centre-cropped to a square."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Any) -> Any:
        from torchvision.transforms import functional as TF

        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = TF.center_crop(TF.resize(image, self.size), [self.size, self.size])
        return image


def load_cifar(dataset: str, root: str | Path, *, train: bool, download: bool = True) -> Dataset:
    """torchvision's CIFAR dataset (PIL images, int targets), or :class:`DataMissing`."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[dataset]
    try:
        return cls(str(root), train=train, download=download)
    except (urllib.error.URLError, OSError) as exc:  # no network, DNS, refused, disk
        raise DataMissing(
            missing_message(dataset, root, f"could not be downloaded: {exc}")
        ) from None
    except RuntimeError as exc:  # "Dataset not found or corrupted", bad checksum
        reason = str(exc).split(".")[0] if download else "not downloaded: --download was not given"
        raise DataMissing(missing_message(dataset, root, reason)) from None


def read_idx_gz(path: str | Path) -> Tensor:
    """A gzipped idx file of unsigned bytes (MNIST's format) as a uint8 tensor.

    Header: two zero bytes, type ``0x08`` (unsigned byte), the number of dimensions ``d``,
    then ``d`` big-endian 32-bit sizes; the data follows row-major.
    """
    data = gzip.decompress(Path(path).read_bytes())
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 3:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (header {data[:4]!r})")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = 1
    for n in shape:
        count *= n
    if len(data) - offset != count:
        raise ValueError(f"{path}: header says {shape}, file has {len(data) - offset} bytes")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(shape)


def fashion_mnist_source(root: str | Path) -> tuple[str, Path] | None:
    """Where Fashion-MNIST is: ``("torchvision", root)`` for torchvision's own layout
    (uncompressed files in ``root/FashionMNIST/raw``), ``("gzip", folder)`` for the gzipped
    idx files in ``root``, ``root/FashionMNIST/raw`` or Debian's folder; else ``None``."""
    root = Path(root)
    names = [n for pair in FASHION_MNIST_FILES.values() for n in pair]
    raw = root / "FashionMNIST" / "raw"
    if all((raw / n).is_file() for n in names):
        return "torchvision", root
    for folder in (root, raw, DEBIAN_FASHION_MNIST):
        if all((folder / f"{n}.gz").is_file() for n in names):
            return "gzip", folder
    return None


def _gzipped_fashion_mnist(folder: Path, train: bool) -> Dataset:
    """torchvision's ``FashionMNIST`` reading the gzipped idx files where they lie."""
    from torchvision import datasets

    class GzippedFashionMNIST(datasets.FashionMNIST):
        def __init__(self) -> None:
            super().__init__(str(folder), train=train, download=False)

        def _check_legacy_exist(self) -> bool:
            return False

        def _check_exists(self) -> bool:
            return all((folder / f"{n}.gz").is_file() for n in FASHION_MNIST_FILES[train])

        def _load_data(self) -> tuple[Tensor, Tensor]:
            images_file, labels_file = FASHION_MNIST_FILES[self.train]
            images = read_idx_gz(folder / f"{images_file}.gz")
            labels = read_idx_gz(folder / f"{labels_file}.gz").long()
            if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
                raise ValueError(
                    f"{folder}: {images_file} has shape {tuple(images.shape)} and {labels_file} "
                    f"{tuple(labels.shape)}; expected (N, H, W) images and N labels"
                )
            return images, labels

    return GzippedFashionMNIST()


def load_fashion_mnist(root: str | Path, *, train: bool, download: bool = True) -> Dataset:
    """torchvision's ``FashionMNIST`` from ``root`` or Debian's folder (see the module doc)."""
    from torchvision import datasets

    source = fashion_mnist_source(root)
    if source is not None and source[0] == "gzip":
        return _gzipped_fashion_mnist(source[1], train)
    try:
        return datasets.FashionMNIST(str(root), train=train, download=download)
    except (urllib.error.URLError, OSError) as exc:
        raise DataMissing(
            missing_message("fashion-mnist", root, f"could not be downloaded: {exc}")
        ) from None
    except RuntimeError as exc:
        reason = (
            str(exc).splitlines()[0] if download else "not downloaded: --download was not given"
        )
        raise DataMissing(missing_message("fashion-mnist", root, reason)) from None


def _split_folder(root: Path, *, train: bool, test_fraction: float, seed: int) -> Dataset:
    """A seeded per-class split of one ``ImageFolder``: ``test_fraction`` of each class."""
    from torchvision import datasets

    folder = datasets.ImageFolder(str(root))
    by_class: dict[int, list[int]] = {}
    for index, (_, target) in enumerate(folder.samples):
        by_class.setdefault(target, []).append(index)
    g = torch.Generator().manual_seed(seed)
    keep: list[int] = []
    for indices in by_class.values():
        order = [indices[i] for i in torch.randperm(len(indices), generator=g).tolist()]
        n_test = min(max(int(round(test_fraction * len(order))), 1), len(order) - 1)
        keep += order[:n_test] if not train else order[n_test:]
    split = Subset(folder, sorted(keep))
    split.classes = folder.classes  # type: ignore[attr-defined]
    return split


def load_imagefolder(
    root: str | Path, *, train: bool, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """``ImageFolder`` of ``root/train`` / ``root/test`` (or ``val``), else a split of ``root``."""
    from torchvision import datasets

    root = Path(root)
    if not root.is_dir():
        raise DataMissing(missing_message("imagefolder", root, "no such folder"))
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    try:
        if (root / "train").is_dir() and test_dir is not None:
            return datasets.ImageFolder(str(root / "train" if train else test_dir))
        return _split_folder(root, train=train, test_fraction=test_fraction, seed=seed)
    except (FileNotFoundError, RuntimeError) as exc:  # no class folders / no images
        raise DataMissing(missing_message("imagefolder", root, str(exc))) from None


def load(
    dataset: str,
    root: str | Path,
    *,
    train: bool,
    download: bool = True,
    size: int = 32,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """``(RGB PIL image of size x size, int target)`` items of ``dataset`` (see module doc).

    Raises :class:`DataMissing` (with what to do) when the files are not there.

    Example:
        >>> test = load("fake", "unused", train=False)
        >>> image, target = test[0]; image.size, image.mode
        ((32, 32), 'RGB')
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    if dataset in ("cifar10", "cifar100"):
        base = load_cifar(dataset, root, train=train, download=download)
    elif dataset == "fashion-mnist":
        base = load_fashion_mnist(root, train=train, download=download)
    elif dataset == "imagefolder":
        base = load_imagefolder(root, train=train, test_fraction=test_fraction, seed=split_seed)
    else:
        from torchvision import datasets

        base = datasets.FakeData(
            size=1024 if train else 256,
            image_size=(3, size, size),
            num_classes=10,
            random_offset=0 if train else 1_000_000,
        )
    return Mapped(base, _ToRGB(size))


def num_classes(dataset: str, data: Dataset) -> int:
    """The number of classes (for ``imagefolder``: its class folders)."""
    known = DATASETS[dataset].num_classes
    return known if known is not None else len(data.classes)  # type: ignore[attr-defined]


def subset(dataset: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` items (``None`` or ``n >= len``: the dataset)."""
    total = len(dataset)  # type: ignore[arg-type]
    if n is None or n >= total:
        return dataset
    g = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(total, generator=g)[:n].tolist())


def split(dataset: Dataset, n: int, seed: int) -> tuple[Dataset, Dataset]:
    """``(rest, held_out)``: a seeded random ``n`` items held out, the others kept.

    For choosing a weight on training images only (the test split stays untouched).
    """
    total = len(dataset)  # type: ignore[arg-type]
    if not 1 <= n < total:
        raise ValueError(f"cannot hold out {n} of {total} images")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=g).tolist()
    return Subset(dataset, order[n:]), Subset(dataset, order[:n])


# -- transforms --------------------------------------------------------------------------------
def _normalize(dataset: str) -> dict[str, list[float]]:
    info = DATASETS[dataset]
    return {"mean": list(info.mean), "std": list(info.std)}


def ssl_transform(method: str, dataset: str, size: int = 32) -> Callable[[Any], list[Tensor]]:
    """lightly's two-view transform for ``method`` with CIFAR settings.

    BYOL, BarlowTwins and Zero-CL get BYOL's asymmetric views (solarisation on view 2),
    the others SimCLR's symmetric views; crops of scale 0.08-1, colour jitter
    0.4/0.4/0.2-0.4/0.1, no Gaussian blur at 32x32 (as in the CIFAR recipes of lightly's and
    solo-learn's benchmarks). On grey images (Fashion-MNIST) saturation and hue jitter and the
    random grey conversion change nothing.
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
            view_1_transform=BYOLView1Transform(input_size=size, gaussian_blur=0.0, normalize=norm),
            view_2_transform=BYOLView2Transform(
                input_size=size, gaussian_blur=0.0, solarization_prob=0.2, normalize=norm
            ),
        )
    return SimCLRTransform(input_size=size, cj_strength=0.5, gaussian_blur=0.0, normalize=norm)


def eval_transform(dataset: str) -> Callable[[Any], Tensor]:
    """ToTensor + the dataset's normalisation (kNN bank, test set, uniformity metrics)."""
    from torchvision import transforms as T

    info = DATASETS[dataset]
    return T.Compose([T.ToTensor(), T.Normalize(info.mean, info.std)])


def probe_transform(dataset: str, size: int = 32) -> Callable[[Any], Tensor]:
    """Linear-probe training augmentation: random resized crop + horizontal flip."""
    from torchvision import transforms as T

    info = DATASETS[dataset]
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(info.mean, info.std),
        ]
    )


def describe(dataset: str, train: Dataset, test: Dataset, sizes: Sequence[int | None]) -> str:
    """One line naming the data actually used (for logs and result files)."""
    n_train, n_test = len(train), len(test)  # type: ignore[arg-type]
    note = "" if all(s is None for s in sizes) else " (subset)"
    return f"{dataset}: {n_train} train / {n_test} test images{note}"

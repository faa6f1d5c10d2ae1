"""Write a dataset of the examples as image folders (``<out>/train/<class>/*.png``, ``test/``).

For tools that read one folder per class, e.g. solo-learn's ``custom`` dataset (the
``data=imagefolder`` config of ``w2reg.adapters.solo_pretrain``) or this repository's own
``--dataset imagefolder``. Images are written as the examples see them: RGB, 32x32.

Example::

    python examples/export_imagefolder.py --dataset fashion-mnist --out datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _datasets as data  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Write a dataset as <out>/{train,test}/<class>/<index>.png",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", choices=data.NAMES, default="fashion-mnist", help="dataset")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--subset", type=int, default=None, help="write N train and N test images")
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let torchvision download CIFAR / Fashion-MNIST when missing",
    )
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Write the images; return how many per split."""
    args = build_parser().parse_args(argv)
    counts = {}
    for split, train in (("train", True), ("test", False)):
        try:
            images = data.load(args.dataset, args.data_dir, train=train, download=args.download)
        except data.DataMissing as exc:
            raise SystemExit(f"error: {exc}") from None
        names = images.classes or [str(i) for i in range(data.num_classes(args.dataset, images))]
        chosen = data.subset(images, args.subset, seed=0 if train else 1)
        for c in set(names):
            (args.out / split / _safe(c)).mkdir(parents=True, exist_ok=True)
        for i in range(len(chosen)):
            image, target = chosen[i]
            image.save(args.out / split / _safe(names[target]) / f"{i:06d}.png")
        counts[split] = len(chosen)
    print(f"wrote {counts['train']} train and {counts['test']} test images under {args.out}")
    return counts


def _safe(name: str) -> str:
    """A class name usable as a folder name (Fashion-MNIST has 'T-shirt/top')."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


if __name__ == "__main__":
    main()

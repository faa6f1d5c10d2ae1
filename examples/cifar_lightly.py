"""Pre-training with the CIFAR ResNet-18 through the lightly adapter, with or without W2.

Reproduces the recipe of Fang et al. (ICLR 2024): 500 epochs, batch 256, LARS with warm-up +
cosine, 3-layer projector to 256 (the adapter's defaults, ``w2reg.adapters.lightly``), on
CIFAR-10/100 or, with the same augmentations and evaluation, on Fashion-MNIST, a folder of
your own images or generated images (``--dataset``, see ``examples/_datasets.py``), then

* kNN top-1 (k = 200) on the test set during training (``--knn-every`` epochs) and after;
* W2, L_U, effective rank and spectrum of the normalised projections of the test set during
  training (``w2reg.adapters.callbacks.UniformityMonitor``) and after, plus the alignment of
  two augmented views of every test image;
* a linear probe on the frozen backbone (100 epochs, SGD lr 0.3, momentum 0.9, wd 1e-6,
  cosine; lightly's ``LinearClassifier``);

written to the logger (TensorBoard if installed, else CSV, under ``--out-dir``), to
``<out-dir>/<run>/results.json``, and printed as a table next to the paper's numbers.

Examples::

    python examples/cifar_lightly.py --method byol --dataset cifar10 --w2
    python examples/cifar_lightly.py --method byol --dataset cifar10 --no-w2
    python examples/cifar_lightly.py --dataset fake --fast-dev-run     # offline CPU smoke run
    python examples/cifar_lightly.py --dataset fashion-mnist --width 16 --epochs 5
    python examples/cifar_lightly.py --dataset imagefolder --data-dir my_images/

CIFAR and Fashion-MNIST are downloaded by torchvision into ``--data-dir`` unless
``--no-download``; without them (and without network) the script says where to put the
files. Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` installs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _datasets as data  # noqa: E402
import _evaluation as evaluation  # noqa: E402
import _reporting as reporting  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Self-supervised pre-training with the CIFAR ResNet-18 (lightly), "
        "with or without the W2 uniformity regularizer, then kNN, linear probe and "
        "uniformity metrics on the test set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--method", choices=reporting.METHOD_NAMES, default="simclr", help="SSL method")
    p.add_argument(
        "--dataset",
        choices=data.NAMES,
        default="cifar10",
        help="cifar10, cifar100, fashion-mnist (as RGB 32x32), imagefolder (--data-dir: one "
        "folder per class, or train/ and test/ of those), fake (generated, offline)",
    )
    p.add_argument(
        "--w2",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the W2 uniformity term (--no-w2: the plain method)",
    )
    p.add_argument(
        "--w2-weight",
        type=float,
        default=None,
        help="constant W2 weight (default: the method's, e.g. BarlowTwins 30->0 decay)",
    )
    p.add_argument("--epochs", type=int, default=500, help="pre-training epochs")
    p.add_argument("--batch-size", type=int, default=256, help="global batch (all devices)")
    p.add_argument("--lr", type=float, default=None, help="default: 0.2 * batch / 256 (LARS)")
    p.add_argument(
        "--width",
        type=int,
        default=64,
        help="ResNet-18 base width: 64 is the paper's (512-d features), 16 a quarter (CPU)",
    )
    p.add_argument("--proj-hidden-dim", type=int, default=2048, help="projector width")
    p.add_argument("--proj-output-dim", type=int, default=256, help="projection dim m")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let torchvision download CIFAR / Fashion-MNIST when missing",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="imagefolder without train/ and test/: share of each class held out for testing",
    )
    p.add_argument("--out-dir", type=Path, default=Path("runs"), help="logs, results.json")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator")
    p.add_argument("--devices", default="auto", help="e.g. 1, 4, 'auto'")
    p.add_argument("--precision", default="32-true", help="e.g. 32-true, 16-mixed, bf16-mixed")
    p.add_argument("--num-workers", type=int, default=8, help="DataLoader workers")
    p.add_argument("--knn-every", type=int, default=10, help="kNN/uniformity every n epochs")
    p.add_argument("--knn-k", type=int, default=200, help="kNN neighbours")
    p.add_argument("--probe-epochs", type=int, default=100, help="linear-probe epochs")
    p.add_argument("--probe-lr", type=float, default=0.3, help="probe SGD lr (x batch/256)")
    p.add_argument("--probe-batch-size", type=int, default=256, help="probe batch")
    p.add_argument("--subset", type=int, default=None, help="use N train and N test images")
    p.add_argument(
        "--fast-dev-run",
        action="store_true",
        help="CPU smoke run: 1 step of pre-training and of the probe on a small subset",
    )
    p.add_argument(
        "--eval",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="kNN / uniformity monitoring and the final evaluation (--no-eval: pre-train only)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    return p


def _devices(value: str) -> int | str:
    return int(value) if str(value).isdigit() else value


def _loader(dataset: Any, batch_size: int, workers: int, *, shuffle: bool, drop_last: bool):
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def _logger(out_dir: Path, name: str, package: str) -> Any:
    import importlib

    loggers = importlib.import_module(f"{package}.loggers")
    CSVLogger, TensorBoardLogger = loggers.CSVLogger, loggers.TensorBoardLogger

    try:
        import tensorboard  # noqa: F401

        return TensorBoardLogger(str(out_dir), name=name)
    except ImportError:
        return CSVLogger(str(out_dir), name=name)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Pre-train, evaluate, print the summary; return the results dict (also in JSON)."""
    args = build_parser().parse_args(argv)
    if args.fast_dev_run:
        args.epochs = 1
        args.subset = min(args.subset or 32, 32)
        args.batch_size = min(args.batch_size, 8)
        args.probe_batch_size = min(args.probe_batch_size, 16)
        args.probe_epochs = 1
        args.num_workers = 0
    for name in ("epochs", "batch_size", "probe_epochs", "knn_every"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")

    import importlib

    pl = importlib.import_module(evaluation.LIGHTNING)
    Trainer, seed_everything = pl.Trainer, pl.seed_everything
    callbacks = importlib.import_module(f"{evaluation.LIGHTNING}.callbacks")
    LearningRateMonitor, ModelCheckpoint = callbacks.LearningRateMonitor, callbacks.ModelCheckpoint

    from w2reg.adapters.callbacks import UniformityMonitor, spectrum_figure
    from w2reg.adapters.lightly import create_model
    from w2reg.adapters.lightly_methods import cifar_resnet18

    seed_everything(args.seed, workers=True)
    start = time.perf_counter()
    run = f"{args.dataset}_{args.method}_{'w2' if args.w2 else 'plain'}"
    out_dir = args.out_dir / run

    # -- data ------------------------------------------------------------------------------
    try:
        # Under DDP, Lightning re-runs this script for ranks > 0 (LOCAL_RANK set) once rank 0
        # has loaded the data: only rank 0 downloads.
        download = args.download and os.environ.get("LOCAL_RANK", "0") == "0"
        split = {"test_fraction": args.test_fraction, "split_seed": args.seed}
        train_base = data.load(args.dataset, args.data_dir, train=True, download=download, **split)
        test_base = data.load(args.dataset, args.data_dir, train=False, download=False, **split)
    except data.DataMissing as exc:
        raise SystemExit(f"error: {exc}") from None
    num_classes = data.num_classes(args.dataset, train_base)
    train_base = data.subset(train_base, args.subset, args.seed)
    test_base = data.subset(test_base, args.subset, args.seed + 1)
    eval_tf = data.eval_transform(args.dataset)
    ssl_tf = data.ssl_transform(args.method, args.dataset)
    workers = args.num_workers
    eval_bs = max(args.batch_size, 256)
    bank_loader = _loader(
        data.Transformed(train_base, eval_tf), eval_bs, workers, shuffle=False, drop_last=False
    )
    test_loader = _loader(
        data.Transformed(test_base, eval_tf), eval_bs, workers, shuffle=False, drop_last=False
    )
    test_views_loader = _loader(
        data.Transformed(test_base, ssl_tf), eval_bs, workers, shuffle=False, drop_last=False
    )

    # -- pre-training ----------------------------------------------------------------------
    logger = _logger(args.out_dir, run, evaluation.LIGHTNING)
    monitor = UniformityMonitor(
        test_loader, every_n_epochs=args.knn_every, save_dir=out_dir / "spectra"
    )
    knn = evaluation.KNNMonitor(
        bank_loader,
        test_loader,
        num_classes=num_classes,
        every_n_epochs=args.knn_every,
        k=args.knn_k,
    )
    devices = _devices(args.devices)
    n_train = len(train_base)  # type: ignore[arg-type]
    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=devices,
        precision=args.precision,
        logger=logger,
        callbacks=[
            *([knn, monitor] if args.eval else []),
            LearningRateMonitor(logging_interval="epoch"),
            ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True),
        ],
        fast_dev_run=1 if args.fast_dev_run else False,
        log_every_n_steps=max(1, min(50, n_train // args.batch_size)),
        sync_batchnorm=devices not in (1, "auto")
        and args.accelerator != "cpu"
        and torch.cuda.is_available(),
        enable_model_summary=not args.fast_dev_run,
    )
    # --batch-size is the global batch (the paper's 256); each device gets its share, and
    # the losses (and W2, where the adapter gathers) see the global batch across ranks.
    world = max(int(trainer.world_size), 1)
    per_device = max(args.batch_size // world, 1)
    ssl_loader = _loader(
        data.Transformed(train_base, ssl_tf),
        per_device,
        workers,
        shuffle=True,
        drop_last=n_train >= 2 * args.batch_size,
    )
    model = create_model(
        args.method,
        w2=args.w2,
        w2_weight=args.w2_weight if args.w2 else None,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        lr=args.lr,
        proj_hidden_dim=args.proj_hidden_dim,
        proj_output_dim=args.proj_output_dim,
        backbone=cifar_resnet18(args.width),
        feature_dim=8 * args.width,
        gather_distributed=world > 1,
    )
    trainer.fit(model, ssl_loader)
    if world > 1:
        # The evaluation below runs on rank 0 alone, on one device.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    if not trainer.is_global_zero:
        return {}
    pretrain_seconds = time.perf_counter() - start
    if not args.eval:
        return {
            "method": args.method,
            "dataset": args.dataset,
            "w2": args.w2,
            "global_step": int(trainer.global_step),
            "train_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "pretrain_seconds": pretrain_seconds,
        }

    # -- evaluation on the test set --------------------------------------------------------
    device = torch.device(
        "cuda"
        if torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
        else "cpu"
    )
    model = model.to(device)
    uniformity = evaluation.test_metrics(model, test_loader, test_views_loader)
    knn_top1 = evaluation.knn_accuracy(
        model, bank_loader, test_loader, num_classes=num_classes, k=args.knn_k
    )

    # lightly's benchmarking modules are `pytorch_lightning` modules: train them with its Trainer.
    import pytorch_lightning as ptl
    from lightly.utils.benchmarking import MetricCallback

    probe_cls = evaluation.linear_probe_class()
    probe = probe_cls(
        model=model,
        batch_size_per_device=args.probe_batch_size,
        lr=args.probe_lr,
        feature_dim=int(getattr(model, "feature_dim", 512)),
        num_classes=num_classes,
        topk=(1, 5) if num_classes > 5 else (1,),
    )
    probe_loader = _loader(
        data.Transformed(train_base, data.probe_transform(args.dataset)),
        args.probe_batch_size,
        workers,
        shuffle=True,
        drop_last=False,
    )
    metrics = MetricCallback()
    probe_trainer = ptl.Trainer(
        max_epochs=args.probe_epochs,
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        logger=_logger(args.out_dir, f"{run}_probe", "pytorch_lightning"),
        callbacks=[metrics],
        fast_dev_run=1 if args.fast_dev_run else False,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=min(50, max(len(probe_loader), 1)),
    )
    probe_trainer.fit(probe, probe_loader, test_loader)
    val_top1 = metrics.val_metrics.get("val_top1", [float("nan")])

    paper = reporting.paper_result(args.method, args.w2, args.dataset)
    results: dict[str, Any] = {
        "method": args.method,
        "dataset": args.dataset,
        "w2": args.w2,
        "w2_weight": None if not args.w2 else repr(model.w2reg.loss.schedule),
        "epochs": args.epochs,
        "width": args.width,
        "batch_size": args.batch_size,
        "subset": args.subset,
        "fast_dev_run": args.fast_dev_run,
        "n_test": uniformity["n_samples"],
        "linear_top1": 100.0 * float(val_top1[-1]),
        "linear_top1_best": 100.0 * max(float(v) for v in val_top1),
        "knn_top1": knn_top1,
        "knn_history": knn.history,
        "test_w2": uniformity["w2"],
        "test_lu": uniformity["lu"],
        "test_effective_rank": uniformity["effective_rank"],
        "test_alignment": uniformity["alignment"],
        "test_spectrum": uniformity["spectrum"],
        "paper": None if paper is None else {"linear_top1": paper[0], "w2": paper[1]},
        "pretrain_seconds": pretrain_seconds,
        "seconds": time.perf_counter() - start,
    }
    final = {
        f"test/{k.removeprefix('test_')}": results[k]
        for k in (
            "linear_top1",
            "knn_top1",
            "test_w2",
            "test_lu",
            "test_effective_rank",
            "test_alignment",
        )
    }
    for lg in trainer.loggers:
        lg.log_metrics(final, step=trainer.global_step)
        lg.save()
    json_path = reporting.write_json(out_dir / "results.json", results)
    try:
        fig = spectrum_figure(uniformity["spectrum"], title=f"{run}: test-set spectrum")
        fig.savefig(out_dir / "spectrum.png")
    except ImportError:
        pass
    results["results_json"] = str(json_path)
    print()
    print(reporting.summary_table([results]))
    print(f"\nresults: {json_path}   ({results['seconds']:.0f}s)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

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

    python examples/cifar_lightly.py --dataset fake --fast-dev-run     # offline CPU smoke run
    python examples/cifar_lightly.py --method byol --dataset cifar10 --download --w2
    python examples/cifar_lightly.py --method byol --dataset cifar10 --no-w2
    python examples/cifar_lightly.py --dataset fashion-mnist --width 16 --budget-minutes 20
    python examples/cifar_lightly.py --dataset fashion-mnist --width 16 --epochs 5
    python examples/cifar_lightly.py --backbone vit_tiny_patch16_224 --backbone-args patch_size=4
    python examples/cifar_lightly.py --dataset imagefolder --data-dir my_images/

Nothing is downloaded unless ``--download`` (torchvision then fetches CIFAR or Fashion-MNIST
into ``--data-dir``); without the files the script says where to put them and what to pass.
Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` installs it. With no
flags it runs the paper's recipe (500 epochs of CIFAR-10: hours on a GPU); ``--epochs N`` or
``--budget-minutes M`` (pre-training and evaluation within M minutes, from a timed
calibration) run less. The evaluation prints a line per phase and the linear probe's
progress; under ``--budget-minutes`` the probe stops when the budget is spent (recorded in
``results.json``).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _backbones as backbones  # noqa: E402
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
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs", type=int, default=None, help="pre-training epochs (default: 500, the paper's)"
    )
    budget.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="instead of --epochs: as many epochs as let pre-training and the evaluation fit "
        "in this many minutes, from a timed calibration; the linear probe stops at the budget",
    )
    p.add_argument("--batch-size", type=int, default=256, help="global batch (all devices)")
    p.add_argument("--lr", type=float, default=None, help="default: 0.2 * batch / 256 (LARS)")
    p.add_argument(
        "--width",
        type=int,
        default=64,
        help="ResNet-18 base width: 64 is the paper's (512-d features), 16 a quarter (CPU)",
    )
    backbones.add_arguments(p)
    p.add_argument("--proj-hidden-dim", type=int, default=2048, help="projector width")
    p.add_argument("--proj-output-dim", type=int, default=256, help="projection dim m")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let torchvision download CIFAR (170 MB) / Fashion-MNIST (30 MB) into --data-dir "
        "when missing (default: offline, nothing is downloaded)",
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
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="DataLoader workers (default: half the CPUs, at most 8)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 on a busy machine with few cores)",
    )
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


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _say(message: str) -> None:
    """A progress line (stderr, so the results table stays clean on stdout)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Pre-train, evaluate, print the summary; return the results dict (also in JSON)."""
    args = build_parser().parse_args(argv)
    paper_recipe = args.epochs is None and args.budget_minutes is None
    args.epochs = 500 if args.epochs is None else args.epochs
    if args.num_workers is None:
        args.num_workers = min(8, _cpus() // 2)
    if args.threads is not None:
        torch.set_num_threads(max(args.threads, 1))
    if args.budget_minutes is not None and (args.budget_minutes <= 0 or args.fast_dev_run):
        raise SystemExit(
            f"--budget-minutes must be > 0, got {args.budget_minutes}"
            if args.budget_minutes <= 0
            else "--budget-minutes and --fast-dev-run exclude each other"
        )
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

    seed_everything(args.seed, workers=True)
    start = time.perf_counter()
    backbones.check(args)
    run = f"{args.dataset}_{args.method}_{'w2' if args.w2 else 'plain'}"
    run += "" if args.backbone == backbones.DEFAULT else f"_{args.backbone}"
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
        raise SystemExit(
            f"error: {exc}\n"
            + ("" if args.download else "Or pass --download to let torchvision fetch it. ")
            + "To try the script offline first, with nothing on disk: "
            "python examples/cifar_lightly.py --dataset fake --fast-dev-run"
        ) from None
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
    image_size = train_base[0][0].size[0]  # type: ignore[index]  # square RGB PIL images
    backbone, backbone_dim = backbones.build(args, image_size)
    model = create_model(
        args.method,
        w2=args.w2,
        w2_weight=args.w2_weight if args.w2 else None,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        lr=args.lr,
        proj_hidden_dim=args.proj_hidden_dim,
        proj_output_dim=args.proj_output_dim,
        backbone=backbone,
        feature_dim=backbone_dim,
        gather_distributed=world > 1,
    )
    calibration = None
    if args.budget_minutes is not None:
        if world > 1:
            raise SystemExit("--budget-minutes runs on one device; give --epochs with several")
        calibration = _calibrate(args, model, ssl_loader, bank_loader, len(test_base), start)
        args.epochs = model.max_epochs = model.hparams.max_epochs = calibration["epochs"]
        trainer.fit_loop.max_epochs = args.epochs
        # a guard: pre-training stops where the budget, less the evaluation, is spent
        left = 0.95 * 60.0 * args.budget_minutes - calibration["evaluation_seconds"]
        cap = max(left - (time.perf_counter() - start), 1.0)
        trainer.callbacks.append(callbacks.Timer(duration=datetime.timedelta(seconds=cap)))
        seed_everything(args.seed, workers=True)  # the run as without the calibration
    _say(
        f"{run}: {args.epochs} epochs x {len(ssl_loader)} steps (batch {args.batch_size}, "
        f"{n_train} images)"
        + (f", then kNN and a {args.probe_epochs}-epoch linear probe" if args.eval else "")
        + (
            " -- the paper's recipe, hours on a GPU; --epochs N or --budget-minutes M for less"
            if paper_recipe and not args.fast_dev_run
            else ""
        )
    )
    trainer.fit(model, ssl_loader)
    epochs_done = int(trainer.current_epoch)
    if epochs_done < args.epochs and not args.fast_dev_run:
        _say(
            f"pre-training: stopped by --budget-minutes after {epochs_done} of {args.epochs} "
            "epochs (the calibration underestimated this machine's time per epoch)"
        )
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
    eval_start = time.perf_counter()
    _say(f"evaluation: W2, L_U, rank and alignment of the {len(test_base)} test images ...")
    uniformity = evaluation.test_metrics(model, test_loader, test_views_loader)
    _say(f"evaluation: kNN (k = {args.knn_k}, bank of {n_train} images) ...")
    knn_top1 = evaluation.knn_accuracy(
        model, bank_loader, test_loader, num_classes=num_classes, k=args.knn_k
    )
    _say(
        f"evaluation: kNN top-1 {knn_top1:.2f} % ({time.perf_counter() - eval_start:.0f} s); "
        f"linear probe, {args.probe_epochs} epochs ..."
    )
    probe_limit = None
    if calibration is not None:  # the probe gets what is left of the budget (at least 30 s)
        left = 60.0 * args.budget_minutes - (time.perf_counter() - start)
        probe_limit = datetime.timedelta(seconds=max(left, 30.0))

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
        callbacks=[metrics, _probe_progress(ptl.Callback)()],
        fast_dev_run=1 if args.fast_dev_run else False,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=min(50, max(len(probe_loader), 1)),
        max_time=probe_limit,
    )
    probe_trainer.fit(probe, probe_loader, test_loader)
    val_top1 = metrics.val_metrics.get("val_top1", [float("nan")])
    probe_done = len(metrics.val_metrics.get("val_top1", []))
    if probe_done < args.probe_epochs and not args.fast_dev_run:
        _say(
            f"linear probe: stopped by --budget-minutes after {probe_done} of "
            f"{args.probe_epochs} epochs; its top-1 is that epoch's"
        )

    paper = reporting.paper_result(args.method, args.w2, args.dataset)
    results: dict[str, Any] = {
        "method": args.method,
        "dataset": args.dataset,
        "w2": args.w2,
        "w2_weight": None if not args.w2 else repr(model.w2reg.loss.schedule),
        "epochs": args.epochs,
        "width": args.width,
        "backbone": backbones.describe(args),
        "batch_size": args.batch_size,
        "subset": args.subset,
        "fast_dev_run": args.fast_dev_run,
        "budget_minutes": args.budget_minutes,
        "epochs_done": epochs_done,
        "calibration": calibration,
        "probe_epochs": args.probe_epochs,
        "probe_epochs_done": probe_done,
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


def _calibrate(
    args: argparse.Namespace,
    model: Any,
    loader: Any,
    eval_loader: Any,
    n_test: int,
    start: float,
) -> dict[str, Any]:
    """Epochs that let pre-training and the evaluation fit in ``--budget-minutes``.

    A copy of ``model`` takes ``min(steps per epoch, 7)`` steps (two epochs of a shorter
    epoch, so that the epoch's own overhead is timed too); the time from one step's start to
    the next without the first two (start-up) is the cost per step, the rest of that fit the
    fixed cost of a Trainer. A few batches of ``eval_loader`` time the backbone's forward per
    image: the evaluation is ``n_train (1 + probe epochs) + n_test (3 + probe epochs)``
    forward images (kNN bank and test, the test metrics of the images and two views, every
    probe epoch's training and validation) plus a Trainer, a monitor epoch ``n_train + 2
    n_test`` images. Then ``epochs = (0.9 budget - elapsed - evaluation - fixed) / (epoch +
    monitor / --knn-every)``: a tenth of the budget is kept for what the estimate misses.
    """
    import importlib

    pl = importlib.import_module(evaluation.LIGHTNING)
    budget = 60.0 * args.budget_minutes
    steps_per_epoch = len(loader)
    steps = min(steps_per_epoch, 7) if steps_per_epoch > 7 else 2 * steps_per_epoch
    marks: list[float] = []

    class StepTimer(pl.Callback):  # type: ignore[misc, name-defined]
        def on_train_batch_start(self, *a: Any) -> None:
            marks.append(time.perf_counter())

        def on_train_end(self, *a: Any) -> None:
            marks.append(time.perf_counter())

    _say(f"calibrating for --budget-minutes {args.budget_minutes:g}: {steps} steps ...")
    trial = copy.deepcopy(model)
    t0 = time.perf_counter()
    pl.Trainer(
        max_steps=steps,
        max_epochs=2,
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        logger=False,
        callbacks=[StepTimer()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(trial, loader)
    fit_s = time.perf_counter() - t0
    intervals = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    timed = intervals[2:] or intervals
    per_step = sum(timed) / len(timed)
    fixed = max(fit_s - steps * per_step, 0.0)
    n_train = len(eval_loader.dataset)
    forward = 0.0
    if args.eval:
        device = next(trial.parameters()).device
        trial.eval()
        seen, t0 = 0, time.perf_counter()
        with torch.no_grad():
            for i, (images, _) in enumerate(eval_loader):
                trial(images.to(device))
                seen += len(images)
                if i == 2:
                    break
        forward = (time.perf_counter() - t0) / max(seen, 1)
    images = n_train * (1 + args.probe_epochs) + n_test * (3 + args.probe_epochs)
    evaluation_s = forward * images + (fixed if args.eval else 0.0)
    monitor_s = forward * (n_train + 2 * n_test)
    epoch_s = steps_per_epoch * per_step
    spent = time.perf_counter() - start
    left = 0.9 * budget - spent - evaluation_s - fixed
    fitting = int(left // (epoch_s + monitor_s / args.knn_every))
    result = {
        "seconds_per_step": per_step,
        "fixed_seconds_per_trainer": fixed,
        "forward_seconds_per_image": forward,
        "evaluation_seconds": evaluation_s,
        "seconds_per_epoch": epoch_s,
        "calibration_seconds": spent,
        "budget_seconds": budget,
        "epochs": fitting,
    }
    if fitting < 1:
        raise SystemExit(
            f"error: --budget-minutes {args.budget_minutes:g} is too small: one epoch takes "
            f"about {epoch_s / 60:.1f} min and the evaluation about {evaluation_s / 60:.1f} "
            f"min on this machine now ({per_step:.2f} s per step, {fixed:.0f} s to start a "
            "Trainer); raise it, or lower --subset, --width or --probe-epochs, or pass "
            "--no-eval"
        )
    _say(
        f"calibrated: {per_step:.2f} s per step, evaluation about {evaluation_s / 60:.1f} min: "
        f"{fitting} epochs"
    )
    return result


def _probe_progress(base: type) -> type:
    """A callback class (of ``base``, the probe's Lightning) printing the probe's progress."""

    class ProbeProgress(base):  # type: ignore[misc, valid-type]
        """About ten lines per probe: epoch, top-1 so far, time per epoch, time left."""

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            done, total = trainer.current_epoch + 1, trainer.max_epochs
            if done != 1 and done != total and done % max(total // 10, 1):
                return
            per_epoch = (time.perf_counter() - self.t0) / done
            top1 = trainer.callback_metrics.get("val_top1")
            _say(
                f"linear probe: epoch {done}/{total}"
                + (f", val top-1 {100 * float(top1):.2f} %" if top1 is not None else "")
                + f", {per_epoch:.1f} s/epoch, about {(total - done) * per_epoch / 60:.1f} min"
                " left"
            )

    return ProbeProgress


if __name__ == "__main__":
    main(sys.argv[1:])

"""What does the line do? Methods x {plain, W2} pre-trained alike, evaluated on the test split.

Every run of the study pre-trains one of the ready lightly models
(``w2reg.adapters.lightly``) with or without the W2 term, with the same seed, data, network
and budget as its partner, then evaluates on the held-out test split:

* kNN top-1 (k = 200) and a linear probe on frozen backbone features (``_evaluation``:
  the probe is trained on precomputed features without augmentation, with the paper's probe
  optimizer, so it costs seconds);
* W2, L_U, effective rank and the spectrum of the normalised test-set projections, and the
  alignment of two augmented views of every test image;
* wall time per pre-training epoch (the cost of the term).

Methods listed in ``--spread-methods`` run at every seed of ``--seeds``, the others at the
first: the differences between two seeds of the same method and arm are the yardstick for
the W2 effects (a difference no larger than the seeds' spread is reported as such).

Written to ``--out-dir``: ``runs/<run>.json`` (one per finished run; a rerun skips them, so an
interrupted study resumes), ``study.json`` (all runs, the plan, the effects), ``study.md``
(tables, the command, the budget) and ``study.png`` (accuracy and W2 with and without the
term per method, and the test-set spectra).

Examples::

    # offline smoke run, about 15 s: shows the pipeline works; its numbers mean nothing
    python examples/study.py --dataset fake --methods simclr byol --epochs 2 --lr 1 \\
        --width 4 --train-subset 64 --test-subset 32 --batch-size 16 --threads 1 \\
        --out-dir /tmp/study
    # the CPU study: all eight methods on Fashion-MNIST, quarter-width ResNet-18
    python examples/study.py --dataset fashion-mnist --width 16 --epochs 5 ...
    # as many epochs as fit in 8 minutes (the GPU recipe, see benchmarks/study_gpu.sh)
    python examples/study.py --dataset fashion-mnist --budget-minutes 8 ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _arms as arms  # noqa: E402
import _backbones as backbones  # noqa: E402
import _datasets as data  # noqa: E402
import _evaluation as evaluation  # noqa: E402
import _reporting as reporting  # noqa: E402
import _study_report as report  # noqa: E402

#: The arguments that define a run's result: a finished run is reused only if they match.
RUN_KEYS = (
    "dataset",
    "train_subset",
    "test_subset",
    "data_seed",
    "test_fraction",
    "epochs",
    "batch_size",
    "lr",
    "width",
    "proj_hidden_dim",
    "proj_output_dim",
    "pred_hidden_dim",
    "knn_k",
    "probe_epochs",
    "lu_samples",
    "precision",
    "holdout",
    "backbone",
    "backbone_args",
)
#: What a run on ``--dataset fake`` is (printed and written into study.md's data line).
FAKE_NOTE = (
    "random generated images with random labels: a smoke run that shows the pipeline works; "
    "its accuracies, W2 effects and time ratios mean nothing"
)
#: Keys added after runs were committed: a run without the key has this value (so it is reused).
RUN_KEY_DEFAULTS: dict[str, Any] = {
    "holdout": None,
    "backbone": backbones.DEFAULT,
    "backbone_args": {},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pre-train methods x {plain, W2} with the same seed, data and budget and "
        "compare them on the test split (kNN, linear probe, W2, L_U, effective rank, "
        "alignment, time per epoch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", choices=data.NAMES, default="fashion-mnist", help="dataset")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let torchvision download CIFAR / Fashion-MNIST when missing",
    )
    p.add_argument("--test-fraction", type=float, default=0.2, help="imagefolder split")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=reporting.METHOD_NAMES,
        default=list(reporting.METHOD_NAMES),
        help="methods to compare",
    )
    p.add_argument(
        "--arms",
        nargs="+",
        default=["plain", "w2"],
        help=f"arms of every method: {', '.join(arms.ARMS)}, or <arm>*<factor> (a weight "
        "sweep); see examples/_arms.py",
    )
    p.add_argument(
        "--more-arms",
        nargs="*",
        default=[],
        help="arms run only for --more-arms-methods (the competitors: sigreg vicreg visreg)",
    )
    p.add_argument(
        "--more-arms-methods",
        nargs="*",
        default=None,
        help="methods that get --more-arms (default: all)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds")
    p.add_argument(
        "--spread-methods",
        nargs="*",
        default=None,
        help="methods run at every seed (default: all); the others at the first seed only",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="pre-training epochs")
    budget.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="instead of --epochs: as many epochs as let all runs (with their evaluation) "
        "fit in this many minutes, from a timed calibration",
    )
    p.add_argument("--batch-size", type=int, default=256, help="batch size")
    p.add_argument("--lr", type=float, default=None, help="default: 0.2 * batch / 256 (LARS)")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64: paper)")
    backbones.add_arguments(p)
    p.add_argument("--proj-hidden-dim", type=int, default=2048, help="projector width")
    p.add_argument("--proj-output-dim", type=int, default=256, help="projection dim m")
    p.add_argument(
        "--pred-hidden-dim",
        type=int,
        default=None,
        help="predictor width of NNCLR, BYOL, SimSiam (default: each method's own)",
    )
    p.add_argument("--train-subset", type=int, default=None, help="use N training images")
    p.add_argument("--test-subset", type=int, default=None, help="use N test images")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the subsets")
    p.add_argument(
        "--holdout",
        type=int,
        default=None,
        help="evaluate on N images held out from the TRAINING split instead of the test split "
        "(pre-training, kNN bank and probe use the rest): for choosing weights",
    )
    p.add_argument("--knn-k", type=int, default=200, help="kNN neighbours")
    p.add_argument("--probe-epochs", type=int, default=100, help="linear-probe epochs")
    p.add_argument(
        "--lu-samples", type=int, default=5000, help="test rows used for L_U (O(N^2) memory)"
    )
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator")
    p.add_argument("--precision", default="32-true", help="e.g. 32-true, bf16-mixed")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out-dir", type=Path, default=Path("study"), help="results folder")
    p.add_argument(
        "--plan-only",
        action="store_true",
        help="print the runs (and, with --budget-minutes, the calibration: epochs and the "
        "estimated duration, kept in plan.json for the real run), then stop without training",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bar (pre-training steps of all runs)",
    )
    return p


# -- the plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    method: str
    arm: arms.Arm
    seed: int

    @property
    def w2(self) -> bool:
        """Whether a term is added (any arm but plain)."""
        return self.arm.name != "plain"

    @property
    def name(self) -> str:
        return f"{self.method}_{self.arm.tag}_s{self.seed}"


def plan(
    methods: Sequence[str],
    seeds: Sequence[int],
    spread: Sequence[str] | None,
    arm_names: Sequence[str] = ("plain", "w2"),
    more_arms: Sequence[str] = (),
    more_methods: Sequence[str] | None = None,
) -> list[Run]:
    """Every method at the first seed, the spread methods at every seed; per method its
    arms in order (``arm_names``, then ``more_arms`` for ``more_methods``)."""
    spread_set = set(methods if spread is None else spread)
    more_set = set(methods if more_methods is None else more_methods)
    common = [arms.Arm.parse(a) for a in arm_names]
    extra = [arms.Arm.parse(a) for a in more_arms]
    runs = []
    for i, seed in enumerate(seeds):
        for method in methods:
            if i == 0 or method in spread_set:
                own = common + (extra if method in more_set else [])
                runs += [Run(method, arm, seed) for arm in own]
    return runs


def run_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration that defines a run's result (keys at their old default left out)."""
    return {
        k: config.get(k, RUN_KEY_DEFAULTS.get(k))
        for k in RUN_KEYS
        if k not in RUN_KEY_DEFAULTS or config.get(k) != RUN_KEY_DEFAULTS[k]
    }


def fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(run_keys(config), sort_keys=True).encode()).hexdigest()[:16]


def _check(args: argparse.Namespace) -> None:
    positive = ("batch_size", "width", "proj_hidden_dim", "proj_output_dim", "knn_k")
    for name in (*positive, "probe_epochs", "lu_samples"):
        value = getattr(args, name)
        if value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("epochs", "train_subset", "test_subset", "pred_hidden_dim", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        raise SystemExit(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    if args.epochs is None and args.budget_minutes is None:
        raise SystemExit("give --epochs N or --budget-minutes M")
    unknown = set(args.spread_methods or ()) - set(args.methods)
    if unknown:
        raise SystemExit(f"--spread-methods {sorted(unknown)} are not in --methods")
    unknown = set(args.more_arms_methods or ()) - set(args.methods)
    if unknown:
        raise SystemExit(f"--more-arms-methods {sorted(unknown)} are not in --methods")
    try:
        parsed = [arms.Arm.parse(a) for a in [*args.arms, *args.more_arms]]
    except ValueError as err:
        raise SystemExit(f"--arms: {err}") from None
    if len({a.tag for a in parsed}) != len(parsed):
        raise SystemExit(f"--arms and --more-arms must be distinct, got {[str(a) for a in parsed]}")
    if args.holdout is not None and args.holdout < 2:
        raise SystemExit(f"--holdout must be >= 2, got {args.holdout}")
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds must be distinct, got {args.seeds}")
    backbones.check(args)


# -- one run -----------------------------------------------------------------------------------
class Study:
    """The data, loaders and Lightning pieces shared by all runs of one study."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        try:
            split = {"test_fraction": args.test_fraction, "split_seed": args.data_seed}
            kw = {"download": args.download, **split}
            train = data.load(args.dataset, args.data_dir, train=True, **kw)
            test = data.load(args.dataset, args.data_dir, train=False, **kw)
        except data.DataMissing as exc:
            raise SystemExit(f"error: {exc}") from None
        self.num_classes = data.num_classes(args.dataset, train)
        self.n_train_all, self.n_test_all = len(train), len(test)
        self.evaluated_on = "test"
        if args.holdout is not None:  # choose weights on training images, never the test set
            train, test = data.split(train, args.holdout, args.data_seed + 2)
            self.evaluated_on = f"{len(test)} held-out training images"
            self.n_test_all = len(test)
        self.train = data.subset(train, args.train_subset, args.data_seed)
        self.test = data.subset(test, args.test_subset, args.data_seed + 1)
        if len(self.train) < args.batch_size:
            raise SystemExit(
                f"--batch-size {args.batch_size} is larger than the {len(self.train)} "
                "training images"
            )
        self.steps_per_epoch = len(self.train) // args.batch_size  # drop_last
        self.image_size = int(self.train[0][0].size[0])  # square RGB PIL images
        eval_tf = data.eval_transform(args.dataset)
        self.bank_loader = self.loader(data.Transformed(self.train, eval_tf), shuffle=False)
        self.test_loader = self.loader(data.Transformed(self.test, eval_tf), shuffle=False)
        self.device = torch.device(
            "cuda"
            if torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
            else "cpu"
        )

    def loader(self, dataset: Any, *, shuffle: bool, batch_size: int | None = None) -> Any:
        from torch.utils.data import DataLoader

        workers = self.args.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size or max(self.args.batch_size, 256),
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def model(self, run: Run, epochs: int) -> Any:
        from w2reg.adapters.lightly import create_model

        a = self.args
        extra: dict[str, Any] = {}
        if a.pred_hidden_dim is not None and run.method in ("nnclr", "byol", "simsiam"):
            extra["pred_hidden_dim"] = a.pred_hidden_dim
        backbone, feature_dim = backbones.build(a, self.image_size)
        return create_model(
            run.method,
            **arms.model_kwargs(run.arm, run.method, epochs),
            batch_size=a.batch_size,
            max_epochs=epochs,
            lr=a.lr,
            backbone=backbone,
            feature_dim=feature_dim,
            proj_hidden_dim=a.proj_hidden_dim,
            proj_output_dim=a.proj_output_dim,
            **extra,
        )

    def pretrain(
        self,
        run: Run,
        epochs: int,
        *,
        max_steps: int = -1,
        bar: Any = None,
        callbacks: Sequence[Any] = (),
    ) -> Any:
        """Seed, build, fit; returns ``(model on the device, epoch timer, trainer metrics)``."""
        import importlib

        pl = importlib.import_module(evaluation.LIGHTNING)
        pl.seed_everything(run.seed, workers=True)
        model = self.model(run, epochs)
        ssl_tf = data.ssl_transform(run.method, self.args.dataset)
        loader = self.loader(
            data.Transformed(self.train, ssl_tf), shuffle=True, batch_size=self.args.batch_size
        )
        timer = _EpochTimer(bar)
        trainer = pl.Trainer(
            max_epochs=epochs,
            max_steps=max_steps,
            accelerator=self.args.accelerator,
            devices=1,
            precision=self.args.precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer, *callbacks],
        )
        trainer.fit(model, loader)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        return model.to(self.device), timer, metrics

    def evaluate(self, model: Any, method: str) -> dict[str, Any]:
        a = self.args
        start, cpu_start = time.perf_counter(), time.process_time()
        bank, bank_targets = evaluation.features(model, self.bank_loader)
        feats, targets = evaluation.features(model, self.test_loader)
        knn = evaluation.knn_from_features(
            bank, bank_targets, feats, targets, num_classes=self.num_classes, k=a.knn_k
        )
        probe = evaluation.feature_probe(
            bank,
            bank_targets,
            feats,
            targets,
            num_classes=self.num_classes,
            epochs=a.probe_epochs,
            seed=a.data_seed,
        )
        views_loader = self.loader(
            data.Transformed(self.test, data.ssl_transform(method, a.dataset)), shuffle=False
        )
        m = evaluation.test_metrics(
            model, self.test_loader, views_loader, lu_max_samples=a.lu_samples
        )
        return {
            "knn_top1": knn,
            "linear_top1": probe,
            "test_w2": m["w2"],
            "test_lu": m["lu"],
            "test_effective_rank": m["effective_rank"],
            "test_alignment": m["alignment"],
            "test_spectrum": m["spectrum"],
            "n_test": m["n_samples"],
            "eval_seconds": time.perf_counter() - start,
            "eval_cpu_seconds": time.process_time() - cpu_start,
        }

    def run(self, run: Run, epochs: int, bar: Any = None) -> dict[str, Any]:
        start, cpu_start = time.perf_counter(), time.process_time()
        model, timer, metrics = self.pretrain(run, epochs, bar=bar)
        pretrain_seconds = time.perf_counter() - start
        pretrain_cpu_seconds = time.process_time() - cpu_start
        reg = getattr(model, "w2reg", None)
        term_key = None
        if reg is not None:
            from w2reg.adapters.lightly import log_keys

            term_key = log_keys(reg.loss.term.name)[0] + "_epoch"
        result: dict[str, Any] = {
            "method": run.method,
            "arm": str(run.arm),
            "arm_name": run.arm.name,
            "arm_factor": run.arm.factor,
            "w2": run.arm.name == "w2",
            "seed": run.seed,
            "run": run.name,
            "w2_weight": repr(reg.loss.schedule) if reg is not None else None,
            "term": repr(reg.loss.term) if reg is not None else None,
            "train_term": metrics.get(term_key) if term_key else None,
            "epochs": epochs,
            "steps": int(model.current_step),
            "epoch_seconds": timer.seconds,
            "seconds_per_epoch": sum(timer.seconds) / max(len(timer.seconds), 1),
            "pretrain_seconds": pretrain_seconds,
            # CPU time of all this process's threads: with T threads and no competition the
            # wall time is about cpu / T; on a shared machine it shows what the run cost
            "pretrain_cpu_seconds": pretrain_cpu_seconds,
            "train_loss": metrics.get("train_loss_epoch"),
            "train_w2": metrics.get("train_w2_uniformity_epoch"),
        }
        result.update(self.evaluate(model, run.method))
        # 1-minute load average when the run ended: how busy the machine was (other programs)
        result["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return result


def _epoch_timer_base() -> type:
    import importlib

    return importlib.import_module(evaluation.LIGHTNING).Callback


class _EpochTimer(_epoch_timer_base()):  # type: ignore[misc]
    """Wall seconds of every training epoch; advances the study's progress bar per step."""

    def __init__(self, bar: Any = None) -> None:
        super().__init__()
        self.bar, self.seconds, self._start = bar, [], 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


# -- the budget --------------------------------------------------------------------------------
def calibrate(study: Study, runs: Sequence[Run], budget_s: float) -> dict[str, Any]:
    """Epochs that let ``runs`` fit in ``budget_s``, from timed steps and one evaluation.

    Every method of the plan (with W2: the dearer arm) takes ``min(steps per epoch, 7)``
    steps; the time from one step's start to the next (data loading included), without the
    first two (start-up), is its cost per step, and the rest of that fit its fixed cost per
    run. With one evaluation's time: ``epochs = (budget - calibration - runs x (fixed +
    evaluation)) / (steps per epoch x the sum of every run's cost per step)``, at least 1.
    """
    start = time.perf_counter()
    methods = list(dict.fromkeys(r.method for r in runs))
    steps = min(study.steps_per_epoch, 7)
    per_step: dict[str, float] = {}
    fixed: list[float] = []
    model = None
    for method in methods:
        timer = _StepTimer()
        t0 = time.perf_counter()
        model, _, _ = study.pretrain(
            Run(method, arms.Arm("w2"), 0), 1, max_steps=steps, callbacks=[timer]
        )
        wall = time.perf_counter() - t0
        timed = timer.intervals[2:] or timer.intervals
        per_step[method] = sum(timed) / len(timed)
        fixed.append(max(wall - steps * per_step[method], 0.0))
    assert model is not None
    eval_s = study.evaluate(model, methods[-1])["eval_seconds"]
    fixed_s = sum(fixed) / len(fixed)
    spent = time.perf_counter() - start
    one_epoch_all_runs = study.steps_per_epoch * sum(per_step[r.method] for r in runs)
    left = budget_s - spent - len(runs) * (fixed_s + eval_s)
    fitting = int(left // one_epoch_all_runs)
    epochs = max(fitting, 1)
    return {
        "seconds_per_step": per_step,
        "steps_timed": max(steps - 2, 1),
        "fixed_seconds_per_run": fixed_s,
        "eval_seconds": eval_s,
        "calibration_seconds": spent,
        "budget_seconds": budget_s,
        "epochs": epochs,
        "budget_too_small": fitting < 1,
        "estimated_seconds": spent + len(runs) * (fixed_s + eval_s) + epochs * one_epoch_all_runs,
    }


class _StepTimer(_epoch_timer_base()):  # type: ignore[misc]
    """Seconds from each training step's start to the next one's (the last: to its end)."""

    def __init__(self) -> None:
        super().__init__()
        self._marks: list[float] = []

    def _mark(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._marks.append(time.perf_counter())

    def on_train_batch_start(self, *args: Any) -> None:
        self._mark()

    def on_train_end(self, *args: Any) -> None:
        self._mark()

    @property
    def intervals(self) -> list[float]:
        return [b - a for a, b in zip(self._marks, self._marks[1:], strict=False)]


# -- main --------------------------------------------------------------------------------------
def _quiet() -> None:
    """No Lightning banners between the progress bar's lines."""
    import contextlib
    import importlib

    # lightly's benchmarking imports pytorch_lightning, which points Lightning's shared
    # rank-zero logger at its own logger and sets that to INFO: import it first, then quiet all
    with contextlib.suppress(ImportError):
        importlib.import_module("pytorch_lightning")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*Exceeds max_steps.*")


def _cpu_name() -> str:
    """The processor's model name and core count, e.g. ``"AMD EPYC 9654 (2 cores)"``."""
    name = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def _environment(args: argparse.Namespace, study: Study) -> dict[str, Any]:
    import lightly

    cuda = torch.cuda.is_available() and study.device.type == "cuda"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightly": lightly.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the study; write and return ``study.json``'s content."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _check(args)
    _quiet()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
    study = Study(args)
    runs = plan(
        args.methods,
        args.seeds,
        args.spread_methods,
        args.arms,
        args.more_arms,
        args.more_arms_methods,
    )
    out = args.out_dir
    (out / "runs").mkdir(parents=True, exist_ok=True)
    # what defines the results (not where they go, how they are shown, or a dry run)
    skip = ("out_dir", "data_dir", "plan_only", "progress")
    config = {k: v for k, v in vars(args).items() if k not in skip}
    config = json.loads(json.dumps(config, default=str))
    command = "python examples/study.py " + shlex.join(argv)

    # epochs: given, or from the calibration a previous (interrupted) run of this plan made
    plan_path = out / "plan.json"
    calibration = None
    if args.epochs is None:
        previous = json.loads(plan_path.read_text()) if plan_path.is_file() else None
        same = previous is not None and {
            k: v for k, v in previous["config"].items() if k != "epochs"
        } == {k: v for k, v in config.items() if k != "epochs"}
        if same:
            calibration = previous["calibration"]
        else:
            print("calibrating the time per epoch ...", file=sys.stderr, flush=True)
            calibration = calibrate(study, runs, 60.0 * args.budget_minutes)
        if calibration["budget_too_small"] and not args.plan_only:
            raise SystemExit(
                f"error: --budget-minutes {args.budget_minutes:g} is too small: even one "
                f"epoch of every run needs about {calibration['estimated_seconds'] / 60:.1f}"
                " min on this machine now (seconds per step: "
                + ", ".join(f"{m} {v:.2f}" for m, v in calibration["seconds_per_step"].items())
                + "); raise it, or lower --train-subset, --test-subset or --width, or "
                "run fewer --methods or --seeds"
                + (f" (measured earlier: delete {plan_path} to measure again)" if same else "")
            )
        config["epochs"] = calibration["epochs"]
    epochs = int(config["epochs"])
    key = fingerprint(config)
    if args.plan_only:
        plan_info = {
            "runs": [r.name for r in runs],
            "epochs": epochs,
            "steps_per_epoch": study.steps_per_epoch,
            "data": f"{len(study.train)} training / {len(study.test)} test images",
            "calibration": calibration,
        }
        if calibration is not None:  # the real run reuses it (delete plan.json to redo)
            reporting.write_json(
                plan_path,
                {"config": config, "calibration": calibration, "runs": [r.name for r in runs]},
            )
        print(json.dumps(plan_info, indent=2))
        return plan_info

    results: dict[str, dict[str, Any]] = {}
    pending = []
    for run in runs:
        path = out / "runs" / f"{run.name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("fingerprint") != key:
                theirs = saved.get("run_config", {})
                diff = [
                    f"{k}: {theirs.get(k, RUN_KEY_DEFAULTS.get(k))!r} there, {config[k]!r} now"
                    for k in RUN_KEYS
                    if theirs.get(k, RUN_KEY_DEFAULTS.get(k)) != config[k]
                ]
                raise SystemExit(
                    f"error: {path} comes from a different configuration ({'; '.join(diff)}); "
                    "use another --out-dir or delete its runs/ folder"
                )
            results[run.name] = saved
        else:
            pending.append(run)
    reporting.write_json(
        plan_path,
        {"config": config, "calibration": calibration, "runs": [r.name for r in runs]},
    )

    bar = None
    if args.progress and pending:
        from tqdm.auto import tqdm

        total = len(pending) * epochs * study.steps_per_epoch
        bar = tqdm(total=total, unit="step", desc="study", dynamic_ncols=True)
        if results:
            bar.write(f"resuming: {len(results)} finished runs kept, {len(pending)} to do")
    try:
        for run in pending:
            if bar is not None:
                bar.set_postfix_str(run.name)
            result = study.run(run, epochs, bar=bar)
            result["fingerprint"] = key
            result["run_config"] = run_keys(config)
            reporting.write_json(out / "runs" / f"{run.name}.json", result)
            results[run.name] = result
            line = (
                f"{run.name}: kNN {result['knn_top1']:.2f}  linear {result['linear_top1']:.2f}"
                f"  W2 {result['test_w2']:.3f}  {result['seconds_per_epoch']:.1f} s/epoch"
            )
            (bar.write if bar is not None else print)(line)
    finally:
        if bar is not None:
            bar.close()

    ordered = [results[r.name] for r in runs]
    fake = args.dataset == "fake"
    env = _environment(args, study)
    env["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    summary = report.build(
        ordered,
        config=config,
        command=command,
        data_line=(
            f"{args.dataset}: {len(study.train)} of {study.n_train_all} training images "
            f"(pre-training, kNN bank, probe), {len(study.test)} of {study.n_test_all} "
            f"{'test' if args.holdout is None else 'held-out training'} images; "
            f"{study.num_classes} classes" + (f" ({FAKE_NOTE})" if fake else "")
        ),
        calibration=calibration,
        environment=env,
    )
    reporting.write_json(out / "study.json", summary)
    (out / "study.md").write_text(report.markdown(summary))
    figure = report.figure(summary, out / "study.png")
    print(report.markdown_tables(summary))
    if fake:
        print(f"\n--dataset fake: {FAKE_NOTE}")
    written = [out / "study.json", out / "study.md", *([figure] if figure else [])]
    print("\nwritten: " + ", ".join(map(str, written)))
    return summary


if __name__ == "__main__":
    main()

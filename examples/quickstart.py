"""Quickstart: watch W2 uniformity prevent dimensional collapse (offline, CPU, about 10 s).

The script generates its own data and trains the same small encoder twice with a
non-contrastive objective that has nothing in it to spread the features out:

    plain:     L = alignment(z1, z2)                       (Wang & Isola's L_A)
    with W2:   L = alignment(z1, z2) + a * W2(z1, z2)      (Fang et al., ICLR 2024)

on the L2-normalised outputs ``z`` of a batch-normalised projector. Batch norm forbids the
trivial solution (every input mapped to one point), so plain training does the next-easiest
thing and collapses *dimensionally*: the embedding keeps a handful of directions and the rest
of the spectrum dies. The W2 term pulls the embedding towards ``N(0, I/m)`` and keeps the
spectrum flat. Both runs are measured on held-out data with the core metrics
``w2reg.w2_uniformity``, ``w2reg.effective_rank`` (RankMe) and
``w2reg.wang_isola_uniformity`` (L_U), printed side by side; the two singular-value spectra
(``w2reg.singular_values``) are written to a PNG.

The data: ``x = c A`` for ``k = 8`` latent factors ``c ~ N(0, I)`` mixed into 32 input
dimensions by a fixed random ``A``; a view is ``x`` plus Gaussian noise with 20% of the
entries masked out. Everything is seeded; a rerun prints the same numbers.

Usage::

    python examples/quickstart.py                 # writes quickstart_spectra.png
    python examples/quickstart.py --out spectra.png --steps 300
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import w2reg

INPUT_DIM = 32
LATENT_DIM = 8
EMBED_DIM = 32


def make_data(n: int, generator: torch.Generator, mixing: Tensor) -> Tensor:
    """``(n, INPUT_DIM)`` points: ``LATENT_DIM`` Gaussian factors through ``mixing``."""
    c = torch.randn(n, mixing.shape[0], generator=generator)
    return c @ mixing


def augment(
    x: Tensor, generator: torch.Generator, *, noise: float = 0.5, drop: float = 0.2
) -> Tensor:
    """A random view of each row of ``x``: additive Gaussian noise, then random masking."""
    x = x + noise * torch.randn(x.shape, generator=generator)
    keep = (torch.rand(x.shape, generator=generator) >= drop).to(x.dtype)
    return x * keep


class Encoder(nn.Module):
    """A small MLP encoder + projector ending in a batch norm without affine parameters."""

    def __init__(self, in_dim: int = INPUT_DIM, hidden: int = 128, out_dim: int = EMBED_DIM):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
            nn.BatchNorm1d(out_dim, affine=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def train(
    data: Tensor,
    *,
    w2_weight: float,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> Encoder:
    """Train a fresh :class:`Encoder` (same seed, same batches) on alignment [+ a * W2]."""
    torch.manual_seed(seed)
    encoder = Encoder()
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    encoder.train()
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=gen)
        x = data[idx]
        z1, z2 = encoder(augment(x, gen)), encoder(augment(x, gen))
        loss = w2reg.alignment(z1, z2)
        if w2_weight > 0:
            loss = loss + w2_weight * w2reg.w2_uniformity(torch.cat([z1, z2]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return encoder


@torch.no_grad()
def evaluate(encoder: Encoder, data: Tensor, generator: torch.Generator) -> dict[str, object]:
    """Metrics of the L2-normalised projections of ``data`` (eval mode)."""
    encoder.eval()
    z = F.normalize(encoder(data), dim=1)
    z1 = encoder(augment(data, generator))
    z2 = encoder(augment(data, generator))
    return {
        "w2": float(w2reg.w2_uniformity(z)),
        "effective_rank": float(w2reg.effective_rank(z)),
        "uniformity_lu": float(w2reg.wang_isola_uniformity(z)),
        "alignment": float(w2reg.alignment(z1, z2)),
        "spectrum": w2reg.singular_values(z).tolist(),
    }


ROWS = [
    ("w2", "W2 uniformity (lower = more uniform)", "{:.3f}"),
    ("effective_rank", f"effective rank (RankMe, max {EMBED_DIM})", "{:.1f}"),
    ("uniformity_lu", "L_U, Wang-Isola (lower = more uniform)", "{:.3f}"),
    ("alignment", "alignment L_A (lower = views closer)", "{:.3f}"),
]


def format_table(plain: dict[str, object], reg: dict[str, object]) -> str:
    """The side-by-side comparison printed by :func:`main`."""
    width = max(len(label) for _, label, _ in ROWS)
    lines = [f"{'metric (held-out data)':<{width}}  {'plain':>8}  {'with W2':>8}"]
    lines.append("-" * len(lines[0]))
    for key, label, fmt in ROWS:
        lines.append(f"{label:<{width}}  {fmt.format(plain[key]):>8}  {fmt.format(reg[key]):>8}")
    return "\n".join(lines)


def plot_spectra(spectra: dict[str, Sequence[float]], path: Path) -> Path:
    """Write the singular-value spectra (log scale) to a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, values in spectra.items():
        vals = [max(v, 1e-8) for v in values]
        ax.semilogy(range(1, len(vals) + 1), vals, marker="o", markersize=3, label=label)
    if spectra:
        m = len(next(iter(spectra.values())))
        ax.axhline(
            m**-0.5, color="grey", linestyle="--", linewidth=1, label="uniform target 1/sqrt(m)"
        )
    ax.set_xlabel("singular value index")
    ax.set_ylabel("singular value of normalised embeddings")
    ax.set_title("Spectrum of the held-out embeddings")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train one small encoder with and without the W2 uniformity term on "
        "generated data and compare W2, effective rank and L_U (offline, CPU).",
    )
    p.add_argument("--steps", type=int, default=600, help="training steps per run (600)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size (256)")
    p.add_argument("--w2-weight", type=float, default=1.0, help="weight of the W2 term (1.0)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument("--train-size", type=int, default=4096, help="generated training points")
    p.add_argument("--test-size", type=int, default=2048, help="generated held-out points")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: the model is tiny, more threads only add overhead)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("quickstart_spectra.png"),
        help="where to write the spectra PNG (quickstart_spectra.png)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run both trainings, print the table, write the PNG; return the numbers."""
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.batch_size < 2:
        raise SystemExit("--steps must be >= 1 and --batch-size >= 2")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict[str, object]:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    mixing = torch.randn(LATENT_DIM, INPUT_DIM, generator=gen) / LATENT_DIM**0.5
    train_x = make_data(args.train_size, gen, mixing)
    test_x = make_data(args.test_size, gen, mixing)

    results: dict[str, object] = {}
    for name, weight in (("plain", 0.0), ("w2", args.w2_weight)):
        t0 = time.perf_counter()
        enc = train(
            train_x,
            w2_weight=weight,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
        )
        metrics = evaluate(enc, test_x, torch.Generator().manual_seed(args.seed + 2))
        metrics["train_seconds"] = time.perf_counter() - t0
        results[name] = metrics
        label = "plain (alignment only)" if name == "plain" else f"with W2 (a={weight:g})"
        print(f"trained {label}: {args.steps} steps in {metrics['train_seconds']:.1f}s")

    plain, reg = results["plain"], results["w2"]
    print()
    print(format_table(plain, reg))  # type: ignore[arg-type]
    try:
        png: Path | None = plot_spectra(
            {
                "plain (alignment only)": plain["spectrum"],  # type: ignore[index]
                f"with W2 (a={args.w2_weight:g})": reg["spectrum"],  # type: ignore[index]
            },
            args.out,
        )
    except ImportError:
        png = None
    results["png"] = None if png is None else str(png)
    results["seconds"] = time.perf_counter() - start
    where = f"spectra written to {png}" if png else "matplotlib not installed: no PNG"
    print(f"\n{where}  (total {results['seconds']:.0f}s)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

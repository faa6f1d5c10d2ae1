"""The example scripts' ``--backbone`` and ``--backbone-args``: the CIFAR ResNet-18 or a timm model.

``--backbone resnet18`` (default) is the paper's network at ``--width``; any other name is a
timm model built by :func:`w2reg.adapters.backbones.timm_backbone` at the data's image size
with ``--backbone-args KEY=VALUE ...`` (values are Python literals: ``patch_size=4``,
``mlp_ratio=2.0``, ``global_pool='avg'``), e.g. a small ViT for 32x32 images::

    --backbone vit_tiny_patch16_224 --backbone-args patch_size=4 depth=6

(timm's ViT-Tiny, embed_dim 192, 3 heads, at patch 4: 64 patches of 4x4, depth 6).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from typing import Any

DEFAULT = "resnet18"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backbone",
        default=DEFAULT,
        help="resnet18 (the CIFAR ResNet-18 at --width) or a timm model name, built with "
        "pretrained=False, num_classes=0 at the data's image size (needs timm)",
    )
    p.add_argument(
        "--backbone-args",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="keyword arguments of the timm model, e.g. patch_size=4 depth=6 (values are "
        "Python literals)",
    )


def parse_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``["patch_size=4", "depth=6"]`` -> ``{"depth": 6, "patch_size": 4}`` (sorted keys).

    A value that is not a Python literal stays a string (``global_pool=avg``).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SystemExit(f"--backbone-args: expected KEY=VALUE, got {item!r}")
        if key in out:
            raise SystemExit(f"--backbone-args: {key} given twice")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key] = raw.strip()
    return dict(sorted(out.items()))


def check(args: argparse.Namespace) -> None:
    """Replace ``args.backbone_args`` by its dict; refuse timm arguments for the ResNet."""
    if not isinstance(args.backbone_args, dict):
        args.backbone_args = parse_kwargs(args.backbone_args)
    if args.backbone == DEFAULT and args.backbone_args:
        raise SystemExit(
            f"--backbone-args {sorted(args.backbone_args)} are for timm backbones; "
            f"--backbone {DEFAULT} takes --width"
        )


def build(args: argparse.Namespace, image_size: int) -> tuple[Any, int]:
    """``(module, feature_dim)`` of ``args.backbone`` (after :func:`check`)."""
    from w2reg.adapters.backbones import build_backbone

    try:
        return build_backbone(
            args.backbone, width=args.width, image_size=image_size, **args.backbone_args
        )
    except (ValueError, ModuleNotFoundError) as err:
        raise SystemExit(f"error: --backbone {args.backbone}: {err}") from None


def describe(args: argparse.Namespace) -> str:
    """``"resnet18 (width 16)"`` or ``"vit_tiny_patch16_224 (depth=6, patch_size=4)"``."""
    if args.backbone == DEFAULT:
        return f"{DEFAULT} (width {args.width})"
    kw = ", ".join(f"{k}={v!r}" for k, v in args.backbone_args.items())
    return f"{args.backbone} ({kw})" if kw else args.backbone

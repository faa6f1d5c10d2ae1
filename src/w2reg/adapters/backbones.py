"""Backbones of the ready models and the example scripts.

:func:`cifar_resnet18` is the paper's network (torchvision's ResNet-18 with the CIFAR stem);
:func:`timm_backbone` is any timm model as a feature extractor at the data's image size (a
ViT at 32x32 with patch 4, for example); :func:`build_backbone` picks one of them by name
(the examples' ``--backbone``). Each returns what the ready lightly models take as
``backbone=`` and ``feature_dim=``. Imports torchvision / timm only when a backbone is built.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from w2reg._validation import check_positive_int

from ._imports import missing

__all__ = ["RESNET18", "build_backbone", "cifar_resnet18", "feature_dim", "timm_backbone"]

#: The name of the paper's backbone for :func:`build_backbone` (anything else is timm's).
RESNET18 = "resnet18"


def cifar_resnet18(width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs, at base width ``width`` (64: the paper's).

    3x3 stride-1 ``conv1``, no max-pool, no ``fc``; torchvision's ``BasicBlock`` stages of
    ``[2, 2, 2, 2]`` blocks with ``width * (1, 2, 4, 8)`` channels and torchvision's weight
    initialisation, so every width has the parameter names of ``torchvision.models.resnet18``.
    ``width=16`` is the "quarter width" network (16-32-64-128) of the CPU study: about 12x
    fewer operations per image. Maps ``(B, 3, H, W)`` images to ``(B, 8 * width)`` features
    (512 at full width).

    Example:
        >>> import torch
        >>> cifar_resnet18(16)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """
    import torchvision

    check_positive_int(width, "width")
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    if width != 64:
        block = torchvision.models.resnet.BasicBlock
        net.inplanes = width  # _make_layer grows the stages from here, as ResNet.__init__ does
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(block, width, 2)
        net.layer2 = net._make_layer(block, 2 * width, 2, stride=2)
        net.layer3 = net._make_layer(block, 4 * width, 2, stride=2)
        net.layer4 = net._make_layer(block, 8 * width, 2, stride=2)
        for module in net.modules():  # the initialisation ResNet.__init__ gives its layers
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


@torch.no_grad()
def feature_dim(backbone: nn.Module, image_size: int = 32, in_chans: int = 3) -> int:
    """Width of ``backbone``'s features: one forward of two zero images in eval mode.

    The module's train/eval mode is restored afterwards; its parameters are not changed
    (batch-norm running statistics are not updated in eval mode).

    Example:
        >>> feature_dim(cifar_resnet18(16))
        128
    """
    check_positive_int(image_size, "image_size")
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = backbone.training
    backbone.eval()
    try:
        out = backbone(torch.zeros(2, in_chans, image_size, image_size, device=device))
    finally:
        backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the backbone must map (B, C, H, W) images to (B, D) features, got {got}")
    return int(out.flatten(start_dim=1).shape[1])


def timm_backbone(name: str, image_size: int = 32, **kwargs: Any) -> tuple[nn.Module, int]:
    """A timm model as a backbone: ``(module, feature_dim)``, features ``(B, feature_dim)``.

    ``timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size,
    **kwargs)``: no weights are downloaded, the classifier is removed (``num_classes=0``:
    ``forward`` returns the pooled features, for a ViT its class token), and models that
    take an image size (ViTs, Swin, ...) are built for ``image_size``; models that do not
    (CNNs, which take any size) are built without it. ``kwargs`` go to the model: for a
    ViT ``patch_size``, ``depth``, ``embed_dim``, ``num_heads``, ``mlp_ratio``, ...
    ``feature_dim`` comes from one forward of zero images (:func:`feature_dim`).

    A small ViT for 32x32 images (64 patches of 4x4; timm's ``vit_tiny`` is
    embed_dim 192, 3 heads, depth 12)::

        backbone, dim = timm_backbone("vit_tiny_patch16_224", 32, patch_size=4, depth=6)
        model = create_model("byol", backbone=backbone, feature_dim=dim)   # dim == 192

    Raises:
        ModuleNotFoundError: timm is not installed (the message says how to install it).
        ValueError: an unknown model name, or arguments the model does not take.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a timm model name, got {name!r}")
    check_positive_int(image_size, "image_size")
    try:
        import timm
    except ImportError as err:
        raise missing(f"timm_backbone({name!r})", "timm", err) from err
    if "pretrained" in kwargs or "num_classes" in kwargs:
        raise ValueError(
            "timm_backbone builds without weights and without a classifier "
            "(pretrained=False, num_classes=0); do not pass pretrained= or num_classes="
        )
    try:
        try:
            model = timm.create_model(
                name, pretrained=False, num_classes=0, img_size=image_size, **kwargs
            )
        except TypeError as err:
            if "img_size" not in str(err):
                raise
            model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as err:
        if "Unknown model" not in str(err):
            raise
        raise ValueError(
            f"timm has no model {name!r} (timm {timm.__version__}); list them with "
            "timm.list_models('vit_*')"
        ) from None
    except TypeError as err:
        raise ValueError(f"timm model {name!r} does not take {sorted(kwargs)}: {err}") from None
    return model, feature_dim(model, image_size, int(kwargs.get("in_chans", 3)))


def build_backbone(
    name: str = RESNET18, *, width: int = 64, image_size: int = 32, **kwargs: Any
) -> tuple[nn.Module, int]:
    """``(module, feature_dim)`` for the examples' ``--backbone``: ``"resnet18"`` is
    :func:`cifar_resnet18` ``(width)`` (``8 * width`` features; ``kwargs`` not allowed), any
    other name :func:`timm_backbone` ``(name, image_size, **kwargs)`` (``width`` unused).

    Example:
        >>> _, dim = build_backbone("resnet18", width=16)
        >>> dim
        128
    """
    if name == RESNET18:
        if kwargs:
            raise ValueError(
                f"the {RESNET18!r} backbone takes only width, got {sorted(kwargs)} (timm "
                "keyword arguments are for timm backbones)"
            )
        width = check_positive_int(width, "width")
        return cifar_resnet18(width), 8 * width
    return timm_backbone(name, image_size, **kwargs)

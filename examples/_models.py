"""Backbones of the example scripts: the CIFAR ResNet-18 at full or reduced width.

Width ``w`` gives stages of ``w, 2w, 4w, 8w`` channels and ``8w``-d features: 64 is the
paper's ResNet-18 (512-d, ``w2reg.adapters.lightly_methods.cifar_resnet18``), 16 the
"quarter width" network (16-32-64-128, 128-d) that makes CPU studies possible: about 12x
fewer operations per image on 2 cores in our measurement.
"""

from __future__ import annotations

from torch import nn


def cifar_resnet18(width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs at base width ``width``.

    3x3 stride-1 ``conv1``, no max-pool, no ``fc``; torchvision's ``BasicBlock`` stages of
    ``[2, 2, 2, 2]`` blocks with ``width * (1, 2, 4, 8)`` channels, torchvision's weight
    initialisation (Kaiming-normal convolutions, unit BatchNorm). Maps ``(B, 3, H, W)``
    images to ``(B, 8 * width)`` features.

    Example:
        >>> import torch
        >>> net = cifar_resnet18(16)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """
    from torchvision.models.resnet import BasicBlock, ResNet

    from w2reg.adapters.lightly_methods import cifar_resnet18 as full_width

    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if width == 64:
        return full_width()
    net = ResNet(BasicBlock, [2, 2, 2, 2])
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.maxpool = nn.Identity()
    net.layer1 = net._make_layer(BasicBlock, width, 2)
    net.layer2 = net._make_layer(BasicBlock, 2 * width, 2, stride=2)
    net.layer3 = net._make_layer(BasicBlock, 4 * width, 2, stride=2)
    net.layer4 = net._make_layer(BasicBlock, 8 * width, 2, stride=2)
    net.fc = nn.Identity()
    for module in net.modules():  # the initialisation torchvision's ResNet gives its layers
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return net

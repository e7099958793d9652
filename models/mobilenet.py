"""MobileNet-V2 in plain torch (no torchvision), for ImageNet or CIFAR-10.

    >>> model = mobilenet_v2(num_classes=10, input_size=32)
    >>> model(torch.zeros(2, 3, 32, 32)).shape  # doctest: +SKIP
    torch.Size([2, 10])

At `input_size=224` the layers have the shapes of `torchvision.models.mobilenet_v2` (width 1.0):
a 3x3 stride-2 stem to 32 channels, seventeen inverted-residual blocks (1x1 expand, 3x3 depthwise,
1x1 project, ReLU6), a 1x1 convolution to 1280 channels, global average pool and a dropout-linear
classifier. At `input_size=32` (CIFAR-10) the stem and the first 24-channel block have stride 1
instead of 2, so the network downsamples 8x rather than 32x.
"""

from __future__ import annotations

import torch
from torch import nn

from pconv_mlir.models.common import init_weights

# expansion t, output channels c, repeats n, stride s of the first repeat (torchvision's table)
_INVERTED_RESIDUAL_SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _conv_bn_relu6(
    in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    padding = (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_planes),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when `expand_ratio` is 1), 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_planes * expand_ratio
        self.use_res_connect = stride == 1 and in_planes == out_planes
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(in_planes, hidden, kernel_size=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_planes, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_planes),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2 (width 1.0): `features`, global average pool, `classifier`."""

    def __init__(self, num_classes: int, input_size: int) -> None:
        super().__init__()
        cifar = input_size < 224
        in_planes, last_planes = 32, 1280
        layers: list[nn.Module] = [_conv_bn_relu6(3, in_planes, stride=1 if cifar else 2)]
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            if cifar and c == 24:
                s = 1
            for i in range(n):
                layers.append(InvertedResidual(in_planes, c, s if i == 0 else 1, t))
                in_planes = c
        layers.append(_conv_bn_relu6(in_planes, last_planes, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_planes, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = 1000, input_size: int = 224) -> MobileNetV2:
    """MobileNet-V2 (width 1.0) with random weights.

    `input_size=224`: torchvision's `mobilenet_v2`; `input_size=32`: the CIFAR-10 variant (stride 1
    in the stem and in the first 24-channel block).
    """
    return MobileNetV2(num_classes, input_size)

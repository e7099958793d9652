"""VGG-16 in plain torch (no torchvision), for ImageNet (224x224) or CIFAR-10 (32x32).

    >>> vgg16(num_classes=10, input_size=32)(torch.zeros(1, 3, 32, 32)).shape  # doctest: +SKIP
    torch.Size([1, 10])

At `input_size=224` the layers have the shapes of `torchvision.models.vgg16` (or `vgg16_bn` with
`batch_norm=True`): thirteen 3x3 convolutions, five 2x2 max-pools, a 7x7 adaptive average pool and
a 25088-4096-4096-classes classifier. At `input_size=32` the features are the same, the last pool
leaves 512x1x1, and the classifier is a single 512 -> classes linear layer (the usual CIFAR-10 VGG).
"""

from __future__ import annotations

import torch
from torch import nn

from pconv_mlir.models.common import init_weights

VGG16_CONFIG: list[int | str] = [
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
]  # fmt: skip
"""Output channels of each 3x3 convolution; "M" is a 2x2 stride-2 max-pool."""


class VGG(nn.Module):
    """A VGG network: `features` (convolutions and pools), `avgpool`, then `classifier`."""

    def __init__(
        self, config: list[int | str], num_classes: int, input_size: int, batch_norm: bool
    ) -> None:
        super().__init__()
        self.features = _make_features(config, batch_norm)
        self.avgpool: nn.Module
        self.classifier: nn.Sequential
        if input_size >= 224:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(nn.Linear(512, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _make_features(config: list[int | str], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


def vgg16(num_classes: int = 1000, input_size: int = 224, batch_norm: bool = False) -> VGG:
    """VGG-16 (configuration D) with random weights.

    `input_size=224` gives the ImageNet network (torchvision's `vgg16`, or `vgg16_bn` with
    `batch_norm=True`); `input_size=32` gives the CIFAR-10 variant with a 512 -> `num_classes`
    classifier. Any input size that is a multiple of 32 works; below 224 the CIFAR head is used.
    """
    return VGG(VGG16_CONFIG, num_classes, input_size, batch_norm)

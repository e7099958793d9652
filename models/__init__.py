"""Plain-torch model definitions (no torchvision, nothing downloaded), with random weights.

Every factory takes `(num_classes=1000, input_size=224)`: `input_size=224` builds the ImageNet
network with torchvision's layer shapes, `input_size=32` the usual CIFAR-10 variant. Weights are
random and deterministic under `torch.manual_seed`.

    >>> from pconv_mlir.models import resnet50, conv3x3_layers
    >>> resnet50(num_classes=10, input_size=32)      # doctest: +SKIP
    >>> conv3x3_layers("vgg16")[0]                   # doctest: +SKIP
    ConvLayer(name='features.0', C=3, F=64, H=224, W=224, stride=1)

`DigitsCNN` (in `digits.py`) is imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from .mobilenet import mobilenet_v2
from .resnet import resnet18, resnet50
from .vgg import vgg16

# DigitsCNN is importable by name but not listed here, so `import *` works without digits.py.
__all__ = [
    "MODELS",
    "ConvLayer",
    "conv3x3_layers",
    "mobilenet_v2",
    "resnet18",
    "resnet50",
    "vgg16",
]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
}
"""The model factories by name."""


class ConvLayer(NamedTuple):
    """One convolution of a network: module path, input channels C, filters F, input H x W."""

    name: str
    C: int
    F: int
    H: int
    W: int
    stride: int


def conv3x3_layers(name: str, input_size: int = 224) -> list[ConvLayer]:
    """The dense 3x3 convolutions (groups 1, dilation 1) of model `name`, in execution order.

    `H` and `W` are the spatial size of the layer's input before padding. Depthwise convolutions
    are left out (PatDNN prunes only the dense 3x3 layers). The shapes are found by running the
    model on the `meta` device, so this is instant and allocates no weights.

        >>> [(l.C, l.F, l.H, l.stride) for l in conv3x3_layers("resnet50")][:2]  # doctest: +SKIP
        [(64, 64, 56, 1), (64, 64, 56, 1)]
    """
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}', expected one of {', '.join(MODELS)}")
    with torch.device("meta"):
        model = MODELS[name](input_size=input_size)
        x = torch.empty(1, 3, input_size, input_size)
    layers: list[ConvLayer] = []

    def recorder(path: str) -> Callable[..., None]:
        def record(conv: nn.Conv2d, args: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
            _, c, h, w = args[0].shape
            layers.append(ConvLayer(path, c, conv.out_channels, h, w, conv.stride[0]))

        return record

    handles = [
        module.register_forward_hook(recorder(path))
        for path, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
        and module.kernel_size == (3, 3)
        and module.groups == 1
        and module.dilation == (1, 1)
    ]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return layers


def __getattr__(name: str) -> Any:
    # DigitsCNN lives in digits.py, written separately; import it only when asked for.
    if name == "DigitsCNN":
        from .digits import DigitsCNN

        return DigitsCNN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

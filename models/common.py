"""What the model definitions share."""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation for VGG and MobileNet-V2 (deterministic under
    `torch.manual_seed`): Kaiming-normal convs (fan-out), unit BatchNorm, N(0, 0.01) linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)

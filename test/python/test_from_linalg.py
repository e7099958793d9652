"""pconv-from-linalg keeps the numbers: the rewritten module computes what torch computes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from pconv_mlir import models, pruning
from pconv_mlir.dialects.pconv import Conv2dOp
from pconv_mlir.frontend import import_torch
from pconv_mlir.interpreter import run_function
from pconv_mlir.ir import make_context
from pconv_mlir.pipeline import Pipeline


def strided_cnn() -> nn.Module:
    """3x3 convs with stride 2 and padding 0 and 1, a 1x1 conv, ReLU, pooling, a linear head."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 7, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(7, 11, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(11, 9, 3, stride=2, padding=1),
        nn.Conv2d(9, 9, 1),
        nn.ReLU(),
        nn.Conv2d(9, 5, 3),
        nn.Flatten(),
        nn.LazyLinear(4),
    ).eval()


def rewrite(model: nn.Module, x: torch.Tensor, spec: str):
    ctx = make_context(own_resources=True)
    module = import_torch(model, x, ctx=ctx)
    Pipeline(spec).run(module, ctx)
    return module, ctx


@pytest.mark.parametrize("batch", [1, 2])
def test_infer_mode_matches_torch(batch):
    model = strided_cnn()
    x = torch.randn(batch, 3, 17, 15)
    model(x)  # materialise the lazy linear layer
    pruning.prune_model(model, patterns=6, connectivity=2.5)
    module, ctx = rewrite(model, x, "pconv-from-linalg")
    convs = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert len(convs) == 5  # the 3x3 pattern layers and the 1x1 conv (a dense 1x1 layer)
    assert [op.patterns.kernel_window for op in convs].count((1, 1)) == 1
    assert {tuple(op.strides.get_values()) for op in convs} == {(1, 1), (2, 2)}
    assert {tuple(op.padding.get_values()) for op in convs} == {(0, 0), (1, 1)}
    assert sum(op.relu is not None for op in convs) == 3
    (got,) = run_function(module, "main", x.numpy(), ctx=ctx)
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


class Downsample(nn.Module):
    """A ResNet downsampling block's tail: two convs whose results meet in one add + ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(5, 6, 1)
        self.shortcut = nn.Conv2d(3, 6, 1, stride=2)
        self.pre = nn.Conv2d(3, 5, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(self.pre(x)) + self.shortcut(x))


def test_an_add_of_two_convs_folds_into_one_of_them():
    """Both convs are the sole producers of the add's operands: one conv takes the add and
    the ReLU, the other stays a plain layer (folding both crashed on ResNet-50)."""
    torch.manual_seed(2)
    model = Downsample().eval()
    x = torch.randn(2, 3, 11, 9)
    module, ctx = rewrite(model, x, "pconv-from-linalg")
    convs = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert len(convs) == 3
    assert sum(op.residual is not None for op in convs) == 1
    assert sum(op.relu is not None for op in convs) == 1
    (got,) = run_function(module, "main", x.numpy(), ctx=ctx)
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_pointwise_false_leaves_only_the_1x1_convs_that_keep_every_kernel():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 5, 1)).eval()
    with torch.no_grad():
        model[2].weight[1, 2] = 0  # one kernel of the second conv removed
    x = torch.randn(1, 3, 5, 7)
    module, ctx = rewrite(model, x, "pconv-from-linalg{pointwise=false}")
    convs = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert len(convs) == 1 and convs[0].weight.type.get_shape() == (5, 4, 1, 1)
    assert sum(op.name == "linalg.conv_2d_nchw_fchw" for op in module.walk()) == 1
    (got,) = run_function(module, "main", x.numpy(), ctx=ctx)
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    module, _ = rewrite(model, x, "pconv-from-linalg")
    assert sum(isinstance(op, Conv2dOp) for op in module.walk()) == 2


def test_project_mode_is_prune_model():
    """The one-shot projection of the pass is `pruning.prune_model` with the same settings."""
    model = strided_cnn()
    x = torch.randn(1, 3, 17, 15)
    model(x)
    module, ctx = rewrite(model, x, "pconv-from-linalg{mode=project patterns=5 connectivity=3.0}")
    reference = copy.deepcopy(model)
    pruning.prune_model(reference, patterns=5, connectivity=3.0)
    (got,) = run_function(module, "main", x.numpy(), ctx=ctx)
    np.testing.assert_allclose(got, reference(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, model(x).detach().numpy(), atol=1e-3)


def test_vgg16_every_3x3_conv_becomes_pconv_with_8_patterns():
    torch.manual_seed(0)
    model = models.vgg16(num_classes=10, input_size=32)
    pruning.prune_model(model, patterns=8, connectivity=3.6)
    module, _ = rewrite(model, torch.randn(1, 3, 32, 32), "pconv-from-linalg")
    convs = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert len(convs) == 13
    assert all(len(op.patterns) == 8 for op in convs)
    assert not [op for op in module.walk() if op.name == "linalg.conv_2d_nchw_fchw"]

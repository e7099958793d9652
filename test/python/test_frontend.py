"""The model zoo (`pconv_mlir.models`) and the torch front end (`pconv_mlir.frontend`)."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseResourceAttr, ModuleOp
from xdsl.dialects.linalg.ops import BroadcastOp, Conv2DNchwFchwOp, GenericOp

from pconv_mlir import models
from pconv_mlir.elements import ElementsError, constant_array, resource_attr
from pconv_mlir.errors import FrontendError
from pconv_mlir.frontend import import_torch
from pconv_mlir.ir import default_context, make_context, parse_module, print_module

INPUTS = Path(__file__).parents[1] / "frontend" / "inputs"

# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

# Parameter counts of torchvision's models with 1000 classes (their model cards).
TORCHVISION_PARAMETERS = {
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_imagenet_models_have_torchvision_parameter_counts(name: str) -> None:
    with torch.device("meta"):
        model = models.MODELS[name]()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMETERS[name]


def test_vgg16_bn_has_torchvision_parameter_count() -> None:
    with torch.device("meta"):
        model = models.vgg16(batch_norm=True)
    assert sum(p.numel() for p in model.parameters()) == 138_365_992


@pytest.mark.parametrize("size", [224, 32])
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_models_run_forward(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = models.MODELS[name](num_classes=10, input_size=size).eval()
    batch = 1 if size == 224 else 2
    with torch.no_grad():
        y = model(torch.randn(batch, 3, size, size))
    assert y.shape == (batch, 10)
    assert torch.isfinite(y).all()


def test_cifar_heads_and_stems() -> None:
    assert models.vgg16(num_classes=10, input_size=32).classifier[-1].in_features == 512
    resnet = models.resnet18(input_size=32)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, nn.Identity)
    assert models.resnet50(input_size=224).conv1.kernel_size == (7, 7)


def test_models_are_deterministic_under_manual_seed() -> None:
    torch.manual_seed(3)
    a = models.mobilenet_v2(num_classes=10, input_size=32).state_dict()
    torch.manual_seed(3)
    b = models.mobilenet_v2(num_classes=10, input_size=32).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conv3x3_layers() -> None:
    vgg = models.conv3x3_layers("vgg16")
    assert len(vgg) == 13
    assert vgg[0] == models.ConvLayer("features.0", 3, 64, 224, 224, 1)
    assert [(c.C, c.F, c.H) for c in vgg[-3:]] == [(512, 512, 14)] * 3
    resnet = models.conv3x3_layers("resnet50")
    assert len(resnet) == 16
    assert resnet[0] == models.ConvLayer("layer1.0.conv2", 64, 64, 56, 56, 1)
    assert resnet[3] == models.ConvLayer("layer2.0.conv2", 128, 128, 56, 56, 2)
    assert [layer.stride for layer in resnet].count(2) == 3
    assert resnet[-1] == models.ConvLayer("layer4.2.conv2", 512, 512, 7, 7, 1)
    assert models.conv3x3_layers("resnet18", input_size=32)[0].H == 32
    with pytest.raises(ValueError, match="unknown model"):
        models.conv3x3_layers("alexnet")


# --------------------------------------------------------------------------------------------
# front end on a small CNN
# --------------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, stride=2)
        self.conv3 = nn.Conv2d(5, 6, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))


def convs(module: ModuleOp) -> list[Conv2DNchwFchwOp]:
    return [op for op in module.walk() if isinstance(op, Conv2DNchwFchwOp)]


def weight_attr(conv: Conv2DNchwFchwOp):
    owner = conv.inputs[1].owner
    assert isinstance(owner, arith.ConstantOp)
    return owner.value


@pytest.fixture(scope="module")
def small() -> tuple[SmallCNN, Context, ModuleOp]:
    torch.manual_seed(0)
    model = SmallCNN()
    ctx = make_context()
    return model, ctx, import_torch(model, torch.randn(1, 3, 7, 7), ctx=ctx)


def test_import_gives_convs_with_the_torch_weights(small) -> None:
    model, ctx, module = small
    found = convs(module)
    assert len(found) == 3
    for conv, torch_conv in zip(found, [model.conv1, model.conv2, model.conv3], strict=True):
        attr = weight_attr(conv)
        assert isinstance(attr, DenseResourceAttr)
        weights = constant_array(ctx, attr)
        assert weights.dtype == np.float32
        assert np.array_equal(weights, torch_conv.weight.detach().numpy())
    assert [c.strides.get_values() for c in found] == [(1, 1), (2, 2), (1, 1)]


def test_bias_is_the_broadcast_accumulator(small) -> None:
    model, ctx, module = small
    accumulator = convs(module)[0].outputs[0].owner
    assert isinstance(accumulator, BroadcastOp)
    bias = accumulator.operands[0].owner
    assert isinstance(bias, arith.ConstantOp)
    assert np.array_equal(constant_array(ctx, bias.value), model.conv1.bias.detach().numpy())


def test_import_restores_training_mode() -> None:
    model = SmallCNN().train()
    import_torch(model, torch.randn(1, 3, 7, 7), ctx=make_context())
    assert model.training


def test_round_trip_keeps_the_weights(small) -> None:
    model, ctx, module = small
    text = print_module(module, ctx)
    assert "{-#" in text and "dialect_resources" in text
    fresh = make_context(own_resources=True)
    again = parse_module(text, fresh)
    assert print_module(again, fresh) == text
    for conv, torch_conv in zip(convs(again), [model.conv1, model.conv2, model.conv3], strict=True):
        weights = constant_array(fresh, weight_attr(conv))
        assert np.array_equal(weights, torch_conv.weight.detach().numpy())


def test_reparsing_into_the_same_context_renames_keys(small) -> None:
    model, ctx, module = small
    again = parse_module(print_module(module, ctx), ctx)
    old, new = weight_attr(convs(module)[0]), weight_attr(convs(again)[0])
    assert old.resource_handle != new.resource_handle
    assert np.array_equal(constant_array(ctx, old), constant_array(ctx, new))


def test_contexts_share_resources_unless_they_own_them(small) -> None:
    model, ctx, module = small
    attr = weight_attr(convs(module)[0])
    assert np.array_equal(constant_array(make_context(), attr), constant_array(ctx, attr))
    own = make_context(own_resources=True)
    with pytest.raises(ElementsError, match="has no data in this context"):
        constant_array(own, attr)
    again = parse_module(print_module(module, ctx), own)
    assert weight_attr(convs(again)[0]) == attr  # no clash in a storage of its own
    assert np.array_equal(constant_array(own, attr), model.conv1.weight.detach().numpy())


def test_parsing_the_same_file_twice_keeps_the_weights() -> None:
    text = (INPUTS / "pattern_cnn_resource.mlir").read_text()
    first, second = parse_module(text, make_context()), parse_module(text, make_context())
    for a, b in zip(convs(first), convs(second), strict=True):
        assert np.array_equal(
            constant_array(default_context(), weight_attr(a)),
            constant_array(default_context(), weight_attr(b)),
        )


def test_default_context_twice() -> None:
    torch.manual_seed(1)
    model = SmallCNN()
    x = torch.randn(1, 3, 7, 7)
    first, second = import_torch(model, x), import_torch(model, x)
    for module in (first, second):
        weights = constant_array(default_context(), weight_attr(convs(module)[1]))
        assert np.array_equal(weights, model.conv2.weight.detach().numpy())


@pytest.mark.parametrize(
    "dtype", ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]
)
def test_resource_attr_round_trip(dtype: str) -> None:
    ctx = make_context(own_resources=True)
    array = (np.arange(24).reshape(2, 3, 4) % 5 - 2).astype(dtype)
    attr = resource_attr(ctx, "blob", array)
    assert attr.type.get_shape() == (2, 3, 4)
    back = constant_array(ctx, attr)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    assert resource_attr(ctx, "blob", array).resource_handle.data == "blob_0"


def test_constant_array_of_dense_attributes() -> None:
    ctx = make_context()
    text = """
    %0 = arith.constant dense<1.5> : tensor<2x3xf32>
    %1 = arith.constant dense<[[1, -2], [3, 4]]> : tensor<2x2xi8>
    %2 = arith.constant dense<[true, false]> : tensor<2xi1>
    %3 = arith.constant dense<[1.0, 2.5]> : tensor<2xbf16>
    """
    module = parse_module(f"builtin.module {{ {text} }}", ctx)
    values = [constant_array(ctx, op.value) for op in module.ops]
    assert np.array_equal(values[0], np.full((2, 3), 1.5, np.float32))
    assert np.array_equal(values[1], np.array([[1, -2], [3, 4]], np.int8))
    assert np.array_equal(values[2], np.array([True, False]))
    assert np.array_equal(values[3], np.array([1.0, 2.5], np.float32))


def test_unexportable_model_is_one_sentence() -> None:
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(FrontendError) as error:
        import_torch(DataDependent(), torch.randn(2, 3), ctx=make_context())
    message = str(error.value)
    assert message.startswith("torch-mlir cannot export DataDependent to linalg-on-tensors: ")
    assert "\n" not in message
    assert error.value.original is not None


class Sort(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x)[0]


def test_an_op_nothing_lowers_names_the_op_the_module_and_the_line() -> None:
    with pytest.raises(FrontendError) as error:
        import_torch(Sort(), torch.randn(2, 3), ctx=make_context())
    message = str(error.value)
    assert "\n" not in message
    line = inspect.getsourcelines(Sort.forward)[1] + 1  # the `return torch.sort(...)` line
    assert message.startswith(f"{__file__}:{line}: error: aten.sort in Sort becomes ")
    assert "'tm_tensor.sort'" in message and "cannot compile" in message


def test_an_op_in_a_submodule_names_the_layer() -> None:
    model = nn.Sequential(nn.Linear(3, 3), Sort())
    with pytest.raises(FrontendError, match="aten.sort in layer '1' \\(Sort\\) becomes"):
        import_torch(model, torch.randn(2, 3), ctx=make_context(), name="Net")


def test_str_of_the_imported_module_is_a_complete_file(small, tmp_path) -> None:
    """`str()` of what import_torch returns prints the weights too: pconv-opt reads the file
    and gets the same weights."""
    from pconv_mlir.tools.pconv_opt import main as pconv_opt

    model, ctx, module = small
    text = str(module)
    assert "dialect_resources" in text
    path = tmp_path / "model.mlir"
    path.write_text(text)
    out = tmp_path / "out.mlir"
    assert pconv_opt([str(path), "-p", "pconv-from-linalg", "-o", str(out)]) == 0
    other = make_context(own_resources=True)
    reread = parse_module(out.read_text(), other)
    weights = [
        constant_array(other, op.weight.owner.value)
        for op in reread.walk()
        if op.name == "pconv.conv2d"
    ]
    assert [w.shape for w in weights] == [(4, 3, 3, 3), (5, 4, 3, 3), (6, 5, 1, 1)]
    np.testing.assert_array_equal(weights[0], model.conv1.weight.detach().numpy())


# --------------------------------------------------------------------------------------------
# checked-in inputs of the pconv-from-linalg tests
# --------------------------------------------------------------------------------------------

CENTRE = 4


@pytest.mark.parametrize(
    "name", ["pattern_cnn.mlir", "pattern_cnn_resource.mlir", "conv_stride2.mlir"]
)
def test_inputs_hold_pattern_pruned_3x3_weights(name: str) -> None:
    ctx = make_context()
    module = parse_module((INPUTS / name).read_text(), ctx)
    found = convs(module)
    assert found
    for conv in found:
        weights = constant_array(ctx, weight_attr(conv)).reshape(
            *conv.inputs[1].type.get_shape()[:2], 9
        )
        taps = weights != 0
        kept = taps.sum(axis=2)
        assert set(np.unique(kept)) <= {0, 4}
        assert (taps[..., CENTRE] == (kept == 4)).all()
        assert (kept == 0).any() and (kept == 4).all(axis=1).sum() < kept.shape[0]


def test_leave_alone_input() -> None:
    module = parse_module((INPUTS / "leave_alone.mlir").read_text(), make_context())
    shapes = [c.inputs[1].type.get_shape() for c in convs(module)]
    assert shapes == [(4, 4, 1, 1), (2, 4, 3, 3)]
    assert not isinstance(convs(module)[1].inputs[1].owner, arith.ConstantOp)
    generics = [op for op in module.walk() if isinstance(op, GenericOp)]
    assert any(len(g.iterator_types) == 6 for g in generics)  # the depthwise conv


# --------------------------------------------------------------------------------------------
# full networks (each ~5-20 s on a 2-core machine)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "fchw", "depthwise"),
    [("vgg16", 32, 13, 0), ("resnet50", 224, 53, 0), ("mobilenet_v2", 224, 35, 17)],
)
def test_full_network_imports(name: str, size: int, fchw: int, depthwise: int) -> None:
    torch.manual_seed(0)
    model = models.MODELS[name](num_classes=10, input_size=size)
    ctx = make_context(own_resources=True)  # the weights are freed with it
    module = import_torch(model, torch.randn(1, 3, size, size), ctx=ctx)
    found = convs(module)
    assert len(found) == fchw
    generics = [op for op in module.walk() if isinstance(op, GenericOp)]
    assert sum(len(g.iterator_types) == 6 for g in generics) == depthwise
    torch_convs = [
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1
    ]  # execution order is module order in all three networks
    assert len(torch_convs) == fchw
    for i in (0, len(found) // 2, -1):
        weights = constant_array(ctx, weight_attr(found[i]))
        assert np.array_equal(weights, torch_convs[i].weight.detach().numpy())

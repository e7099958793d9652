"""The interpreter runs torch-mlir's linalg-on-tensors output and agrees with torch.

Small models built here with plain `torch.nn` go through `import_torch` and `run_function`;
hand-written IR covers what torch-mlir does not emit for them (linalg.index, constants and
transposes in indexing maps, linalg.reduce, the other convolution layouts, every cmpf
predicate) and the error for an op the interpreter does not know.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir import models
from pconv_mlir.frontend import import_torch
from pconv_mlir.interpreter import run_function
from pconv_mlir.ir import make_context, parse_module

TOL = {"rtol": 1e-4, "atol": 1e-4}


def run_torch_model(model: nn.Module, x: torch.Tensor) -> None:
    """Import `model` for `x`, run @main in the interpreter, compare with torch."""
    model.eval()
    ctx = make_context()
    module = import_torch(model, x, ctx=ctx)
    with torch.no_grad():
        expected = model(x).numpy()
    # float64 input on purpose: run_function converts it to the argument's f32
    (got,) = run_function(module, "main", x.double().numpy(), ctx=ctx)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, **TOL)


def randomise_batch_norms(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so eval-mode BN does something."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model


class Residual(nn.Module):
    """conv-bn-relu-conv-bn plus the input, then relu (a ResNet basic block, 5 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(5, 5, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(5)
        self.conv2 = nn.Conv2d(5, 5, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class SliceCat(nn.Module):
    """Strided slices (tensor.extract_slice) concatenated (tensor.concat)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, 1:, ::2], 2 * x[:, :2, 1::2]], dim=1)


class Head(nn.Module):
    """Global average pool, flatten, linear, softmax (a reduction with an argmax inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), dim=1)


# name -> (model factory, input shape without the batch)
SMALL_MODELS = {
    "conv3x3_pad1_bias_relu": (
        lambda: nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU()),
        (3, 7, 9),
    ),  # fmt: skip
    "conv3x3_stride2_nopad": (lambda: nn.Conv2d(5, 7, 3, stride=2), (5, 9, 11)),
    "conv1x1": (lambda: nn.Conv2d(7, 3, 1), (7, 5, 6)),
    "conv_dilated_stride2": (
        lambda: nn.Conv2d(3, 4, 3, padding=2, dilation=2, stride=2),
        (3, 9, 8),
    ),  # fmt: skip
    "depthwise": (lambda: nn.Conv2d(5, 5, 3, padding=1, groups=5), (5, 7, 6)),
    "grouped": (lambda: nn.Conv2d(6, 9, 3, padding=1, groups=3), (6, 5, 7)),
    "maxpool": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (3, 9, 7)),
    "avgpool": (lambda: nn.AvgPool2d(2), (3, 8, 6)),
    "avgpool_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (3, 9, 7)),
    "adaptive_avgpool_1": (lambda: nn.AdaptiveAvgPool2d(1), (5, 5, 7)),
    "adaptive_avgpool_2": (lambda: nn.AdaptiveAvgPool2d(2), (3, 6, 4)),
    "flatten_linear": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 7)), (3, 5, 5)),
    "residual": (lambda: randomise_batch_norms(Residual()), (5, 6, 7)),
    "batchnorm": (lambda: randomise_batch_norms(nn.BatchNorm2d(3)), (3, 5, 5)),
    "relu6": (lambda: nn.ReLU6(), (3, 5, 5)),
    "pool_linear_softmax": (Head, (3, 5, 5)),
    "slice_cat": (SliceCat, (3, 6, 5)),
}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_small_model(name: str, batch: int) -> None:
    torch.manual_seed(0)
    factory, shape = SMALL_MODELS[name]
    run_torch_model(factory(), 3 * torch.randn(batch, *shape))


def test_argmax_returns_int64() -> None:
    class ArgMax(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.argmax(dim=1)

    torch.manual_seed(0)
    run_torch_model(ArgMax(), torch.randn(2, 5, 3))


@pytest.mark.parametrize("factory", ["resnet18", "mobilenet_v2"])
def test_whole_model(factory: str) -> None:
    build = getattr(models, factory)
    torch.manual_seed(0)
    model = randomise_batch_norms(build(num_classes=10, input_size=32))
    run_torch_model(model, torch.randn(1, 3, 32, 32))


# --------------------------------------------------------------------------------------------
# Hand-written IR
# --------------------------------------------------------------------------------------------


def run_ir(text: str, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    return run_function(parse_module(text, make_context()), "main", *inputs)


def test_generic_index_constant_map_and_transposed_output() -> None:
    # out[j, i] = x[i, 1] * j + y[j]
    text = """
    func.func @main(%x: tensor<3x4xf32>, %y: tensor<5xf32>) -> tensor<5x3xf32> {
      %e = tensor.empty() : tensor<5x3xf32>
      %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, 1)>, affine_map<(i, j) -> (j)>,
                                            affine_map<(i, j) -> (j, i)>],
                           iterator_types = ["parallel", "parallel"]}
          ins(%x, %y : tensor<3x4xf32>, tensor<5xf32>) outs(%e : tensor<5x3xf32>) {
      ^bb0(%a: f32, %b: f32, %o: f32):
        %j = linalg.index 1 : index
        %ji = arith.index_cast %j : index to i32
        %jf = arith.sitofp %ji : i32 to f32
        %m = arith.mulf %a, %jf : f32
        %s = arith.addf %m, %b : f32
        linalg.yield %s : f32
      } -> tensor<5x3xf32>
      func.return %r : tensor<5x3xf32>
    }
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal(5).astype(np.float32)
    (got,) = run_ir(text, x, y)
    expected = x[:, 1][None, :] * np.arange(5)[:, None] + y[:, None]
    np.testing.assert_allclose(got, expected, **TOL)


def test_generic_gather_maps() -> None:
    text = """
    func.func @main(%x: tensor<3xf32>) -> tensor<7xf32> {
      %e = tensor.empty() : tensor<7xf32>
      %r = linalg.generic {indexing_maps = [affine_map<(i) -> (i mod 3)>, affine_map<(i) -> (i floordiv 3)>,
                                            affine_map<(i) -> (i)>],
                           iterator_types = ["parallel"]}
          ins(%x, %x : tensor<3xf32>, tensor<3xf32>) outs(%e : tensor<7xf32>) {
      ^bb0(%a: f32, %b: f32, %o: f32):
        %s = arith.subf %a, %b : f32
        linalg.yield %s : f32
      } -> tensor<7xf32>
      func.return %r : tensor<7xf32>
    }
    """
    x = np.array([1.0, 10.0, 100.0], np.float32)
    (got,) = run_ir(text, x)
    i = np.arange(7)
    np.testing.assert_array_equal(got, x[i % 3] - x[i // 3])


def test_generic_reductions_with_init_select_max_and_last() -> None:
    # out0[i] = max(init0[i], max_k x[i, k]) via cmpf ugt + select; out1[i] = x[i, last k].
    # (xDSL 0.74 parses several generic results without the parentheses it prints.)
    text = """
    func.func @main(%x: tensor<4x6xf32>, %i0: tensor<4xf32>, %i1: tensor<4xf32>)
        -> (tensor<4xf32>, tensor<4xf32>) {
      %r:2 = linalg.generic {indexing_maps = [affine_map<(i, k) -> (i, k)>, affine_map<(i, k) -> (i)>,
                                              affine_map<(i, k) -> (i)>],
                             iterator_types = ["parallel", "reduction"]}
          ins(%x : tensor<4x6xf32>) outs(%i0, %i1 : tensor<4xf32>, tensor<4xf32>) {
      ^bb0(%a: f32, %acc: f32, %last: f32):
        %c = arith.cmpf ugt, %a, %acc : f32
        %m = arith.select %c, %a, %acc : f32
        linalg.yield %m, %a : f32, f32
      } -> tensor<4xf32>, tensor<4xf32>
      func.return %r#0, %r#1 : tensor<4xf32>, tensor<4xf32>
    }
    """
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    init = np.array([10.0, -10.0, 0.0, 0.5], np.float32)
    out_max, out_last = run_ir(text, x, init, np.zeros(4, np.float32))
    np.testing.assert_array_equal(out_max, np.maximum(init, x.max(axis=1)))
    np.testing.assert_array_equal(out_last, x[:, -1])


def test_linalg_reduce_and_insert_slice() -> None:
    text = """
    func.func @main(%x: tensor<3x4x5xf32>, %d: tensor<6x7xf32>) -> tensor<6x7xf32> {
      %z = arith.constant 1.0 : f32
      %e = tensor.empty() : tensor<3x5xf32>
      %f = linalg.fill ins(%z : f32) outs(%e : tensor<3x5xf32>) -> tensor<3x5xf32>
      %s = linalg.reduce ins(%x : tensor<3x4x5xf32>) outs(%f : tensor<3x5xf32>) dimensions = [1]
        (%in: f32, %acc: f32) {
          %p = arith.addf %in, %acc : f32
          linalg.yield %p : f32
        }
      %r = tensor.insert_slice %s into %d[1, 2] [3, 5] [2, 1] : tensor<3x5xf32> into tensor<6x7xf32>
      func.return %r : tensor<6x7xf32>
    }
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    d = rng.standard_normal((6, 7)).astype(np.float32)
    (got,) = run_ir(text, x, d)
    expected = d.copy()
    expected[1:6:2, 2:7] = 1 + x.sum(axis=1)
    np.testing.assert_allclose(got, expected, **TOL)


def test_pad_with_index_dependent_value() -> None:
    text = """
    func.func @main(%x: tensor<2x3xf32>) -> tensor<4x6xf32> {
      %r = tensor.pad %x low[1, 2] high[1, 1] {
      ^bb0(%i: index, %j: index):
        %k = arith.muli %i, %j : index
        %ki = arith.index_cast %k : index to i64
        %v = arith.sitofp %ki : i64 to f32
        tensor.yield %v : f32
      } : tensor<2x3xf32> to tensor<4x6xf32>
      func.return %r : tensor<4x6xf32>
    }
    """
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 100
    (got,) = run_ir(text, x)
    expected = (np.arange(4)[:, None] * np.arange(6)[None, :]).astype(np.float32)
    expected[1:3, 2:5] = x
    np.testing.assert_array_equal(got, expected)


CMPF = {
    "false": lambda a, b: np.zeros_like(a, bool),
    "oeq": lambda a, b: a == b,
    "ogt": lambda a, b: a > b,
    "oge": lambda a, b: a >= b,
    "olt": lambda a, b: a < b,
    "ole": lambda a, b: a <= b,
    "one": lambda a, b: (a != b) & ~np.isnan(a) & ~np.isnan(b),
    "ord": lambda a, b: ~np.isnan(a) & ~np.isnan(b),
    "ueq": lambda a, b: (a == b) | np.isnan(a) | np.isnan(b),
    "ugt": lambda a, b: (a > b) | np.isnan(a) | np.isnan(b),
    "uge": lambda a, b: (a >= b) | np.isnan(a) | np.isnan(b),
    "ult": lambda a, b: (a < b) | np.isnan(a) | np.isnan(b),
    "ule": lambda a, b: (a <= b) | np.isnan(a) | np.isnan(b),
    "une": lambda a, b: (a != b) | np.isnan(a) | np.isnan(b),
    "uno": lambda a, b: np.isnan(a) | np.isnan(b),
    "true": lambda a, b: np.ones_like(a, bool),
}


@pytest.mark.parametrize("predicate", list(CMPF))
def test_cmpf_predicates_with_nan(predicate: str) -> None:
    text = f"""
    func.func @main(%x: tensor<9xf32>, %y: tensor<9xf32>) -> tensor<9xi1> {{
      %e = tensor.empty() : tensor<9xi1>
      %r = linalg.generic {{indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>,
                                             affine_map<(i) -> (i)>],
                            iterator_types = ["parallel"]}}
          ins(%x, %y : tensor<9xf32>, tensor<9xf32>) outs(%e : tensor<9xi1>) {{
      ^bb0(%a: f32, %b: f32, %o: i1):
        %c = arith.cmpf {predicate}, %a, %b : f32
        linalg.yield %c : i1
      }} -> tensor<9xi1>
      func.return %r : tensor<9xi1>
    }}
    """
    nan = math.nan
    x = np.array([1, 2, 3, nan, 1, nan, -0.0, 5, -1], np.float32)
    y = np.array([1, 1, 4, 1, nan, nan, 0.0, -5, -1], np.float32)
    (got,) = run_ir(text, x, y)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(got, CMPF[predicate](x, y))


# (op, input layout from NCHW, filter layout from FCHW, output layout to NCHW), groups
CONV_LAYOUTS = {
    "conv_2d_nhwc_hwcf": ("nhwc", "hwcf"),
    "conv_2d_nhwc_fhwc": ("nhwc", "fhwc"),
    "conv_2d_ngchw_fgchw": ("ngchw", "fgchw"),
    "conv_2d_ngchw_gfchw": ("ngchw", "gfchw"),
}


@pytest.mark.parametrize("op", list(CONV_LAYOUTS))
def test_named_convolution_layouts(op: str) -> None:
    """The convolutions torch-mlir does not emit for NCHW models, against F.conv2d."""
    n, g, c, f, h, w, k, stride, dilation = 2, 2, 3, 5, 9, 8, 3, 2, 1
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, g * c, h, w)).astype(np.float32)
    weight = rng.standard_normal((g * f, c, k, k)).astype(np.float32)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), stride=stride, groups=g)
    expected = expected.numpy()
    oh, ow = expected.shape[2:]
    in_layout, filter_layout = CONV_LAYOUTS[op]
    if in_layout == "nhwc":  # one group
        x, weight = x[:, :c], weight[:f]
        expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), stride=stride).numpy()
        x_in = x.transpose(0, 2, 3, 1)
        w_in = weight.transpose(2, 3, 1, 0) if filter_layout == "hwcf" else weight.transpose(0, 2, 3, 1)  # fmt: skip
        out_shape, to_nchw = (n, oh, ow, f), (0, 3, 1, 2)
    else:
        x_in = x.reshape(n, g, c, h, w)
        w_gf = weight.reshape(g, f, c, k, k)
        w_in = w_gf if filter_layout == "gfchw" else w_gf.transpose(1, 0, 2, 3, 4)
        out_shape, to_nchw = (n, g, f, oh, ow), None

    def ty(shape: tuple[int, ...]) -> str:
        return "tensor<" + "x".join(map(str, shape)) + "xf32>"

    text = f"""
    func.func @main(%x: {ty(x_in.shape)}, %w: {ty(w_in.shape)}) -> {ty(out_shape)} {{
      %z = arith.constant 0.5 : f32
      %e = tensor.empty() : {ty(out_shape)}
      %i = linalg.fill ins(%z : f32) outs(%e : {ty(out_shape)}) -> {ty(out_shape)}
      %r = linalg.{op} {{dilations = dense<{dilation}> : tensor<2xi64>, strides = dense<{stride}> : tensor<2xi64>}}
          ins(%x, %w : {ty(x_in.shape)}, {ty(w_in.shape)}) outs(%i : {ty(out_shape)}) -> {ty(out_shape)}
      func.return %r : {ty(out_shape)}
    }}
    """
    (got,) = run_ir(text, np.ascontiguousarray(x_in), np.ascontiguousarray(w_in))
    got = got.transpose(to_nchw) if to_nchw else got.reshape(n, g * f, oh, ow)
    np.testing.assert_allclose(got, expected + 0.5, **TOL)


def test_scalar_arith_stays_python_and_wraps() -> None:
    text = """
    func.func @main(%a: i32, %b: i32, %x: f32) -> (i32, i32, f32) {
      %s = arith.addi %a, %b : i32
      %d = arith.divsi %a, %b : i32
      %e = math.exp %x : f32
      func.return %s, %d, %e : i32, i32, f32
    }
    """
    s, d, e = run_ir(text, 2**31 - 1, -2, 1.0)
    assert (s, d) == (2**31 - 3, -(2**30) + 1)  # wraps; rounds toward zero
    assert isinstance(s, int) and isinstance(e, float)
    assert e == pytest.approx(math.e, rel=1e-6)


def test_unsupported_op_in_a_body_is_named() -> None:
    text = """
    func.func @main(%x: tensor<4xi32>) -> tensor<4xi32> {
      %e = tensor.empty() : tensor<4xi32>
      %r = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                           iterator_types = ["parallel"]}
          ins(%x : tensor<4xi32>) outs(%e : tensor<4xi32>) {
      ^bb0(%a: i32, %o: i32):
        %c = math.ctlz %a : i32
        linalg.yield %c : i32
      } -> tensor<4xi32>
      func.return %r : tensor<4xi32>
    }
    """
    with pytest.raises(InterpretationError, match="linalg.generic.*math.ctlz"):
        run_ir(text, np.arange(4, dtype=np.int32))

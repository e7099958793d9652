"""Small builders for pconv IR: random pattern-sparse layers and one-conv modules.

Used by the demo, the tests and the benchmarks; the passes work on whatever IR they are given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.builder import ImplicitBuilder
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Block, Region, SSAValue

from pconv_mlir.dialects.pconv import (
    Conv2dOp,
    PatternSetAttr,
    conv_output_shape,
    kernel_patterns_attr,
)
from pconv_mlir.elements import dense_constant
from pconv_mlir.patterns import Window, candidate_patterns, centre_tap, kernel_mask

f32 = Float32Type()


def random_pattern_layer(
    rng: np.random.Generator, filters: int, channels: int, k: int = 8, rate: float = 3.6
) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """(patterns, ids [F, C], masked weight [F, C, 3, 3]) of a random pattern-sparse layer:
    K random 4-tap patterns, and round(F * C / rate) kernels kept (at least one)."""
    pool = candidate_patterns()
    patterns = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    ids = rng.integers(0, k, size=(filters, channels))
    kept = max(1, round(filters * channels / rate))
    pruned = rng.permutation(filters * channels)[kept:]
    ids.reshape(-1)[pruned] = -1
    weight = rng.standard_normal((filters, channels, 3, 3)).astype(np.float32)
    weight = np.where(kernel_mask(ids, patterns), weight, 0).astype(np.float32)
    return patterns, ids, weight


def pattern_set_for(patterns: Sequence[Sequence[int]], window: Window) -> PatternSetAttr:
    """The `#pconv.pattern_set` of `patterns` over `window`, requiring the centre tap when the
    window has one and every pattern holds it."""
    middle = centre_tap(window)
    centre = middle is not None and all(middle in p for p in patterns)
    return PatternSetAttr.get(patterns, centre=centre, window=window)


def conv2d_op(
    x: SSAValue,
    weight: SSAValue,
    bias: SSAValue | None,
    patterns: Sequence[Sequence[int]],
    ids: np.ndarray,
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (1, 1),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
    *,
    residual: SSAValue | None = None,
    relu6: bool = False,
) -> Conv2dOp:
    """A `pconv.conv2d` whose result type is computed from its operands (the window is the
    weight's)."""
    f, _, kh, kw = weight.type.get_shape()
    shape = conv_output_shape(x.type.get_shape(), f, strides, padding, dilation, (kh, kw))
    return Conv2dOp(
        x,
        weight,
        bias,
        TensorType(f32, shape),
        pattern_set_for(patterns, (kh, kw)),
        kernel_patterns_attr(ids),
        strides,
        padding,
        dilation,
        relu,
        residual=residual,
        relu6=relu6,
    )


def conv2d_module(
    x_shape: Sequence[int],
    weight: np.ndarray,
    bias: np.ndarray | None,
    patterns: Sequence[Sequence[int]],
    ids: np.ndarray,
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (1, 1),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
    name: str = "conv",
    *,
    residual: bool = False,
    relu6: bool = False,
) -> ModuleOp:
    """`func @conv(%x[, %bias][, %residual])` with the weight as a constant and one
    `pconv.conv2d` (`residual=True` adds a residual argument of the result's shape)."""
    f, _, kh, kw = weight.shape
    out_shape = conv_output_shape(x_shape, f, strides, padding, dilation, (kh, kw))
    inputs = [TensorType(f32, tuple(x_shape))]
    if bias is not None:
        inputs.append(TensorType(f32, (f,)))
    if residual:
        inputs.append(TensorType(f32, out_shape))
    body = Block(arg_types=inputs)
    with ImplicitBuilder(body):
        w_const = dense_constant(weight)
        conv = conv2d_op(
            body.args[0],
            w_const.result,
            body.args[1] if bias is not None else None,
            patterns,
            ids,
            strides,
            padding,
            dilation,
            relu,
            residual=body.args[-1] if residual else None,
            relu6=relu6,
        )
        func.ReturnOp(conv.result)
    module = ModuleOp([func.FuncOp(name, (inputs, [conv.result.type]), Region(body))])
    module.verify()
    return module

"""Small builders for pconv IR: random pattern-sparse layers and one-conv modules.

Used by the demo, the tests and the benchmarks; the passes work on whatever IR they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from xdsl.builder import ImplicitBuilder
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float32Type,
    IntegerType,
    ModuleOp,
    TensorType,
)
from xdsl.ir import Block, Region, SSAValue

from pconv_mlir import reference
from pconv_mlir.dialects.pconv import Conv2dOp, PatternSetAttr, conv_output_shape

f32 = Float32Type()
i32 = IntegerType(32)


def candidate_taps(taps: int = 4) -> list[tuple[int, ...]]:
    """All tap lists of the given size that hold the centre tap 4."""
    return [tuple(sorted((*nb, 4))) for nb in combinations([0, 1, 2, 3, 5, 6, 7, 8], taps - 1)]


def random_pattern_layer(
    rng: np.random.Generator, filters: int, channels: int, k: int = 8, rate: float = 3.6
) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """(patterns, ids [F, C], masked weight [F, C, 3, 3]) of a random pattern-sparse layer:
    K random 4-tap patterns, and round(F * C / rate) kernels kept (at least one)."""
    pool = candidate_taps()
    patterns = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    ids = rng.integers(0, k, size=(filters, channels))
    kept = max(1, round(filters * channels / rate))
    pruned = rng.permutation(filters * channels)[kept:]
    ids.reshape(-1)[pruned] = -1
    weight = rng.standard_normal((filters, channels, 3, 3)).astype(np.float32)
    weight = np.where(reference.kernel_mask(ids, patterns), weight, 0).astype(np.float32)
    return patterns, ids, weight


def dense_attr(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    """A dense elements attribute holding `array`: f32 for floats, i8 for int8, else i32."""
    if np.issubdtype(array.dtype, np.floating):
        element, data = f32, np.ascontiguousarray(array, dtype="<f4")
    elif array.dtype == np.int8:
        element, data = IntegerType(8), np.ascontiguousarray(array)
    else:
        element, data = i32, np.ascontiguousarray(array, dtype="<i4")
    return DenseIntOrFPElementsAttr(TensorType(element, array.shape), BytesAttr(data.tobytes()))


def pattern_ids_attr(ids: np.ndarray) -> DenseIntOrFPElementsAttr:
    """Per-kernel pattern ids [F, C] as `kernel_patterns` (i8: a set has at most 56 patterns)."""
    return dense_attr(np.asarray(ids, dtype=np.int8))


def dense_constant(array: np.ndarray) -> arith.ConstantOp:
    """An `arith.constant` tensor holding `array` (f32 for floats, i32 for integers)."""
    return arith.ConstantOp(dense_attr(array))


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
) -> Conv2dOp:
    """A `pconv.conv2d` whose result type is computed from its operands."""
    shape = conv_output_shape(
        x.type.get_shape(), weight.type.get_shape()[0], strides, padding, dilation
    )
    ids_attr = pattern_ids_attr(ids)
    return Conv2dOp(
        x,
        weight,
        bias,
        TensorType(f32, shape),
        PatternSetAttr.get(patterns),
        ids_attr,
        strides,
        padding,
        dilation,
        relu,
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
) -> ModuleOp:
    """`func @conv(%x[, %bias])` with the weight as a constant and one `pconv.conv2d`."""
    inputs = [TensorType(f32, tuple(x_shape))]
    if bias is not None:
        inputs.append(TensorType(f32, (weight.shape[0],)))
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
        )
        func.ReturnOp(conv.result)
    module = ModuleOp([func.FuncOp(name, (inputs, [conv.result.type]), Region(body))])
    module.verify()
    return module

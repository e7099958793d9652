"""`tensor` dialect ops on numpy arrays, and the slices of extract_slice / insert_slice."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np
from xdsl.dialects import tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, TensorType, VectorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Attribute
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir.interpreter.arith import dtype_of, eval_block


def _mixed(static: Sequence[int], dynamic: Sequence[Any]) -> list[int]:
    """Static values with each `DYNAMIC_INDEX` replaced by the next dynamic operand value."""
    values = iter(dynamic)
    return [int(next(values)) if s == DYNAMIC_INDEX else s for s in static]


def _shape(type_: Attribute, dynamic: Sequence[Any] = ()) -> tuple[int, ...]:
    assert isinstance(type_, TensorType | VectorType)
    return tuple(_mixed(type_.get_shape(), dynamic))


def _slices(offsets: Sequence[int], sizes: Sequence[int], strides: Sequence[int]) -> tuple:
    return tuple(
        slice(o, o + (n - 1) * s + 1 if n else o, s)
        for o, n, s in zip(offsets, sizes, strides, strict=True)
    )


def _slice_args(
    op: tensor.ExtractSliceOp | tensor.InsertSliceOp, args: Sequence[Any]
) -> tuple[tuple, list[int]]:
    """The numpy slices of an extract/insert_slice (`args`: its offset, size, stride operands)."""
    n_off, n_size = len(op.offsets), len(op.sizes)
    offsets = _mixed(op.static_offsets.get_values(), args[:n_off])
    sizes = _mixed(op.static_sizes.get_values(), args[n_off : n_off + n_size])
    strides = _mixed(op.static_strides.get_values(), args[n_off + n_size :])
    return _slices(offsets, sizes, strides), sizes


@register_impls
class TensorFunctions(InterpreterFunctions):
    """`tensor` ops on numpy arrays. A result may share memory with an operand (a reshape),
    but no implementation writes into an operand."""

    @impl(tensor.EmptyOp)
    def run_empty(self, interpreter: Interpreter, op: tensor.EmptyOp, args: tuple[Any, ...]):
        return (np.zeros(_shape(op.tensor.type, args), dtype_of(op.tensor.type)),)

    @impl(tensor.PadOp)
    def run_pad(self, interpreter: Interpreter, op: tensor.PadOp, args: tuple[Any, ...]):
        source = np.asarray(args[0])
        n_low = len(op.low)
        low = _mixed(op.static_low.get_values(), args[1 : 1 + n_low])
        high = _mixed(op.static_high.get_values(), args[1 + n_low :])
        if min(low + high, default=0) < 0:
            raise InterpretationError(f"tensor.pad: negative padding {low} {high}")
        shape = tuple(s + lo + hi for s, lo, hi in zip(source.shape, low, high, strict=True))
        block = op.region.block
        indices = {
            arg: np.arange(n).reshape([n if d == i else 1 for d in range(len(shape))])
            for i, (arg, n) in enumerate(zip(block.args, shape, strict=True))
        }
        (value,) = eval_block(interpreter, op.name, block, indices, set(), block.last_op.operands)
        out = np.empty(shape, dtype_of(op.result.type))
        out[...] = value
        out[tuple(slice(lo, lo + s) for lo, s in zip(low, source.shape, strict=True))] = source
        return (out,)

    @impl(tensor.CollapseShapeOp)
    def run_collapse_shape(
        self, interpreter: Interpreter, op: tensor.CollapseShapeOp, args: tuple[Any, ...]
    ):
        source = np.asarray(args[0])
        groups = [[e.value.data for e in group.data] for group in op.reassociation.data]
        return (source.reshape([prod(source.shape[i] for i in group) for group in groups]),)

    @impl(tensor.ExpandShapeOp)
    def run_expand_shape(
        self, interpreter: Interpreter, op: tensor.ExpandShapeOp, args: tuple[Any, ...]
    ):
        shape = _mixed(op.static_output_shape.get_values(), args[1:])
        return (np.asarray(args[0]).reshape(shape),)

    @impl(tensor.ExtractSliceOp)
    def run_extract_slice(
        self, interpreter: Interpreter, op: tensor.ExtractSliceOp, args: tuple[Any, ...]
    ):
        slices, sizes = _slice_args(op, args[1:])
        part = np.asarray(args[0])[slices]
        rank = len(op.result.type.get_shape())
        if part.ndim != rank:  # rank-reducing: drop unit dimensions
            shape = [d for d in op.result.type.get_shape()]
            if DYNAMIC_INDEX in shape:
                shape = list(part.shape)
                while len(shape) > rank:
                    shape.remove(1)
            part = part.reshape(shape)
        return (part,)

    @impl(tensor.InsertSliceOp)
    def run_insert_slice(
        self, interpreter: Interpreter, op: tensor.InsertSliceOp, args: tuple[Any, ...]
    ):
        source, dest = np.asarray(args[0]), np.array(args[1], copy=True)
        slices, _ = _slice_args(op, args[2:])
        dest[slices] = source.reshape(dest[slices].shape)
        return (dest,)

    @impl(tensor.CastOp)
    def run_cast(self, interpreter: Interpreter, op: tensor.CastOp, args: tuple[Any, ...]):
        source = np.asarray(args[0])
        target = op.dest.type
        if isinstance(target, TensorType):
            shape = target.get_shape()
            if len(shape) != source.ndim or any(
                d not in (DYNAMIC_INDEX, s) for d, s in zip(shape, source.shape, strict=True)
            ):
                raise InterpretationError(f"tensor.cast: a {source.shape} tensor is not a {target}")
        return (source,)

    @impl(tensor.DimOp)
    def run_dim(self, interpreter: Interpreter, op: tensor.DimOp, args: tuple[Any, ...]):
        return (np.shape(args[0])[int(args[1])],)

    @impl(tensor.ExtractOp)
    def run_extract(self, interpreter: Interpreter, op: tensor.ExtractOp, args: tuple[Any, ...]):
        value = np.asarray(args[0])[tuple(args[1:])]  # array indices: a gather
        return (value if isinstance(value, np.ndarray) else value.item(),)

    @impl(tensor.InsertOp)
    def run_insert(self, interpreter: Interpreter, op: tensor.InsertOp, args: tuple[Any, ...]):
        dest = np.array(args[1], copy=True)
        dest[tuple(args[2:])] = args[0]
        return (dest,)

    @impl(tensor.FromElementsOp)
    def run_from_elements(
        self, interpreter: Interpreter, op: tensor.FromElementsOp, args: tuple[Any, ...]
    ):
        return (np.array(args, dtype_of(op.result.type)).reshape(_shape(op.result.type)),)

    @impl(tensor.SplatOp)
    def run_splat(self, interpreter: Interpreter, op: tensor.SplatOp, args: tuple[Any, ...]):
        return (np.full(_shape(op.result.type, args[1:]), args[0], dtype_of(op.result.type)),)

    @impl(tensor.ReshapeOp)
    def run_reshape(self, interpreter: Interpreter, op: tensor.ReshapeOp, args: tuple[Any, ...]):
        return (np.asarray(args[0]).reshape([int(d) for d in np.asarray(args[1])]),)

    @impl(tensor.ConcatOp)
    def run_concat(self, interpreter: Interpreter, op: tensor.ConcatOp, args: tuple[Any, ...]):
        return (np.concatenate([np.asarray(a) for a in args], axis=op.dim.value.data),)

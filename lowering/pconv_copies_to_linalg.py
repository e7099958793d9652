"""pconv-copies-to-linalg: padding, concatenation and buffer copies as linalg ops.

On the GPU path every layer must become a kernel: nothing may run on the host between two
launches. Three ops that torch-mlir's output and bufferization produce are not linalg ops, so
upstream `convert-linalg-to-parallel-loops` would leave them on the host (`memref.copy`) or
bufferization would make them host copies (`tensor.pad`, `tensor.concat`). This pass rewrites
them as linalg ops that become kernels:

- `tensor.pad %x low[l] high[h] { yield %v }` (static sizes, a pad value defined outside the
  region or a constant inside it) becomes a `linalg.fill` of `%v` into a `tensor.empty` of the
  padded shape, and a `linalg.copy` of `%x` into the slice at `l`, inserted back: one-shot
  bufferization writes the copy in place into the filled buffer (a subview), no host copy.
- `tensor.concat %a, %b, ... dim = d` becomes a `tensor.empty` of the result with each input
  `linalg.copy`ed into its slice the same way.
- `memref.copy %a, %b` (what bufferization inserts for the copies it still needs) becomes
  `linalg.copy ins(%a) outs(%b)`; a copy of a buffer to itself (an insert_slice of a value
  computed in place) is erased.

The pass has no options. Ops the rewrite cannot take (dynamic sizes, a pad value computed in
the region) are left alone; `pconv-lower-to-gpu` reports whatever is left on the host.

    %p = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] { tensor.yield %zero }
        : tensor<1x5x8x7xf32> to tensor<1x5x10x9xf32>
  becomes
    %e = tensor.empty() : tensor<1x5x10x9xf32>
    %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x5x10x9xf32>) -> tensor<1x5x10x9xf32>
    %s = tensor.extract_slice %f[0, 0, 1, 1] [1, 5, 8, 7] [1, 1, 1, 1] : ... to tensor<1x5x8x7xf32>
    %c = linalg.copy ins(%x : tensor<1x5x8x7xf32>) outs(%s : tensor<1x5x8x7xf32>) -> ...
    %p = tensor.insert_slice %c into %f[0, 0, 1, 1] [1, 5, 8, 7] [1, 1, 1, 1] : ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, memref, tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, TensorType
from xdsl.dialects.linalg.ops import CopyOp, FillOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

__all__ = ["PconvCopiesToLinalgPass"]


def _static_shape(value: SSAValue) -> tuple[int, ...] | None:
    type_ = value.type
    if not isinstance(type_, TensorType):
        return None
    shape = tuple(type_.get_shape())
    return None if any(d == DYNAMIC_INDEX for d in shape) else shape


def _copy_into(
    rewriter: PatternRewriter, source: SSAValue, dest: SSAValue, offsets: Sequence[int]
) -> SSAValue:
    """`dest` with `source` copied (by a `linalg.copy`) into its slice at `offsets`."""
    sizes = _static_shape(source)
    assert sizes is not None
    ones = [1] * len(sizes)
    window = tensor.ExtractSliceOp.from_static_parameters(dest, list(offsets), list(sizes), ones)
    copy = CopyOp([source], [window.result], [source.type])
    insert = tensor.InsertSliceOp.get(
        copy.results[0], dest, list(sizes), list(offsets), ones, result_type=dest.type
    )
    rewriter.insert_op([window, copy, insert])
    return insert.result


class _PadAsFillAndCopy(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.PadOp, rewriter: PatternRewriter) -> None:
        shape = _static_shape(op.result)
        if shape is None or _static_shape(op.source) is None or op.low or op.high:
            return
        yield_op = op.region.block.last_op
        if not isinstance(yield_op, tensor.YieldOp) or len(yield_op.operands) != 1:
            return
        value = yield_op.operands[0]
        owner = value.owner
        if isinstance(owner, Operation) and owner.parent_op() is op:
            if not isinstance(owner, arith.ConstantOp):
                return  # a pad value computed per element: left alone
            constant = owner.clone()
            rewriter.insert_op(constant)
            value = constant.result
        elif not isinstance(owner, Operation) and value.owner.parent_op() is op:
            return  # the pad value is an index of the region
        empty = tensor.EmptyOp((), op.result.type)
        fill = FillOp([value], [empty.tensor], [op.result.type])
        rewriter.insert_op([empty, fill])
        low = list(op.static_low.get_values())
        rewriter.replace(op, [], [_copy_into(rewriter, op.source, fill.results[0], low)])


class _ConcatAsCopies(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ConcatOp, rewriter: PatternRewriter) -> None:
        if _static_shape(op.result) is None or any(_static_shape(v) is None for v in op.inputs):
            return
        dim = op.dim.value.data
        empty = tensor.EmptyOp((), op.result.type)
        rewriter.insert_op(empty)
        result: SSAValue = empty.tensor
        at = 0
        for value in op.inputs:
            offsets = [0] * len(_static_shape(value) or ())
            offsets[dim] = at
            result = _copy_into(rewriter, value, result, offsets)
            at += (_static_shape(value) or ())[dim]
        rewriter.replace(op, [], [result])


def _same_view(a: SSAValue, b: SSAValue) -> bool:
    """Whether `a` and `b` are the same memory: one value, or equal static subviews of one."""
    if a == b:
        return True
    x, y = a.owner, b.owner
    return (
        isinstance(x, memref.SubviewOp)
        and isinstance(y, memref.SubviewOp)
        and x.source == y.source
        and not (x.offsets or x.sizes or x.strides or y.offsets or y.sizes or y.strides)
        and x.properties == y.properties
        and x.result.type == y.result.type
    )


class _MemrefCopyAsLinalg(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.CopyOp, rewriter: PatternRewriter) -> None:
        if _same_view(op.source, op.destination):  # an insert_slice of a value made in place
            rewriter.erase(op)
            return
        rewriter.replace(op, CopyOp([op.source], [op.destination], res=[]))


@dataclass(frozen=True)
class PconvCopiesToLinalgPass(ModulePass):
    """`tensor.pad`, `tensor.concat` and `memref.copy` as linalg fills and copies (see the
    module docstring)."""

    name = "pconv-copies-to-linalg"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier(
                [_PadAsFillAndCopy(), _ConcatAsCopies(), _MemrefCopyAsLinalg()]
            ),
            apply_recursively=False,
        ).rewrite_module(op)

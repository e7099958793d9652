"""pconv-flatten-parallel: a multi-dimensional `scf.parallel` as one flat parallel loop.

Upstream's `gpu-map-parallel-loops` maps a parallel loop's first three dims to the grid and
runs the others sequentially in each work-item, and `scf-parallel-loop-tiling` tiles the first
dims: an NCHW layer's loop (images, channels, rows, columns) becomes work-groups over images x
channels x rows with most work-items idle on small images, and every work-item walks a whole
row. Flattened first, the loop has one dim over all its iterations, in row-major order: tiled
by the work-group size, consecutive work-items take consecutive output columns (their loads and
stores are contiguous) and every work-item does one output.

Each top-level `scf.parallel` (not nested in another) with constant bounds, no reductions
(`init_vals`) and more than one dim becomes `scf.parallel (%i) = (0) to (prod(sizes)) step (1)`
whose body first recovers each original index, `lb_d + step_d * ((%i / inner_d) % size_d)`
(`inner_d` the product of the later dims' sizes). Loops with a dynamic bound are left alone.
The pass has no options.

    scf.parallel (%n, %c) = (%c0, %c0) to (%c2, %c5) step (%c1, %c1) { body(%n, %c) }
  becomes
    scf.parallel (%i) = (%c0) to (%c10) step (%c1) {
      %n = arith.divui %i, %c5 ; %c = arith.remui %i, %c5 ; body(%n, %c) }
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from xdsl.context import Context
from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import IndexType, IntegerAttr, ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

__all__ = ["PconvFlattenParallelPass"]


def _constant(value: SSAValue) -> int | None:
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def _index(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, IndexType()))


class _Flatten(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: scf.ParallelOp, rewriter: PatternRewriter) -> None:
        if len(op.lowerBound) < 2 or op.initVals:
            return
        parent: Operation | None = op.parent_op()
        while parent is not None:
            if isinstance(parent, scf.ParallelOp):
                return  # nested: its outer loop is the one that is mapped
            parent = parent.parent_op()
        bounds = [
            (_constant(lb), _constant(ub), _constant(st))
            for lb, ub, st in zip(op.lowerBound, op.upperBound, op.step, strict=True)
        ]
        if any(v is None for b in bounds for v in b):
            return
        sizes = [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]  # type: ignore[operator]
        total = prod(sizes)
        zero, one, count = _index(0), _index(1), _index(total)
        rewriter.insert_op([zero, one, count], InsertPoint.before(op))
        old = op.body.block
        block = Block(arg_types=[IndexType()])
        flat = block.args[0]
        recovered: list[SSAValue] = []
        ops: list[Operation] = []
        for d, ((lb, _, st), size) in enumerate(zip(bounds, sizes, strict=True)):
            inner = prod(sizes[d + 1 :])
            value: SSAValue = flat
            if inner != 1:
                divisor = _index(inner)
                quotient = arith.DivUIOp(value, divisor.result)
                ops += [divisor, quotient]
                value = quotient.result
            if d > 0:
                modulus = _index(size)
                remainder = arith.RemUIOp(value, modulus.result)
                ops += [modulus, remainder]
                value = remainder.result
            if st != 1:
                factor = _index(st)  # type: ignore[arg-type]
                scaled = arith.MuliOp(value, factor.result)
                ops += [factor, scaled]
                value = scaled.result
            if lb != 0:
                offset = _index(lb)  # type: ignore[arg-type]
                shifted = arith.AddiOp(value, offset.result)
                ops += [offset, shifted]
                value = shifted.result
            recovered.append(value)
        block.add_ops(ops)
        for arg, value in zip(old.args, recovered, strict=True):
            arg.replace_all_uses_with(value)
        for inner_op in list(old.ops):
            inner_op.detach()
            block.add_op(inner_op)
        flat_loop = scf.ParallelOp([zero], [count], [one], Region(block))
        rewriter.replace_op(op, flat_loop)


@dataclass(frozen=True)
class PconvFlattenParallelPass(ModulePass):
    """Every top-level multi-dim `scf.parallel` with constant bounds as one flat loop (see the
    module docstring)."""

    name = "pconv-flatten-parallel"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_Flatten(), apply_recursively=False).rewrite_module(op)

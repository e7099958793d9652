"""pconv-schedule: set schedule parameters of every FKW convolution, keeping the others.

Each option is one `#pconv.schedule` parameter (`vector_width`, `unroll_rows`, `unroll_cols`,
`partial_sums`, `unroll_filters`, `tile_channels`); the parameters not given keep the values
the op has. Changing `tile_channels` re-packs the FKW arrays for the new channel blocks (they
must be constants); the computation is unchanged.

    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 3, ..., partial_sums = 2, ...>
  with -p 'pconv-schedule{unroll_rows=4}' becomes
    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 4, ..., partial_sums = 2, ...>
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.arith import ConstantOp
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from pconv_mlir import fkw
from pconv_mlir.dialects.pconv import (
    FkwConv2dOp,
    ScheduleAttr,
    schedule_options,
    schedule_values,
    window_of,
)
from pconv_mlir.elements import constant_op
from pconv_mlir.errors import OpError


def fkw_constants(ctx: Context | None, packed: fkw.Fkw) -> list[ConstantOp]:
    """The five FKW arrays as `arith.constant`s named after them: `dense<...>` when small,
    `dense_resource<fkw_NAME...>` with the data stored as bytes in `ctx` (None: the active
    storage) when large (see `pconv_mlir.elements.constant_op`)."""
    constants = []
    for name, array in zip(fkw.NAMES, packed.arrays(), strict=True):
        constant = constant_op(ctx, array, f"fkw_{name}")
        constant.result.name_hint = name
        constants.append(constant)
    return constants


def reschedule(
    op: FkwConv2dOp,
    schedule: ScheduleAttr,
    rewriter: PatternRewriter,
    ctx: Context | None = None,
) -> None:
    """Give `op` another schedule, re-packing its FKW constants when the channel blocks change
    (large arrays go to `ctx`'s storage; None: the active one)."""
    if schedule == op.schedule:
        return
    channels = op.input.type.get_shape()[1]
    operands = [getattr(op, name) for name in fkw.NAMES]
    constants: list[ConstantOp] = []
    blocks = fkw.channel_blocks(channels, schedule["tile_channels"])
    if blocks != op.channel_blocks():
        arrays = op.fkw_arrays()
        if arrays is None:
            raise OpError(op, "cannot change tile_channels: the FKW arrays are not constants")
        packed = fkw.reblock(arrays, op.patterns.patterns, channels, schedule["tile_channels"])
        constants = fkw_constants(ctx, packed)
        operands = [c.result for c in constants]
    groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
    new = FkwConv2dOp(
        op.input,
        operands,
        op.bias,
        op.result.type,
        op.patterns,
        schedule,
        **window_of(op),
        residual=op.residual,
        filter_groups=groups,
    )
    new.location = op.location
    old = [getattr(op, name).owner for name in fkw.NAMES]
    rewriter.replace(op, [*constants, new])
    for owner in old:
        if isinstance(owner, ConstantOp) and not owner.result.uses:
            rewriter.erase(owner)


@dataclass
class _SetSchedule(RewritePattern):
    values: dict[str, int]
    ctx: Context

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        schedule = op.schedule.replace(**self.values)
        if schedule != op.schedule:
            reschedule(op, schedule, rewriter, self.ctx)


@dataclass(frozen=True)
@schedule_options
class PconvSchedulePass(ModulePass):
    """Sets the given schedule parameters of every pconv.fkw_conv2d and keeps the others.

    See the module docstring; changing tile_channels re-packs the FKW arrays.
    """

    name = "pconv-schedule"

    def __post_init__(self) -> None:
        schedule_values(self)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        values = schedule_values(self)
        if values:
            walker = PatternRewriteWalker(_SetSchedule(values, ctx), apply_recursively=False)
            walker.rewrite_module(op)

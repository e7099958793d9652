"""pconv-fkw-pack: pack each constant pattern-sparse weight into PatDNN's FKW arrays.

Rewrites `pconv.conv2d` with a constant weight into `pconv.fkw_conv2d`: the dense weight is
replaced by five constants that hold only what the generated loops read (`pconv_mlir.fkw`):

- `offset`  [F + 1]: kernels of stored filter i are `offset[i]` to `offset[i + 1]`;
- `reorder` [F]: stored filter i computes output channel `reorder[i]` (the `filter_order` that
  pconv-fkr chose, or the original order);
- `index`   [N]: the input channel of each kept kernel;
- `stride`  [F, B * K + 1]: the runs of filter i, one per (channel block, pattern); without
  channel blocking (B = 1) the run of pattern p is `stride[i, p]` to `stride[i, p + 1]`;
- `weight`  [N, taps]: each kernel's kept weights, in the order of its pattern's taps.

Arrays of more than `pconv_mlir.elements.INLINE_LIMIT` bytes (the `index` and `weight` of a
large layer) are `dense_resource<fkw_NAME>` constants whose data is stored as bytes in the
context, never as text. A conv whose weight is not a constant is left alone.

Options: any `#pconv.schedule` parameter (`vector_width`, `unroll_rows`, `unroll_cols`,
`partial_sums`, `unroll_filters`, `tile_channels`; the others take their defaults), `report`
(print dense fp32 bytes and FKW bytes of each conv to stderr). With `gpu_stage_input = 1` and
no `tile_channels`, a conv whose staged input tile (every channel) would not fit in the GPU's
local memory gets channel blocks of the most channels that fit, so that convert-pconv-to-gpu
stages one block at a time.

    %w = arith.constant dense<...> : tensor<4x3x3x3xf32>
    %y = pconv.conv2d %x, %w patterns <...> kernel_patterns dense<...> ...
  becomes
    %offset = arith.constant dense<[0, 2, 3, 5, 6]> : tensor<5xi32>
    ...
    %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <...>
           schedule <vector_width = 8, ...> ...
"""

from __future__ import annotations

import sys
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
    Conv2dOp,
    FkwConv2dOp,
    ScheduleAttr,
    gpu_stage_channels,
    gpu_stage_tile,
    schedule_options,
    schedule_values,
    window_of,
)
from pconv_mlir.elements import ElementsError, constant_value
from pconv_mlir.errors import OpError, op_location
from pconv_mlir.passes.pconv_schedule import fkw_constants
from pconv_mlir.patterns import outside_patterns


@dataclass
class _PackWeights(RewritePattern):
    ctx: Context
    schedule: ScheduleAttr
    report: bool

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Conv2dOp, rewriter: PatternRewriter) -> None:
        try:
            weight = constant_value(self.ctx, op.weight)
        except ElementsError as e:
            raise OpError(op, f"its weight cannot be read: {e}") from None
        if weight is None:
            return
        ids = op.pattern_ids()
        patterns = op.patterns.patterns
        outside = outside_patterns(weight, ids, patterns)
        if outside is not None:
            f, c, tap = outside
            raise OpError(
                op, f"weight ({f}, {c}) is nonzero at tap {tap} outside its kernel's pattern"
            )
        order = None if op.filter_order is None else list(op.filter_order.get_values())
        schedule = self.staged_schedule(op)
        packed = fkw.pack(weight, ids, patterns, order, schedule["tile_channels"])
        if self.report:
            dense = weight.size * 4
            print(
                f"{op_location(op)}: pconv-fkw-pack: {int((ids >= 0).sum())} of {ids.size} "
                f"kernels kept, dense fp32 {dense} bytes -> FKW {packed.nbytes()} bytes "
                f"({dense / max(1, packed.nbytes()):.2f}x smaller)",
                file=sys.stderr,
            )
        constants = fkw_constants(self.ctx, packed)
        groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
        new = FkwConv2dOp(
            op.input,
            [c.result for c in constants],
            op.bias,
            op.result.type,
            op.patterns,
            schedule,
            **window_of(op),
            residual=op.residual,
            filter_groups=groups,
        )
        new.location = op.location
        dense_weight = op.weight.owner
        rewriter.replace(op, [*constants, new], [new.result])
        if isinstance(dense_weight, ConstantOp) and not dense_weight.result.uses:
            rewriter.erase(dense_weight)

    def staged_schedule(self, op: Conv2dOp) -> ScheduleAttr:
        """The schedule, with channel blocks when `gpu_stage_input` asks for an input tile of
        every channel that does not fit in local memory and `tile_channels` is not given: the
        most channels that fit (see `gpu_stage_tile`)."""
        schedule = self.schedule
        if not schedule["gpu_stage_input"] or schedule["tile_channels"]:
            return schedule
        _, channels, _, _ = op.input.type.get_shape()
        _, _, oh, ow = op.result.type.get_shape()
        window = window_of(op)
        kernel = op.patterns.kernel_window
        tile = gpu_stage_tile((oh, ow), kernel, window["strides"], window["dilation"], schedule)
        most = gpu_stage_channels(tile)
        if most >= channels or most == 0:
            return schedule  # it fits; or nothing does, and the verifier says so
        return schedule.replace(tile_channels=most)


@dataclass(frozen=True)
@schedule_options
class PconvFkwPackPass(ModulePass):
    """Packs constant pattern-sparse weights into the FKW arrays (pconv.fkw_conv2d).

    See the module docstring for the arrays, the options and an example.
    """

    name = "pconv-fkw-pack"

    report: bool = False

    def __post_init__(self) -> None:
        schedule_values(self)

    def schedule(self) -> ScheduleAttr:
        """The `#pconv.schedule` the options describe (defaults for the others)."""
        return ScheduleAttr.get(**schedule_values(self))

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            _PackWeights(ctx, self.schedule(), self.report), apply_recursively=False
        ).rewrite_module(op)

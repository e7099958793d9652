"""pconv-fkw-pack: pack each constant pattern-sparse weight into PatDNN's FKW arrays.

Rewrites `pconv.conv2d` with a constant weight into `pconv.fkw_conv2d`: the dense weight is
replaced by five constants that hold only what the generated loops read:

- `offset`  [F + 1]: kernels of stored filter i are `offset[i]` to `offset[i + 1]`;
- `reorder` [F]: stored filter i computes output channel `reorder[i]` (the `filter_order` that
  pconv-fkr chose, or the original order);
- `index`   [N]: the input channel of each kept kernel;
- `stride`  [F, K + 1]: the run of pattern p in filter i is `stride[i, p]` to `stride[i, p + 1]`;
- `weight`  [N, taps]: each kernel's kept weights, in the order of its pattern's taps.

A conv whose weight is not a constant is left alone. Options: the `#pconv.schedule` to attach
(`vector_width`, `unroll_rows`, `unroll_cols`, `partial_sums`, `unroll_filters`,
`tile_channels`;
defaults until the tuner
chooses), `report` (print dense fp32 bytes and FKW bytes of each conv to stderr).

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

import numpy as np
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
from xdsl.utils.exceptions import VerifyException

from pconv_mlir import reference
from pconv_mlir.builders import dense_constant
from pconv_mlir.diagnostics import PconvDiagnostic, op_location
from pconv_mlir.dialects.pconv import (
    Conv2dOp,
    FkwConv2dOp,
    ScheduleAttr,
    window_of,
)
from pconv_mlir.frontend import constant_value


def fkw_bytes(fkw: reference.Fkw) -> int:
    """Bytes of the five FKW arrays (int32 indices, fp32 weights)."""
    return sum(a.size * 4 for a in fkw.arrays())


@dataclass
class _PackWeights(RewritePattern):
    ctx: Context
    schedule: ScheduleAttr
    report: bool

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Conv2dOp, rewriter: PatternRewriter) -> None:
        weight = constant_value(self.ctx, op.weight)
        if weight is None:
            return
        ids = op.pattern_ids()
        patterns = op.patterns.patterns
        outside = (weight != 0) & ~reference.kernel_mask(ids, patterns)
        if outside.any():
            f, c, r, s = (int(v) for v in np.argwhere(outside)[0])
            raise PconvDiagnostic(
                op, f"weight ({f}, {c}) is nonzero at tap {3 * r + s} outside its kernel's pattern"
            )
        order = None if op.filter_order is None else list(op.filter_order.get_values())
        fkw = reference.fkw_pack(weight, ids, patterns, order)
        if self.report:
            dense = weight.size * 4
            print(
                f"{op_location(op)}: pconv-fkw-pack: {int((ids >= 0).sum())} of {ids.size} "
                f"kernels kept, dense fp32 {dense} bytes -> FKW {fkw_bytes(fkw)} bytes "
                f"({dense / max(1, fkw_bytes(fkw)):.2f}x smaller)",
                file=sys.stderr,
            )
        constants = [dense_constant(array) for array in fkw.arrays()]
        groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
        packed = FkwConv2dOp(
            op.input,
            [c.result for c in constants],
            op.bias,
            op.result.type,
            op.patterns,
            self.schedule,
            **window_of(op),
            filter_groups=groups,
        )
        for name, constant in zip(
            ("offset", "reorder", "index", "stride", "weight"), constants, strict=True
        ):
            constant.result.name_hint = name
        packed.location = op.location
        dense_weight = op.weight.owner
        rewriter.replace(op, [*constants, packed], [packed.result])
        if isinstance(dense_weight, ConstantOp) and not dense_weight.result.uses:
            rewriter.erase(dense_weight)


@dataclass(frozen=True)
class PconvFkwPackPass(ModulePass):
    """Packs constant pattern-sparse weights into the FKW arrays (pconv.fkw_conv2d).

    See the module docstring for the arrays, the options and an example.
    """

    name = "pconv-fkw-pack"

    vector_width: int = ScheduleAttr.DEFAULTS["vector_width"]
    unroll_rows: int = ScheduleAttr.DEFAULTS["unroll_rows"]
    unroll_cols: int = ScheduleAttr.DEFAULTS["unroll_cols"]
    partial_sums: int = ScheduleAttr.DEFAULTS["partial_sums"]
    unroll_filters: int = ScheduleAttr.DEFAULTS["unroll_filters"]
    tile_channels: int = ScheduleAttr.DEFAULTS["tile_channels"]
    report: bool = False

    def __post_init__(self) -> None:
        try:
            self.schedule()
        except VerifyException as e:
            raise ValueError(str(e)) from None

    def schedule(self) -> ScheduleAttr:
        """The `#pconv.schedule` the options describe."""
        return ScheduleAttr.get(
            vector_width=self.vector_width,
            unroll_rows=self.unroll_rows,
            unroll_cols=self.unroll_cols,
            partial_sums=self.partial_sums,
            unroll_filters=self.unroll_filters,
            tile_channels=self.tile_channels,
        )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        schedule = self.schedule()
        PatternRewriteWalker(
            _PackWeights(ctx, schedule, self.report), apply_recursively=False
        ).rewrite_module(op)

"""pconv-fkr: filter kernel reordering (PatDNN, section 5.2).

Orders the filters of every `pconv.conv2d` so that filters computed together do the same work:
filters are sorted by length (kept kernels, longest first) and then by pattern mix (how many
kernels of each pattern), so filters with the same pattern sequence sit side by side; the
sorted filters are cut into groups of `group_size`. The order and the groups are recorded on
the op (`filter_order`, `filter_groups`); the computation is unchanged, and `pconv-fkw-pack`
then stores the filters in that order, each filter's kernels grouped in one run per pattern.

With `overlap=true` the groups are chosen for filter-level load sharing instead (PatDNN's
filter-level LRE; what `#pconv.schedule<specialize = 1>` code exploits): greedily, each group
takes the filters that read most of the (input channel, tap) pairs the group already reads
(`pconv_mlir.fkw.overlap_groups`), so one loaded input vector feeds several of its filters.

Options: `group_size` (filters per group, default 4), `overlap` (group by shared reads),
`report` (print the load imbalance of each conv before and after to stderr, and with `overlap`
the share of a group's (channel, tap) reads that another filter of the group also makes).

Load imbalance of a grouping = (sum over groups of group size x longest filter in the group)
/ (total kept kernels): the work a group does when its filters advance in lock-step (vector
lanes or threads), over the useful work. 1.0 is perfectly balanced.

    %y = pconv.conv2d %x, %w patterns <...> kernel_patterns dense<...> ...
  becomes
    %y = pconv.conv2d %x, %w patterns <...> kernel_patterns dense<...> ...
           filter_order [3, 0, 2, 1] filter_groups [0, 2, 4]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from pconv_mlir import fkw
from pconv_mlir.dialects.pconv import Conv2dOp, window_of
from pconv_mlir.errors import op_location


def filter_order(ids: np.ndarray, patterns: int) -> list[int]:
    """Filters sorted by length (longest first), then pattern mix, then original index."""
    lengths = (ids >= 0).sum(axis=1)
    histogram = np.stack([(ids == p).sum(axis=1) for p in range(patterns)], axis=1)
    return sorted(
        range(ids.shape[0]),
        key=lambda f: (-int(lengths[f]), tuple(-int(h) for h in histogram[f]), f),
    )


def group_bounds(filters: int, group_size: int) -> list[int]:
    """Boundaries of consecutive groups of `group_size` filters (the last may be shorter)."""
    return [*range(0, filters, group_size), filters]


def load_imbalance(ids: np.ndarray, order: list[int], bounds: list[int]) -> float:
    """Lock-step work over useful work for filters `order` cut at `bounds` (1.0 is ideal)."""
    lengths = (ids >= 0).sum(axis=1)[order]
    useful = int(lengths.sum())
    if useful == 0:
        return 1.0
    done = sum(int(lengths[a:b].max()) * (b - a) for a, b in pairwise(bounds))
    return done / useful


def shared_reads(uses: np.ndarray, groups: list[list[int]]) -> float:
    """Of all (channel, tap) reads of the filters, the share whose pair another filter of the
    same group also reads (0 when no filter shares anything)."""
    total = shared = 0
    for group in groups:
        counts = uses[group].sum(axis=0)
        total += int(counts.sum())
        shared += int(counts[counts > 1].sum())
    return shared / total if total else 0.0


def overlap_order(op: Conv2dOp, group_size: int) -> tuple[list[int], list[list[int]], np.ndarray]:
    """The order and groups of `fkw.overlap_groups` for `op`, and its (channel, tap) reads."""
    kh, kw = op.patterns.kernel_window
    uses = fkw.tap_uses(op.pattern_ids(), op.patterns.patterns, kh * kw)
    groups = fkw.overlap_groups(uses, group_size)
    return [f for g in groups for f in g], groups, uses


@dataclass
class _ReorderFilters(RewritePattern):
    group_size: int
    report: bool
    overlap: bool = False

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Conv2dOp, rewriter: PatternRewriter) -> None:
        if op.filter_order is not None:
            return
        ids = op.pattern_ids()
        filters = ids.shape[0]
        bounds = group_bounds(filters, self.group_size)
        if self.overlap:
            order, groups, uses = overlap_order(op, self.group_size)
        else:
            order = filter_order(ids, len(op.patterns))
        if self.report:
            before = load_imbalance(ids, list(range(filters)), bounds)
            after = load_imbalance(ids, order, bounds)
            shared = ""
            if self.overlap:
                plain = [list(range(a, b)) for a, b in pairwise(bounds)]
                shared = (
                    f", shared reads {shared_reads(uses, plain):.3f} -> "
                    f"{shared_reads(uses, groups):.3f}"
                )
            print(
                f"{op_location(op)}: pconv-fkr: {filters} filters in {len(bounds) - 1} groups "
                f"of {self.group_size}, load imbalance {before:.3f} -> {after:.3f}{shared}",
                file=sys.stderr,
            )
        reordered = Conv2dOp(
            op.input,
            op.weight,
            op.bias,
            op.result.type,
            op.patterns,
            op.kernel_patterns,
            **window_of(op),
            residual=op.residual,
            filter_order=order,
            filter_groups=bounds,
        )
        reordered.location = op.location
        rewriter.replace(op, reordered)


@dataclass(frozen=True)
class PconvFkrPass(ModulePass):
    """Filter kernel reordering: groups filters of similar length and pattern mix.

    See the module docstring for the algorithm and the load-imbalance figure.
    """

    name = "pconv-fkr"

    group_size: int = 4
    overlap: bool = False
    report: bool = False

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size = {self.group_size} must be at least 1")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            _ReorderFilters(self.group_size, self.report, self.overlap), apply_recursively=False
        ).rewrite_module(op)

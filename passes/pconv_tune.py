"""pconv-tune: choose each FKW convolution's `#pconv.schedule` by trying candidates.

For every `pconv.fkw_conv2d`, the op (with its constant FKW arrays) is copied into a module of
its own, lowered with each candidate register tile (rows x vectors per row, at the given
`vector_width`), and compiled:

- `target=host`: each candidate is run on this machine, median of `repeats`; the fastest wins;
- `target=aarch64`: no device is attached, so candidates are ranked by llvm-mca-22's cycle
  estimate for Cortex-A76 of the multiply-add loop, times its trip count.

Candidates keep the accumulators within the register file: rows x vectors <= `max_acc`
(default 8, for AVX2's and NEON's 16/32 vector registers with room for weights and loads).

    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 4, unroll_cols = 2> ...
  becomes (say)
    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 3, unroll_cols = 2> ...

Option `report` prints each conv's candidates and the choice to stderr.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from pconv_mlir.diagnostics import op_location
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr, window_of

TILES = ((2, 1), (4, 1), (6, 1), (8, 1), (2, 2), (3, 2), (4, 2), (2, 3), (3, 3))
"""The (rows, vectors per row) register tiles tried, before the `max_acc` limit."""


def candidates(max_acc: int) -> list[tuple[int, int]]:
    """The tiles of `TILES` with at most `max_acc` accumulators."""
    return [(r, u) for r, u in TILES if r * u <= max_acc]


def with_schedule(op: FkwConv2dOp, schedule: ScheduleAttr) -> FkwConv2dOp:
    """A copy of `op` (same operands) with another schedule."""
    groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
    new = FkwConv2dOp(
        op.input,
        [op.offset, op.reorder, op.index, op.stride, op.weight],
        op.bias,
        op.result.type,
        op.patterns,
        schedule,
        tuple(op.strides.get_values()),
        tuple(op.padding.get_values()),
        tuple(op.dilation.get_values()),
        op.relu is not None,
        filter_groups=groups,
    )
    new.location = op.location
    return new


def standalone(op: FkwConv2dOp, schedule: ScheduleAttr) -> tuple[ModuleOp, bool]:
    """A module `func @conv(%x[, %bias])` holding a copy of `op` and its constant operands.

    Returns the module and whether the bias is an argument."""
    fkw = [op.offset, op.reorder, op.index, op.stride, op.weight]
    bias_arg = op.bias is not None and not isinstance(op.bias.owner, arith.ConstantOp)
    inputs = [op.input.type] + ([op.bias.type] if bias_arg else [])
    module = ModuleOp([])
    with ImplicitBuilder(module.body):
        fn = func.FuncOp("conv", (inputs, [op.result.type]))
        with ImplicitBuilder(fn.body) as args:
            copies: list[SSAValue] = []
            for value in fkw:
                owner = value.owner
                assert isinstance(owner, arith.ConstantOp)
                copies.append(arith.ConstantOp(owner.value, value.type).result)
            bias = None
            if op.bias is not None:
                if bias_arg:
                    bias = args[1]
                else:
                    constant = op.bias.owner
                    assert isinstance(constant, arith.ConstantOp)
                    bias = arith.ConstantOp(constant.value, op.bias.type).result
            copy = FkwConv2dOp(
                args[0], copies, bias, op.result.type, op.patterns, schedule,
                **window_of(op),
            )  # fmt: skip
            func.ReturnOp(copy.result)
    return module, bias_arg


def _lowered(module: ModuleOp, ctx: Context) -> ModuleOp:
    from pconv_mlir.pipeline import Pipeline

    return Pipeline("convert-pconv-to-loops,pconv-lre").run(module, ctx)


def measure_host(op: FkwConv2dOp, schedule: ScheduleAttr, ctx: Context, repeats: int) -> float:
    """Median seconds of one run of `op` compiled with `schedule` on this machine."""
    from pconv_mlir.runtime import build_runner

    module, bias_arg = standalone(op, schedule)
    module = _lowered(module, ctx)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(op.input.type.get_shape()).astype(np.float32)
    args = [x] + (
        [rng.standard_normal(op.bias.type.get_shape()).astype(np.float32)] if bias_arg else []
    )
    out = np.zeros(op.result.type.get_shape(), dtype=np.float32)
    with build_runner(module, target="host") as runner:
        runner.call("conv", *args, out)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            runner.call("conv", *args, out)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimate_aarch64(op: FkwConv2dOp, schedule: ScheduleAttr, ctx: Context) -> float:
    """llvm-mca's Cortex-A76 cycles for `op` with `schedule`: kernel loop x trip count."""
    from pconv_mlir.lowering.convert_pconv_to_loops import tile_count
    from pconv_mlir.lowering.llvm import lower_to_llvm_ir
    from pconv_mlir.runtime import llvm_mca_report

    module, _ = standalone(op, schedule)
    module = _lowered(module, ctx)
    report = llvm_mca_report(
        lower_to_llvm_ir(module, target="aarch64"), function="conv", hot=r"^fmla"
    )
    per_kernel = report.total_cycles / report.iterations
    n, _, oh, ow = op.result.type.get_shape()
    tiles = n * tile_count(oh, ow, schedule.as_dict())
    kernels = op.index.type.get_shape()[0]
    return tiles * kernels * per_kernel


@dataclass(frozen=True)
class PconvTunePass(ModulePass):
    """Chooses each FKW conv's register tile by measuring (host) or by llvm-mca (aarch64).

    See the module docstring for the candidates and the cost of each target.
    """

    name = "pconv-tune"

    target: str = "host"
    vector_width: int = 8
    max_acc: int = 8
    repeats: int = 3
    report: bool = False

    def __post_init__(self) -> None:
        if self.target not in ("host", "aarch64"):
            raise ValueError(f"target '{self.target}' is not host or aarch64")
        if self.max_acc < 1 or self.repeats < 1:
            raise ValueError("max_acc and repeats must be at least 1")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for conv in [o for o in op.walk() if isinstance(o, FkwConv2dOp)]:
            if not all(
                isinstance(v.owner, arith.ConstantOp)
                for v in (conv.offset, conv.reorder, conv.index, conv.stride, conv.weight)
            ):
                continue
            costs: dict[tuple[int, int], float] = {}
            for rows, cols in candidates(self.max_acc):
                schedule = ScheduleAttr.get(
                    vector_width=self.vector_width, unroll_rows=rows, unroll_cols=cols
                )
                if self.target == "host":
                    costs[(rows, cols)] = measure_host(conv, schedule, ctx, self.repeats)
                else:
                    costs[(rows, cols)] = estimate_aarch64(conv, schedule, ctx)
            rows, cols = min(costs, key=costs.__getitem__)
            if self.report:
                if self.target == "host":
                    unit, listing = (
                        "ms",
                        ", ".join(f"{r}x{u}: {c * 1e3:.3f}" for (r, u), c in costs.items()),
                    )
                else:
                    unit, listing = (
                        "cycles",
                        ", ".join(f"{r}x{u}: {c:.0f}" for (r, u), c in costs.items()),
                    )
                print(
                    f"{op_location(conv)}: pconv-tune: {self.target} {unit} {listing}; "
                    f"chose {rows}x{cols}",
                    file=sys.stderr,
                )
            chosen = ScheduleAttr.get(
                vector_width=self.vector_width, unroll_rows=rows, unroll_cols=cols
            )
            Rewriter.replace_op(conv, with_schedule(conv, chosen))

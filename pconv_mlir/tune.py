"""The tuner (PatDNN's auto-tuning): choose each FKW convolution's schedule by measuring.

    >>> database = tune(module, ctx, get_backend("host"))          # doctest: +SKIP
    >>> database.save("vgg.tuning.json")                           # doctest: +SKIP
    $ pconv-tune vgg-fkw.mlir --backend aarch64 -o vgg.tuning.json
    $ pconv-opt vgg-fkw.mlir -p 'pconv-apply-tuning{database=vgg.tuning.json}'

Measuring is not an IR transform, so the tuner is a driver: it reads a module at the FKW level
(after `pconv-fkw-pack`), copies each `pconv.fkw_conv2d` with its constant FKW arrays into a
module of its own, lowers and costs it with each candidate schedule through the backend
(`Backend.cost`: measured seconds on the host, llvm-mca's cycles for aarch64), and writes the
best schedule of every layer to a tuning database (`TuningDatabase`, JSON). The pure pass
`pconv-apply-tuning` then applies it.

The search is coordinate-wise from the op's own schedule, over the parameters the backend's
cost can tell apart (`Backend.tunable`): on the host first the vector width (8 or 16 lanes: one
ymm or zmm register, two ymm where there is no AVX-512), then the register tile (rows x vectors
per row, at most `max_acc` accumulators with the current partial sums and lock-step filters),
then `partial_sums` (1, 2), `unroll_filters` (1, 2) and, where timing sees caches,
`tile_channels` (0, 32, 64). Each step keeps the best so far and every parameter it does not
try, so a schedule given by the user (say `unroll_rows=4`) is kept.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from pconv_mlir import fkw
from pconv_mlir.backends import BACKENDS, get_backend
from pconv_mlir.backends.base import Backend
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr, window_of
from pconv_mlir.elements import using_storage
from pconv_mlir.errors import OptionError, PconvError, first_line, op_location
from pconv_mlir.ir import make_context, parse_module
from pconv_mlir.passes.pconv_apply_tuning import TuningDatabase, layer_key
from pconv_mlir.pipeline import Pipeline

TILES = ((2, 1), (4, 1), (6, 1), (8, 1), (2, 2), (3, 2), (4, 2), (2, 3), (3, 3))
"""The (unroll_rows, unroll_cols) register tiles tried, before the accumulator limit."""

STEPS: dict[str, tuple[dict[str, int], ...]] = {
    "vector_width": ({"vector_width": 8}, {"vector_width": 16}),
    "partial_sums": ({"partial_sums": 1}, {"partial_sums": 2}),
    "unroll_filters": ({"unroll_filters": 1}, {"unroll_filters": 2}),
    "tile_channels": ({"tile_channels": 0}, {"tile_channels": 32}, {"tile_channels": 64}),
}
"""The values tried for each parameter after the tile."""


def tile_candidates(schedule: ScheduleAttr, max_acc: int) -> list[dict[str, int]]:
    """The tiles of `TILES` whose accumulators (rows x vectors x partial sums x lock-step
    filters) fit in `max_acc`."""
    per = schedule["partial_sums"] * schedule["unroll_filters"]
    return [{"unroll_rows": r, "unroll_cols": u} for r, u in TILES if r * u * per <= max_acc]


def standalone(op: FkwConv2dOp, schedule: ScheduleAttr) -> ModuleOp:
    """A module `func @conv(%x[, %bias][, %residual]) -> tensor` holding a copy of `op` with
    `schedule`.

    The FKW arrays (and a constant bias) are copied as constants; channel blocks are re-packed
    when `schedule` changes them."""
    arrays = op.fkw_arrays()
    assert arrays is not None
    channels = op.input.type.get_shape()[1]
    if fkw.channel_blocks(channels, schedule["tile_channels"]) != op.channel_blocks():
        arrays = fkw.reblock(arrays, op.patterns.patterns, channels, schedule["tile_channels"])
    bias_arg = op.bias is not None and not isinstance(op.bias.owner, arith.ConstantOp)
    inputs = [op.input.type] + ([op.bias.type] if bias_arg else [])
    if op.residual is not None:
        inputs.append(op.residual.type)
    module = ModuleOp([])
    with ImplicitBuilder(module.body):
        function = func.FuncOp("conv", (inputs, [op.result.type]))
        with ImplicitBuilder(function.body) as args:
            from pconv_mlir.elements import dense_constant

            copies: list[SSAValue] = [dense_constant(a).result for a in arrays.arrays()]
            bias = None
            if op.bias is not None:
                if bias_arg:
                    bias = args[1]
                else:
                    constant = op.bias.owner
                    assert isinstance(constant, arith.ConstantOp)
                    bias = arith.ConstantOp(constant.value, op.bias.type).result
            groups = None if op.filter_groups is None else list(op.filter_groups.get_values())
            conv = FkwConv2dOp(
                args[0],
                copies,
                bias,
                op.result.type,
                op.patterns,
                schedule,
                **window_of(op),
                filter_groups=groups,
                residual=args[-1] if op.residual is not None else None,
            )
            func.ReturnOp(conv.result)
    return module


def kernel_loop_trips(op: FkwConv2dOp, schedule: ScheduleAttr | None = None) -> int:
    """How many times the kernel loop body runs under `schedule` (default: the op's):
    register tiles x kept kernels."""
    from pconv_mlir.lowering.convert_pconv_to_loops import tile_count

    schedule = op.schedule if schedule is None else schedule
    n, _, oh, ow = op.result.type.get_shape()
    kernels = op.index.type.get_shape()[0]
    return n * tile_count(oh, ow, schedule) * max(1, kernels)


def accumulators(schedule: ScheduleAttr) -> int:
    """Vector accumulators a schedule keeps live: rows x vectors x partial sums x filters."""
    return (
        schedule["unroll_rows"]
        * schedule["unroll_cols"]
        * schedule["partial_sums"]
        * schedule["unroll_filters"]
    )


def _steps(backend: Backend, steps: Sequence[str] | None) -> list[str]:
    chosen = list(backend.tunable if steps is None else steps)
    unknown = [s for s in chosen if s != "tile" and s not in STEPS]
    if unknown:
        raise OptionError(f"unknown tuning step '{unknown[0]}' (steps: tile, {', '.join(STEPS)})")
    return chosen


def tune_layer(
    op: FkwConv2dOp,
    ctx: Context,
    backend: Backend,
    *,
    max_acc: int = 8,
    repeats: int = 3,
    steps: Sequence[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[ScheduleAttr, float, dict[str, float]]:
    """The best schedule found for `op`, its cost, and every candidate's cost (by schedule).

    The op's own schedule is the first candidate; the others must keep at most `max_acc`
    accumulators. `steps` (default: the backend's `tunable`) are tried in order.
    """
    lowering = Pipeline(backend.lowering())
    costs: dict[str, float] = {}

    def cost_of(schedule: ScheduleAttr) -> float:
        key = ", ".join(f"{k}={v}" for k, v in schedule.as_dict().items())
        if key not in costs:
            module = lowering.run(standalone(op, schedule), ctx)
            costs[key] = backend.cost(
                module, ctx, "conv", repeats=repeats, trips=kernel_loop_trips(op, schedule)
            )
        return costs[key]

    best = op.schedule
    best_cost = cost_of(best)
    for step in _steps(backend, steps):
        changes = tile_candidates(best, max_acc) if step == "tile" else list(STEPS[step])
        tried = []
        for change in changes:
            schedule = best.replace(**change)
            if schedule != op.schedule and accumulators(schedule) > max_acc:
                continue
            cost = cost_of(schedule)
            tried.append((change, cost))
            if cost < best_cost:
                best, best_cost = schedule, cost
        if report is not None:
            listing = ", ".join(
                f"{'x'.join(str(v) for v in c.values())}: {_format_cost(v, backend)}"
                for c, v in tried
            )
            report(f"{step} {listing}")
    return best, best_cost, costs


def _format_cost(cost: float, backend: Backend) -> str:
    return f"{cost * 1e3:.3f} ms" if backend.cost_unit == "s" else f"{cost:.0f}"


def tune(
    module: ModuleOp,
    ctx: Context,
    backend: Backend,
    *,
    max_acc: int = 8,
    repeats: int = 3,
    steps: Sequence[str] | None = None,
    database: TuningDatabase | None = None,
    report: Callable[[str], None] | None = None,
) -> TuningDatabase:
    """Tune every `pconv.fkw_conv2d` of `module` whose FKW arrays are constants.

    Returns `database` (or a new one) with one entry per layer; `module` is not changed.
    `report(line)` receives one line per step and per layer.
    """
    if max_acc < 1 or repeats < 1:
        raise OptionError("max_acc and repeats must be at least 1")
    _steps(backend, steps)
    database = database or TuningDatabase(backend.name, backend.describe())
    with using_storage(ctx):
        ops = [op for op in module.walk() if isinstance(op, FkwConv2dOp)]
        for op in ops:
            if op.fkw_arrays() is None:
                if report is not None:
                    report(f"{op_location(op)}: skipped: its FKW arrays are not constants")
                continue
            key = layer_key(op)

            def say(line: str, op: FkwConv2dOp = op) -> None:
                if report is not None:
                    report(f"{op_location(op)}: {backend.name} {backend.cost_unit}: {line}")

            best, cost, costs = tune_layer(
                op, ctx, backend, max_acc=max_acc, repeats=repeats, steps=steps, report=say
            )
            tuned = {k: best[k] for k in _fields(_steps(backend, steps))}
            say(f"chose {tuned}")
            database.record(
                key,
                tuned,
                cost,
                backend.cost_unit,
                location=op_location(op),
                candidates=costs,
            )
    return database


def _fields(steps: Sequence[str]) -> list[str]:
    """The schedule parameters that `steps` choose."""
    return [
        f for step in steps for f in (("unroll_rows", "unroll_cols") if step == "tile" else (step,))
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """`pconv-tune INPUT -o DATABASE [--backend NAME]`: tune an FKW-level module."""
    parser = argparse.ArgumentParser(
        prog="pconv-tune",
        description="Choose each pconv.fkw_conv2d's schedule by measuring (host) or by "
        "llvm-mca (aarch64, x86_64), and write a tuning database for pconv-apply-tuning.",
    )
    parser.add_argument("input", help="an .mlir file at the FKW level (after pconv-fkw-pack)")
    parser.add_argument("-o", "--output", required=True, help="the tuning database (JSON)")
    parser.add_argument("--backend", default="host", choices=sorted(BACKENDS))
    parser.add_argument("--cpu", default=None, help="clang -march/-mcpu instead of the default")
    parser.add_argument("--max-acc", type=int, default=8, help="accumulators at most (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per candidate")
    parser.add_argument(
        "--steps",
        default=None,
        help="comma-separated steps to try, in order (tile, partial_sums, unroll_filters, "
        "tile_channels; default: what the backend's cost can rank)",
    )
    parser.add_argument("--report", action="store_true", help="print every candidate's cost")
    args = parser.parse_args(argv)
    try:
        backend = get_backend(args.backend, cpu=args.cpu)
        ctx = make_context(own_resources=True)
        try:
            with open(args.input) as f:
                text = f.read()
        except OSError as e:
            raise PconvError(
                f"{args.input}: error: could not open input file: {e.strerror}"
            ) from None
        module = parse_module(text, ctx, name=args.input)
        module.verify()
        say = (lambda line: print(line, file=sys.stderr)) if args.report else None
        steps = None if args.steps is None else [s for s in args.steps.split(",") if s]
        database = tune(
            module,
            ctx,
            backend,
            max_acc=args.max_acc,
            repeats=args.repeats,
            steps=steps,
            report=say,
        )
        database.save(args.output)
    except PconvError as e:
        print(first_line(e), file=sys.stderr)
        return 1
    except Exception as e:  # a verifier or tool error: one line, never a traceback
        from pconv_mlir.ir import describe_failure

        print(describe_failure(None, e), file=sys.stderr)
        return 1
    print(f"{args.output}: {len(database.layers)} layers tuned for {backend.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

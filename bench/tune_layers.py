"""Benchmark: what the tuner gains on the 3x3 conv layers of VGG-16 at 224x224, one thread.

Every layer is pruned as in `conv_layers.py` (8 patterns, 1 kernel kept in 3.6, PatDNN's
setting), packed with the backend's default schedule, and tuned by the genetic search
(`pconv_mlir.tune`, PatDNN's auto-tuner) under a time budget per layer. The default and the
tuned schedule are then measured again, the same way, for the table: layer, default and tuned
time, speed-up, and the tuned schedule (`vw` lanes, rows x vectors tile, `ps` partial sums,
`uf` lock-step filters, `tc` channel block, `sp` specialised code with its chunk of
multiply-adds). The host backend times the layer (ms); `--backend aarch64` ranks by llvm-mca's
cycle estimate for Cortex-A76, shown as ms at 2.84 GHz (an estimate, not a measurement).

    python bench/tune_layers.py                        # VGG-16, host, 120 s per layer
    python bench/tune_layers.py --budget 30 --database vgg16.tuning.json
    python bench/tune_layers.py --quick                # two tiny layers, well under a minute
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conv_layers import A76_GHZ, Layer, layer_weights  # noqa: E402

from pconv_mlir.backends import get_backend  # noqa: E402
from pconv_mlir.builders import conv2d_module  # noqa: E402
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr  # noqa: E402
from pconv_mlir.elements import using_storage  # noqa: E402
from pconv_mlir.ir import make_context  # noqa: E402
from pconv_mlir.passes.pconv_apply_tuning import TuningDatabase, layer_key  # noqa: E402
from pconv_mlir.passes.pconv_fkr import PconvFkrPass  # noqa: E402
from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass  # noqa: E402
from pconv_mlir.pipeline import Pipeline  # noqa: E402
from pconv_mlir.tune import genes, measure, tune, tuning_target  # noqa: E402


def bench_layers(quick: bool) -> list[Layer]:
    """VGG-16's 3x3 layers at 224x224, or two tiny ones for `--quick`."""
    if quick:
        return [Layer("quick", "a", 8, 16, 12, 12, 1), Layer("quick", "b", 12, 8, 9, 9, 2)]
    from pconv_mlir.models import conv3x3_layers

    return [
        Layer("vgg16", c.name, c.C, c.F, c.H, c.W, c.stride) for c in conv3x3_layers("vgg16", 224)
    ]


def packed(layer: Layer, backend, seed: int):
    """The layer pruned (sparse variant) at the FKW level with the backend's default schedule:
    (module, context, its conv op)."""
    rng = np.random.default_rng(seed)
    patterns, ids, weight = layer_weights(layer, "sparse", rng)
    bias = rng.standard_normal(layer.f).astype(np.float32)
    module = conv2d_module(
        (1, layer.c, layer.h, layer.w), weight, bias, patterns, ids,
        (layer.stride, layer.stride), (1, 1),
    )  # fmt: skip
    ctx = make_context(own_resources=True)
    Pipeline([PconvFkrPass(), PconvFkwPackPass(**backend.schedule_defaults())]).run(module, ctx)
    op = next(op for op in module.walk() if isinstance(op, FkwConv2dOp))
    return module, ctx, op


def schedule_text(schedule: ScheduleAttr) -> str:
    """A tuned schedule in a few characters: `vw8 4x2 ps1 uf2 tc0 sp0`."""
    text = (
        f"vw{schedule['vector_width']} {schedule['unroll_rows']}x{schedule['unroll_cols']} "
        f"ps{schedule['partial_sums']} uf{schedule['unroll_filters']} "
        f"tc{schedule['tile_channels']} sp{schedule['specialize']}"
    )
    return text + (f"/{schedule['chunk_fmas']}" if schedule["specialize"] else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny layers, a small budget")
    parser.add_argument("--backend", default="host", choices=("host", "aarch64", "x86_64"))
    parser.add_argument("--search", default="genetic", choices=("genetic", "coordinate"))
    parser.add_argument("--budget", type=float, default=None, help="seconds per layer")
    parser.add_argument("--population", type=int, default=None)
    parser.add_argument("--generations", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    parser.add_argument(
        "--steps", default=None, help="comma list of genes to vary (default: the backend's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database", default=None, help="also write the tuning database here")
    parser.add_argument("--csv", default="bench/results/tune_layers.csv")
    args = parser.parse_args(argv)
    quick = args.quick
    budget = args.budget if args.budget is not None else (8.0 if quick else 120.0)
    population = args.population or (4 if quick else 10)
    generations = args.generations or (2 if quick else 8)
    repeats = args.repeats or (1 if quick else 5)

    os.environ["PCONV_NUM_THREADS"] = "1"  # the tuned and the default code on one thread
    backend = get_backend(args.backend)
    database = TuningDatabase()
    ms = (lambda c: c * 1e3) if backend.cost_unit == "s" else (lambda c: c / (A76_GHZ * 1e6))
    print(
        f"# {backend.describe()}; {args.search} search, {budget:g} s per layer, population "
        f"{population}, {generations} generations, seed {args.seed}; median of {repeats}"
        + ("" if backend.cost_unit == "s" else f"; llvm-mca ESTIMATE at {A76_GHZ} GHz")
    )
    header = (
        f"{'layer':<16} {'C':>4} {'F':>4} {'HxW':>7} | {'default':>9} {'tuned':>9} ms | "
        f"{'speed-up':>8} | {'measured':>8} {'s':>6} | tuned schedule"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for i, layer in enumerate(bench_layers(quick)):
        module, ctx, op = packed(layer, backend, args.seed + i)
        started = time.monotonic()
        tune(
            module,
            ctx,
            backend,
            search=args.search,
            repeats=repeats,
            population=population,
            generations=generations,
            seed=args.seed,
            steps=args.steps.split(",") if args.steps else None,
            budget=budget,
            database=database,
        )
        spent = time.monotonic() - started
        with using_storage(ctx):  # the key digests the FKW arrays, stored in `ctx`
            key = TuningDatabase.entry_key(layer_key(op), tuning_target(backend))
            entry = database.layers[key]
            tuned = op.schedule.replace(**entry["schedule"])
            default_cost = measure(op, ctx, backend, op.schedule, repeats)
            tuned_cost = measure(op, ctx, backend, tuned, repeats)
        row = {
            "layer": f"{layer.model}:{layer.name}", "C": layer.c, "F": layer.f,
            "H": layer.h, "W": layer.w, "stride": layer.stride,
            "default_ms": ms(default_cost), "tuned_ms": ms(tuned_cost),
            "speedup": default_cost / tuned_cost, "measured": len(entry["candidates"]),
            "tuning_s": spent, "schedule": schedule_text(tuned),
            "tuned": {k: tuned[k] for g in genes(backend.tunable, tuned) for k in g.fields},
        }  # fmt: skip
        rows.append(row)
        print(
            f"{row['layer']:<16} {layer.c:>4} {layer.f:>4} {layer.h:>3}x{layer.w:<3} | "
            f"{row['default_ms']:9.3f} {row['tuned_ms']:9.3f}    | {row['speedup']:7.2f}x | "
            f"{row['measured']:>8} {spent:6.1f} | {row['schedule']}",
            flush=True,
        )
    if len(rows) > 1:
        geo = float(np.exp(np.mean(np.log([r["speedup"] for r in rows]))))
        print(f"geometric mean speed-up: {geo:.2f}x")
    if args.database:
        database.save(args.database)
        print(f"wrote {args.database}")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

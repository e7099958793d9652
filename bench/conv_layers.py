"""Benchmark: the 3x3 conv layers of VGG-16 and ResNet-50 at 224x224, one thread.

For every layer, in one run (ratios within a run are what to compare; this machine is noisy):

- `sparse`: pconv with 8 patterns and 1 kernel kept in 3.6 (PatDNN's setting);
- `patterns`: pconv with 8 patterns and no connectivity pruning;
- `dense`: the same generator on the dense 9-tap pattern set (every kernel kept);
- `torch`: PyTorch's own `conv2d` (oneDNN) on the dense layer, `torch.set_num_threads(1)`.

Times are medians of `--repeats` runs after a warm-up. Effective GFLOP/s = dense FLOPs
(2 * F * C * 9 * OH * OW) / time, so the columns compare directly. Written as a table and as
CSV. With `--aarch64`, the same layers are compiled for Cortex-A76 and llvm-mca-22's cycle
estimate of the kernel loop, times its trip count, at 2.84 GHz gives an *estimate* of each
layer's time on a Snapdragon 855 big core.

    python bench/conv_layers.py                       # VGG-16 and ResNet-50, host
    python bench/conv_layers.py --quick               # three small layers, smoke test
    python bench/conv_layers.py --models vgg16 --aarch64
    python bench/conv_layers.py --models vgg16 --code     # + code bytes, spills, loads/MAC

With `--specialize`, each layer where `pconv_mlir.tune.specialize_pays` (enough register tiles
per image, code of a bounded size) also gets `sparse spec`: the same sparse layer as code
specialised to its kernels (`specialize = 1`: filter-level LRE, straight-line chunks), with the
schedule given (default 2 filters per group, a 2 x 2 tile) and its build seconds. pconv runs
on one thread (`PCONV_NUM_THREADS=1`), like torch.

With `--code`, a second table gives for each layer and build the generated code's bytes and the
register allocator's spills and reloads (from the object file, `pconv_mlir.runtime.codestats`)
and the activation vector loads per vector multiply-add of its kernel loops after pconv-lre.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pconv_mlir.backends import get_backend
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import FkwConv2dOp, conv_output_size
from pconv_mlir.ir import make_context
from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass
from pconv_mlir.passes.pconv_fkr import PconvFkrPass
from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.runtime.timing import median_seconds
from pconv_mlir.tune import kernel_loop_trips
from pconv_mlir.tune import tune as tune_module

A76_GHZ = 2.84


@dataclass(frozen=True)
class Layer:
    model: str
    name: str
    c: int
    f: int
    h: int
    w: int
    stride: int

    @property
    def out_hw(self) -> tuple[int, int]:
        return conv_output_size(self.h, self.stride, 1, 1), conv_output_size(
            self.w, self.stride, 1, 1
        )

    @property
    def dense_flops(self) -> int:
        oh, ow = self.out_hw
        return 2 * self.f * self.c * 9 * oh * ow


def layers(models: list[str], quick: bool) -> list[Layer]:
    if quick:
        return [
            Layer("quick", "a", 16, 16, 28, 28, 1),
            Layer("quick", "b", 32, 24, 14, 14, 2),
            Layer("quick", "c", 13, 7, 9, 9, 1),
        ]
    from pconv_mlir.models import conv3x3_layers

    return [
        Layer(m, conv.name, conv.C, conv.F, conv.H, conv.W, conv.stride)
        for m in models
        for conv in conv3x3_layers(m, 224)
    ]


def layer_weights(layer: Layer, variant: str, rng: np.random.Generator):
    """(patterns, ids, weight) of one variant of a layer."""
    if variant == "dense":
        weight = rng.standard_normal((layer.f, layer.c, 3, 3)).astype(np.float32)
        return [tuple(range(9))], np.zeros((layer.f, layer.c), dtype=np.int64), weight
    rate = 3.6 if variant == "sparse" else 1.0
    return random_pattern_layer(rng, layer.f, layer.c, 8, rate)


def build(layer: Layer, variant: str, backend, schedule: dict[str, int], seed: int, tune: bool):
    """One layer variant at the FKW level and then lowered by `backend`, with its context and
    pattern ids; with `tune` the tuner picks this layer's schedule (timed on the host,
    llvm-mca for aarch64) and `pconv-apply-tuning` applies it."""
    rng = np.random.default_rng(seed)
    patterns, ids, weight = layer_weights(layer, variant, rng)
    bias = rng.standard_normal(layer.f).astype(np.float32)
    module = conv2d_module(
        (1, layer.c, layer.h, layer.w), weight, bias, patterns, ids,
        (layer.stride, layer.stride), (1, 1),
    )  # fmt: skip
    ctx = make_context(own_resources=True)
    Pipeline([PconvFkrPass(), PconvFkwPackPass(**schedule)]).run(module, ctx)
    if tune:
        with tempfile.TemporaryDirectory() as tmp:
            database = tune_module(module, ctx, backend)
            database.save(Path(tmp) / "tuning.json")
            Pipeline([PconvApplyTuningPass(database=str(Path(tmp) / "tuning.json"))]).run(
                module, ctx
            )
    trips = kernel_loop_trips(next(op for op in module.walk() if isinstance(op, FkwConv2dOp)))
    Pipeline(backend.lowering()).run(module, ctx)
    return module, ctx, ids, trips


def time_pconv(
    layer: Layer, variant: str, schedule: dict[str, int], repeats: int, seed: int, tune: bool
):
    """Median seconds of the layer on the host backend, and the kernels it keeps."""
    backend = get_backend("host")
    module, ctx, ids, _ = build(layer, variant, backend, schedule, seed, tune)
    return backend.cost(module, ctx, "conv", repeats=repeats), int((ids >= 0).sum())


def specialization_pays(layer: Layer, schedule: dict[str, int]) -> bool:
    """Whether the tuner would try `schedule` with `specialize = 1` on the sparse layer."""
    from pconv_mlir.tune import specialize_pays

    rng = np.random.default_rng(0)
    patterns, ids, weight = layer_weights(layer, "sparse", rng)
    module = conv2d_module(
        (1, layer.c, layer.h, layer.w), weight, None, patterns, ids,
        (layer.stride, layer.stride), (1, 1),
    )  # fmt: skip
    ctx = make_context(own_resources=True)
    Pipeline([PconvFkwPackPass(**schedule)]).run(module, ctx)
    op = next(op for op in module.walk() if isinstance(op, FkwConv2dOp))
    return specialize_pays(op, op.schedule)


def time_torch(layer: Layer, repeats: int, seed: int) -> float:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, layer.c, layer.h, layer.w, generator=g)
    w = torch.randn(layer.f, layer.c, 3, 3, generator=g)
    b = torch.randn(layer.f, generator=g)
    with torch.no_grad():
        return median_seconds(
            lambda: F.conv2d(x, w, b, stride=layer.stride, padding=1), repeats=repeats
        )


def mca_estimate(layer: Layer, variant: str, schedule: dict[str, int], seed: int) -> float:
    """Estimated milliseconds on Cortex-A76: the aarch64 backend's llvm-mca cost (cycles of the
    kernel loop x its trip count) at `A76_GHZ`."""
    backend = get_backend("aarch64")
    module, ctx, _, trips = build(layer, variant, backend, schedule, seed, tune=False)
    cycles = backend.cost(module, ctx, "conv", trips=trips)
    return cycles / (A76_GHZ * 1e9) * 1e3


def code_figures(layer: Layer, variant: str, schedule: dict[str, int], seed: int) -> dict:
    """Code bytes, spills, reloads and activation loads per multiply-add of one build."""
    from pconv_mlir.passes.pconv_lre import kernel_loops, loads_and_fmas
    from pconv_mlir.runtime.codestats import code_statistics

    backend = get_backend("host")
    module, ctx, _, _ = build(layer, variant, backend, schedule, seed, tune=False)
    loads, fmas = loads_and_fmas(kernel_loops(module))
    stats = code_statistics(backend.emit(module, ctx))
    return {
        f"{variant}_code_bytes": stats.code_bytes,
        f"{variant}_spills": stats.spills,
        f"{variant}_reloads": stats.reloads,
        f"{variant}_loads_per_fma": loads / max(1, fmas),
    }


def gflops(layer: Layer, seconds: float) -> float:
    return layer.dense_flops / seconds / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="three small layers, for a smoke test")
    parser.add_argument("--aarch64", action="store_true", help="add the llvm-mca estimate table")
    parser.add_argument(
        "--code", action="store_true", help="add code bytes, spills and loads per multiply-add"
    )
    parser.add_argument(
        "--tune", action="store_true", help="the tuner picks each variant's schedule (slow)"
    )
    parser.add_argument(
        "--specialize",
        nargs="?",
        const="unroll_filters=2,unroll_rows=2,unroll_cols=2",
        help="add sparse as specialised code where it pays, with this schedule (k=v,...)",
    )
    parser.add_argument("--vector-width", type=int, default=8)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--cols", type=int, default=2)
    parser.add_argument("--csv", default="bench/results/conv_layers.csv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    os.environ["PCONV_NUM_THREADS"] = "1"
    schedule = {
        "vector_width": args.vector_width,
        "unroll_rows": args.rows,
        "unroll_cols": args.cols,
    }
    special = None
    if args.specialize:
        pairs = (item.split("=") for item in args.specialize.split(",") if item)
        special = {**schedule, **{k: int(v) for k, v in pairs}, "specialize": 1}
    todo = layers(args.models.split(","), args.quick)
    print(
        f"# {get_backend('host').describe()}, {os.cpu_count()} cores, one thread; "
        f"schedule {'tuned per layer' if args.tune else schedule}; median of {args.repeats}"
    )
    header = (
        f"{'layer':<22} {'C':>4} {'F':>4} {'HxW':>7} {'s':>1} | {'torch':>8} {'dense':>8} "
        f"{'pattern':>8} {'sparse':>8} ms | {'torch':>6} {'sparse':>6} GF/s | "
        f"{'sp/torch':>8} {'sp/dense':>8} {'pat/dense':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    specialised: list[str] = []
    for i, layer in enumerate(todo):
        seed = args.seed + i
        torch_s = time_torch(layer, args.repeats, seed)
        dense_s, _ = time_pconv(layer, "dense", schedule, args.repeats, seed, args.tune)
        pattern_s, _ = time_pconv(layer, "patterns", schedule, args.repeats, seed, args.tune)
        sparse_s, kept = time_pconv(layer, "sparse", schedule, args.repeats, seed, args.tune)
        row = {
            "model": layer.model, "layer": layer.name, "C": layer.c, "F": layer.f,
            "H": layer.h, "W": layer.w, "stride": layer.stride,
            "torch_ms": torch_s * 1e3, "dense_ms": dense_s * 1e3,
            "patterns_ms": pattern_s * 1e3, "sparse_ms": sparse_s * 1e3,
            "torch_gflops": gflops(layer, torch_s), "dense_gflops": gflops(layer, dense_s),
            "patterns_gflops": gflops(layer, pattern_s), "sparse_gflops": gflops(layer, sparse_s),
            "sparse_vs_torch": torch_s / sparse_s, "sparse_vs_dense": dense_s / sparse_s,
            "patterns_vs_dense": dense_s / pattern_s, "kernels_kept": kept,
        }  # fmt: skip
        rows.append(row)
        if special is not None and specialization_pays(layer, special):
            started = time.monotonic()
            spec_s, _ = time_pconv(layer, "sparse", special, args.repeats, seed, False)
            row.update({
                "spec_ms": spec_s * 1e3, "spec_gflops": gflops(layer, spec_s),
                "spec_vs_sparse": sparse_s / spec_s,
                "spec_build_and_time_s": time.monotonic() - started,
            })  # fmt: skip
            specialised.append(
                f"{layer.model + ':' + layer.name:<22} {row['sparse_ms']:8.2f} "
                f"{row['spec_ms']:8.2f} ms  {row['spec_vs_sparse']:5.2f}x  "
                f"{row['spec_gflops']:6.1f} GF/s  built and timed in "
                f"{row['spec_build_and_time_s']:.0f} s"
            )
        print(
            f"{layer.model + ':' + layer.name:<22} {layer.c:>4} {layer.f:>4} "
            f"{layer.h:>3}x{layer.w:<3} {layer.stride:>1} | {row['torch_ms']:8.2f} "
            f"{row['dense_ms']:8.2f} {row['patterns_ms']:8.2f} {row['sparse_ms']:8.2f}    | "
            f"{row['torch_gflops']:6.1f} {row['sparse_gflops']:6.1f}      | "
            f"{row['sparse_vs_torch']:7.2f}x {row['sparse_vs_dense']:7.2f}x "
            f"{row['patterns_vs_dense']:8.2f}x",
            flush=True,
        )
    if len(rows) > 1:
        geo = {
            k: float(np.exp(np.mean(np.log([r[k] for r in rows]))))
            for k in ("sparse_vs_torch", "sparse_vs_dense", "patterns_vs_dense")
        }
        print(
            f"geometric mean: sparse/torch {geo['sparse_vs_torch']:.2f}x, sparse/dense "
            f"{geo['sparse_vs_dense']:.2f}x, patterns/dense {geo['patterns_vs_dense']:.2f}x"
        )

    if special is not None:
        print(f"\n# sparse as specialised code, schedule {special}")
        print(f"{'layer':<22} {'sparse':>8} {'spec':>8} ms  spec/sparse")
        print("\n".join(specialised) or "(no layer where specialised code pays)")

    if args.aarch64:
        arm = {**schedule, **get_backend("aarch64").schedule_defaults()}  # 4 lanes, lane weights
        print(f"\n# aarch64 Cortex-A76 at {A76_GHZ} GHz: llvm-mca-22 ESTIMATE, not a measurement")
        print(f"{'layer':<22} | {'dense':>8} {'sparse':>8} ms (est.) | {'sp/dense':>8}")
        for i, (layer, row) in enumerate(zip(todo, rows, strict=True)):
            dense_ms = mca_estimate(layer, "dense", arm, args.seed + i)
            sparse_ms = mca_estimate(layer, "sparse", arm, args.seed + i)
            row.update({"a76_est_dense_ms": dense_ms, "a76_est_sparse_ms": sparse_ms})
            print(
                f"{layer.model + ':' + layer.name:<22} | {dense_ms:8.2f} {sparse_ms:8.2f}"
                f"           | {dense_ms / sparse_ms:7.2f}x",
                flush=True,
            )

    if args.code:
        print("\n# generated code (host, object file): KB of code, spills/reloads, loads/MAC")
        print(f"{'layer':<22} | " + " | ".join(f"{v:^24}" for v in ("dense", "patterns", "sparse")))
        for i, (layer, row) in enumerate(zip(todo, rows, strict=True)):
            cells = []
            for variant in ("dense", "patterns", "sparse"):
                figures = code_figures(layer, variant, schedule, args.seed + i)
                row.update(figures)
                cells.append(
                    f"{figures[f'{variant}_code_bytes'] / 1024:6.1f} KB "
                    f"{figures[f'{variant}_spills']:>3}/{figures[f'{variant}_reloads']:<3} "
                    f"{figures[f'{variant}_loads_per_fma']:.2f}"
                )
            name = f"{layer.model}:{layer.name}"
            print(f"{name:<22} | " + " | ".join(f"{c:^24}" for c in cells))

    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        fields = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU path on this machine's OpenCL device: pattern vs dense convs through the same kernels.

    .venv/bin/python bench/opencl.py                 # VGG-16's 13 3x3 layers at CIFAR size
    .venv/bin/python bench/opencl.py --quick         # three small layers (a smoke test)
    .venv/bin/python bench/opencl.py --stage         # also: sparse with input tiles staged

Each layer of VGG-16 (input 32x32, the CIFAR network) is built three ways, as `bench/
conv_layers.py` builds them: `dense` (the 9-tap pattern on every kernel), `pattern` (8 patterns
of 4 taps, every kernel kept) and `sparse` (8 patterns, 1 kernel in 3.6 kept); each is lowered
by `pconv-lower-to-gpu` (`convert-pconv-to-gpu`'s kernels, default GPU schedule) and its
launches are timed on the first OpenCL device (median of `--repeats` runs after a warm-up,
buffers on the device). The table gives milliseconds, the multiply-adds the kernels do per
output value (the kernel-level work per pixel: kept kernels x taps / filters; dense is 9 C),
and the speed-ups of pattern and sparse over dense through the same GPU code. Then the whole
pruned network, compiled with its 3x3 convs as patterns and as dense 9-tap kernels (every
other layer the same upstream kernels), milliseconds per call.

With `--stage` the sparse layer is also built with `gpu_stage_input=1` (its input tiles
staged in local memory, channel blocks picked by pconv-fkw-pack to fit 32 KB) and the table
adds its milliseconds and its speed-up over the unstaged sparse kernel. Staging pays only
where local memory is on chip; the backend turns it on by default only there.

Here the device is PoCL on the CPU (a CPU OpenCL device): the numbers are for relative
comparison only (pattern vs dense through the same kernels), not a phone GPU's times; see the
README for what a phone adds.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _conv_layers():
    spec = importlib.util.spec_from_file_location("conv_layers", HERE / "conv_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conv_layers"] = module
    spec.loader.exec_module(module)
    return module


VARIANTS = ("dense", "pattern", "sparse")
TAPS = {"dense": 9, "pattern": 4, "sparse": 4}


def network(repeats: int) -> None:
    """The pruned CIFAR VGG-16 as one artifact (every layer on the device), its 3x3 convs as
    patterns (`mode="infer"`) and as dense 9-tap kernels (`mode="dense"`): ms per call."""
    import time

    import torch

    import pconv_mlir
    from pconv_mlir import pruning
    from pconv_mlir.models import vgg16

    torch.manual_seed(0)
    model = vgg16(num_classes=10, input_size=32).eval()
    pruning.prune_model(model, patterns=8, connectivity=3.6)
    x = torch.randn(1, 3, 32, 32)
    times = {}
    for mode in ("dense", "infer"):
        artifact = pconv_mlir.compile(model, x, target="opencl", mode=mode)
        try:
            artifact(x)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                artifact(x)
                samples.append(time.perf_counter() - start)
            times[mode] = statistics.median(samples) * 1e3
        finally:
            artifact.close()
    print(
        f"whole CIFAR VGG-16 (pruned, every layer on the device): dense convs "
        f"{times['dense']:.1f} ms, pattern+connectivity {times['infer']:.1f} ms, "
        f"{times['dense'] / times['infer']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="three small layers")
    parser.add_argument("--csv", default="bench/results/opencl.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stage", action="store_true", help="also time sparse with gpu_stage_input=1"
    )
    args = parser.parse_args(argv)

    from pconv_mlir.backends import get_backend
    from pconv_mlir.models import conv3x3_layers

    cl = _conv_layers()
    backend = get_backend("opencl")
    device = backend.describe()
    if args.quick:
        layers = cl.layers([], quick=True)
    else:
        layers = [
            cl.Layer("vgg16", c.name, c.C, c.F, c.H, c.W, c.stride)
            for c in conv3x3_layers("vgg16", 32)
        ]
    print(f"OpenCL device: {device} -- a CPU OpenCL device: relative comparison only")
    header = (
        f"{'layer':<14}{'C':>5}{'F':>5}{'HxW':>8}"
        + "".join(f"{v + ' ms':>12}{'MAC/px':>8}" for v in VARIANTS)
        + f"{'pat/dense':>11}{'sp/dense':>10}"
        + (f"{'staged ms':>11}{'staged/sp':>10}" if args.stage else "")
    )
    print(header)
    rows = []
    for layer in layers:
        row = {"layer": layer.name, "C": layer.c, "F": layer.f, "H": layer.h, "W": layer.w}
        for variant in VARIANTS:
            module, ctx, ids, _ = cl.build(layer, variant, backend, {}, args.seed, False)
            seconds = backend.cost(module, ctx, "conv", repeats=args.repeats)
            kept = int((ids >= 0).sum())
            row[f"{variant}_ms"] = seconds * 1e3
            row[f"{variant}_macs_per_pixel"] = kept * TAPS[variant] / layer.f
        row["pattern_speedup"] = row["dense_ms"] / row["pattern_ms"]
        row["sparse_speedup"] = row["dense_ms"] / row["sparse_ms"]
        staged = ""
        if args.stage:
            stage = {"gpu_stage_input": 1}
            module, ctx, _, _ = cl.build(layer, "sparse", backend, stage, args.seed, False)
            row["staged_ms"] = backend.cost(module, ctx, "conv", repeats=args.repeats) * 1e3
            row["staged_speedup"] = row["sparse_ms"] / row["staged_ms"]
            staged = f"{row['staged_ms']:>11.3f}{row['staged_speedup']:>9.2f}x"
        rows.append(row)
        print(
            f"{layer.name:<14}{layer.c:>5}{layer.f:>5}{f'{layer.h}x{layer.w}':>8}"
            + "".join(
                f"{row[f'{v}_ms']:>12.3f}{row[f'{v}_macs_per_pixel']:>8.1f}" for v in VARIANTS
            )
            + f"{row['pattern_speedup']:>10.2f}x{row['sparse_speedup']:>9.2f}x"
            + staged,
            flush=True,
        )
    means = {"pattern_speedup": "pattern over dense", "sparse_speedup": "sparse over dense"}
    if args.stage:
        means["staged_speedup"] = "staged sparse over unstaged sparse"
    for key, what in means.items():
        mean = statistics.geometric_mean(r[key] for r in rows)
        print(f"geometric mean speed-up, {what}: {mean:.2f}x")
    if not args.quick:
        network(args.repeats)
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

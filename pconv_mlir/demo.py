"""The main job (`make demo`): pattern-sparse convolution from IR to machine code, checked.

1. A 3x3 conv with 8 patterns and 1 kernel in 3.6 kept goes through every pconv pass; after each,
   the reference semantics must still equal `torch.nn.functional.conv2d` on the masked weights.
2. It is compiled for the x86-64 host and for aarch64 (Cortex-A76, run under qemu-aarch64), and
   both binaries must give torch's answer.
3. A VGG-style block, pruned with `pconv_mlir.pruning`, is compiled with `pconv_mlir.compile`
   and timed against PyTorch's own dense conv in the same run (one thread).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.interpreter import run_function
from pconv_mlir.ir import make_context, parse_module, print_module
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.runtime.runners import build_runner
from pconv_mlir.runtime.timing import median_seconds

STAGES = [
    ("pconv.conv2d (parsed)", ""),
    ("pconv-fkr", "pconv-fkr{group_size=4 report=true}"),
    ("pconv-fkw-pack", "pconv-fkw-pack{unroll_cols=1 report=true}"),
    ("convert-pconv-to-loops", "convert-pconv-to-loops"),
    ("pconv-lre", "pconv-lre{report=true}"),
]


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected)) / max(1e-12, float(np.max(np.abs(expected)))))


def torch_conv(x, weight, bias, stride: int, padding: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    out = F.conv2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
        stride=stride, padding=padding,
    )  # fmt: skip
    return torch.relu(out).numpy()


def one_conv(args: argparse.Namespace) -> bool:
    rng = np.random.default_rng(args.seed)
    f, c, size = args.filters, args.channels, args.size
    patterns, ids, weight = random_pattern_layer(rng, f, c, k=8, rate=3.6)
    bias = rng.standard_normal(f).astype(np.float32)
    x = rng.standard_normal((1, c, size, size)).astype(np.float32)
    expected = torch_conv(x, weight, bias, 1, 1)
    text = print_module(conv2d_module(x.shape, weight, bias, patterns, ids, relu=True))
    kept = int((ids >= 0).sum())
    print(f"== 1. a {f}x{c}x3x3 conv on {size}x{size}, 8 patterns, {kept} of {ids.size} kernels")
    print(text)

    ctx = make_context(own_resources=True)
    module = parse_module(text, ctx)
    ok = True
    for label, spec in STAGES:
        if spec:
            Pipeline(spec).run(module, ctx)
        if label == "pconv-fkw-pack":
            print(print_module(module, ctx))
        if label in ("convert-pconv-to-loops", "pconv-lre"):
            loads = sum(op.name == "vector.load" for op in module.walk())
            fmas = sum(op.name == "vector.fma" for op in module.walk())
            print(f"   {label}: {fmas} vector.fma and {loads} vector.load in the pattern bodies")
            continue  # loops are checked below, compiled
        (got, *_) = run_function(module, "conv", x, bias, ctx=ctx)
        error = relative_error(got, expected)
        print(f"   after {label}: max relative error vs torch {error:.1e}")
        ok &= error < 1e-4

    print("\n== 2. the loops compiled to machine code")
    for target in ("host", "aarch64"):
        out = np.zeros(expected.shape, dtype=np.float32)
        with build_runner(module, ctx, target=target) as runner:
            runner.call("conv", x, bias, out)
        error = relative_error(out, expected)
        how = "ctypes" if target == "host" else "qemu-aarch64, Cortex-A76 code"
        print(f"   {target} ({how}): max relative error vs torch {error:.1e}")
        ok &= error < 1e-4
    return ok


def vgg_block(args: argparse.Namespace) -> bool:
    import torch
    import torch.nn as nn

    import pconv_mlir
    from pconv_mlir import pruning

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    ch, size = args.block_channels, args.block_size
    block = nn.Sequential(
        nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()
    ).eval()  # fmt: skip
    dense = nn.Sequential(*[m for m in block]).eval()
    dense.load_state_dict(block.state_dict())
    result = pruning.prune_model(block, patterns=8, connectivity=3.6, skip_first=False)
    print(f"\n== 3. a VGG block: 2 x conv3x3 {ch}->{ch} on {size}x{size}, pruned")
    print(f"   {result.summary}".replace("\n", "\n   "))
    x = torch.randn(1, ch, size, size)
    artifact = pconv_mlir.compile(block, x)
    try:
        error = relative_error(artifact(x), block(x).detach().numpy())
        print(f"   pconv_mlir.compile on the host: max relative error vs the model {error:.1e}")

        with torch.no_grad():
            torch_ms = median_seconds(lambda: dense(x), repeats=args.repeats) * 1e3
        ours_ms = median_seconds(lambda: artifact(x), repeats=args.repeats) * 1e3
        print(
            f"   one thread, median of {args.repeats}: PyTorch dense {torch_ms:.2f} ms, "
            f"pconv {ours_ms:.2f} ms ({torch_ms / ours_ms:.2f}x)"
        )
    finally:
        artifact.close()
    return error < 1e-4


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=13)
    parser.add_argument("--filters", type=int, default=11)
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--block-channels", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ok = one_conv(args)
    ok &= vgg_block(args)
    print("\nall checks passed" if ok else "\nFAILED: a result differs from torch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The main job (`make demo`): a pattern-sparse convolution through the pconv passes.

Builds a 3x3 convolution with 8 patterns and 1 kernel in 3.6 kept, prints its `pconv` IR, runs
the pass pipeline that exists, and checks that every level computes what
`torch.nn.functional.conv2d` computes on the masked dense weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pconv_mlir import reference
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.diagnostics import parse_module
from pconv_mlir.interpreter import run_function
from pconv_mlir.pipeline import Pipeline, make_context, print_module, universe


def torch_reference(x, weight, bias, stride, padding) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    out = F.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        stride=stride,
        padding=padding,
    )
    return torch.relu(out).numpy()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=13)
    parser.add_argument("--filters", type=int, default=11)
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    patterns, ids, weight = random_pattern_layer(rng, args.filters, args.channels, k=8, rate=3.6)
    bias = rng.standard_normal(args.filters).astype(np.float32)
    x = rng.standard_normal((1, args.channels, args.size, args.size)).astype(np.float32)
    module = conv2d_module(x.shape, weight, bias, patterns, ids, relu=True)
    text = print_module(module)
    kept = int((ids >= 0).sum())
    print(
        f"== a {args.filters}x{args.channels}x3x3 conv, 8 patterns, "
        f"{kept} of {ids.size} kernels kept"
    )
    print(text)

    expected = torch_reference(x, weight, bias, 1, 1)
    stages = [("pconv.conv2d", "")]
    ours = sorted(universe.get_all_passes())
    for spec in ("pconv-fkr", "pconv-fkr,pconv-fkw-pack"):
        if all(p in ours for p in spec.split(",")):
            stages.append((spec, spec))
    ctx = make_context()
    for label, spec in stages:
        out = Pipeline(spec).run(text, ctx)
        (got,) = run_function(parse_module(ctx, out), "conv", x, bias)
        error = float(np.max(np.abs(got - expected)) / max(1e-12, np.max(np.abs(expected))))
        print(f"== after {label or 'parsing'}: max relative error vs torch {error:.2e}")
        if spec:
            print(out)
        if error > 1e-4:
            print("error: result differs from torch", file=sys.stderr)
            return 1
    print(
        f"dense MACs per output pixel {args.filters * args.channels * 9}, "
        f"pattern-sparse {int(reference.kernel_mask(ids, patterns).sum())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

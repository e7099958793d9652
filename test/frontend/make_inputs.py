"""Regenerate test/frontend/inputs/*.mlir: small torch models through the front end.

    .venv/bin/python test/frontend/make_inputs.py

Each file is `import_torch(model)` printed by xDSL (`print_module`), with a comment header saying
what the model is and how its weights are stored. They are inputs for the lit tests of
`pconv-from-linalg`, which turns `linalg.conv_2d_nchw_fchw` with constant 3x3 weights into a
pattern-sparse op:

- `pattern_cnn.mlir`: conv 3->4 and conv 4->5, 3x3, padding 1, bias, ReLU, on a 1x3x6x6 input.
  Every 3x3 kernel is pattern-pruned: it keeps 4 taps, the centre (tap 4; taps are numbered
  row-major 0..8) and 3 neighbours, in one of the shapes of `PATTERNS`; some whole kernels are
  zero. Weights inlined as `dense<...>` (written as nested lists, one filter per line, where
  xDSL would print a hex string) so that the pruned taps can be seen.
- `pattern_cnn_resource.mlir`: the same module as torch-mlir emits it, weights as
  `dense_resource<...>` blobs in the `{-# dialect_resources #-}` section.
- `conv_stride2.mlir`: one pattern-pruned 3x3 conv 4->6, stride 2, padding 0, no bias (so the
  accumulator is a `linalg.fill` of zero, not a broadcast bias), 1x4x7x7 -> 1x6x3x3; inline.
- `leave_alone.mlir`: convolutions the pass must not touch: a 1x1 conv, a depthwise 3x3 conv
  (which arrives as a `linalg.generic`, as xDSL has no `linalg.depthwise_conv_2d_nchw_chw`) and
  a 3x3 conv whose weights are a function argument, not a constant; inline.

Weights are multiples of 1/8, so their decimal form is exact. Everything is deterministic.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, DenseResourceAttr, ModuleOp
from xdsl.rewriter import Rewriter

from pconv_mlir.elements import constant_array
from pconv_mlir.frontend import import_torch
from pconv_mlir.ir import make_context, print_module

INPUTS = Path(__file__).parent / "inputs"

PATTERNS: list[tuple[int, int, int, int]] = [
    (0, 1, 3, 4),  # upper-left 2x2
    (1, 2, 4, 5),  # upper-right 2x2
    (3, 4, 6, 7),  # lower-left 2x2
    (4, 5, 7, 8),  # lower-right 2x2
    (1, 3, 4, 5),  # T pointing up
    (3, 4, 5, 7),  # T pointing down
]
"""The pattern set of the generated weights: tap indices kept in a 3x3 kernel (row-major)."""


def pattern_ids(filters: int, channels: int, seed: int) -> np.ndarray:
    """A filters x channels table of pattern ids into `PATTERNS`, -1 for a pruned kernel.

    About one kernel in three is pruned, but every filter keeps at least one kernel.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(PATTERNS), size=(filters, channels))
    pruned = rng.random((filters, channels)) < 1 / 3
    pruned[np.arange(filters), rng.integers(0, channels, size=filters)] = False
    return np.where(pruned, -1, ids)


def pattern_weights(ids: np.ndarray, seed: int) -> torch.Tensor:
    """Weights F x C x 3 x 3 that follow `ids`: nonzero multiples of 1/8 in [-1, 1] on the taps."""
    rng = np.random.default_rng(seed)
    filters, channels = ids.shape
    w = np.zeros((filters, channels, 9), dtype=np.float32)
    for f in range(filters):
        for c in range(channels):
            if ids[f, c] >= 0:
                taps = list(PATTERNS[ids[f, c]])
                w[f, c, taps] = rng.choice([-1, 1], 4) * rng.integers(1, 9, 4) / 8
    return torch.from_numpy(w.reshape(filters, channels, 3, 3))


def eighths(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Small deterministic values (multiples of 1/8 in [-1, 1]) of `shape`."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.integers(-8, 9, size=shape) / 8).astype(np.float32))


class PatternCNN(nn.Module):
    """conv3x3(3->4, pad 1, bias) -> ReLU -> conv3x3(4->5, pad 1, bias) -> ReLU."""

    def __init__(self, ids1: np.ndarray, ids2: np.ndarray) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        with torch.no_grad():
            self.conv1.weight.copy_(pattern_weights(ids1, seed=11))
            self.conv1.bias.copy_(eighths((4,), seed=12))
            self.conv2.weight.copy_(pattern_weights(ids2, seed=21))
            self.conv2.bias.copy_(eighths((5,), seed=22))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class ConvStride2(nn.Module):
    """conv3x3(4->6, stride 2, pad 0, no bias)."""

    def __init__(self, ids: np.ndarray) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=0, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(pattern_weights(ids, seed=31))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class LeaveAlone(nn.Module):
    """conv1x1(4->4, bias) -> depthwise conv3x3(4, pad 1, bias) -> conv3x3 with weights `w`."""

    def __init__(self) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(4, 4, 1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        with torch.no_grad():
            self.pointwise.weight.copy_(eighths((4, 4, 1, 1), seed=41))
            self.pointwise.bias.copy_(eighths((4,), seed=42))
            self.depthwise.weight.copy_(eighths((4, 1, 3, 3), seed=43))
            self.depthwise.bias.copy_(eighths((4,), seed=44))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.depthwise(self.pointwise(x)), w, padding=1)


def inline_weights(ctx: Context, module: ModuleOp) -> None:
    """Replace every `arith.constant dense_resource<...>` by the equal `dense<...>` constant."""
    rewriter = Rewriter()
    for op in list(module.walk()):
        if isinstance(op, arith.ConstantOp) and isinstance(op.value, DenseResourceAttr):
            values = constant_array(ctx, op.value).reshape(-1).tolist()
            dense = DenseIntOrFPElementsAttr.from_list(op.value.type, values)
            rewriter.replace_op(op, arith.ConstantOp(dense))


_HEX_F32 = re.compile(r'dense<"0x([0-9A-F]+)"> : tensor<([0-9x]+)xf32>')


def _nested(values: np.ndarray, indent: str) -> str:
    if values.ndim == 1:
        return "[" + ", ".join(repr(float(v)) for v in values) + "]"
    if values.ndim <= 3:  # a 3x3 kernel, or the kernels of one filter, on one line
        return "[" + ", ".join(_nested(v, indent) for v in values) + "]"
    inner = indent + "  "
    rows = f",\n{inner}".join(_nested(v, inner) for v in values)
    return f"[\n{inner}{rows}]"


def readable_floats(text: str) -> str:
    """Rewrite the hex form xDSL prints for f32 `dense` constants of over 100 elements as
    nested lists, one filter per line, so that the pruned taps can be seen."""

    def nested(match: re.Match[str]) -> str:
        shape = tuple(int(d) for d in match.group(2).split("x"))
        values = np.frombuffer(bytes.fromhex(match.group(1)), dtype="<f4").reshape(shape)
        return f"dense<{_nested(values, '    ')}> : tensor<{match.group(2)}xf32>"

    return _HEX_F32.sub(nested, text)


def ids_comment(name: str, ids: np.ndarray) -> str:
    rows = "\n".join(f"//   filter {f}: {list(map(int, row))}" for f, row in enumerate(ids))
    return f"// {name} pattern ids per input channel (-1 = pruned kernel):\n{rows}\n"


def write(
    name: str, model: nn.Module, inputs: tuple[torch.Tensor, ...], header: str, inline: bool
) -> None:
    ctx = make_context()
    module = import_torch(model, inputs, ctx=ctx)
    if inline:
        inline_weights(ctx, module)
    weights = (
        "weights inlined as dense<...>"
        if inline
        else "weights as dense_resource<...> (hex blobs at the end)"
    )
    patterns = ", ".join(str(list(p)) for p in PATTERNS)
    text = (
        f"// Generated by test/frontend/make_inputs.py; do not edit.\n"
        f"// {header}\n"
        f"// torch-mlir linalg-on-tensors, parsed and printed by xDSL; {weights}.\n"
        f"// Pattern set (3x3 taps kept, row-major 0..8): {patterns}\n"
        + "".join(ids_comment(k, v) for k, v in getattr(model, "pattern_ids", {}).items())
        + "\n"
        + (readable_floats(print_module(module, ctx)) if inline else print_module(module, ctx))
    )
    path = INPUTS / name
    path.write_text(text)
    print(f"{path}: {len(text)} bytes", file=sys.stderr)


def main() -> None:
    INPUTS.mkdir(exist_ok=True)
    torch.manual_seed(0)

    ids1, ids2 = pattern_ids(4, 3, seed=1), pattern_ids(5, 4, seed=2)
    cnn = PatternCNN(ids1, ids2)
    cnn.pattern_ids = {"conv1 (4x3x3x3)": ids1, "conv2 (5x4x3x3)": ids2}
    x = eighths((1, 3, 6, 6), seed=3)
    header = (
        "PatternCNN: conv3x3 3->4 pad 1 + bias, ReLU, conv3x3 4->5 pad 1 + bias, ReLU; 1x3x6x6."
    )
    write("pattern_cnn.mlir", cnn, (x,), header, inline=True)
    write("pattern_cnn_resource.mlir", cnn, (x,), header, inline=False)

    ids = pattern_ids(6, 4, seed=3)
    stride2 = ConvStride2(ids)
    stride2.pattern_ids = {"conv (6x4x3x3)": ids}
    header = "ConvStride2: conv3x3 4->6 stride 2 pad 0, no bias; 1x4x7x7 -> 1x6x3x3."
    write("conv_stride2.mlir", stride2, (eighths((1, 4, 7, 7), seed=4),), header, inline=True)

    header = (
        "LeaveAlone: conv1x1 4->4 + bias, depthwise conv3x3 (groups 4, pad 1) + bias "
        "(a linalg.generic), conv3x3 4->2 pad 1 with weights %arg1 (not constant); 1x4x5x5."
    )
    inputs = (eighths((1, 4, 5, 5), seed=5), eighths((2, 4, 3, 3), seed=6))
    write("leave_alone.mlir", LeaveAlone(), inputs, header, inline=True)


if __name__ == "__main__":
    main()

"""Benchmark: the layers that are not 3x3 pattern convs, vectorised through upstream MLIR.

Each layer is one torch module with the shapes it has in ResNet-50 or MobileNet-V2 at 224x224
(batch 1), imported with torch-mlir and lowered by `pconv_mlir.lowering.llvm` for the host:
`vector` is the default lowering (the canonical forms and transform script of
`pconv_mlir.lowering.vectorize_linalg`), `loops` the scalar loops of `convert-linalg-to-loops`
(the lowering before it; skipped with `--no-loops`, slow), `torch` the same module in PyTorch
2.13 (`torch.set_num_threads(1)`). Every output is checked against torch first.

Method (../shared/PEERS.md): the systems interleaved call by call in one process, 2 warm-up
calls, 9 timed samples (each a few calls, at least ~2 ms), 3 rounds, the median of the round
medians; speed-ups are the median of the per-round ratios. Compute-bound layers report GF/s
(2 x multiply-adds / time), memory-bound ones GB/s (bytes read and written once / time).

    taskset -c 1 python bench/linalg_layers.py              # every layer, table on stdout
    taskset -c 1 python bench/linalg_layers.py --quick      # a few small layers
    python bench/linalg_layers.py --only dw --no-loops --markdown
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pconv_mlir.elements import using_storage
from pconv_mlir.frontend import import_torch
from pconv_mlir.ir import make_context
from pconv_mlir.lowering.llvm import (
    function_signatures,
    lower_to_llvm_dialect,
    translate_to_llvm_ir,
)
from pconv_mlir.lowering.vectorize_linalg import unvectorised_ops
from pconv_mlir.machine import machine
from pconv_mlir.runtime.build import compile_shared_library


class _AddRelu(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(a + b)


class _Relu6(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(x)


@dataclass(frozen=True)
class Layer:
    kind: str
    """conv1x1, conv1x1/2, dw3x3, dw3x3/2, maxpool, avgpool, linear, add+relu, relu6, stem7x7."""
    name: str
    make: Callable[[], nn.Module]
    inputs: tuple[tuple[int, ...], ...]
    macs: int = 0
    """Multiply-adds (compute-bound layers: GF/s), else 0 (GB/s)."""

    def bytes_moved(self, output: tuple[int, ...]) -> int:
        return 4 * (sum(int(np.prod(s)) for s in self.inputs) + int(np.prod(output)))


def _conv(c: int, f: int, k: int, s: int, groups: int = 1) -> Callable[[], nn.Module]:
    return lambda: nn.Conv2d(c, f, k, s, (k - 1) // 2, groups=groups, bias=True)


def _conv_layer(
    kind: str, name: str, c: int, f: int, hw: int, k: int, s: int, groups: int = 1
) -> Layer:
    out = (hw + 2 * ((k - 1) // 2) - k) // s + 1
    macs = f * (c // groups) * k * k * out * out
    return Layer(kind, name, _conv(c, f, k, s, groups), ((1, c, hw, hw),), macs)


def layers(quick: bool) -> list[Layer]:
    if quick:
        return [
            _conv_layer("conv1x1", "small 1x1", 32, 48, 28, 1, 1),
            _conv_layer("dw3x3", "small dw", 48, 48, 28, 3, 1, groups=48),
            Layer("maxpool", "small pool", lambda: nn.MaxPool2d(3, 2, 1), ((1, 16, 28, 28),)),
            Layer("add+relu", "small add", _AddRelu, ((1, 16, 28, 28), (1, 16, 28, 28))),
        ]
    return [
        _conv_layer("conv1x1", "r50 layer1.0.conv1 64->64 @56", 64, 64, 56, 1, 1),
        _conv_layer("conv1x1", "r50 layer1.0.conv3 64->256 @56", 64, 256, 56, 1, 1),
        _conv_layer("conv1x1", "r50 layer2.1.conv1 512->128 @28", 512, 128, 28, 1, 1),
        _conv_layer("conv1x1", "r50 layer3.1.conv3 256->1024 @14", 256, 1024, 14, 1, 1),
        _conv_layer("conv1x1", "r50 layer4.1.conv1 2048->512 @7", 2048, 512, 7, 1, 1),
        _conv_layer("conv1x1/2", "r50 layer2.0.downsample 256->512 @56", 256, 512, 56, 1, 2),
        _conv_layer("conv1x1", "mbv2 expand 24->144 @56", 24, 144, 56, 1, 1),
        _conv_layer("conv1x1", "mbv2 project 144->24 @56", 144, 24, 56, 1, 1),
        _conv_layer("conv1x1", "mbv2 project 960->160 @7", 960, 160, 7, 1, 1),
        _conv_layer("conv1x1", "mbv2 last 320->1280 @7", 320, 1280, 7, 1, 1),
        _conv_layer("dw3x3", "mbv2 dw 32 @112", 32, 32, 112, 3, 1, groups=32),
        _conv_layer("dw3x3", "mbv2 dw 144 @56", 144, 144, 56, 3, 1, groups=144),
        _conv_layer("dw3x3", "mbv2 dw 576 @14", 576, 576, 14, 3, 1, groups=576),
        _conv_layer("dw3x3/2", "mbv2 dw 96 @112/2", 96, 96, 112, 3, 2, groups=96),
        _conv_layer("dw3x3/2", "mbv2 dw 144 @56/2", 144, 144, 56, 3, 2, groups=144),
        _conv_layer("dw3x3/2", "mbv2 dw 576 @14/2", 576, 576, 14, 3, 2, groups=576),
        _conv_layer("stem7x7/2", "r50 conv1 3->64 7x7/2 @224", 3, 64, 224, 7, 2),
        Layer(
            "maxpool",
            "r50 maxpool 3x3/2 64 @112",
            lambda: nn.MaxPool2d(3, 2, 1),
            ((1, 64, 112, 112),),
        ),
        Layer(
            "avgpool",
            "r50 global avgpool 2048 @7",
            lambda: nn.AdaptiveAvgPool2d(1),
            ((1, 2048, 7, 7),),
        ),
        Layer(
            "avgpool",
            "mbv2 global avgpool 1280 @7",
            lambda: nn.AdaptiveAvgPool2d(1),
            ((1, 1280, 7, 7),),
        ),
        Layer(
            "linear", "r50 fc 2048->1000", lambda: nn.Linear(2048, 1000), ((1, 2048),), 2048 * 1000
        ),
        Layer(
            "linear",
            "mbv2 classifier 1280->1000",
            lambda: nn.Linear(1280, 1000),
            ((1, 1280),),
            1280 * 1000,
        ),
        Layer("add+relu", "r50 residual add+relu 256 @56", _AddRelu, ((1, 256, 56, 56),) * 2),
        Layer("add+relu", "r50 residual add+relu 2048 @7", _AddRelu, ((1, 2048, 7, 7),) * 2),
        Layer("relu6", "mbv2 relu6 144 @56", _Relu6, ((1, 144, 56, 56),)),
    ]


@dataclass
class Compiled:
    call: Callable[[], None]
    output: np.ndarray
    compile_seconds: float
    fallbacks: list[tuple[str, str]]


def compile_layer(
    model: nn.Module, inputs: Sequence[np.ndarray], *, vectorize: bool, workdir: Path
) -> Compiled:
    """`model` through torch-mlir and the LLVM lowering for the host, as a ctypes call."""
    ctx = make_context(own_resources=True)
    start = time.perf_counter()
    module = import_torch(model, tuple(torch.from_numpy(x) for x in inputs), ctx=ctx)
    fallbacks = unvectorised_ops(module) if vectorize else []
    (signature,) = function_signatures(module).values()
    with using_storage(ctx):
        llvm_ir = translate_to_llvm_ir(
            lower_to_llvm_dialect(module, ctx, "host", vectorize=vectorize)
        )
    library = compile_shared_library(
        llvm_ir, workdir / f"{'vector' if vectorize else 'loops'}.so", machine("host")
    )
    seconds = time.perf_counter() - start
    function = getattr(ctypes.CDLL(str(library)), signature.name)
    outputs = [np.zeros(a.shape, a.dtype) for a in signature.args if a.is_out_param]
    pointers = [ctypes.c_void_p(a.ctypes.data) for a in (*inputs, *outputs)]
    function.argtypes = [ctypes.c_void_p] * len(pointers)
    function.restype = None
    arrays = [*inputs, *outputs]  # the call writes into them: keep them alive with it

    def call(keep: list[np.ndarray] = arrays) -> None:
        function(*pointers)

    return Compiled(call, outputs[0], seconds, fallbacks)


def _sample(call: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def measure(
    calls: dict[str, Callable[[], object]], rounds: int = 3, samples: int = 9
) -> dict[str, tuple[float, list[float]]]:
    """Per system: the median of round medians (seconds) and the round medians."""
    repeats = {}
    for name, call in calls.items():
        for _ in range(2):
            call()
        once = _sample(call, 1)
        repeats[name] = max(1, int(0.002 / max(once, 1e-7)))
    per_round: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(samples):
            for name, call in calls.items():
                times[name].append(_sample(call, repeats[name]))
        for name in calls:
            per_round[name].append(statistics.median(times[name]))
    return {name: (statistics.median(r), r) for name, r in per_round.items()}


def run(layer: Layer, *, loops: bool, rng: np.random.Generator) -> dict[str, object]:
    torch.manual_seed(0)
    model = layer.make().eval()
    inputs = [rng.standard_normal(s).astype(np.float32) for s in layer.inputs]
    tensors = [torch.from_numpy(x) for x in inputs]
    with torch.inference_mode():
        reference = model(*tensors).numpy()
    systems: dict[str, Callable[[], object]] = {}
    row: dict[str, object] = {"layer": layer}
    with tempfile.TemporaryDirectory(prefix="pconv-bench-") as folder:
        for name, vectorize in (("vector", True), ("loops", False)):
            if name == "loops" and not loops:
                continue
            compiled = compile_layer(model, inputs, vectorize=vectorize, workdir=Path(folder))
            compiled.call()
            error = float(
                np.abs(compiled.output - reference).max() / max(np.abs(reference).max(), 1e-30)
            )
            if not error < 1e-4:
                raise SystemExit(
                    f"{layer.name}: {name} differs from torch (relative error {error:.1e})"
                )
            systems[name] = compiled.call
            row[f"{name}_error"] = error
            row[f"{name}_compile"] = compiled.compile_seconds
            if vectorize:
                row["fallbacks"] = compiled.fallbacks

        def torch_call() -> None:
            with torch.inference_mode():
                model(*tensors)

        systems["torch"] = torch_call
        results = measure(systems, rounds=3 if loops or True else 3)
    row["output"] = reference.shape
    for name, (seconds, rounds) in results.items():
        row[name] = seconds
        row[f"{name}_rounds"] = rounds
    row["vs_torch"] = statistics.median(
        t / v for t, v in zip(results["torch"][1], results["vector"][1], strict=True)
    )
    return row


def _rate(layer: Layer, output: tuple[int, ...], seconds: float) -> str:
    if layer.macs:
        return f"{2 * layer.macs / seconds / 1e9:.1f} GF/s"
    return f"{layer.bytes_moved(output) / seconds / 1e9:.1f} GB/s"


def describe_machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    spec = machine("host")
    return (
        f"{model}, {spec.name}, {spec.vector_bits}-bit vectors x {spec.vector_registers}; "
        f"one thread; torch {torch.__version__}"
    )


def table(rows: list[dict[str, object]], markdown: bool) -> str:
    header = [
        "kind",
        "layer",
        "torch ms",
        "vector ms",
        "loops ms",
        "torch",
        "vector",
        "loops",
        "vector/torch",
    ]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for row in rows:
        layer: Layer = row["layer"]  # type: ignore[assignment]
        output = row["output"]  # type: ignore[assignment]
        loops = row.get("loops")
        cells = [
            layer.kind,
            layer.name,
            f"{row['torch'] * 1e3:.3f}",
            f"{row['vector'] * 1e3:.3f}",
            f"{loops * 1e3:.2f}" if loops else "-",
            _rate(layer, output, row["torch"]),  # type: ignore[arg-type]
            _rate(layer, output, row["vector"]),  # type: ignore[arg-type]
            _rate(layer, output, loops) if loops else "-",  # type: ignore[arg-type]
            f"{row['vs_torch']:.2f}x",
        ]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(
                f"{cells[0]:10} {cells[1]:40} {cells[2]:>9} {cells[3]:>9} {cells[4]:>9} "
                f"{cells[5]:>11} {cells[6]:>11} {cells[7]:>11} {cells[8]:>7}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few small layers")
    parser.add_argument("--no-loops", action="store_true", help="skip the scalar-loop lowering")
    parser.add_argument("--only", default="", help="layers whose kind or name contains this")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    rng = np.random.default_rng(0)
    selected = [
        layer for layer in layers(args.quick) if args.only in layer.kind or args.only in layer.name
    ]
    print(f"# {describe_machine()}", flush=True)
    rows = []
    for layer in selected:
        row = run(layer, loops=not args.no_loops, rng=rng)
        rows.append(row)
        print(table([row], False), flush=True)
        if row.get("fallbacks"):
            print(f"  fell back to loops: {row['fallbacks']}", flush=True)
    if args.markdown:
        print()
        print(table(rows, True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

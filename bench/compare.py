"""pconv-mlir side by side with every dense peer, one command.

The 3x3 layers of VGG-16 and ResNet-50 and the whole networks, one thread and all threads.

    .venv/bin/pip install -e '.[bench]'            # the peers (MNN: see bench/peers.py)
    .venv/bin/python bench/compare.py               # everything (long: about an hour)
    .venv/bin/python bench/compare.py --models vgg16 --threads 1 --no-networks
    .venv/bin/python bench/compare.py --quick       # three small layers, one thread (smoke test)

For every layer, in one process: the dense layer (the same weights and input for every
system) on each peer of `bench/peers.py` (PyTorch NCHW and channels-last, ONNX Runtime,
OpenVINO, LiteRT + XNNPACK, MNN, TVM, IREE) and on pconv `dense`; pconv `pattern` (8 patterns
of 4 taps, every kernel kept) and `sparse` (8 patterns, 1 kernel in 3.6 kept) on the same
weights projected onto the patterns. Every output is checked against torch before it is timed
(a peer above relative error 1e-4 is marked inexact; one that cannot be installed or run is
listed with the reason); then all systems are timed interleaved call by call (2 warm-up calls,
3 rounds of 9 calls, the median of the round medians; `bench/peers.py`).

Printed and written (CSV, and a PNG chart of effective GF/s per layer, one thread):
milliseconds per system; effective GF/s (the dense layer's FLOPs / time, so every column
compares directly); the speed-up of pconv sparse over each peer, over the fastest exact peer
and over PyTorch; the sparse code's rate on the multiply-adds it keeps as a share of the
machine's dense peak, measured in the same run (numpy sgemm 2048^3, one thread). The whole
networks (224x224, batch 1) are compiled by `pconv_mlir.compile` (pruned, pattern-only and
dense) against the peers on the dense network.
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib.util
import math
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str):
    """A sibling bench script as a module (bench/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


peers = _load("peers")

import numpy as np  # noqa: E402
import torch  # noqa: E402

VARIANTS = ("dense", "pattern", "sparse")
"""pconv's three builds of a layer: every kernel dense, 8 patterns, 8 patterns + 1 in 3.6."""

CONNECTIVITY = {"dense": None, "pattern": 1.0, "sparse": 3.6}


@dataclass
class Case:
    """One thing to time: a layer or a whole network, at a thread count."""

    kind: str
    """`layer` or `network`."""
    model: str
    name: str
    module: torch.nn.Module
    x: torch.Tensor
    threads: int
    flops: int
    """Dense FLOPs of one call (2 x multiply-adds)."""
    results: dict[str, dict] = field(default_factory=dict)
    """By system: ms, gflops, error, status."""


def pruned(module: torch.nn.Module, variant: str) -> torch.nn.Module:
    """A copy of `module` with its 3x3 convs projected onto 8 patterns (`pattern`), and 1 kernel
    in 3.6 kept (`sparse`); `dense` is the module itself. A single conv is pruned too (the
    first-layer exemption is for whole networks)."""
    from pconv_mlir import pruning

    if variant == "dense":
        return module
    result = copy.deepcopy(module)
    single = isinstance(module, torch.nn.Conv2d)
    pruning.prune_model(
        result, patterns=8, connectivity=CONNECTIVITY[variant], skip_first=not single
    )
    return result.eval()


def kept_fraction(module: torch.nn.Module) -> float:
    """Nonzero weights of the 3x3 convs over all their weights (the multiply-adds kept)."""
    kept = total = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
            kept += int((m.weight != 0).sum())
            total += m.weight.numel()
    return kept / max(1, total)


def pconv_runner(
    module: torch.nn.Module, x: torch.Tensor, variant: str, threads: int
) -> tuple[Callable[[], np.ndarray], Callable[[], None]]:
    """(runner, close) of `pconv_mlir.compile` on `module`: `dense` compiles every 3x3 conv
    dense, the others read the patterns from the (pruned) weights."""
    import pconv_mlir

    mode = "dense" if variant == "dense" else "infer"
    artifact = pconv_mlir.compile(module, x, mode=mode, threads=threads, name="bench")
    data = x.numpy()

    def run() -> np.ndarray:
        return np.asarray(artifact(data))

    return run, artifact.close


def run_case(case: Case, systems: list[str], args: argparse.Namespace, work: Path) -> None:
    """Prepares every system on `case`, checks its output, times all that run, fills
    `case.results`."""
    torch.set_num_threads(case.threads)
    runners: dict[str, Callable[[], object]] = {}
    closers: list[Callable[[], None]] = []
    expected = {"dense": peers.reference(case.module, case.x)}
    try:
        for name in systems:
            if name.startswith("pconv-"):
                variant = name.removeprefix("pconv-")
                module = pruned(case.module, variant)
                reference = peers.reference(module, case.x)
                kept = kept_fraction(module)
                try:
                    run, close = pconv_runner(module, case.x, variant, case.threads)
                except Exception as e:  # a compile failure is a result to report
                    case.results[name] = {"status": f"failed: {_one_line(e)}"}
                    continue
                closers.append(close)
            else:
                peer = peers.PEERS[name]
                reason = peer.available()
                if reason is not None:
                    case.results[name] = {"status": f"unavailable: {reason}"}
                    continue
                reference = expected["dense"]
                try:
                    run = peer.prepare(case.module, case.x, work / name, case.threads)
                except peers.Unsupported as e:
                    case.results[name] = {"status": f"unsupported: {_one_line(e)}"}
                    continue
                except Exception as e:
                    case.results[name] = {"status": f"failed: {_one_line(e)}"}
                    continue
                closers.append(getattr(run, "close", lambda: None))
            try:
                error = peers.check(run, reference)
            except Exception as e:
                case.results[name] = {"status": f"failed: {_one_line(e)}"}
                continue
            exact = error <= peers.EXACT
            case.results[name] = {"error": error, "status": "exact" if exact else "inexact"}
            if name.startswith("pconv-"):
                case.results[name]["kept"] = kept
            runners[name] = run
        seconds = peers.time_interleaved(
            runners, warmup=args.warmup, calls=args.calls, rounds=args.rounds
        )
    finally:
        for close in closers:
            close()
    for name, s in seconds.items():
        case.results[name].update(ms=s * 1e3, gflops=case.flops / s / 1e9)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__


def layer_cases(args: argparse.Namespace, threads: list[int]) -> list[Case]:
    """The 3x3 layers of `--models` at 224x224 (or three small ones with `--quick`)."""
    conv_layers = _load("conv_layers")
    layers = conv_layers.layers(args.models.split(","), args.quick)
    if args.limit:
        layers = layers[: args.limit]
    cases = []
    for t in threads:
        for i, layer in enumerate(layers):
            conv, x = peers.conv_layer(layer.c, layer.f, layer.h, layer.stride, seed=i)
            flops = peers.count_flops(conv, x)
            cases.append(Case("layer", layer.model, layer.name, conv, x, t, flops))
    return cases


def small_network() -> torch.nn.Module:
    """What `--quick` runs as a whole network: three convs, pooling and a linear layer."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10),
    )  # fmt: skip


def network_cases(args: argparse.Namespace, threads: list[int]) -> list[Case]:
    """The whole networks of `--models` at 224x224 (`--quick`: `small_network` at 20x20),
    batch 1, with random (seeded) weights in eval mode."""
    cases = []
    names = ["small"] if args.quick else args.models.split(",")
    for t in threads:
        for name in names:
            if args.quick:
                torch.manual_seed(0)
                model = small_network().eval()
                x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
            else:
                model, x = peers.network(name, 224)
            label = f"{x.shape[-2]}x{x.shape[-1]}"
            cases.append(Case("network", name, label, model, x, t, peers.count_flops(model, x)))
    return cases


def speedups(case: Case, peer_names: list[str]) -> dict[str, float]:
    """pconv sparse over each peer that ran, over the fastest exact peer (`best`) and over
    PyTorch NCHW (`torch`)."""
    sparse = case.results.get("pconv-sparse", {}).get("ms")
    if sparse is None:
        return {}
    out = {}
    exact = []
    for name in peer_names:
        result = case.results.get(name, {})
        if "ms" in result:
            out[name] = result["ms"] / sparse
            if result["status"] == "exact":
                exact.append(result["ms"])
    if exact:
        out["best"] = min(exact) / sparse
    return out


def fmt_ms(result: dict) -> str:
    if "ms" not in result:
        return "-"
    mark = "*" if result.get("status") == "inexact" else ""
    return f"{result['ms']:.2f}{mark}"


def print_table(cases: list[Case], systems: list[str], peer_names: list[str], peak: float) -> None:
    """One table per (kind, threads): ms per system, then pconv sparse's GF/s, its share of the
    peak on the multiply-adds it keeps, and its speed-ups over PyTorch and the fastest exact
    peer."""
    groups: dict[tuple[str, int], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.kind, case.threads), []).append(case)
    width = max(12, *(len(s) + 1 for s in systems))
    for (kind, threads), group in groups.items():
        print(f"\n## {kind}s, {threads} thread{'s' if threads > 1 else ''}: ms per call")
        header = f"{'':<26}" + "".join(f"{s:>{width}}" for s in systems)
        header += f"{'sparse GF/s':>12}{'% peak':>8}{'vs torch':>9}{'vs best':>9}"
        print(header)
        for case in group:
            line = f"{(case.model + ':' + case.name)[:25]:<26}"
            line += "".join(f"{fmt_ms(case.results.get(s, {})):>{width}}" for s in systems)
            sparse = case.results.get("pconv-sparse", {})
            ups = speedups(case, peer_names)
            if "gflops" in sparse and case.kind == "layer":
                kept = sparse.get("kept", 1.0)
                share = sparse["gflops"] * kept / peak * 100 / threads if peak else 0.0
                line += f"{sparse['gflops']:>12.1f}{share:>7.0f}%"
            else:
                line += f"{sparse.get('gflops', 0):>12.1f}{'':>8}"
            line += f"{_x(ups.get('torch')):>9}{_x(ups.get('best')):>9}"
            print(line)
        means = {}
        for key in ("torch", "best"):
            values = [speedups(c, peer_names).get(key) for c in group]
            values = [v for v in values if v]
            if values:
                means[key] = math.exp(statistics.fmean(math.log(v) for v in values))
        if means:
            print(
                "geometric mean, pconv sparse over "
                + ", ".join(f"{k}: {v:.2f}x" for k, v in means.items())
            )
    notes = {}
    for case in cases:
        for name, result in case.results.items():
            if "ms" not in result:
                notes.setdefault(name, result["status"])
    if notes:
        print("\nnot timed:")
        for name, status in notes.items():
            print(f"  {name}: {status}")
    print("* inexact: relative error above 1e-4 against torch (see the CSV)")


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def write_csv(path: Path, cases: list[Case], peak: float, machine: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["machine", "peak_gflops", "kind", "model", "name", "threads", "system", "ms",
              "gflops", "rel_error", "status"]  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for case in cases:
            for system, result in case.results.items():
                writer.writerow(
                    {
                        "machine": machine,
                        "peak_gflops": f"{peak:.1f}",
                        "kind": case.kind,
                        "model": case.model,
                        "name": case.name,
                        "threads": case.threads,
                        "system": system,
                        "ms": _num(result.get("ms")),
                        "gflops": _num(result.get("gflops")),
                        "rel_error": _num(result.get("error"), "{:.1e}"),
                        "status": result["status"],
                    }  # fmt: skip
                )


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "" if value is None else fmt.format(value)


def write_chart(path: Path, cases: list[Case], systems: list[str], peak: float, title: str):
    """Effective GF/s per layer (one thread), one bar per system, the sgemm peak as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [c for c in cases if c.kind == "layer" and c.threads == min(x.threads for x in cases)]
    if not layers:
        return
    shown = [s for s in systems if any("gflops" in c.results.get(s, {}) for c in layers)]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(layers) + 2), 5))
    width = 0.8 / max(1, len(shown))
    for k, system in enumerate(shown):
        values = [c.results.get(system, {}).get("gflops", 0.0) for c in layers]
        positions = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(layers))]
        ax.bar(positions, values, width, label=system)
    if peak:
        ax.axhline(peak, color="black", linestyle="--", linewidth=1, label="sgemm peak")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f"{c.model}\n{c.name}" for c in layers], rotation=60, fontsize=7)
    ax.set_ylabel("effective GF/s (dense FLOPs / time)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_description() -> str:
    from pconv_mlir.backends import get_backend

    return f"{get_backend('host').describe()}, {os.cpu_count()} cores, {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--threads", default="1,all", help="comma list; `all` = every core")
    parser.add_argument("--peers", default=",".join(peers.PEERS), help="comma list of peers")
    parser.add_argument("--no-networks", action="store_true", help="layers only")
    parser.add_argument("--no-layers", action="store_true", help="whole networks only")
    parser.add_argument("--limit", type=int, default=0, help="first N layers per model only")
    parser.add_argument("--quick", action="store_true", help="three small layers, one thread")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--csv", default="bench/results/compare.csv")
    parser.add_argument("--png", default="bench/results/compare.png")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    threads = sorted(
        {peers.all_threads() if t == "all" else int(t) for t in args.threads.split(",")}
    )
    if args.quick:
        threads = [1]
    peer_names = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peer_names if p not in peers.PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)} (peers: {', '.join(peers.PEERS)})")
    systems = [*peer_names, *(f"pconv-{v}" for v in VARIANTS)]
    machine = machine_description()
    print(f"# {machine}; torch {torch.__version__}")
    n = 512 if args.quick else 2048
    peak = peers.machine_peak_gflops(n=n)
    print(f"# dense peak (numpy sgemm {n}^3, one thread): {peak:.1f} GF/s")
    for name in peer_names:
        reason = peers.PEERS[name].available()
        status = peers.PEERS[name].version() if reason is None else f"unavailable: {reason}"
        print(f"# {name}: {status}")
    cases = [] if args.no_layers else layer_cases(args, threads)
    if not args.no_networks:
        cases += network_cases(args, threads)
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(tqdm(cases, desc="cases", unit="case", file=sys.stderr)):
            run_case(case, systems, args, Path(tmp) / str(i))
    print_table(cases, systems, peer_names, peak)
    write_csv(Path(args.csv), cases, peak, machine)
    title = f"3x3 layers, one thread, effective GF/s: {machine}"
    write_chart(Path(args.png), cases, systems, peak, title)
    print(f"\nwrote {args.csv} and {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

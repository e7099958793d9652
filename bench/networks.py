"""Benchmark: whole networks at 224x224, pconv against PyTorch, one thread and all threads.

For VGG-16, ResNet-50 and MobileNet-V2 (random weights, ImageNet shapes, batch 1):

- `pruned`: 3x3 convs pruned with `pruning.prune_model(m, 8, 3.6)` (8 patterns, 1 kernel kept in
  3.6, the first conv dense), compiled with `pconv_mlir.compile` (infer mode: the weights are
  not changed, so the library computes what the pruned model computes);
- `dense`: the unpruned model through the same compiler (every conv a dense layer);
- `torch`: the same model (pruned or dense: PyTorch's dense kernels do not care) in PyTorch.

Each compile runs in a child process, so its wall time and peak memory (the child and the
tools it runs: mlir-opt-22, mlir-translate-22, clang-22) are measured alone; the child saves
the library and checks it against torch. The parent then loads `lib<name>.so` through ctypes
and calls `<name>_forward` as a C program would, interleaved with PyTorch call by call (with a
50 ms pause before each call, `SETTLE_S`), one thread (`<name>_set_threads(1)`,
`torch.set_num_threads(1)`) and then all cores; medians of `--repeats` calls after warm-up.
With `--profile` the child also measures time per layer kind on one thread
(`CompiledModel.profile`), which shows which layers hold a network back.

    python bench/networks.py                              # the three models, table on stdout
    python bench/networks.py --write bench/RESULTS.md     # and replace its networks section
    python bench/networks.py --quick                      # small inputs, a smoke test
    python bench/networks.py --models resnet50 --variants pruned --profile
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("vgg16", "resnet50", "mobilenet_v2")
VARIANTS = ("pruned", "dense")
BEGIN, END = "<!-- networks: begin -->", "<!-- networks: end -->"


def build_model(name: str, variant: str, size: int, seed: int):
    """The model (eval mode) and an input; `pruned` prunes it in place first."""
    import torch

    from pconv_mlir import models, pruning

    torch.manual_seed(seed)
    model = getattr(models, name)(num_classes=1000, input_size=224).eval()
    if variant == "pruned":
        pruning.prune_model(model, patterns=8, connectivity=3.6)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    return model, x


# --------------------------------------------------------------------------------------------
# The child: compile one model, save it, check it
# --------------------------------------------------------------------------------------------


def own_peak_kb() -> int:
    """This process's peak resident memory in KB: VmHWM, which starts afresh at exec. Linux
    carries `ru_maxrss` over a fork and exec, so for a child it would be at least what the
    parent held when it started the child (over 2 GB once the parent has timed ResNet-50)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def compile_one(args: argparse.Namespace) -> int:
    import torch

    import pconv_mlir

    model, x = build_model(args.model, args.variant, args.size, args.seed)
    name = args.model.replace("-", "_")
    start = time.perf_counter()
    artifact = pconv_mlir.compile(model, x, name=name)
    seconds = time.perf_counter() - start
    peak = max(own_peak_kb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    try:
        with torch.no_grad():
            expected = model(x).numpy()
        got = artifact(x)
        error = float(np.abs(got - expected).max() / max(1e-30, float(np.abs(expected).max())))
        artifact.save(args.out)
        kinds: dict[str, dict[str, float]] = {}
        if args.profile:
            artifact.set_threads(1)
            for row in artifact.profile(x, repeats=3):
                entry = kinds.setdefault(f"{row.kind}/{row.lowering}", {"ms": 0.0, "layers": 0})
                entry["ms"] += (row.seconds or 0.0) * 1e3
                entry["layers"] += 1
        x.numpy().astype(np.float32).tofile(Path(args.out) / "input.bin")
        np.save(Path(args.out) / "expected.npy", expected)
    finally:
        artifact.close()
    result = {
        "compile_s": seconds,
        "peak_mb": peak / 1024,
        "error": error,
        "name": name,
        "output": list(expected.shape),
        "kinds": kinds,
    }
    Path(args.out, "result.json").write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------
# The parent: time the saved libraries against PyTorch
# --------------------------------------------------------------------------------------------


def load(directory: Path, name: str):
    library = ctypes.CDLL(str(directory / f"lib{name}.so"))
    forward = getattr(library, f"{name}_forward")
    forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    forward.restype = ctypes.c_int
    set_threads = getattr(library, f"{name}_set_threads")
    set_threads.argtypes = [ctypes.c_int]
    set_threads.restype = None
    return library, forward, set_threads


SETTLE_S = 0.05
"""Pause after each timed call. Both thread pools spin for a while after a parallel region
(PyTorch's libgomp, and pconv's runtime for up to 1 ms) before they sleep; without the pause,
one system's spinning workers take cores from the other's next call. On 2 cores (AMD EPYC,
Zen 3) that made pruned ResNet-50 on both cores 62-83 ms instead of 52-53 ms, and PyTorch's
run 94-112 ms instead of 80-86 ms."""


def interleaved(calls: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds per system, the systems called in turn so that noise hits both."""
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(repeats):
        for key, call in calls.items():
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            call()
            samples[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in samples.items()}


def run_model(args: argparse.Namespace, model_name: str, variant: str, work: Path) -> dict:
    import torch

    out = work / f"{model_name}-{variant}"
    command = [
        sys.executable, __file__, "--compile-one", "--model", model_name, "--variant", variant,
        "--size", str(args.size), "--seed", str(args.seed), "--out", str(out),
    ] + (["--profile"] if args.profile else [])  # fmt: skip
    print(f"compiling {model_name} ({variant}) ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"model": model_name, "variant": variant, "failed": lines[-1] if lines else "?"}
    result = json.loads((out / "result.json").read_text())
    result.update(model=model_name, variant=variant)

    model, x = build_model(model_name, variant, args.size, args.seed)
    name = result["name"]
    _library, forward, set_threads = load(out, name)
    inp = np.ascontiguousarray(x.numpy(), dtype=np.float32)
    got = np.zeros(result["output"], dtype=np.float32)

    def ours() -> None:
        if forward(inp.ctypes.data, got.ctypes.data) != 0:
            raise SystemExit(f"{name}_forward failed")

    def theirs() -> None:
        with torch.no_grad():
            model(x)

    ours()
    expected = np.load(out / "expected.npy")
    error = float(np.abs(got - expected).max() / max(1e-30, float(np.abs(expected).max())))
    result["c_error"] = error
    for threads in args.threads:
        set_threads(threads)
        torch.set_num_threads(threads)
        times = interleaved({"pconv": ours, "torch": theirs}, args.repeats)
        result[f"pconv_ms_{threads}"] = times["pconv"] * 1e3
        result[f"torch_ms_{threads}"] = times["torch"] * 1e3
    return result


def table(results: list[dict], threads: list[int], header: str) -> str:
    columns = ["model", "variant", "compile s", "peak MB", "max rel err"]
    for t in threads:
        columns += [f"pconv {t}T ms", f"torch {t}T ms", f"torch/pconv {t}T"]
    if len(threads) > 1:
        columns += [f"pconv {threads[0]}T/{threads[-1]}T"]
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['model']} | {r['variant']} | failed: {r['failed']} |")
            continue
        cells = [
            r["model"], r["variant"], f"{r['compile_s']:.1f}", f"{r['peak_mb']:.0f}",
            f"{max(r['error'], r['c_error']):.1e}",
        ]  # fmt: skip
        for t in threads:
            ours, theirs = r[f"pconv_ms_{t}"], r[f"torch_ms_{t}"]
            cells += [f"{ours:.1f}", f"{theirs:.1f}", f"{theirs / ours:.2f}x"]
        if len(threads) > 1:
            cells.append(f"{r[f'pconv_ms_{threads[0]}'] / r[f'pconv_ms_{threads[-1]}']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    profiled = [r for r in results if r.get("kinds")]
    if profiled:
        lines += ["", "Time per layer kind, one thread (`kind/lowering: ms in N layers`):", ""]
        for r in profiled:
            parts = sorted(r["kinds"].items(), key=lambda kv: -kv[1]["ms"])
            text = ", ".join(f"{k}: {v['ms']:.1f} ms in {v['layers']:.0f}" for k, v in parts)
            lines.append(f"- {r['model']} ({r['variant']}): {text}")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    section = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + section + old[old.index(END) + len(END) :]
    else:
        new = section + "\n\n" + old
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default=None, help="e.g. 1,2 (default: 1 and all cores)")
    parser.add_argument("--profile", action="store_true", help="time per layer kind too")
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 3 repeats")
    parser.add_argument("--write", type=Path, help="replace the networks section of this file")
    parser.add_argument("--compile-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_one:
        return compile_one(args)
    if args.quick:
        args.size, args.repeats = 64, 3
    cores = os.cpu_count() or 1
    args.threads = (
        sorted({1, cores}) if args.threads is None else [int(t) for t in args.threads.split(",")]
    )
    import torch

    from pconv_mlir.backends import get_backend

    header = (
        f"Whole networks, {args.size}x{args.size}, batch 1: {get_backend('host').describe()}, "
        f"{cores} cores; PyTorch {torch.__version__}; median of {args.repeats} calls, pconv "
        "and PyTorch interleaved in one process; `torch/pconv` > 1 means pconv is faster."
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="pconv-bench-") as folder:
        for model_name in args.models.split(","):
            for variant in args.variants.split(","):
                results.append(run_model(args, model_name, variant, Path(folder)))
                print(table(results[-1:], args.threads, ""), file=sys.stderr, flush=True)
    text = table(results, args.threads, header)
    print(text)
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The main job (`make demo`): a pruned VGG-16 compiled for the host and for aarch64, checked.

1. VGG-16 with ImageNet shapes (224x224, 1000 classes; random weights: no model can be
   downloaded here) is pruned to 8 patterns and 1 kernel in 3.6 (`pconv_mlir.pruning`).
2. `pconv_mlir.compile` makes one library of the whole network for this machine, with a
   per-layer report; the library runs on a real photograph (scikit-learn's sample image,
   resized to 224x224) and must give torch's answer; it is timed against PyTorch in the same
   run, on one thread and on all cores.
3. The same network is compiled for aarch64 (Cortex-A76) and run under qemu-aarch64, checked
   against torch too.

    python -m pconv_mlir.demo                 # what `make demo` runs
    python -m pconv_mlir.demo --size 64       # a smaller input, for a quick look
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Sequence

import numpy as np


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected)) / max(1e-12, float(np.max(np.abs(expected)))))


def sample_image(size: int):
    """scikit-learn's first sample photograph, centre-cropped, resized to `size` and normalised
    as ImageNet models expect, as a [1, 3, size, size] tensor."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[0]  # china.jpg, 427 x 640 x 3, uint8
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    crop = photo[top : top + side, left : left + side]
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    return (x - mean) / std


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median)")
    parser.add_argument("--no-aarch64", action="store_true", help="skip the qemu run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    import pconv_mlir
    from pconv_mlir import models, pruning
    from pconv_mlir.report import format_report
    from pconv_mlir.runtime.timing import median_seconds

    torch.manual_seed(args.seed)
    cores = os.cpu_count() or 1
    steps = tqdm(total=5, desc="demo", unit="step", file=sys.stderr, leave=False)

    print(f"== 1. VGG-16, {args.size}x{args.size}, 1000 classes, pruned to 8 patterns, 1 in 3.6")
    model = models.vgg16(num_classes=1000, input_size=224).eval()
    result = pruning.prune_model(model, patterns=8, connectivity=3.6)
    summary = result.summary
    print(
        f"   3x3 weights removed: {100 * summary.removed_fraction:.1f}% "
        f"({summary.compression:.2f}x fewer)"
    )
    x = sample_image(args.size)
    with torch.no_grad():
        expected = model(x).numpy()
    steps.update()

    host = pconv_mlir.get_backend("host")
    print(f"\n== 2. compiled for this machine: {host.describe()}")
    start = time.perf_counter()
    steps.set_description("compile for the host")
    artifact = pconv_mlir.compile(model, x, target="host", name="vgg16")
    seconds = time.perf_counter() - start
    print(f"   compile: {seconds:.1f} s, peak memory {peak_memory_mb():.0f} MB")
    steps.update()

    ok = True
    try:
        steps.set_description("run and time on the host")
        got = artifact(x)
        error = relative_error(got, expected)
        same = np.argsort(got[0])[-5:].tolist() == np.argsort(expected[0])[-5:].tolist()
        print(
            f"   on the sample photograph: max relative error vs torch {error:.1e}, "
            f"top-5 classes {'the same' if same else 'DIFFERENT'}"
        )
        ok &= error < 1e-4 and same
        print()
        print(format_report(artifact.profile(x, repeats=args.repeats)))

        torch.set_num_threads(1)
        rows = []
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            artifact.set_threads(threads)
            with torch.no_grad():
                ours = median_seconds(lambda: artifact(x), repeats=args.repeats)
                theirs = median_seconds(lambda: model(x), repeats=args.repeats)
            rows.append((threads, ours, theirs))
        print(f"\n   whole network, median of {args.repeats} calls, same process:")
        for threads, ours, theirs in rows:
            print(
                f"   {threads} thread{'s' if threads > 1 else ' '}: pconv {ours * 1e3:8.1f} ms, "
                f"PyTorch {theirs * 1e3:8.1f} ms  ({theirs / ours:.2f}x)"
            )
        saved = artifact.save("demo-out/host")
        print(f"   library, header and weights: {saved}/")
    finally:
        artifact.close()
    steps.update()

    if not args.no_aarch64:
        print("\n== 3. compiled for aarch64 (Cortex-A76), run under qemu-aarch64")
        steps.set_description("compile for aarch64")
        start = time.perf_counter()
        arm = pconv_mlir.compile(model, x, target="aarch64", name="vgg16")
        print(f"   compile: {time.perf_counter() - start:.1f} s")
        steps.update()
        try:
            steps.set_description("run under qemu")
            start = time.perf_counter()
            got = arm(x)
            error = relative_error(got, expected)
            print(
                f"   on the sample photograph: max relative error vs torch {error:.1e} "
                f"({time.perf_counter() - start:.1f} s under qemu: emulated, not a timing)"
            )
            ok &= error < 1e-4
            print(f"   library, header and weights: {arm.save('demo-out/aarch64')}/")
        finally:
            arm.close()
    steps.update()
    steps.close()
    print("\nall checks passed" if ok else "\nFAILED: a result differs from torch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

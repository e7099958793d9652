"""Worked example: pattern-prune a small CNN on scikit-learn's handwritten digits.

The data is ``sklearn.datasets.load_digits`` (1797 8x8 greyscale images, 10 classes), which ships
with scikit-learn, so nothing is downloaded. The run trains :class:`DigitsCNN` dense, prunes it with
PatDNN's extended ADMM to 8 patterns of 4 taps and 1 kernel in 3.6 (the first convolution, with one
input channel, is exempt from connectivity pruning), hard-prunes, retrains with the masks, and
prints the accuracies, the pattern set and the pruning rate::

    python -m pconv_mlir.models.digits [--quick] [--seed N]

Everything runs on one CPU thread with fixed seeds, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pconv_mlir.pruning import (
    PruneResult,
    PruningSummary,
    admm_prune,
    hard_prune,
    pruning_rate,
    retrain_masked,
)

__all__ = [
    "FULL",
    "QUICK",
    "DigitsCNN",
    "Schedule",
    "accuracy",
    "load_data",
    "main",
    "report",
    "run",
]


class DigitsCNN(nn.Module):
    """Three 3x3 convolutions with ReLU and max pooling, then a linear head, for 1x8x8 digits.

    ``conv1`` 1->16 (8x8), ``conv2`` 16->32 (8x8), pool to 4x4, ``conv3`` 32->32 (4x4), pool to 2x2,
    ``head`` 128->10.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(2 * width * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        return self.head(x.flatten(1))


@dataclass(frozen=True)
class Schedule:
    """Epochs of each stage and the optimiser settings of a run."""

    dense_epochs: int
    admm_epochs: int
    retrain_epochs: int
    lr: float = 3e-3
    retrain_lr: float = 1e-3
    rho: float = 3e-3
    rho_growth: float = 1.3
    batch_size: int = 32


FULL = Schedule(dense_epochs=30, admm_epochs=30, retrain_epochs=20)
"""The full run (the accuracy claim: pruned within 1 point of dense)."""
QUICK = Schedule(dense_epochs=12, admm_epochs=12, retrain_epochs=10, rho=1e-2, rho_growth=1.5)
"""A short run (about 10 s) for tests and a first look; rho starts higher and grows faster."""


def load_data(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The digits as ``(train, test)`` datasets of ``[N, 1, 8, 8]`` floats in [0, 1] and labels.

    A stratified 75/25 split (1347 / 450 images) with a fixed ``random_state`` of ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return (
        TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        TensorDataset(torch.from_numpy(x_te), torch.from_numpy(y_te)),
    )


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    """Test accuracy in percent."""
    x, y = data.tensors
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = int((model(x).argmax(dim=1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / len(y)


def run(
    schedule: Schedule = FULL,
    seed: int = 0,
    patterns: int = 8,
    connectivity: float = 3.6,
    log: bool = False,
) -> dict[str, Any]:
    """Train dense, ADMM-prune, hard-prune and retrain; return what happened.

    The dict holds ``dense_accuracy``, ``admm_accuracy`` (after ADMM, weights still dense),
    ``hard_pruned_accuracy`` (right after the hard prune), ``pruned_accuracy`` (after masked
    retraining), ``result`` (the :class:`PruneResult`: pattern set, ids per layer), ``summary`` (the
    :class:`PruningSummary` measured on the final weights, MACs per image), ``model``,
    ``schedule``, ``train_size``, ``test_size`` and ``seconds``.
    """
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        train, test = load_data(seed)
        loader = DataLoader(
            train,
            batch_size=schedule.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        model = DigitsCNN()
        loss_fn = nn.CrossEntropyLoss()

        def say(msg: str) -> None:
            if log:
                print(msg, flush=True)

        opt = torch.optim.Adam(model.parameters(), lr=schedule.lr)
        model.train()
        for _ in range(schedule.dense_epochs):
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        dense = accuracy(model, test)
        say(f"dense: {dense:.2f}%")

        result: PruneResult = admm_prune(
            model,
            loader,
            loss_fn,
            patterns=patterns,
            connectivity=connectivity,
            epochs=schedule.admm_epochs,
            rho=schedule.rho,
            rho_growth=schedule.rho_growth,
            lr=schedule.retrain_lr,
            callback=lambda e, h: say(
                f"  admm epoch {e}: loss {h['loss']:.4f} rho {h['rho']:.3g} "
                f"residuals {h['pattern_residual']:.3f} {h['connectivity_residual']:.3f}"
            ),
        )
        admm = accuracy(model, test)
        hard_prune(model, result)
        hard = accuracy(model, test)
        say(f"admm: {admm:.2f}%, hard pruned: {hard:.2f}%")
        retrain_masked(
            model, result, loader, loss_fn, schedule.retrain_epochs, lr=schedule.retrain_lr
        )
        pruned = accuracy(model, test)
        say(f"retrained: {pruned:.2f}%")
        summary = pruning_rate(model, test.tensors[0][:1])
    finally:
        torch.set_num_threads(threads)
    return {
        "dense_accuracy": dense,
        "admm_accuracy": admm,
        "hard_pruned_accuracy": hard,
        "pruned_accuracy": pruned,
        "result": result,
        "summary": summary,
        "model": model,
        "schedule": schedule,
        "train_size": len(train),
        "test_size": len(test),
        "seconds": time.perf_counter() - start,
    }


def _pattern_art(patterns: Sequence[Sequence[int]], counts: Sequence[int]) -> str:
    """The patterns drawn side by side as 3x3 grids (``#`` kept, ``.`` pruned), with use counts."""
    cells = []
    for k, (p, n) in enumerate(zip(patterns, counts, strict=True)):
        grid = ["".join("#" if r * 3 + c in p else "." for c in range(3)) for r in range(3)]
        label = f"#{k}"
        cells.append([label.ljust(6), *(g.ljust(6) for g in grid), str(n).ljust(6)])
    rows = ["  ".join(cell[i] for cell in cells).rstrip() for i in range(5)]
    return "\n".join(["  " + r for r in rows[:4]] + ["  " + rows[4] + "   <- kernels using it"])


def report(out: dict[str, Any]) -> str:
    """The readable summary of a :func:`run`: accuracies, pattern set, pruning rate."""
    s: Schedule = out["schedule"]
    result: PruneResult = out["result"]
    summary: PruningSummary = out["summary"]
    counts = [0] * len(result.patterns)
    for ids in result.ids.values():
        for k, n in zip(*np.unique(ids[ids >= 0], return_counts=True), strict=True):
            counts[int(k)] += int(n)
    delta = out["pruned_accuracy"] - out["dense_accuracy"]
    stages = [
        ("dense training", str(s.dense_epochs), out["dense_accuracy"]),
        ("ADMM (weights still dense)", str(s.admm_epochs), out["admm_accuracy"]),
        ("hard prune", "-", out["hard_pruned_accuracy"]),
        ("masked retraining", str(s.retrain_epochs), out["pruned_accuracy"]),
    ]
    lines = [
        f"DigitsCNN on scikit-learn digits: {out['train_size']} train / {out['test_size']} test "
        f"images, one thread",
        "",
        f"{'stage':<28}{'epochs':>6}  {'test accuracy':>13}",
        f"{'-' * 28}{'-' * 6}  {'-' * 13}",
        *(f"{name:<28}{ep:>6}  {acc:>12.2f}%" for name, ep, acc in stages),
        f"{'pruned - dense':<28}{'':>6}  {delta:>+12.2f}",
        "",
        f"pattern set ({len(result.patterns)} patterns): "
        + " ".join(str(p).replace(" ", "") for p in result.patterns),
        _pattern_art(result.patterns, counts),
        "",
        f"connectivity: 1 kernel kept in {result.connectivity:g} "
        f"(exempt: {', '.join(result.exempt) or 'none'}); MACs per image",
        str(summary),
        "",
        f"runtime {out['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m pconv_mlir.models.digits [--quick] [--seed N] [--verbose]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pconv_mlir.models.digits", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="short schedule (about 10 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init and shuffle")
    parser.add_argument("--verbose", action="store_true", help="print per-epoch ADMM progress")
    args = parser.parse_args(argv)
    out = run(QUICK if args.quick else FULL, seed=args.seed, log=args.verbose)
    print(report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

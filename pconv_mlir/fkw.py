"""PatDNN's FKW (filter-kernel-weight) format in numpy: packing, unpacking, channel blocks.

The arrays of one layer (what `pconv.fkw_conv2d` takes, and all the generated loops read):

- `offset`  [F + 1] i32: the kernels of stored filter i are `offset[i]` to `offset[i + 1]`;
- `reorder` [F] i32: stored filter i computes output channel `reorder[i]`;
- `index`   [N] i32: the input channel of each kept kernel;
- `stride`  [F, B * K + 1] i32: the kernels of stored filter i are cut into runs, one per
  (channel block b, pattern p) in that order; run `r = b * K + p` is `stride[i, r]` to
  `stride[i, r + 1]`, and holds the kernels of pattern p whose input channel lies in block b;
- `weight`  [N, taps] f32: each kernel's kept weights, in the order of its pattern's taps.

Without channel blocking there is one block (B = 1) and `stride` is `[F, K + 1]`, the layout of
the papers. With `tile_channels = T` > 0 in the schedule, the input channels are cut into
`B = ceil(C / T)` blocks of T, so that the generated code can run every filter over one block
before the next and keep that block's input rows in cache. Inside a run, kernels are in rising
channel order.

    >>> fkw = pack(weight, ids, patterns)                       # doctest: +SKIP
    >>> weight2, ids2 = unpack(fkw, patterns, channels)         # doctest: +SKIP

numpy only; the passes, the dialect's verifier and the reference semantics share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pconv_mlir.patterns import SQUARE, Window, window_taps

NAMES = ("offset", "reorder", "index", "stride", "weight")
"""The FKW arrays in operand order."""


def channel_blocks(channels: int, tile_channels: int) -> int:
    """How many channel blocks `tile_channels` cuts `channels` input channels into (at least 1)."""
    if tile_channels <= 0 or tile_channels >= channels:
        return 1
    return -(-channels // tile_channels)


@dataclass(frozen=True)
class Fkw:
    """The FKW arrays of one layer (see the module docstring)."""

    offset: np.ndarray
    reorder: np.ndarray
    index: np.ndarray
    stride: np.ndarray
    weight: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in operand order."""
        return (self.offset, self.reorder, self.index, self.stride, self.weight)

    def nbytes(self) -> int:
        """Bytes of the five arrays."""
        return sum(int(a.nbytes) for a in self.arrays())

    def blocks(self, patterns: int) -> int:
        """The number of channel blocks B of `stride` for a set of `patterns` patterns."""
        return (self.stride.shape[1] - 1) // patterns


def pack(
    weight: np.ndarray,
    ids: np.ndarray,
    patterns: Sequence[Sequence[int]],
    filter_order: Sequence[int] | None = None,
    tile_channels: int = 0,
) -> Fkw:
    """Pack a masked dense weight `[F, C, KH, KW]` with pattern ids `[F, C]` into FKW.

    Filters are stored in `filter_order` (default: the original order); inside a filter,
    kernels are grouped by channel block, then by pattern (pattern 0 first), then by channel.
    """
    ids = np.asarray(ids)
    f_count, channels = ids.shape
    k_count = len(patterns)
    order = list(range(f_count)) if filter_order is None else [int(i) for i in filter_order]
    if sorted(order) != list(range(f_count)):
        raise ValueError(f"filter_order {order} is not a permutation of 0..{f_count - 1}")
    blocks = channel_blocks(channels, tile_channels)
    size = tile_channels if blocks > 1 else channels
    taps = len(patterns[0])
    tap_lists = [list(p) for p in patterns]
    flat = np.asarray(weight).reshape(f_count, channels, -1)
    offset = np.zeros(f_count + 1, dtype=np.int32)
    stride = np.zeros((f_count, blocks * k_count + 1), dtype=np.int32)
    index_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    count = 0
    for i, f in enumerate(order):
        for b in range(blocks):
            lo, hi = b * size, min(channels, (b + 1) * size)
            for p in range(k_count):
                stride[i, b * k_count + p] = count
                chans = lo + np.flatnonzero(ids[f, lo:hi] == p)
                index_parts.append(chans)
                weight_parts.append(flat[f][np.ix_(chans, tap_lists[p])])
                count += len(chans)
        stride[i, -1] = count
        offset[i + 1] = count
    index = np.concatenate(index_parts) if index_parts else np.zeros(0)
    packed = np.concatenate(weight_parts) if weight_parts else np.zeros((0, taps))
    return Fkw(
        offset,
        np.array(order, dtype=np.int32),
        index.astype(np.int32),
        stride,
        packed.astype(np.float32).reshape(count, taps),
    )


def unpack(
    fkw: Fkw, patterns: Sequence[Sequence[int]], channels: int, window: Window = SQUARE
) -> tuple[np.ndarray, np.ndarray]:
    """The masked dense weight `[F, C, KH, KW]` and pattern ids `[F, C]` that `fkw` describes."""
    f_count = len(fkw.reorder)
    k_count = len(patterns)
    weight = np.zeros((f_count, channels, window_taps(window)), dtype=np.float32)
    ids = np.full((f_count, channels), -1, dtype=np.int64)
    runs = fkw.stride.shape[1] - 1
    for i in range(f_count):
        f = int(fkw.reorder[i])
        for r in range(runs):
            p = r % k_count
            lo, hi = int(fkw.stride[i, r]), int(fkw.stride[i, r + 1])
            chans = fkw.index[lo:hi]
            weight[f, chans[:, None], np.array(patterns[p])[None, :]] = fkw.weight[lo:hi]
            ids[f, chans] = p
    return weight.reshape(f_count, channels, *window), ids


def reblock(
    fkw: Fkw,
    patterns: Sequence[Sequence[int]],
    channels: int,
    tile_channels: int,
    window: Window = SQUARE,
) -> Fkw:
    """The same layer packed for another channel blocking (`tile_channels`; 0: none)."""
    weight, ids = unpack(fkw, patterns, channels, window)
    return pack(weight, ids, patterns, [int(v) for v in fkw.reorder], tile_channels)


def check(fkw: Fkw, patterns: int, taps: int, channels: int, tile_channels: int) -> str | None:
    """What is wrong with `fkw` for a set of `patterns` patterns of `taps` taps over `channels`
    input channels blocked by `tile_channels`, as one sentence; None when it is consistent.

    Checks the shapes, that `reorder` is a permutation, `offset` rises from 0 to N, each
    `stride` row rises from `offset[i]` to `offset[i + 1]`, every `index` is a channel, a filter
    lists a channel once, and every kernel lies in the channel block of its run.
    """
    filters = len(fkw.reorder)
    kernels = len(fkw.index)
    blocks = channel_blocks(channels, tile_channels)
    expected = {
        "offset": (filters + 1,),
        "stride": (filters, blocks * patterns + 1),
        "weight": (kernels, taps),
    }
    for name, shape in expected.items():
        actual = getattr(fkw, name).shape
        if actual != shape:
            what = {
                "offset": "(filters + 1)",
                "stride": f"(filters x (blocks x patterns + 1), {blocks} channel blocks)",
                "weight": "(kernels x taps)",
            }[name]
            return (
                f"{name} has shape {'x'.join(map(str, actual))}, expected "
                f"{'x'.join(map(str, shape))} {what}"
            )
    offset, stride, index = fkw.offset, fkw.stride, fkw.index
    if sorted(fkw.reorder.tolist()) != list(range(filters)):
        return f"reorder {fkw.reorder.tolist()} is not a permutation of 0..{filters - 1}"
    if offset[0] != 0 or offset[-1] != kernels or np.any(np.diff(offset) < 0):
        return f"offset {offset.tolist()} must rise from 0 to the {kernels} kernels"
    bad = np.flatnonzero((index < 0) | (index >= channels))
    if bad.size:
        k = int(bad[0])
        return f"index[{k}] = {int(index[k])} is not an input channel 0..{channels - 1}"
    rows_ok = (stride[:, 0] == offset[:-1]) & (stride[:, -1] == offset[1:])
    rows_ok &= np.all(np.diff(stride, axis=1) >= 0, axis=1)
    if not rows_ok.all():
        i = int(np.flatnonzero(~rows_ok)[0])
        return (
            f"stride row {i} {stride[i].tolist()} must rise from offset[{i}] = "
            f"{int(offset[i])} to offset[{i + 1}] = {int(offset[i + 1])}"
        )
    if kernels:
        owner = np.repeat(np.arange(filters), np.diff(offset))
        pairs = owner.astype(np.int64) * channels + index
        if len(np.unique(pairs)) != kernels:
            _, first = np.unique(pairs, return_index=True)
            dup = int(owner[np.setdiff1d(np.arange(kernels), first)[0]])
            return f"filter {dup} lists an input channel twice in index"
        if blocks > 1:
            starts = stride[:, :-1].reshape(-1)
            run = np.searchsorted(starts, np.arange(kernels), side="right") - 1
            block = (run % (stride.shape[1] - 1)) // patterns
            size = tile_channels
            wrong = np.flatnonzero(index // size != block)
            if wrong.size:
                k = int(wrong[0])
                return (
                    f"index[{k}] = {int(index[k])} lies outside channel block {int(block[k])} "
                    f"of its run ({size} channels per block)"
                )
    return None


def filter_kernels(fkw: Fkw, patterns: int) -> list[list[tuple[int, int, int]]]:
    """Per stored filter, its kernels as (input channel, pattern, kernel), in channel order."""
    runs = fkw.stride.shape[1] - 1
    kernels: list[list[tuple[int, int, int]]] = []
    for i in range(len(fkw.reorder)):
        mine = [
            (int(fkw.index[k]), r % patterns, k)
            for r in range(runs)
            for k in range(int(fkw.stride[i, r]), int(fkw.stride[i, r + 1]))
        ]
        kernels.append(sorted(mine))
    return kernels


def overlap_groups(uses: np.ndarray, group_size: int) -> list[list[int]]:
    """Filters cut into groups of `group_size` (the last may be shorter) that share work:
    `uses[f]` marks what filter f reads (one column per (input channel, tap)); each group starts
    from the free filter that reads most, then takes, one at a time, the free filter that reads
    most of what the group already reads (ties: the one that reads more, then the lower index).
    Greedy, as PatDNN's filter-level grouping: one loaded input vector then feeds several
    filters of a group."""
    uses = np.asarray(uses, dtype=np.float32)
    filters = uses.shape[0]
    sizes = uses.sum(axis=1)
    free = np.ones(filters, dtype=bool)
    groups: list[list[int]] = []
    # Scores break ties by size, then index, below one shared column.
    tie = (sizes / (sizes.max() + 1) if filters else sizes) * 0.5
    tie -= np.arange(filters) / (4.0 * max(1, filters))
    while free.any():
        seed = int(np.argmax(np.where(free, sizes + tie, -np.inf)))
        free[seed] = False
        group, union = [seed], uses[seed].copy()
        while len(group) < group_size and free.any():
            score = np.where(free, uses @ union + tie, -np.inf)
            pick = int(np.argmax(score))
            free[pick] = False
            group.append(pick)
            np.maximum(union, uses[pick], out=union)
        groups.append(group)
    return groups


def tap_uses(ids: np.ndarray, patterns: Sequence[Sequence[int]], window_size: int) -> np.ndarray:
    """[filters, channels * window taps] booleans: which (input channel, tap) each filter reads,
    from pattern ids `[F, C]` (-1: pruned kernel)."""
    ids = np.asarray(ids)
    filters, channels = ids.shape
    uses = np.zeros((filters, channels * window_size), dtype=bool)
    for p, taps in enumerate(patterns):
        f, c = np.nonzero(ids == p)
        for tap in taps:
            uses[f, c * window_size + tap] = True
    return uses


def uniform(fkw: Fkw) -> bool:
    """Whether every stored filter has the same kernels: the same runs (`stride` less the
    filter's `offset`) and the same input channel at each position (`index`), as in a dense
    layer or a 1x1 conv that keeps every kernel. Filters in lock-step then read the same input
    vector at every step, so the generated code loads it once for all of them."""
    filters = len(fkw.reorder)
    if filters < 2:
        return True
    sizes = np.diff(fkw.offset)
    if np.any(sizes != sizes[0]):
        return False
    runs = fkw.stride - fkw.offset[:-1, None]
    if np.any(runs != runs[0]):
        return False
    return bool(np.all(fkw.index.reshape(filters, -1) == fkw.index[: sizes[0]]))

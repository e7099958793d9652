"""Kernel patterns in numpy: the one place that knows what a pattern is.

A 3x3 kernel's taps are numbered row-major, `tap = 3 * row + col`, so the centre is tap 4:

    0 1 2
    3 4 5
    6 7 8

A pattern is a sorted tuple of the taps a kernel keeps, `(1, 3, 4, 5)`; a pattern set is a list
of patterns; a layer's pattern ids are an int array `[F, C]` (output x input channels) holding an
index into the set, or -1 for a kernel removed by connectivity pruning (an all-zero kernel).

This module is numpy only. The dialect (`#pconv.pattern_set`), the reference semantics, the
passes (`pconv-from-linalg` infers and projects with it) and the torch-side training in
`pconv_mlir.pruning` all use it, so a pattern means the same thing everywhere.

    >>> candidate_patterns()[:2]
    [(0, 1, 2, 4), (0, 1, 3, 4)]
    >>> patterns = select_pattern_set([weight], k=8)                  # doctest: +SKIP
    >>> projected, ids = project_to_patterns(weight, patterns)        # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

WINDOW = 3
"""Patterns are defined over a 3x3 window."""
WINDOW_TAPS = WINDOW * WINDOW
CENTRE_TAP = 4
"""The tap index of the centre of a 3x3 kernel."""
DEFAULT_TAPS = 4
"""Taps a pattern keeps in PatDNN: the centre and 3 of its 8 neighbours."""

Pattern = tuple[int, ...]


class PatternError(ValueError):
    """A kernel does not fit the pattern rules. `layer` and `kernel` say where, when known."""

    def __init__(
        self, message: str, *, layer: int | None = None, kernel: tuple[int, int] | None = None
    ):
        super().__init__(message)
        self.layer = layer
        self.kernel = kernel


Window = tuple[int, int]
"""A kernel window (height, width); patterns are defined over one. 3x3 unless said."""

SQUARE: Window = (WINDOW, WINDOW)


def window_taps(window: Window = SQUARE) -> int:
    """How many taps a `window` has."""
    return window[0] * window[1]


def centre_tap(window: Window = SQUARE) -> int | None:
    """The tap at the centre of an odd `window` (4 for 3x3, 0 for 1x1), None for an even one."""
    kh, kw = window
    if kh % 2 == 0 or kw % 2 == 0:
        return None
    return (kh // 2) * kw + kw // 2


def tap_offset(tap: int, window: Window = SQUARE) -> tuple[int, int]:
    """The (row, col) position of `tap` inside `window` (row-major numbering)."""
    return divmod(tap, window[1])


def dense_pattern(window: Window = SQUARE) -> Pattern:
    """The pattern that keeps every tap of `window`: a dense convolution."""
    return tuple(range(window_taps(window)))


def window_of(weight: np.ndarray) -> Window:
    """The window of a weight `[F, C, KH, KW]`."""
    return int(weight.shape[2]), int(weight.shape[3])


def format_pattern(pattern: Sequence[int]) -> str:
    """`[1, 3, 4, 5]`: a pattern as the IR and the diagnostics print it."""
    return "[" + ", ".join(str(int(t)) for t in pattern) + "]"


# --------------------------------------------------------------------------------------------
# Candidates, masks
# --------------------------------------------------------------------------------------------


def candidate_patterns(
    taps: int = DEFAULT_TAPS, centre: bool = True, window: Window = SQUARE
) -> list[Pattern]:
    """Every mask of `window` with `taps` taps, in lexicographic order of the sorted tap tuples.

    With `centre=True` every mask holds the centre tap: for 4 taps of 3x3, PatDNN's
    56 = C(8, 3) shapes. With `centre=False`, all C(KH * KW, taps) masks.
    """
    size = window_taps(window)
    middle = centre_tap(window) if centre else None
    if centre and middle is None:
        raise ValueError(f"a {window[0]}x{window[1]} window has no centre tap")
    low = 1 if centre else 0
    if isinstance(taps, bool) or not isinstance(taps, int) or not low <= taps <= size:
        raise ValueError(
            f"taps={taps!r} is out of range: a {window[0]}x{window[1]} mask has {low} to "
            f"{size} taps"
        )
    if middle is not None:
        neighbours = [t for t in range(size) if t != middle]
        shapes = (tuple(sorted((*c, middle))) for c in itertools.combinations(neighbours, taps - 1))
    else:
        shapes = itertools.combinations(range(size), taps)
    return sorted(shapes)


def fits_patterns(weight: np.ndarray, taps: int = DEFAULT_TAPS, centre: bool = True) -> bool:
    """Whether every kernel of `weight [F, C, 3, 3]` fits some `taps`-tap pattern (holding the
    centre when `centre`): at most `taps` nonzeros, and the centre among exactly `taps`."""
    if window_of(weight) != SQUARE:
        return False
    nz = kernel_taps(weight)
    counts = nz.sum(axis=2)
    if np.any(counts > taps):
        return False
    if centre:
        return bool(np.all((counts < taps) | nz[:, :, CENTRE_TAP]))
    return True


def dense_ids(weight: np.ndarray) -> np.ndarray:
    """Pattern ids `[F, C]` of `weight` with the dense pattern set: 0 for a kernel with any
    nonzero, -1 for an all-zero kernel (a kernel removed by connectivity pruning)."""
    return np.where(kernel_taps(weight).any(axis=2), 0, -1).astype(np.int64)


def check_patterns(patterns: Iterable[Iterable[int]], window: Window = SQUARE) -> list[Pattern]:
    """`patterns` as a list of tuples, or a `PatternError` quoting the first bad pattern."""
    checked = [tuple(int(t) for t in p) for p in patterns]
    if not checked:
        raise PatternError("the pattern set is empty")
    seen: set[Pattern] = set()
    last = window_taps(window) - 1
    for p in checked:
        if not p or list(p) != sorted(set(p)) or p[0] < 0 or p[-1] > last:
            raise PatternError(
                f"pattern {p} is not a non-empty sorted tuple of distinct taps 0..{last}"
            )
        if p in seen:
            raise PatternError(f"pattern {p} appears twice in the pattern set")
        seen.add(p)
    return checked


def pattern_matrix(patterns: Sequence[Sequence[int]], window: Window = SQUARE) -> np.ndarray:
    """The pattern set as a bool array `[K, taps of window]`: `m[k, tap]` says pattern k keeps
    the tap."""
    m = np.zeros((len(patterns), window_taps(window)), dtype=bool)
    for k, p in enumerate(patterns):
        m[k, list(p)] = True
    return m


def pattern_masks(patterns: Sequence[Sequence[int]], window: Window = SQUARE) -> np.ndarray:
    """The pattern set as bool masks `[K, KH, KW]`."""
    return pattern_matrix(patterns, window).reshape(len(patterns), *window)


def kernel_mask(
    ids: np.ndarray, patterns: Sequence[Sequence[int]], window: Window = SQUARE
) -> np.ndarray:
    """Bool mask `[F, C, KH, KW]` of the weights that pattern ids `ids [F, C]` keep."""
    ids = np.asarray(ids)
    masks = pattern_masks(patterns, window)
    out = np.zeros((*ids.shape, *window), dtype=bool)
    kept = ids >= 0
    out[kept] = masks[ids[kept]]
    return out


def kernel_taps(weight: np.ndarray) -> np.ndarray:
    """Where each kernel of `weight [F, C, KH, KW]` is nonzero, as bool `[F, C, KH * KW]`."""
    weight = np.asarray(weight)
    return (weight != 0).reshape(weight.shape[0], weight.shape[1], -1)


def outside_patterns(weight: np.ndarray, ids: np.ndarray, patterns: Sequence[Sequence[int]]):
    """The first weight `(f, c, tap)` that is nonzero outside its kernel's pattern, or None."""
    window = window_of(weight)
    outside = np.argwhere((np.asarray(weight) != 0) & ~kernel_mask(ids, patterns, window))
    if not outside.size:
        return None
    f, c, r, s = (int(v) for v in outside[0])
    return f, c, r * window[1] + s


# --------------------------------------------------------------------------------------------
# Pattern ids of given weights
# --------------------------------------------------------------------------------------------


def pattern_ids(weight: np.ndarray, patterns: Sequence[Sequence[int]]) -> np.ndarray:
    """Each kernel's pattern id `[F, C]`, read from where its nonzeros are.

    An all-zero kernel gets -1. A kernel gets the smallest pattern that holds its nonzeros (the
    first in set order among equals), so an exact match wins. Raises `PatternError` naming the
    first kernel that no pattern holds.
    """
    pmat = pattern_matrix(patterns, window_of(weight))
    f, c = weight.shape[:2]
    nz = kernel_taps(weight).reshape(f * c, -1)
    fits = ~np.any(nz[:, None, :] & ~pmat[None, :, :], axis=2)  # [N, K]
    spare = pmat.sum(axis=1)[None, :] - nz.sum(axis=1)[:, None]
    ids = np.argmin(np.where(fits, spare, np.iinfo(np.int64).max), axis=1).astype(np.int64)
    empty = ~nz.any(axis=1)
    bad = ~fits.any(axis=1) & ~empty
    if bad.any():
        n = int(np.flatnonzero(bad)[0])
        taps = tuple(int(t) for t in np.flatnonzero(nz[n]))
        raise PatternError(
            f"kernel (f={n // c}, c={n % c}) has nonzero taps {taps}, "
            "which fit no pattern of the set",
            kernel=(n // c, n % c),
        )
    ids[empty] = -1
    return ids.reshape(f, c)


def infer_pattern_set(
    weights: Sequence[np.ndarray], taps: int = DEFAULT_TAPS, centre: bool = True
) -> tuple[list[Pattern], list[np.ndarray]]:
    """The pattern set that already-pruned layers use, and each layer's pattern ids.

    The set holds every shape that some kernel with exactly `taps` nonzeros has, most frequent
    first (ties in tap order). A kernel with fewer nonzeros takes the first pattern of the set
    that holds them; when none does, the first candidate shape that does joins the set. Raises
    `PatternError` (with `layer` and `kernel`) for a kernel with more than `taps` nonzeros, one
    that keeps `taps` taps without the centre (when `centre`), or one no candidate holds.
    """
    counts: dict[Pattern, int] = {}
    for number, weight in enumerate(weights):
        nz = kernel_taps(weight)
        sizes = nz.sum(axis=2)
        too_many = np.argwhere(sizes > taps)
        if too_many.size:
            f, c = (int(v) for v in too_many[0])
            kept = [int(t) for t in np.flatnonzero(nz[f, c])]
            raise PatternError(
                f"kernel ({f}, {c}) has {len(kept)} nonzero taps {kept}, a pattern keeps {taps}",
                layer=number,
                kernel=(f, c),
            )
        for f, c in np.argwhere(sizes == taps):
            shape = tuple(int(t) for t in np.flatnonzero(nz[f, c]))
            if centre and CENTRE_TAP not in shape:
                raise PatternError(
                    f"kernel ({f}, {c}) keeps taps {list(shape)} without the centre tap 4",
                    layer=number,
                    kernel=(int(f), int(c)),
                )
            counts[shape] = counts.get(shape, 0) + 1
    patterns = sorted(counts, key=lambda p: (-counts[p], p))
    candidates: list[Pattern] | None = None
    all_ids: list[np.ndarray] = []
    for number, weight in enumerate(weights):
        nz = kernel_taps(weight)
        ids = np.full(nz.shape[:2], -1, dtype=np.int64)
        for f, c in np.argwhere(nz.any(axis=2)):
            kept = set(np.flatnonzero(nz[f, c]).tolist())
            fitting = next((k for k, p in enumerate(patterns) if kept <= set(p)), None)
            if fitting is None:
                if candidates is None:
                    candidates = candidate_patterns(taps, centre)
                pick = next((p for p in candidates if kept <= set(p)), None)
                if pick is None:
                    raise PatternError(
                        f"kernel ({f}, {c}) with taps {sorted(kept)} fits no {taps}-tap pattern",
                        layer=number,
                        kernel=(int(f), int(c)),
                    )
                patterns.append(pick)
                fitting = len(patterns) - 1
            ids[f, c] = fitting
        all_ids.append(ids)
    return patterns, all_ids


# --------------------------------------------------------------------------------------------
# Selection and projection (pruning)
# --------------------------------------------------------------------------------------------


def kernel_energy(weight: np.ndarray) -> np.ndarray:
    """Squared weights per tap, `[F * C, 9]`, in float64 so argmax does not depend on dtype."""
    return np.asarray(weight, dtype=np.float64).reshape(-1, WINDOW_TAPS) ** 2


def _scores(energy: np.ndarray, pmat: np.ndarray) -> np.ndarray:
    """Energy each pattern would keep, `[N, K]`, summed in a fixed tap order (reproducible)."""
    return np.stack([energy[:, pmat[k]].sum(axis=1) for k in range(len(pmat))], axis=1)


def select_pattern_set(
    weights: Iterable[np.ndarray], k: int = 8, taps: int = DEFAULT_TAPS
) -> list[Pattern]:
    """The K most used pattern shapes of a network (PatDNN's pattern set selection).

    Every kernel of `weights` (`[F, C, 3, 3]` arrays) is projected onto the centre-holding
    `taps`-tap candidate keeping the most L2 norm (the first candidate on a tie); all-zero
    kernels are not counted. The K candidates chosen most often are returned, most frequent
    first; ties are broken by the total energy the candidate would keep, then candidate order.
    When fewer than K shapes occur the rest is filled the same way, so the set has K patterns.
    """
    candidates = candidate_patterns(taps, centre=True)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(candidates):
        raise ValueError(
            f"k={k!r} is out of range: choose 1 to {len(candidates)} patterns "
            f"(the number of {taps}-tap candidates)"
        )
    cand = pattern_matrix(candidates)
    counts = np.zeros(len(candidates), dtype=np.int64)
    energy = np.zeros(len(candidates), dtype=np.float64)
    for weight in weights:
        scores = _scores(kernel_energy(weight), cand)
        scores = scores[scores.max(axis=1, initial=0.0) > 0]
        counts += np.bincount(scores.argmax(axis=1), minlength=len(candidates))
        energy += scores.sum(axis=0)
    order = sorted(range(len(candidates)), key=lambda i: (-int(counts[i]), -float(energy[i]), i))
    return [candidates[i] for i in order[:k]]


def project_to_patterns(
    weight: np.ndarray, patterns: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Every kernel of `weight [F, C, 3, 3]` projected onto its best pattern, the rest zeroed.

    The best pattern keeps the most L2 norm (the first in set order on a tie). Returns the
    projected weight (same dtype) and the pattern ids `[F, C]` (int64); an all-zero kernel stays
    zero with id -1.
    """
    weight = np.asarray(weight)
    pmat = pattern_matrix(patterns)
    f, c = weight.shape[:2]
    flat = weight.reshape(f * c, WINDOW_TAPS)
    ids = _scores(kernel_energy(flat), pmat).argmax(axis=1).astype(np.int64)
    ids[~(flat != 0).any(axis=1)] = -1
    keep = pmat[np.clip(ids, 0, None)] & (ids >= 0)[:, None]
    return (flat * keep).astype(weight.dtype).reshape(weight.shape), ids.reshape(f, c)


def kept_kernel_count(kernels: int, rate: float) -> int:
    """How many of `kernels` kernels connectivity pruning at `rate` keeps: `kernels / rate`
    rounded to the nearest integer (halves up), at least 1."""
    if not rate >= 1:
        raise ValueError(f"connectivity rate {rate!r} is below 1: it is 'keep 1 kernel in rate'")
    return max(1, min(kernels, math.floor(kernels / rate + 0.5)))


def top_kernels(norms: np.ndarray, n: int) -> np.ndarray:
    """Bool mask keeping the `n` largest of `norms` (the first index first on ties)."""
    norms = np.asarray(norms).reshape(-1)
    order = np.argsort(-norms, kind="stable")
    keep = np.zeros(norms.size, dtype=bool)
    keep[order[:n]] = True
    return keep


def kernel_norms(weight: np.ndarray) -> np.ndarray:
    """Each kernel's squared L2 norm, flat `[F * C]` in float64."""
    return kernel_energy(weight).sum(axis=1)


def connectivity_mask(weight: np.ndarray, rate: float = 3.6) -> np.ndarray:
    """The kernels of `weight [F, C, 3, 3]` that connectivity pruning keeps, as bool `[F, C]`.

    Keeps `kept_kernel_count(F * C, rate)` kernels, those with the largest L2 norm (the first in
    row-major order on ties); `rate=1` keeps all.
    """
    f, c = weight.shape[:2]
    return top_kernels(kernel_norms(weight), kept_kernel_count(f * c, rate)).reshape(f, c)


def global_keep(norms: Sequence[np.ndarray], rate: float) -> list[np.ndarray]:
    """Connectivity pruning over several layers together: flat bool keep masks, one per layer.

    Keeps `kept_kernel_count(total, rate)` kernels of all layers by norm; every layer keeps at
    least its largest kernel.
    """
    if not norms:
        return []
    flat = [np.asarray(n, dtype=np.float64).reshape(-1) for n in norms]
    everything = np.concatenate(flat)
    keep = top_kernels(everything, kept_kernel_count(everything.size, rate))
    masks = []
    for part, norm in zip(
        np.split(keep, np.cumsum([n.size for n in flat])[:-1]), flat, strict=True
    ):
        part = part.copy()
        if not part.any():
            part[int(np.argmax(norm))] = True
        masks.append(part)
    return masks


def connectivity_keep(
    norms: Sequence[np.ndarray], rate: float, scope: str = "layer"
) -> list[np.ndarray]:
    """Flat bool keep masks, one per layer, for kernel norms: 1 kernel in `rate` by norm, per
    layer (`scope="layer"`) or over all the layers together (`"global"`, see `global_keep`)."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope={scope!r} is not 'layer' or 'global'")
    if scope == "global":
        return global_keep(norms, rate)
    flat = [np.asarray(n).reshape(-1) for n in norms]
    return [top_kernels(n, kept_kernel_count(n.size, rate)) for n in flat]


def project_layers(
    weights: Sequence[np.ndarray],
    patterns: Sequence[Sequence[int]],
    rate: float,
    *,
    scope: str = "layer",
    exempt: Sequence[int] = (),
) -> list[np.ndarray]:
    """Pattern ids of the joint projection onto the pattern set and the kept kernels.

    A kernel's best pattern does not depend on which kernels are kept, and a kept kernel's
    energy is its pattern-projected norm: so project to patterns, then keep the kernels whose
    *projected* norm is largest, per layer (`scope="layer"`) or over all layers (`"global"`).
    Layers whose index is in `exempt` keep every kernel.
    """
    ids: list[np.ndarray] = []
    norms: list[np.ndarray] = []
    for weight in weights:
        projected, layer_ids = project_to_patterns(weight, patterns)
        ids.append(layer_ids)
        norms.append(kernel_norms(projected))
    keep = [np.ones(n.size, dtype=bool) for n in norms]
    pruned = [i for i in range(len(weights)) if i not in set(exempt)]
    for i, mask in zip(
        pruned, connectivity_keep([norms[i] for i in pruned], rate, scope), strict=True
    ):
        keep[i] = mask
    return [
        np.where(k.reshape(layer_ids.shape), layer_ids, -1).astype(np.int64)
        for k, layer_ids in zip(keep, ids, strict=True)
    ]

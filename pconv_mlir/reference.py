"""Reference semantics of the pconv ops in numpy: what every pass and generated kernel must keep.

`conv2d` computes `pconv.conv2d`, `fkw_conv2d` computes `pconv.fkw_conv2d`; `fkw_pack` and
`fkw_unpack` convert between a masked dense weight and the FKW arrays. The tests check these
against `torch.nn.functional.conv2d` on the masked dense weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Pattern = Sequence[int]


def pattern_masks(patterns: Sequence[Pattern]) -> np.ndarray:
    """Boolean masks [K, 3, 3] for a list of tap lists (tap = 3 * row + col)."""
    masks = np.zeros((len(patterns), 9), dtype=bool)
    for k, taps in enumerate(patterns):
        masks[k, list(taps)] = True
    return masks.reshape(len(patterns), 3, 3)


def kernel_mask(ids: np.ndarray, patterns: Sequence[Pattern]) -> np.ndarray:
    """Boolean mask [F, C, 3, 3] of the weights that kernel pattern ids `ids` [F, C] keep."""
    ids = np.asarray(ids)
    masks = pattern_masks(patterns)
    out = np.zeros((*ids.shape, 3, 3), dtype=bool)
    kept = ids >= 0
    out[kept] = masks[ids[kept]]
    return out


def dense_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
) -> np.ndarray:
    """A plain NCHW x FCHW convolution (3x3 or any kernel size), accumulated in float64."""
    n, c, h, w = x.shape
    f, wc, kh, kw = weight.shape
    if wc != c:
        raise ValueError(f"weight has {wc} input channels, input has {c}")
    (sh, sw), (ph, pw), (dh, dw) = strides, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, f, oh, ow), dtype=np.float64)
    w64 = weight.astype(np.float64)
    for r in range(kh):
        for s in range(kw):
            window = xp[
                :,
                :,
                r * dh : r * dh + sh * (oh - 1) + 1 : sh,
                s * dw : s * dw + sw * (ow - 1) + 1 : sw,
            ]
            out += np.einsum("fc,nchw->nfhw", w64[:, :, r, s], window, optimize=True)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    if relu:
        np.maximum(out, 0.0, out=out)
    return out.astype(x.dtype, copy=False)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    patterns: Sequence[Pattern],
    ids: np.ndarray,
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
) -> np.ndarray:
    """`pconv.conv2d`: the weights outside each kernel's pattern (and pruned kernels) are zero."""
    masked = np.where(kernel_mask(ids, patterns), weight, 0).astype(weight.dtype)
    return dense_conv2d(x, masked, bias, strides, padding, dilation, relu)


@dataclass(frozen=True)
class Fkw:
    """The FKW arrays of one layer (see `pconv.fkw_conv2d`)."""

    offset: np.ndarray  # [F + 1] i32: kernels of stored filter i are offset[i]:offset[i + 1]
    reorder: np.ndarray  # [F] i32: stored filter i computes output channel reorder[i]
    index: np.ndarray  # [N] i32: input channel of kernel k
    stride: (
        np.ndarray
    )  # [F, K + 1] i32: kernels of pattern p in filter i: stride[i, p]:stride[i, p + 1]
    weight: np.ndarray  # [N, taps] f32: the kept weights of kernel k, in pattern tap order

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.offset, self.reorder, self.index, self.stride, self.weight)


def fkw_pack(
    weight: np.ndarray,
    ids: np.ndarray,
    patterns: Sequence[Pattern],
    filter_order: Sequence[int] | None = None,
) -> Fkw:
    """Pack a masked dense weight [F, C, 3, 3] into FKW.

    Filters are stored in `filter_order` (default: original order); inside a filter, kernels are
    grouped by pattern (pattern 0 first) and by input channel within a run.
    """
    ids = np.asarray(ids)
    f_count, _c = ids.shape
    k_count = len(patterns)
    order = list(range(f_count)) if filter_order is None else [int(i) for i in filter_order]
    if sorted(order) != list(range(f_count)):
        raise ValueError(f"filter_order {order} is not a permutation of 0..{f_count - 1}")
    taps = len(patterns[0])
    offset = [0]
    index: list[int] = []
    stride = np.zeros((f_count, k_count + 1), dtype=np.int32)
    rows: list[np.ndarray] = []
    flat = weight.reshape(f_count, -1, 9)
    for i, f in enumerate(order):
        for p in range(k_count):
            stride[i, p] = len(index)
            for c in np.flatnonzero(ids[f] == p):
                index.append(int(c))
                rows.append(flat[f, c, list(patterns[p])])
        stride[i, k_count] = len(index)
        offset.append(len(index))
    packed = np.array(rows, dtype=np.float32).reshape(len(index), taps)
    return Fkw(
        np.array(offset, dtype=np.int32),
        np.array(order, dtype=np.int32),
        np.array(index, dtype=np.int32),
        stride,
        packed,
    )


def fkw_unpack(
    fkw: Fkw, patterns: Sequence[Pattern], channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """The masked dense weight [F, C, 3, 3] and pattern ids [F, C] that `fkw` describes."""
    f_count = len(fkw.reorder)
    weight = np.zeros((f_count, channels, 9), dtype=np.float32)
    ids = np.full((f_count, channels), -1, dtype=np.int64)
    for i in range(f_count):
        f = int(fkw.reorder[i])
        for p in range(len(patterns)):
            for k in range(int(fkw.stride[i, p]), int(fkw.stride[i, p + 1])):
                c = int(fkw.index[k])
                weight[f, c, list(patterns[p])] = fkw.weight[k]
                ids[f, c] = p
    return weight.reshape(f_count, channels, 3, 3), ids


def fkw_conv2d(
    x: np.ndarray,
    fkw: Fkw,
    bias: np.ndarray | None,
    patterns: Sequence[Pattern],
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
) -> np.ndarray:
    """`pconv.fkw_conv2d`: the convolution with the weight the FKW arrays describe."""
    weight, ids = fkw_unpack(fkw, patterns, x.shape[1])
    return conv2d(x, weight, bias, patterns, ids, strides, padding, dilation, relu)

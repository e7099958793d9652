"""Reference semantics of the pconv ops in numpy: what every pass and generated kernel must keep.

`conv2d` computes `pconv.conv2d`, `fkw_conv2d` computes `pconv.fkw_conv2d` (the FKW format is
`pconv_mlir.fkw`). The tests check these against `torch.nn.functional.conv2d` on the masked
dense weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pconv_mlir import fkw as fkw_format
from pconv_mlir.patterns import kernel_mask

Pattern = Sequence[int]


def dense_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
    *,
    residual: np.ndarray | None = None,
    relu6: bool = False,
) -> np.ndarray:
    """A plain NCHW x FCHW convolution (any kernel size), accumulated in float64, with the
    pconv epilogue: `act(conv + bias + residual)`, `act` ReLU, ReLU6 or none."""
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
    if residual is not None:
        out += np.asarray(residual, dtype=np.float64)
    if relu or relu6:
        np.maximum(out, 0.0, out=out)
    if relu6:
        np.minimum(out, 6.0, out=out)
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
    **epilogue: object,
) -> np.ndarray:
    """`pconv.conv2d`: the weights outside each kernel's pattern (and pruned kernels) are zero.
    `epilogue` is `residual=` and `relu6=` (see `dense_conv2d`)."""
    window = (weight.shape[2], weight.shape[3])
    masked = np.where(kernel_mask(ids, patterns, window), weight, 0).astype(weight.dtype)
    return dense_conv2d(x, masked, bias, strides, padding, dilation, relu, **epilogue)


def fkw_conv2d(
    x: np.ndarray,
    fkw: fkw_format.Fkw,
    bias: np.ndarray | None,
    patterns: Sequence[Pattern],
    strides: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
    relu: bool = False,
    *,
    window: tuple[int, int] = (3, 3),
    **epilogue: object,
) -> np.ndarray:
    """`pconv.fkw_conv2d`: the convolution with the weight the FKW arrays describe."""
    weight, ids = fkw_format.unpack(fkw, patterns, x.shape[1], window)
    return conv2d(x, weight, bias, patterns, ids, strides, padding, dilation, relu, **epilogue)

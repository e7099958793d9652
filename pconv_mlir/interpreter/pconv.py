"""Reference semantics of `pconv.conv2d` and `pconv.fkw_conv2d` for the interpreter.

Both ops run `pconv_mlir.reference` on the numpy operands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from pconv_mlir import reference
from pconv_mlir.dialects.pconv import Conv2dOp, FkwConv2dOp, window_of
from pconv_mlir.fkw import Fkw


@register_impls
class PconvFunctions(InterpreterFunctions):
    """Reference semantics of `pconv.conv2d` and `pconv.fkw_conv2d`."""

    @impl(Conv2dOp)
    def run_conv2d(self, interpreter: Interpreter, op: Conv2dOp, args: tuple[Any, ...]):
        x, weight, *rest = args
        bias = rest[0] if rest else None
        out = reference.conv2d(
            np.asarray(x),
            np.asarray(weight),
            bias,
            op.patterns.patterns,
            op.pattern_ids(),
            **window_of(op),
        )
        return (out,)

    @impl(FkwConv2dOp)
    def run_fkw_conv2d(self, interpreter: Interpreter, op: FkwConv2dOp, args: tuple[Any, ...]):
        x, offset, reorder, index, stride, weight, *rest = (np.asarray(a) for a in args)
        bias = rest[0] if rest else None
        fkw = Fkw(offset, reorder, index, stride, weight)
        return (reference.fkw_conv2d(x, fkw, bias, op.patterns.patterns, **window_of(op)),)

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
        bias, residual = _epilogue_operands(op, rest)
        out = reference.conv2d(
            np.asarray(x),
            np.asarray(weight),
            bias,
            op.patterns.patterns,
            op.pattern_ids(),
            **window_of(op),
            residual=residual,
        )
        return (out,)

    @impl(FkwConv2dOp)
    def run_fkw_conv2d(self, interpreter: Interpreter, op: FkwConv2dOp, args: tuple[Any, ...]):
        x, offset, reorder, index, stride, weight, *rest = (np.asarray(a) for a in args)
        bias, residual = _epilogue_operands(op, rest)
        fkw = Fkw(offset, reorder, index, stride, weight)
        out = reference.fkw_conv2d(
            x,
            fkw,
            bias,
            op.patterns.patterns,
            **window_of(op),
            window=op.patterns.kernel_window,
            residual=residual,
        )
        return (out,)


def _epilogue_operands(op: Conv2dOp | FkwConv2dOp, rest: list[Any]) -> tuple[Any, Any]:
    """(bias, residual) from the operands after the weights; either may be absent."""
    values = iter(rest)
    bias = next(values) if op.bias is not None else None
    residual = np.asarray(next(values)) if op.residual is not None else None
    return bias, residual

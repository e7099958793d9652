"""xDSL interpreter implementations of the pconv ops, on numpy arrays.

Tensors are numpy arrays. `arith.constant` of a tensor (`dense<...>`, or `dense_resource<...>`
when the context holding the blob is given) yields a numpy array; scalars keep xDSL's own
implementation. `run_function` calls a `func.func` of a module:

    >>> (y,) = run_function(module, "forward", x)      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir import reference
from pconv_mlir.dialects.pconv import Conv2dOp, FkwConv2dOp, elements_to_numpy


def _pairs(op: Conv2dOp | FkwConv2dOp) -> dict[str, Any]:
    return {
        "strides": tuple(op.strides.get_values()),
        "padding": tuple(op.padding.get_values()),
        "dilation": tuple(op.dilation.get_values()),
        "relu": op.relu is not None,
    }


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
            **_pairs(op),
        )
        return (out,)

    @impl(FkwConv2dOp)
    def run_fkw_conv2d(self, interpreter: Interpreter, op: FkwConv2dOp, args: tuple[Any, ...]):
        x, offset, reorder, index, stride, weight, *rest = (np.asarray(a) for a in args)
        bias = rest[0] if rest else None
        fkw = reference.Fkw(offset, reorder, index, stride, weight)
        return (reference.fkw_conv2d(x, fkw, bias, op.patterns.patterns, **_pairs(op)),)


@register_impls
class TensorConstantFunctions(InterpreterFunctions):
    """`arith.constant` that also yields tensors, as numpy arrays."""

    def __init__(self, ctx: Context | None = None):
        self.ctx = ctx
        self.scalars = ArithFunctions()

    @impl(arith.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: arith.ConstantOp, args: tuple[()]):
        if not isinstance(op.result.type, TensorType):
            return self.scalars.run_constant(interpreter, op, args)
        value = op.value
        if isinstance(value, DenseIntOrFPElementsAttr):
            return (elements_to_numpy(value).copy(),)
        if self.ctx is not None:
            from pconv_mlir.frontend import constant_array

            return (constant_array(self.ctx, value),)
        raise InterpretationError(f"cannot read constant {value} without its context")


def make_interpreter(module: ModuleOp, ctx: Context | None = None) -> Interpreter:
    """An interpreter for modules of func, arith and pconv ops on numpy tensors."""
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(ArithFunctions())
    interpreter.register_implementations(TensorConstantFunctions(ctx), override=True)
    interpreter.register_implementations(PconvFunctions())
    return interpreter


def run_function(
    module: ModuleOp, name: str, *inputs: Any, ctx: Context | None = None
) -> tuple[np.ndarray, ...]:
    """Call `func.func @name` of `module` on numpy inputs; returns its results."""
    interpreter = make_interpreter(module, ctx)
    return tuple(interpreter.call_op(name, tuple(np.asarray(i) for i in inputs)))

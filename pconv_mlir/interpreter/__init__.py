"""xDSL interpreter implementations on numpy arrays: the pconv ops and linalg on tensors.

Tensors are numpy arrays; scalars are Python values, as in xDSL's own interpreter. Beside
`pconv.conv2d` and `pconv.fkw_conv2d` this covers what torch-mlir's linalg-on-tensors output
of a CNN uses, so that the imported model itself is the reference a pass must keep:

- `arith` and `math` ops, elementwise on scalars or arrays (inside `linalg.generic` bodies
  too), with the numpy type of their MLIR type; `arith.constant` of tensors (`dense<...>`, or
  `dense_resource<...>` when the context holding the blobs is given); `cf.assert`;
- `tensor`: empty, pad, collapse_shape, expand_shape, extract_slice, insert_slice, cast, dim,
  extract, insert, from_elements, splat, reshape, concat;
- `linalg`: generic (with `linalg.index`), reduce, fill, broadcast, transpose, matmul, the
  elementwise named ops, the 2-D convolutions xDSL defines and pooling_nchw_max. The named
  ops xDSL lacks (depthwise_conv_2d_nchw_chw, batch_matmul, pooling_nchw_sum, ...) reach us
  as `linalg.generic`: `import_torch` generalises them.

Everything is vectorised. A `linalg.generic` runs its body once on arrays over the whole
iteration space: each operand is a strided view of its tensor built from its indexing map
(a gather for `mod` / `floordiv` maps), a reduction is the numpy reduction of the op that
combines the accumulator (`addf` -> sum, `maximumf` or `cmpf`+`select` -> max, ...), and
`acc + a * b` bodies (matmul, convolutions) are `np.einsum` contractions, so BLAS. A reduction
body of another shape (an argmax: two accumulators that meet) runs once per point of the
reduction loops, in order, on arrays over the parallel loops. An op with no implementation
raises an `InterpretationError` naming it (and the op whose body holds it).

One module per dialect: `pconv`, `arith` (with `math`, `cf` and tensor constants), `tensor`,
`linalg`. This one puts them together in `make_interpreter` and `run_function`.

    >>> (y,) = run_function(module, "main", x, ctx=ctx)      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    ModuleOp,
    TensorType,
    VectorType,
)
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Attribute
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir.interpreter.arith import NumpyArithFunctions, TensorConstantFunctions, dtype_of
from pconv_mlir.interpreter.linalg import LinalgFunctions
from pconv_mlir.interpreter.pconv import PconvFunctions
from pconv_mlir.interpreter.tensor import TensorFunctions

__all__ = [
    "LinalgFunctions",
    "NumpyArithFunctions",
    "PconvFunctions",
    "TensorConstantFunctions",
    "TensorFunctions",
    "make_interpreter",
    "run_function",
]


def make_interpreter(module: ModuleOp, ctx: Context | None = None) -> Interpreter:
    """An interpreter for modules of func, arith, math, tensor, linalg and pconv ops on numpy."""
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(ArithFunctions())
    interpreter.register_implementations(NumpyArithFunctions(), override=True)
    interpreter.register_implementations(TensorConstantFunctions(ctx), override=True)
    interpreter.register_implementations(TensorFunctions(), override=True)
    interpreter.register_implementations(LinalgFunctions(), override=True)
    interpreter.register_implementations(PconvFunctions())
    return interpreter


def _argument(value: Any, type_: Attribute) -> Any:
    """A function argument as the interpreter holds it: arrays of the declared element type
    for tensors and vectors, Python scalars for scalars."""
    if isinstance(type_, TensorType | VectorType):
        return np.asarray(value, dtype=dtype_of(type_))
    if isinstance(type_, IntegerType | IndexType | Float16Type | Float32Type | Float64Type):
        return np.asarray(value, dtype=dtype_of(type_)).item()
    return np.asarray(value)


def run_function(
    module: ModuleOp, name: str, *inputs: Any, ctx: Context | None = None
) -> tuple[np.ndarray, ...]:
    """Call `func.func @name` of `module` on numpy inputs; returns its results.

    Inputs are converted to the function's argument types (float64 data for a `tensor<...xf32>`
    argument becomes float32). `ctx` holds the `dense_resource` blobs of the weights.
    """
    interpreter = make_interpreter(module, ctx)
    callee = interpreter.get_op_for_symbol(name)
    if isinstance(callee, func.FuncOp):
        types = callee.function_type.inputs.data
        if len(types) != len(inputs):
            raise InterpretationError(f"@{name} takes {len(types)} arguments, got {len(inputs)}")
        args = tuple(_argument(x, t) for x, t in zip(inputs, types, strict=True))
    else:
        args = tuple(np.asarray(i) for i in inputs)
    return tuple(interpreter.call_op(callee, args))

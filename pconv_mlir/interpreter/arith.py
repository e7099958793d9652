"""`arith`, `math` and `cf` on numpy: elementwise ops on scalars or arrays, tensor constants.

Also the helpers the `tensor` and `linalg` implementations share: `dtype_of` (the numpy dtype
of an MLIR type) and `eval_block` (run a region's block on arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, cf, math
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, TensorType, VectorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.interpreters.arith import ArithFunctions
from xdsl.ir import Attribute, Block, BlockArgument, Operation, SSAValue
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir.elements import ElementsError, constant_array, dense_array, value_dtype

# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


@cache
def dtype_of(type_: Attribute) -> np.dtype[Any]:
    """The numpy dtype holding values of MLIR type `type_` (of its elements, for shaped types).

    bf16 is computed as float32; i1 is bool; signless integers are signed (see
    `pconv_mlir.elements.value_dtype`).
    """
    if isinstance(type_, TensorType | VectorType):
        type_ = type_.get_element_type()
    try:
        return value_dtype(type_)
    except ElementsError as e:
        raise InterpretationError(str(e)) from e


def _unsigned(a: np.ndarray) -> np.ndarray:
    """`a`'s bits as unsigned integers (what the `ui` arith ops compute on)."""
    return a.astype(f"u{a.dtype.itemsize}") if a.dtype.kind == "i" else a


# --------------------------------------------------------------------------------------------
# arith, math, cf: elementwise on scalars and arrays
# --------------------------------------------------------------------------------------------

Fn = Callable[..., Any]


def _divsi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))


def _round_half_away(x: np.ndarray) -> np.ndarray:
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7
        z = np.abs(x.astype(np.float64))
        t = 1.0 / (1.0 + 0.3275911 * z)
        poly = 1.061405429
        for a in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
            poly = a + t * poly
        poly = t * poly
        return np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return erf(x)


def _cmpf(op: arith.CmpfOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    unordered = np.isnan(a) | np.isnan(b)
    match op.predicate.value.data:
        case 0:  # false
            return np.zeros(np.broadcast(a, b).shape, np.bool_)
        case 1:  # oeq
            return a == b
        case 2:  # ogt
            return a > b
        case 3:  # oge
            return a >= b
        case 4:  # olt
            return a < b
        case 5:  # ole
            return a <= b
        case 6:  # one
            return (a != b) & ~unordered
        case 7:  # ord
            return ~unordered
        case 8:  # ueq
            return (a == b) | unordered
        case 9:  # ugt
            return ~(a <= b)
        case 10:  # uge
            return ~(a < b)
        case 11:  # ult
            return ~(a >= b)
        case 12:  # ule
            return ~(a > b)
        case 13:  # une
            return a != b
        case 14:  # uno
            return unordered
        case _:  # true
            return np.ones(np.broadcast(a, b).shape, np.bool_)


_CMPI: dict[int, Fn] = {
    0: np.equal,
    1: np.not_equal,
    2: np.less,
    3: np.less_equal,
    4: np.greater,
    5: np.greater_equal,
}


def _cmpi(op: arith.CmpiOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    predicate = op.predicate.value.data
    if predicate >= 6:  # ult, ule, ugt, uge
        return _CMPI[predicate - 4](_unsigned(a), _unsigned(b))
    return _CMPI[predicate](a, b)


def _extsi(op: arith.ExtSIOp, a: np.ndarray) -> np.ndarray:
    return -a.astype(np.int64) if a.dtype == np.bool_ else a  # i1 true is -1


def _ceildivui(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _unsigned(a), _unsigned(b)
    return a // b + (a % b != 0)


def _trunci(op: arith.TruncIOp, a: np.ndarray) -> np.ndarray:
    return (a & 1).astype(np.bool_) if dtype_of(op.result.type) == np.bool_ else a


def _bitcast(op: arith.BitcastOp, a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(dtype_of(op.result.type))


def _binary(fn: Fn) -> Fn:
    return lambda op, a, b: fn(a, b)


def _unary(fn: Fn) -> Fn:
    return lambda op, a: fn(a)


def _on_unsigned(fn: Fn) -> Fn:
    return lambda op, *args: fn(*(_unsigned(a) for a in args))


def _same(op: Operation, a: np.ndarray) -> np.ndarray:
    return a  # the result dtype conversion does the cast


_ELEMENTWISE: dict[type[Operation], Fn] = {
    arith.AddfOp: _binary(np.add),
    arith.SubfOp: _binary(np.subtract),
    arith.MulfOp: _binary(np.multiply),
    arith.DivfOp: _binary(np.divide),
    arith.NegfOp: _unary(np.negative),
    arith.MaximumfOp: _binary(np.maximum),
    arith.MinimumfOp: _binary(np.minimum),
    arith.MaxnumfOp: _binary(np.fmax),
    arith.MinnumfOp: _binary(np.fmin),
    arith.CmpfOp: _cmpf,
    arith.SelectOp: lambda op, c, a, b: np.where(c, a, b),
    arith.AddiOp: _binary(np.add),
    arith.SubiOp: _binary(np.subtract),
    arith.MuliOp: _binary(np.multiply),
    arith.DivSIOp: _binary(_divsi),
    arith.DivUIOp: _on_unsigned(np.floor_divide),
    arith.RemSIOp: _binary(np.fmod),
    arith.RemUIOp: _on_unsigned(np.remainder),
    arith.FloorDivSIOp: _binary(np.floor_divide),
    arith.CeilDivSIOp: _binary(lambda a, b: -np.floor_divide(-a, b)),
    arith.CeilDivUIOp: _binary(_ceildivui),
    arith.MaxSIOp: _binary(np.maximum),
    arith.MinSIOp: _binary(np.minimum),
    arith.MaxUIOp: _on_unsigned(np.maximum),
    arith.MinUIOp: _on_unsigned(np.minimum),
    arith.AndIOp: _binary(np.bitwise_and),
    arith.OrIOp: _binary(np.bitwise_or),
    arith.XOrIOp: _binary(np.bitwise_xor),
    arith.ShLIOp: _binary(np.left_shift),
    arith.ShRSIOp: _binary(np.right_shift),
    arith.ShRUIOp: _on_unsigned(np.right_shift),
    arith.CmpiOp: _cmpi,
    arith.ExtFOp: _same,
    arith.TruncFOp: _same,
    arith.SIToFPOp: _same,
    arith.UIToFPOp: _on_unsigned(lambda a: a),
    arith.FPToSIOp: _same,
    arith.FPToUIOp: _same,
    arith.ExtSIOp: _extsi,
    arith.ExtUIOp: _on_unsigned(lambda a: a),
    arith.TruncIOp: _trunci,
    arith.IndexCastOp: _same,
    arith.BitcastOp: _bitcast,
    math.AbsFOp: _unary(np.abs),
    math.AbsIOp: _unary(np.abs),
    math.AcosOp: _unary(np.arccos),
    math.AcoshOp: _unary(np.arccosh),
    math.AsinOp: _unary(np.arcsin),
    math.AsinhOp: _unary(np.arcsinh),
    math.AtanOp: _unary(np.arctan),
    math.AtanhOp: _unary(np.arctanh),
    math.Atan2Op: _binary(np.arctan2),
    math.CbrtOp: _unary(np.cbrt),
    math.CeilOp: _unary(np.ceil),
    math.CopySignOp: _binary(np.copysign),
    math.CosOp: _unary(np.cos),
    math.CoshOp: _unary(np.cosh),
    math.ErfOp: _unary(_erf),
    math.ExpOp: _unary(np.exp),
    math.Exp2Op: _unary(np.exp2),
    math.ExpM1Op: _unary(np.expm1),
    math.FloorOp: _unary(np.floor),
    math.FmaOp: lambda op, a, b, c: a * b + c,
    math.FPowIOp: _binary(np.power),
    math.IPowIOp: _binary(np.power),
    math.LogOp: _unary(np.log),
    math.Log10Op: _unary(np.log10),
    math.Log1pOp: _unary(np.log1p),
    math.Log2Op: _unary(np.log2),
    math.PowFOp: _binary(np.power),
    math.RoundOp: _unary(_round_half_away),
    math.RoundEvenOp: _unary(np.rint),
    math.RsqrtOp: _unary(lambda a: 1 / np.sqrt(a)),
    math.SinOp: _unary(np.sin),
    math.SinhOp: _unary(np.sinh),
    math.SqrtOp: _unary(np.sqrt),
    math.TanOp: _unary(np.tan),
    math.TanhOp: _unary(np.tanh),
    math.TruncOp: _unary(np.trunc),
}
"""numpy semantics of elementwise ops, on arrays already in their operands' dtypes."""


def _run_elementwise(fn: Fn, op: Operation, args: tuple[Any, ...]) -> tuple[Any, ...]:
    arrays = [np.asarray(a, dtype=dtype_of(v.type)) for a, v in zip(args, op.operands, strict=True)]
    with np.errstate(all="ignore"):  # MLIR gives inf / nan quietly, casts included
        results = fn(op, *arrays)
        results = results if isinstance(results, tuple) else (results,)
        out = [
            np.asarray(r).astype(dtype_of(v.type), copy=False)
            for r, v in zip(results, op.results, strict=True)
        ]
    if not any(isinstance(a, np.ndarray) for a in args):
        return tuple(r.item() if r.ndim == 0 else r for r in out)  # scalars stay Python values
    return tuple(out)


def _elementwise_impl(op_type: type[Operation], fn: Fn) -> Any:
    def run(
        self: InterpreterFunctions, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        return _run_elementwise(fn, op, args)

    return impl(op_type)(run)


class NumpyArithFunctions(InterpreterFunctions):
    """`arith` and `math` ops on numpy arrays or scalars, and `cf.assert`.

    Registered over xDSL's `ArithFunctions` (which keeps `arith.constant` of scalars). A result
    computed from scalars only is a Python scalar again, rounded to its MLIR type.
    """

    @impl(cf.AssertOp)
    def run_assert(self, interpreter: Interpreter, op: cf.AssertOp, args: tuple[Any, ...]):
        if not np.all(args[0]):
            raise InterpretationError(f"cf.assert failed: {op.msg.data}")
        return ()


for _op_type, _fn in _ELEMENTWISE.items():
    setattr(
        NumpyArithFunctions,
        f"run_{_op_type.name.replace('.', '_')}",
        _elementwise_impl(_op_type, _fn),
    )
register_impls(NumpyArithFunctions)


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------


@register_impls
class TensorConstantFunctions(InterpreterFunctions):
    """`arith.constant` that also yields tensors and vectors, as numpy arrays."""

    def __init__(self, ctx: Context | None = None) -> None:
        self.ctx = ctx
        self.scalars = ArithFunctions()

    @impl(arith.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: arith.ConstantOp, args: tuple[()]):
        if not isinstance(op.result.type, TensorType | VectorType):
            return self.scalars.run_constant(interpreter, op, args).values
        value = op.value
        if isinstance(value, DenseIntOrFPElementsAttr):  # needs no context
            return (dense_array(value),)
        try:  # without a context: the active storage (see `using_storage`)
            return (constant_array(self.ctx, value),)
        except ElementsError as e:
            raise InterpretationError(f"cannot read constant {value}: {e}") from None


# --------------------------------------------------------------------------------------------
# Regions run on arrays
# --------------------------------------------------------------------------------------------


def eval_block(
    interpreter: Interpreter,
    owner: str,
    block: Block,
    arguments: dict[BlockArgument, Any],
    skip: set[Operation],
    wanted: Sequence[SSAValue],
) -> list[Any]:
    """Run the ops of `block` but its terminator and those in `skip`; the values of `wanted`.

    Values defined outside the block are read from the interpreter's environment.
    """
    interpreter.push_scope(owner)
    try:
        interpreter.set_values(arguments.items())
        for op in block.ops:
            if op is block.last_op:
                break
            if op in skip:
                continue
            try:
                results = interpreter.run_op(op, interpreter.get_values(op.operands))
            except InterpretationError as e:
                raise InterpretationError(f"{owner}: cannot evaluate '{op.name}': {e}") from e
            interpreter.set_values(zip(op.results, results, strict=True))
        return list(interpreter.get_values(wanted))
    finally:
        interpreter.pop_scope()

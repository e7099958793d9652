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

    >>> (y,) = run_function(module, "main", x, ctx=ctx)      # doctest: +SKIP
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from math import prod
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from xdsl.context import Context
from xdsl.dialects import arith, cf, func, math, tensor
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    ModuleOp,
    Signedness,
    TensorType,
    VectorType,
)
from xdsl.dialects.linalg import ops as linalg
from xdsl.dialects.linalg.abstract_ops import ConvOperation
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Attribute, Block, BlockArgument, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir import reference
from pconv_mlir.dialects.pconv import Conv2dOp, FkwConv2dOp, window_of
from pconv_mlir.elements import dense_array
from pconv_mlir.frontend import constant_array

# --------------------------------------------------------------------------------------------
# pconv
# --------------------------------------------------------------------------------------------


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
        fkw = reference.Fkw(offset, reorder, index, stride, weight)
        return (reference.fkw_conv2d(x, fkw, bias, op.patterns.patterns, **window_of(op)),)


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


@cache
def _dtype(type_: Attribute) -> np.dtype[Any]:
    """The numpy dtype holding values of MLIR type `type_` (of its elements, for shaped types).

    bf16 is computed as float32; i1 is bool; signless integers are signed.
    """
    if isinstance(type_, TensorType | VectorType):
        type_ = type_.get_element_type()
    match type_:
        case Float16Type():
            return np.dtype(np.float16)
        case Float32Type() | BFloat16Type():
            return np.dtype(np.float32)
        case Float64Type():
            return np.dtype(np.float64)
        case IndexType():
            return np.dtype(np.int64)
        case IntegerType():
            width = type_.width.data
            if width == 1:
                return np.dtype(np.bool_)
            if width not in (8, 16, 32, 64):
                raise InterpretationError(f"no numpy type holds {type_} values")
            kind = "u" if type_.signedness.data == Signedness.UNSIGNED else "i"
            return np.dtype(f"{kind}{width // 8}")
    raise InterpretationError(f"no numpy type holds {type_} values")


def _unsigned(a: np.ndarray) -> np.ndarray:
    """`a`'s bits as unsigned integers (what the `ui` arith ops compute on)."""
    return a.astype(f"u{a.dtype.itemsize}") if a.dtype.kind == "i" else a


def _mixed(static: Sequence[int], dynamic: Sequence[Any]) -> list[int]:
    """Static values with each `DYNAMIC_INDEX` replaced by the next dynamic operand value."""
    values = iter(dynamic)
    return [int(next(values)) if s == DYNAMIC_INDEX else s for s in static]


def _shape(type_: Attribute, dynamic: Sequence[Any] = ()) -> tuple[int, ...]:
    assert isinstance(type_, TensorType | VectorType)
    return tuple(_mixed(type_.get_shape(), dynamic))


# --------------------------------------------------------------------------------------------
# arith, math, cf: elementwise on scalars and arrays
# --------------------------------------------------------------------------------------------

_Fn = Callable[..., Any]


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


_CMPI: dict[int, _Fn] = {
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
    return (a & 1).astype(np.bool_) if _dtype(op.result.type) == np.bool_ else a


def _bitcast(op: arith.BitcastOp, a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(_dtype(op.result.type))


def _binary(fn: _Fn) -> _Fn:
    return lambda op, a, b: fn(a, b)


def _unary(fn: _Fn) -> _Fn:
    return lambda op, a: fn(a)


def _on_unsigned(fn: _Fn) -> _Fn:
    return lambda op, *args: fn(*(_unsigned(a) for a in args))


def _same(op: Operation, a: np.ndarray) -> np.ndarray:
    return a  # the result dtype conversion does the cast


_ELEMENTWISE: dict[type[Operation], _Fn] = {
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


def _run_elementwise(fn: _Fn, op: Operation, args: tuple[Any, ...]) -> tuple[Any, ...]:
    arrays = [np.asarray(a, dtype=_dtype(v.type)) for a, v in zip(args, op.operands, strict=True)]
    with np.errstate(all="ignore"):  # MLIR gives inf / nan quietly, casts included
        results = fn(op, *arrays)
        results = results if isinstance(results, tuple) else (results,)
        out = [
            np.asarray(r).astype(_dtype(v.type), copy=False)
            for r, v in zip(results, op.results, strict=True)
        ]
    if not any(isinstance(a, np.ndarray) for a in args):
        return tuple(r.item() if r.ndim == 0 else r for r in out)  # scalars stay Python values
    return tuple(out)


def _elementwise_impl(op_type: type[Operation], fn: _Fn) -> Any:
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
# Regions run on arrays
# --------------------------------------------------------------------------------------------


def _eval_block(
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


# --------------------------------------------------------------------------------------------
# tensor
# --------------------------------------------------------------------------------------------


def _slices(offsets: Sequence[int], sizes: Sequence[int], strides: Sequence[int]) -> tuple:
    return tuple(
        slice(o, o + (n - 1) * s + 1 if n else o, s)
        for o, n, s in zip(offsets, sizes, strides, strict=True)
    )


def _slice_args(
    op: tensor.ExtractSliceOp | tensor.InsertSliceOp, args: Sequence[Any]
) -> tuple[tuple, list[int]]:
    """The numpy slices of an extract/insert_slice (`args`: its offset, size, stride operands)."""
    n_off, n_size = len(op.offsets), len(op.sizes)
    offsets = _mixed(op.static_offsets.get_values(), args[:n_off])
    sizes = _mixed(op.static_sizes.get_values(), args[n_off : n_off + n_size])
    strides = _mixed(op.static_strides.get_values(), args[n_off + n_size :])
    return _slices(offsets, sizes, strides), sizes


@register_impls
class TensorFunctions(InterpreterFunctions):
    """`tensor` ops on numpy arrays. A result may share memory with an operand (a reshape),
    but no implementation writes into an operand."""

    @impl(tensor.EmptyOp)
    def run_empty(self, interpreter: Interpreter, op: tensor.EmptyOp, args: tuple[Any, ...]):
        return (np.zeros(_shape(op.tensor.type, args), _dtype(op.tensor.type)),)

    @impl(tensor.PadOp)
    def run_pad(self, interpreter: Interpreter, op: tensor.PadOp, args: tuple[Any, ...]):
        source = np.asarray(args[0])
        n_low = len(op.low)
        low = _mixed(op.static_low.get_values(), args[1 : 1 + n_low])
        high = _mixed(op.static_high.get_values(), args[1 + n_low :])
        if min(low + high, default=0) < 0:
            raise InterpretationError(f"tensor.pad: negative padding {low} {high}")
        shape = tuple(s + lo + hi for s, lo, hi in zip(source.shape, low, high, strict=True))
        block = op.region.block
        indices = {
            arg: np.arange(n).reshape([n if d == i else 1 for d in range(len(shape))])
            for i, (arg, n) in enumerate(zip(block.args, shape, strict=True))
        }
        (value,) = _eval_block(interpreter, op.name, block, indices, set(), block.last_op.operands)
        out = np.empty(shape, _dtype(op.result.type))
        out[...] = value
        out[tuple(slice(lo, lo + s) for lo, s in zip(low, source.shape, strict=True))] = source
        return (out,)

    @impl(tensor.CollapseShapeOp)
    def run_collapse_shape(
        self, interpreter: Interpreter, op: tensor.CollapseShapeOp, args: tuple[Any, ...]
    ):
        source = np.asarray(args[0])
        groups = [[e.value.data for e in group.data] for group in op.reassociation.data]
        return (source.reshape([prod(source.shape[i] for i in group) for group in groups]),)

    @impl(tensor.ExpandShapeOp)
    def run_expand_shape(
        self, interpreter: Interpreter, op: tensor.ExpandShapeOp, args: tuple[Any, ...]
    ):
        shape = _mixed(op.static_output_shape.get_values(), args[1:])
        return (np.asarray(args[0]).reshape(shape),)

    @impl(tensor.ExtractSliceOp)
    def run_extract_slice(
        self, interpreter: Interpreter, op: tensor.ExtractSliceOp, args: tuple[Any, ...]
    ):
        slices, sizes = _slice_args(op, args[1:])
        part = np.asarray(args[0])[slices]
        rank = len(op.result.type.get_shape())
        if part.ndim != rank:  # rank-reducing: drop unit dimensions
            shape = [d for d in op.result.type.get_shape()]
            if DYNAMIC_INDEX in shape:
                shape = list(part.shape)
                while len(shape) > rank:
                    shape.remove(1)
            part = part.reshape(shape)
        return (part,)

    @impl(tensor.InsertSliceOp)
    def run_insert_slice(
        self, interpreter: Interpreter, op: tensor.InsertSliceOp, args: tuple[Any, ...]
    ):
        source, dest = np.asarray(args[0]), np.array(args[1], copy=True)
        slices, _ = _slice_args(op, args[2:])
        dest[slices] = source.reshape(dest[slices].shape)
        return (dest,)

    @impl(tensor.CastOp)
    def run_cast(self, interpreter: Interpreter, op: tensor.CastOp, args: tuple[Any, ...]):
        source = np.asarray(args[0])
        target = op.dest.type
        if isinstance(target, TensorType):
            shape = target.get_shape()
            if len(shape) != source.ndim or any(
                d not in (DYNAMIC_INDEX, s) for d, s in zip(shape, source.shape, strict=True)
            ):
                raise InterpretationError(f"tensor.cast: a {source.shape} tensor is not a {target}")
        return (source,)

    @impl(tensor.DimOp)
    def run_dim(self, interpreter: Interpreter, op: tensor.DimOp, args: tuple[Any, ...]):
        return (np.shape(args[0])[int(args[1])],)

    @impl(tensor.ExtractOp)
    def run_extract(self, interpreter: Interpreter, op: tensor.ExtractOp, args: tuple[Any, ...]):
        value = np.asarray(args[0])[tuple(args[1:])]  # array indices: a gather
        return (value if isinstance(value, np.ndarray) else value.item(),)

    @impl(tensor.InsertOp)
    def run_insert(self, interpreter: Interpreter, op: tensor.InsertOp, args: tuple[Any, ...]):
        dest = np.array(args[1], copy=True)
        dest[tuple(args[2:])] = args[0]
        return (dest,)

    @impl(tensor.FromElementsOp)
    def run_from_elements(
        self, interpreter: Interpreter, op: tensor.FromElementsOp, args: tuple[Any, ...]
    ):
        return (np.array(args, _dtype(op.result.type)).reshape(_shape(op.result.type)),)

    @impl(tensor.SplatOp)
    def run_splat(self, interpreter: Interpreter, op: tensor.SplatOp, args: tuple[Any, ...]):
        return (np.full(_shape(op.result.type, args[1:]), args[0], _dtype(op.result.type)),)

    @impl(tensor.ReshapeOp)
    def run_reshape(self, interpreter: Interpreter, op: tensor.ReshapeOp, args: tuple[Any, ...]):
        return (np.asarray(args[0]).reshape([int(d) for d in np.asarray(args[1])]),)

    @impl(tensor.ConcatOp)
    def run_concat(self, interpreter: Interpreter, op: tensor.ConcatOp, args: tuple[Any, ...]):
        return (np.concatenate([np.asarray(a) for a in args], axis=op.dim.value.data),)


# --------------------------------------------------------------------------------------------
# linalg: operands as views over the iteration space
# --------------------------------------------------------------------------------------------

_Linear = tuple[dict[int, int], int]
"""An affine expression `sum(coefficient * d_dim) + constant` as ({dim: coefficient}, constant)."""


def _linear(expr: AffineExpr) -> _Linear | None:
    """`expr` as a linear form, or None (mod, floordiv, ceildiv, symbols)."""
    match expr:
        case AffineDimExpr():
            return {expr.position: 1}, 0
        case AffineConstantExpr():
            return {}, expr.value
        case AffineBinaryOpExpr(kind=AffineBinaryOpKind.Add):
            lhs, rhs = _linear(expr.lhs), _linear(expr.rhs)
            if lhs is None or rhs is None:
                return None
            coefficients = dict(lhs[0])
            for d, c in rhs[0].items():
                coefficients[d] = coefficients.get(d, 0) + c
            return coefficients, lhs[1] + rhs[1]
        case AffineBinaryOpExpr(kind=AffineBinaryOpKind.Mul):
            lhs, rhs = _linear(expr.lhs), _linear(expr.rhs)
            if lhs is None or rhs is None:
                return None
            if rhs[0]:
                lhs, rhs = rhs, lhs
            if rhs[0]:
                return None  # d_i * d_j
            return {d: c * rhs[1] for d, c in lhs[0].items()}, lhs[1] * rhs[1]
    return None


def _evaluate(owner: str, expr: AffineExpr, grids: Sequence[np.ndarray]) -> Any:
    """`expr` on broadcastable index arrays (one per loop)."""
    match expr:
        case AffineDimExpr():
            return grids[expr.position]
        case AffineConstantExpr():
            return expr.value
        case AffineBinaryOpExpr():
            lhs, rhs = _evaluate(owner, expr.lhs, grids), _evaluate(owner, expr.rhs, grids)
            match expr.kind:
                case AffineBinaryOpKind.Add:
                    return lhs + rhs
                case AffineBinaryOpKind.Mul:
                    return lhs * rhs
                case AffineBinaryOpKind.Mod:
                    return np.mod(lhs, rhs)
                case AffineBinaryOpKind.FloorDiv:
                    return np.floor_divide(lhs, rhs)
                case AffineBinaryOpKind.CeilDiv:
                    return -np.floor_divide(-lhs, rhs)
    raise InterpretationError(f"{owner}: cannot evaluate the affine expression {expr}")


def _loop_ranges(owner: str, maps: Sequence[AffineMap], shapes: Sequence[tuple[int, ...]]):
    """The extent of every loop, read from the operand dimensions indexed by one bare `d_i`."""
    ranges: dict[int, tuple[int, int]] = {}  # loop -> (extent, operand)
    for operand, (amap, shape) in enumerate(zip(maps, shapes, strict=True)):
        if len(amap.results) != len(shape):
            raise InterpretationError(
                f"{owner}: operand #{operand} has rank {len(shape)}, its indexing map "
                f"{len(amap.results)} results"
            )
        for expr, extent in zip(amap.results, shape, strict=True):
            if isinstance(expr, AffineDimExpr):
                known = ranges.setdefault(expr.position, (extent, operand))
                if known[0] != extent:
                    raise InterpretationError(
                        f"{owner}: loop d{expr.position} has extent {known[0]} from operand "
                        f"#{known[1]} but {extent} from operand #{operand}"
                    )
    num_dims = maps[0].num_dims
    missing = [f"d{d}" for d in range(num_dims) if d not in ranges]
    if missing:
        raise InterpretationError(f"{owner}: cannot infer the extent of loop {', '.join(missing)}")
    return tuple(ranges[d][0] for d in range(num_dims))


def _view(
    owner: str, operand: int, array: np.ndarray, amap: AffineMap, ranges: Sequence[int]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """`array` indexed by `amap` over the loops: (values, loops), one axis per loop it uses.

    Linear maps (projections, permutations, `d_i * s + d_j * t + c`, constants) give a strided
    read-only view; other maps a gather.
    """
    if array.ndim == 0:
        return array, ()
    loops = tuple(sorted(set().union(*(expr.used_dims() for expr in amap.results))))
    forms = [_linear(expr) for expr in amap.results]
    linear = [form for form in forms if form is not None]
    if len(linear) < len(forms):  # mod, floordiv, ceildiv: gather
        grids = [np.zeros(1, np.int64)] * len(ranges)
        for axis, d in enumerate(loops):
            grids[d] = np.arange(ranges[d]).reshape(
                [-1 if a == axis else 1 for a in range(len(loops))]
            )
        shape = [ranges[d] for d in loops]
        index = [np.broadcast_to(_evaluate(owner, e, grids), shape) for e in amap.results]
        _check_bounds(owner, operand, array, amap, [(int(i.min()), int(i.max())) for i in index])
        return array[tuple(index)], loops
    bounds = []
    for coefficients, constant in linear:
        steps = [c * (ranges[d] - 1) for d, c in coefficients.items()]
        bounds.append(
            (constant + sum(min(0, s) for s in steps), constant + sum(max(0, s) for s in steps))
        )
    _check_bounds(owner, operand, array, amap, bounds)
    origin = array[tuple(slice(constant, None) for _, constant in linear)]
    strides = [
        sum(c.get(d, 0) * s for (c, _), s in zip(linear, array.strides, strict=True)) for d in loops
    ]
    return as_strided(origin, [ranges[d] for d in loops], strides, writeable=False), loops


def _check_bounds(
    owner: str, operand: int, array: np.ndarray, amap: AffineMap, bounds: list[tuple[int, int]]
) -> None:
    for k, ((low, high), extent) in enumerate(zip(bounds, array.shape, strict=True)):
        if low < 0 or high >= extent:
            raise InterpretationError(
                f"{owner}: operand #{operand} ({array.shape}) is read at {low}..{high} in "
                f"dimension {k} through {amap}"
            )


def _grids(ranges: Sequence[int]) -> list[np.ndarray]:
    """`linalg.index d` over the whole iteration space: an arange along loop d."""
    rank = len(ranges)
    return [
        np.arange(n).reshape([-1 if i == d else 1 for i in range(rank)])
        for d, n in enumerate(ranges)
    ]


def _broadcastable(values: np.ndarray, loops: Sequence[int], ranges: Sequence[int]) -> np.ndarray:
    """`values` with one axis per loop: size 1 along the loops it does not use."""
    return values.reshape([ranges[d] if d in loops else 1 for d in range(len(ranges))])


class _Output(NamedTuple):
    """Where an output is written: `out[index]` has one axis per loop of `loops`, in order."""

    loops: tuple[int, ...]
    index: tuple[slice | int, ...]


def _output(owner: str, k: int, amap: AffineMap, reductions: set[int]) -> _Output:
    loops: list[int] = []
    index: list[slice | int] = []
    for expr in amap.results:
        if isinstance(expr, AffineDimExpr) and expr.position not in loops:
            loops.append(expr.position)
            index.append(slice(None))
        elif isinstance(expr, AffineConstantExpr):
            index.append(expr.value)
        else:
            raise InterpretationError(
                f"{owner}: output #{k} has the indexing map {amap}; only projections, "
                "permutations and constants are supported for outputs"
            )
    if reductions & set(loops):
        raise InterpretationError(f"{owner}: output #{k} is indexed by a reduction loop ({amap})")
    return _Output(tuple(loops), tuple(index))


def _store(
    init: np.ndarray,
    dtype: np.dtype[Any],
    output: _Output,
    values: Any,
    combine: np.ufunc | None = None,
) -> np.ndarray:
    """A copy of `init` with `values` (one axis per loop, maybe of size 1) written through
    `output`, or combined with what is there. Along a loop the output does not use, the last
    iteration's value is the one kept, as when the loops run in order."""
    values = np.asarray(values)
    values = np.asarray(
        values[tuple(slice(None) if d in output.loops else -1 for d in range(values.ndim))]
    )
    order = sorted(output.loops)
    values = values.transpose([order.index(d) for d in output.loops])
    out = np.array(init, dtype=dtype, copy=True)
    if combine is None:
        out[output.index] = values
    else:
        with np.errstate(all="ignore"):
            out[output.index] = combine(out[output.index], values)
    return out


def _contract(
    owner: str,
    operands: Sequence[tuple[np.ndarray, AffineMap]],
    output: _Output,
    ranges: Sequence[int],
) -> np.ndarray:
    """The sum over the loops `output` does not use of the product of `operands`: einsum."""
    letters = string.ascii_letters
    views, subscripts, used = [], [], set()
    for i, (array, amap) in enumerate(operands):
        view, loops = _view(owner, i, array, amap, ranges)
        views.append(view)
        subscripts.append("".join(letters[d] for d in loops))
        used.update(loops)
    kept = [d for d in output.loops if d in used]
    result = np.einsum(
        ",".join(subscripts) + "->" + "".join(letters[d] for d in kept), *views, optimize=True
    )
    unused = [ranges[d] for d in range(len(ranges)) if d not in used and d not in output.loops]
    if unused:  # a loop no operand depends on adds the same product again each iteration
        result = result * prod(unused)
    # back to one axis per loop, size 1 for those missing
    full = [ranges[d] if d in kept else 1 for d in range(len(ranges))]
    order = sorted(kept)
    return result.transpose([kept.index(d) for d in order]).reshape(full)


# --------------------------------------------------------------------------------------------
# linalg: reduction bodies
# --------------------------------------------------------------------------------------------

_COMBINERS: dict[type[Operation], np.ufunc] = {
    arith.AddfOp: np.add,
    arith.MulfOp: np.multiply,
    arith.MaximumfOp: np.maximum,
    arith.MinimumfOp: np.minimum,
    arith.MaxnumfOp: np.fmax,
    arith.MinnumfOp: np.fmin,
    arith.AddiOp: np.add,
    arith.MuliOp: np.multiply,
    arith.MaxSIOp: np.maximum,
    arith.MinSIOp: np.minimum,
    arith.AndIOp: np.bitwise_and,
    arith.OrIOp: np.bitwise_or,
    arith.XOrIOp: np.bitwise_xor,
}
"""Ops that may combine a reduction's accumulator with a value, as numpy reductions."""

_GREATER = {"arith.cmpf": {2, 3, 9, 10}, "arith.cmpi": {4, 5}}  # ogt oge ugt uge / sgt sge
_LESS = {"arith.cmpf": {4, 5, 11, 12}, "arith.cmpi": {2, 3}}  # olt ole ult ule / slt sle


@dataclass
class _Reduction:
    """How one output of a reduction is computed: `value` combined over the reduction loops.

    `combine` None: the last iteration's value is kept. `value` None: the output is its init.
    """

    value: SSAValue | None
    combine: np.ufunc | None


def _select_combiner(select: arith.SelectOp, acc: SSAValue, value: SSAValue) -> np.ufunc | None:
    """max / min for `select(cmp(x, y), p, q)` with {x, y} = {p, q} = {acc, value}."""
    compare = select.cond.owner
    if not isinstance(compare, arith.CmpfOp | arith.CmpiOp):
        return None
    if {compare.lhs, compare.rhs} != {acc, value} or {select.lhs, select.rhs} != {acc, value}:
        return None
    predicate = compare.predicate.value.data
    greater = predicate in _GREATER[compare.name]
    if not greater and predicate not in _LESS[compare.name]:
        return None
    if compare.lhs is acc:  # acc > value means value < acc
        greater = not greater
    if select.lhs is acc:  # picks the accumulator when the comparison holds
        greater = not greater
    return np.maximum if greater else np.minimum


def _dependents(block: Block, value: SSAValue) -> set[Operation]:
    """The ops of `block` (not its terminator) whose result depends on `value`."""
    found: set[Operation] = set()
    frontier = [value]
    while frontier:
        for use in frontier.pop().uses:
            op = use.operation
            while op.parent_block() is not block:  # an op nested in a body op
                parent = op.parent_op()
                assert parent is not None
                op = parent
            if op is not block.last_op and op not in found:
                found.add(op)
                frontier.extend(op.results)
    return found


def _reductions(block: Block, n_inputs: int) -> tuple[list[_Reduction], set[Operation]] | None:
    """How each output of a reduction body is computed, and the ops that touch accumulators;
    None if some output is not one value combined into its accumulator by one op (or by a
    cmpf/cmpi + select max or min)."""
    terminator = block.last_op
    assert terminator is not None
    plans: list[_Reduction] = []
    touched: set[Operation] = set()
    for acc, yielded in zip(block.args[n_inputs:], terminator.operands, strict=True):
        ops = _dependents(block, acc)
        if ops & touched:
            return None  # the accumulators of two outputs meet (an argmax, say)
        touched |= ops
        if yielded is acc:
            plans.append(_Reduction(None, None))
            continue
        if not ops:
            plans.append(_Reduction(yielded, None))
            continue
        combiner = yielded.owner
        if not isinstance(combiner, Operation) or len(combiner.operands) != 2:
            return None
        others = [v for v in combiner.operands if v is not acc]
        if len(others) != 1:
            return None
        value = others[0]
        if ops == {combiner} and type(combiner) in _COMBINERS:
            plans.append(_Reduction(value, _COMBINERS[type(combiner)]))
        elif isinstance(combiner, arith.SelectOp) and ops == {combiner, combiner.cond.owner}:
            combine = _select_combiner(combiner, acc, value)
            if combine is None:
                return None
            plans.append(_Reduction(value, combine))
        else:
            return None
    for plan in plans:
        if plan.value is not None and plan.value.owner in touched:
            return None
    return plans, touched


# --------------------------------------------------------------------------------------------
# linalg ops
# --------------------------------------------------------------------------------------------


def _conv_maps(name: str, strides: Sequence[int], dilations: Sequence[int]) -> list[AffineMap]:
    """The indexing maps (input, filter, output) of the 2-D convolutions, as MLIR defines them."""
    (sh, sw), (dh, dw) = strides, dilations
    match name:
        case "linalg.conv_2d_nchw_fchw":
            return [
                AffineMap.from_callable(
                    lambda n, f, y, x, c, i, j: (n, c, y * sh + i * dh, x * sw + j * dw)
                ),
                AffineMap.from_callable(lambda n, f, y, x, c, i, j: (f, c, i, j)),
                AffineMap.from_callable(lambda n, f, y, x, c, i, j: (n, f, y, x)),
            ]
        case "linalg.conv_2d_nhwc_hwcf" | "linalg.conv_2d_nhwc_fhwc":
            hwcf = name.endswith("hwcf")
            return [
                AffineMap.from_callable(
                    lambda n, y, x, f, i, j, c: (n, y * sh + i * dh, x * sw + j * dw, c)
                ),
                AffineMap.from_callable(
                    lambda n, y, x, f, i, j, c: (i, j, c, f) if hwcf else (f, i, j, c)
                ),
                AffineMap.from_callable(lambda n, y, x, f, i, j, c: (n, y, x, f)),
            ]
        case "linalg.conv_2d_ngchw_fgchw" | "linalg.conv_2d_ngchw_gfchw":
            gf = name.endswith("gfchw")
            return [
                AffineMap.from_callable(
                    lambda n, g, f, y, x, c, i, j: (n, g, c, y * sh + i * dh, x * sw + j * dw)
                ),
                AffineMap.from_callable(
                    lambda n, g, f, y, x, c, i, j: (g, f, c, i, j) if gf else (f, g, c, i, j)
                ),
                AffineMap.from_callable(lambda n, g, f, y, x, c, i, j: (n, g, f, y, x)),
            ]
        case "linalg.conv_2d_nhwgc_gfhwc":
            return [
                AffineMap.from_callable(
                    lambda n, y, x, g, f, i, j, c: (n, y * sh + i * dh, x * sw + j * dw, g, c)
                ),
                AffineMap.from_callable(lambda n, y, x, g, f, i, j, c: (g, f, i, j, c)),
                AffineMap.from_callable(lambda n, y, x, g, f, i, j, c: (n, y, x, g, f)),
            ]
    raise InterpretationError(f"{name} is not supported")


_CONV_OPS = [
    linalg.Conv2DNchwFchwOp,
    linalg.Conv2DNhwc_HwcfOp,
    linalg.Conv2DNhwc_FhwcOp,
    linalg.Conv2DNgchwFgchwOp,
    linalg.Conv2DNgchwGfchwOp,
    linalg.Conv2DNhwgcGfhwcOp,
]

_ELEMENTWISE_NAMED: dict[type[Operation], _Fn] = {
    linalg.AddOp: np.add,
    linalg.SubOp: np.subtract,
    linalg.MulOp: np.multiply,
    linalg.MaxOp: np.maximum,
    linalg.MinOp: np.minimum,
    linalg.ExpOp: np.exp,
    linalg.LogOp: np.log,
    linalg.SqrtOp: np.sqrt,
    linalg.SelectOp: np.where,
    linalg.CopyOp: lambda a: a,
}


def _tensor_results(op: Operation) -> None:
    if not op.results:
        raise InterpretationError(f"{op.name} on memrefs is not supported, only on tensors")


class LinalgFunctions(InterpreterFunctions):
    """`linalg` ops on numpy tensors, vectorised over the iteration space.

    Replaces xDSL's own `LinalgFunctions` (scalar loops on `ShapedArray`, and a wrong
    `conv_2d_nchw_fchw` when channels > 1).
    """

    def __init__(self) -> None:
        # per generic being run, what `linalg.index d` gives: an index array or an int
        self.loops: list[list[Any]] = []

    def structured(
        self,
        interpreter: Interpreter,
        op: Operation,
        maps: Sequence[AffineMap],
        reductions: set[int],
        block: Block,
        args: Sequence[Any],
    ) -> tuple[np.ndarray, ...]:
        """Run a structured op whose payload is `block` (inputs, then outputs, as arguments)."""
        _tensor_results(op)
        owner = op.name
        arrays = [np.asarray(a) for a in args]
        n_inputs = len(arrays) - len(op.results)
        inits = arrays[n_inputs:]
        dtypes = [_dtype(r.type) for r in op.results]
        ranges = _loop_ranges(owner, maps, [a.shape for a in arrays])
        if 0 in ranges:  # no iteration: the outputs are their inits
            return tuple(np.array(i, dtype=t) for i, t in zip(inits, dtypes, strict=True))
        outputs = [_output(owner, k, m, reductions) for k, m in enumerate(maps[n_inputs:])]

        def arguments(count: int) -> dict[BlockArgument, Any]:
            result = {}
            for i, (arg, array, amap) in enumerate(
                zip(block.args[:count], arrays, maps, strict=False)
            ):
                view, loops = _view(owner, i, array, amap, ranges)
                result[arg] = _broadcastable(view, loops, ranges)
            return result

        terminator = block.last_op
        assert terminator is not None
        self.loops.append(_grids(ranges))
        try:
            if not reductions:
                values = _eval_block(
                    interpreter, owner, block, arguments(len(arrays)), set(), terminator.operands
                )
                return tuple(
                    _store(init, dtype, output, np.broadcast_to(value, ranges))
                    for init, dtype, output, value in zip(
                        inits, dtypes, outputs, values, strict=True
                    )
                )
            analysis = _reductions(block, n_inputs)
            if analysis is None:
                accs = self._stepped(
                    interpreter, owner, block, arguments(len(arrays)), n_inputs, reductions, ranges
                )
                return tuple(
                    _store(init, dtype, output, acc)
                    for init, dtype, output, acc in zip(inits, dtypes, outputs, accs, strict=True)
                )
            plans, touched = analysis
            contraction = self._contraction(block, n_inputs, plans, outputs, reductions, ranges)
            if contraction is not None:
                i, j = contraction
                product = _contract(
                    owner,
                    [
                        (arrays[i].astype(dtypes[0], copy=False), maps[i]),
                        (arrays[j].astype(dtypes[0], copy=False), maps[j]),
                    ],
                    outputs[0],
                    ranges,
                )
                return (_store(inits[0], dtypes[0], outputs[0], product, np.add),)
            wanted = [p.value for p in plans if p.value is not None]
            values = iter(
                _eval_block(interpreter, owner, block, arguments(n_inputs), touched, wanted)
            )
            results = []
            for init, dtype, output, plan in zip(inits, dtypes, outputs, plans, strict=True):
                if plan.value is None:
                    results.append(np.array(init, dtype=dtype))
                    continue
                value = np.broadcast_to(next(values), ranges)
                if plan.combine is None:
                    last = [
                        slice(-1, None) if d in reductions else slice(None)
                        for d in range(len(ranges))
                    ]
                    reduced = value[tuple(last)]
                else:
                    with np.errstate(all="ignore"):
                        axes = tuple(sorted(reductions))
                        reduced = plan.combine.reduce(value, axis=axes, keepdims=True)
                results.append(_store(init, dtype, output, reduced, plan.combine))
            return tuple(results)
        finally:
            self.loops.pop()

    def _stepped(
        self,
        interpreter: Interpreter,
        owner: str,
        block: Block,
        views: dict[BlockArgument, np.ndarray],
        n_inputs: int,
        reductions: set[int],
        ranges: tuple[int, ...],
    ) -> list[np.ndarray]:
        """A reduction whose body is not one combining op (an argmax, say): the body runs once
        per point of the reduction loops, in order, on arrays over the parallel loops.

        `views` holds every block argument over the loops, the outputs' holding their inits.
        Returns the accumulators, one axis per loop (size 1 along the reduction loops).
        """
        accumulators = block.args[n_inputs:]
        parallel = [1 if d in reductions else n for d, n in enumerate(ranges)]
        dtypes = [_dtype(arg.type) for arg in accumulators]
        accs = [
            np.array(np.broadcast_to(views[arg], parallel), dtype=dtype)
            for arg, dtype in zip(accumulators, dtypes, strict=True)
        ]
        order = sorted(reductions)
        grids = _grids(ranges)
        terminator = block.last_op
        assert terminator is not None
        for point in np.ndindex(*(ranges[d] for d in order)):
            at = dict(zip(order, point, strict=True))
            step: dict[BlockArgument, Any] = {}
            for arg in block.args[:n_inputs]:
                view = views[arg]
                step[arg] = view[
                    tuple(
                        slice(at[d], at[d] + 1) if d in at and n > 1 else slice(None)
                        for d, n in enumerate(view.shape)
                    )
                ]
            step.update(zip(accumulators, accs, strict=True))
            self.loops[-1] = [at.get(d, grid) for d, grid in enumerate(grids)]
            values = _eval_block(interpreter, owner, block, step, set(), terminator.operands)
            accs = [
                np.array(np.broadcast_to(v, parallel), dtype=dtype)
                for v, dtype in zip(values, dtypes, strict=True)
            ]
        return accs

    @staticmethod
    def _contraction(
        block: Block,
        n_inputs: int,
        plans: Sequence[_Reduction],
        outputs: Sequence[_Output],
        reductions: set[int],
        ranges: Sequence[int],
    ) -> tuple[int, int] | None:
        """(i, j) if the body is `out + in_i * in_j` and einsum can compute it."""
        if len(plans) != 1 or plans[0].combine is not np.add or plans[0].value is None:
            return None
        product = plans[0].value.owner
        if not isinstance(product, arith.MulfOp | arith.MuliOp):
            return None
        parallel = {d for d in range(len(ranges)) if d not in reductions}
        if set(outputs[0].loops) != parallel:
            return None
        factors = []
        for v in product.operands:
            if not (isinstance(v, BlockArgument) and v.owner is block and v.index < n_inputs):
                return None
            factors.append(v.index)
        return factors[0], factors[1]

    @impl(linalg.GenericOp)
    def run_generic(self, interpreter: Interpreter, op: linalg.GenericOp, args: tuple[Any, ...]):
        maps = [m.data for m in op.indexing_maps]
        reductions = {d for d, t in enumerate(op.iterator_types) if t.data != IteratorType.PARALLEL}
        return self.structured(interpreter, op, maps, reductions, op.body.block, args)

    @impl(linalg.IndexOp)
    def run_index(self, interpreter: Interpreter, op: linalg.IndexOp, args: tuple[Any, ...]):
        if not self.loops:
            raise InterpretationError("linalg.index outside a linalg.generic")
        return (self.loops[-1][op.dim.value.data],)

    @impl(linalg.ReduceOp)
    def run_reduce(self, interpreter: Interpreter, op: linalg.ReduceOp, args: tuple[Any, ...]):
        rank = len(np.shape(args[0]))
        dims = set(op.dimensions.get_values())
        maps = [
            AffineMap.identity(rank),
            AffineMap(
                rank, 0, tuple(AffineExpr.dimension(d) for d in range(rank) if d not in dims)
            ),
        ]
        return self.structured(interpreter, op, maps, dims, op.region.block, args)

    @impl(linalg.FillOp)
    def run_fill(self, interpreter: Interpreter, op: linalg.FillOp, args: tuple[Any, ...]):
        _tensor_results(op)
        value, init = args
        return (np.full(np.shape(init), value, _dtype(op.res[0].type)),)

    @impl(linalg.BroadcastOp)
    def run_broadcast(
        self, interpreter: Interpreter, op: linalg.BroadcastOp, args: tuple[Any, ...]
    ):
        _tensor_results(op)
        source, init = np.asarray(args[0]), np.asarray(args[1])
        expanded = np.expand_dims(source, tuple(op.dimensions.get_values()))
        return (np.array(np.broadcast_to(expanded, init.shape), dtype=_dtype(op.result[0].type)),)

    @impl(linalg.TransposeOp)
    def run_transpose(
        self, interpreter: Interpreter, op: linalg.TransposeOp, args: tuple[Any, ...]
    ):
        _tensor_results(op)
        moved = np.transpose(np.asarray(args[0]), op.permutation.get_values())
        return (np.array(moved, dtype=_dtype(op.res[0].type)),)

    @impl(linalg.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: linalg.MatmulOp, args: tuple[Any, ...]):
        maps = [m.data for m in op.indexing_maps]
        return self.contraction(op, maps, args)

    def contraction(
        self, op: Operation, maps: Sequence[AffineMap], args: Sequence[Any]
    ) -> tuple[np.ndarray]:
        """`out + a * b` summed over the loops `out` does not use; inputs cast to out's type."""
        _tensor_results(op)
        dtype = _dtype(op.results[0].type)
        a, b, init = (np.asarray(x) for x in args)
        ranges = _loop_ranges(op.name, maps, [a.shape, b.shape, init.shape])
        output = _output(op.name, 0, maps[2], set())
        if 0 in ranges:
            return (np.array(init, dtype=dtype),)
        operands = [(a.astype(dtype, copy=False), maps[0]), (b.astype(dtype, copy=False), maps[1])]
        product = _contract(op.name, operands, output, ranges)
        return (_store(init, dtype, output, product, np.add),)

    def convolution(self, op: Operation, args: Sequence[Any]) -> tuple[np.ndarray]:
        assert isinstance(op, ConvOperation)
        maps = _conv_maps(op.name, op.strides.get_values(), op.dilations.get_values())
        return self.contraction(op, maps, args)

    @impl(linalg.PoolingNchwMaxOp)
    def run_pooling_nchw_max(
        self, interpreter: Interpreter, op: linalg.PoolingNchwMaxOp, args: tuple[Any, ...]
    ):
        _tensor_results(op)
        (sh, sw), (dh, dw) = op.strides.get_values(), op.dilations.get_values()
        maps = [
            AffineMap.from_callable(
                lambda n, c, y, x, i, j: (n, c, y * sh + i * dh, x * sw + j * dw)
            ),
            AffineMap.from_callable(lambda n, c, y, x, i, j: (i, j)),
            AffineMap.from_callable(lambda n, c, y, x, i, j: (n, c, y, x)),
        ]
        source, window, init = (np.asarray(a) for a in args)
        ranges = _loop_ranges(op.name, maps, [source.shape, window.shape, init.shape])
        dtype = _dtype(op.res[0].type)
        if 0 in ranges:
            return (np.array(init, dtype=dtype),)
        view, loops = _view(op.name, 0, source, maps[0], ranges)
        values = _broadcastable(view, loops, ranges)
        reduced = np.maximum.reduce(values.astype(dtype, copy=False), axis=(4, 5), keepdims=True)
        output = _output(op.name, 0, maps[2], {4, 5})
        return (_store(init, dtype, output, reduced, np.maximum),)


def _convolution_impl(op_type: type[Operation]) -> Any:
    def run(
        self: LinalgFunctions, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        return self.convolution(op, args)

    return impl(op_type)(run)


def _elementwise_named_impl(op_type: type[Operation], fn: _Fn) -> Any:
    def run(
        self: LinalgFunctions, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        _tensor_results(op)
        *inputs, init = (np.asarray(a) for a in args)
        with np.errstate(all="ignore"):
            value = fn(*inputs)
        return (np.array(np.broadcast_to(value, init.shape), dtype=_dtype(op.results[0].type)),)

    return impl(op_type)(run)


for _op_type in _CONV_OPS:
    setattr(LinalgFunctions, f"run_{_op_type.name[7:]}", _convolution_impl(_op_type))
for _op_type, _fn in _ELEMENTWISE_NAMED.items():
    setattr(LinalgFunctions, f"run_{_op_type.name[7:]}", _elementwise_named_impl(_op_type, _fn))
register_impls(LinalgFunctions)


# --------------------------------------------------------------------------------------------
# Constants, the interpreter
# --------------------------------------------------------------------------------------------


@register_impls
class TensorConstantFunctions(InterpreterFunctions):
    """`arith.constant` that also yields tensors and vectors, as numpy arrays."""

    def __init__(self, ctx: Context | None = None):
        self.ctx = ctx
        self.scalars = ArithFunctions()

    @impl(arith.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: arith.ConstantOp, args: tuple[()]):
        if not isinstance(op.result.type, TensorType | VectorType):
            return self.scalars.run_constant(interpreter, op, args).values
        value = op.value
        if isinstance(value, DenseIntOrFPElementsAttr):  # needs no context
            return (dense_array(value),)
        if self.ctx is not None:
            return (constant_array(self.ctx, value),)
        raise InterpretationError(f"cannot read constant {value} without its context")


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
        return np.asarray(value, dtype=_dtype(type_))
    if isinstance(type_, IntegerType | IndexType | Float16Type | Float32Type | Float64Type):
        return np.asarray(value, dtype=_dtype(type_)).item()
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

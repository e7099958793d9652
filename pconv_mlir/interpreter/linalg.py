"""The linalg engine: `linalg` ops on numpy tensors, vectorised over the iteration space.

Operands are views built from their indexing maps, reductions are numpy reductions and
`acc + a * b` bodies are `np.einsum` contractions (see the package docstring); the named ops
(reduce, matmul, the convolutions, pooling, the elementwise ones) run on the same machinery.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from xdsl.dialects import arith
from xdsl.dialects.linalg import ops as linalg
from xdsl.dialects.linalg.abstract_ops import ConvOperation
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)
from xdsl.utils.exceptions import InterpretationError

from pconv_mlir.interpreter.arith import Fn, dtype_of, eval_block

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

_ELEMENTWISE_NAMED: dict[type[Operation], Fn] = {
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
        dtypes = [dtype_of(r.type) for r in op.results]
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
                values = eval_block(
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
                eval_block(interpreter, owner, block, arguments(n_inputs), touched, wanted)
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
        dtypes = [dtype_of(arg.type) for arg in accumulators]
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
            values = eval_block(interpreter, owner, block, step, set(), terminator.operands)
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
        return (np.full(np.shape(init), value, dtype_of(op.res[0].type)),)

    @impl(linalg.BroadcastOp)
    def run_broadcast(
        self, interpreter: Interpreter, op: linalg.BroadcastOp, args: tuple[Any, ...]
    ):
        _tensor_results(op)
        source, init = np.asarray(args[0]), np.asarray(args[1])
        expanded = np.expand_dims(source, tuple(op.dimensions.get_values()))
        return (np.array(np.broadcast_to(expanded, init.shape), dtype=dtype_of(op.result[0].type)),)

    @impl(linalg.TransposeOp)
    def run_transpose(
        self, interpreter: Interpreter, op: linalg.TransposeOp, args: tuple[Any, ...]
    ):
        _tensor_results(op)
        moved = np.transpose(np.asarray(args[0]), op.permutation.get_values())
        return (np.array(moved, dtype=dtype_of(op.res[0].type)),)

    @impl(linalg.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: linalg.MatmulOp, args: tuple[Any, ...]):
        maps = [m.data for m in op.indexing_maps]
        return self.contraction(op, maps, args)

    def contraction(
        self, op: Operation, maps: Sequence[AffineMap], args: Sequence[Any]
    ) -> tuple[np.ndarray]:
        """`out + a * b` summed over the loops `out` does not use; inputs cast to out's type."""
        _tensor_results(op)
        dtype = dtype_of(op.results[0].type)
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
        dtype = dtype_of(op.res[0].type)
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


def _elementwise_named_impl(op_type: type[Operation], fn: Fn) -> Any:
    def run(
        self: LinalgFunctions, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        _tensor_results(op)
        *inputs, init = (np.asarray(a) for a in args)
        with np.errstate(all="ignore"):
            value = fn(*inputs)
        return (np.array(np.broadcast_to(value, init.shape), dtype=dtype_of(op.results[0].type)),)

    return impl(op_type)(run)


for _op_type in _CONV_OPS:
    setattr(LinalgFunctions, f"run_{_op_type.name[7:]}", _convolution_impl(_op_type))
for _op_type, _fn in _ELEMENTWISE_NAMED.items():
    setattr(LinalgFunctions, f"run_{_op_type.name[7:]}", _elementwise_named_impl(_op_type, _fn))
register_impls(LinalgFunctions)

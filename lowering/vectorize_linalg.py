"""Vector code for the linalg ops of a CNN that are not pattern convs, the way IREE makes it.

`convert-pconv-to-loops` vectorises the 3x3 pattern convs; everything else torch-mlir emits
(1x1, 7x7 and grouped convs, depthwise convs, max/sum pooling, linear layers, element-wise tails,
global average pooling) is linalg on tensors. This module makes it vector code with upstream
MLIR: each op is first put in a *canonical form* whose indexing maps are projected
permutations (so upstream's linalg vectoriser takes it), tagged `pconv.vectorize = "<kind>"`;
then a transform-dialect script, a pure function of the kinds present and the machine, shares
the outer loops of every tagged op that is large enough between threads (an `scf.forall` over
whole register tiles: images, channels, rows, pixel or filter tiles), tiles the op to a register
tile, peels the partial tiles, tiles its reduction to 1 and keeps the accumulators in registers
across it, vectorises, and lowers the vector ops (contractions to outer products and FMAs).
The element-wise tails of a conv (its bias, ReLU, ReLU6, a residual add, ...) are its
epilogues, the way IREE fuses them: the last op of the chain is tiled (shared between threads,
then to the conv's register tile) and the conv, its init and the tails before it are fused into
each of its loops, so the tails work on the conv's accumulators in registers before the one
store. `mlir-opt-22 --transform-interpreter` runs it on tensors, before bufferization; after it,
`llvm_pipeline` makes each `scf.forall` an `scf.parallel`, so an OpenMP loop with threads and a
plain loop without. Whatever is not tagged stays for `convert-linalg-to-loops`.

    >>> kinds = prepare_linalg(module)                      # in place: canonical forms, tags
    >>> script = transform_script(kinds, machine("host"))   # the transform library, as text
    >>> unvectorised_ops(module)                            # what falls back to scalar loops
    [('linalg.generic', 'model.mlir:12:5')]

`pconv-opt -p 'pconv-vectorize-linalg{machine=aarch64}'` (`VectorizeLinalgPass`) prints the
canonical forms; test/lowering/vectorize-linalg.mlir has one of each kind.

The canonical forms (N batch, C/F channels, OH x OW output, KH x KW window, stride s):

- `conv:B:S`, from `linalg.conv_2d_nchw_fchw` (any KxK) and `linalg.conv_2d_ngchw_gfchw` (B=2,
  groups): `out[n, f, oh, ow] += sum_taps w_t[f, c] * x_t[n, c, oh, ow]`, one input per tap
  (kh, kw): `x_t` is a view of the input shifted by the tap; a stride is undone by splitting
  the input into its stride phases first (`deinterleave`). A 1x1 conv over the whole image has
  S=1 spatial dim (the pixels flattened: a matmul).
- `conv:0:1`, from `linalg.matmul`: `out[m, n] += a[m, k] * b[k, n]`.
- `dot`, from a `linalg.matmul` whose `b` is a `linalg.transpose` (a linear layer):
  `part[m, n, j] += a[m, i, j] * w[n, i, j]` over `k = i * J + j`, then a `reduction` of `part`
  over `j`: both operands read along `k`, the weights in place.
- `transpose:2`, from the 2-D `linalg.transpose` of a linear layer whose K has no such split
  (it stays a `conv:0:1` matmul): `wt[k, n] = w[n, k]`, in lanes x lanes blocks.
- `window:4`, from depthwise convs (the generic of `depthwise_conv_2d_nchw_chw`),
  `linalg.pooling_nchw_max` and sum-pooling generics: all-parallel,
  `out[n, c, oh, ow] = acc (+|max) taps of x_t[n, c, oh, ow] (* w_t[c])`.
- `deinterleave:R`, made by the conv and window rewrites for a stride > 1:
  `xq[.., a, hq, b, wq] = x[.., hq * sh + a, wq * sw + b]` as a transpose of a reshape.
- `elementwise:R`, from all-parallel generics (ReLU, clamp, SiLU, Hardswish, add, BatchNorm),
  `linalg.fill` and `linalg.broadcast`: trailing dims that every operand reads whole (or not
  at all) collapsed into one.
- `reduction:R:K`, from generics reducing their K trailing dims (global average pooling): as
  they are.

Chains: a `conv:1:1`, `conv:1:2` or `window:4` form (`FUSABLE`) and the element-wise ops that
read it one after the other (each the only reader of the one before) are one chain. Each
element-wise op takes the conv's iteration shape (a 1x1 conv's pixels flattened: (N, F, P)),
reads the op before it directly as its first operand (no reshape in between) and is tagged
`fused:elementwise:R`, but the last, the chain's root: `chain:<n>:<init>:<form>`, n the
element-wise ops of the chain, init the operand of the conv its init is when that is fused too
(the bias broadcast or fill, in the conv's shape, `fused:elementwise:R`; `x` if not). The conv
is `fused:<form>`. A conv with no tail whose init can be fused ends its chain with a copy
(`chain:1:<init>:<form>`), which its first tail replaces.

Tile sizes come from the machine (`VectorTiles`): a conv's register tile is `filters` output
channels x `pixels` output pixels (two vectors), so that its accumulators, one input vector per
tap and a broadcast weight fit the vector registers.

The threads share a kind's leading loops, whole register tiles each (`_Recipe.shares`): a conv
its images and output rows, or, pixels flattened, its tiles of pixels (a small image: of
filters); a `dot` its rows and output tiles; the window ops, stride phases and reductions their
images and channels; element-wise ops all dims but the last (one dim: its vector tiles). A dim
shared by tiles of several iterations is first split after its last whole tile (the rest is a
second op of the same kind), so every tile of the parallel loop has a static shape. An op with
fewer than `PARALLEL_ITERATIONS` tiles in every dim a share offers stays on one thread. A
chain's root is shared and tiled as its conv (without the reduction dim); its rest after a
split is tiled on the calling thread first, so that no op of the chain is read after the
parallel loop it is fused into (`fuse_into_containing_op` would return it whole from there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import prod

from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, func, tensor
from xdsl.dialects.builtin import (
    AffineMapAttr,
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    i64,
)
from xdsl.dialects.func import CallOp
from xdsl.dialects.linalg import ops as linalg
from xdsl.dialects.linalg.attrs import IteratorType, IteratorTypeAttr
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.rewriter import InsertPoint, Rewriter

from pconv_mlir.errors import op_location
from pconv_mlir.lowering.convert_pconv_to_loops import PARALLEL_ITERATIONS
from pconv_mlir.machine import Machine, machine
from pconv_mlir.passes.pconv_profile_layers import BEGIN, END

__all__ = [
    "TAG",
    "VectorTiles",
    "VectorizeLinalgPass",
    "classify",
    "prepare_linalg",
    "transform_script",
    "unvectorised_ops",
    "vector_tiles",
]

TAG = "pconv.vectorize"
"""The discardable attribute naming an op's canonical form (its kind) for the transform script."""

SHARE = "pconv.share"
"""The discardable attribute the transform script sets to the way the threads share an op
(an index into `_Recipe.shares`)."""

REST = "pconv.rest"
"""The discardable attribute the transform script sets on the second part of a split op."""

DOT_K_MULTIPLE = 16
"""A linear layer reads its weights in place (`dot`) when its K is a multiple of this."""

MAX_VECTOR_ELEMENTS = 1024
"""The most elements an untiled vector may hold (a reduction's, a phase split's)."""

# ------------------------------------------------------------------------------------------------
# Tile sizes
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorTiles:
    """The register tiles of one machine, in fp32 lanes and vectors."""

    lanes: int
    """fp32 lanes of a vector register."""
    filters: int
    """Output channels of a conv or matmul register tile (rows of broadcast weights)."""
    pixels: int
    """Output pixels (or matmul columns) of a register tile, a multiple of `lanes`."""
    window_rows: int
    """Output rows of a depthwise or pooling tile."""
    elementwise: int
    """Elements of an element-wise tile."""
    dot_rows: int
    """Outputs of a `dot` tile (each one `pixels` partial sums)."""


def vector_tiles(target: Machine | str) -> VectorTiles:
    """The tiles for `target`: a conv tile of `filters` x 2 vectors accumulators, with a few
    registers left for the input vectors and the broadcast weight (AVX2: 6 x 16, 12 of 16
    registers; NEON and AVX-512: 8 x 2 vectors, 16 of 32)."""
    spec = machine(target)
    lanes = max(1, spec.vector_bits // 32)
    filters = max(1, min(8, (spec.vector_registers - 4) // 2))
    return VectorTiles(
        lanes=lanes,
        filters=filters,
        pixels=2 * lanes,
        window_rows=2,
        elementwise=4 * lanes,
        dot_rows=4,
    )


# ------------------------------------------------------------------------------------------------
# Reading ops: indexing maps, bodies, shapes
# ------------------------------------------------------------------------------------------------


def _linear(expr: AffineExpr) -> tuple[dict[int, int], int] | None:
    """`expr` as ({dim: coefficient}, constant), or None if it is not linear in the dims."""
    if isinstance(expr, AffineDimExpr):
        return {expr.position: 1}, 0
    if isinstance(expr, AffineConstantExpr):
        return {}, expr.value
    if isinstance(expr, AffineBinaryOpExpr):
        lhs, rhs = _linear(expr.lhs), _linear(expr.rhs)
        if lhs is None or rhs is None:
            return None
        if expr.kind == AffineBinaryOpKind.Add:
            coeffs = dict(lhs[0])
            for dim, c in rhs[0].items():
                coeffs[dim] = coeffs.get(dim, 0) + c
            return coeffs, lhs[1] + rhs[1]
        if expr.kind == AffineBinaryOpKind.Mul:
            if not lhs[0]:
                lhs, rhs = rhs, lhs
            if rhs[0]:
                return None
            return {d: c * rhs[1] for d, c in lhs[0].items()}, lhs[1] * rhs[1]
    return None


def _dim(expr: AffineExpr) -> int | None:
    return expr.position if isinstance(expr, AffineDimExpr) else None


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def _static_f32_tensor(value: SSAValue) -> bool:
    type_ = value.type
    return (
        isinstance(type_, TensorType)
        and all(d >= 0 for d in type_.get_shape())
        and str(type_.get_element_type()) == "f32"
    )


def _body_ops(op: linalg.GenericOp) -> list[Operation]:
    return list(op.body.block.ops)


def _is_arg(value: SSAValue, block: Block, index: int) -> bool:
    return value is block.args[index]


def _mul_add(op: linalg.GenericOp, a: int, b: int, acc: int) -> bool:
    """Whether the body is `acc + block arg a * block arg b` (in any operand order)."""
    ops, block = _body_ops(op), op.body.block
    if (
        len(ops) != 3
        or not isinstance(ops[0], arith.MulfOp)
        or not isinstance(ops[1], arith.AddfOp)
    ):
        return False
    mul, add, yield_ = ops
    if {id(mul.lhs), id(mul.rhs)} != {id(block.args[a]), id(block.args[b])}:
        return False
    if {id(add.lhs), id(add.rhs)} != {id(mul.result), id(block.args[acc])}:
        return False
    return yield_.operands[0] is add.result


def _binary(op: linalg.GenericOp, kind: type[Operation], a: int, acc: int) -> bool:
    """Whether the body is `kind(acc, block arg a)` (in either order)."""
    ops, block = _body_ops(op), op.body.block
    if len(ops) != 2 or not isinstance(ops[0], kind):
        return False
    first = ops[0]
    if {id(first.operands[0]), id(first.operands[1])} != {id(block.args[a]), id(block.args[acc])}:
        return False
    return ops[1].operands[0] is first.results[0]


def _ints(attr: Attribute) -> list[int]:
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return [int(v) for v in attr.get_values()]
    return [int(v) for v in attr.get_values()]  # DenseArrayBase


def _maps(op: Operation) -> list[AffineMap]:
    return [m.data for m in op.indexing_maps.data]  # type: ignore[attr-defined]


def _iterators(op: linalg.GenericOp) -> list[str]:
    return [str(it.data) for it in op.iterator_types.data]


# ------------------------------------------------------------------------------------------------
# What an op is: a window op (conv, depthwise, pooling), a matmul, element-wise, a reduction
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A sliding-window op in NCHW (grouped: N G C H W), read from the op that computes it."""

    kind: str
    """`conv`, `depthwise`, `pool_max` or `pool_sum`."""
    x: SSAValue
    """The (already padded) input."""
    w: SSAValue | None
    """Weights: F C KH KW (grouped: G F C KH KW; depthwise: C KH KW); None for pooling."""
    init: SSAValue
    """What the op accumulates into."""
    out_shape: tuple[int, ...]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    grouped: bool = False


def _window_of_named(op: Operation) -> Window | None:
    if isinstance(op, linalg.Conv2DNchwFchwOp | linalg.Conv2DNgchwGfchwOp):
        x, w = op.inputs
        (init,) = op.outputs
        kernel = _shape(w)[-2:]
        kind = "conv"
    elif isinstance(op, linalg.PoolingNchwMaxOp):
        x, window = op.inputs
        (init,) = op.outputs
        w, kernel = None, _shape(window)
        kind = "pool_max"
    else:
        return None
    if not all(_static_f32_tensor(v) for v in (x, init, *([w] if w is not None else []))):
        return None
    strides = _ints(op.strides) if op.strides is not None else [1, 1]  # type: ignore[attr-defined]
    dilations = _ints(op.dilations) if op.dilations is not None else [1, 1]  # type: ignore[attr-defined]
    return Window(
        kind,
        x,
        w,
        init,
        _shape(init),
        (kernel[0], kernel[1]),
        (strides[0], strides[1]),
        (dilations[0], dilations[1]),
        grouped=isinstance(op, linalg.Conv2DNgchwGfchwOp),
    )


def _window_of_generic(op: linalg.GenericOp) -> Window | None:
    """A depthwise conv, sum pooling or max pooling generic in NCHW, as torch-mlir's import
    makes them (`transform.structured.generalize` of the named op)."""
    if len(op.outputs) != 1 or len(op.inputs) != 2 or len(op.results) != 1:
        return None
    values = [*op.inputs, *op.outputs]
    if not all(_static_f32_tensor(v) for v in values):
        return None
    iterators = _iterators(op)
    x_map, second_map, out_map = _maps(op)
    if out_map.num_symbols or out_map.num_dims != len(iterators) or len(out_map.results) != 4:
        return None
    out_dims = [_dim(e) for e in out_map.results]
    if None in out_dims or any(iterators[d] != IteratorType.PARALLEL for d in out_dims):  # type: ignore[index]
        return None
    n, c, oh, ow = out_dims
    reductions = [i for i, it in enumerate(iterators) if it == IteratorType.REDUCTION]
    if len(reductions) != 2 or len(iterators) != 6 or len(x_map.results) != 4:
        return None
    if _dim(x_map.results[0]) != n or _dim(x_map.results[1]) != c:
        return None
    rows, cols = _linear(x_map.results[2]), _linear(x_map.results[3])
    if rows is None or cols is None or rows[1] or cols[1]:
        return None
    kh = [d for d in rows[0] if d != oh]
    kw = [d for d in cols[0] if d != ow]
    if len(kh) != 1 or len(kw) != 1 or {kh[0], kw[0]} != set(reductions):
        return None
    kh_d, kw_d = kh[0], kw[0]
    stride = (rows[0].get(oh, 0), cols[0].get(ow, 0))
    dilation = (rows[0][kh_d], cols[0][kw_d])
    if min(stride) < 1 or min(dilation) < 1:
        return None
    second = [_dim(e) for e in second_map.results]
    x, second_value = op.inputs
    if second == [c, kh_d, kw_d] and _mul_add(op, 0, 1, 2):
        kind, w = "depthwise", second_value
        kernel = _shape(second_value)[1:]
    elif second == [kh_d, kw_d] and _binary(op, arith.AddfOp, 0, 2):
        kind, w, kernel = "pool_sum", None, _shape(second_value)
    elif second == [kh_d, kw_d] and _binary(op, arith.MaximumfOp, 0, 2):
        kind, w, kernel = "pool_max", None, _shape(second_value)
    else:
        return None
    return Window(
        kind, x, w, op.outputs[0], _shape(op.outputs[0]), (kernel[0], kernel[1]), stride, dilation
    )


def window_of(op: Operation) -> Window | None:
    """`op` as a `Window` if it is a conv, depthwise conv or pooling that a vector form exists
    for (static f32 NCHW shapes), else None."""
    if isinstance(op, linalg.GenericOp):
        return _window_of_generic(op)
    return _window_of_named(op)


_MATMUL_MAPS = [
    AffineMap.from_callable(lambda i, j, k: (i, k)),
    AffineMap.from_callable(lambda i, j, k: (k, j)),
    AffineMap.from_callable(lambda i, j, k: (i, j)),
]


def _matmul_operands(op: Operation) -> tuple[SSAValue, SSAValue, SSAValue] | None:
    if not isinstance(op, linalg.MatmulOp) or len(op.inputs) != 2 or len(op.outputs) != 1:
        return None
    maps = op.properties.get("indexing_maps")
    if maps is not None and [m.data for m in maps.data] != _MATMUL_MAPS:  # type: ignore[attr-defined]
        return None  # a matmul with transposed or broadcast operands
    a, b = op.inputs
    (c,) = op.outputs
    if not all(_static_f32_tensor(v) for v in (a, b, c)):
        return None
    return a, b, c


def _transposed_weights(b: SSAValue) -> SSAValue | None:
    """The N x K value whose `linalg.transpose` (permutation [1, 0]) is `b`, if it is one."""
    owner = b.owner
    if isinstance(owner, linalg.TransposeOp) and _ints(owner.permutation) == [1, 0]:
        return owner.inputs[0]
    return None


def _dot_split(k: int, lanes: int) -> int | None:
    """The inner length J of `k = I * J` for a `dot`: a multiple of `lanes` (at most 2 vectors)
    that divides k, else None."""
    for j in (2 * lanes, lanes):
        if k % j == 0:
            return j
    return None


_ELEMENTWISE_DIALECTS = ("arith.", "math.")


def _elementwise_body(op: linalg.GenericOp) -> bool:
    ops = _body_ops(op)
    return all(
        o.name.startswith(_ELEMENTWISE_DIALECTS) and not o.regions for o in ops[:-1]
    ) and isinstance(ops[-1], linalg.YieldOp)


def _is_broadcast_map(amap: AffineMap) -> bool:
    """Results are dims in increasing order, or the constant 0 (a unit dim)."""
    last = -1
    for e in amap.results:
        if isinstance(e, AffineConstantExpr):
            if e.value != 0:
                return False
        elif isinstance(e, AffineDimExpr):
            if e.position <= last:
                return False
            last = e.position
        else:
            return False
    return True


def _elementwise(op: linalg.GenericOp) -> bool:
    if len(op.outputs) != 1 or len(op.results) != 1 or op.library_call is not None:
        return False
    iterators = _iterators(op)
    if any(it != IteratorType.PARALLEL for it in iterators) or not iterators:
        return False
    maps = _maps(op)
    if maps[-1] != AffineMap.identity(len(iterators)) or not _static_f32_or_any(op.outputs[0]):
        return False
    for value, amap in zip(op.inputs, maps[:-1], strict=True):
        if amap.num_symbols or not _is_broadcast_map(amap):
            return False
        if isinstance(value.type, TensorType) and any(d < 0 for d in _shape(value)):
            return False
    return _elementwise_body(op)


def _static_f32_or_any(value: SSAValue) -> bool:
    type_ = value.type
    return isinstance(type_, TensorType) and all(d >= 0 for d in type_.get_shape())


def _reduction(op: linalg.GenericOp) -> bool:
    """Reduces its trailing dims (at most `MAX_VECTOR_ELEMENTS` elements at a time), reading
    whole inputs and writing the parallel dims (or unit dims) of its output."""
    if len(op.outputs) != 1 or len(op.results) != 1 or not _elementwise_body(op):
        return False
    iterators = _iterators(op)
    n_par = sum(1 for it in iterators if it == IteratorType.PARALLEL)
    if n_par == len(iterators) or iterators[:n_par] != [IteratorType.PARALLEL] * n_par:
        return False
    maps = _maps(op)
    ident = AffineMap.identity(len(iterators))
    if any(m != ident for m in maps[:-1]):
        return False
    out = maps[-1]
    if not _is_broadcast_map(out) or any(
        isinstance(e, AffineDimExpr) and e.position >= n_par for e in out.results
    ):
        return False
    values = [*op.inputs, *op.outputs]
    if not all(_static_f32_or_any(v) for v in values):
        return False
    reduced = prod(_shape(op.inputs[0])[n_par:]) if op.inputs else 0
    return 0 < reduced <= MAX_VECTOR_ELEMENTS


def classify(op: Operation) -> str | None:
    """The vector form `op` gets (`conv`, `matmul`, `dot`, `window`, `elementwise`,
    `reduction`, `transpose`), or None if it falls back to scalar loops."""
    if not op.name.startswith("linalg.") or op.name == "linalg.yield":
        return None
    if not op.results:  # linalg on buffers: the forms are built on tensors
        return None
    if window_of(op) is not None:
        return "conv" if window_of(op).kind == "conv" else "window"  # type: ignore[union-attr]
    if _matmul_operands(op) is not None:
        k = _shape(op.inputs[0])[1]
        dot = _transposed_weights(op.inputs[1]) is not None and k % DOT_K_MULTIPLE == 0
        return "dot" if dot else "matmul"
    if isinstance(op, linalg.GenericOp):
        if _elementwise(op):
            return "elementwise"
        if _reduction(op):
            return "reduction"
        return None
    if isinstance(op, linalg.FillOp) and all(_static_f32_or_any(v) for v in op.outputs):
        return "elementwise"
    if isinstance(op, linalg.BroadcastOp) and _static_f32_or_any(op.init):
        return "elementwise"
    if isinstance(op, linalg.TransposeOp):
        if all(
            isinstance(use.operation, linalg.MatmulOp) and classify(use.operation) == "dot"
            for use in op.results[0].uses
        ):
            return "dot"  # folded into the linear layer that reads it
        if _ints(op.permutation) == [1, 0] and all(
            _static_f32_tensor(v) for v in (*op.inputs, *op.outputs)
        ):
            return "transpose"  # the weights of a linear layer that is a matmul
    return None


def unvectorised_ops(module: Operation) -> list[tuple[str, str]]:
    """The linalg ops of `module` that no vector form covers, so that `llvm_pipeline` lowers
    them to scalar loops: (op name, location) in program order. Canonical forms that
    `prepare_linalg` tagged are covered."""
    return [
        (op.name, op_location(op))
        for op in module.walk()
        if op.name.startswith("linalg.")
        and op.name != "linalg.yield"
        and TAG not in op.attributes
        and not isinstance(op.parent_op(), linalg.GenericOp | linalg.NamedOperation)
        and classify(op) is None
    ]


# ------------------------------------------------------------------------------------------------
# Building the canonical forms
# ------------------------------------------------------------------------------------------------

_CONTRACT = arith.FastMathFlagsAttr(["contract"])


def _tensor(shape: Sequence[int]) -> TensorType:
    return TensorType(f32, list(shape))


def _slice(
    value: SSAValue, offsets: Sequence[int], sizes: Sequence[int], keep: Sequence[int]
) -> SSAValue:
    """`value[offsets : offsets + sizes]` (unit strides), keeping the dims `keep` only (the
    others must have size 1)."""
    if list(offsets) == [0] * len(offsets) and list(sizes) == list(_shape(value)):
        if list(keep) == list(range(len(sizes))):
            return value
    op = tensor.ExtractSliceOp(
        value, list(offsets), list(sizes), [1] * len(sizes), _tensor([sizes[d] for d in keep])
    )
    return op.result


def _reassociation(groups: Sequence[Sequence[int]]) -> ArrayAttr[ArrayAttr[IntegerAttr]]:
    return ArrayAttr([ArrayAttr([IntegerAttr(d, i64) for d in g]) for g in groups])


def _collapse(value: SSAValue, groups: Sequence[Sequence[int]]) -> SSAValue:
    shape = _shape(value)
    if all(len(g) == 1 for g in groups):
        return value
    owner = value.owner
    if isinstance(owner, tensor.ExpandShapeOp) and owner.reassociation == _reassociation(groups):
        return owner.src  # a reshape undone
    result = _tensor([prod(shape[d] for d in g) for g in groups])
    op = tensor.CollapseShapeOp(
        operands=[value],
        result_types=[result],
        properties={"reassociation": _reassociation(groups)},
    )
    return op.result


def _expand(value: SSAValue, groups: Sequence[Sequence[int]], shape: Sequence[int]) -> SSAValue:
    if all(len(g) == 1 for g in groups):
        return value
    op = tensor.ExpandShapeOp(value, [], _reassociation(groups), list(shape), _tensor(shape))
    return op.result


def _pad(value: SSAValue, high: Sequence[int]) -> SSAValue:
    """`value` padded with zeros at the high end of each dim (never read: see `_phases`)."""
    if not any(high):
        return value
    shape = _shape(value)
    block = Block(arg_types=[IndexType()] * len(shape))
    with ImplicitBuilder(block):
        zero = arith.ConstantOp(FloatAttr(0.0, f32))
        tensor.YieldOp(zero)
    result = _tensor([s + h for s, h in zip(shape, high, strict=True)])
    return tensor.PadOp(value, [], [], Region(block), [0] * len(shape), list(high), result).result


def _empty(shape: Sequence[int]) -> SSAValue:
    return tensor.EmptyOp([], _tensor(shape)).tensor


def _generic(
    inputs: Sequence[SSAValue],
    init: SSAValue,
    maps: Sequence[AffineMap],
    iterators: Sequence[str],
    body: Callable[[Sequence[SSAValue], SSAValue], SSAValue],
    kind: str,
) -> SSAValue:
    """A tagged `linalg.generic` whose body returns `body(input args, accumulator arg)`."""
    arg_types = [
        v.type.get_element_type() if isinstance(v.type, TensorType) else v.type
        for v in (*inputs, init)
    ]
    block = Block(arg_types=arg_types)
    with ImplicitBuilder(block):
        linalg.YieldOp(body(block.args[:-1], block.args[-1]))
    op = linalg.GenericOp(
        list(inputs),
        [init],
        Region(block),
        [AffineMapAttr(m) for m in maps],
        [IteratorTypeAttr(IteratorType(it)) for it in iterators],
        [init.type],
    )
    op.attributes[TAG] = StringAttr(kind)
    return op.results[0]


def _map(num_dims: int, results: Sequence[AffineExpr | int]) -> AffineMap:
    return AffineMap(
        num_dims,
        0,
        tuple(AffineExpr.constant(r) if isinstance(r, int) else r for r in results),
    )


def _d(i: int) -> AffineExpr:
    return AffineExpr.dimension(i)


def _phases(
    x: SSAValue, lead: int, out_hw: tuple[int, int], window: Window
) -> Callable[[int, int], SSAValue]:
    """The tap views of input `x` (`lead` leading dims, then H W): a function of a tap
    (kh, kw) giving `x[.., oh * sh + kh * dh, ow * sw + kw * dw]` for every output (oh, ow)
    as a view with unit strides. With a stride > 1 the input is split into its stride phases
    first, by a `deinterleave` generic (a transpose of a reshape, so vector reads stay whole):
    `xq[.., a, hq, b, wq] = x[.., hq * sh + a, wq * sw + b]`."""
    (sh, sw), (dh, dw), (kh_n, kw_n) = window.stride, window.dilation, window.kernel
    oh_n, ow_n = out_hw
    shape = _shape(x)
    lead_shape = list(shape[:lead])
    keep = [*range(lead), lead, lead + 1]
    if sh == 1 and sw == 1:
        return lambda kh, kw: _slice(
            x, [0] * lead + [kh * dh, kw * dw], [*lead_shape, oh_n, ow_n], keep
        )
    # Rows and columns the taps read, rounded up to whole phases.
    hq = -(-(sh * (oh_n - 1) + dh * (kh_n - 1) + 1) // sh)
    wq = -(-(sw * (ow_n - 1) + dw * (kw_n - 1) + 1) // sw)
    h, w = shape[lead], shape[lead + 1]
    xs = _pad(x, [0] * lead + [max(0, sh * hq - h), max(0, sw * wq - w)])
    xs = _slice(xs, [0] * (lead + 2), [*lead_shape, sh * hq, sw * wq], range(lead + 2))
    xe = _expand(
        xs,
        [*([d] for d in range(lead)), [lead, lead + 1], [lead + 2, lead + 3]],
        [*lead_shape, hq, sh, wq, sw],
    )
    rank = lead + 4
    dims = [_d(i) for i in range(rank)]
    # Loop dims (.., a, hq, b, wq); xe is (.., hq, a, wq, b); xq is (.., a, hq, b, wq).
    a, hq_d, b, wq_d = dims[lead:]
    xq = _generic(
        [xe],
        _empty([*lead_shape, sh, hq, sw, wq]),
        [_map(rank, [*dims[:lead], hq_d, a, wq_d, b]), AffineMap.identity(rank)],
        ["parallel"] * rank,
        lambda args, acc: args[0],
        f"deinterleave:{rank}",
    )

    def tap(kh: int, kw: int) -> SSAValue:
        row, col = kh * dh, kw * dw
        return _slice(
            xq,
            [0] * lead + [row % sh, row // sh, col % sw, col // sw],
            [*lead_shape, 1, oh_n, 1, ow_n],
            [*range(lead), lead + 1, lead + 3],
        )

    return tap


def _fma_sum(pairs: Sequence[tuple[SSAValue, SSAValue]], acc: SSAValue) -> SSAValue:
    """`acc + (w0 * x0 + w1 * x1 + ...)`, with `contract` so that LLVM makes FMAs. The
    accumulator is added last: the vectoriser recognises a reduction only when one op
    combines the accumulator with the rest."""
    if len(pairs) == 1:  # a plain contraction, for `vector.contract`
        w, x = pairs[0]
        return arith.AddfOp(acc, arith.MulfOp(w, x).result).result
    total: SSAValue | None = None
    for w, x in pairs:
        if total is None:
            total = arith.MulfOp(w, x, _CONTRACT).result
        else:
            mul = arith.MulfOp(w, x, _CONTRACT)
            total = arith.AddfOp(total, mul.result, _CONTRACT).result
    assert total is not None
    return arith.AddfOp(acc, total, _CONTRACT).result


def _fold(kind: type[Operation], values: Sequence[SSAValue], acc: SSAValue) -> SSAValue:
    for x in values:
        acc = kind(acc, x).result  # type: ignore[call-arg]
    return acc


def build_window(window: Window) -> SSAValue:
    """The canonical form of `window`; its result replaces the op's."""
    (kh_n, kw_n) = window.kernel
    taps = [(kh, kw) for kh in range(kh_n) for kw in range(kw_n)]
    if window.kind == "conv":
        return _build_conv(window, taps)
    n, c, oh, ow = window.out_shape
    tap = _phases(window.x, 2, (oh, ow), window)
    xs = [tap(kh, kw) for kh, kw in taps]
    dims = [_d(i) for i in range(4)]
    x_map = AffineMap.identity(4)
    if window.kind == "depthwise":
        assert window.w is not None
        wc = _collapse(window.w, [[0, 1], [2], [3]]) if len(_shape(window.w)) == 4 else window.w
        ws = [_slice(wc, [0, kh, kw], [c, 1, 1], [0]) for kh, kw in taps]
        w_map = _map(4, [dims[1]])
        return _generic(
            [*xs, *ws],
            window.init,
            [x_map] * len(xs) + [w_map] * len(ws) + [x_map],
            ["parallel"] * 4,
            lambda args, acc: _fma_sum(
                list(zip(args[len(xs) :], args[: len(xs)], strict=True)), acc
            ),
            "window:4",
        )
    kind = arith.MaximumfOp if window.kind == "pool_max" else arith.AddfOp
    return _generic(
        xs,
        window.init,
        [x_map] * (len(xs) + 1),
        ["parallel"] * 4,
        lambda args, acc: _fold(kind, args, acc),
        "window:4",
    )


def _build_conv(window: Window, taps: Sequence[tuple[int, int]]) -> SSAValue:
    """conv: dims (n, [g,] f, oh, ow, c), one input and one weight slice per tap; a 1x1 conv
    whose single tap reads the whole image contiguously has its pixels flattened (n, f, p, c):
    a matmul."""
    assert window.w is not None
    lead = 2 if window.grouped else 1  # n [, g]
    out_shape = window.out_shape
    oh, ow = out_shape[-2:]
    f = out_shape[-3]
    w_shape = _shape(window.w)
    c = w_shape[-3]
    tap = _phases(window.x, lead + 1, (oh, ow), window)  # x is (n, [g,] c, h, w)
    xs = [tap(kh, kw) for kh, kw in taps]
    # w is (f, c, kh, kw) or (g, f, c, kh, kw): one (.., f, c) slice per tap.
    wlead = len(w_shape) - 4
    ws = [
        _slice(
            window.w,
            [0] * (wlead + 2) + [kh, kw],
            [*w_shape[: wlead + 2], 1, 1],
            range(wlead + 2),
        )
        for kh, kw in taps
    ]
    init = window.init
    flat = len(xs) == 1 and (xs[0] is window.x or _is_whole_phase(xs[0]))
    spatial = 1 if flat else 2
    if flat:
        groups = [*([d] for d in range(lead + 1)), [lead + 1, lead + 2]]
        xs = [_collapse(xs[0], groups)]
        init = _init_regrouped(init, groups)
    rank = lead + 1 + spatial + 1
    dims = [_d(i) for i in range(rank)]
    batch, f_d, sp, c_d = dims[:lead], dims[lead], dims[lead + 1 : lead + 1 + spatial], dims[-1]
    g = batch[1:]  # the group dim, if any
    x_map = _map(rank, [batch[0], *g, c_d, *sp])
    w_map = _map(rank, [*g, f_d, c_d])
    out_map = _map(rank, [*batch, f_d, *sp])
    result = _generic(
        [*ws, *xs],
        init,
        [w_map] * len(ws) + [x_map] * len(xs) + [out_map],
        ["parallel"] * (rank - 1) + ["reduction"],
        lambda args, acc: _fma_sum(list(zip(args[: len(ws)], args[len(ws) :], strict=True)), acc),
        f"conv:{lead}:{spatial}",
    )
    del c, f
    if flat:
        result = _expand(result, groups, out_shape)
    return result


def _init_regrouped(init: SSAValue, groups: Sequence[Sequence[int]]) -> SSAValue:
    """`init` with its dims collapsed by `groups`: when it is an element-wise canonical form
    that only the conv reads (the bias broadcast, a fill), that op again in the collapsed shape,
    so that it can be fused into the conv's tiles (the old one is left to erase); else a
    reshape."""
    owner = init.owner
    tag = owner.attributes.get(TAG) if isinstance(owner, linalg.GenericOp) else None
    if (
        isinstance(owner, linalg.GenericOp)
        and isinstance(tag, StringAttr)
        and tag.data.startswith("elementwise:")
        and init.has_one_use()
    ):
        regrouped = _regroup(owner, groups, 0)
        if regrouped is not None:
            return regrouped
    return _collapse(init, groups)


def _regroup_map(
    amap: AffineMap, groups: Sequence[Sequence[int]]
) -> tuple[list[list[int]], list[AffineExpr | int]] | None:
    """An operand's broadcast map `amap` over the loop dims collapsed by `groups`: (how the
    operand's own dims collapse, the new map's results), or None if the operand reads part of
    a group only."""
    group_of = {d: i for i, g in enumerate(groups) for d in g}
    results = list(amap.results)
    operand_groups: list[list[int]] = []
    new_results: list[AffineExpr | int] = []
    i = 0
    while i < len(results):
        position = _dim(results[i])
        if position is None:  # a unit dim (the constant 0)
            operand_groups.append([i])
            new_results.append(0)
            i += 1
            continue
        group = groups[group_of[position]]
        if [_dim(e) for e in results[i : i + len(group)]] != list(group):
            return None
        operand_groups.append(list(range(i, i + len(group))))
        new_results.append(_d(group_of[position]))
        i += len(group)
    return operand_groups, new_results


def _regroup(
    op: linalg.GenericOp,
    groups: Sequence[Sequence[int]],
    first: int,
    first_value: SSAValue | None = None,
) -> SSAValue | None:
    """Element-wise `op` over its loop dims collapsed by `groups` (its operands reshaped to
    match) with input `first` moved to the front (`first_value` instead of the reshaped input,
    if given), built at the insertion point; None if an operand reads part of a group. The
    region is moved out of `op`, which is left to erase."""
    maps = _maps(op)
    plans = [_regroup_map(m, groups) for m in maps[:-1]]
    if any(plan is None for plan in plans):
        return None
    rank = len(groups)
    order = [first, *(i for i in range(len(op.inputs)) if i != first)]
    inputs, in_maps = [], []
    for i in order:
        plan = plans[i]
        assert plan is not None
        if i == first and first_value is not None:
            inputs.append(first_value)
        elif isinstance(op.inputs[i].type, TensorType):
            inputs.append(_collapse(op.inputs[i], plan[0]))
        else:
            inputs.append(op.inputs[i])  # a scalar
        in_maps.append(_map(rank, plan[1]))
    init = _collapse(op.outputs[0], groups)
    old_block = op.body.block
    region = Rewriter.move_region_contents_to_new_regions(op.body)
    block = region.block
    if order != list(range(len(order))):
        # Block arguments in the new operand order.
        arg_types = [old_block.args[i].type for i in order] + [old_block.args[-1].type]
        new_block = Block(arg_types=arg_types)
        position = {old: new for new, old in enumerate(order)}
        args = [new_block.args[position[i]] for i in range(len(order))] + [new_block.args[-1]]
        Rewriter.inline_block(block, InsertPoint.at_start(new_block), args)
        region = Region(new_block)
    new = linalg.GenericOp(
        inputs,
        [init],
        region,
        [AffineMapAttr(m) for m in [*in_maps, AffineMap.identity(rank)]],
        [IteratorTypeAttr(IteratorType.PARALLEL)] * rank,
        [init.type],
    )
    new.attributes[TAG] = StringAttr(f"elementwise:{rank}")
    return new.results[0]


def _is_whole_phase(value: SSAValue) -> bool:
    """Whether `value` is one whole stride phase of a `deinterleave` (.., a, hq, b, wq): all of
    its rows and columns, so contiguous."""
    owner = value.owner
    if not isinstance(owner, tensor.ExtractSliceOp):
        return False
    source, sizes = _shape(owner.source), _ints(owner.static_sizes)
    lead = len(source) - 4
    return (
        sizes[:lead] == list(source[:lead])
        and sizes[lead] == 1
        and sizes[lead + 1] == source[lead + 1]
        and sizes[lead + 2] == 1
        and sizes[lead + 3] == source[lead + 3]
    )


def build_matmul(a: SSAValue, b: SSAValue, c: SSAValue) -> SSAValue:
    """`linalg.matmul`: dims (m, n, k), a broadcast row of `a` times vectors of `b`."""
    m, n, k = _d(0), _d(1), _d(2)
    return _generic(
        [a, b],
        c,
        [_map(3, [m, k]), _map(3, [k, n]), _map(3, [m, n])],
        ["parallel", "parallel", "reduction"],
        lambda args, acc: _fma_sum([(args[0], args[1])], acc),
        "conv:0:1",
    )


def build_dot(a: SSAValue, w: SSAValue, c: SSAValue, lanes: int) -> SSAValue | None:
    """`c + a @ w^T` (a: M x K, w: N x K) reading both along K: J partial sums per output, over
    `k = i * J + j`, then their sum. None if K has no such split."""
    m_n, k_n = _shape(a)
    n_n = _shape(w)[0]
    j_n = _dot_split(k_n, lanes)
    if j_n is None:
        return None
    i_n = k_n // j_n
    a3 = _expand(a, [[0], [1, 2]], [m_n, i_n, j_n])
    w3 = _expand(w, [[0], [1, 2]], [n_n, i_n, j_n])
    zero = arith.ConstantOp(FloatAttr(0.0, f32)).result
    part_init = _generic(
        [zero],
        _empty([m_n, n_n, j_n]),
        [_map(3, []), AffineMap.identity(3)],
        ["parallel"] * 3,
        lambda args, acc: args[0],
        "elementwise:3",
    )
    m, n, i, j = (_d(x) for x in range(4))
    part = _generic(
        [a3, w3],
        part_init,
        [_map(4, [m, i, j]), _map(4, [n, i, j]), _map(4, [m, n, j])],
        ["parallel", "parallel", "reduction", "parallel"],
        lambda args, acc: _fma_sum([(args[0], args[1])], acc),
        "dot",
    )
    return _generic(
        [part],
        c,
        [AffineMap.identity(3), _map(3, [_d(0), _d(1)])],
        ["parallel", "parallel", "reduction"],
        lambda args, acc: arith.AddfOp(acc, args[0]).result,
        "reduction:3:1",
    )


def _collapse_plan(op: linalg.GenericOp) -> int:
    """The first dim of the longest run of trailing loop dims that every operand of
    element-wise `op` reads whole (as its own trailing dims) or not at all."""
    rank = len(_iterators(op))
    maps = _maps(op)[:-1]
    best = rank - 1
    for start in range(rank - 2, -1, -1):
        suffix = list(range(start, rank))
        ok = True
        for amap in maps:
            results = list(amap.results)
            positions = [_dim(e) for e in results]
            if positions[-len(suffix) :] == suffix and len(results) >= len(suffix):
                continue
            if not any(p is not None and p >= start for p in positions):
                # Reads none of the suffix: fine if no unit dims trail its last used dim
                # that would need collapsing with a dim it reads.
                continue
            ok = False
            break
        if not ok:
            break
        best = start
    return best


def build_elementwise(op: linalg.GenericOp) -> SSAValue:
    """Element-wise `op` with its trailing dims collapsed where every operand allows it."""
    rank = len(_iterators(op))
    start = _collapse_plan(op)
    maps = _maps(op)
    if start >= rank - 1:
        new_rank, inputs, in_maps, init = rank, list(op.inputs), maps[:-1], op.outputs[0]
        groups: list[list[int]] | None = None
    else:
        groups = [*([d] for d in range(start)), list(range(start, rank))]
        new_rank = start + 1
        inputs, in_maps = [], []
        for value, amap in zip(op.inputs, maps[:-1], strict=True):
            positions = [_dim(e) for e in amap.results]
            if positions[-(rank - start) :] == list(range(start, rank)):
                head = len(positions) - (rank - start)
                vgroups = [*([d] for d in range(head)), list(range(head, len(positions)))]
                inputs.append(_collapse(value, vgroups))
                in_maps.append(_map(new_rank, [*amap.results[:head], _d(start)]))
            else:
                inputs.append(value)
                in_maps.append(_map(new_rank, list(amap.results)))
        init = _collapse(op.outputs[0], groups)
    new = linalg.GenericOp(
        inputs,
        [init],
        Rewriter.move_region_contents_to_new_regions(op.regions[0]),
        [AffineMapAttr(m) for m in [*in_maps, AffineMap.identity(new_rank)]],
        [IteratorTypeAttr(IteratorType.PARALLEL)] * new_rank,
        [init.type],
    )
    new.attributes[TAG] = StringAttr(f"elementwise:{new_rank}")
    result = new.results[0]
    if groups is not None:
        result = _expand(result, groups, _shape(op.outputs[0]))
    return result


# ------------------------------------------------------------------------------------------------
# Epilogues: element-wise tails fused into the conv that produces their input
# ------------------------------------------------------------------------------------------------

FUSABLE = ("conv:1:1", "conv:1:2", "window:4")
"""The kinds whose element-wise tails become their epilogues."""


def _chain_head(value: SSAValue) -> tuple[linalg.GenericOp, list[list[int]]] | None:
    """The op that `value` (read by one element-wise op only) is the result of, reshaped by the
    returned groups, if it is a conv of a `FUSABLE` kind or the last op of such a conv's chain
    (`chain:...`) and nothing else reads it."""
    if not value.has_one_use():
        return None
    owner = value.owner
    groups: list[list[int]] = [[d] for d in range(len(_shape(value)))]
    if isinstance(owner, tensor.ExpandShapeOp):
        groups = [[int(d.value.data) for d in g.data] for g in owner.reassociation.data]
        value = owner.src
        owner = value.owner
        if not value.has_one_use():
            return None
    if not isinstance(owner, linalg.GenericOp) or len(owner.results) != 1:
        return None
    tag = owner.attributes.get(TAG)
    if not isinstance(tag, StringAttr):
        return None
    if tag.data in FUSABLE or tag.data.startswith("chain:"):
        return owner, groups
    return None


def _fuse_init(conv: linalg.GenericOp, replaced: Operation | None = None) -> str:
    """The operand of `conv` that its init is, as text, with the init tagged `fused:<kind>`, if
    the init is an element-wise form that nothing else reads (but `replaced`, the op `conv`
    replaces): the bias broadcast, a fill; else `x`, and the init is left as it is."""
    init = conv.outputs[0]
    owner = init.owner
    rank = len(_shape(init))
    if (
        isinstance(owner, linalg.GenericOp)
        and all(use.operation in (conv, replaced) for use in init.uses)
        and owner.attributes.get(TAG) == StringAttr(f"elementwise:{rank}")
    ):
        owner.attributes[TAG] = StringAttr(f"fused:elementwise:{rank}")
        return str(len(conv.inputs))
    return "x"


def _is_copy(op: linalg.GenericOp) -> bool:
    """Whether `op` returns its only input as it is."""
    ops = _body_ops(op)
    return (
        len(op.inputs) == 1
        and len(ops) == 1
        and _maps(op)[0] == _maps(op)[-1]
        and ops[0].operands[0] is op.body.block.args[0]
    )


def _chain_of_conv(result: SSAValue, replaced: Operation) -> SSAValue:
    """`result`, a conv form's result (or its reshape), through a copy that is the last op of
    the conv's chain, if the conv's init can be fused into it (`_fuse_init`): the copy is tiled
    and the conv and its init fused into its tiles, so the init costs no pass over memory of
    its own. The first element-wise op that reads the conv replaces the copy (`_join_chain`)."""
    owner = result.owner
    groups: list[list[int]] | None = None
    if isinstance(owner, tensor.ExpandShapeOp):
        groups = [[int(d.value.data) for d in g.data] for g in owner.reassociation.data]
        owner = owner.src.owner
    if not isinstance(owner, linalg.GenericOp):
        return result
    tag = owner.attributes.get(TAG)
    if not isinstance(tag, StringAttr) or tag.data not in FUSABLE:
        return result
    init = _fuse_init(owner, replaced)
    if init == "x":
        return result
    owner.attributes[TAG] = StringAttr(f"fused:{tag.data}")
    if groups is not None:
        Rewriter.erase_op(result.owner)  # the copy is reshaped instead
    shape = _shape(owner.results[0])
    rank = len(shape)
    copy = _generic(
        [owner.results[0]],
        _empty(shape),
        [AffineMap.identity(rank)] * 2,
        ["parallel"] * rank,
        lambda args, acc: args[0],
        f"chain:1:{init}:{tag.data}",
    )
    return copy if groups is None else _expand(copy, groups, _shape(result))


def _join_chain(op: linalg.GenericOp) -> SSAValue | None:
    """Element-wise `op` as the new last op (the root) of the chain of the conv whose result (or
    whose chain's result) it reads: in the conv's iteration shape, with that input first, tagged
    `chain:<n>:<init>:<conv kind>` (n: the element-wise ops of the chain, init: the operand of
    the conv its init is, or `x` if that is not fused); the ops before it are `fused:<kind>`."""
    out_shape = _shape(op.outputs[0])
    identity = AffineMap.identity(len(out_shape))
    for index, (value, amap) in enumerate(zip(op.inputs, _maps(op)[:-1], strict=True)):
        if amap != identity or _shape(value) != out_shape:
            continue
        head = _chain_head(value)
        if head is None:
            continue
        producer, groups = head
        if any(_regroup_map(m, groups) is None for m in _maps(op)[:-1]):
            return None
        rank = len(groups)
        tag = producer.attributes[TAG].data  # type: ignore[attr-defined]
        first = producer.results[0]
        if tag.startswith("chain:") and _is_copy(producer):
            # `op` replaces the copy that ends the chain: it reads the conv.
            first = producer.inputs[0]
            root = tag
        elif tag.startswith("chain:"):
            _, n, init, kind = tag.split(":", 3)
            producer.attributes[TAG] = StringAttr(f"fused:elementwise:{rank}")
            root = f"chain:{int(n) + 1}:{init}:{kind}"
        else:
            producer.attributes[TAG] = StringAttr(f"fused:{tag}")
            root = f"chain:1:{_fuse_init(producer)}:{tag}"
        result = _regroup(op, groups, index, first)
        assert result is not None
        result.owner.attributes[TAG] = StringAttr(root)  # type: ignore[union-attr]
        return _expand(result, groups, out_shape)
    return None


def _erase_dead(rewriter: PatternRewriter, values: Iterable[SSAValue]) -> None:
    """Erase the reshapes and canonical forms among the owners of `values` that nothing reads."""
    for value in values:
        owner = value.owner
        if (
            isinstance(
                owner,
                tensor.ExpandShapeOp | tensor.CollapseShapeOp | tensor.EmptyOp | linalg.GenericOp,
            )
            and all(not r.uses for r in owner.results)
            and (not isinstance(owner, linalg.GenericOp) or TAG in owner.attributes)
        ):
            operands = list(owner.operands)
            rewriter.erase(owner)
            _erase_dead(rewriter, operands)


# ------------------------------------------------------------------------------------------------
# The rewrite
# ------------------------------------------------------------------------------------------------


@dataclass
class _Canonicalize(RewritePattern):
    """Puts one linalg op in its canonical form (or tags it as it is)."""

    tiles: VectorTiles

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if TAG in op.attributes or not op.name.startswith("linalg."):
            return
        if isinstance(op.parent_op(), linalg.GenericOp):
            return
        kind = classify(op)
        if kind is None:
            return
        operands = list(op.operands)
        with ImplicitBuilder(rewriter):
            result = self._build(op, kind)
        if result is None:
            return
        rewriter.replace(op, [], [result])
        _erase_dead(rewriter, operands)

    def _build(self, op: Operation, kind: str) -> SSAValue | None:
        if kind in ("conv", "window"):
            window = window_of(op)
            assert window is not None
            return _chain_of_conv(build_window(window), op)
        if kind in ("matmul", "dot"):
            if isinstance(op, linalg.TransposeOp):
                return None  # erased with the matmul that reads it
            operands = _matmul_operands(op)
            assert operands is not None
            a, b, c = operands
            wt = _transposed_weights(b)
            if wt is not None:
                result = build_dot(a, wt, c, self.tiles.lanes)
                if result is not None:
                    return result
            return build_matmul(a, b, c)
        if kind == "elementwise":
            if isinstance(op, linalg.FillOp):
                (out,) = op.outputs
                rank = len(_shape(out))
                return _generic(
                    [op.inputs[0]],
                    out,
                    [_map(rank, []), AffineMap.identity(rank)],
                    ["parallel"] * rank,
                    lambda args, acc: args[0],
                    f"elementwise:{rank}",
                )
            if isinstance(op, linalg.BroadcastOp):
                rank = len(_shape(op.init))
                added = set(_ints(op.dimensions))
                kept = [_d(i) for i in range(rank) if i not in added]
                return _generic(
                    [op.input],
                    op.init,
                    [_map(rank, kept), AffineMap.identity(rank)],
                    ["parallel"] * rank,
                    lambda args, acc: args[0],
                    f"elementwise:{rank}",
                )
            assert isinstance(op, linalg.GenericOp)
            joined = _join_chain(op)
            return joined if joined is not None else build_elementwise(op)
        if kind == "transpose":
            assert isinstance(op, linalg.TransposeOp)
            return _generic(
                [op.inputs[0]],
                op.outputs[0],
                [_map(2, [_d(1), _d(0)]), AffineMap.identity(2)],
                ["parallel"] * 2,
                lambda args, acc: args[0],
                "transpose:2",
            )
        if kind == "reduction":
            assert isinstance(op, linalg.GenericOp)
            n_red = sum(1 for it in _iterators(op) if it == IteratorType.REDUCTION)
            op.attributes[TAG] = StringAttr(f"reduction:{len(_iterators(op))}:{n_red}")
            return None
        return None


def _layer_call(op: Operation) -> tuple[str, int] | None:
    """(`BEGIN` or `END`, layer number) if `op` is a call `pconv-profile-layers` put in."""
    if not isinstance(op, CallOp) or op.callee.string_value() not in (BEGIN, END):
        return None
    number = op.arguments[0].owner if op.arguments else None
    if not isinstance(number, arith.ConstantOp) or not isinstance(number.value, IntegerAttr):
        return None
    return op.callee.string_value(), number.value.value.data


def _timed_layer(op: Operation) -> int | None:
    """The number of the profiled layer whose timers enclose `op` in its block, if any."""
    before = op.prev_op
    while before is not None:
        call = _layer_call(before)
        if call is not None:
            return call[1] if call[0] == BEGIN else None
        before = before.prev_op
    return None


def _chain_ops(root: Operation) -> list[Operation]:
    """The ops of the chain that `root` (tagged `chain:...`) ends, from it back to its conv."""
    chain = [root]
    while isinstance(chain[-1], linalg.GenericOp) and chain[-1].inputs:
        producer = chain[-1].inputs[0].owner
        tag = producer.attributes.get(TAG) if isinstance(producer, linalg.GenericOp) else None
        if not (
            isinstance(tag, StringAttr)
            and tag.data.startswith("fused:")
            and producer.parent_block() is root.parent_block()
        ):
            break
        chain.append(producer)
    return chain


def _time_chains_as_their_conv(module: ModuleOp) -> None:
    """In a module `pconv-profile-layers` has timed: the ops of a conv's chain run in the loops
    of its last op, so the conv's end timer moves after that op and the timers of the chain's
    other layers are erased. The profile then books the whole chain on the conv's row (its
    fused tails' rows read zero), as it does for a pconv layer's fused epilogue."""
    roots = [
        op
        for op in module.walk()
        if isinstance(tag := op.attributes.get(TAG), StringAttr) and tag.data.startswith("chain:")
    ]
    for root in roots:
        chain = _chain_ops(root)
        conv = _timed_layer(chain[-1])
        if conv is None:
            continue
        block = root.parent_block()
        assert block is not None
        timers = {
            call: op for op in block.ops if (call := _layer_call(op)) is not None
        }  # (BEGIN/END, layer) -> call op
        if (END, conv) not in timers:
            continue
        for number in {n for n in map(_timed_layer, chain) if n is not None} - {conv}:
            for kind in (BEGIN, END):
                call = timers.get((kind, number))
                if call is not None:
                    call.detach()
                    call.erase()
        end = timers[(END, conv)]
        if not any(op is end for op in _ops_after(root)):
            end.detach()
            block.insert_op_after(end, root)


def _ops_after(op: Operation) -> Iterable[Operation]:
    after = op.next_op
    while after is not None:
        yield after
        after = after.next_op


def prepare_linalg(module: ModuleOp, target: Machine | str = "host") -> frozenset[str]:
    """Put every linalg op of `module` that has a vector form in its canonical form, tagged
    with `TAG`, in place; the kinds present, for `transform_script`. Dead `linalg.transpose`
    ops (the weights of linear layers, now read in place) are erased. In a module that
    `pconv-profile-layers` timed, each chain is timed as its conv (`_time_chains_as_their_conv`)."""
    tiles = vector_tiles(target)
    PatternRewriteWalker(_Canonicalize(tiles), apply_recursively=False).rewrite_module(module)
    for op in list(module.walk()):
        if isinstance(op, linalg.TransposeOp) and not op.results[0].uses:
            op.detach()
            op.erase()
    _time_chains_as_their_conv(module)
    return frozenset(
        op.attributes[TAG].data  # type: ignore[attr-defined]
        for op in module.walk()
        if TAG in op.attributes
    )


@dataclass(frozen=True)
class VectorizeLinalgPass(ModulePass):
    """Puts the linalg ops on tensors that have a vector form in their canonical form.

    `prepare_linalg` as a pass, to inspect what `lower_to_llvm_dialect(vectorize=True)` hands
    the transform script: each op that has a vector form is rewritten in place and tagged
    `pconv.vectorize = "<kind>"` (see the module docstring for the kinds); the others, and
    linalg on buffers, are left as they are. Option `machine` (`host`, `aarch64`, `x86_64`)
    chooses the vector width a linear layer's K is split by.

        %y = linalg.conv_2d_nchw_fchw ins(%x, %w : tensor<1x5x9x11xf32>, tensor<7x5x1x1xf32>)
               outs(%z : tensor<1x7x9x11xf32>) -> tensor<1x7x9x11xf32>
      becomes
        %xc = tensor.collapse_shape %x [[0], [1], [2, 3]] : ... into tensor<1x5x99xf32>
        %g = linalg.generic {...} ins(%w0, %xc : tensor<7x5xf32>, tensor<1x5x99xf32>) ...
               {pconv.vectorize = "conv:1:1"}
        %y = tensor.expand_shape %g [[0], [1], [2, 3]] ... into tensor<1x7x9x11xf32>

    A ReLU that reads `%y` (and nothing else does) becomes the last op of the conv's chain,
    in the conv's (n, f, pixels) shape, reading `%g` directly; the conv is `fused:conv:1:1`:

        %r = linalg.generic {...} ins(%g : tensor<1x7x99xf32>) outs(...)
               {pconv.vectorize = "chain:1:x:conv:1:1"}
        %y = tensor.expand_shape %r [[0], [1], [2, 3]] ... into tensor<1x7x9x11xf32>
    """

    name = "pconv-vectorize-linalg"

    machine: str = "host"

    def __post_init__(self) -> None:
        machine(self.machine)  # OptionError for an unknown machine

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        prepare_linalg(op, self.machine)


# ------------------------------------------------------------------------------------------------
# The transform script
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    """How one kind is tiled: `parallel` tile sizes per loop dim (0: not tiled), the loop
    `order` (an interchange, outermost first), the tile of the reduction loop that follows
    (none if `reduction` is empty), whether to vectorise to `vector.contract`, and how the
    threads share the op (`shares`)."""

    parallel: tuple[int, ...]
    order: tuple[int, ...] | None = None
    reduction: tuple[int, ...] = ()
    contraction: bool = False
    shares: tuple[tuple[int, ...], ...] = ()
    """The ways the threads may share the op, best first: `scf.forall` tile sizes per loop dim
    (0: not shared), each a whole number of register tiles. An op takes the first way that
    gives it `PARALLEL_ITERATIONS` whole chunks in one of the dims it shares; with none (or no
    way), it runs on one thread."""
    fuse: tuple[int, ...] | None = None
    """For the last op of a conv's chain (`chain:...`): the operands to follow from it, one
    after the other, to the ops fused into each loop it is tiled into (the earlier element-wise
    ops, the conv, its init); None for other kinds."""

    @property
    def loops(self) -> list[int]:
        """The tiled dims in loop order, outermost first."""
        order = self.order if self.order is not None else range(len(self.parallel))
        return [d for d in order if self.parallel[d]]

    @property
    def peel(self) -> list[int]:
        """Positions (in `loops`) of the loops whose last tile may be partial: peeled, outer
        loops first, so that every full tile has a static shape."""
        return [i for i, d in enumerate(self.loops) if self.parallel[d] > 1]


def _cuts(share: Sequence[int]) -> list[tuple[int, int]]:
    """(dim, chunk) of the dims that `share` cuts in chunks of more than one iteration."""
    return [(d, t) for d, t in enumerate(share) if t > 1]


def _recipe(kind: str, tiles: VectorTiles) -> _Recipe | None:
    name, *params = kind.split(":")
    if name == "fused":
        # Fused into the loops of its chain's last op: only its reduction is tiled.
        base = _recipe(":".join(params), tiles)
        if base is None:
            return None
        return _Recipe((), reduction=base.reduction, contraction=base.contraction)
    if name == "chain":
        # The conv's parallel dims, tiled and shared as the conv's.
        n, init, *conv = params
        base = _recipe(":".join(conv), tiles)
        if base is None:
            return None
        fuse = (0,) * int(n) + ((int(init),) if init != "x" else ())
        keep = [d for d in range(len(base.parallel)) if not (base.reduction and base.reduction[d])]
        order = base.order if base.order is not None else range(len(base.parallel))
        return _Recipe(
            tuple(base.parallel[d] for d in keep),
            tuple(keep.index(d) for d in order if d in keep),
            shares=tuple(tuple(share[d] for d in keep) for share in base.shares),
            fuse=fuse,
        )
    numbers = [int(p) for p in params]
    if name == "conv":
        lead, spatial = numbers
        # dims: lead batch dims, f, spatial dims, c; loops: batch, spatial, f (the input
        # tile is reused across the filters), then c.
        rank = lead + 1 + spatial + 1
        sizes = [1] * lead + [tiles.filters] + [1] * (spatial - 1) + [tiles.pixels, 0]
        order = [*range(lead), *range(lead + 1, lead + 1 + spatial), lead, rank - 1]
        batch = [1] * lead
        if spatial == 2:
            # Threads share images and output rows.
            shares = [(*batch, 0, 1, 0, 0)]
        else:
            # Flattened pixels (a matmul's columns): threads share images and pixel tiles,
            # in the loop order; a small image (a matmul with few columns) shares its filter
            # tiles instead.
            shares = [(*batch, 0, tiles.pixels, 0), (*batch, tiles.filters, 0, 0)]
        return _Recipe(
            tuple(sizes),
            tuple(order),
            tuple([0] * (rank - 1) + [1]),
            contraction=True,
            shares=tuple(shares),
        )
    if name == "dot":
        # (m, n, i, j): j whole (the partial sums), i the reduction; threads share the rows
        # and the output tiles.
        return _Recipe(
            (1, tiles.dot_rows, 0, 0), None, (0, 0, 1, 0), shares=((1, tiles.dot_rows, 0, 0),)
        )
    if name == "window":
        (rank,) = numbers
        # Threads share images and channels.
        return _Recipe(
            tuple([1] * (rank - 2) + [tiles.window_rows, tiles.pixels]),
            shares=(tuple([1] * (rank - 2) + [0, 0]),),
        )
    if name == "elementwise":
        (rank,) = numbers
        # Threads share every dim but the last, or the vector tiles of a single dim.
        share = [1] * (rank - 1) + [0] if rank > 1 else [tiles.elementwise]
        return _Recipe(tuple([1] * (rank - 1) + [tiles.elementwise]), shares=(tuple(share),))
    if name == "deinterleave":
        (rank,) = numbers
        # (.., a, hq, b, wq): b whole, wq by vectors; threads share the leading dims.
        return _Recipe(
            tuple([1] * (rank - 2) + [0, tiles.pixels]), shares=(tuple([1] * (rank - 4) + [0] * 4),)
        )
    if name == "transpose":
        (rank,) = numbers
        # lanes x lanes blocks: a transposed read and shuffles (small: on one thread).
        return _Recipe(tuple([1] * (rank - 2) + [tiles.lanes, tiles.lanes]))
    if name == "reduction":
        rank, n_red = numbers
        # Threads share the parallel dims.
        return _Recipe(
            tuple([1] * (rank - n_red) + [0] * n_red),
            shares=(tuple([1] * (rank - n_red) + [0] * n_red),),
        )
    return None


_HEADER = """\
module attributes {transform.with_named_sequence} {
  // Peel the last, partial iteration of a tiled loop, so the full tiles have static shapes.
  transform.named_sequence @pconv_peel(%loop: !transform.any_op {transform.readonly}) {
    %for = transform.cast %loop : !transform.any_op to !transform.op<"scf.for">
    %main, %rest = transform.loop.peel %for {fail_if_already_divisible = false}
      : (!transform.op<"scf.for">) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
  transform.named_sequence @pconv_vectorize(%op: !transform.any_op {transform.consumed}) {
    transform.structured.vectorize %op : !transform.any_op
    transform.yield
  }
  transform.named_sequence @pconv_vectorize_contraction(
      %op: !transform.any_op {transform.consumed}) {
    transform.structured.vectorize %op {create_named_contraction} : !transform.any_op
    transform.yield
  }
  transform.named_sequence @pconv_hoist(%loop: !transform.any_op {transform.readonly}) {
    %for = transform.cast %loop : !transform.any_op to !transform.op<"scf.for">
    transform.loop.hoist_loop_invariant_subsets %for : !transform.op<"scf.for">
    transform.yield
  }
"""

_MAIN = """\
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
"""

_FOOTER = """\
    transform.yield
  }
}
"""


def _any(n: int) -> str:
    return ", ".join(["!transform.any_op"] * n)


def _foreach(handle: str, sequence: str, failures: str = "suppress") -> str:
    return (
        f"    transform.foreach {handle} : !transform.any_op {{\n"
        f"    ^bb0(%each: !transform.any_op):\n"
        f"      transform.include @{sequence} failures({failures}) (%each)"
        f" : (!transform.any_op) -> ()\n"
        f"    }}\n"
    )


def _match_tag(name: str, kind: str, share: int | None = None, *, rest: bool = False) -> str:
    """Match the ops tagged `kind` (that take share number `share`, if given; the second parts
    of split ops only, with `rest`)."""
    attrs = f'{TAG} = "{kind}"' + (f", {SHARE} = {share} : i64" if share is not None else "")
    attrs += f", {REST}" if rest else ""
    return (
        f"    %{name} = transform.structured.match attributes{{{attrs}}} in %root"
        f" : (!transform.any_op) -> !transform.any_op\n"
    )


def _split_sequence(dim: int, chunk: int) -> str:
    """`@pconv_split_<dim>_<chunk>`: split an op after the last whole chunk of `chunk`
    iterations of its loop dim `dim` (both parts keep the op's attributes, the second is marked
    `REST`) when it has a whole chunk and a rest; a silenceable failure, with the op left as it
    is, otherwise."""
    p64 = "!transform.param<i64>"
    return (
        f"  transform.named_sequence @pconv_split_{dim}_{chunk}(\n"
        f"      %op: !transform.any_op {{transform.consumed}}) {{\n"
        # The checks fail silently; a `transform.sequence` stops there (a named sequence
        # included with failures(suppress) would go on), and the caller suppresses the failure.
        f"    transform.sequence %op : !transform.any_op failures(propagate) {{\n"
        f"    ^bb0(%target: !transform.any_op):\n"
        f"      %sizes, %chunks = transform.structured.continuous_tile_sizes %target"
        f" {{dimension = {dim}, target_size = {chunk}}} : (!transform.any_op) -> {p64}\n"
        # One chunk size: the dim is whole chunks.
        f"      %n = transform.num_associations %chunks : ({p64}) -> {p64}\n"
        f"      %one = transform.param.constant 1 : i64 -> {p64}\n"
        f"      transform.match.param.cmpi gt %n, %one : {p64}\n"
        f"      %whole, %rest = transform.split_handle %chunks {{overflow_result = 1}}"
        f" : ({p64}) -> ({p64}, {p64})\n"
        # A first size 0: no whole chunk.
        f"      %zero = transform.param.constant 0 : i64 -> {p64}\n"
        f"      transform.match.param.cmpi gt %whole, %zero : {p64}\n"
        f"      %parts = transform.structured.split %target after %whole {{dimension = {dim}}}"
        f" : !transform.any_op, {p64}\n"
        f"      %first, %second = transform.split_handle %parts"
        f" : (!transform.any_op) -> (!transform.any_op, !transform.any_op)\n"
        f'      transform.annotate %second "{REST}" : !transform.any_op\n'
        f"    }}\n"
        f"    transform.yield\n"
        f"  }}\n"
    )


def _at_least(dim: int, size: int) -> str:
    """`@pconv_at_least_<dim>_<size>`: matches an op whose loop dim `dim` has `size`
    iterations or more."""
    p64 = "!transform.param<i64>"
    return (
        f"  transform.named_sequence @pconv_at_least_{dim}_{size}(\n"
        f"      %op: !transform.any_op {{transform.readonly}}) -> !transform.any_op {{\n"
        f"    %dim = transform.match.structured %op : (!transform.any_op) -> {p64} {{\n"
        f"    ^bb0(%s: !transform.any_op):\n"
        f"      %size = transform.match.structured.dim %s[{dim}] : (!transform.any_op) -> {p64}\n"
        f"      transform.match.structured.yield %size : {p64}\n"
        f"    }}\n"
        f"    %min = transform.param.constant {size} : i64 -> {p64}\n"
        f"    transform.match.param.cmpi ge %dim, %min : {p64}\n"
        f"    transform.yield %op : !transform.any_op\n"
        f"  }}\n"
    )


def _share_action(share: int) -> str:
    """`@pconv_share<share>`: set the op's `SHARE` attribute to `share`."""
    return (
        f"  transform.named_sequence @pconv_share{share}("
        f"%op: !transform.any_op {{transform.readonly}}) {{\n"
        f"    %share = transform.param.constant {share} : i64 -> !transform.param<i64>\n"
        f'    transform.annotate %op "{SHARE}" = %share'
        f" : !transform.any_op, !transform.param<i64>\n"
        f"    transform.yield\n"
        f"  }}\n"
    )


def _conditions(share: Sequence[int]) -> list[tuple[int, int]]:
    """(dim, iterations) pairs, one of which an op must meet to take `share`:
    `PARALLEL_ITERATIONS` whole chunks in one of the dims it shares."""
    return [(d, PARALLEL_ITERATIONS * t) for d, t in enumerate(share) if t]


def _fuse_sequence(operand: int) -> str:
    """`@pconv_fuse_<operand>`: fuse the producer of `operand` of an op in a loop (read through
    the slice that tiling made) into the loop; the fused op."""
    any_ = "!transform.any_op"
    return (
        f"  transform.named_sequence @pconv_fuse_{operand}(\n"
        f"      %op: {any_} {{transform.readonly}}, %loop: {any_} {{transform.readonly}})"
        f" -> {any_} {{\n"
        f"    %slice = transform.get_producer_of_operand %op[{operand}] : ({any_}) -> {any_}\n"
        f"    %producer = transform.get_producer_of_operand %slice[0] : ({any_}) -> {any_}\n"
        f"    %fused, %new_loop = transform.structured.fuse_into_containing_op %producer"
        f" into %loop : ({any_}, {any_}) -> ({any_}, {any_})\n"
        f"    transform.yield %fused : {any_}\n"
        f"  }}\n"
    )


def _chain_sequences(i: int, kind: str, recipe: _Recipe) -> list[str]:
    """`@pconv_chain_<i>`: fuse the chain of the last op `%op` of a conv's chain (kind number
    `i`) into `%loop`, the loop it was just tiled into, from the last op up (dead ops erased
    first, so that no dead slice reads an op after a `scf.forall`, and slices of slices merged,
    so that each producer is read through one slice); `@pconv_forall_<i>_<j>`: share an op
    of that kind between threads by its share `j` and fuse its chain into the `scf.forall`;
    `@pconv_tile_<i>`: tile an op of that kind to register tiles, fuse its chain into the
    innermost loop, mark the loops to peel and the op as tiled (`<kind>:tiled`, the tag step 4
    vectorises, so that step 1 does not tile it again)."""
    assert recipe.fuse is not None
    any_ = "!transform.any_op"
    lines = [
        f"  transform.named_sequence @pconv_chain_{i}(\n"
        f"      %op: {any_} {{transform.readonly}}, %loop: {any_} {{transform.readonly}}) {{\n"
        f'    %func = transform.get_parent_op %loop {{op_name = "func.func"}}'
        f" : ({any_}) -> {any_}\n"
        f"    transform.apply_dce to %func : {any_}\n"
        f"    transform.apply_patterns to %loop {{\n"
        f"      transform.apply_patterns.tensor.merge_consecutive_insert_extract_slice\n"
        f"    }} : {any_}\n"
    ]
    current = "%op"
    for step, operand in enumerate(recipe.fuse):
        lines.append(
            f"    %f{step} = transform.include @pconv_fuse_{operand} failures(propagate)"
            f" ({current}, %loop) : ({any_}, {any_}) -> {any_}\n"
        )
        current = f"%f{step}"
    lines.append("    transform.yield\n  }\n")
    n_loops = len(recipe.loops)
    loops = ", ".join(f"%l{j}" for j in range(n_loops))
    order = f" interchange = {list(recipe.order)}" if recipe.order else ""
    lines.append(
        f"  transform.named_sequence @pconv_tile_{i}(%op: {any_} {{transform.consumed}}) {{\n"
        f"    %tiled, {loops} = transform.structured.tile_using_for %op"
        f" tile_sizes {list(recipe.parallel)}{order} : ({any_}) -> ({_any(n_loops + 1)})\n"
        f"    transform.include @pconv_chain_{i} failures(propagate) (%tiled, %l{n_loops - 1})"
        f" : ({any_}, {any_}) -> ()\n"
    )
    for rank, loop in enumerate(recipe.peel):
        lines.append(f'    transform.annotate %l{loop} "pconv.peel{rank}" : {any_}\n')
    lines.append(
        f'    %kind = transform.param.constant "{kind}:tiled" -> !transform.any_param\n'
        f'    transform.annotate %tiled "{TAG}" = %kind : {any_}, !transform.any_param\n'
        f"    transform.yield\n"
        f"  }}\n"
    )
    for j, share in enumerate(recipe.shares):
        lines.append(
            f"  transform.named_sequence @pconv_forall_{i}_{j}(\n"
            f"      %op: {any_} {{transform.consumed}}) {{\n"
            f"    %tiled, %forall = transform.structured.tile_using_forall %op"
            f" tile_sizes {list(share)} : ({any_}) -> ({any_}, {any_})\n"
            f"    transform.include @pconv_chain_{i} failures(propagate) (%tiled, %forall)"
            f" : ({any_}, {any_}) -> ()\n"
            f"    transform.yield\n"
            f"  }}\n"
        )
    return lines


def _chain_library(recipes: dict[str, _Recipe]) -> list[str]:
    """The named sequences that fuse the chains of convs (steps 0 and 1 of `transform_script`)."""
    chains = [(i, k, r) for i, (k, r) in enumerate(recipes.items()) if r.fuse is not None]
    operands = sorted({o for _, _, r in chains for o in r.fuse or ()})
    return [
        *(_fuse_sequence(o) for o in operands),
        *(line for i, k, r in chains for line in _chain_sequences(i, k, r)),
    ]


def _share_library(recipes: dict[str, _Recipe]) -> list[str]:
    """The named sequences that step 0 of `transform_script` includes."""
    shares = [share for r in recipes.values() for share in r.shares]
    cuts = sorted({c for share in shares for c in _cuts(share)})
    conditions = sorted({c for share in shares for c in _conditions(share)})
    n_shares = max((len(r.shares) for r in recipes.values()), default=0)
    return [
        *(_split_sequence(d, t) for d, t in cuts),
        *(_at_least(d, n) for d, n in conditions),
        *(_share_action(j) for j in range(n_shares)),
    ]


def _share(i: int, kind: str, recipe: _Recipe) -> list[str]:
    """Step 0 of `transform_script` for kind number `i`: each op tagged `kind` takes the first
    of its shares it has enough iterations for, then becomes a `scf.forall` over the share's
    chunks (a dim shared in chunks of more than one iteration is split first, after its last
    whole chunk) around the op on one chunk."""
    if not recipe.shares:
        return []
    pairs: dict[tuple[int, int], int] = {}  # condition -> the first share it selects
    for j, share in enumerate(recipe.shares):
        for condition in _conditions(share):
            pairs.setdefault(condition, j)
    matchers = ", ".join(
        f"@pconv_at_least_{d}_{n} -> @pconv_share{j}" for (d, n), j in pairs.items()
    )
    lines = [
        _match_tag(f"s{i}", kind),
        f"    transform.foreach_match restrict_root in %s{i}\n"
        f"        {matchers}\n"
        f"      : (!transform.any_op) -> !transform.any_op\n",
    ]
    for j, share in enumerate(recipe.shares):
        for d, t in _cuts(share):
            lines.append(_match_tag(f"s{i}_{j}_d{d}", kind, j))
            lines.append(_foreach(f"%s{i}_{j}_d{d}", f"pconv_split_{d}_{t}"))
        if recipe.fuse is not None:
            # A chain: the rests of split ops are tiled to register tiles first (on the
            # calling thread), so that the ops of a chain are read by no later op when they
            # are fused into a `scf.forall` (which would then return them whole).
            lines.append(_match_tag(f"s{i}_{j}_rest", kind, j, rest=True))
            lines.append(_foreach(f"%s{i}_{j}_rest", f"pconv_tile_{i}", "propagate"))
            lines.append(_match_tag(f"s{i}_{j}", kind, j))
            lines.append(_foreach(f"%s{i}_{j}", f"pconv_forall_{i}_{j}", "propagate"))
            continue
        lines.append(_match_tag(f"s{i}_{j}", kind, j))
        lines.append(
            f"    %s{i}_{j}_t, %s{i}_{j}_f = transform.structured.tile_using_forall %s{i}_{j}"
            f" tile_sizes {list(share)} : (!transform.any_op) -> ({_any(2)})\n"
        )
    return lines


def transform_script(kinds: Iterable[str], target: Machine | str = "host") -> str:
    """The transform-dialect library (`@__transform_main`) that shares between threads, tiles,
    peels, vectorises and lowers every op tagged with one of `kinds` for `target` (a chain's
    ops fused into the loops of its root, see the module docstring). A pure function of its
    arguments; with no kind it is a script that does nothing."""
    tiles = vector_tiles(target)
    recipes = {k: r for k in sorted(set(kinds)) if (r := _recipe(k, tiles)) is not None}
    lines = [_HEADER, *_share_library(recipes), *_chain_library(recipes), _MAIN]
    if not recipes:
        return "".join([*lines, _FOOTER])
    lines.append(
        '    %funcs = transform.structured.match ops{["func.func"]} in %root'
        " : (!transform.any_op) -> !transform.any_op\n"
    )
    # 0. Share the outer loops between threads: `scf.forall` (after bufferization
    # `scf.parallel`, then OpenMP) of whole register tiles, so that every chunk has the static
    # shape the steps below need. A chain is fused into each `scf.forall` of its root.
    for i, (kind, recipe) in enumerate(recipes.items()):
        lines.extend(_share(i, kind, recipe))
    # 1. Tile the parallel dims to a register tile; mark the loops to peel, outer ones first.
    # A chain is fused into the innermost loop of its root.
    for i, (kind, recipe) in enumerate(recipes.items()):
        lines.append(_match_tag(f"k{i}", kind))
        if recipe.fuse is not None:  # a chain, fused into the loops of its last op
            lines.append(_foreach(f"%k{i}", f"pconv_tile_{i}", "propagate"))
            continue
        n_loops = len(recipe.loops)
        if n_loops == 0:
            continue
        loops = ", ".join(f"%k{i}_l{j}" for j in range(n_loops))
        order = f" interchange = {list(recipe.order)}" if recipe.order else ""
        lines.append(
            f"    %k{i}_t, {loops} = transform.structured.tile_using_for %k{i}"
            f" tile_sizes {list(recipe.parallel)}{order}"
            f" : (!transform.any_op) -> ({_any(n_loops + 1)})\n"
        )
        for rank, loop in enumerate(recipe.peel):
            lines.append(
                f'    transform.annotate %k{i}_l{loop} "pconv.peel{rank}" : !transform.any_op\n'
            )
    # 2. Peel: outer loops first, then the inner ones (their copies in the peeled part too).
    for rank in range(2):
        lines.append(
            f"    %peel{rank} = transform.structured.match attributes{{pconv.peel{rank}}} in %root"
            " : (!transform.any_op) -> !transform.any_op\n"
        )
        lines.append(_foreach(f"%peel{rank}", "pconv_peel"))
    lines.append(
        "    transform.apply_patterns to %funcs {\n"
        "      transform.apply_patterns.linalg.tiling_canonicalization\n"
        "      transform.apply_patterns.canonicalization\n"
        "    } : !transform.any_op\n"
    )
    # 3. Tile the reductions to one step; the accumulators stay in registers across it.
    for i, (kind, recipe) in enumerate(recipes.items()):
        if not recipe.reduction:
            continue
        lines.append(_match_tag(f"r{i}", kind))
        lines.append(
            f"    %r{i}_t, %r{i}_l = transform.structured.tile_using_for %r{i}"
            f" tile_sizes {list(recipe.reduction)} : (!transform.any_op) -> ({_any(2)})\n"
        )
        lines.append(f'    transform.annotate %r{i}_l "pconv.acc" : !transform.any_op\n')
    # 4. Vectorise.
    for i, (kind, recipe) in enumerate(recipes.items()):
        lines.append(_match_tag(f"v{i}", f"{kind}:tiled" if recipe.fuse is not None else kind))
        sequence = "pconv_vectorize_contraction" if recipe.contraction else "pconv_vectorize"
        lines.append(_foreach(f"%v{i}", sequence))
    # No canonicalization once unit dims are dropped: LLVM 22 folds a `shape_cast` next to a
    # `broadcast` whenever the shapes allow it, which on a square tile turns the broadcast of a
    # weight column (6x1 -> 6x6, rows) into one of a row (llvm/llvm-project#190614): wrong
    # results for convs with a filters x pixels tile such as 6 x 6 (or NEON's 8 x 8).
    lines.append(
        "    transform.apply_patterns to %funcs {\n"
        "      transform.apply_patterns.vector.reduction_to_contract\n"
        "      transform.apply_patterns.vector.transfer_permutation_patterns\n"
        "      transform.apply_patterns.canonicalization\n"
        "    } : !transform.any_op\n"
        "    transform.apply_patterns to %funcs {\n"
        "      transform.apply_patterns.vector.cast_away_vector_leading_one_dim\n"
        "      transform.apply_patterns.vector.drop_unit_dims_with_shape_cast\n"
        "    } : !transform.any_op\n"
        "    transform.apply_cse to %funcs : !transform.any_op\n"
    )
    # 5. Keep accumulators in registers across the reduction loops.
    lines.append(
        "    %acc = transform.structured.match attributes{pconv.acc} in %root"
        " : (!transform.any_op) -> !transform.any_op\n"
    )
    lines.append(_foreach("%acc", "pconv_hoist"))
    # 6. Lower the vector ops: contractions to outer products, then to FMAs.
    lines.append(
        "    transform.apply_patterns to %funcs {\n"
        "      transform.apply_patterns.vector.cast_away_vector_leading_one_dim\n"
        "      transform.apply_patterns.vector.lower_contraction"
        ' lowering_strategy = "outerproduct"\n'
        "      transform.apply_patterns.vector.transfer_permutation_patterns\n"
        "      transform.apply_patterns.vector.lower_multi_reduction"
        ' lowering_strategy = "innerparallel"\n'
        "      transform.apply_patterns.vector.lower_outerproduct\n"
        "      transform.apply_patterns.vector.lower_broadcast\n"
        '      transform.apply_patterns.vector.lower_transpose lowering_strategy = "shuffle_1d"\n'
        "      transform.apply_patterns.vector.lower_shape_cast\n"
        "    } : !transform.any_op\n"
    )
    # 7. With the shape casts lowered, canonicalize: the tensors that hoisting left as loop
    # arguments of the reduction loops (a fused init's tile, written and never read) go.
    lines.append(
        "    transform.apply_patterns to %funcs {\n"
        "      transform.apply_patterns.canonicalization\n"
        "    } : !transform.any_op\n"
    )
    lines.append(_FOOTER)
    return "".join(lines)


__all__ += ["Window", "build_window", "window_of", "MAX_VECTOR_ELEMENTS"]
del func

"""pconv-from-linalg: convolutions with constant weights become `pconv.conv2d`.

Matches `linalg.conv_2d_nchw_fchw` with a constant [F, C, KH, KW] weight as torch-mlir emits it
(any window: 3x3, 1x1, a 7x7 stem, 1x3, ...), and folds what surrounds it into the pconv op:

- a `tensor.pad` of the input with zeros, equal on both sides of H and W -> `padding`;
- an init that is `linalg.broadcast` of an [F] tensor along N, H, W -> the bias operand
  (an init of `linalg.fill` with 0.0 means no bias; any other init leaves the conv alone);
- then, each only when it is the sole user of what comes before it: an element-wise
  `linalg.generic` adding another tensor of the result's shape -> the `residual` operand (a
  ResNet shortcut); a ReLU (`max(x, 0)` as `cmpf`+`select` or `maximumf`, against a scalar or
  a rank-0 tensor zero) -> `relu`; a ReLU followed by `min(x, 6)` (torch's ReLU6 / hardtanh
  0..6) -> `relu6`.

The pconv op replaces the last op folded, where every operand it takes is defined.

Which pattern set each conv gets:

- `mode=infer` (default): the weights are already pruned; no weight changes. A 3x3 conv whose
  every kernel fits a `taps`-tap pattern (default 4, holding the centre) is a pattern layer:
  its kernels' patterns are read from where their nonzeros are, and all pattern layers share
  one set, the patterns the module uses (most frequent first). Every other conv (a dense 3x3
  layer such as the usual unpruned first one, and every other window) is a dense layer: the
  one full mask of its window. In both, an all-zero kernel is a removed one (-1), so
  connectivity pruning is exploited in dense and 1x1 layers too. `taps=9` makes every 3x3
  layer dense; `dense=false` leaves the convs that are not pattern layers as linalg;
  `pointwise=false` leaves the 1x1 convs that keep every kernel as linalg (`compile` does: the
  upstream vectorisation of `pconv_mlir.lowering.vectorize_linalg` runs them as a matrix
  product, measured 10x faster than the one-tap pconv layer; a 1x1 conv with removed kernels
  stays a pconv layer, which skips them).
- `mode=project` with `patterns=K connectivity=R`: one-shot pruning for demos and models not
  trained with ADMM: the K most frequent best-fit patterns over all 3x3 convs, every kernel
  projected onto its best pattern, then 1 kernel in R kept per layer by L2 norm (the first 3x3
  conv, which sees the image, keeps all its kernels unless `skip_first=false`). Other windows
  become dense layers, unchanged. The 3x3 weights change.

Depthwise and grouped convolutions (a `linalg.generic` or another named op) are left alone.

    %p = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] { ... tensor.yield %zero }
    %b = linalg.broadcast ins(%bias) outs(%e) dimensions = [0, 2, 3]
    %c = linalg.conv_2d_nchw_fchw {...} ins(%p, %w) outs(%b)
    %s = linalg.generic {...} ins(%c, %shortcut) outs(%e) { addf }
    %r = linalg.generic {...} ins(%s) outs(%e) { cmpf ugt, select }
  becomes
    %r = pconv.conv2d %x, %w, %bias residual %shortcut : tensor<...> patterns <...>
           kernel_patterns dense<...> strides [1, 1] padding [1, 1] dilation [1, 1] relu
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    Float32Type,
    FloatAttr,
    ModuleOp,
    TensorType,
)
from xdsl.dialects.linalg import ops as linalg
from xdsl.dialects.linalg.attrs import IteratorType
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from pconv_mlir import patterns as pattern_rules
from pconv_mlir.dialects.pconv import Conv2dOp, PatternSetAttr, kernel_patterns_attr
from pconv_mlir.elements import ElementsError, constant_value, dense_constant
from pconv_mlir.errors import OpError, OptionError


@dataclass
class _Match:
    """A linalg conv and the ops around it that fold into one pconv.conv2d."""

    conv: linalg.Conv2DNchwFchwOp
    weight: np.ndarray
    input: SSAValue
    padding: tuple[int, int]
    bias: SSAValue | None
    residual: SSAValue | None = None
    relu: bool = False
    relu6: bool = False
    epilogue: list[Operation] = field(default_factory=list)
    """The element-wise ops folded after the conv, in order; the last one is replaced."""
    folded: list[Operation] = field(default_factory=list)
    """The ops folded before the conv (pad, init), erased when nothing else uses them."""

    @property
    def window(self) -> tuple[int, int]:
        return pattern_rules.window_of(self.weight)

    @property
    def last(self) -> Operation:
        return self.epilogue[-1] if self.epilogue else self.conv


def _is_float_zero(value: SSAValue) -> bool:
    owner = value.owner
    return (
        isinstance(owner, arith.ConstantOp)
        and isinstance(owner.value, FloatAttr)
        and owner.value.value.data == 0.0
    )


def _zero_padding(value: SSAValue) -> tuple[SSAValue, tuple[int, int], tensor.PadOp | None]:
    """(unpadded input, (ph, pw), the pad op) when `value` is a symmetric zero pad of H, W."""
    pad = value.owner
    if not isinstance(pad, tensor.PadOp) or pad.low or pad.high:
        return value, (0, 0), None
    low, high = tuple(pad.static_low.get_values()), tuple(pad.static_high.get_values())
    blocks = list(pad.region.blocks)
    yields = [op for b in blocks[:1] for op in b.ops if isinstance(op, tensor.YieldOp)]
    if (
        len(low) != 4
        or low != high
        or low[:2] != (0, 0)
        or len(blocks) != 1
        or len(yields) != 1
        or len(yields[0].operands) != 1
        or not _is_float_zero(yields[0].operands[0])
    ):
        return value, (0, 0), None
    return pad.source, (int(low[2]), int(low[3])), pad


def _bias(ctx: Context, init: SSAValue, filters: int) -> tuple[bool, SSAValue | None]:
    """(understood, bias): the bias that the conv's init adds, if the init is one we know."""
    owner = init.owner
    if isinstance(owner, linalg.FillOp):
        return len(owner.inputs) == 1 and _is_float_zero(owner.inputs[0]), None
    if isinstance(owner, linalg.BroadcastOp):
        source = owner.input
        dims = tuple(owner.dimensions.get_values())
        if (
            dims == (0, 2, 3)
            and isinstance(source.type, TensorType)
            and source.type.element_type == Float32Type()
            and tuple(source.type.get_shape()) == (filters,)
        ):
            return True, source
    return False, None


def _is_zero_constant(value: SSAValue) -> bool:
    """A scalar 0.0, or a rank-0 tensor constant 0.0 (how torch-mlir spells clamp bounds)."""
    return _constant_float(value) == 0.0


def _constant_float(value: SSAValue) -> float | None:
    owner = value.owner
    if not isinstance(owner, arith.ConstantOp):
        return None
    attr = owner.value
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if (
        isinstance(attr, DenseIntOrFPElementsAttr)
        and isinstance(value.type, TensorType)
        and not value.type.get_shape()
    ):
        try:
            return float(constant_value(None, value).reshape(()))
        except (ElementsError, ValueError):
            return None
    return None


def _elementwise(op: Operation, source: SSAValue) -> tuple[linalg.GenericOp, list] | None:
    """(op, [body arg of each input]) when `op` is an all-parallel linalg.generic reading
    `source` at the identity map, other inputs at the identity or as rank-0 scalars, one
    output at the identity; else None."""
    if not isinstance(op, linalg.GenericOp) or source not in op.inputs or len(op.outputs) != 1:
        return None
    if any(it.data != IteratorType.PARALLEL for it in op.iterator_types):
        return None
    rank = len(source.type.get_shape())
    identity = AffineMap.identity(rank)
    maps = [m.data for m in op.indexing_maps]
    blocks = list(op.body.blocks)
    if len(maps) != len(op.inputs) + 1 or len(blocks) != 1:
        return None
    if len(blocks[0].args) != len(maps) or maps[-1] != identity:
        return None
    for value, amap in zip(op.inputs, maps, strict=False):
        scalar = isinstance(value.type, TensorType) and not value.type.get_shape()
        if amap != identity and not (scalar and not amap.results):
            return None
    if tuple(source.type.get_shape()) != tuple(op.results[0].type.get_shape()):
        return None
    return op, list(blocks[0].args[: len(op.inputs)])


def _yielded(op: linalg.GenericOp) -> tuple[list[Operation], SSAValue] | None:
    body = list(op.body.blocks[0].ops)
    if not body or not isinstance(body[-1], linalg.YieldOp) or len(body[-1].operands) != 1:
        return None
    return body[:-1], body[-1].operands[0]


def _scalar_of(op: linalg.GenericOp, args: list, value: SSAValue) -> float | None:
    """The constant `value` stands for in `op`'s body: a scalar constant, or the body argument
    of a rank-0 constant input."""
    if value in args:
        return _constant_float(op.inputs[args.index(value)])
    return _constant_float(value)


def _clamp_bound(op: Operation, source: SSAValue) -> tuple[str, float] | None:
    """("max", c) when `op` computes max(source, c), ("min", c) for min(source, c); else None."""
    found = _elementwise(op, source)
    if found is None:
        return None
    generic, args = found
    x = args[list(generic.inputs).index(source)]
    body = _yielded(generic)
    if body is None:
        return None
    ops, result = body
    match ops:
        case [arith.CmpfOp() as cmp, arith.SelectOp() as sel] if sel.result == result:
            predicate = cmp.predicate.value.data
            greater = {2, 3, 9, 10}  # ogt oge ugt uge
            less = {4, 5, 11, 12}  # olt ole ult ule
            if sel.cond != cmp.result or x not in (cmp.lhs, cmp.rhs):
                return None
            other = cmp.rhs if cmp.lhs == x else cmp.lhs
            if {sel.lhs, sel.rhs} != {x, other}:
                return None
            bound = _scalar_of(generic, args, other)
            if bound is None:
                return None
            # select(x OP c, x, c): x > c picks x -> max; select(c OP x, x, c) the mirror.
            x_first = cmp.lhs == x
            picks_x = sel.lhs == x
            if predicate in greater:
                kind = "max" if x_first == picks_x else "min"
            elif predicate in less:
                kind = "min" if x_first == picks_x else "max"
            else:
                return None
            return kind, bound
        case [arith.MaximumfOp() | arith.MaxnumfOp() as mx] if mx.result == result:
            other = mx.rhs if mx.lhs == x else mx.lhs
            if x not in (mx.lhs, mx.rhs) or (bound := _scalar_of(generic, args, other)) is None:
                return None
            return "max", bound
        case [arith.MinimumfOp() | arith.MinnumfOp() as mn] if mn.result == result:
            other = mn.rhs if mn.lhs == x else mn.lhs
            if x not in (mn.lhs, mn.rhs) or (bound := _scalar_of(generic, args, other)) is None:
                return None
            return "min", bound
    return None


def _residual_add(op: Operation, source: SSAValue) -> SSAValue | None:
    """The other operand when `op` adds `source` and a tensor of the same shape; else None."""
    found = _elementwise(op, source)
    if found is None or len(found[0].inputs) != 2:
        return None
    generic, args = found
    other = (
        next(v for v in generic.inputs if v != source)
        if generic.inputs[0] != generic.inputs[1]
        else None
    )
    if other is None or tuple(other.type.get_shape()) != tuple(source.type.get_shape()):
        return None
    body = _yielded(generic)
    if body is None:
        return None
    ops, result = body
    match ops:
        case [arith.AddfOp() as add] if add.result == result and {add.lhs, add.rhs} == set(args):
            return other
    return None


def _sole_user(value: SSAValue) -> Operation | None:
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def _fold_epilogue(match: _Match) -> None:
    """Fold the residual add and the activation that follow the conv into `match`."""
    current = match.conv.res[0]
    user = _sole_user(current)
    if user is not None and (other := _residual_add(user, current)) is not None:
        match.residual = other
        match.epilogue.append(user)
        current = user.results[0]
        user = _sole_user(current)
    if user is None or _clamp_bound(user, current) != ("max", 0.0):
        return
    match.relu = True
    match.epilogue.append(user)
    current = user.results[0]
    user = _sole_user(current)
    if user is not None and _clamp_bound(user, current) == ("min", 6.0):
        match.relu, match.relu6 = False, True
        match.epilogue.append(user)


def match_conv(ctx: Context, conv: linalg.Conv2DNchwFchwOp) -> _Match | None:
    """The folded form of `conv`, or None when it is not a conv pconv handles."""
    if len(conv.inputs) != 2 or len(conv.outputs) != 1 or len(conv.res) != 1:
        return None
    x, w = conv.inputs
    if not all(
        isinstance(v.type, TensorType) and v.type.element_type == Float32Type()
        for v in (x, w, conv.outputs[0])
    ):
        return None
    w_shape = tuple(w.type.get_shape())
    if len(w_shape) != 4 or any(d < 1 for d in w_shape):
        return None
    if len(conv.strides.get_values()) != 2 or len(conv.dilations.get_values()) != 2:
        return None
    try:
        weight = constant_value(ctx, w)
    except ElementsError as e:
        raise OpError(
            conv,
            f"its weight cannot be read: {e} (a file printed without its dialect_resources "
            "section has no weights; print modules with pconv_mlir.ir.print_module or pconv-opt)",
        ) from None
    if weight is None:
        return None
    understood, bias = _bias(ctx, conv.outputs[0], w_shape[0])
    if not understood:
        return None
    source, padding, pad = _zero_padding(x)
    match = _Match(conv, weight, source, padding, bias)
    if pad is not None:
        match.folded.append(pad)
    match.folded.append(conv.outputs[0].owner)
    _fold_epilogue(match)
    return match


# --------------------------------------------------------------------------------------------
# Which pattern set each conv gets
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """What a matched conv becomes: its pattern set, pattern ids and (projected) weight."""

    patterns: PatternSetAttr
    ids: np.ndarray
    weight: np.ndarray | None = None
    """The new weight in project mode; None when the weight does not change."""


def _dense(m: _Match) -> _Layer:
    return _Layer(PatternSetAttr.dense(m.window), pattern_rules.dense_ids(m.weight))


def _layer_error(m: _Match, number: int, error: pattern_rules.PatternError) -> OpError:
    shape = "x".join(map(str, m.weight.shape))
    return OpError(m.conv, f"conv #{number} ({shape}): {error}")


def infer_layers(matches: list[_Match], taps: int, dense: bool) -> list[_Layer | None]:
    """Per conv: a pattern layer (the module's shared set) where every kernel fits, else a
    dense layer (None when `dense` is false: the conv is left alone)."""
    fitting = [i for i, m in enumerate(matches) if pattern_rules.fits_patterns(m.weight, taps)]
    layers: list[_Layer | None] = [_dense(m) if dense else None for m in matches]
    if not fitting:
        return layers
    try:
        patterns, ids = pattern_rules.infer_pattern_set([matches[i].weight for i in fitting], taps)
    except pattern_rules.PatternError as e:
        number = fitting[e.layer or 0]
        raise _layer_error(matches[number], number, e) from None
    pattern_set = PatternSetAttr.get(patterns, taps=taps)
    for i, layer_ids in zip(fitting, ids, strict=True):
        layers[i] = _Layer(pattern_set, layer_ids)
    return layers


def project_layers(
    matches: list[_Match], k: int, rate: float, skip_first: bool
) -> list[_Layer | None]:
    """One-shot projection of the 3x3 convs; the others are dense layers."""
    squares = [i for i, m in enumerate(matches) if m.window == pattern_rules.SQUARE]
    layers: list[_Layer | None] = [_dense(m) for m in matches]
    if not squares:
        return layers
    weights = [matches[i].weight for i in squares]
    patterns = pattern_rules.select_pattern_set(weights, k=k)
    ids = pattern_rules.project_layers(weights, patterns, rate, exempt=[0] if skip_first else [])
    pattern_set = PatternSetAttr.get(patterns, taps=len(patterns[0]))
    for i, w, layer_ids in zip(squares, weights, ids, strict=True):
        projected = np.where(pattern_rules.kernel_mask(layer_ids, patterns), w, 0)
        layers[i] = _Layer(pattern_set, layer_ids, projected.astype(np.float32))
    return layers


@dataclass(frozen=True)
class PconvFromLinalgPass(ModulePass):
    """Turns linalg convolutions with constant weights into pconv.conv2d, choosing per conv a
    pattern or a dense layer.

    See the module docstring for what is folded, the two modes and their options.
    """

    name = "pconv-from-linalg"

    mode: str = "infer"
    patterns: int = 8
    connectivity: float = 3.6
    taps: int = 4
    skip_first: bool = True
    dense: bool = True
    pointwise: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("infer", "project"):
            raise OptionError(f"mode '{self.mode}' is not 'infer' or 'project'")
        if not 1 <= self.taps <= 9:
            raise OptionError(f"taps = {self.taps} is outside 1..9")
        if not 1 <= self.patterns <= 56:
            raise OptionError(f"patterns = {self.patterns} is outside 1..56")
        if not self.connectivity >= 1:
            raise OptionError(f"connectivity = {self.connectivity} is below 1")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        matches = [
            m
            for conv in op.walk()
            if isinstance(conv, linalg.Conv2DNchwFchwOp)
            and (m := match_conv(ctx, conv)) is not None
        ]
        if not matches:
            return
        _one_claim_per_epilogue(matches)
        if self.mode == "infer":
            layers = infer_layers(matches, self.taps, self.dense)
        else:
            layers = project_layers(matches, self.patterns, self.connectivity, self.skip_first)
        if not self.pointwise:  # 1x1 convs that keep every kernel stay for upstream vectors
            for i, (m, layer) in enumerate(zip(matches, layers, strict=True)):
                if m.window == (1, 1) and layer is not None and bool((layer.ids >= 0).all()):
                    layers[i] = None
        for m, layer in zip(matches, layers, strict=True):
            if layer is not None:
                _rewrite(m, layer)


def _one_claim_per_epilogue(matches: list[_Match]) -> None:
    """Give each residual add (and the activation after it) to the first conv that claims it.

    Both convs of a ResNet downsampling block feed the same add, and each is its add's sole
    operand producer: the later conv keeps only its own result (no epilogue)."""
    claimed: set[Operation] = set()
    for m in matches:
        if any(op in claimed for op in m.epilogue):
            m.epilogue, m.residual, m.relu, m.relu6 = [], None, False, False
        claimed.update(m.epilogue)


def _rewrite(m: _Match, layer: _Layer) -> None:
    conv, last = m.conv, m.last
    # Re-read the input and the shortcut: rewriting an earlier conv may have replaced them.
    m.input, m.padding, _ = _zero_padding(conv.inputs[0])
    if m.residual is not None:
        m.residual = next(v for v in m.epilogue[0].operands[:2] if v != conv.res[0])
    where = InsertPoint.before(last)
    weight_value = conv.inputs[1]
    if layer.weight is not None:
        constant = dense_constant(layer.weight)
        Rewriter.insert_op(constant, where)
        weight_value = constant.result
    new = Conv2dOp(
        m.input,
        weight_value,
        m.bias,
        last.results[0].type,
        layer.patterns,
        kernel_patterns_attr(layer.ids),
        tuple(int(v) for v in conv.strides.get_values()),
        m.padding,
        tuple(int(v) for v in conv.dilations.get_values()),
        relu=m.relu,
        residual=m.residual,
        relu6=m.relu6,
    )
    new.location = conv.location
    Rewriter.insert_op(new, where)
    last.results[0].replace_all_uses_with(new.result)
    for folded in reversed(m.epilogue):
        Rewriter.erase_op(folded)
    Rewriter.erase_op(conv)
    _erase_dead([*m.folded, *m.epilogue, conv])


_PURE = (arith.ConstantOp, tensor.EmptyOp, tensor.PadOp, linalg.FillOp, linalg.BroadcastOp)


def _erase_dead(roots: list[Operation]) -> None:
    """Erase the ops folded into a pconv op, and what only they used, once nothing uses them."""
    pending = [o.owner for r in roots for o in r.operands if isinstance(o.owner, Operation)]
    pending += [r for r in roots if r.parent is not None]
    while pending:
        op = pending.pop()
        if op.parent is None or not isinstance(op, _PURE) or any(r.uses for r in op.results):
            continue
        operands = [o.owner for o in op.operands if isinstance(o.owner, Operation)]
        nested = [o.owner for r in op.regions for b in r.blocks for x in b.ops for o in x.operands]
        Rewriter.erase_op(op)
        pending += operands + [n for n in nested if isinstance(n, Operation)]

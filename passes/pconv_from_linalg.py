"""pconv-from-linalg: 3x3 convolutions with constant weights become `pconv.conv2d`.

Matches `linalg.conv_2d_nchw_fchw` with a constant [F, C, 3, 3] weight as torch-mlir emits it,
and folds what surrounds it into the pconv op:

- a `tensor.pad` of the input with zeros, equal on both sides of H and W -> `padding`;
- an init that is `linalg.broadcast` of an [F] tensor along N, H, W -> the bias operand
  (an init of `linalg.fill` with 0.0 means no bias; any other init leaves the conv alone);
- a sole user that is an elementwise ReLU `linalg.generic` (`cmpf ugt` + `select`, or
  `maximumf` with 0.0) -> `relu`.

Two modes:

- `mode=infer` (default): the weights are already pattern-pruned. Each kernel's pattern is read
  from where its nonzeros are, an all-zero kernel is a removed one (-1), and the pattern set is
  the patterns the whole module uses (most frequent first). No weight changes. A kernel with
  more nonzeros than `taps` (default 4), or whose taps miss the centre, is a diagnostic naming
  the conv and the kernel. `taps=9` turns dense convs into pconv with the dense pattern set.
- `mode=project` with `patterns=K connectivity=R`: one-shot pruning for demos and models not
  trained with ADMM: the K most frequent best-fit patterns over all 3x3 convs, every kernel
  projected onto its best pattern, then 1 kernel in R kept per layer by L2 norm (the first conv,
  which sees the image, keeps all its kernels unless `skip_first=false`). The weights change.

Other convolutions (1x1, depthwise, grouped, strided 7x7 stems) are left as linalg.

    %p = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] { ... tensor.yield %zero }
    %b = linalg.broadcast ins(%bias) outs(%e) dimensions = [0, 2, 3]
    %c = linalg.conv_2d_nchw_fchw {...} ins(%p, %w) outs(%b)
    %r = linalg.generic {...} ins(%c) outs(%e) { cmpf ugt, select }
  becomes
    %r = pconv.conv2d %x, %w, %bias patterns <...> kernel_patterns dense<...> strides [1, 1]
           padding [1, 1] dilation [1, 1] relu
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import (
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
from xdsl.rewriter import Rewriter

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
    relu_op: linalg.GenericOp | None
    folded: list[Operation] = field(default_factory=list)


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


def _is_relu(op: Operation, source: SSAValue) -> bool:
    """Whether `op` is an elementwise `max(source, 0)` linalg.generic."""
    if not isinstance(op, linalg.GenericOp) or tuple(op.inputs) != (source,):
        return False
    if any(it.data != IteratorType.PARALLEL for it in op.iterator_types):
        return False
    rank = len(source.type.get_shape())
    if any(m.data != AffineMap.identity(rank) for m in op.indexing_maps):
        return False
    blocks = list(op.body.blocks)
    if len(blocks) != 1 or len(blocks[0].args) != 2 or len(op.outputs) != 1:
        return False
    body = list(blocks[0].ops)
    arg = blocks[0].args[0]
    match body:
        case [arith.CmpfOp() as cmp, arith.SelectOp() as sel, linalg.YieldOp() as yld] if (
            len(yld.operands) == 1
        ):
            return (
                cmp.predicate.value.data in (2, 3, 9, 10)  # ogt, oge, ugt, uge
                and cmp.lhs == arg
                and _is_float_zero(cmp.rhs)
                and sel.cond == cmp.result
                and sel.lhs == arg
                and _is_float_zero(sel.rhs)
                and yld.operands[0] == sel.result
            )
        case [arith.MaximumfOp() | arith.MaxnumfOp() as mx, linalg.YieldOp() as yld] if (
            len(yld.operands) == 1
        ):
            return (
                {mx.lhs, mx.rhs} & {arg}
                and any(_is_float_zero(v) for v in (mx.lhs, mx.rhs))
                and yld.operands[0] == mx.result
            ) is True
    return False


def match_conv(ctx: Context, conv: linalg.Conv2DNchwFchwOp) -> _Match | None:
    """The folded form of `conv`, or None when it is not a 3x3 conv pconv handles."""
    if len(conv.inputs) != 2 or len(conv.outputs) != 1 or len(conv.res) != 1:
        return None
    x, w = conv.inputs
    if not all(
        isinstance(v.type, TensorType) and v.type.element_type == Float32Type()
        for v in (x, w, conv.outputs[0])
    ):
        return None
    w_shape = tuple(w.type.get_shape())
    if len(w_shape) != 4 or w_shape[2:] != (3, 3):
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
    match = _Match(conv, weight, source, padding, bias, None)
    if pad is not None:
        match.folded.append(pad)
    match.folded.append(conv.outputs[0].owner)
    uses = list(conv.res[0].uses)
    if len(uses) == 1 and _is_relu(uses[0].operation, conv.res[0]):
        match.relu_op = uses[0].operation
    return match


def _layer_error(matches: list[_Match], error: pattern_rules.PatternError) -> OpError:
    """The pattern error of conv number `error.layer`, located at that conv."""
    number = error.layer or 0
    m = matches[number]
    shape = "x".join(map(str, m.weight.shape))
    return OpError(m.conv, f"3x3 conv #{number} ({shape}): {error}")


def infer_patterns(
    matches: list[_Match], taps: int, centre: bool
) -> tuple[list[tuple[int, ...]], list[np.ndarray]]:
    """The module's pattern set (most frequent first) and each conv's pattern ids."""
    try:
        return pattern_rules.infer_pattern_set([m.weight for m in matches], taps, centre)
    except pattern_rules.PatternError as e:
        raise _layer_error(matches, e) from None


def project_patterns(
    matches: list[_Match], k: int, rate: float, skip_first: bool
) -> tuple[list[tuple[int, ...]], list[np.ndarray], list[np.ndarray]]:
    """One-shot projection: (pattern set, ids per conv, projected weights per conv)."""
    weights = [m.weight for m in matches]
    patterns = pattern_rules.select_pattern_set(weights, k=k)
    ids = pattern_rules.project_layers(weights, patterns, rate, exempt=[0] if skip_first else [])
    projected = [
        np.where(pattern_rules.kernel_mask(layer_ids, patterns), w, 0).astype(np.float32)
        for w, layer_ids in zip(weights, ids, strict=True)
    ]
    return patterns, ids, projected


@dataclass(frozen=True)
class PconvFromLinalgPass(ModulePass):
    """Turns 3x3 linalg convolutions with constant weights into pconv.conv2d.

    See the module docstring for what is folded, the two modes and their options.
    """

    name = "pconv-from-linalg"

    mode: str = "infer"
    patterns: int = 8
    connectivity: float = 3.6
    taps: int = 4
    skip_first: bool = True

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
        new_weights: list[np.ndarray | None] = [None] * len(matches)
        if self.mode == "infer":
            patterns, ids = infer_patterns(matches, self.taps, centre=True)
        else:
            patterns, ids, projected = project_patterns(
                matches, self.patterns, self.connectivity, self.skip_first
            )
            new_weights = list(projected)
        pattern_set = PatternSetAttr.get(patterns, taps=self.taps)
        for m, layer_ids, weight in zip(matches, ids, new_weights, strict=True):
            self._rewrite(m, pattern_set, layer_ids, weight)

    @staticmethod
    def _rewrite(
        m: _Match, pattern_set: PatternSetAttr, ids: np.ndarray, weight: np.ndarray | None
    ) -> None:
        conv = m.conv
        # Re-read the operands: rewriting an earlier conv may have replaced this one's input.
        m.input, m.padding, _ = _zero_padding(conv.inputs[0])
        weight_value = conv.inputs[1]
        if weight is not None:
            constant = dense_constant(weight)
            Rewriter.insert_op(constant, _before(conv))
            weight_value = constant.result
        target = m.relu_op if m.relu_op is not None else conv
        result_type = target.results[0].type
        new = Conv2dOp(
            m.input,
            weight_value,
            m.bias,
            result_type,
            pattern_set,
            kernel_patterns_attr(ids),
            tuple(int(v) for v in conv.strides.get_values()),
            m.padding,
            tuple(int(v) for v in conv.dilations.get_values()),
            relu=m.relu_op is not None,
        )
        new.location = conv.location
        Rewriter.insert_op(new, _before(conv))
        if m.relu_op is not None:
            m.relu_op.results[0].replace_all_uses_with(new.result)
        conv.res[0].replace_all_uses_with(new.result)
        candidates: list[Operation] = [*m.folded, conv]
        if m.relu_op is not None:
            candidates.append(m.relu_op)
        Rewriter.erase_op(conv)
        if m.relu_op is not None:
            Rewriter.erase_op(m.relu_op)
        _erase_dead(candidates)


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


def _before(op: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.before(op)

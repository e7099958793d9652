"""The `pconv` dialect: pattern-sparse 3x3 convolution, after PatDNN and PCONV.

Two levels of the same computation, both on tensors in NCHW / FCHW layout:

- `pconv.conv2d` carries the (masked) dense weight, the `#pconv.pattern_set` and one pattern id
  per kernel (`-1` for a kernel removed by connectivity pruning);
- `pconv.fkw_conv2d` carries the weights packed in PatDNN's FKW arrays (`offset`, `reorder`,
  `index`, `stride`, `weight`) and a `#pconv.schedule` for the code generator.

Taps of a 3x3 kernel are numbered row-major, `tap = 3 * row + col`, so the centre is tap 4:

    0 1 2
    3 4 5
    6 7 8
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
from xdsl.dialects.arith import ConstantOp
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    Float32Type,
    IntAttr,
    IntegerType,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from pconv_mlir.elements import dense_array

WINDOW = 3
"""Patterns are defined over a 3x3 window."""
WINDOW_TAPS = WINDOW * WINDOW
CENTRE_TAP = 4
DEFAULT_TAPS = 4


def tap_offset(tap: int) -> tuple[int, int]:
    """The (row, col) position of `tap` inside the 3x3 window."""
    return divmod(tap, WINDOW)


def _format_mask(mask: Sequence[int]) -> str:
    return "[" + ", ".join(str(t) for t in mask) + "]"


@irdl_attr_definition
class PatternSetAttr(ParametrizedAttribute):
    """A set of K kernel patterns over a 3x3 window, each keeping the same number of taps.

    A pattern lists the kept taps (row-major, 0..8). `taps` is the number every pattern keeps;
    unless `centre = false`, every pattern must keep the centre tap 4.

        #pconv.pattern_set<[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>
        #pconv.pattern_set<[[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9>      // the dense set
    """

    name = "pconv.pattern_set"

    masks: ArrayAttr[ArrayAttr[IntAttr]]
    taps: IntAttr
    centre: IntAttr
    """1 when every pattern must include the centre tap, 0 otherwise."""

    @staticmethod
    def get(
        patterns: Iterable[Iterable[int]], taps: int | None = None, centre: bool = True
    ) -> PatternSetAttr:
        """Build a set from tap lists; `taps` defaults to the size of the first pattern."""
        masks = [sorted(int(t) for t in p) for p in patterns]
        if taps is None:
            taps = len(masks[0]) if masks else DEFAULT_TAPS
        return PatternSetAttr(
            ArrayAttr(ArrayAttr(IntAttr(t) for t in m) for m in masks),
            IntAttr(taps),
            IntAttr(int(centre)),
        )

    @staticmethod
    def dense() -> PatternSetAttr:
        """The set holding the single 9-tap mask: an ordinary dense 3x3 convolution."""
        return PatternSetAttr.get([range(WINDOW_TAPS)], taps=WINDOW_TAPS)

    @property
    def patterns(self) -> list[tuple[int, ...]]:
        """The patterns as tuples of tap indices."""
        return [tuple(t.data for t in m) for m in self.masks]

    def __len__(self) -> int:
        return len(self.masks)

    def mask_array(self) -> np.ndarray:
        """A boolean array [K, 3, 3]: entry k is True where pattern k keeps a tap."""
        out = np.zeros((len(self.masks), WINDOW_TAPS), dtype=bool)
        for k, pattern in enumerate(self.patterns):
            out[k, list(pattern)] = True
        return out.reshape(len(self.masks), WINDOW, WINDOW)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            masks = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE,
                lambda: parser.parse_comma_separated_list(
                    parser.Delimiter.SQUARE, parser.parse_integer
                ),
            )
            taps, centre = DEFAULT_TAPS, True
            while parser.parse_optional_punctuation(",") is not None:
                key = parser.parse_identifier()
                parser.parse_punctuation("=")
                if key == "taps":
                    taps = parser.parse_integer(allow_boolean=False)
                elif key == "centre":
                    centre = parser.parse_boolean()
                else:
                    parser.raise_error(f"unknown pattern_set parameter '{key}'")
        return (
            ArrayAttr(ArrayAttr(IntAttr(t) for t in m) for m in masks),
            IntAttr(taps),
            IntAttr(int(centre)),
        )

    def print_parameters(self, printer: Printer) -> None:
        body = ", ".join(_format_mask(p) for p in self.patterns)
        printer.print_string(f"<[{body}], taps = {self.taps.data}")
        if not self.centre.data:
            printer.print_string(", centre = false")
        printer.print_string(">")

    def verify(self) -> None:
        taps = self.taps.data
        if not 1 <= taps <= WINDOW_TAPS:
            raise VerifyException(f"pattern_set taps = {taps} is outside 1..{WINDOW_TAPS}")
        if not self.masks.data:
            raise VerifyException("pattern_set holds no pattern")
        seen: dict[tuple[int, ...], int] = {}
        for k, pattern in enumerate(self.patterns):
            bad = [t for t in pattern if not 0 <= t < WINDOW_TAPS]
            if bad:
                raise VerifyException(f"pattern {k} has tap {bad[0]} outside the 3x3 window 0..8")
            if len(set(pattern)) != len(pattern):
                raise VerifyException(f"pattern {k} {_format_mask(pattern)} repeats a tap")
            if len(pattern) != taps:
                raise VerifyException(f"pattern {k} has {len(pattern)} taps, the set allows {taps}")
            if self.centre.data and CENTRE_TAP not in pattern:
                raise VerifyException(f"pattern {k} {_format_mask(pattern)} lacks the centre tap 4")
            key = tuple(sorted(pattern))
            if key in seen:
                raise VerifyException(
                    f"pattern {k} {_format_mask(pattern)} duplicates pattern {seen[key]}"
                )
            seen[key] = k


@irdl_attr_definition
class ScheduleAttr(ParametrizedAttribute):
    """The register tile of one FKW convolution: chosen per layer by the tuner.

    `vector_width` lanes along the output row, `unroll_rows` output rows and `unroll_cols`
    vectors per row held in registers while a filter's kernels stream past; each output vector
    is summed in `partial_sums` independent accumulators (taps alternate between them) so that
    multiply-adds do not wait on one another; `unroll_filters` consecutive stored filters run
    their kernel loops in lock-step (FKR puts filters of the same length and pattern mix next
    to each other), so there are fewer loop exits per kernel; `tile_channels` > 0 splits the
    input channels into blocks of that many, all filters running over one block before the
    next, so a tile's input rows stay in L1 (0: no blocking). The code generator shrinks the
    tile to the output when the output is smaller. Omitted keys take their defaults.

        #pconv.schedule<vector_width = 8, unroll_rows = 4, unroll_cols = 2, partial_sums = 1,
                        unroll_filters = 1, tile_channels = 0>
    """

    name = "pconv.schedule"

    vector_width: IntAttr
    unroll_rows: IntAttr
    unroll_cols: IntAttr
    partial_sums: IntAttr
    unroll_filters: IntAttr
    tile_channels: IntAttr

    DEFAULTS: ClassVar[dict[str, int]] = {
        "vector_width": 8,
        "unroll_rows": 4,
        "unroll_cols": 2,
        "partial_sums": 1,
        "unroll_filters": 1,
        "tile_channels": 0,
    }

    @staticmethod
    def get(**values: int) -> ScheduleAttr:
        """A schedule from keyword values; missing keys take `DEFAULTS`."""
        unknown = set(values) - set(ScheduleAttr.DEFAULTS)
        if unknown:
            raise ValueError(f"unknown schedule parameter '{sorted(unknown)[0]}'")
        merged = ScheduleAttr.DEFAULTS | values
        return ScheduleAttr(*(IntAttr(merged[k]) for k in ScheduleAttr.DEFAULTS))

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k).data for k in self.DEFAULTS}

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, int] = {}

        def parse_entry() -> None:
            key = parser.parse_identifier()
            if key not in cls.DEFAULTS:
                parser.raise_error(f"unknown schedule parameter '{key}'")
            if key in values:
                parser.raise_error(f"schedule parameter '{key}' given twice")
            parser.parse_punctuation("=")
            values[key] = parser.parse_integer(allow_boolean=False)

        if parser.parse_optional_punctuation("<") is not None:
            if parser.parse_optional_punctuation(">") is None:
                parser.parse_comma_separated_list(parser.Delimiter.NONE, parse_entry)
                parser.parse_punctuation(">")
        merged = cls.DEFAULTS | values
        return tuple(IntAttr(merged[k]) for k in cls.DEFAULTS)

    def print_parameters(self, printer: Printer) -> None:
        body = ", ".join(f"{k} = {v}" for k, v in self.as_dict().items())
        printer.print_string(f"<{body}>")

    def verify(self) -> None:
        for key, value in self.as_dict().items():
            least = 0 if key == "tile_channels" else 1
            if value < least:
                raise VerifyException(f"schedule {key} = {value} must be at least {least}")
        width = self.vector_width.data
        if width & (width - 1):
            raise VerifyException(f"schedule vector_width = {width} is not a power of two")


# --------------------------------------------------------------------------------------------
# Shared verification helpers
# --------------------------------------------------------------------------------------------


def _static_shape(value: SSAValue, what: str) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    shape = tuple(value.type.get_shape())
    if any(d < 0 for d in shape):
        raise VerifyException(f"{what} has a dynamic shape {value.type}; pconv needs static shapes")
    return shape


def _pair(attr: DenseArrayBase, what: str, minimum: int) -> tuple[int, int]:
    values = tuple(attr.get_values())
    if len(values) != 2:
        raise VerifyException(f"{what} has {len(values)} values, expected 2 (height, width)")
    for v in values:
        if v < minimum:
            raise VerifyException(f"{what} value {v} is below {minimum}")
    return (int(values[0]), int(values[1]))


def conv_output_size(size: int, stride: int, padding: int, dilation: int) -> int:
    """Output extent of a 3x3 convolution along one axis."""
    return (size + 2 * padding - dilation * (WINDOW - 1) - 1) // stride + 1


def conv_output_shape(
    x_shape: Sequence[int],
    filters: int,
    strides: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, int, int, int]:
    """NCHW result shape of a 3x3 convolution of an input of `x_shape` with `filters` filters."""
    n, _c, h, w = x_shape
    oh = conv_output_size(h, strides[0], padding[0], dilation[0])
    ow = conv_output_size(w, strides[1], padding[1], dilation[1])
    return (n, filters, oh, ow)


def _window_properties(
    strides: Sequence[int], padding: Sequence[int], dilation: Sequence[int], relu: bool
) -> dict[str, Attribute]:
    """The window properties both pconv ops carry; `window_of` reads them back."""
    properties: dict[str, Attribute] = {
        "strides": DenseArrayBase.from_list(i64, strides),
        "padding": DenseArrayBase.from_list(i64, padding),
        "dilation": DenseArrayBase.from_list(i64, dilation),
    }
    if relu:
        properties["relu"] = UnitAttr()
    return properties


def window_of(op: Conv2dOp | FkwConv2dOp) -> dict[str, Any]:
    """The window of a pconv op as constructor keywords: strides, padding, dilation, relu."""
    return {
        "strides": tuple(int(v) for v in op.strides.get_values()),
        "padding": tuple(int(v) for v in op.padding.get_values()),
        "dilation": tuple(int(v) for v in op.dilation.get_values()),
        "relu": op.relu is not None,
    }


def dense_values(value: SSAValue) -> np.ndarray | None:
    """The contents of `value` when it is an `arith.constant` holding dense elements."""
    owner = value.owner
    if not isinstance(owner, ConstantOp):
        return None
    attr = owner.value
    if not isinstance(attr, DenseIntOrFPElementsAttr):
        return None
    return dense_array(attr, copy=False)


def _conv_common_verify(
    op: Conv2dOp | FkwConv2dOp, filters: int, channels_in_weight: int | None
) -> None:
    """Checks shared by both levels: input/result shapes, strides, padding, dilation, bias."""
    in_shape = _static_shape(op.input, "input")
    out_shape = _static_shape(op.result, "result")
    if len(in_shape) != 4:
        raise VerifyException(f"input must be 4-D NCHW, got {op.input.type}")
    if len(out_shape) != 4:
        raise VerifyException(f"result must be 4-D NCHW, got {op.result.type}")
    n, c, h, w = in_shape
    if channels_in_weight is not None and channels_in_weight != c:
        raise VerifyException(
            f"weight has {channels_in_weight} input channels but the input has {c}"
        )
    sh, sw = _pair(op.strides, "strides", 1)
    ph, pw = _pair(op.padding, "padding", 0)
    dh, dw = _pair(op.dilation, "dilation", 1)
    oh, ow = conv_output_size(h, sh, ph, dh), conv_output_size(w, sw, pw, dw)
    if oh < 1 or ow < 1:
        raise VerifyException(f"a {h}x{w} input is too small for this 3x3 window")
    expected = (n, filters, oh, ow)
    if out_shape != expected:
        raise VerifyException(
            f"result shape {'x'.join(map(str, out_shape))} does not match the expected "
            f"{'x'.join(map(str, expected))}"
        )
    if op.bias is not None:
        bias_shape = _static_shape(op.bias, "bias")
        if bias_shape != (filters,):
            raise VerifyException(
                f"bias shape {'x'.join(map(str, bias_shape))} does not match {filters} filters"
            )


_F32_TENSOR = TensorType[Float32Type]
_I32_TENSOR = TensorType[IntegerType]
_PAIR = DenseArrayBase.constr(i64)
_I32_ARRAY = DenseArrayBase.constr(IntegerType(32))


def _verify_grouping(op: Conv2dOp | FkwConv2dOp, filters: int, order_required: bool) -> None:
    """filter_order is a permutation of the filters; filter_groups rise from 0 to F."""
    order = getattr(op, "filter_order", None)
    groups = op.filter_groups
    if order is not None:
        values = [int(v) for v in order.get_values()]
        if sorted(values) != list(range(filters)):
            raise VerifyException(
                f"filter_order {values} is not a permutation of the {filters} filters"
            )
    elif groups is not None and order_required:
        raise VerifyException("filter_groups needs a filter_order")
    if groups is not None:
        bounds = [int(v) for v in groups.get_values()]
        if (
            len(bounds) < 2
            or bounds[0] != 0
            or bounds[-1] != filters
            or any(b <= a for a, b in pairwise(bounds))
        ):
            raise VerifyException(
                f"filter_groups {bounds} must rise strictly from 0 to the {filters} filters"
            )


@irdl_op_definition
class Conv2dOp(IRDLOperation):
    """Pattern-sparse 2-D convolution, NCHW input and FCHW 3x3 weight, on tensors.

    Kernel `weight[f, c]` keeps only the taps of pattern `kernel_patterns[f, c]` of the set; an id
    of -1 marks a kernel removed by connectivity pruning. Optional bias and fused ReLU.

        %y = pconv.conv2d %x, %w, %b patterns <[[1, 3, 4, 5]], taps = 4>
               kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1]
               dilation [1, 1] relu
               : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>, tensor<1xf32>) -> tensor<1x1x8x8xf32>

    In the generic form the properties are full attributes
    (`patterns = #pconv.pattern_set<...>`, `strides = array<i64: 1, 1>`).
    """

    name = "pconv.conv2d"

    input = operand_def(_F32_TENSOR)
    weight = operand_def(_F32_TENSOR)
    bias = opt_operand_def(_F32_TENSOR)
    result = result_def(_F32_TENSOR)

    patterns = prop_def(PatternSetAttr)
    kernel_patterns = prop_def(DenseIntOrFPElementsAttr)
    strides = prop_def(_PAIR)
    padding = prop_def(_PAIR)
    dilation = prop_def(_PAIR)
    relu = opt_prop_def(UnitAttr)
    filter_order = opt_prop_def(_I32_ARRAY)
    """Set by pconv-fkr: the order in which filters are stored and computed (a permutation)."""
    filter_groups = opt_prop_def(_I32_ARRAY)
    """Set by pconv-fkr: group boundaries in `filter_order`, rising from 0 to F."""

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? `patterns` $patterns "
        "`kernel_patterns` $kernel_patterns `strides` $strides `padding` $padding "
        "`dilation` $dilation (`relu` $relu^)? (`filter_order` $filter_order^)? "
        "(`filter_groups` $filter_groups^)? attr-dict `:` functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        bias: SSAValue | None,
        result_type: Attribute,
        patterns: PatternSetAttr,
        kernel_patterns: DenseIntOrFPElementsAttr,
        strides: Sequence[int] = (1, 1),
        padding: Sequence[int] = (0, 0),
        dilation: Sequence[int] = (1, 1),
        relu: bool = False,
        filter_order: Sequence[int] | None = None,
        filter_groups: Sequence[int] | None = None,
    ):
        properties: dict[str, Attribute] = {
            "patterns": patterns,
            "kernel_patterns": kernel_patterns,
            **_window_properties(strides, padding, dilation, relu),
        }
        if filter_order is not None:
            properties["filter_order"] = DenseArrayBase.from_list(IntegerType(32), filter_order)
        if filter_groups is not None:
            properties["filter_groups"] = DenseArrayBase.from_list(IntegerType(32), filter_groups)
        super().__init__(
            operands=[input, weight, [] if bias is None else [bias]],
            result_types=[result_type],
            properties=properties,
        )

    def pattern_ids(self) -> np.ndarray:
        """The per-kernel pattern ids as an int array [F, C]."""
        return dense_array(self.kernel_patterns, copy=False).astype(np.int64)

    def verify_(self) -> None:
        w_shape = _static_shape(self.weight, "weight")
        if len(w_shape) != 4 or w_shape[2:] != (WINDOW, WINDOW):
            raise VerifyException(f"weight must be FxCx3x3, got {'x'.join(map(str, w_shape))}")
        filters, channels = w_shape[0], w_shape[1]
        _conv_common_verify(self, filters, channels)

        ids_attr = self.kernel_patterns
        if not isinstance(ids_attr.get_element_type(), IntegerType):
            raise VerifyException("kernel_patterns must hold integers")
        ids_shape = tuple(ids_attr.get_shape())
        if ids_shape != (filters, channels):
            raise VerifyException(
                f"kernel_patterns shape {'x'.join(map(str, ids_shape))} does not match the "
                f"{filters}x{channels} kernels of the weight"
            )
        ids = self.pattern_ids()
        count = len(self.patterns)
        bad = np.argwhere((ids < -1) | (ids >= count))
        if bad.size:
            f, c = (int(v) for v in bad[0])
            raise VerifyException(
                f"kernel ({f}, {c}) has pattern id {int(ids[f, c])}, the set has {count} "
                f"patterns (ids -1..{count - 1})"
            )

        _verify_grouping(self, filters, order_required=True)

        weight = dense_values(self.weight)
        if weight is None:
            return
        masks = self.patterns.mask_array()
        allowed = np.zeros((filters, channels, WINDOW, WINDOW), dtype=bool)
        kept = ids >= 0
        allowed[kept] = masks[ids[kept]]
        outside = np.argwhere((weight != 0) & ~allowed)
        if outside.size:
            f, c, r, s = (int(v) for v in outside[0])
            pid = int(ids[f, c])
            where = "a pruned kernel" if pid < 0 else f"pattern {pid}"
            raise VerifyException(
                f"weight ({f}, {c}) is nonzero at tap {r * WINDOW + s} outside {where}"
            )


@irdl_op_definition
class FkwConv2dOp(IRDLOperation):
    """Pattern-sparse convolution with the weights packed in FKW arrays; the same semantics as
    `pconv.conv2d`.

    For stored filter i (output channel `reorder[i]`), its kernels are `offset[i]` up to
    `offset[i + 1]`; the run of kernels with pattern p is `stride[i, p]` up to `stride[i, p + 1]`;
    kernel k reads input channel `index[k]` with the `taps` weights `weight[k, :]` in the order
    of the pattern's taps.

        %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b
               patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 8, unroll_rows = 4,
               unroll_cols = 2> strides [1, 1] padding [1, 1]
               dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<3xi32>, tensor<2xi32>,
               tensor<3xi32>, tensor<2x2xi32>, tensor<3x4xf32>, tensor<2xf32>)
               -> tensor<1x2x8x8xf32>
    """

    name = "pconv.fkw_conv2d"

    input = operand_def(_F32_TENSOR)
    offset = operand_def(_I32_TENSOR)
    reorder = operand_def(_I32_TENSOR)
    index = operand_def(_I32_TENSOR)
    stride = operand_def(_I32_TENSOR)
    weight = operand_def(_F32_TENSOR)
    bias = opt_operand_def(_F32_TENSOR)
    result = result_def(_F32_TENSOR)

    patterns = prop_def(PatternSetAttr)
    schedule = prop_def(ScheduleAttr)
    strides = prop_def(_PAIR)
    padding = prop_def(_PAIR)
    dilation = prop_def(_PAIR)
    relu = opt_prop_def(UnitAttr)
    filter_groups = opt_prop_def(_I32_ARRAY)
    """Group boundaries over the stored filters, from pconv-fkr: filters computed together."""

    assembly_format = (
        "$input `,` $offset `,` $reorder `,` $index `,` $stride `,` $weight (`,` $bias^)? "
        "`patterns` $patterns `schedule` $schedule `strides` $strides `padding` $padding "
        "`dilation` $dilation (`relu` $relu^)? (`filter_groups` $filter_groups^)? attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue,
        fkw: Sequence[SSAValue],
        bias: SSAValue | None,
        result_type: Attribute,
        patterns: PatternSetAttr,
        schedule: ScheduleAttr | None = None,
        strides: Sequence[int] = (1, 1),
        padding: Sequence[int] = (0, 0),
        dilation: Sequence[int] = (1, 1),
        relu: bool = False,
        filter_groups: Sequence[int] | None = None,
    ):
        """`fkw` is (offset, reorder, index, stride, weight)."""
        properties: dict[str, Attribute] = {
            "patterns": patterns,
            "schedule": schedule if schedule is not None else ScheduleAttr.get(),
            **_window_properties(strides, padding, dilation, relu),
        }
        if filter_groups is not None:
            properties["filter_groups"] = DenseArrayBase.from_list(IntegerType(32), filter_groups)
        super().__init__(
            operands=[input, *fkw, [] if bias is None else [bias]],
            result_types=[result_type],
            properties=properties,
        )

    def verify_(self) -> None:
        for name in ("offset", "reorder", "index", "stride"):
            element_type = getattr(self, name).type.element_type
            if element_type != IntegerType(32):
                raise VerifyException(f"{name} must hold i32, got {element_type}")
        reorder_shape = _static_shape(self.reorder, "reorder")
        if len(reorder_shape) != 1:
            raise VerifyException(f"reorder must be 1-D, got {self.reorder.type}")
        filters = reorder_shape[0]
        _conv_common_verify(self, filters, None)
        channels = _static_shape(self.input, "input")[1]
        count, taps = len(self.patterns), self.patterns.taps.data

        offset_shape = _static_shape(self.offset, "offset")
        if offset_shape != (filters + 1,):
            raise VerifyException(
                f"offset has shape {'x'.join(map(str, offset_shape))}, expected {filters + 1} "
                f"(filters + 1)"
            )
        index_shape = _static_shape(self.index, "index")
        if len(index_shape) != 1:
            raise VerifyException(f"index must be 1-D, got {self.index.type}")
        kernels = index_shape[0]
        stride_shape = _static_shape(self.stride, "stride")
        if stride_shape != (filters, count + 1):
            raise VerifyException(
                f"stride has shape {'x'.join(map(str, stride_shape))}, expected "
                f"{filters}x{count + 1} (filters x (patterns + 1))"
            )
        weight_shape = _static_shape(self.weight, "weight")
        if weight_shape != (kernels, taps):
            raise VerifyException(
                f"weight has shape {'x'.join(map(str, weight_shape))}, expected "
                f"{kernels}x{taps} (kernels x taps)"
            )

        _verify_grouping(self, filters, order_required=False)

        offset, reorder = dense_values(self.offset), dense_values(self.reorder)
        index, stride = dense_values(self.index), dense_values(self.stride)
        if reorder is not None and sorted(reorder.tolist()) != list(range(filters)):
            raise VerifyException(
                f"reorder {reorder.tolist()} is not a permutation of 0..{filters - 1}"
            )
        if offset is not None:
            if offset[0] != 0 or offset[-1] != kernels or np.any(np.diff(offset) < 0):
                raise VerifyException(
                    f"offset {offset.tolist()} must rise from 0 to the {kernels} kernels"
                )
        if index is not None:
            bad = np.flatnonzero((index < 0) | (index >= channels))
            if bad.size:
                k = int(bad[0])
                raise VerifyException(
                    f"index[{k}] = {int(index[k])} is not an input channel 0..{channels - 1}"
                )
        if stride is not None and offset is not None:
            for i in range(filters):
                row = stride[i]
                if row[0] != offset[i] or row[-1] != offset[i + 1] or np.any(np.diff(row) < 0):
                    raise VerifyException(
                        f"stride row {i} {row.tolist()} must rise from offset[{i}] = "
                        f"{int(offset[i])} to offset[{i + 1}] = {int(offset[i + 1])}"
                    )
                if index is not None:
                    used = index[offset[i] : offset[i + 1]]
                    if len(set(used.tolist())) != len(used):
                        raise VerifyException(f"filter {i} lists an input channel twice in index")


PCONV = Dialect(
    "pconv",
    [Conv2dOp, FkwConv2dOp],
    [PatternSetAttr, ScheduleAttr],
)

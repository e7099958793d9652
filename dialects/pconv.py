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
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
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
    AttrSizedOperandSegments,
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

from pconv_mlir import fkw
from pconv_mlir.elements import ElementsError, constant_value, dense_array, dense_attr
from pconv_mlir.errors import OptionError
from pconv_mlir.patterns import (
    DEFAULT_TAPS,
    SQUARE,
    WINDOW,
    Window,
    centre_tap,
    dense_pattern,
    format_pattern,
    outside_patterns,
    pattern_masks,
    window_taps,
)


@irdl_attr_definition
class PatternSetAttr(ParametrizedAttribute):
    """A set of K kernel patterns over a KH x KW window (3x3 unless said), each keeping the
    same number of taps.

    A pattern lists the kept taps (row-major, `tap = KW * row + col`). `taps` is the number
    every pattern keeps; unless `centre = false`, every pattern must keep the centre tap (4 of
    a 3x3 window; an even window has none). The dense set of a window holds its one full mask.

        #pconv.pattern_set<[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>
        #pconv.pattern_set<[[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9>      // dense 3x3
        #pconv.pattern_set<[[0]], taps = 1, window = [1, 1]>            // 1x1
    """

    name = "pconv.pattern_set"

    masks: ArrayAttr[ArrayAttr[IntAttr]]
    taps: IntAttr
    centre: IntAttr
    """1 when every pattern must include the centre tap, 0 otherwise."""
    window: ArrayAttr[IntAttr]
    """(KH, KW)."""

    @staticmethod
    def get(
        patterns: Iterable[Iterable[int]],
        taps: int | None = None,
        centre: bool = True,
        window: Window = SQUARE,
    ) -> PatternSetAttr:
        """Build a set from tap lists; `taps` defaults to the size of the first pattern."""
        masks = [sorted(int(t) for t in p) for p in patterns]
        if taps is None:
            taps = len(masks[0]) if masks else DEFAULT_TAPS
        return PatternSetAttr(
            ArrayAttr(ArrayAttr(IntAttr(t) for t in m) for m in masks),
            IntAttr(taps),
            IntAttr(int(centre)),
            ArrayAttr(IntAttr(int(d)) for d in window),
        )

    @staticmethod
    def dense(window: Window = SQUARE) -> PatternSetAttr:
        """The set holding the single full mask of `window`: an ordinary dense convolution."""
        return PatternSetAttr.get(
            [dense_pattern(window)],
            taps=window_taps(window),
            centre=centre_tap(window) is not None,
            window=window,
        )

    @property
    def patterns(self) -> list[tuple[int, ...]]:
        """The patterns as tuples of tap indices."""
        return [tuple(t.data for t in m) for m in self.masks]

    @property
    def kernel_window(self) -> Window:
        """(KH, KW) of the window the patterns are over."""
        kh, kw = (d.data for d in self.window)
        return kh, kw

    @property
    def is_dense(self) -> bool:
        """Whether the set is the one full mask of its window."""
        return self.patterns == [dense_pattern(self.kernel_window)]

    def __len__(self) -> int:
        return len(self.masks)

    def mask_array(self) -> np.ndarray:
        """A boolean array [K, KH, KW]: entry k is True where pattern k keeps a tap."""
        return pattern_masks(self.patterns, self.kernel_window)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            masks = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE,
                lambda: parser.parse_comma_separated_list(
                    parser.Delimiter.SQUARE, parser.parse_integer
                ),
            )
            taps, centre, window = DEFAULT_TAPS, True, [WINDOW, WINDOW]
            while parser.parse_optional_punctuation(",") is not None:
                key = parser.parse_identifier()
                parser.parse_punctuation("=")
                if key == "taps":
                    taps = parser.parse_integer(allow_boolean=False)
                elif key == "centre":
                    centre = parser.parse_boolean()
                elif key == "window":
                    window = parser.parse_comma_separated_list(
                        parser.Delimiter.SQUARE, parser.parse_integer
                    )
                else:
                    parser.raise_error(f"unknown pattern_set parameter '{key}'")
        return (
            ArrayAttr(ArrayAttr(IntAttr(t) for t in m) for m in masks),
            IntAttr(taps),
            IntAttr(int(centre)),
            ArrayAttr(IntAttr(d) for d in window),
        )

    def print_parameters(self, printer: Printer) -> None:
        body = ", ".join(format_pattern(p) for p in self.patterns)
        printer.print_string(f"<[{body}], taps = {self.taps.data}")
        if not self.centre.data:
            printer.print_string(", centre = false")
        if self.kernel_window != SQUARE:
            kh, kw = self.kernel_window
            printer.print_string(f", window = [{kh}, {kw}]")
        printer.print_string(">")

    def verify(self) -> None:
        if len(self.window.data) != 2 or any(not 1 <= d.data <= 64 for d in self.window.data):
            values = [d.data for d in self.window.data]
            raise VerifyException(f"pattern_set window {values} is not two sizes in 1..64")
        window = self.kernel_window
        size = window_taps(window)
        shape = f"{window[0]}x{window[1]}"
        taps = self.taps.data
        if not 1 <= taps <= size:
            raise VerifyException(f"pattern_set taps = {taps} is outside 1..{size}")
        if not self.masks.data:
            raise VerifyException("pattern_set holds no pattern")
        middle = centre_tap(window)
        if self.centre.data and middle is None:
            raise VerifyException(f"a {shape} window has no centre tap: say centre = false")
        seen: dict[tuple[int, ...], int] = {}
        for k, pattern in enumerate(self.patterns):
            bad = [t for t in pattern if not 0 <= t < size]
            if bad:
                raise VerifyException(
                    f"pattern {k} has tap {bad[0]} outside the {shape} window 0..{size - 1}"
                )
            if len(set(pattern)) != len(pattern):
                raise VerifyException(f"pattern {k} {format_pattern(pattern)} repeats a tap")
            if len(pattern) != taps:
                raise VerifyException(f"pattern {k} has {len(pattern)} taps, the set allows {taps}")
            if self.centre.data and middle not in pattern:
                raise VerifyException(
                    f"pattern {k} {format_pattern(pattern)} lacks the centre tap {middle}"
                )
            key = tuple(sorted(pattern))
            if key in seen:
                raise VerifyException(
                    f"pattern {k} {format_pattern(pattern)} duplicates pattern {seen[key]}"
                )
            seen[key] = k


@dataclass(frozen=True)
class ScheduleField:
    """One parameter of `#pconv.schedule`: its default, its least value and what it means."""

    default: int
    minimum: int
    doc: str
    power_of_two: bool = False
    maximum: int | None = None
    gpu: bool = False
    """A GPU parameter (convert-pconv-to-gpu): printed only when it is not its default."""
    quiet: bool = False
    """A CPU parameter printed only when it is not its default (as the GPU ones)."""


SCHEDULE_FIELDS: dict[str, ScheduleField] = {
    "vector_width": ScheduleField(
        8, 1, "fp32 lanes of one vector, along the output row", power_of_two=True
    ),
    "unroll_rows": ScheduleField(3, 1, "output rows of the register tile"),
    "unroll_cols": ScheduleField(2, 1, "vectors per row of the register tile"),
    "partial_sums": ScheduleField(
        1, 1, "independent accumulators per output vector (taps alternate between them)"
    ),
    "unroll_filters": ScheduleField(1, 1, "stored filters whose kernel loops run in lock-step"),
    "tile_channels": ScheduleField(
        0, 0, "input channels per cache block, all filters over one block before the next (0: none)"
    ),
    "specialize": ScheduleField(
        0,
        0,
        "1: straight-line code specialised to the layer's kept kernels, groups of unroll_filters "
        "filters sharing each loaded input vector (filter-level LRE; 0: one loop per pattern run)",
        maximum=1,
        quiet=True,
    ),
    "chunk_fmas": ScheduleField(
        1536,
        16,
        "specialize: vector multiply-adds per straight-line chunk (the spatial loop runs inside "
        "each chunk)",
        quiet=True,
    ),
    "lane_weights": ScheduleField(
        0,
        0,
        "1: a kernel's weights are one vector load and each tap multiplies by its lane (NEON's "
        "lane-indexed fmla; 0: one scalar load and broadcast per weight)",
        maximum=1,
        quiet=True,
    ),
    "gpu_block_pixels": ScheduleField(
        4, 1, "GPU: consecutive output columns of one row per work-item", maximum=16, gpu=True
    ),
    "gpu_filters_per_item": ScheduleField(
        4, 1, "GPU: consecutive stored filters one work-item computes", maximum=16, gpu=True
    ),
    "gpu_workgroup_x": ScheduleField(
        16, 1, "GPU: work-items of a work-group along the output row's pixel blocks", gpu=True
    ),
    "gpu_workgroup_y": ScheduleField(
        4, 1, "GPU: work-items of a work-group along the output rows", gpu=True
    ),
    "gpu_stage_input": ScheduleField(
        0,
        0,
        "GPU: 1 loads the input rows and columns a work-group reads into local memory once per "
        "channel block (0: every work-item reads its taps from global memory)",
        maximum=1,
        gpu=True,
    ),
}
"""The schedule's vocabulary: the one place a schedule parameter is defined. The attribute,
its parser, printer and verifier, the passes that set it and `compile`'s options all read it."""

GPU_WORKGROUP_LIMIT = 256
"""Most work-items a GPU schedule's work-group may hold (`gpu_workgroup_x * gpu_workgroup_y`):
within the device limits of mobile GPUs (Adreno, Mali); a register-heavy kernel may still be
allowed fewer (`CL_KERNEL_WORK_GROUP_SIZE`)."""

GPU_LOCAL_MEMORY_LIMIT = 32 * 1024
"""Bytes of local memory a staged input tile (`gpu_stage_input`) may take: the least an OpenCL
1.2 device has (`CL_DEVICE_LOCAL_MEM_SIZE`); Adreno and Mali have at least this much."""


def gpu_stage_tile(
    output: tuple[int, int],
    window: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    schedule: ScheduleAttr,
) -> tuple[int, int]:
    """(rows, columns) of the input one work-group of convert-pconv-to-gpu reads in one channel:
    what `gpu_stage_input` stages in local memory for each channel of a channel block. `output`
    is the output's (height, width); the work-group is clamped to the output as the lowering
    clamps it."""
    oh, ow = output
    kh, kw = window
    sh, sw = strides
    dh, dw = dilation
    pixels = min(schedule["gpu_block_pixels"], ow)
    wx = min(schedule["gpu_workgroup_x"], -(-ow // pixels))
    wy = min(schedule["gpu_workgroup_y"], oh)
    return (wy - 1) * sh + (kh - 1) * dh + 1, (wx * pixels - 1) * sw + (kw - 1) * dw + 1


def gpu_stage_channels(tile: tuple[int, int]) -> int:
    """The most channels of a staged tile of `tile` (rows, columns) that fit in
    `GPU_LOCAL_MEMORY_LIMIT` as fp32 (0 when not even one does)."""
    return GPU_LOCAL_MEMORY_LIMIT // (tile[0] * tile[1] * 4)


@irdl_attr_definition
class ScheduleAttr(ParametrizedAttribute):
    """How the code generator lays out one FKW convolution; chosen per layer by the tuner.

    The parameters and their defaults are `SCHEDULE_FIELDS`: the register tile is
    `unroll_rows` output rows x `unroll_cols` vectors of `vector_width` lanes, held in
    registers while a filter's kernels stream past (the generator shrinks it to the output
    when the output is smaller); each output vector sums `partial_sums` accumulators;
    `unroll_filters` stored filters advance in lock-step; `tile_channels` > 0 blocks the input
    channels (the FKW `stride` table then has one run per block and pattern). The `gpu_*`
    parameters are convert-pconv-to-gpu's: a work-item computes `gpu_block_pixels` consecutive
    output columns of one row for `gpu_filters_per_item` stored filters, in work-groups of
    `gpu_workgroup_x` (pixel blocks) x `gpu_workgroup_y` (rows) work-items, at most
    `GPU_WORKGROUP_LIMIT`; `gpu_stage_input = 1` stages the input rows a work-group shares in
    local memory. Omitted keys take their defaults; the attribute always prints the
    CPU parameters, and a GPU one only when it is not its default.

        #pconv.schedule<vector_width = 8, unroll_rows = 3, unroll_cols = 2, partial_sums = 1,
                        unroll_filters = 1, tile_channels = 0, gpu_block_pixels = 2>
    """

    name = "pconv.schedule"

    __annotations__ = {key: "IntAttr" for key in SCHEDULE_FIELDS}

    DEFAULTS: ClassVar[dict[str, int]] = {k: f.default for k, f in SCHEDULE_FIELDS.items()}

    @staticmethod
    def get(**values: int) -> ScheduleAttr:
        """A schedule from keyword values; missing keys take their defaults.

        Raises `OptionError` for an unknown key or a value that is not an integer.
        """
        return ScheduleAttr.DEFAULT.replace(**values)

    def replace(self, **values: int) -> ScheduleAttr:
        """This schedule with the given parameters changed and every other one kept."""
        for key, value in values.items():
            if key not in SCHEDULE_FIELDS:
                raise OptionError(
                    f"unknown schedule parameter '{key}' (parameters: {', '.join(SCHEDULE_FIELDS)})"
                )
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise OptionError(f"schedule {key} = {value!r} is not an integer")
        merged = self.as_dict() | {k: int(v) for k, v in values.items()}
        return ScheduleAttr(*(IntAttr(merged[k]) for k in SCHEDULE_FIELDS))

    def as_dict(self) -> dict[str, int]:
        """The parameters by name."""
        return {k: getattr(self, k).data for k in SCHEDULE_FIELDS}

    def __getitem__(self, key: str) -> int:
        return getattr(self, key).data

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, int] = {}

        def parse_entry() -> None:
            key = parser.parse_identifier()
            if key not in SCHEDULE_FIELDS:
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
        return tuple(IntAttr(merged[k]) for k in SCHEDULE_FIELDS)

    def print_parameters(self, printer: Printer) -> None:
        body = ", ".join(
            f"{k} = {v}"
            for k, v in self.as_dict().items()
            if not (SCHEDULE_FIELDS[k].gpu or SCHEDULE_FIELDS[k].quiet)
            or v != SCHEDULE_FIELDS[k].default
        )
        printer.print_string(f"<{body}>")

    def verify(self) -> None:
        for key, value in self.as_dict().items():
            field = SCHEDULE_FIELDS[key]
            if value < field.minimum:
                raise VerifyException(f"schedule {key} = {value} must be at least {field.minimum}")
            if field.maximum is not None and value > field.maximum:
                raise VerifyException(f"schedule {key} = {value} must be at most {field.maximum}")
            if field.power_of_two and value & (value - 1):
                raise VerifyException(f"schedule {key} = {value} is not a power of two")
            if value >= 2**31:
                raise VerifyException(f"schedule {key} = {value} is too large")
        x, y = self["gpu_workgroup_x"], self["gpu_workgroup_y"]
        if x * y > GPU_WORKGROUP_LIMIT:
            raise VerifyException(
                f"schedule gpu_workgroup_x = {x} x gpu_workgroup_y = {y} is {x * y} work-items, "
                f"more than {GPU_WORKGROUP_LIMIT}"
            )


ScheduleAttr.DEFAULT = ScheduleAttr(*(IntAttr(f.default) for f in SCHEDULE_FIELDS.values()))
"""The schedule with every parameter at its default."""


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


def conv_output_size(size: int, stride: int, padding: int, dilation: int, kernel: int = 3) -> int:
    """Output extent of a convolution with a `kernel`-wide window along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_shape(
    x_shape: Sequence[int],
    filters: int,
    strides: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    window: Window = SQUARE,
) -> tuple[int, int, int, int]:
    """NCHW result shape of a convolution of an input of `x_shape` with `filters` filters."""
    n, _c, h, w = x_shape
    oh = conv_output_size(h, strides[0], padding[0], dilation[0], window[0])
    ow = conv_output_size(w, strides[1], padding[1], dilation[1], window[1])
    return (n, filters, oh, ow)


def _window_properties(
    strides: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    relu: bool,
    relu6: bool,
) -> dict[str, Attribute]:
    """The window and epilogue properties both pconv ops carry; `window_of` reads them back."""
    properties: dict[str, Attribute] = {
        "strides": DenseArrayBase.from_list(i64, strides),
        "padding": DenseArrayBase.from_list(i64, padding),
        "dilation": DenseArrayBase.from_list(i64, dilation),
    }
    if relu:
        properties["relu"] = UnitAttr()
    if relu6:
        properties["relu6"] = UnitAttr()
    return properties


def window_of(op: Conv2dOp | FkwConv2dOp) -> dict[str, Any]:
    """The window and epilogue of a pconv op as constructor keywords: strides, padding,
    dilation, relu, relu6."""
    return {
        "strides": tuple(int(v) for v in op.strides.get_values()),
        "padding": tuple(int(v) for v in op.padding.get_values()),
        "dilation": tuple(int(v) for v in op.dilation.get_values()),
        "relu": op.relu is not None,
        "relu6": op.relu6 is not None,
    }


def constant_data(value: SSAValue) -> np.ndarray | None:
    """The contents of `value` when an `arith.constant` (`dense<...>`, or `dense_resource<...>`
    with data in the active storage, see `pconv_mlir.elements`) defines it; else None."""
    try:
        return constant_value(None, value, copy=False)
    except ElementsError:
        return None


def kernel_patterns_attr(ids: np.ndarray) -> DenseIntOrFPElementsAttr:
    """Per-kernel pattern ids [F, C] as `kernel_patterns` (i8: a set has at most 56 patterns)."""
    return dense_attr(np.asarray(ids, dtype=np.int8))


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
    kh, kw = op.patterns.kernel_window
    oh, ow = conv_output_size(h, sh, ph, dh, kh), conv_output_size(w, sw, pw, dw, kw)
    if oh < 1 or ow < 1:
        raise VerifyException(f"a {h}x{w} input is too small for this {kh}x{kw} window")
    expected = (n, filters, oh, ow)
    if out_shape != expected:
        raise VerifyException(
            f"result shape {'x'.join(map(str, out_shape))} does not match the expected "
            f"{'x'.join(map(str, expected))}"
        )
    if op.relu is not None and op.relu6 is not None:
        raise VerifyException("relu and relu6 are exclusive: give one")
    if op.residual is not None and _static_shape(op.residual, "residual") != out_shape:
        raise VerifyException(
            f"residual {op.residual.type} does not have the result's shape {op.result.type}"
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


def _optional(value: SSAValue | None) -> list[SSAValue]:
    return [] if value is None else [value]


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
    """Pattern-sparse 2-D convolution, NCHW input and FCHW weight (the pattern set's window,
    3x3 unless said), on tensors.

    Kernel `weight[f, c]` keeps only the taps of pattern `kernel_patterns[f, c]` of the set; an id
    of -1 marks a kernel removed by connectivity pruning. The epilogue is fused: the result is
    `act(conv + bias + residual)`, with an optional bias [F], an optional `residual` of the
    result's shape (a ResNet shortcut) and `act` ReLU (`relu`), ReLU6 (`relu6`) or none.

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
    residual = opt_operand_def(_F32_TENSOR)
    result = result_def(_F32_TENSOR)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    patterns = prop_def(PatternSetAttr)
    kernel_patterns = prop_def(DenseIntOrFPElementsAttr)
    strides = prop_def(_PAIR)
    padding = prop_def(_PAIR)
    dilation = prop_def(_PAIR)
    relu = opt_prop_def(UnitAttr)
    relu6 = opt_prop_def(UnitAttr)
    filter_order = opt_prop_def(_I32_ARRAY)
    """Set by pconv-fkr: the order in which filters are stored and computed (a permutation)."""
    filter_groups = opt_prop_def(_I32_ARRAY)
    """Set by pconv-fkr: group boundaries in `filter_order`, rising from 0 to F."""

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? (`residual` $residual^ `:` type($residual))? "
        "`patterns` $patterns "
        "`kernel_patterns` $kernel_patterns `strides` $strides `padding` $padding "
        "`dilation` $dilation (`relu` $relu^)? (`relu6` $relu6^)? "
        "(`filter_order` $filter_order^)? "
        "(`filter_groups` $filter_groups^)? attr-dict `:` `(` type($input) `,` type($weight) "
        "(`,` type($bias)^)? `)` `->` type($result)"
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
        *,
        residual: SSAValue | None = None,
        relu6: bool = False,
    ):
        properties: dict[str, Attribute] = {
            "patterns": patterns,
            "kernel_patterns": kernel_patterns,
            **_window_properties(strides, padding, dilation, relu, relu6),
        }
        if filter_order is not None:
            properties["filter_order"] = DenseArrayBase.from_list(IntegerType(32), filter_order)
        if filter_groups is not None:
            properties["filter_groups"] = DenseArrayBase.from_list(IntegerType(32), filter_groups)
        super().__init__(
            operands=[input, weight, _optional(bias), _optional(residual)],
            result_types=[result_type],
            properties=properties,
        )

    def pattern_ids(self) -> np.ndarray:
        """The per-kernel pattern ids as an int array [F, C]."""
        return dense_array(self.kernel_patterns, copy=False).astype(np.int64)

    def verify_(self) -> None:
        w_shape = _static_shape(self.weight, "weight")
        kh, kw = self.patterns.kernel_window
        if len(w_shape) != 4 or w_shape[2:] != (kh, kw):
            raise VerifyException(
                f"weight must be FxCx{kh}x{kw} (the pattern set's window), got "
                f"{'x'.join(map(str, w_shape))}"
            )
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

        weight = constant_data(self.weight)
        if weight is None:
            return
        outside = outside_patterns(weight, ids, self.patterns.patterns)
        if outside is not None:
            f, c, tap = outside
            pid = int(ids[f, c])
            where = "a pruned kernel" if pid < 0 else f"pattern {pid}"
            raise VerifyException(f"weight ({f}, {c}) is nonzero at tap {tap} outside {where}")


@irdl_op_definition
class FkwConv2dOp(IRDLOperation):
    """Pattern-sparse convolution with the weights packed in FKW arrays; the same semantics as
    `pconv.conv2d`.

    For stored filter i (output channel `reorder[i]`), its kernels are `offset[i]` up to
    `offset[i + 1]`; its kernels are cut into one run per (channel block b, pattern p), run
    `b * K + p` being `stride[i, b * K + p]` up to the next entry (one block unless the
    schedule's `tile_channels` splits the channels: see `pconv_mlir.fkw`); kernel k reads input
    channel `index[k]` with the `taps` weights `weight[k, :]` in the order of the pattern's taps.

        %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b
               patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 8, unroll_rows = 3,
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
    residual = opt_operand_def(_F32_TENSOR)
    result = result_def(_F32_TENSOR)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    patterns = prop_def(PatternSetAttr)
    schedule = prop_def(ScheduleAttr)
    strides = prop_def(_PAIR)
    padding = prop_def(_PAIR)
    dilation = prop_def(_PAIR)
    relu = opt_prop_def(UnitAttr)
    relu6 = opt_prop_def(UnitAttr)
    filter_groups = opt_prop_def(_I32_ARRAY)
    """Group boundaries over the stored filters, from pconv-fkr: filters computed together."""

    assembly_format = (
        "$input `,` $offset `,` $reorder `,` $index `,` $stride `,` $weight (`,` $bias^)? "
        "(`residual` $residual^ `:` type($residual))? `patterns` $patterns `schedule` $schedule "
        "`strides` $strides `padding` $padding `dilation` $dilation (`relu` $relu^)? "
        "(`relu6` $relu6^)? (`filter_groups` $filter_groups^)? attr-dict `:` `(` type($input) "
        "`,` type($offset) `,` type($reorder) `,` type($index) `,` type($stride) `,` "
        "type($weight) (`,` type($bias)^)? `)` `->` type($result)"
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
        *,
        residual: SSAValue | None = None,
        relu6: bool = False,
    ):
        """`fkw` is (offset, reorder, index, stride, weight)."""
        properties: dict[str, Attribute] = {
            "patterns": patterns,
            "schedule": schedule if schedule is not None else ScheduleAttr.get(),
            **_window_properties(strides, padding, dilation, relu, relu6),
        }
        if filter_groups is not None:
            properties["filter_groups"] = DenseArrayBase.from_list(IntegerType(32), filter_groups)
        super().__init__(
            operands=[input, *fkw, _optional(bias), _optional(residual)],
            result_types=[result_type],
            properties=properties,
        )

    def fkw_arrays(self) -> fkw.Fkw | None:
        """The FKW arrays when all five are constants with data; else None."""
        arrays = [constant_data(getattr(self, name)) for name in fkw.NAMES]
        if any(a is None for a in arrays):
            return None
        return fkw.Fkw(*arrays)

    def channel_blocks(self) -> int:
        """How many channel blocks the `stride` table has runs for (see `pconv_mlir.fkw`)."""
        channels = _static_shape(self.input, "input")[1]
        return fkw.channel_blocks(channels, self.schedule["tile_channels"])

    def gpu_stage_tile(self) -> tuple[int, int]:
        """(rows, columns) per channel of the input tile `gpu_stage_input` stages."""
        _, _, oh, ow = _static_shape(self.result, "result")
        sh, sw = (int(v) for v in self.strides.get_values())
        dh, dw = (int(v) for v in self.dilation.get_values())
        window = self.patterns.kernel_window
        return gpu_stage_tile((oh, ow), window, (sh, sw), (dh, dw), self.schedule)

    def verify_stage_tile(self, channels: int) -> None:
        """A staged tile (one channel block) must fit in `GPU_LOCAL_MEMORY_LIMIT`."""
        rows, cols = self.gpu_stage_tile()
        block = self.schedule["tile_channels"] or channels
        block = min(block, channels)
        size = block * rows * cols * 4
        if size <= GPU_LOCAL_MEMORY_LIMIT:
            return
        most = gpu_stage_channels((rows, cols))
        fix = (
            f"tile_channels at most {most}"
            if most
            else "smaller gpu_workgroup_x, gpu_workgroup_y or gpu_block_pixels"
        )
        raise VerifyException(
            f"gpu_stage_input: the work-group's input tile of {block} channels x {rows} rows x "
            f"{cols} columns is {size} bytes, more than the {GPU_LOCAL_MEMORY_LIMIT} bytes of "
            f"local memory OpenCL 1.2 guarantees; use {fix}"
        )

    def verify_(self) -> None:
        for name in ("offset", "reorder", "index", "stride"):
            element_type = getattr(self, name).type.element_type
            if element_type != IntegerType(32):
                raise VerifyException(f"{name} must hold i32, got {element_type}")
        for name in fkw.NAMES:
            shape = _static_shape(getattr(self, name), name)
            rank = 2 if name in ("stride", "weight") else 1
            if len(shape) != rank:
                raise VerifyException(f"{name} must be {rank}-D, got {getattr(self, name).type}")
        filters = _static_shape(self.reorder, "reorder")[0]
        _conv_common_verify(self, filters, None)
        channels = _static_shape(self.input, "input")[1]
        count, taps = len(self.patterns), self.patterns.taps.data
        blocks = self.channel_blocks()
        kernels = _static_shape(self.index, "index")[0]
        expected = {
            "offset": ((filters + 1,), "(filters + 1)"),
            "stride": (
                (filters, blocks * count + 1),
                "(filters x (patterns + 1))"
                if blocks == 1
                else f"(filters x ({blocks} channel blocks x patterns + 1))",
            ),
            "weight": ((kernels, taps), "(kernels x taps)"),
        }
        for name, (shape, what) in expected.items():
            actual = _static_shape(getattr(self, name), name)
            if actual != shape:
                raise VerifyException(
                    f"{name} has shape {'x'.join(map(str, actual))}, expected "
                    f"{'x'.join(map(str, shape))} {what}"
                )

        _verify_grouping(self, filters, order_required=False)

        if self.schedule["gpu_stage_input"]:
            self.verify_stage_tile(channels)

        arrays = self.fkw_arrays()
        if arrays is not None:
            problem = fkw.check(arrays, count, taps, channels, self.schedule["tile_channels"])
            if problem is not None:
                raise VerifyException(problem)


PCONV = Dialect(
    "pconv",
    [Conv2dOp, FkwConv2dOp],
    [PatternSetAttr, ScheduleAttr],
)


def schedule_options(cls: type) -> type:
    """Class decorator for a pass: one `int | None` option per `#pconv.schedule` parameter.

    Put it under `@dataclass(frozen=True)`; `-p 'pass{unroll_rows=4}'` then sets that
    parameter and leaves the others (None) alone. `schedule_values(pass_)` collects them.
    """
    annotations = dict(cls.__dict__.get("__annotations__", {}))
    for key in SCHEDULE_FIELDS:
        annotations[key] = "int | None"
        setattr(cls, key, None)
    cls.__annotations__ = annotations
    return cls


def schedule_values(options: object) -> dict[str, int]:
    """The schedule parameters a pass with `schedule_options` was given, checked.

    Raises `OptionError` for a value that is not an integer or that the schedule rejects.
    """
    values = {k: getattr(options, k) for k in SCHEDULE_FIELDS if getattr(options, k) is not None}
    try:
        ScheduleAttr.DEFAULT.replace(**values).verify()
    except VerifyException as e:
        raise OptionError(str(e)) from None
    return values

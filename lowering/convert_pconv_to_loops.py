"""convert-pconv-to-loops: `pconv.fkw_conv2d` to scf/memref/arith/vector loops.

One specialised loop per pattern: for each stored filter, the run of kernels with pattern p is
an `scf.for` whose body has that pattern's tap offsets as constants, so no tap index is ever
loaded at run time. Only a run's bounds (`stride`), a kernel's input channel (`index`) and its
weights (`weight`) are read from the FKW arrays (see `pconv_mlir.fkw`). Vectorised along the
output row.

The op's `#pconv.schedule` picks the register tile: R = `unroll_rows` output rows x
U = `unroll_cols` vectors of V = `vector_width` lanes (R and U clamped to the output), held in
registers while a filter's kernel runs stream past; G = `unroll_filters` stored filters in
lock-step; P = `partial_sums` accumulators per output vector (taps alternate between them);
`tile_channels` cuts the C input channels into B = `op.channel_blocks()` blocks, and `stride`
has one run per (block, pattern). Loop order: image, row tile, column tile, channel block,
filter group, pattern, kernel: an input tile stays in cache across all filters.

Generated code, in outline (K patterns; OH', OW' the output rounded up to whole tiles):

    xp = alloc(N * s_n)                       // flat, zero-padded, stride-phase split input:
    parallel n, c: zero the padding;          // (stride 1: rows copied in vectors)
      for iy, ix:                             // element (n, c, y, q, j), padded pixel
        xp[n*s_n + c*s_c + (iy + ph)*s_y      //   (y, j * sw + q), is at
           + q*s_q + j] = x[n, c, iy, ix]     //   n*s_n + c*s_c + y*s_y + q*s_q + j, with
                                              //   q = (ix + pw) % sw, j = (ix + pw) / sw
    for n, for oh0 in 0..OH' step R, for ow0 in 0..OW' step U*V:
      tile = n*s_n + oh0*sh*s_y + ow0
      for b in 0..B:                          // block 0 first, then an scf.for over the rest
        for i0 in 0..F step G:                // the group i = i0 .. i0 + G - 1, in lock-step
                                              // (then the F mod G left over, one at a time)
          o_i = reorder[i]
          acc[i][r][u][0] = b == 0 ? broadcast(bias[o_i]) (or 0) [+ residual, copied to out first]
                                   : out[n, o_i, oh0 + r, ow0 + u*V]
          for p in 0..K:                      // unrolled: one body per pattern
            lo_i, hi_i = stride[i, b*K + p], stride[i, b*K + p + 1]
            m = min_i(hi_i - lo_i)
            acc = scf.for k in 0..m: kernel(lo_i + k) for every i of the group
            acc[i] = scf.for k in lo_i + m..hi_i: kernel(k)            // each remainder
              kernel(k): base = index[k]*s_c + tile; w_t = broadcast(weight[k, t])
                acc[r][u][t % P] = fma(vector.load xp[base + (r*sh + dr_t*dh)*s_y
                                                     + q_t*s_q + u*V + j_t], w_t, acc[r][u][t % P])
          out[n, o_i, oh0 + r, ow0 + u*V] = act(sum of acc[i][r][u]) (act only when B = 1)
      when B > 1 and an activation: out[n, o, oh0 + r, ow0 + u*V] = act(that) for every o

where act is max(., 0) (relu) or min(max(., 0), 6) (relu6), and tap t of the pattern sits at
(dr_t, dc_t) in the KH x KW window (the pattern set's) and its padded column
offset dc_t*dw is j_t * sw + q_t. Each (row, tap) gets its own `vector.load` at the kernel's
base plus a constant; `pconv-lre` then removes the loads that several taps and rows share.
Tiles past the output edge write to a scratch output of OH' x OW'; each parallel iteration
copies its rows that are in the output back, in vectors, while they are in cache (and copies the
residual's rows in before its tiles start, when there is one). The result is a tensor again
(`bufferization.to_tensor`), so the rest of the program and the upstream bufferization see a
value-semantics function.

With `specialize = 1` in the schedule the kernels are not read from the FKW arrays at run time:
`SpecializedConvEmitter` emits code specialised to them (filter-level load redundancy
elimination, PatDNN section 5.3): groups of `unroll_filters` filters that read the same
(channel, tap) pairs (`pconv_mlir.fkw.overlap_groups`) share each loaded input vector, in
straight-line chunks of about `chunk_fmas` multiply-adds with the spatial loops inside each, in
parallel over images, bands of row tiles and shares of the groups (see the class).

    %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b ...
  becomes
    %xm = bufferization.to_buffer %x ...
    scf.for ... { scf.for ... { ... vector.fma ... } }
    %y = bufferization.to_tensor %out restrict writable ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from xdsl.builder import ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, bufferization, memref, scf, vector
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    StridedLayoutAttr,
    TensorType,
    VectorType,
)
from xdsl.ir import Block, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from pconv_mlir import fkw
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr
from pconv_mlir.errors import OpError
from pconv_mlir.patterns import tap_offset

f32 = Float32Type()
i32 = IntegerType(32)
i64 = IntegerType(64)
index_type = IndexType()


def ceil_div(value: int, divisor: int) -> int:
    return -(-value // divisor)


PARALLEL_ITERATIONS = 8
"""Parallel iterations a conv offers at least (when it can): enough to balance a few threads."""


def register_tile(oh: int, ow: int, schedule: ScheduleAttr | Mapping[str, int]) -> tuple[int, int]:
    """The register tile of an OH x OW output: (`unroll_rows`, `unroll_cols`) of `schedule`,
    clamped to the output (a 7-wide row takes one 8-lane vector, not two)."""
    cols = ceil_div(ow, schedule["vector_width"])
    return min(schedule["unroll_rows"], oh), min(schedule["unroll_cols"], cols)


def tile_count(oh: int, ow: int, schedule: ScheduleAttr | Mapping[str, int]) -> int:
    """Register tiles per image of an OH x OW output under `schedule` (the tile clamped to it)."""
    rows, cols = register_tile(oh, ow, schedule)
    return ceil_div(oh, rows) * ceil_div(ow, schedule["vector_width"] * cols)


@dataclass(frozen=True)
class ConvGeometry:
    """The shapes of one convolution, its register tile (see `register_tile`) and its flat,
    padded, stride-phase-split input buffer: element (n, c, y, q, j) is padded pixel
    (y, j * sw + q), at n * s_n + c * s_c + y * s_y + q * s_q + j."""

    n: int
    c: int
    h: int
    w: int
    f: int
    oh: int
    ow: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    kh: int
    kw: int
    unroll_rows: int
    unroll_cols: int
    vector_width: int

    @staticmethod
    def of(op: FkwConv2dOp) -> ConvGeometry:
        n, c, h, w = op.input.type.get_shape()
        _, f, oh, ow = op.result.type.get_shape()
        sh, sw = (int(v) for v in op.strides.get_values())
        ph, pw = (int(v) for v in op.padding.get_values())
        dh, dw = (int(v) for v in op.dilation.get_values())
        kh, kw = op.patterns.kernel_window
        rows, cols = register_tile(oh, ow, op.schedule)
        width = op.schedule["vector_width"]
        return ConvGeometry(
            n, c, h, w, f, oh, ow, sh, sw, ph, pw, dh, dw, kh, kw, rows, cols, width
        )

    @property
    def oh_tiled(self) -> int:
        return ceil_div(self.oh, self.unroll_rows) * self.unroll_rows

    @property
    def tile_width(self) -> int:
        """Output columns of one register tile."""
        return self.vector_width * self.unroll_cols

    @property
    def ow_tiled(self) -> int:
        return ceil_div(self.ow, self.tile_width) * self.tile_width

    @property
    def exact(self) -> bool:
        """Whether whole tiles cover the output exactly (no scratch output needed)."""
        return self.oh_tiled == self.oh and self.ow_tiled == self.ow

    @property
    def padded_rows(self) -> int:
        """Rows y of the padded input: enough for every tile, the last one included."""
        needed = (self.oh_tiled - 1) * self.sh + (self.kh - 1) * self.dh + 1
        return max(needed, self.h + 2 * self.ph)

    @property
    def s_q(self) -> int:
        """Columns j of one stride phase (the buffer's stride of q)."""
        needed = self.ow_tiled + ((self.kw - 1) * self.dw) // self.sw + 1
        return max(needed, ceil_div(self.w + 2 * self.pw, self.sw))

    @property
    def s_y(self) -> int:
        return self.sw * self.s_q

    @property
    def s_c(self) -> int:
        return self.padded_rows * self.s_y

    @property
    def s_n(self) -> int:
        return self.c * self.s_c

    def tap_position(self, tap: int) -> tuple[int, int, int]:
        """(row offset, stride phase, column offset in the phase) of `tap`."""
        dr, dc = tap_offset(tap, (self.kh, self.kw))
        x = dc * self.dw
        return dr * self.dh, x % self.sw, x // self.sw


# Small builders: each creates ops at the implicit builder's insertion point.


def _const(value: int) -> SSAValue:
    return arith.ConstantOp(IntegerAttr(value, index_type)).result


def _add(a: SSAValue, offset: int) -> SSAValue:
    return a if offset == 0 else arith.AddiOp(a, _const(offset)).result


def _mul(a: SSAValue, factor: int) -> SSAValue:
    return a if factor == 1 else arith.MuliOp(a, _const(factor)).result


def _load_index(ref: SSAValue, indices: list[SSAValue]) -> SSAValue:
    """An i32 element of `ref` as an index."""
    return arith.IndexCastOp(memref.LoadOp.get(ref, indices).res, index_type).result


def _to_buffer(value: SSAValue) -> SSAValue:
    assert isinstance(value.type, TensorType)
    memref_type = MemRefType(value.type.element_type, value.type.get_shape())
    op = bufferization.ToBufferOp(operands=[value], result_types=[memref_type], properties={})
    return op.memref


@contextmanager
def _loop(lb: SSAValue, ub: SSAValue, step: SSAValue) -> Iterator[SSAValue]:
    """An scf.for without results: the ops built inside the `with` form its body, and the
    induction variable is the `as` target."""
    body = Block(arg_types=[index_type])
    with ImplicitBuilder(body):
        yield body.args[0]
        scf.YieldOp()
    scf.ForOp(lb, ub, step, [], body)


@contextmanager
def _parallel(upper: list[int]) -> Iterator[list[SSAValue]]:
    """An scf.parallel over 0..upper[d] (step 1) in every dimension d: its iterations may run
    on different threads. The ops built inside the `with` form its body; the induction
    variables are the `as` target."""
    body = Block(arg_types=[index_type] * len(upper))
    with ImplicitBuilder(body):
        yield list(body.args)
        scf.ReduceOp()
    zeros, ones = [_const(0) for _ in upper], [_const(1) for _ in upper]
    scf.ParallelOp(zeros, [_const(u) for u in upper], ones, Region(body))


@dataclass(frozen=True)
class _Tile:
    """One register tile: image `n`, first output row `oh0` and column `ow0`, and `base`, the
    flat position in the padded input of its first tap in channel 0."""

    n: SSAValue
    oh0: SSAValue
    ow0: SSAValue
    base: SSAValue
    filters: tuple[SSAValue, SSAValue]
    """The stored filters [first, end) this tile computes (the tile's share of the filters)."""


class FkwConvEmitter:
    """Builds the loops of one `pconv.fkw_conv2d` (see the module docstring for the outline).

    `emit()` builds at the insertion point of the enclosing `ImplicitBuilder`; the other
    methods are its steps, in the order they appear in the generated code.
    """

    # The op's operands as memrefs, the padded input, the tiles' output and common constants;
    # set by emit().
    reorder: SSAValue
    index: SSAValue
    stride: SSAValue
    weight: SSAValue
    bias: SSAValue | None
    xp: SSAValue
    out: SSAValue
    target: SSAValue
    residual: SSAValue | None
    zero: SSAValue
    one: SSAValue
    zero_f: SSAValue
    channel_map: SSAValue
    """i32 [F]: the output channel of each stored filter (`reorder`; the specialised emitter's
    own order)."""

    def __init__(self, op: FkwConv2dOp) -> None:
        self.op = op
        self.schedule = op.schedule
        self.geo = ConvGeometry.of(op)
        self.taps = [[self.geo.tap_position(t) for t in p] for p in op.patterns.patterns]
        self.blocks = op.channel_blocks()
        self.relu = op.relu is not None
        self.relu6 = op.relu6 is not None
        self.activated = self.relu or self.relu6
        self.vtype = VectorType(f32, [self.geo.vector_width])
        self.partial_sums = self.schedule["partial_sums"]
        # Accumulators of one filter in a tile: rows x vectors x partial sums.
        self.per_filter = self.geo.unroll_rows * self.geo.unroll_cols * self.partial_sums
        self.shared = False
        """Whether filters in lock-step share their input loads (`fkw.uniform`: every filter
        has the same kernels, as in a dense layer)."""
        if self.schedule["unroll_filters"] > 1 and not self.schedule["specialize"]:
            arrays = op.fkw_arrays()
            self.shared = arrays is not None and fkw.uniform(arrays)

    def emit(self) -> SSAValue:
        """The whole convolution; returns its result tensor."""
        op, geo = self.op, self.geo
        x = _to_buffer(op.input)
        self.reorder, self.index, self.stride, self.weight = (
            _to_buffer(v) for v in (op.reorder, op.index, op.stride, op.weight)
        )
        self.bias = _to_buffer(op.bias) if op.bias is not None else None
        self.zero, self.one = _const(0), _const(1)
        self.zero_f = arith.ConstantOp(FloatAttr(0.0, f32)).result
        self.xp = self.pad_input(x)
        shape = [geo.n, geo.f, geo.oh, geo.ow]
        tiled = [geo.n, geo.f, geo.oh_tiled, geo.ow_tiled]
        self.out = memref.AllocOp.get(f32, shape=shape).memref
        self.target = self.out if geo.exact else memref.AllocOp.get(f32, shape=tiled).memref
        self.residual = _to_buffer(op.residual) if op.residual is not None else None
        self.channel_map = self.reorder
        self.tile_loops()
        return bufferization.ToTensorOp(self.out, restrict=True, writable=True).tensor

    def pad_input(self, x: SSAValue) -> SSAValue:
        """The flat zero-padded, stride-phase-split copy of `x` (see `ConvGeometry`), so that
        every load of a kernel is one base address plus a constant. In parallel over images
        and channels; with stride 1 along the rows, each input row is copied in vectors and
        only the padding around it is zeroed."""
        geo = self.geo
        xp = memref.AllocOp.get(f32, shape=[geo.n * geo.s_n]).memref
        with _parallel([geo.n, geo.c]) as (n, c):
            c_base = arith.AddiOp(_mul(n, geo.s_n), _mul(c, geo.s_c)).result
            if geo.sw == 1:
                # Zeros before the first row, between rows and after the last one; each input
                # row is copied to its place in between.
                first = geo.ph * geo.s_y + geo.pw
                self.zero_fill(xp, c_base, first)
                with _loop(_const(0), _const(geo.h), _const(1)) as iy:
                    row = _add(arith.AddiOp(c_base, _mul(iy, geo.s_y)).result, first)
                    self.copy_row((x, [n, c, iy, self.zero]), (xp, [row]), geo.w)
                    self.zero_fill(xp, _add(row, geo.w), geo.s_y - geo.w)
                after = (geo.ph + geo.h) * geo.s_y + geo.pw
                self.zero_fill(xp, _add(c_base, after), geo.s_c - after)
            else:
                self.zero_fill(xp, c_base, geo.s_c)
                self.scatter_phases(x, xp, n, c, c_base)
        return xp

    def scatter_phases(
        self, x: SSAValue, xp: SSAValue, n: SSAValue, c: SSAValue, c_base: SSAValue
    ) -> None:
        """Input channel `c` of image `n` into its padded place, column phase by phase (stride
        along the rows above 1). With stride 2, a row is read in pairs of vectors from the
        first column whose padded column is even, and each pair is split by two
        `vector.shuffle`s into its even and odd columns, stored at the same place in phase 0
        and phase 1; the columns before and after, and every column of other strides, go
        element by element."""
        geo = self.geo
        width = geo.vector_width
        start = geo.pw % 2  # the first column whose padded column is even
        pairs = (geo.w - start) // (2 * width) if geo.sw == 2 else 0
        end = start + pairs * 2 * width if pairs else 0
        with _loop(_const(0), _const(geo.h), _const(1)) as iy:
            row_base = arith.AddiOp(c_base, _mul(_add(iy, geo.ph), geo.s_y)).result
            if pairs:
                self.scatter_pairs(x, xp, (n, c, iy), row_base, (start, end))
            with _loop(_const(end), _const(geo.w), _const(1)) as ix:
                self.scatter_element(x, xp, (n, c, iy, ix), row_base)

    def scatter_pairs(
        self,
        x: SSAValue,
        xp: SSAValue,
        row: tuple[SSAValue, SSAValue, SSAValue],
        row_base: SSAValue,
        columns: tuple[int, int],
    ) -> None:
        """Stride 2: columns `columns` [start, end) of input row `row` (n, c, iy), in pairs of
        vectors, split into their even and odd padded columns (phase 0 and 1); the columns
        before `start` element by element."""
        geo = self.geo
        n, c, iy = row
        start, end = columns
        width = geo.vector_width
        for ix in range(start):
            self.scatter_element(x, xp, (n, c, iy, _const(ix)), row_base)
        with _loop(_const(start), _const(end), _const(2 * width)) as ix:
            low = vector.LoadOp(x, [n, c, iy, ix], self.vtype).result
            high = vector.LoadOp(x, [n, c, iy, _add(ix, width)], self.vtype).result
            j = arith.DivUIOp(_add(ix, geo.pw), _const(2)).result
            for phase in (0, 1):
                mask = DenseArrayBase.from_list(i64, range(phase, 2 * width, 2))
                half = vector.ShuffleOp(low, high, mask, result_type=self.vtype).result
                at = arith.AddiOp(_add(row_base, phase * geo.s_q), j).result
                vector.StoreOp(half, xp, [at])

    def scatter_element(
        self,
        x: SSAValue,
        xp: SSAValue,
        at: tuple[SSAValue, SSAValue, SSAValue, SSAValue],
        row_base: SSAValue,
    ) -> None:
        """`x[at]` (n, c, iy, ix) to its place in the padded row at `row_base`: stride phase
        (ix + pw) mod sw, column (ix + pw) / sw."""
        geo = self.geo
        value = memref.LoadOp.get(x, list(at)).res
        col = _add(at[3], geo.pw)
        sw = _const(geo.sw)
        phase, j = arith.RemUIOp(col, sw), arith.DivUIOp(col, sw)
        col = arith.AddiOp(_mul(phase.result, geo.s_q), j).result
        memref.StoreOp.get(value, xp, [arith.AddiOp(row_base, col).result])

    def zero_fill(self, buffer: SSAValue, start: SSAValue, count: int) -> None:
        """Zeros at `buffer[start .. start + count)` (a flat buffer): whole vectors, then the
        elements left over."""
        width = self.geo.vector_width
        whole = count - count % width
        if whole:
            zero_v = vector.BroadcastOp(self.zero_f, self.vtype).vector
            with _loop(_const(0), _const(whole), _const(width)) as j:
                vector.StoreOp(zero_v, buffer, [arith.AddiOp(start, j).result])
        for j in range(whole, count):
            memref.StoreOp.get(self.zero_f, buffer, [_add(start, j)])

    def copy_row(
        self,
        source: tuple[SSAValue, list[SSAValue]],
        dest: tuple[SSAValue, list[SSAValue]],
        count: int,
    ) -> None:
        """`count` contiguous elements from `source` to `dest`, each a buffer and the indices of
        its first element (the last index is the one that advances): whole vectors, then a
        scalar loop over the elements left over."""
        (src, src_at), (dst, dst_at) = source, dest
        width = self.geo.vector_width
        whole = count - count % width

        def at(indices: list[SSAValue], j: SSAValue) -> list[SSAValue]:
            return [*indices[:-1], arith.AddiOp(indices[-1], j).result]

        if whole:
            with _loop(_const(0), _const(whole), _const(width)) as j:
                value = vector.LoadOp(src, at(src_at, j), self.vtype).result
                vector.StoreOp(value, dst, at(dst_at, j))
        if whole < count:
            with _loop(_const(whole), _const(count), self.one) as j:
                value = memref.LoadOp.get(src, at(src_at, j)).res
                memref.StoreOp.get(value, dst, at(dst_at, j))

    def tile_loops(self) -> None:
        """In parallel over images, row tiles and shares of the filters (`filter_shares`); in
        each, column tiles, and in each tile every channel block of the share's filters."""
        geo = self.geo
        rows = geo.oh_tiled // geo.unroll_rows
        shares, share = self.filter_shares(geo.n * rows)
        with _parallel([geo.n, rows, shares]) as (n, row, part):
            oh0 = _mul(row, geo.unroll_rows)
            first = _mul(part, share)
            end = arith.MinUIOp(_add(first, share), _const(geo.f)).result
            y_base = _mul(oh0, geo.sh)
            start = arith.AddiOp(_mul(n, geo.s_n), _mul(y_base, geo.s_y)).result
            rows_in = arith.MinUIOp(_const(geo.unroll_rows), arith.SubiOp(_const(geo.oh), oh0))
            if self.residual is not None:
                # The first channel block's accumulators start from the residual.
                self.copy_rows((self.residual, self.target), n, oh0, rows_in.result, (first, end))
            with _loop(_const(0), _const(geo.ow_tiled), _const(geo.tile_width)) as ow0:
                base = arith.AddiOp(start, ow0).result
                self.channel_blocks(_Tile(n, oh0, ow0, base, (first, end)))
            if not geo.exact:
                # Tiles past the output's edge were computed in a scratch output: this tile's
                # rows that are in the output go there while they are in cache.
                self.copy_rows((self.target, self.out), n, oh0, rows_in.result, (first, end))

    def copy_rows(
        self,
        buffers: tuple[SSAValue, SSAValue],
        n: SSAValue,
        oh0: SSAValue,
        rows: SSAValue,
        filters: tuple[SSAValue, SSAValue],
    ) -> None:
        """Copy output rows `oh0 .. oh0 + rows` of image `n`, the first OW columns, from one of
        `buffers` to the other, in the output channels (`channel_map`) of the stored filters
        `filters` ([first, end)). Nothing when they are one buffer (a residual start when the
        tiles fit the output exactly: the output is its own scratch)."""
        source, dest = buffers
        if source is dest:
            return
        with _loop(*filters, self.one) as i:
            channel = _load_index(self.channel_map, [i])
            with _loop(self.zero, rows, self.one) as r:
                row = arith.AddiOp(oh0, r).result
                self.copy_row((source, [n, channel, row, self.zero]),
                              (dest, [n, channel, row, self.zero]), self.geo.ow)  # fmt: skip

    def filter_shares(self, row_tiles: int) -> tuple[int, int]:
        """(shares, filters per share): the stored filters are cut into shares, whole groups
        of `unroll_filters` each, so that images x row tiles x shares gives the threads at least
        `PARALLEL_ITERATIONS` iterations to balance (one share when the rows already do)."""
        group = max(1, min(self.schedule["unroll_filters"], self.geo.f))
        groups = ceil_div(self.geo.f, group)
        shares = min(groups, max(1, ceil_div(PARALLEL_ITERATIONS, row_tiles)))
        per_share = ceil_div(groups, shares) * group
        return ceil_div(self.geo.f, per_share), per_share

    def channel_blocks(self, tile: _Tile) -> None:
        """Every filter over channel block 0, then (when there are several blocks) a loop over
        the others, each continuing from the partial sums stored by the one before; then the
        ReLU."""
        self.all_filters(tile, None)
        if self.blocks == 1:
            return
        with _loop(self.one, _const(self.blocks), self.one) as b:
            self.all_filters(tile, _mul(b, len(self.taps)))
        if self.activated:
            self.rectify(tile)

    def all_filters(self, tile: _Tile, first_run: SSAValue | None) -> None:
        """The tile's stored filters in groups of `unroll_filters`, then the ones left over, one
        by one, over the channel block whose first run in `stride` is `first_run` (b * K; None
        for block 0)."""
        first, end = tile.filters
        size = min(self.schedule["unroll_filters"], self.geo.f)
        if size == 1:
            with _loop(first, end, self.one) as i:
                self.filter_group(tile, i, 1, first_run)
            return
        count = arith.SubiOp(end, first).result
        whole = arith.AddiOp(first, arith.SubiOp(count, arith.RemUIOp(count, _const(size)))).result
        with _loop(first, whole, _const(size)) as i:
            self.filter_group(tile, i, size, first_run)
        with _loop(whole, end, self.one) as i:
            self.filter_group(tile, i, 1, first_run)

    def filter_group(
        self, tile: _Tile, first: SSAValue, size: int, first_run: SSAValue | None
    ) -> None:
        """Stored filters `first` .. `first + size - 1` in lock-step over one channel block:
        per pattern, one loop over the kernels all of them have, then each one's remainder
        (none when the filters have the same kernels, `shared`)."""
        group = [first] + [_add(first, g) for g in range(1, size)]
        channels, accs = self.accumulators(tile, group, first_run is None)
        per = self.per_filter
        for p in range(len(self.taps)):
            los = [self.run_bound(i, first_run, p) for i in group]
            if size > 1 and self.shared:
                count = arith.SubiOp(self.run_bound(first, first_run, p + 1), los[0]).result
                accs = self.kernel_run(tile, p, (self.zero, count), los, accs)
                continue
            his = [self.run_bound(i, first_run, p + 1) for i in group]
            if size > 1:
                common = arith.SubiOp(his[0], los[0]).result
                for lo, hi in zip(los[1:], his[1:], strict=True):
                    common = arith.MinSIOp(common, arith.SubiOp(hi, lo)).result
                accs = self.kernel_run(tile, p, (self.zero, common), los, accs)
                los = [arith.AddiOp(lo, common).result for lo in los]
            for g, (lo, hi) in enumerate(zip(los, his, strict=True)):
                mine = slice(g * per, (g + 1) * per)
                accs[mine] = self.kernel_run(tile, p, (lo, hi), None, accs[mine])
        self.store(tile, channels, accs)

    def accumulators(
        self, tile: _Tile, group: list[SSAValue], first_block: bool
    ) -> tuple[list[SSAValue], list[SSAValue]]:
        """The output channels of the stored filters `group` and their starting accumulators
        (`starting_accumulators`), filter by filter."""
        channels = [_load_index(self.reorder, [i]) for i in group]
        accs: list[SSAValue] = []
        for channel in channels:
            accs += self.starting_accumulators(tile, channel, first_block)
        return channels, accs

    def starting_accumulators(
        self, tile: _Tile, channel: SSAValue, first_block: bool
    ) -> list[SSAValue]:
        """The accumulators of output channel `channel` in the tile: the bias (or 0), plus the
        residual when there is one, in the first channel block, else the partial sums stored by
        the block before. Per row, vector: `partial_sums` accumulators, the first holding that."""
        zero_v = vector.BroadcastOp(self.zero_f, self.vtype).vector
        rest = [zero_v] * (self.partial_sums - 1)
        accs: list[SSAValue] = []
        if not first_block:
            for at in self.tile_positions(tile, channel):
                accs += [vector.LoadOp(self.target, at, self.vtype).result, *rest]
            return accs
        start = zero_v
        if self.bias is not None:
            start = vector.BroadcastOp(memref.LoadOp.get(self.bias, [channel]).res, self.vtype)
            start = start.vector
        if self.op.residual is None:
            return [start, *rest] * (self.geo.unroll_rows * self.geo.unroll_cols)
        for at in self.tile_positions(tile, channel):
            shortcut = vector.LoadOp(self.target, at, self.vtype).result
            if self.bias is not None:
                shortcut = arith.AddfOp(shortcut, start).result
            accs += [shortcut, *rest]
        return accs

    def run_bound(self, i: SSAValue, first_run: SSAValue | None, run: int) -> SSAValue:
        """`stride[i, first_run + run]`: where stored filter `i`'s run `run` of this block
        starts (and run `run - 1` ends)."""
        at = _const(run) if first_run is None else _add(first_run, run)
        return _load_index(self.stride, [i, at])

    def kernel_run(
        self,
        tile: _Tile,
        pattern: int,
        bounds: tuple[SSAValue, SSAValue],
        firsts: list[SSAValue] | None,
        accs: list[SSAValue],
    ) -> list[SSAValue]:
        """One scf.for over a run of kernels of `pattern`, carrying `accs`; its results.

        With `firsts`, the filters of a group in lock-step: the loop counts k over `bounds` and
        filter g's kernel is `firsts[g] + k`. Without, one filter: k is the kernel itself."""
        body = Block(arg_types=[index_type, *(a.type for a in accs)])
        k, carried = body.args[0], list(body.args[1:])
        per = self.per_filter
        with ImplicitBuilder(body):
            results: list[SSAValue] = []
            if firsts is not None and self.shared:
                kernels = [arith.AddiOp(first, k).result for first in firsts]
                results = self.kernel_body(tile, pattern, kernels, carried)
            else:
                for g in range(len(accs) // per):
                    kernel = k if firsts is None else arith.AddiOp(firsts[g], k).result
                    mine = carried[g * per : (g + 1) * per]
                    results += self.kernel_body(tile, pattern, [kernel], mine)
            scf.YieldOp(*results)
        return list(scf.ForOp(*bounds, self.one, accs, body).results)

    def kernel_body(
        self, tile: _Tile, pattern: int, kernels: list[SSAValue], accs: list[SSAValue]
    ) -> list[SSAValue]:
        """One kernel of each of the filters `kernels` belong to (one filter, or a group that
        reads the same input channel at this step: `shared`): taps x rows x vectors, each input
        vector one load at the channel's base (of the first kernel, in this tile) plus a
        constant, followed by every filter's multiply-add that reads it; the new accumulators."""
        geo = self.geo
        channel = _load_index(self.index, [kernels[0]])
        base = arith.AddiOp(_mul(channel, geo.s_c), tile.base).result
        taps = self.taps[pattern]
        weights = [self.kernel_weights(kernel, len(taps), _const) for kernel in kernels]
        out = list(accs)
        for r in range(geo.unroll_rows):
            for u in range(geo.unroll_cols):
                slot = (r * geo.unroll_cols + u) * self.partial_sums
                for t, (row_offset, phase, col_offset) in enumerate(taps):
                    offset = (r * geo.sh + row_offset) * geo.s_y + phase * geo.s_q
                    offset += u * geo.vector_width + col_offset
                    loaded = vector.LoadOp(self.xp, [_add(base, offset)], self.vtype).result
                    for g, mine in enumerate(weights):
                        part = g * self.per_filter + slot + t % self.partial_sums
                        out[part] = vector.FMAOp(loaded, mine[t], out[part]).res
        return out

    def kernel_weights(
        self, kernel: SSAValue, taps: int, const: Callable[[int], SSAValue]
    ) -> list[SSAValue]:
        """Kernel `kernel`'s `taps` weights, each broadcast to a vector: one scalar load per
        weight, or with `lane_weights` one vector load of the kernel's row of `weight` and a
        broadcast of each lane (which LLVM folds into lane-indexed multiply-adds on AArch64).
        `const` makes the index constants."""
        if not self.schedule["lane_weights"]:
            return [self.kernel_weight(kernel, t, const) for t in range(taps)]
        row = vector.LoadOp(self.weight, [kernel, const(0)], VectorType(f32, [taps])).result
        return [
            vector.BroadcastOp(vector.ExtractOp(row, [t], f32).result, self.vtype).vector
            for t in range(taps)
        ]

    def kernel_weight(
        self, kernel: SSAValue, tap: int, const: Callable[[int], SSAValue]
    ) -> SSAValue:
        """Weight `tap` of kernel `kernel` broadcast to a vector (a scalar load)."""
        scalar = memref.LoadOp.get(self.weight, [kernel, const(tap)]).res
        return vector.BroadcastOp(scalar, self.vtype).vector

    def store(
        self,
        tile: _Tile,
        channels: list[SSAValue],
        accs: list[SSAValue],
        last: bool | None = None,
    ) -> None:
        """Sum each output vector's partial sums, apply the activation when this is the `last`
        part of the sum (default: when there is one channel block), and store the vectors to
        the output channels `channels`."""
        last = self.blocks == 1 if last is None else last
        for g, channel in enumerate(channels):
            slot = g * self.per_filter
            for at in self.tile_positions(tile, channel):
                value = accs[slot]
                for s in range(1, self.partial_sums):
                    value = arith.AddfOp(value, accs[slot + s]).result
                if last:
                    value = self.activation(value)
                vector.StoreOp(value, self.target, at)
                slot += self.partial_sums

    def rectify(self, tile: _Tile) -> None:
        """The activation over the tile of each of its filters' output channels, after the last
        channel block."""
        with _loop(*tile.filters, self.one) as i:
            channel = _load_index(self.reorder, [i])
            for at in self.tile_positions(tile, channel):
                value = vector.LoadOp(self.target, at, self.vtype).result
                vector.StoreOp(self.activation(value), self.target, at)

    def activation(self, value: SSAValue) -> SSAValue:
        """`value` through the op's activation: max(., 0) for ReLU, then min(., 6) for ReLU6."""
        if not self.activated:
            return value
        zero_v = vector.BroadcastOp(self.zero_f, self.vtype).vector
        value = arith.MaximumfOp(value, zero_v).result
        if self.relu6:
            six = vector.BroadcastOp(arith.ConstantOp(FloatAttr(6.0, f32)).result, self.vtype)
            value = arith.MinimumfOp(value, six.vector).result
        return value

    def tile_positions(self, tile: _Tile, channel: SSAValue) -> Iterator[list[SSAValue]]:
        """The output indices of the tile's vectors in `channel`, row by row."""
        geo = self.geo
        for r in range(geo.unroll_rows):
            row = _add(tile.oh0, r)
            for u in range(geo.unroll_cols):
                yield [tile.n, channel, row, _add(tile.ow0, u * geo.vector_width)]


SPECIALIZED_SHARES = 4
"""Shares of the filter groups that specialised code offers the threads (fewer when there are
fewer groups): each share is its own code, so a thread runs only its share's instructions."""


SPECIALIZED_BAND_BYTES = 192 * 1024
"""Most input bytes (all channels) of the row tiles one band of specialised code sweeps: each
chunk sweeps the band, so its input should stay in the L2 cache (512 KB to 2 MB per core on the
x86-64 and Arm cores we target) while the band's other chunks run."""


@dataclass(frozen=True)
class _Chunk:
    """One straight-line piece of a filter group's specialised code: its input `channels`,
    each with the (filter slot in the group, pattern, kernel) of every kernel reading it;
    `first` starts the group's sums (bias, residual), `last` finishes them (activation)."""

    channels: tuple[tuple[int, tuple[tuple[int, int, int], ...]], ...]
    first: bool
    last: bool


def specialized_chunks(
    kernels: list[list[tuple[int, int, int]]],
    taps: list[int],
    per_tap: int,
    chunk_fmas: int,
) -> list[_Chunk]:
    """The chunks of one filter group whose filters' kernels are `kernels` (per filter, its
    (channel, pattern, kernel) list): channels in rising order, cut before the vector
    multiply-adds of a chunk (`per_tap` per kept tap; pattern p keeps `taps[p]`) would pass
    `chunk_fmas`. A group without kernels has one empty chunk (its output is the bias)."""
    by_channel: dict[int, list[tuple[int, int, int]]] = {}
    for slot, mine in enumerate(kernels):
        for channel, pattern, kernel in mine:
            by_channel.setdefault(channel, []).append((slot, pattern, kernel))
    pieces: list[list[tuple[int, tuple[tuple[int, int, int], ...]]]] = [[]]
    work = 0
    for channel in sorted(by_channel):
        uses = tuple(by_channel[channel])
        cost = sum(taps[p] for _, p, _ in uses) * per_tap
        if pieces[-1] and work + cost > chunk_fmas:
            pieces.append([])
            work = 0
        pieces[-1].append((channel, uses))
        work += cost
    last = len(pieces) - 1
    return [_Chunk(tuple(p), i == 0, i == last) for i, p in enumerate(pieces)]


def balanced_shares(work: list[int], shares: int) -> list[tuple[int, int]]:
    """`work` (per item) cut into at most `shares` contiguous [first, end) ranges of about equal
    work, none empty."""
    total = sum(work)
    bounds, done = [0], 0
    for i, w in enumerate(work):
        done += w
        cut = len(bounds)
        if cut < shares and i + 1 < len(work) and done * shares >= total * cut:
            bounds.append(i + 1)
    bounds.append(len(work))
    return list(zip(bounds, bounds[1:], strict=False))


class SpecializedConvEmitter(FkwConvEmitter):
    """`specialize = 1`: code specialised to the layer's kept kernels (filter-level LRE).

    The stored filters are regrouped by `fkw.overlap_groups` into groups of `unroll_filters`
    that read the same (input channel, tap) pairs; a group's G x R x U accumulators stay in
    registers while its kernels are emitted as straight-line code, channel by channel, in use
    order: each shifted input vector the group's kernels read in that channel (over every
    row and vector of the tile) is loaded once, then every multiply-add that reads it follows,
    its weight broadcast from a constant position in `weight`. No index or stride is read at
    run time. The code is cut into chunks (`specialized_chunks`) of about `chunk_fmas`
    multiply-adds, each with the spatial loops inside it, so a chunk stays in the instruction
    cache while it sweeps a band of row tiles (as many as keep the band's input within
    `SPECIALIZED_BAND_BYTES`); between chunks the sums go through the output.

        parallel n, band, share:                   // share: contiguous groups, about equal work
          switch share:                            // one case of code per share
            for each group, for each chunk:        // straight-line, specialised
              for oh0 in band, for ow0:
                acc = first ? bias [+ residual] : out
                for each channel: v = load xp[base + c * s_c + off]; acc = fma(v, w_k,t, acc)...
                out = last ? act(acc) : acc

    `partial_sums` and `tile_channels` do not apply (the chunks are the channel blocks)."""

    def __init__(self, op: FkwConv2dOp) -> None:
        super().__init__(op)
        arrays = op.fkw_arrays()
        if arrays is None:
            raise OpError(op, "specialize = 1 needs the FKW arrays as constants")
        patterns = op.patterns.patterns
        geo = self.geo
        kernels = fkw.filter_kernels(arrays, len(patterns))
        size = max(1, min(self.schedule["unroll_filters"], geo.f))
        ids = np.full((geo.f, geo.c), -1)
        for f, mine in enumerate(kernels):
            for channel, pattern, _ in mine:
                ids[f, channel] = pattern
        uses = fkw.tap_uses(ids, patterns, geo.kh * geo.kw)
        self.groups = fkw.overlap_groups(uses, size)
        self.partial_sums = 1
        self.per_filter = geo.unroll_rows * geo.unroll_cols
        taps = [len(p) for p in patterns]
        self.chunks = [
            specialized_chunks(
                [kernels[f] for f in group], taps, self.per_filter, self.schedule["chunk_fmas"]
            )
            for group in self.groups
        ]
        self.positions = [f for group in self.groups for f in group]
        self.outputs = [int(arrays.reorder[f]) for f in self.positions]
        self.starts = [0]
        for group in self.groups:
            self.starts.append(self.starts[-1] + len(group))
        work = [len(g) + sum(len(kernels[f]) for f in g) for g in self.groups]
        self.shares = balanced_shares(work, SPECIALIZED_SHARES)

    def tile_loops(self) -> None:
        """In parallel over images, bands of row tiles and shares of the groups; one case of
        code per share."""
        geo = self.geo
        order = DenseIntOrFPElementsAttr.from_list(TensorType(i32, [geo.f]), self.outputs)
        self.channel_map = _to_buffer(arith.ConstantOp(order).result)
        row_tiles = geo.oh_tiled // geo.unroll_rows
        shares = len(self.shares)
        per_band = ceil_div(
            row_tiles, min(row_tiles, ceil_div(PARALLEL_ITERATIONS, geo.n * shares))
        )
        # Every chunk sweeps its band: keep the band's input rows (every channel) within
        # `SPECIALIZED_BAND_BYTES`, so the chunks after the first find them in cache.
        rows_in = (geo.unroll_rows - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1
        row_bytes = 4 * geo.c * geo.s_y
        fits = (SPECIALIZED_BAND_BYTES // row_bytes - rows_in) // (geo.unroll_rows * geo.sh) + 1
        per_band = max(1, min(per_band, fits))
        bands = ceil_div(row_tiles, per_band)
        with _parallel([geo.n, bands, shares]) as (n, band, part):
            first_row = _mul(band, per_band)
            end_row = arith.MinUIOp(_add(first_row, per_band), _const(row_tiles)).result
            if shares == 1:
                self.share(0, n, (first_row, end_row))
            else:
                cases: list[Region] = []
                for s in range(shares):
                    case = Block()
                    with ImplicitBuilder(case):
                        self.share(s, n, (first_row, end_row))
                        scf.YieldOp()
                    cases.append(Region(case))
                default = Block()
                with ImplicitBuilder(default):
                    scf.YieldOp()
                cases_attr = DenseArrayBase.from_list(i64, list(range(shares)))
                scf.IndexSwitchOp(part, cases_attr, Region(default), cases, [])

    def share(self, share: int, n: SSAValue, rows: tuple[SSAValue, SSAValue]) -> None:
        """The groups of `share` over the row tiles `rows` ([first, end)) of image `n`."""
        geo = self.geo
        first_group, end_group = self.shares[share]
        filters = (_const(self.starts[first_group]), _const(self.starts[end_group]))

        def each_row_tile(body: Callable[[SSAValue, SSAValue], None]) -> None:
            with _loop(*rows, self.one) as row:
                oh0 = _mul(row, geo.unroll_rows)
                body(row, oh0)

        def copy(buffers: tuple[SSAValue, SSAValue]) -> None:
            def body(_row: SSAValue, oh0: SSAValue) -> None:
                rows_in = arith.MinUIOp(_const(geo.unroll_rows), arith.SubiOp(_const(geo.oh), oh0))
                self.copy_rows(buffers, n, oh0, rows_in.result, filters)

            each_row_tile(body)

        if self.residual is not None and self.residual is not self.target:
            copy((self.residual, self.target))
        for group in range(first_group, end_group):
            for chunk in self.chunks[group]:

                def sweep(_row: SSAValue, oh0: SSAValue, group: int = group, chunk: _Chunk = chunk):
                    start = arith.AddiOp(_mul(n, geo.s_n), _mul(oh0, geo.sh * geo.s_y)).result
                    with _loop(self.zero, _const(geo.ow_tiled), _const(geo.tile_width)) as ow0:
                        base = arith.AddiOp(start, ow0).result
                        self.chunk(_Tile(n, oh0, ow0, base, filters), group, chunk)

                each_row_tile(sweep)
        if not geo.exact:
            copy((self.target, self.out))

    def chunk(self, tile: _Tile, group: int, chunk: _Chunk) -> None:
        """One chunk of `group` on one register tile: its starting accumulators, its
        multiply-adds channel by channel in use order, its stores."""
        geo = self.geo
        first = self.starts[group]
        channels = [_const(self.outputs[first + g]) for g in range(len(self.groups[group]))]
        accs: list[SSAValue] = []
        for channel in channels:
            accs += self.starting_accumulators(tile, channel, chunk.first)
        constants: dict[int, SSAValue] = {}

        def const(value: int) -> SSAValue:
            if value not in constants:
                constants[value] = _const(value)
            return constants[value]

        rows, cols, width = geo.unroll_rows, geo.unroll_cols, geo.vector_width
        # The tile's input as [channel, offset] from its first tap, so that each load's indices
        # are two constants that repeat (the channel, the offset within it).
        layout = StridedLayoutAttr([geo.s_c, 1], None)
        view_type = MemRefType(f32, [geo.c, geo.s_c * geo.c], layout)
        view = memref.ReinterpretCastOp.from_dynamic(
            self.xp, [tile.base], [geo.c, geo.s_c * geo.c], [geo.s_c, 1], view_type
        ).result
        for channel, uses in chunk.channels:
            reads: dict[int, list[tuple[int, int, int]]] = {}
            for slot, pattern, kernel in uses:
                for t, (row_offset, phase, col_offset) in enumerate(self.taps[pattern]):
                    for r in range(rows):
                        for u in range(cols):
                            offset = (r * geo.sh + row_offset) * geo.s_y + phase * geo.s_q
                            offset += u * width + col_offset
                            acc = (slot * rows + r) * cols + u
                            reads.setdefault(offset, []).append((acc, kernel, t))
            weights: dict[tuple[int, int], SSAValue] = {}
            lanes = self.schedule["lane_weights"]
            patterns = {kernel: pattern for _, pattern, kernel in uses}
            for offset in sorted(reads):
                loaded = vector.LoadOp(view, [const(channel), const(offset)], self.vtype).result
                for acc, kernel, t in reads[offset]:
                    if (kernel, t) not in weights:
                        if lanes:  # the kernel's whole row of weights, at its first use
                            count = len(self.taps[patterns[kernel]])
                            row = self.kernel_weights(const(kernel), count, const)
                            weights.update({(kernel, i): w for i, w in enumerate(row)})
                        else:
                            weights[kernel, t] = self.kernel_weight(const(kernel), t, const)
                    accs[acc] = vector.FMAOp(loaded, weights[kernel, t], accs[acc]).res
        self.store(tile, channels, accs, chunk.last)


@dataclass
class _LowerFkwConv(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        with ImplicitBuilder(rewriter):
            emitter = SpecializedConvEmitter if op.schedule["specialize"] else FkwConvEmitter
            result = emitter(op).emit()
        rewriter.replace(op, [], [result])


@dataclass(frozen=True)
class ConvertPconvToLoopsPass(ModulePass):
    """Lowers every `pconv.fkw_conv2d` to vectorised scf loops with one body per pattern, tiled
    as its `#pconv.schedule` says (see the module docstring for the loop nest)."""

    name = "convert-pconv-to-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_LowerFkwConv(), apply_recursively=False).rewrite_module(op)

"""convert-pconv-to-loops: `pconv.fkw_conv2d` to scf/memref/arith/vector loops.

One specialised loop per pattern: for each stored filter, the run of kernels with pattern p is
an `scf.for` whose body has that pattern's tap offsets as constants, so no tap index is ever
loaded at run time. Only a kernel's input channel (`index`) and its weights (`weight`) are read
from the FKW arrays. Vectorised along the output row.

The `#pconv.schedule` of the op picks the register tile: `unroll_rows` output rows x
`unroll_cols` vectors of `vector_width` lanes, held in registers for one filter while its kernel
runs stream past. Loop order: image, row tile, column tile, filter (stored order), pattern run,
kernel: an input tile stays in cache across all filters.

Generated code, in outline:

    %xp = zero-padded copy of the input, columns split by stride phase, rows and columns
          rounded up to whole tiles (so every load is in bounds and stride 2 loads contiguously)
    for n, for oh0 (step R), for ow0 (step V*U), for i in filters:
      acc[r][u] = broadcast(bias[reorder[i]])
      for p in patterns:                                  // unrolled: one body per pattern
        acc = scf.for k in stride[i, p] to stride[i, p + 1] iter_args(acc):
          c = index[k]; w_t = broadcast(weight[k, t])
          acc[r][u] = fma(load xp[n, c, (oh0 + r) * sh + dr_t * dh, phase_t,
                                  ow0 + u * V + dc_t], w_t, acc[r][u])
      store max(acc, 0) (with relu) to out[n, reorder[i], oh0 + r, ow0 + u*V]

Each (row, tap) gets its own `vector.load`; `pconv-lre` then removes the loads that several taps
and rows share. Tiles past the output edge write to a scratch output that is copied back.
The result is a tensor again (`bufferization.to_tensor`), so the rest of the program and the
upstream bufferization see a value-semantics function.

    %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b ...
  becomes
    %xm = bufferization.to_buffer %x read_only ...
    scf.for ... { scf.for ... { ... vector.fma ... } }
    %y = bufferization.to_tensor %out restrict writable ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.builder import Builder, ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, bufferization, memref, scf, vector
from xdsl.dialects.builtin import (
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    TensorType,
    VectorType,
)
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Block, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from pconv_mlir.builders import dense_constant
from pconv_mlir.dialects.pconv import FkwConv2dOp, dense_values, tap_offset

f32 = Float32Type()
index = IndexType()


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one convolution and of its padded, phase-split input buffer."""

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
    rows: int  # R
    vector: int  # V
    cols: int  # U
    partials: int = 1  # P: partial sums per output vector (independent multiply-add chains)
    channel_block: int = 0  # input channels per cache block (0: all channels at once)
    filters_together: int = 1  # G: stored filters computed in lock-step

    @property
    def oh_tiled(self) -> int:
        return _ceil_to(self.oh, self.rows)

    @property
    def ow_tiled(self) -> int:
        return _ceil_to(self.ow, self.vector * self.cols)

    @property
    def padded_rows(self) -> int:
        needed = (self.oh_tiled - 1) * self.sh + 2 * self.dh + 1
        return max(needed, self.h + 2 * self.ph)

    @property
    def phase_cols(self) -> int:
        needed = self.ow_tiled + (2 * self.dw) // self.sw + 1
        return max(needed, -(-(self.w + 2 * self.pw) // self.sw))

    @property
    def exact(self) -> bool:
        """Whether whole tiles cover the output exactly (no scratch output needed)."""
        return self.oh_tiled == self.oh and self.ow_tiled == self.ow

    def tap_position(self, tap: int) -> tuple[int, int, int]:
        """(row offset, stride phase, column offset in the phase) of `tap`."""
        dr, dc = tap_offset(tap)
        x = dc * self.dw
        return dr * self.dh, x % self.sw, x // self.sw


def tile_count(oh: int, ow: int, schedule: dict[str, int]) -> int:
    """Register tiles per image of an OH x OW output under `schedule` (the tile clamped to it)."""
    width = schedule["vector_width"]
    rows = min(schedule["unroll_rows"], oh)
    cols = min(schedule["unroll_cols"], -(-ow // width))
    return -(-oh // rows) * -(-ow // (width * cols))


class _Emitter:
    """Small helpers that build ops at the builder's insertion point."""

    def __init__(self) -> None:
        self.index_cache: dict[int, SSAValue] = {}

    def const(self, value: int) -> SSAValue:
        return arith.ConstantOp(IntegerAttr(value, index)).result

    def f32_const(self, value: float) -> SSAValue:
        return arith.ConstantOp(FloatAttr(value, f32)).result

    def add(self, a: SSAValue, offset: int) -> SSAValue:
        if offset == 0:
            return a
        return arith.AddiOp(a, self.const(offset)).result

    def mul(self, a: SSAValue, factor: int) -> SSAValue:
        if factor == 1:
            return a
        return arith.MuliOp(a, self.const(factor)).result

    def load_index(self, ref: SSAValue, indices: list[SSAValue]) -> SSAValue:
        """An i32 element of `ref` as an index."""
        value = memref.LoadOp.get(ref, indices).res
        return arith.IndexCastOp(value, index).result


def _for(lb: SSAValue, ub: SSAValue, step: SSAValue, iter_args: list[SSAValue], body) -> scf.ForOp:
    """An scf.for whose body `body(iv, *args) -> yielded values` is built in place."""
    block = Block(arg_types=[index, *(a.type for a in iter_args)])
    with ImplicitBuilder(block):
        results = body(block.args[0], *block.args[1:])
        scf.YieldOp(*(results or []))
    return scf.ForOp(lb, ub, step, iter_args, block)


@dataclass
class _LowerFkwConv(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        n, c, h, w = op.input.type.get_shape()
        _, f, oh, ow = op.result.type.get_shape()
        schedule = op.schedule.as_dict()
        sh, sw = (int(v) for v in op.strides.get_values())
        ph, pw = (int(v) for v in op.padding.get_values())
        dh, dw = (int(v) for v in op.dilation.get_values())
        # The tile never exceeds the output: a 7-wide row takes one 8-lane vector, not two.
        vector_width = schedule["vector_width"]
        geo = ConvGeometry(
            n, c, h, w, f, oh, ow, sh, sw, ph, pw, dh, dw,
            rows=min(schedule["unroll_rows"], oh), vector=vector_width,
            cols=min(schedule["unroll_cols"], -(-ow // vector_width)),
            partials=schedule["partial_sums"],
            filters_together=schedule["unroll_filters"],
            channel_block=schedule["tile_channels"],
        )  # fmt: skip
        patterns = op.patterns.patterns
        emit = _Emitter()
        builder = Builder(InsertPoint.before(op))
        with ImplicitBuilder(builder):
            result = _emit_conv(emit, op, geo, patterns)
        rewriter.replace(op, [], [result])


def _to_buffer(value: SSAValue) -> SSAValue:
    assert isinstance(value.type, TensorType)
    memref_type = MemRefType(value.type.element_type, value.type.get_shape())
    op = bufferization.ToBufferOp(operands=[value], result_types=[memref_type], properties={})
    return op.memref


def _emit_conv(
    emit: _Emitter, op: FkwConv2dOp, geo: ConvGeometry, patterns: list[tuple[int, ...]]
) -> SSAValue:
    x = _to_buffer(op.input)
    reorder, idx, stride, weight = (
        _to_buffer(v) for v in (op.reorder, op.index, op.stride, op.weight)
    )
    bias = _to_buffer(op.bias) if op.bias is not None else None
    zero_i, one = emit.const(0), emit.const(1)
    zero_f = emit.f32_const(0.0)
    vtype = VectorType(f32, [geo.vector])

    # The padded, phase-split input, flat: element (n, c, y, q, j) is padded pixel
    # (y, j * sw + q) at n * s_n + c * s_c + y * s_y + q * s_q + j. Flat, so that every load of
    # a kernel is one base address plus a constant.
    s_q = geo.phase_cols
    s_y = geo.sw * s_q
    s_c = geo.padded_rows * s_y
    s_n = geo.c * s_c
    xp = memref.AllocOp.get(f32, shape=[geo.n * s_n]).memref
    linalg.FillOp((zero_f,), (xp,), ())

    def copy_image(nv: SSAValue) -> None:
        n_base = emit.mul(nv, s_n)

        def per_channel(cv: SSAValue) -> None:
            c_base = arith.AddiOp(n_base, emit.mul(cv, s_c)).result

            def per_row(iy: SSAValue) -> None:
                row_base = arith.AddiOp(c_base, emit.mul(emit.add(iy, geo.ph), s_y)).result

                def per_col(ix: SSAValue) -> None:
                    value = memref.LoadOp.get(x, [nv, cv, iy, ix]).res
                    col = emit.add(ix, geo.pw)
                    if geo.sw == 1:
                        offset = col
                    else:
                        sw = emit.const(geo.sw)
                        q = arith.RemUIOp(col, sw).result
                        j = arith.DivUIOp(col, sw).result
                        offset = arith.AddiOp(emit.mul(q, s_q), j).result
                    memref.StoreOp.get(value, xp, [arith.AddiOp(row_base, offset).result])

                _for(zero_i, emit.const(geo.w), one, [], lambda iv: per_col(iv))

            _for(zero_i, emit.const(geo.h), one, [], lambda iv: per_row(iv))

        _for(zero_i, emit.const(geo.c), one, [], lambda iv: per_channel(iv))

    _for(zero_i, emit.const(geo.n), one, [], lambda iv: copy_image(iv))
    strides = (s_c, s_y, s_q)

    out_type = MemRefType(f32, [geo.n, geo.f, geo.oh, geo.ow])
    out = memref.AllocOp.get(f32, shape=out_type.get_shape()).memref
    if geo.exact:
        target = out
    else:
        target = memref.AllocOp.get(f32, shape=[geo.n, geo.f, geo.oh_tiled, geo.ow_tiled]).memref

    taps = [[geo.tap_position(t) for t in pattern] for pattern in patterns]
    relu = op.relu is not None
    k_count = len(patterns)
    table = block_runs(op, geo.channel_block, geo.c)
    blocks = 1 if table is None else table.shape[1]
    runs = None if table is None else _to_buffer(dense_constant(table).result)

    def per_image(nv: SSAValue) -> None:
        def per_row_tile(oh0: SSAValue) -> None:
            y_base = emit.mul(oh0, geo.sh)

            def per_col_tile(ow0: SSAValue) -> None:
                tile_base = arith.AddiOp(
                    arith.AddiOp(emit.mul(nv, s_n), emit.mul(y_base, s_y)).result, ow0
                ).result

                def filter_group(
                    first: SSAValue, size: int, block: SSAValue | None, first_block: bool
                ) -> None:
                    """Stored filters first .. first + size - 1 in lock-step: per pattern, one
                    loop over the kernels all of them have, then each one's remainder. With
                    channel blocks, only the kernels of `block`; the accumulators start from
                    the bias in the first block and from the partial sums stored after it."""
                    group = [first] + [emit.add(first, g) for g in range(1, size)]
                    per = geo.rows * geo.cols * geo.partials
                    fvs, accs = [], []
                    for i in group:
                        fv = emit.load_index(reorder, [i])
                        fvs.append(fv)
                        zero_v = vector.BroadcastOp(zero_f, vtype).vector
                        if first_block and bias is not None:
                            start = memref.LoadOp.get(bias, [fv]).res
                            start = vector.BroadcastOp(start, vtype).vector
                        elif first_block:
                            start = zero_v
                        for r in range(geo.rows):
                            for u in range(geo.cols):
                                if not first_block:
                                    row, col = emit.add(oh0, r), emit.add(ow0, u * geo.vector)
                                    start = vector.LoadOp(target, [nv, fv, row, col], vtype)
                                    start = start.result
                                accs += [start] + [zero_v] * (geo.partials - 1)
                    for p in range(k_count):
                        if block is None:
                            los = [emit.load_index(stride, [i, emit.const(p)]) for i in group]
                            his = [emit.load_index(stride, [i, emit.const(p + 1)]) for i in group]
                        else:
                            at = [block, emit.const(p)]
                            los = [emit.load_index(runs, [i, *at, zero_i]) for i in group]
                            his = [emit.load_index(runs, [i, *at, one]) for i in group]
                        if size > 1:
                            common = arith.SubiOp(his[0], los[0]).result
                            for lo, hi in zip(los[1:], his[1:], strict=True):
                                length = arith.SubiOp(hi, lo).result
                                common = arith.MinSIOp(common, length).result

                            def joint(k: SSAValue, *acc: SSAValue, p: int = p, los=los) -> list:
                                out: list[SSAValue] = []
                                for g, lo in enumerate(los):
                                    out += _kernel_body(
                                        emit, arith.AddiOp(lo, k).result,
                                        list(acc[g * per : (g + 1) * per]), tile_base, taps[p],
                                        geo, xp, strides, idx, weight, vtype,
                                    )  # fmt: skip
                                return out

                            accs = list(_for(zero_i, common, one, accs, joint).results)
                            los = [arith.AddiOp(lo, common).result for lo in los]
                        for g, (lo, hi) in enumerate(zip(los, his, strict=True)):
                            mine = accs[g * per : (g + 1) * per]
                            run = _for(
                                lo, hi, one, mine,
                                lambda k, *acc, p=p: _kernel_body(
                                    emit, k, list(acc), tile_base, taps[p], geo, xp, strides,
                                    idx, weight, vtype,
                                ),
                            )  # fmt: skip
                            accs[g * per : (g + 1) * per] = list(run.results)
                    for g, fv in enumerate(fvs):
                        for r in range(geo.rows):
                            row = emit.add(oh0, r)
                            for u in range(geo.cols):
                                slot = g * per + (r * geo.cols + u) * geo.partials
                                value = accs[slot]
                                for q in range(1, geo.partials):
                                    value = arith.AddfOp(value, accs[slot + q]).result
                                if relu and blocks == 1:
                                    value = arith.MaximumfOp(
                                        value, vector.BroadcastOp(zero_f, vtype).vector
                                    ).result
                                col = emit.add(ow0, u * geo.vector)
                                vector.StoreOp(value, target, [nv, fv, row, col])

                def all_filters(block: SSAValue | None, first_block: bool) -> None:
                    size = min(geo.filters_together, geo.f)
                    whole = geo.f - geo.f % size
                    _for(
                        zero_i, emit.const(whole), emit.const(size), [],
                        lambda iv: filter_group(iv, size, block, first_block),
                    )  # fmt: skip
                    if whole < geo.f:
                        _for(
                            emit.const(whole), emit.const(geo.f), one, [],
                            lambda iv: filter_group(iv, 1, block, first_block),
                        )  # fmt: skip

                if blocks == 1:
                    all_filters(None, True)
                    return
                all_filters(zero_i, True)
                _for(
                    one, emit.const(blocks), one, [], lambda b: all_filters(b, False)
                )  # fmt: skip
                if relu:

                    def rectify(fv: SSAValue) -> None:
                        zero_v = vector.BroadcastOp(zero_f, vtype).vector
                        for r in range(geo.rows):
                            for u in range(geo.cols):
                                at = [nv, fv, emit.add(oh0, r), emit.add(ow0, u * geo.vector)]
                                value = vector.LoadOp(target, at, vtype).result
                                value = arith.MaximumfOp(value, zero_v).result
                                vector.StoreOp(value, target, at)

                    _for(zero_i, emit.const(geo.f), one, [], rectify)

            _for(
                zero_i, emit.const(geo.ow_tiled), emit.const(geo.vector * geo.cols), [],
                lambda iv: per_col_tile(iv),
            )  # fmt: skip

        _for(zero_i, emit.const(geo.oh_tiled), emit.const(geo.rows), [], per_row_tile)

    _for(zero_i, emit.const(geo.n), one, [], per_image)

    if not geo.exact:
        subview = memref.SubviewOp.from_static_parameters(
            target, MemRefType(f32, [geo.n, geo.f, geo.oh_tiled, geo.ow_tiled]),
            [0, 0, 0, 0], [geo.n, geo.f, geo.oh, geo.ow], [1, 1, 1, 1],
        )  # fmt: skip
        memref.CopyOp(subview.result, out)
    return bufferization.ToTensorOp(out, restrict=True, writable=True).tensor


def block_runs(op: FkwConv2dOp, block: int, channels: int) -> np.ndarray | None:
    """runs[i, b, p] = (first, end) kernel of stored filter i's pattern-p run that reads
    channels of block b (`block` channels each), or None when blocking does not apply: one
    block covers every channel, the FKW arrays are not constants, or a run's channels are not
    in rising order (as pconv-fkw-pack stores them)."""
    if block <= 0 or block >= channels:
        return None
    arrays = [dense_values(v) for v in (op.index, op.stride)]
    if any(a is None for a in arrays):
        return None
    index, stride = arrays
    filters, k_plus_1 = stride.shape
    count = -(-channels // block)
    table = np.zeros((filters, count, k_plus_1 - 1, 2), dtype=np.int32)
    for i in range(filters):
        for p in range(k_plus_1 - 1):
            lo, hi = int(stride[i, p]), int(stride[i, p + 1])
            run = index[lo:hi] // block
            if np.any(np.diff(index[lo:hi]) < 0):
                return None
            starts = lo + np.searchsorted(run, np.arange(count), side="left")
            ends = lo + np.searchsorted(run, np.arange(count), side="right")
            table[i, :, p, 0], table[i, :, p, 1] = starts, ends
    return table


def _kernel_body(
    emit: _Emitter,
    k: SSAValue,
    accs: list[SSAValue],
    tile_base: SSAValue,
    taps: list[tuple[int, int, int]],
    geo: ConvGeometry,
    xp: SSAValue,
    strides: tuple[int, int, int],
    idx: SSAValue,
    weight: SSAValue,
    vtype: VectorType,
) -> list[SSAValue]:
    """One kernel of a run: `taps` x rows x column vectors multiply-adds, loads not shared.

    Every load is `base + constant`, with `base` the kernel's channel in this tile."""
    s_c, s_y, s_q = strides
    channel = emit.load_index(idx, [k])
    base = arith.AddiOp(emit.mul(channel, s_c), tile_base).result
    weights = [
        vector.BroadcastOp(memref.LoadOp.get(weight, [k, emit.const(t)]).res, vtype).vector
        for t in range(len(taps))
    ]
    out = list(accs)
    for r in range(geo.rows):
        for u in range(geo.cols):
            slot = (r * geo.cols + u) * geo.partials
            for t, (row_offset, phase, col_offset) in enumerate(taps):
                offset = (r * geo.sh + row_offset) * s_y + phase * s_q + u * geo.vector + col_offset
                loaded = vector.LoadOp(xp, [emit.add(base, offset)], vtype).result
                part = slot + t % geo.partials
                out[part] = vector.FMAOp(loaded, weights[t], out[part]).res
    return out


@dataclass(frozen=True)
class ConvertPconvToLoopsPass(ModulePass):
    """Lowers pconv.fkw_conv2d to vectorised scf loops with one body per pattern.

    See the module docstring for the loop nest; the `#pconv.schedule` on each op picks the tile.
    """

    name = "convert-pconv-to-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_LowerFkwConv(), apply_recursively=False).rewrite_module(op)

"""convert-pconv-to-gpu: `pconv.fkw_conv2d` to GPU kernels and host-side launches.

Each conv becomes a `gpu.func @conv<k> ... kernel` (the k-th conv of its function) in the
`gpu.module @<function>_kernels` of the function it sits in (one module per host function, so
one OpenCL program or SPIR-V module holds all its layers), and in the host function a
`gpu.launch_func` with constant grid and block sizes. The mapping follows PatDNN: a work-item
computes P = `gpu_block_pixels` consecutive output columns of one output row for
G = `gpu_filters_per_item` consecutive stored filters (pconv-fkr stores the filters of a group
side by side, so a work-item's filters have similar runs; the blocks of G do not follow
`filter_groups` boundaries); a work-group is `gpu_workgroup_x` pixel blocks x
`gpu_workgroup_y` rows of one image and one filter block (both clamped to the output). For
each filter the kernel runs over the filter's kept kernels in FKW order: one `scf.for` per
(channel block, pattern) run, whose body has that pattern's taps as
constant offsets from the work-item's first input pixel, so no tap is looked up at run time.
Only `reorder`, `index`, `stride` and `weight` are read (`offset` is implied by `stride`).

Schedule fields (`#pconv.schedule`, defaults in `SCHEDULE_FIELDS`): `gpu_block_pixels` (P,
default 4), `gpu_filters_per_item` (G, default 4), `gpu_workgroup_x` / `gpu_workgroup_y` (16 x 4);
the channel blocks of `tile_channels` become a loop around the pattern runs. The pass has no
options of its own.

Local memory (`gpu_stage_input = 1`): the input rows and columns that a work-group's items
share, `(wy - 1) * sh + (kh - 1) * dh + 1` rows by `(wx * P - 1) * sw + (kw - 1) * dw + 1`
columns for each channel of a channel block, are loaded into a `__local` tile once (memref
memory space 3) and every tap reads the tile. The order becomes channel block outermost: for
each block, a barrier, a cooperative load (each work-item loads every (wx * wy)-th element,
zero past the input), a barrier, then the runs of all G filters of the work-item in that block,
their G x P accumulators carried across blocks. So a kernel has one barrier pair per channel
block, outside the per-pattern loops, and every work-item reaches them: the bounds checks move
onto the stores, and a filter past the last one recomputes the last filter and stores nothing.
The tile must fit in `GPU_LOCAL_MEMORY_LIMIT` (the op verifier checks; pconv-fkw-pack picks
channel blocks when staging is asked for without them). Staging pays where local memory is on
chip (Adreno: `CL_LOCAL`); where it is ordinary memory (PoCL on a CPU, Mali: `CL_GLOBAL`) it
only adds copies and barriers, and the opencl backend leaves it off.

Padding: when the conv pads, or when the last block of P columns reads past the input's right
edge, a small pad kernel in the same `gpu.module` first writes a zero-padded copy of the input
(wide enough for every block), launched before the conv; the conv kernel then needs no bounds
check on its loads. Otherwise the conv reads the input directly.

Kernels use only gpu (`global_id`, `return`), arith, memref (`load`/`store` on static
shapes) and scf (`for`, `if`, `yield`): what the OpenCL C target prints and what upstream
`convert-gpu-to-spirv` takes. Multiply-adds are `arith.mulf` + `arith.addf` (upstream has no
SPIR-V lowering for `math.fma`). Each kernel carries `gpu.known_block_size` (its work-group) and
the `gpu.kernel` attribute that upstream MLIR reads, next to xDSL's `kernel` property.

Kernel without staging (G = 1, K patterns, B channel blocks; stored filter i, output channel
o = reorder[i]):

    gpu.func @conv0(%x: memref<NxCxHpxWpxf32>, %reorder, %index, %stride, %weight,
                    [%bias: memref<Fxf32>,] [%residual: memref<NxFxOHxOWxf32>,]
                    %out: memref<NxFxOHxOWxf32>) kernel
      cb, oh = global_id x, y;  z = global_id z = n * filter_blocks + filter block
      if cb < pixel_blocks and oh < OH:
        ow0 = cb * P; row_r = oh * sh + r * dh; col_j,x = ow0 * sw + j * sw + x * dw  (hoisted)
        for each of the work-item's filters i:
          acc[j] = bias[o] (or 0)                                 j in 0..P
          for b in 0..B:                                          (no loop when B = 1)
            for p in 0..K (unrolled):
              lo, hi = stride[i, b*K + p], stride[i, b*K + p + 1]
              acc = lo < hi ? scf.for k in lo .. hi:             (see `runs` for the scf.if)
                c = index[k]; w_t = weight[k, t]
                acc[j] += x[n, c, row_{dr_t}, col_{j,dc_t}] * w_t  for every tap t and pixel j
          out[n, o, oh, ow0 + j] = act(acc[j] + residual[n, o, oh, ow0 + j])
                                                            (only the columns j with ow0 + j < OW)

Host side:

    %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b ...
  becomes
    %xm = bufferization.to_buffer %x ...  (and the FKW arrays, bias, residual)
    %out = memref.alloc() : memref<NxFxOHxOWxf32>
    [%xp = memref.alloc() : memref<NxCxHpxWpxf32>
     gpu.launch_func @conv_kernels::@conv0_pad blocks in (...) threads in (...) args(%xm, %xp)]
    gpu.launch_func @conv_kernels::@conv0 blocks in (...) threads in (...)
        args(%xp, %reorder, %index, %stride, %weight, %b, %out)
    [memref.dealloc %xp]
    %y = bufferization.to_tensor %out restrict writable

The module gets the `gpu.container_module` attribute that `gpu.launch_func` needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from xdsl.builder import Builder, ImplicitBuilder
from xdsl.context import Context
from xdsl.dialects import arith, bufferization, func, gpu, memref, scf
from xdsl.dialects.builtin import (
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from pconv_mlir.dialects.pconv import GPU_WORKGROUP_LIMIT, FkwConv2dOp
from pconv_mlir.errors import OpError
from pconv_mlir.lowering.convert_pconv_to_loops import ceil_div
from pconv_mlir.patterns import tap_offset

f32 = Float32Type()
index_type = IndexType()


@dataclass(frozen=True)
class GpuGeometry:
    """The shapes of one convolution and its GPU mapping (see the module docstring)."""

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
    pixels: int
    """Output columns per work-item (P), clamped to the output row."""
    filters: int
    """Stored filters per work-item (G), clamped to the filters."""
    workgroup: tuple[int, int]
    """Work-items of a work-group along pixel blocks and rows, clamped to the output."""

    @staticmethod
    def of(op: FkwConv2dOp) -> GpuGeometry:
        n, c, h, w = op.input.type.get_shape()
        _, f, oh, ow = op.result.type.get_shape()
        sh, sw = (int(v) for v in op.strides.get_values())
        ph, pw = (int(v) for v in op.padding.get_values())
        dh, dw = (int(v) for v in op.dilation.get_values())
        kh, kw = op.patterns.kernel_window
        schedule = op.schedule
        pixels = min(schedule["gpu_block_pixels"], ow)
        filters = min(schedule["gpu_filters_per_item"], f)
        blocks = ceil_div(ow, pixels)
        workgroup = (min(schedule["gpu_workgroup_x"], blocks), min(schedule["gpu_workgroup_y"], oh))
        return GpuGeometry(
            n, c, h, w, f, oh, ow, sh, sw, ph, pw, dh, dw, kh, kw, pixels, filters, workgroup
        )

    @property
    def pixel_blocks(self) -> int:
        """Blocks of P output columns per output row."""
        return ceil_div(self.ow, self.pixels)

    @property
    def filter_blocks(self) -> int:
        """Blocks of G stored filters (the last one may be short)."""
        return ceil_div(self.f, self.filters)

    @property
    def padded_width(self) -> int:
        """Columns of the padded input: the padding, and enough for the last pixel block."""
        needed = (self.pixel_blocks * self.pixels - 1) * self.sw + (self.kw - 1) * self.dw + 1
        return max(needed, self.w + 2 * self.pw)

    @property
    def padded_height(self) -> int:
        return self.h + 2 * self.ph

    @property
    def needs_pad(self) -> bool:
        """Whether the conv reads a zero-padded copy of its input (written by a pad kernel)."""
        return (self.padded_height, self.padded_width) != (self.h, self.w)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Work-groups of the conv kernel along pixel blocks, rows, images x filter blocks."""
        x, y = self.workgroup
        return (
            ceil_div(self.pixel_blocks, x),
            ceil_div(self.oh, y),
            self.n * self.filter_blocks,
        )

    @property
    def pad_workgroup(self) -> tuple[int, int]:
        """Work-items of a pad-kernel work-group along padded columns and rows: the conv's
        work-group, one item per column, within `GPU_WORKGROUP_LIMIT`."""
        x, y = self.workgroup
        rows = min(y, self.padded_height)
        return min(x * self.pixels, self.padded_width, GPU_WORKGROUP_LIMIT // rows), rows

    @property
    def pad_grid(self) -> tuple[int, int, int]:
        """Work-groups of the pad kernel along padded columns, rows, images x channels."""
        x, y = self.pad_workgroup
        return (
            ceil_div(self.padded_width, x),
            ceil_div(self.padded_height, y),
            self.n * self.c,
        )


# Small builders: each creates ops at the implicit builder's insertion point.


def _const(value: int) -> SSAValue:
    return arith.ConstantOp(IntegerAttr(value, index_type)).result


class _Constants:
    """The constants of one kernel, each made once at the top of its entry block (so it
    dominates every use), in the order they are first asked for."""

    def __init__(self, entry: Block) -> None:
        self.entry = entry
        self.made: dict[tuple[str, float], SSAValue] = {}
        self.last: Operation | None = None

    def __call__(self, value: int) -> SSAValue:
        """An index constant."""
        return self.get(("index", value), IntegerAttr(value, index_type))

    def f32(self, value: float) -> SSAValue:
        return self.get(("f32", value), FloatAttr(value, f32))

    def get(self, key: tuple[str, float], attr: IntegerAttr | FloatAttr) -> SSAValue:
        if key not in self.made:
            if self.last is not None:
                at = InsertPoint.after(self.last)
            else:
                at = InsertPoint.at_start(self.entry)
            with ImplicitBuilder(Builder(at)):
                op = arith.ConstantOp(attr)
            self.last = op
            self.made[key] = op.result
        return self.made[key]

    def add(self, a: SSAValue, offset: int) -> SSAValue:
        return a if offset == 0 else arith.AddiOp(a, self(offset)).result

    def mul(self, a: SSAValue, factor: int) -> SSAValue:
        return a if factor == 1 else arith.MuliOp(a, self(factor)).result

    def below(self, a: SSAValue, bound: int) -> SSAValue:
        """`a < bound` (unsigned) as an i1."""
        return arith.CmpiOp(a, self(bound), "ult").result


def _all(conditions: Sequence[SSAValue]) -> SSAValue:
    result = conditions[0]
    for c in conditions[1:]:
        result = arith.AndIOp(result, c).result
    return result


@contextmanager
def _guard(conditions: Sequence[SSAValue]) -> Iterator[None]:
    """The ops built inside the `with` go into an scf.if on all of `conditions` (their `and`),
    or in place when there are none."""
    if not conditions:
        yield
        return
    body = Block()
    with ImplicitBuilder(body):
        yield
        scf.YieldOp()
    scf.IfOp(_all(conditions), [], Region(body))


def _load_index(ref: SSAValue, indices: Sequence[SSAValue]) -> SSAValue:
    """An i32 element of `ref` as an index."""
    return arith.IndexCastOp(memref.LoadOp.get(ref, indices).res, index_type).result


def _global_id(dim: gpu.DimensionEnum) -> SSAValue:
    return gpu.GlobalIdOp(gpu.DimensionAttr(dim)).result


def _memref(value: SSAValue) -> MemRefType:
    assert isinstance(value.type, TensorType)
    return MemRefType(value.type.element_type, value.type.get_shape())


def _to_buffer(value: SSAValue) -> SSAValue:
    """The buffer of tensor `value`, which the kernels only read (`read_only`: bufferization
    need not copy it)."""
    op = bufferization.ToBufferOp(
        operands=[value], result_types=[_memref(value)], properties={"read_only": UnitAttr()}
    )
    return op.memref


def _kernel(
    name: str, args: Sequence[Attribute], workgroup: tuple[int, int]
) -> tuple[gpu.FuncOp, _Constants]:
    """An empty `gpu.func` kernel of `args` for a work-group of `workgroup` (x, y) items.
    Upstream MLIR marks kernels with the `gpu.kernel` attribute, xDSL with a property: both."""
    kernel = gpu.FuncOp(name, (args, []), kernel=True, known_block_size=[*workgroup, 1])
    kernel.attributes["gpu.kernel"] = UnitAttr()
    return kernel, _Constants(kernel.body.block)


class GpuConvEmitter:
    """Builds the kernels and the launches of one `pconv.fkw_conv2d`.

    `kernels()` returns the detached `gpu.func`s (the pad kernel, when needed, then the conv);
    `launch()` builds the host side at the insertion point of the enclosing `ImplicitBuilder`
    and returns the result tensor.
    """

    # The conv kernel's arguments and constants; set by conv_kernel().
    x: SSAValue
    reorder: SSAValue
    index: SSAValue
    stride: SSAValue
    weight: SSAValue
    bias: SSAValue | None
    residual: SSAValue | None
    out: SSAValue
    k: _Constants

    def __init__(self, op: FkwConv2dOp, name: str, module: str) -> None:
        self.op = op
        self.name = name
        self.module = module
        self.geo = GpuGeometry.of(op)
        self.patterns = [list(p) for p in op.patterns.patterns]
        self.blocks = op.channel_blocks()
        self.relu = op.relu is not None
        self.relu6 = op.relu6 is not None
        self.staged = op.schedule["gpu_stage_input"] == 1
        """Whether each kernel's input tile is staged in local memory (`gpu_stage_input`)."""
        self.store_guards: list[SSAValue] = []
        self.channel_base: SSAValue | None = None
        """The first channel of the staged channel block being emitted (None: the only one)."""

    @property
    def pad_name(self) -> str:
        return f"{self.name}_pad"

    def padded_type(self) -> MemRefType:
        geo = self.geo
        return MemRefType(f32, [geo.n, geo.c, geo.padded_height, geo.padded_width])

    # ---------------------------------------------------------------------------------------
    # Host side
    # ---------------------------------------------------------------------------------------

    def launch(self) -> SSAValue:
        """Buffers, the launches and the result tensor, at the builder's insertion point."""
        op, geo = self.op, self.geo
        x = _to_buffer(op.input)
        fkw = [_to_buffer(v) for v in (op.reorder, op.index, op.stride, op.weight)]
        extra = [_to_buffer(v) for v in (op.bias, op.residual) if v is not None]
        out = memref.AllocOp.get(f32, shape=[geo.n, geo.f, geo.oh, geo.ow]).memref
        source = x
        if geo.needs_pad:
            source = memref.AllocOp.get(f32, shape=self.padded_type().get_shape()).memref
            self.launch_func(self.pad_name, geo.pad_grid, geo.pad_workgroup, [x, source])
        self.launch_func(self.name, geo.grid, geo.workgroup, [source, *fkw, *extra, out])
        if geo.needs_pad:
            memref.DeallocOp.get(source)
        return bufferization.ToTensorOp(out, restrict=True, writable=True).tensor

    def launch_func(
        self,
        kernel: str,
        grid: tuple[int, int, int],
        workgroup: tuple[int, int],
        args: Sequence[SSAValue],
    ) -> None:
        gpu.LaunchFuncOp(
            SymbolRefAttr(self.module, [kernel]),
            [_const(g) for g in grid],
            [_const(workgroup[0]), _const(workgroup[1]), _const(1)],
            kernelOperands=args,
        )

    # ---------------------------------------------------------------------------------------
    # Kernels
    # ---------------------------------------------------------------------------------------

    def kernels(self) -> list[gpu.FuncOp]:
        """The pad kernel (when the conv needs a padded input), then the conv kernel."""
        result = [self.pad_kernel()] if self.geo.needs_pad else []
        return [*result, self.conv_kernel()]

    def pad_kernel(self) -> gpu.FuncOp:
        """One work-item per padded element: the input pixel, or 0 in the padding."""
        geo = self.geo
        source = _memref(self.op.input)
        kernel, k = _kernel(self.pad_name, [source, self.padded_type()], geo.pad_workgroup)
        x, xp = kernel.body.block.args
        width, height = geo.padded_width, geo.padded_height
        with ImplicitBuilder(kernel.body.block):
            col = _global_id(gpu.DimensionEnum.X)
            row = _global_id(gpu.DimensionEnum.Y)
            z = _global_id(gpu.DimensionEnum.Z)
            wx, wy = geo.pad_workgroup
            guards = []
            if width % wx:
                guards.append(k.below(col, width))
            if height % wy:
                guards.append(k.below(row, height))
            with _guard(guards):
                n = arith.DivUIOp(z, k(geo.c)).result if geo.n > 1 else k(0)
                c = arith.RemUIOp(z, k(geo.c)).result if geo.n > 1 else z
                inside = []
                if geo.ph:
                    inside += [arith.CmpiOp(row, k(geo.ph), "uge").result]
                inside += [k.below(row, geo.ph + geo.h)]
                if geo.pw:
                    inside += [arith.CmpiOp(col, k(geo.pw), "uge").result]
                inside += [k.below(col, geo.pw + geo.w)]
                then, other = Block(), Block()
                with ImplicitBuilder(then):
                    iy = arith.SubiOp(row, k(geo.ph)).result if geo.ph else row
                    ix = arith.SubiOp(col, k(geo.pw)).result if geo.pw else col
                    scf.YieldOp(memref.LoadOp.get(x, [n, c, iy, ix]).res)
                with ImplicitBuilder(other):
                    scf.YieldOp(k.f32(0.0))
                value = scf.IfOp(_all(inside), [f32], Region(then), Region(other)).results[0]
                memref.StoreOp.get(value, xp, [n, c, row, col])
            gpu.ReturnOp([])
        return kernel

    def conv_kernel(self) -> gpu.FuncOp:
        """The convolution: see the module docstring."""
        op, geo = self.op, self.geo
        source = self.padded_type() if geo.needs_pad else _memref(op.input)
        fkw = [_memref(v) for v in (op.reorder, op.index, op.stride, op.weight)]
        extra = [_memref(v) for v in (op.bias, op.residual) if v is not None]
        out_type = MemRefType(f32, [geo.n, geo.f, geo.oh, geo.ow])
        kernel, self.k = _kernel(self.name, [source, *fkw, *extra, out_type], geo.workgroup)
        args = list(kernel.body.block.args)
        self.x, self.reorder, self.index, self.stride, self.weight = args[:5]
        self.bias = args[5] if op.bias is not None else None
        self.residual = args[-2] if op.residual is not None else None
        self.out = args[-1]
        with ImplicitBuilder(kernel.body.block):
            self.conv_body()
            gpu.ReturnOp([])
        return kernel

    def conv_body(self) -> None:
        """Which work-item this is (pixel block, row, image and filter block), the bounds
        check when the work-groups overhang the output, then each of its filters."""
        geo = self.geo
        block = _global_id(gpu.DimensionEnum.X)
        oh = _global_id(gpu.DimensionEnum.Y)
        z = _global_id(gpu.DimensionEnum.Z)
        wx, wy = geo.workgroup
        guards = []
        if geo.pixel_blocks % wx:
            guards.append(self.k.below(block, geo.pixel_blocks))
        if geo.oh % wy:
            guards.append(self.k.below(oh, geo.oh))
        # With the input staged in local memory every work-item of a work-group takes part in
        # each block's load and barriers: the bounds check guards the stores only.
        self.store_guards = guards if self.staged else []
        with _guard([] if self.staged else guards):
            blocks = geo.filter_blocks
            n = arith.DivUIOp(z, self.k(blocks)).result if geo.n > 1 else self.k(0)
            part = arith.RemUIOp(z, self.k(blocks)).result if geo.n > 1 else z
            ow0 = self.k.mul(block, geo.pixels)
            first = self.k.mul(part, geo.filters)
            if self.staged:
                self.tile = self.local_tile(n)
                local = self.hoisted(self.tile.ly, self.k.mul(self.tile.lx, geo.pixels))
                outs = [self.k.add(ow0, j) for j in range(geo.pixels)]
                item = _Item(n, oh, ow0, _Offsets(local.rows, local.cols, outs))
                self.staged_filters(item, first)
                return
            item = _Item(n, oh, ow0, self.hoisted(oh, ow0))
            for g in range(geo.filters):
                i = self.k.add(first, g)
                with _guard([self.k.below(i, geo.f)] if self.short(g) else []):
                    self.one_filter(item, i)

    def short(self, g: int) -> bool:
        """Whether the work-item's filter `g` may lie past the last filter (the last filter
        block is short when G does not divide F)."""
        geo = self.geo
        return g >= geo.f - (geo.filter_blocks - 1) * geo.filters

    def staged_filters(self, item: _Item, first: SSAValue) -> None:
        """All G filters of the work-item over the input staged in local memory, one channel
        block at a time: stage the block, then every filter's runs in that block; the
        accumulators of all G filters are carried across blocks. A filter past the last one
        (short filter block) computes the last filter again and stores nothing, so that every
        work-item of the work-group reaches the same barriers."""
        geo = self.geo
        filters, channels, accs = [], [], []
        stored = [self.k.add(first, g) for g in range(geo.filters)]
        for g, i in enumerate(stored):
            if self.short(g):
                i = arith.MinUIOp(i, self.k(geo.f - 1)).result
            channel = _load_index(self.reorder, [i])
            if self.bias is not None:
                start = memref.LoadOp.get(self.bias, [channel]).res
            else:
                start = self.k.f32(0.0)
            filters.append(i)
            channels.append(channel)
            accs += [start] * geo.pixels

        def blocked(
            base: SSAValue | None, first_run: SSAValue | None, accs: list[SSAValue]
        ) -> list[SSAValue]:
            self.stage(base)
            self.channel_base = base
            out = []
            for g, i in enumerate(filters):
                mine = accs[g * geo.pixels : (g + 1) * geo.pixels]
                out += self.runs(item, i, first_run, mine)
            return out

        if self.blocks == 1:
            accs = blocked(None, None, accs)
        else:
            body = Block(arg_types=[index_type, *(a.type for a in accs)])
            with ImplicitBuilder(body):
                b = body.args[0]
                base = self.k.mul(b, self.block_channels)
                first_run = self.k.mul(b, len(self.patterns))
                scf.YieldOp(*blocked(base, first_run, list(body.args[1:])))
            loop = scf.ForOp(self.k(0), self.k(self.blocks), self.k(1), accs, body)
            accs = list(loop.results)
        for g in range(geo.filters):
            mine = accs[g * geo.pixels : (g + 1) * geo.pixels]
            with _guard([self.k.below(stored[g], geo.f)] if self.short(g) else []):
                self.store(item, channels[g], mine)

    @property
    def block_channels(self) -> int:
        """Input channels of one channel block (`tile_channels`, or all of them)."""
        tile = self.op.schedule["tile_channels"]
        return tile if self.blocks > 1 else self.geo.c

    @property
    def tile_shape(self) -> tuple[int, int, int]:
        """Channels, rows and columns of the input a work-group reads in one channel block
        (its staged tile; the op's verifier has checked that it fits in local memory)."""
        return (self.block_channels, *self.op.gpu_stage_tile())

    def local_tile(self, n: SSAValue) -> _Tile:
        """The work-group's tile in local memory (memory space 3) and where it starts in the
        input: `gpu_workgroup_y` output rows and `gpu_workgroup_x` pixel blocks' worth of
        input rows and columns, for every channel of one channel block."""
        geo = self.geo
        wx, wy = geo.workgroup
        local = MemRefType(f32, list(self.tile_shape), memory_space=IntegerAttr(3, i64))
        buffer = memref.AllocOp([], [], local).memref
        bx = gpu.BlockIdOp(gpu.DimensionAttr(gpu.DimensionEnum.X)).result
        by = gpu.BlockIdOp(gpu.DimensionAttr(gpu.DimensionEnum.Y)).result
        lx = gpu.ThreadIdOp(gpu.DimensionAttr(gpu.DimensionEnum.X)).result
        ly = gpu.ThreadIdOp(gpu.DimensionAttr(gpu.DimensionEnum.Y)).result
        first = arith.AddiOp(self.k.mul(ly, wx), lx).result
        row0 = self.k.mul(by, wy * geo.sh)
        col0 = self.k.mul(bx, wx * geo.pixels * geo.sw)
        return _Tile(buffer, n, row0, col0, lx, ly, first)

    def stage(self, base: SSAValue | None) -> None:
        """The channel block starting at channel `base` (None: the only block) of the
        work-group's input tile into local memory: after a barrier (the last block's readers
        are done), each work-item loads every (wx * wy)-th element (zero outside the input),
        then a barrier."""
        geo, tile = self.geo, self.tile
        wx, wy = geo.workgroup
        channels, rows, cols = self.tile_shape
        source = self.x.type
        assert isinstance(source, MemRefType)
        height, width = source.get_shape()[2:]
        if base is not None:
            gpu.BarrierOp()
        body = Block(arg_types=[index_type])
        with ImplicitBuilder(body):
            e = body.args[0]
            ch = arith.DivUIOp(e, self.k(rows * cols)).result
            rest = arith.RemUIOp(e, self.k(rows * cols)).result
            r = arith.DivUIOp(rest, self.k(cols)).result
            c = arith.RemUIOp(rest, self.k(cols)).result
            row = arith.AddiOp(tile.row0, r).result
            col = arith.AddiOp(tile.col0, c).result
            channel = ch if base is None else arith.AddiOp(base, ch).result
            inside = [self.k.below(row, height), self.k.below(col, width)]
            if geo.c % channels:
                inside.append(self.k.below(channel, geo.c))
            then, other = Block(), Block()
            with ImplicitBuilder(then):
                scf.YieldOp(memref.LoadOp.get(self.x, [tile.n, channel, row, col]).res)
            with ImplicitBuilder(other):
                scf.YieldOp(self.k.f32(0.0))
            value = scf.IfOp(_all(inside), [f32], Region(then), Region(other)).results[0]
            memref.StoreOp.get(value, tile.buffer, [ch, r, c])
            scf.YieldOp()
        scf.ForOp(tile.first, self.k(channels * rows * cols), self.k(wx * wy), [], body)
        gpu.BarrierOp()

    def hoisted(self, oh: SSAValue, ow0: SSAValue) -> _Offsets:
        """The input rows and columns the work-item's taps read, computed once: row r of the
        window is `oh * sh + r * dh`, and pixel j's column x of the window is
        `ow0 * sw + j * sw + x * dw`; each is the work-item's first one plus a constant."""
        geo = self.geo
        used = {tap_offset(t, (geo.kh, geo.kw)) for p in self.patterns for t in p}
        y0 = self.k.mul(oh, geo.sh)
        x0 = self.k.mul(ow0, geo.sw)
        rows = {r: self.k.add(y0, r * geo.dh) for r in sorted({r for r, _ in used})}
        offsets = sorted({j * geo.sw + c * geo.dw for j in range(geo.pixels) for _, c in used})
        cols = {x: self.k.add(x0, x) for x in offsets}
        # With stride 1 an output column is also an input column: one value for both.
        outs = [
            cols[j] if geo.sw == 1 and j in cols else self.k.add(ow0, j) for j in range(geo.pixels)
        ]
        return _Offsets(rows, cols, outs)

    def one_filter(self, item: _Item, i: SSAValue) -> None:
        """Stored filter `i` over the work-item's pixels: its kernel runs, then the epilogue."""
        channel = _load_index(self.reorder, [i])
        if self.bias is not None:
            start = memref.LoadOp.get(self.bias, [channel]).res
        else:
            start = self.k.f32(0.0)
        accs = [start] * self.geo.pixels
        if self.blocks == 1:
            accs = self.runs(item, i, None, accs)
        else:
            body = Block(arg_types=[index_type, *(a.type for a in accs)])
            with ImplicitBuilder(body):
                first_run = self.k.mul(body.args[0], len(self.patterns))
                scf.YieldOp(*self.runs(item, i, first_run, list(body.args[1:])))
            loop = scf.ForOp(self.k(0), self.k(self.blocks), self.k(1), accs, body)
            accs = list(loop.results)
        self.store(item, channel, accs)

    def runs(
        self, item: _Item, i: SSAValue, first_run: SSAValue | None, accs: list[SSAValue]
    ) -> list[SSAValue]:
        """One scf.for per pattern over filter `i`'s run of that pattern in one channel block
        (whose first run in `stride` is `first_run`, b * K; None for the only block).

        A run may be empty, and MLIR 22's SCF-to-SPIR-V conversion gives a zero-trip scf.for
        with iter_args undefined results (llvm-project issue 211981, fixed upstream after 22):
        so each run loop sits in an scf.if on `lo < hi` that yields the accumulators as they
        were when the run is empty."""
        for p in range(len(self.patterns)):
            lo, hi = (
                _load_index(
                    self.stride, [i, self.k(r) if first_run is None else self.k.add(first_run, r)]
                )
                for r in (p, p + 1)
            )
            body = Block(arg_types=[index_type, *(a.type for a in accs)])
            with ImplicitBuilder(body):
                scf.YieldOp(*self.kernel_body(item, p, body.args[0], list(body.args[1:])))
            run, empty = Block(), Block()
            with ImplicitBuilder(run):
                scf.YieldOp(*scf.ForOp(lo, hi, self.k(1), accs, body).results)
            with ImplicitBuilder(empty):
                scf.YieldOp(*accs)
            nonempty = arith.CmpiOp(lo, hi, "slt").result
            types = [a.type for a in accs]
            accs = list(scf.IfOp(nonempty, types, Region(run), Region(empty)).results)
        return accs

    def kernel_body(
        self, item: _Item, pattern: int, k: SSAValue, accs: list[SSAValue]
    ) -> list[SSAValue]:
        """Kernel `k` of `pattern`: its channel, its weights, and for every tap and pixel a
        multiply-add of the input at constant row and column offsets from the work-item's first
        input pixel. Pixels that share an input element (a tap's right neighbour is the next
        pixel's tap, at stride 1) load it once."""
        geo = self.geo
        channel = _load_index(self.index, [k])
        local = channel  # the kernel's channel in the staged tile
        if self.staged and self.channel_base is not None:
            local = arith.SubiOp(channel, self.channel_base).result
        taps = self.patterns[pattern]
        weights = [memref.LoadOp.get(self.weight, [k, self.k(t)]).res for t in range(len(taps))]
        loaded: dict[tuple[int, int], SSAValue] = {}
        out = list(accs)
        for j in range(geo.pixels):
            for t, tap in enumerate(taps):
                r, c = tap_offset(tap, (geo.kh, geo.kw))
                at = (r, j * geo.sw + c * geo.dw)
                if at not in loaded:
                    row, col = item.offsets.rows[at[0]], item.offsets.cols[at[1]]
                    if self.staged:
                        at_local = [local, row, col]
                        loaded[at] = memref.LoadOp.get(self.tile.buffer, at_local).res
                    else:
                        loaded[at] = memref.LoadOp.get(self.x, [item.n, channel, row, col]).res
                product = arith.MulfOp(loaded[at], weights[t]).result
                out[j] = arith.AddfOp(out[j], product).result
        return out

    def store(self, item: _Item, channel: SSAValue, accs: list[SSAValue]) -> None:
        """act(acc + residual) to the output columns of the work-item that are in the row."""
        geo = self.geo
        whole = geo.ow % geo.pixels or geo.pixels
        for j, acc in enumerate(accs):
            col = item.offsets.outs[j]
            at = [item.n, channel, item.oh, col]
            column = [self.k.below(col, geo.ow)] if j >= whole else []
            with _guard([*self.store_guards, *column]):
                value = acc
                if self.residual is not None:
                    shortcut = memref.LoadOp.get(self.residual, at).res
                    value = arith.AddfOp(value, shortcut).result
                memref.StoreOp.get(self.activation(value), self.out, at)

    def activation(self, value: SSAValue) -> SSAValue:
        """max(., 0) for ReLU, then min(., 6) for ReLU6."""
        if not (self.relu or self.relu6):
            return value
        value = arith.MaximumfOp(value, self.k.f32(0.0)).result
        if self.relu6:
            value = arith.MinimumfOp(value, self.k.f32(6.0)).result
        return value


@dataclass(frozen=True)
class _Offsets:
    """The work-item's hoisted input rows (by window row), input columns (by constant offset
    from its first one) and output columns (by pixel)."""

    rows: dict[int, SSAValue]
    cols: dict[int, SSAValue]
    outs: list[SSAValue]


@dataclass(frozen=True)
class _Tile:
    """A work-group's input tile in local memory: the buffer, the image, the input row and
    column it starts at, this work-item's place in the work-group and its first element of the
    cooperative load."""

    buffer: SSAValue
    n: SSAValue
    row0: SSAValue
    col0: SSAValue
    lx: SSAValue
    ly: SSAValue
    first: SSAValue


@dataclass(frozen=True)
class _Item:
    """One work-item: its image `n`, output row `oh`, first output column `ow0` and offsets."""

    n: SSAValue
    oh: SSAValue
    ow0: SSAValue
    offsets: _Offsets


@dataclass
class _LowerFkwConv(RewritePattern):
    """Each conv: its kernels into its function's `gpu.module`, its launches in its place."""

    kernel_modules: dict[str, gpu.ModuleOp] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        host = _enclosing_function(op)
        if host is None:
            raise OpError(op, "convert-pconv-to-gpu: the conv is not inside a func.func")
        name = host.sym_name.data
        kernels = self.kernel_module(name, host, rewriter)
        count = self.counts.get(name, 0)
        self.counts[name] = count + 1
        emitter = GpuConvEmitter(op, f"conv{count}", kernels.sym_name.data)
        for kernel in emitter.kernels():
            rewriter.insert(kernel, InsertPoint.at_end(kernels.body.block))
        with ImplicitBuilder(rewriter):
            result = emitter.launch()
        rewriter.replace(op, [], [result])

    def kernel_module(
        self, name: str, host: func.FuncOp, rewriter: PatternRewriter
    ) -> gpu.ModuleOp:
        """The `gpu.module @<name>_kernels` of function `name`, made before `host` once."""
        if name not in self.kernel_modules:
            module = gpu.ModuleOp(StringAttr(f"{name}_kernels"), Region(Block()))
            rewriter.insert(module, InsertPoint.before(host))
            self.kernel_modules[name] = module
        return self.kernel_modules[name]


def _enclosing_function(op: Operation) -> func.FuncOp | None:
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        parent = parent.parent_op()
    return parent


@dataclass(frozen=True)
class ConvertPconvToGpuPass(ModulePass):
    """Lowers every `pconv.fkw_conv2d` to a GPU kernel in a `gpu.module` and a `gpu.launch_func`
    in its function, blocked as the `gpu_*` parameters of its `#pconv.schedule` say (see the
    module docstring for the kernel)."""

    name = "convert-pconv-to-gpu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lowering = _LowerFkwConv()
        PatternRewriteWalker(lowering, apply_recursively=False).rewrite_module(op)
        for kernels in lowering.kernel_modules.values():
            container = kernels.parent_op()
            assert container is not None
            container.attributes["gpu.container_module"] = UnitAttr()

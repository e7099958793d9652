"""pconv-lower-to-gpu: a whole network to GPU kernels and a host function that only launches them.

The GPU pipeline as one pass, from FKW-level IR on tensors (pconv ops and torch-mlir's linalg
for the other layers) to a module whose host functions hold nothing but buffers, views of
them and `gpu.launch_func`s, and whose kernels sit in one `gpu.module @<function>_kernels` per
host function: what `-t opencl` prints as one OpenCL C program, `-t opencl-launch` describes,
and `pconv_mlir.lowering.gpu.spirv_binary` makes one SPIR-V module of. Every layer runs on the
device; nothing returns to the host between layers.

1. `convert-pconv-to-gpu` (when pconv ops are left): the pattern convs become our kernels.
2. `pconv-copies-to-linalg`: padding and concatenation as linalg fills and copies.
3. `mlir-opt-22`: one-shot bufferization (`pconv_mlir.lowering.gpu.BUFFERIZE_PIPELINE`).
4. `pconv-copies-to-linalg` again: the copies bufferization still made become linalg copies.
5. `mlir-opt-22`: every other layer (dense, 1x1 and depthwise convs, pooling, linear layers,
   element-wise ops, fills and copies) becomes `scf.parallel` loops
   (`convert-linalg-to-parallel-loops`), which `pconv-flatten-parallel` makes one-dim loops
   over all their outputs; then upstream's `scf-parallel-loop-tiling` (option `tile`: the
   work-group), `gpu-map-parallel-loops`, `convert-parallel-loops-to-gpu` and
   `gpu-kernel-outlining` make them kernels (`pconv_mlir.lowering.gpu.kernel_pipeline`): a
   work-item per output value, consecutive work-items on consecutive outputs.
6. In xDSL: upstream's one-kernel `gpu.module`s are merged into the function's
   `gpu.module @<function>_kernels` (each kernel renamed after its module), every kernel
   launched with one constant work-group gets it as `gpu.known_block_size`, and the host
   functions are checked: an op that would run on the host between kernels is a located
   `LoweringError` naming it.

Every tensor constant that is not a splat is first made an external global
(`pconv-externalize-constants{threshold=0}`): the weights travel to mlir-opt as declarations
without data and come back as they were (with their `pconv.external_data`), and every weight a
kernel reads is a device buffer that the runtime fills from the weights, by symbol.

Option: `tile` (default 64: work-groups of 64 consecutive outputs).

    %y = pconv.fkw_conv2d %x, ... ; %p = linalg.pooling_nchw_max ...
  becomes
    gpu.module @forward_kernels {
      gpu.func @conv0(...) kernel { ... }  gpu.func @forward_kernel(...) kernel { ... } }
    func.func @forward(%x: memref<...>) -> memref<...> {
      %a = memref.alloc() ...  gpu.launch_func @forward_kernels::@conv0 ... args(%x, ..., %a)
      gpu.launch_func @forward_kernels::@forward_kernel ... args(..., %a, %b) ...  return %b }
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, func, gpu, memref
from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    UnitAttr,
    i32,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint, Rewriter

from pconv_mlir.elements import numpy_dtype
from pconv_mlir.errors import LoweringError, OptionError, PconvError
from pconv_mlir.ir import parse_module
from pconv_mlir.lowering.convert_pconv_to_gpu import ConvertPconvToGpuPass
from pconv_mlir.lowering.externalize_constants import ExternalizeConstantsPass, is_external
from pconv_mlir.lowering.gpu import (
    BUFFERIZE_PIPELINE,
    DEFAULT_TILE,
    PARALLEL_LOOPS_PIPELINE,
    kernel_pipeline,
)
from pconv_mlir.lowering.llvm import print_for_mlir_opt, run_mlir_opt
from pconv_mlir.lowering.pconv_copies_to_linalg import PconvCopiesToLinalgPass
from pconv_mlir.lowering.pconv_flatten_parallel import PconvFlattenParallelPass

__all__ = ["HOST_OPS", "PconvLowerToGpuPass", "check_host_functions", "merge_kernel_modules"]

HOST_OPS: tuple[type[Operation], ...] = (
    gpu.LaunchFuncOp,
    memref.AllocOp,
    memref.DeallocOp,
    memref.GetGlobalOp,
    memref.SubviewOp,
    memref.CollapseShapeOp,
    memref.ExpandShapeOp,
    memref.CastOp,
    memref.ReinterpretCastOp,
    arith.ConstantOp,
    func.ReturnOp,
)
"""What a host function may hold after the pass: launches, buffers, views and constants."""


_KNOWN_SIZES = re.compile(r", known_(?:block|grid)_size = array<i32:[^>]*>(?=[^\n]*\}> \(\{)")
"""What MLIR 22 prints of an outlined kernel's work-group and grid when they are constants: as
properties of `gpu.func`, which xDSL 0.74 does not define (it has `gpu.known_block_size` as an
attribute). They are dropped from the text; `merge_kernel_modules` sets the attribute again
from the launches."""


def _upstream(module: ModuleOp, ctx: Context, pipeline: str) -> ModuleOp:
    """`module` through `mlir-opt-22 --pass-pipeline=pipeline`, read back in xDSL; the
    externalized globals come back as they were."""
    externals = {
        op.sym_name.data: op.clone()
        for op in module.body.block.ops
        if isinstance(op, memref.GlobalOp) and is_external(op)
    }
    text = run_mlir_opt(print_for_mlir_opt(module, ctx), pipeline, generic_output=True)
    text = _KNOWN_SIZES.sub("", text)
    try:
        result = parse_module(text, ctx, name="<mlir-opt-22>")
    except PconvError as e:
        raise LoweringError(f"xDSL cannot read mlir-opt-22's output back: {e}") from None
    for op in list(result.body.block.ops):
        if isinstance(op, memref.GlobalOp) and op.sym_name.data in externals:
            Rewriter.replace_op(op, externals.pop(op.sym_name.data))
    return result


def _constant_index(value: SSAValue) -> int | None:
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    return None


def merge_kernel_modules(module: ModuleOp) -> None:
    """Move every kernel into the `gpu.module @<function>_kernels` of the host function that
    launches it (made when missing), renamed after its old module when it came from a module
    of its own; give a kernel launched with one constant work-group `gpu.known_block_size`."""
    modules = {op.sym_name.data: op for op in module.ops if isinstance(op, gpu.ModuleOp)}
    launches: dict[tuple[str, str], list[tuple[func.FuncOp, gpu.LaunchFuncOp]]] = {}
    for function in module.ops:
        if isinstance(function, func.FuncOp):
            for launch in function.walk():
                if isinstance(launch, gpu.LaunchFuncOp):
                    path = (
                        launch.kernel.root_reference.data,
                        launch.kernel.nested_references.data[-1].data,
                    )
                    launches.setdefault(path, []).append((function, launch))
    targets: dict[str, gpu.ModuleOp] = {}
    for (module_name, kernel_name), users in launches.items():
        functions = {f.sym_name.data for f, _ in users}
        if len(functions) != 1:
            continue  # shared by several functions: left where it is
        target_name = f"{functions.pop()}_kernels"
        source = modules.get(module_name)
        if source is None:
            continue
        kernel = next(
            (
                op
                for op in source.body.block.ops
                if isinstance(op, gpu.FuncOp) and op.sym_name.data == kernel_name
            ),
            None,
        )
        if kernel is None:
            continue
        blocks = {
            tuple(
                _constant_index(v)
                for v in (launch.blockSizeX, launch.blockSizeY, launch.blockSizeZ)
            )
            for _, launch in users
        }
        if kernel.known_block_size is None and len(blocks) == 1:
            (sizes,) = blocks
            if all(s is not None for s in sizes):
                kernel.attributes["gpu.known_block_size"] = DenseArrayBase.from_list(
                    i32, [int(s) for s in sizes if s is not None]
                )
        if module_name == target_name:
            continue
        target = targets.get(target_name) or modules.get(target_name)
        if target is None:
            target = gpu.ModuleOp(StringAttr(target_name), Region(Block()))  # type: ignore[arg-type]
            Rewriter.insert_op(target, InsertPoint.before(source))
            modules[target_name] = target
        targets[target_name] = target
        new_name = module_name if len(list(source.body.block.ops)) == 1 else kernel_name
        kernel.detach()
        kernel.sym_name = StringAttr(new_name)
        target.body.block.add_op(kernel)
        for _, launch in users:
            launch.kernel = SymbolRefAttr(target_name, [new_name])
        if not any(isinstance(op, gpu.FuncOp) for op in source.body.block.ops):
            Rewriter.erase_op(source)
            del modules[module_name]
    if any(isinstance(op, gpu.ModuleOp) for op in module.ops):
        module.attributes["gpu.container_module"] = UnitAttr()


class _FoldTruncfOfConstant(RewritePattern):
    """`arith.truncf` of a float constant as the narrower constant, rounded to nearest even
    (what `truncf` without a rounding mode does). Upstream folds only exact truncations, and an
    f64 constant (torch's scalars, such as LeakyReLU's slope) cannot be in an OpenCL C 1.2 or
    Kernel-capability SPIR-V kernel."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.TruncFOp, rewriter: PatternRewriter) -> None:
        source = op.input.owner
        if not isinstance(source, arith.ConstantOp) or not isinstance(source.value, FloatAttr):
            return
        value = float(np.array(source.value.value.data).astype(numpy_dtype(op.result.type)))
        rewriter.replace(op, arith.ConstantOp(FloatAttr(value, op.result.type)))
        if not source.result.uses:
            rewriter.erase(source)


def check_host_functions(module: ModuleOp) -> None:
    """Raise a located `LoweringError` for the first op of a host function that is not a
    launch, a buffer, a view of one or a constant (see `HOST_OPS`)."""
    for function in module.ops:
        if not isinstance(function, func.FuncOp) or not function.body.blocks:
            continue
        for op in function.walk():
            if op is function or isinstance(op, HOST_OPS):
                continue
            raise LoweringError(
                f"'{op.name}' would run on the host between kernels: no GPU lowering takes it",
                op=op,
            )


@dataclass(frozen=True)
class PconvLowerToGpuPass(ModulePass):
    """Lowers pconv ops and upstream linalg to GPU kernels and host launches (xDSL, then
    mlir-opt-22); see the module docstring for the steps and the option."""

    name = "pconv-lower-to-gpu"

    tile: tuple[int, ...] = DEFAULT_TILE

    def __post_init__(self) -> None:
        if not 1 <= len(self.tile) <= 3 or any(int(t) < 1 for t in self.tile):
            raise OptionError(f"tile = {self.tile}: give 1 to 3 sizes of at least 1")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if any(o.name.startswith("pconv.") for o in op.walk()):
            ConvertPconvToGpuPass().apply(ctx, op)
        ExternalizeConstantsPass(threshold=0).apply(ctx, op)
        PconvCopiesToLinalgPass().apply(ctx, op)
        bufferized = _upstream(op, ctx, BUFFERIZE_PIPELINE)
        PconvCopiesToLinalgPass().apply(ctx, bufferized)
        loops = _upstream(bufferized, ctx, PARALLEL_LOOPS_PIPELINE)
        PconvFlattenParallelPass().apply(ctx, loops)
        lowered = _upstream(loops, ctx, kernel_pipeline(self.tile))
        merge_kernel_modules(lowered)
        PatternRewriteWalker(_FoldTruncfOfConstant()).rewrite_module(lowered)
        check_host_functions(lowered)
        for old in list(op.body.block.ops):
            Rewriter.erase_op(old, safe_erase=False)
        op.attributes.update(lowered.attributes)
        Rewriter.inline_block(lowered.body.block, InsertPoint.at_end(op.body.block))

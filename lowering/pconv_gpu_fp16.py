"""pconv-gpu-fp16: a network lowered to GPU kernels, in half precision.

Mobile GPUs (Adreno, Mali) run half at twice the rate of float and move half the bytes. This
pass takes a module as `pconv-lower-to-gpu` leaves it (host functions of buffers and launches,
kernels in `gpu.module`s) and makes every f32 buffer an f16 buffer: the host functions'
arguments and results, the device buffers, the weights (`memref.global`s: the launch plan
converts their data when it uploads them) and the kernels' memref arguments. Integer buffers
(the FKW index arrays) are left alone.

Option `accumulate`:

- `f16` (default): the kernels compute in half too: every f32 value, constant and
  loop-carried accumulator in a kernel becomes f16 (`cl_khr_fp16` arithmetic, what MNN and TVM
  run on Adreno);
- `f32`: half storage, float arithmetic: each load of an f16 buffer is extended to f32 and each
  store truncated to f16, so the multiply-adds and accumulators stay in float.

`-t 'opencl{fp16=true}'` prints the result with `cl_khr_fp16`; on a device without the
extension `-t 'opencl{fp16_emulation=true}'` prints the same kernels with halves held in floats
and rounded after every op (the numbers of native half arithmetic).

    %b = memref.alloc() : memref<1x8x5x5xf32>
    gpu.func @k(%x: memref<1x8x5x5xf32>) { %v = memref.load %x[...] : memref<1x8x5x5xf32> ... }
  becomes (accumulate=f32)
    %b = memref.alloc() : memref<1x8x5x5xf16>
    gpu.func @k(%x: memref<1x8x5x5xf16>) {
      %h = memref.load %x[...] : memref<1x8x5x5xf16>
      %v = arith.extf %h : f16 to f32 ... }
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, gpu, memref, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    MemRefType,
    ModuleOp,
    TensorType,
    VectorType,
)
from xdsl.ir import Attribute
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    TypeConversionPattern,
    attr_type_rewrite_pattern,
    op_type_rewrite_pattern,
)

from pconv_mlir.elements import dense_array
from pconv_mlir.errors import OptionError

__all__ = ["ACCUMULATE", "PconvGpuFp16Pass"]

ACCUMULATE = ("f16", "f32")

f16 = Float16Type()
f32 = Float32Type()


class _HalfBuffers(TypeConversionPattern):
    """memref<...xf32> -> memref<...xf16>, everywhere (results, block arguments, function
    types, global types)."""

    @attr_type_rewrite_pattern
    def convert_type(self, typ: MemRefType) -> MemRefType | None:
        if not isinstance(typ.element_type, Float32Type):
            return None
        return MemRefType(f16, typ.get_shape(), typ.layout, typ.memory_space)


class _HalfValues(TypeConversionPattern):
    """f32 -> f16 in scalars, vectors and constants (inside kernels only)."""

    @attr_type_rewrite_pattern
    def convert_type(self, typ: Float32Type) -> Float16Type:
        return f16


class _HalfGlobal(RewritePattern):
    """A global's f32 initial value (a constant the bufferization made) as f16."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.GlobalOp, rewriter: PatternRewriter) -> None:
        value = op.initial_value
        if not isinstance(value, DenseIntOrFPElementsAttr):
            return
        type_ = value.type
        if not isinstance(type_, TensorType) or not isinstance(type_.element_type, Float32Type):
            return
        array = dense_array(value).astype(np.float16).astype(np.float64)
        half = DenseIntOrFPElementsAttr.from_list(
            TensorType(f16, type_.get_shape()), array.reshape(-1).tolist()
        )
        new = op.clone()
        new.properties["initial_value"] = half
        rewriter.replace_op(op, new)


def _element(type_: Attribute) -> Attribute | None:
    if isinstance(type_, MemRefType):
        return type_.element_type
    return None


class _ExtendLoads(RewritePattern):
    """accumulate=f32: a load of f16 whose result is still f32 loads f16 and extends it."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.LoadOp, rewriter: PatternRewriter) -> None:
        if _element(op.memref.type) != f16 or op.res.type != f32:
            return
        load = memref.LoadOp.get(op.memref, op.indices)
        rewriter.replace_op(op, [load, arith.ExtFOp(load.res, f32)])


class _ExtendVectorLoads(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.LoadOp, rewriter: PatternRewriter) -> None:
        result = op.result.type
        if _element(op.base.type) != f16 or not isinstance(result, VectorType):
            return
        if result.element_type != f32:
            return
        half = VectorType(f16, result.get_shape())
        load = vector.LoadOp(op.base, op.indices, half)
        rewriter.replace_op(op, [load, arith.ExtFOp(load.result, result)])


class _TruncateStores(RewritePattern):
    """accumulate=f32: a store of an f32 value into f16 truncates it first."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.StoreOp, rewriter: PatternRewriter) -> None:
        if _element(op.memref.type) != f16 or op.value.type != f32:
            return
        truncate = arith.TruncFOp(op.value, f16)
        rewriter.replace_op(
            op, [truncate, memref.StoreOp.get(truncate.result, op.memref, op.indices)]
        )


class _TruncateVectorStores(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.StoreOp, rewriter: PatternRewriter) -> None:
        value = op.vector.type
        if _element(op.base.type) != f16 or not isinstance(value, VectorType):
            return
        if value.element_type != f32:
            return
        truncate = arith.TruncFOp(op.vector, VectorType(f16, value.get_shape()))
        rewriter.replace_op(op, [truncate, vector.StoreOp(truncate.result, op.base, op.indices)])


@dataclass(frozen=True)
class PconvGpuFp16Pass(ModulePass):
    """f32 buffers (and with accumulate=f16, kernel arithmetic) to f16; see the module
    docstring."""

    name = "pconv-gpu-fp16"

    accumulate: str = "f16"

    def __post_init__(self) -> None:
        if self.accumulate not in ACCUMULATE:
            raise OptionError(
                f"accumulate = {self.accumulate!r} is not one of {', '.join(ACCUMULATE)}"
            )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_HalfBuffers(recursive=True)).rewrite_module(op)
        PatternRewriteWalker(_HalfGlobal(), apply_recursively=False).rewrite_module(op)
        kernels = [o for o in op.body.block.ops if isinstance(o, gpu.ModuleOp)]
        if self.accumulate == "f16":
            for module in kernels:
                PatternRewriteWalker(_HalfValues(recursive=True)).rewrite_region(module.body)
            return
        for module in kernels:
            PatternRewriteWalker(
                GreedyRewritePatternApplier(
                    [
                        _ExtendLoads(),
                        _ExtendVectorLoads(),
                        _TruncateStores(),
                        _TruncateVectorStores(),
                    ]
                ),
                apply_recursively=False,
            ).rewrite_region(module.body)

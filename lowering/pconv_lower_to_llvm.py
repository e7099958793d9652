"""pconv-lower-to-llvm: a module with pconv ops all the way to the llvm dialect.

The CPU pipeline as one pass: `convert-pconv-to-loops` and `pconv-lre` in xDSL (when pconv ops
are left), then upstream `mlir-opt-22` where xDSL stops (bufferization, vector, memref and func
to llvm; see `pconv_mlir.lowering.llvm.llvm_pipeline`) for `machine`, handed back to xDSL in
generic form. Ops that xDSL does not define (some LLVM 22 intrinsics) stay as unregistered
generic ops. `-t llvm-ir` then prints LLVM IR; `pconv_mlir.compile` goes on to clang-22.

Options: `machine` (`host`, `aarch64`, `x86_64`), `opt_level` (0 skips cse and licm). The
parallel loops stay sequential here (xDSL cannot read the `omp` dialect back);
`pconv_mlir.compile` makes them threads.

    %y = pconv.fkw_conv2d %x, ... : (tensor<...>, ...) -> tensor<...>
  becomes
    llvm.func @conv(%arg0: !llvm.ptr, %arg1: !llvm.ptr) { ... llvm.intr.fmuladd ... }
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from pconv_mlir.errors import LoweringError, OptionError, PconvError
from pconv_mlir.ir import parse_module
from pconv_mlir.lowering.convert_pconv_to_loops import ConvertPconvToLoopsPass
from pconv_mlir.lowering.llvm import llvm_pipeline, prepare_for_mlir_opt, run_mlir_opt
from pconv_mlir.machine import machine as machine_named
from pconv_mlir.passes.pconv_lre import PconvLrePass


@dataclass(frozen=True)
class PconvLowerToLlvmPass(ModulePass):
    """Lowers pconv and upstream dialects to the llvm dialect (xDSL, then mlir-opt-22).

    See the module docstring for the steps and options.
    """

    name = "pconv-lower-to-llvm"

    machine: str = "host"
    opt_level: int = 3

    def __post_init__(self) -> None:
        machine_named(self.machine)  # an unknown machine fails when the pipeline is built
        if self.opt_level not in (0, 1, 2, 3):
            raise OptionError(f"opt_level = {self.opt_level} is outside 0..3")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if any(o.name.startswith("pconv.") for o in op.walk()):
            ConvertPconvToLoopsPass().apply(ctx, op)
            PconvLrePass().apply(ctx, op)
        text = run_mlir_opt(
            prepare_for_mlir_opt(op, ctx, self.machine),
            llvm_pipeline(self.opt_level, threads=False),  # xDSL cannot read omp back
            generic_output=True,
        )
        lenient = ctx.clone()
        lenient.allow_unregistered = True
        # parse_module renames a resource key the storage already holds (the weights the
        # module had before lowering), in the module and in the section alike.
        try:
            lowered = parse_module(text, lenient, name="<mlir-opt-22>")
        except PconvError as e:
            raise LoweringError(f"xDSL cannot read mlir-opt-22's output back: {e}") from None
        for old in list(op.body.block.ops):
            Rewriter.erase_op(old, safe_erase=False)
        op.attributes.update(lowered.attributes)
        Rewriter.inline_block(lowered.body.block, InsertPoint.at_end(op.body.block))

"""Output targets of pconv-opt (`-t NAME`) that produce code rather than MLIR.

`llvm` prints LLVM IR for the module, lowered by `pconv_mlir.lowering.llvm.lower_to_llvm_ir`:

    pconv-opt conv.mlir -t llvm                                # for this machine
    pconv-opt conv.mlir -t 'llvm{target=aarch64 opt_level=0}'  # for aarch64, no MLIR clean-ups

Its name clashes with xDSL's own `llvm` target (llvmlite-based, llvm dialect input only), so
register it in the opt tool's `register_all_targets` before xDSL's, not through a `Universe`
entry point, where a duplicate name is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException
from xdsl.utils.target import Target

__all__ = ["LLVMIRTarget", "get_targets"]


@dataclass(frozen=True)
class LLVMIRTarget(Target):
    """LLVM IR, through mlir-opt-22 and mlir-translate-22, with the bare-pointer C ABI.

    Options: `target` is `host`, `aarch64` or `x86_64`; `opt_level` 0 skips the MLIR clean-ups.
    A module that cannot be lowered raises a `DiagnosticException` with a one-line message.
    """

    name = "llvm"

    target: str = "host"
    opt_level: int = 3

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering import llvm
        from pconv_mlir.toolchain import ToolNotFoundError

        try:
            text = llvm.lower_to_llvm_ir(module, target=self.target, opt_level=self.opt_level)
        except ToolNotFoundError as e:
            raise DiagnosticException(str(e)) from None
        output.write(text)


def get_targets() -> dict[str, Callable[[], type[Target]]]:
    """The targets of this package by name, each behind a factory, as xDSL registers them."""

    def get_llvm() -> type[Target]:
        return LLVMIRTarget

    return {"llvm": get_llvm}

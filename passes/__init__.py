"""pconv-mlir's passes, one per file; `get_all_passes` imports each only when it is asked for."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> factory returning the pass class."""

    def get_fkr() -> type[ModulePass]:
        from pconv_mlir.passes.pconv_fkr import PconvFkrPass

        return PconvFkrPass

    def get_fkw_pack() -> type[ModulePass]:
        from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass

        return PconvFkwPackPass

    def get_from_linalg() -> type[ModulePass]:
        from pconv_mlir.passes.pconv_from_linalg import PconvFromLinalgPass

        return PconvFromLinalgPass

    def get_to_loops() -> type[ModulePass]:
        from pconv_mlir.lowering.convert_pconv_to_loops import ConvertPconvToLoopsPass

        return ConvertPconvToLoopsPass

    def get_lre() -> type[ModulePass]:
        from pconv_mlir.passes.pconv_lre import PconvLrePass

        return PconvLrePass

    def get_tune() -> type[ModulePass]:
        from pconv_mlir.passes.pconv_tune import PconvTunePass

        return PconvTunePass

    def get_lower_to_llvm() -> type[ModulePass]:
        from pconv_mlir.lowering.pconv_lower_to_llvm import PconvLowerToLlvmPass

        return PconvLowerToLlvmPass

    return {
        "convert-pconv-to-loops": get_to_loops,
        "pconv-lower-to-llvm": get_lower_to_llvm,
        "pconv-tune": get_tune,
        "pconv-lre": get_lre,
        "pconv-from-linalg": get_from_linalg,
        "pconv-fkr": get_fkr,
        "pconv-fkw-pack": get_fkw_pack,
    }

"""pconv-mlir's passes, one per file; `get_all_passes` imports each only when it is asked for.

A pass here is IR to IR: it imports the dialect, xDSL and the leaf modules of `pconv_mlir`
(`elements`, `errors`, `fkw`, `patterns`) and nothing that builds, runs or measures code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module

from xdsl.passes import ModulePass

PASSES: dict[str, tuple[str, str]] = {
    "pconv-from-linalg": ("pconv_mlir.passes.pconv_from_linalg", "PconvFromLinalgPass"),
    "pconv-fkr": ("pconv_mlir.passes.pconv_fkr", "PconvFkrPass"),
    "pconv-fkw-pack": ("pconv_mlir.passes.pconv_fkw_pack", "PconvFkwPackPass"),
    "pconv-schedule": ("pconv_mlir.passes.pconv_schedule", "PconvSchedulePass"),
    "pconv-apply-tuning": ("pconv_mlir.passes.pconv_apply_tuning", "PconvApplyTuningPass"),
    "convert-pconv-to-loops": (
        "pconv_mlir.lowering.convert_pconv_to_loops",
        "ConvertPconvToLoopsPass",
    ),
    "pconv-lre": ("pconv_mlir.passes.pconv_lre", "PconvLrePass"),
    "convert-pconv-to-gpu": (
        "pconv_mlir.lowering.convert_pconv_to_gpu",
        "ConvertPconvToGpuPass",
    ),
    "pconv-copies-to-linalg": (
        "pconv_mlir.lowering.pconv_copies_to_linalg",
        "PconvCopiesToLinalgPass",
    ),
    "pconv-flatten-parallel": (
        "pconv_mlir.lowering.pconv_flatten_parallel",
        "PconvFlattenParallelPass",
    ),
    "pconv-lower-to-gpu": ("pconv_mlir.lowering.pconv_lower_to_gpu", "PconvLowerToGpuPass"),
    "pconv-gpu-fp16": ("pconv_mlir.lowering.pconv_gpu_fp16", "PconvGpuFp16Pass"),
    "pconv-vectorize-linalg": (
        "pconv_mlir.lowering.vectorize_linalg",
        "VectorizeLinalgPass",
    ),
    "pconv-profile-layers": ("pconv_mlir.passes.pconv_profile_layers", "PconvProfileLayersPass"),
    "pconv-externalize-constants": (
        "pconv_mlir.lowering.externalize_constants",
        "ExternalizeConstantsPass",
    ),
    "pconv-lower-to-llvm": ("pconv_mlir.lowering.pconv_lower_to_llvm", "PconvLowerToLlvmPass"),
}
"""Pass name -> (module, class), in pipeline order."""


def _load(module: str, name: str) -> type[ModulePass]:
    return getattr(import_module(module), name)


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> factory returning the pass class."""
    return {name: partial(_load, *where) for name, where in PASSES.items()}

"""The upstream half of the GPU path: bufferization, linalg to kernels, and SPIR-V, in mlir-opt-22.

`pconv-lower-to-gpu` (see its module) hands a module to `mlir-opt-22` twice and reads it back
in xDSL each time; this module holds the two pipelines, and the SPIR-V step that the OpenCL
back ends run on the result.

- `BUFFERIZE_PIPELINE`: one-shot bufferization of the whole module, function boundaries with
  identity layouts (a host function takes and returns plain buffers).
- `PARALLEL_LOOPS_PIPELINE`: every linalg op on buffers becomes `scf.parallel` loops over its
  parallel dims (reductions stay `scf.for` inside); `pconv-flatten-parallel` then makes each a
  one-dim loop in xDSL.
- `kernel_pipeline(tile)`: the parallel loops, tiled by `tile` (the work-group: the loop's
  first dims, in order), mapped to blocks and threads, made `gpu.launch`es and outlined into
  `gpu.module`s of their own with their `gpu.launch_func`s; then affine maps to arith (xDSL cannot
  read the semi-affine maps the mapping leaves) and clean-ups.
- `SPIRV_PIPELINE` and `spirv_binary`: the module's kernels as one SPIR-V module with the
  Kernel capability for OpenCL (physical 64-bit addressing, `SPIRV_TARGET_ENV`), serialised by
  `mlir-translate-22 --serialize-spirv` and checked by `spirv-val --target-env opencl1.2`;
  `spir_bitcode` turns it into SPIR 1.2 bitcode with `llvm-spirv-15 -r`, which PoCL 3.1 loads
  (it cannot load SPIR-V itself).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from xdsl.dialects import gpu
from xdsl.dialects.builtin import ModuleOp, UnitAttr

from pconv_mlir.errors import LoweringError
from pconv_mlir.ir import print_module
from pconv_mlir.toolchain import run_tool

__all__ = [
    "BUFFERIZE_PIPELINE",
    "DEFAULT_TILE",
    "PARALLEL_LOOPS_PIPELINE",
    "SPIRV_PIPELINE",
    "SPIRV_TARGET_ENV",
    "kernel_pipeline",
    "spir_bitcode",
    "spirv_binary",
    "spirv_module",
    "validation_env",
]

BUFFERIZE_PIPELINE = (
    "builtin.module(one-shot-bufferize{bufferize-function-boundaries=true "
    "function-boundary-type-conversion=identity-layout-map},canonicalize)"
)

DEFAULT_TILE = (64,)
"""Work-group of the kernels made from linalg ops: the sizes of their loops' first dims (after
`pconv-flatten-parallel`, a loop has one dim: 64 consecutive outputs per work-group)."""

PARALLEL_LOOPS_PIPELINE = "builtin.module(func.func(convert-linalg-to-parallel-loops))"
"""Linalg ops on buffers to `scf.parallel` loops over their parallel dims (reductions inside
as `scf.for`)."""


def kernel_pipeline(tile: Sequence[int] = DEFAULT_TILE) -> str:
    """The mlir-opt pipeline from parallel loops to outlined kernels (see the module
    docstring); `tile` is the work-group along the loops' first dims."""
    sizes = ",".join(str(int(t)) for t in tile)
    return (
        "builtin.module(func.func("
        f"scf-parallel-loop-tiling{{parallel-loop-tile-sizes={sizes} no-min-max-bounds=true}},"
        "gpu-map-parallel-loops,convert-parallel-loops-to-gpu),"
        "canonicalize,gpu-launch-sink-index-computations,"
        "gpu-kernel-outlining,lower-affine,canonicalize,cse)"
    )


SPIRV_TARGET_ENV = (
    "#spirv.target_env<#spirv.vce<v1.0, [Kernel, Addresses, Int64, Float16Buffer, Float16], []>,"
    " #spirv.resource_limits<>>"
)
"""An OpenCL kernel's SPIR-V target: version 1.0, the Kernel capability, physical 64-bit
addresses, and half buffers and arithmetic for kernels that use them (`spirv-update-vce` keeps
only the capabilities a module uses). It sits on the module around the kernels
(`spirv.target_env`), where both `convert-math-to-spirv` and `convert-gpu-to-spirv` look it
up: math ops become OpenCL's extended instructions (`spirv.CL.exp`), not GLSL's."""

SPIRV_PIPELINE = (
    "builtin.module(map-memref-spirv-storage-class{client-api=opencl},"
    "gpu.module(convert-math-to-spirv),"
    "convert-gpu-to-spirv{use-64bit-index=true},"
    "gpu.module(spirv.module(spirv-lower-abi-attrs,spirv-update-vce)))"
)
"""Kernels to SPIR-V (in the target environment of `SPIRV_TARGET_ENV`): the default memory
space as CrossWorkgroup (global), math ops to OpenCL's extended instructions, the kernels
converted, then the ABI attributes lowered and the module's version, capabilities and
extensions deduced."""


def _kernels_text(module: ModuleOp) -> str:
    """The module's `gpu.module`s alone, in a module with `SPIRV_TARGET_ENV`, each kernel with
    the `spirv.entry_point_abi` that convert-gpu-to-spirv asks for (the work-group of its
    `gpu.known_block_size`). Both are added as text: xDSL has no SPIR-V attributes."""
    kernels = [op.clone() for op in module.ops if isinstance(op, gpu.ModuleOp)]
    if not kernels:
        raise LoweringError("the module has no gpu.module: run convert-pconv-to-gpu first")
    wrapper = ModuleOp(kernels)
    wrapper.attributes["gpu.container_module"] = UnitAttr()
    text = print_module(wrapper)
    head = "builtin.module attributes {gpu.container_module"
    assert text.startswith(head), text[:80]
    text = f"{head}, spirv.target_env = {SPIRV_TARGET_ENV}" + text[len(head) :]
    return re.sub(
        r"gpu\.known_block_size = array<i32: (\d+), (\d+), (\d+)>",
        r"\g<0>, spirv.entry_point_abi = #spirv.entry_point_abi<workgroup_size = [\1, \2, \3]>",
        text,
    )


def _spirv_modules(text: str) -> list[str]:
    """Every `spirv.module` op of upstream's output, each on its own."""
    modules = []
    start = text.find("spirv.module")
    while start >= 0:
        open_at = text.index("{", start)
        depth = 0
        for i in range(open_at, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                modules.append(text[start : i + 1] + "\n")
                break
        start = text.find("spirv.module", i)
    return modules


def validation_env(spirv_text: str) -> str:
    """The `spirv-val --target-env` a `spirv.module` is checked in: `opencl1.2`, or for a
    module with half values (the Float16 capability, which OpenCL has through the
    `cl_khr_fp16` extension that spirv-val's OpenCL environments do not allow) the universal
    `spv1.0`."""
    vce = re.search(r"#spirv\.vce<[^>]*>", spirv_text)
    half = vce is not None and re.search(r"[\[ ]Float16[,\]]", vce.group(0)) is not None
    return "spv1.0" if half else "opencl1.2"


def spirv_binary(module: ModuleOp) -> bytes:
    """The kernels of `module` (one `gpu.module`, as `pconv-lower-to-gpu` leaves them) as a
    SPIR-V binary that `spirv-val --target-env opencl1.2` accepted."""
    return spirv_module(module)[1]


def spirv_module(module: ModuleOp) -> tuple[str, bytes]:
    """The kernels of `module` as a `spirv.module` (MLIR text) and as the SPIR-V binary of it
    that `spirv-val` accepted (for OpenCL 1.2; see `validation_env` for half)."""
    return _spirv_of(_kernels_text(module))


@lru_cache(maxsize=4)
def _spirv_of(kernels: str) -> tuple[str, bytes]:
    """`spirv_module` of the kernels' text, kept for the next call with the same kernels (a
    back end asks for the text and for the binary of one module)."""
    lowered = run_tool("mlir-opt", [f"--pass-pipeline={SPIRV_PIPELINE}"], kernels)
    modules = _spirv_modules(lowered)
    if len(modules) != 1:
        raise LoweringError(
            f"the kernels made {len(modules)} SPIR-V modules; one gpu.module was expected"
        )
    with tempfile.TemporaryDirectory(prefix="pconv-spirv-") as tmp:
        source, binary = Path(tmp) / "kernels.spirv.mlir", Path(tmp) / "kernels.spv"
        source.write_text(modules[0])
        run_tool(
            "mlir-translate",
            ["--no-implicit-module", "--serialize-spirv", str(source), "-o", str(binary)],
        )
        run_tool("spirv-val", ["--target-env", validation_env(modules[0]), str(binary)])
        return modules[0], binary.read_bytes()


def spir_bitcode(spirv: bytes) -> bytes:
    """`spirv` as SPIR 1.2 bitcode (`llvm-spirv-15 -r`), which PoCL 3.1 loads."""
    with tempfile.TemporaryDirectory(prefix="pconv-spir-") as tmp:
        source, bitcode = Path(tmp) / "kernels.spv", Path(tmp) / "kernels.bc"
        source.write_bytes(spirv)
        run_tool("llvm-spirv", ["-r", str(source), "-o", str(bitcode)])
        return bitcode.read_bytes()

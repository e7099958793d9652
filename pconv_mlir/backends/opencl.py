"""The GPU back ends, `opencl` and `spirv`, and their output formats.

Both lower a network with `pconv-lower-to-gpu` (pattern convs to our kernels, every other
layer to upstream's, one host function of buffers and launches) and run it through pyopencl on
the first OpenCL device (`pconv_mlir.runtime.opencl`): PoCL on this machine's CPU, a phone's
GPU with the same code.

- `opencl`: the kernels as OpenCL C 1.2 source (`-t opencl`), what Adreno's drivers take (they
  do not list `cl_khr_il_program`).
- `spirv`: the same kernels as one SPIR-V module with the Kernel capability (the text is the
  `spirv.module`, `-t spirv`), what Vulkan compute, clvk and OpenCL 2.1+ drivers take. PoCL 3.1
  cannot load SPIR-V, so it runs here as SPIR 1.2 bitcode from `llvm-spirv-15 -r`.

Option `precision` (`compile(..., precision=...)`): `fp32`, `fp16` (half buffers and
arithmetic, `cl_khr_fp16`: what Adreno runs at twice the rate) or `fp16-acc32` (half buffers,
float multiply-adds and accumulators); see `pconv-gpu-fp16`. On a device without `cl_khr_fp16`
(PoCL) the `opencl` artifact runs the same kernels with emulated half (a warning says so) and
the `spirv` one is refused; the saved `.cl` is the native-half program.

`save` writes, for either: `<name>.cl`, `<name>.spv`, `<name>.launch.json` (the launch plan:
kernels, buffers, launches in order, inputs and outputs) and `<name>.weights.bin`: what an
application needs to run the network with the OpenCL C API, as `pconv_mlir/runtime/
pconv_cl_run.c` does.

The output formats print a module that already has its kernels in `gpu.module`s (from
`pconv-lower-to-gpu` or `convert-pconv-to-gpu`, or written by hand in upstream dialects) and
its launches as `gpu.launch_func` in host functions; see `pconv_mlir.lowering.opencl`.

    pconv-opt kernels.mlir -t opencl
    pconv-opt kernels.mlir -t 'opencl{fp16=true}'
    pconv-opt kernels.mlir -t 'opencl{fp16_emulation=true}'
    pconv-opt kernels.mlir -t opencl-launch
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.target import Target

from pconv_mlir.backends.base import Backend
from pconv_mlir.errors import OptionError, RunError

if TYPE_CHECKING:
    from pconv_mlir.runtime.build import WeightsFile


@dataclass
class GpuPackage:
    """What a GPU artifact runs besides its text: the launch plan, the weights file it points
    into, the OpenCL C source and the SPIR-V binary of the same kernels."""

    plan: dict[str, Any]
    weights: WeightsFile | None
    source: str
    spirv: bytes
    emulated_source: str | None = None
    """For half kernels: the OpenCL C with emulated half, for devices without cl_khr_fp16."""


PRECISIONS = ("fp32", "fp16", "fp16-acc32")
"""The `precision` options of the GPU backends."""


def _has_fp16(device: Any) -> bool:
    return "cl_khr_fp16" in device.extensions.split()


class OpenClBackend(Backend):
    """OpenCL C 1.2 kernels run through pyopencl (see the module docstring)."""

    name = "opencl"
    summary = "OpenCL C 1.2 kernels for mobile GPUs, run on the first OpenCL device"
    cost_unit: ClassVar[str] = "s"
    tunable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cpu: str | None = None, precision: str = "fp32") -> None:
        del cpu  # a CPU option means nothing here; compile passes it to every backend
        if precision not in PRECISIONS:
            raise OptionError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        self.precision = precision
        """`fp32`; `fp16` (half buffers and arithmetic); `fp16-acc32` (half buffers, float
        arithmetic and accumulation)."""

    @property
    def half(self) -> bool:
        return self.precision != "fp32"

    def describe(self) -> str:
        from pconv_mlir.runtime.opencl import opencl_device

        try:
            device = opencl_device(spir=self.name == "spirv")
        except RunError as e:
            return f"no OpenCL device ({e})"
        return f"{device.name.strip()} ({device.platform.name.strip()}, {device.version.strip()})"

    def schedule_defaults(self) -> dict[str, int]:
        """`gpu_stage_input = 1` (convs stage their input tiles in local memory) when the
        device's local memory is on chip, where it pays; off where it is global memory (PoCL
        on a CPU, Mali) or there is no device. A `gpu_stage_input` given to `compile` wins."""
        from pconv_mlir.runtime.opencl import local_memory_on_chip, opencl_device

        try:
            device = opencl_device(spir=self.name == "spirv")
        except RunError:
            return {}
        return {"gpu_stage_input": int(local_memory_on_chip(device))}

    def lowering(self, *, lre: bool = True) -> list[ModulePass]:
        from pconv_mlir.lowering.pconv_lower_to_gpu import PconvLowerToGpuPass

        passes: list[ModulePass] = [PconvLowerToGpuPass()]
        if self.half:
            from pconv_mlir.lowering.pconv_gpu_fp16 import PconvGpuFp16Pass

            accumulate = "f32" if self.precision == "fp16-acc32" else "f16"
            passes.append(PconvGpuFp16Pass(accumulate=accumulate))
        return passes

    def emit(self, module: ModuleOp, ctx: Context, *, opt_level: int = 3) -> str:
        """The kernels as one OpenCL C 1.2 program."""
        from pconv_mlir.lowering.opencl import print_opencl

        text = StringIO()
        print_opencl(module, text, fp16=self.half)
        return text.getvalue()

    def write_weights(self, module: ModuleOp, ctx: Context, path: Path) -> GpuPackage:
        """The launch plan of the module's one host function with its weights (written to
        `path`), its OpenCL C source and its SPIR-V (checked by spirv-val)."""
        from pconv_mlir.lowering.gpu import spirv_binary
        from pconv_mlir.lowering.llvm import function_signatures
        from pconv_mlir.lowering.opencl import print_opencl
        from pconv_mlir.runtime.opencl import launch_plan

        (name,) = function_signatures(module)
        plan, weights = launch_plan(module, ctx, name, path)
        source, emulated = StringIO(), StringIO()
        print_opencl(module, source, fp16=self.half)
        if self.half:
            print_opencl(module, emulated, fp16_emulation=True)
        return GpuPackage(
            plan, weights, source.getvalue(), spirv_binary(module), emulated.getvalue() or None
        )

    def _program(self, package: GpuPackage, device: Any) -> dict[str, Any]:
        """The program for `device`: the OpenCL C source; for half kernels on a device without
        `cl_khr_fp16`, the same kernels with emulated half (said in a warning)."""
        if package.emulated_source is not None and not _has_fp16(device):
            warnings.warn(
                f"{device.name.strip()} has no cl_khr_fp16: the half kernels run emulated "
                "(halves held in floats, rounded to half after every op: the same numbers)",
                stacklevel=4,
            )
            return {"source": package.emulated_source}
        return {"source": package.source}

    def build(
        self,
        text: str,
        signatures: dict[str, Any],
        workdir: Path,
        *,
        opt_level: int = 3,
        weights: GpuPackage | None = None,
        name: str | None = None,
        threads: int | None = None,
    ) -> Any:
        """An `OpenClRunner` of the package (`write_weights`) on the first OpenCL device."""
        from pconv_mlir.runtime.opencl import OpenClRunner, opencl_device

        if weights is None:
            raise RunError("a GPU artifact is built from its package (write_weights)")
        device = opencl_device(spir=self.name == "spirv")
        program = self._program(weights, device)
        return OpenClRunner(signatures, weights.plan, weights.weights, device=device, **program)

    def save(
        self,
        text: str,
        signature: Any,
        directory: Path,
        *,
        name: str,
        opt_level: int = 3,
        weights: GpuPackage | None = None,
        threads: int | None = None,
    ) -> Sequence[Path]:
        """Write `<name>.cl`, `<name>.spv`, `<name>.launch.json` and `<name>.weights.bin`."""
        from pconv_mlir.runtime.opencl import write_package

        if weights is None:
            raise RunError("a GPU artifact is saved from its package (write_weights)")
        written = write_package(directory, name, weights.plan, weights.source, weights.spirv)
        if weights.weights is not None:
            written.append(weights.weights.copy_to(directory / f"{name}.weights.bin").path)
        return written

    def cost(self, module: ModuleOp, ctx: Context, function: str, *, repeats: int = 3) -> float:
        """Median seconds of `repeats` runs of the launches of `function` on the device."""
        import tempfile

        from pconv_mlir.lowering.llvm import function_signatures
        from pconv_mlir.runtime.timing import median_seconds

        with tempfile.TemporaryDirectory(prefix="pconv-gpu-cost-") as tmp:
            package = self.write_weights(module, ctx, Path(tmp) / "weights.bin")
            runner = self.build(
                "", function_signatures(module), Path(tmp), weights=package, name=function
            )
            try:
                runner.run_launches()
                return median_seconds(runner.run_launches, repeats=repeats)
            finally:
                runner.close()


class SpirvBackend(OpenClBackend):
    """The same kernels as SPIR-V (see the module docstring)."""

    name = "spirv"
    summary = "SPIR-V (Kernel capability) for OpenCL 2.1+/Vulkan; PoCL runs it as SPIR bitcode"

    def emit(self, module: ModuleOp, ctx: Context, *, opt_level: int = 3) -> str:
        """The kernels as one `spirv.module` (MLIR text), after spirv-val accepted its binary."""
        from pconv_mlir.lowering.gpu import spirv_module

        return spirv_module(module)[0]

    def _program(self, package: GpuPackage, device: Any) -> dict[str, Any]:
        """SPIR 1.2 bitcode of the SPIR-V; half kernels need a device with `cl_khr_fp16`."""
        from pconv_mlir.lowering.gpu import spir_bitcode

        if package.emulated_source is not None and not _has_fp16(device):
            raise RunError(
                f"{device.name.strip()} has no cl_khr_fp16: half SPIR-V cannot run on it "
                "(target='opencl' runs the half kernels emulated)"
            )
        return {"binary": spir_bitcode(package.spirv)}


@dataclass(frozen=True)
class OpenClTarget(Target):
    """Every `gpu.module` as one OpenCL C 1.2 program.

    Options: `fp16` allows f16 values (as `half`, with `cl_khr_fp16` enabled);
    `fp16_emulation` allows them on any OpenCL 1.2 device instead (held in `float`, rounded to
    half precision after every op, stored with `vstore_half_rte`). Without either an f16 value
    is a diagnostic.
    """

    name = "opencl"

    fp16: bool = False
    fp16_emulation: bool = False

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering.opencl import print_opencl

        text = StringIO()  # nothing is written when the module cannot be printed
        print_opencl(module, text, fp16=self.fp16, fp16_emulation=self.fp16_emulation)
        output.write(text.getvalue())


@dataclass(frozen=True)
class SpirvTarget(Target):
    """The module's kernels as one `spirv.module` (through mlir-opt-22's convert-gpu-to-spirv;
    its binary checked by `spirv-val --target-env opencl1.2`)."""

    name = "spirv"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering.gpu import spirv_module

        output.write(spirv_module(module)[0])


@dataclass(frozen=True)
class OpenClLaunchTarget(Target):
    """The launch description of the module's `gpu.launch_func`s, as JSON
    (see `pconv_mlir.lowering.opencl.launch_description`)."""

    name = "opencl-launch"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering.opencl import launch_description

        output.write(format_json(launch_description(module)) + "\n")


def format_json(value: object) -> str:
    """`value` as indented JSON, with every list or object of scalars on one line."""
    text = json.dumps(value, indent=2)
    return _FLAT.sub(
        lambda m: (
            " ".join(m.group(0).split())
            .replace("[ ", "[")
            .replace(" ]", "]")
            .replace("{ ", "{")
            .replace(" }", "}")
        ),
        text,
    )


_FLAT = re.compile(r"[\[{][^\[\]{}]*[\]}]")
"""A JSON list or object with no list or object inside."""


OpenClBackend.target = OpenClTarget
SpirvBackend.target = SpirvTarget

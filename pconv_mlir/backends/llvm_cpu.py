"""The CPU back ends: LLVM IR through mlir-opt-22 and clang-22, for the host, aarch64 and x86-64.

- `host`: this computer (`-march=native`), run in-process with ctypes, costed by timing it.
- `aarch64`: the Snapdragon 855's big core (Cortex-A76, 128-bit NEON), run under qemu-aarch64,
  costed by llvm-mca-22's cycle estimate (no device is attached, and qemu's timing means
  nothing).
- `x86_64`: a generic AVX2 x86-64 (`-march=x86-64-v3`), costed by llvm-mca-22.

Lowering: `convert-pconv-to-loops`, `pconv-lre` and `pconv-externalize-constants` in xDSL, then
upstream `mlir-opt-22` and `mlir-translate-22` (see `pconv_mlir.lowering.llvm`). The
`-t llvm-ir{backend=...}` target prints the LLVM IR. Weights never go through that text: the
large constants are external symbols in the IR, and `write_weights` puts their bytes in one
binary file that `build` and `save` link into the library or executable (see
`pconv_mlir.runtime.build.WeightsFile`).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.target import Target

from pconv_mlir.backends.base import Backend
from pconv_mlir.errors import OptionError
from pconv_mlir.machine import Machine, machine

if TYPE_CHECKING:
    from pconv_mlir.runtime.build import WeightsFile


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LlvmCpuBackend(Backend):
    """A CPU back end through LLVM; subclasses name the machine and the cost model."""

    machine_name: ClassVar[str]
    cost_unit: ClassVar[str] = "cycles"
    tunable: ClassVar[tuple[str, ...]] = ("tile", "partial_sums", "unroll_filters")

    def __init__(self, cpu: str | None = None) -> None:
        self.machine: Machine = machine(self.machine_name)
        self.cpu = cpu
        """clang's `-march`/`-mcpu` instead of the machine's default."""

    def describe(self) -> str:
        features = ", ".join(self.machine.features)
        return f"{self.machine.name} ({self.cpu or self.machine.cpu}; {features})"

    def schedule_defaults(self) -> dict[str, int]:
        """The machine's vector width; on AArch64 also `lane_weights` (NEON multiplies by a
        vector lane: one load of a kernel's 4 weights instead of 4 broadcasts)."""
        defaults = {"vector_width": self.machine.default_vector_width}
        if self.machine.name == "aarch64":
            defaults["lane_weights"] = 1
        return defaults

    def lowering(self, *, lre: bool = True) -> list[ModulePass]:
        from pconv_mlir.lowering.convert_pconv_to_loops import ConvertPconvToLoopsPass
        from pconv_mlir.lowering.externalize_constants import ExternalizeConstantsPass
        from pconv_mlir.passes.pconv_lre import PconvLrePass

        return [
            ConvertPconvToLoopsPass(),
            *([PconvLrePass()] if lre else []),
            ExternalizeConstantsPass(),
        ]

    def emit(self, module: ModuleOp, ctx: Context, *, opt_level: int = 3) -> str:
        """The LLVM IR of `module`; its external constants are declarations, without data."""
        from pconv_mlir.lowering.llvm import lower_to_llvm_ir

        return lower_to_llvm_ir(module, ctx, self.machine, opt_level=opt_level)

    def write_weights(self, module: ModuleOp, ctx: Context, path: Path) -> WeightsFile | None:
        """Write the data of `module`'s external constants (from `ctx`) to the binary file
        `path`, for `build` and `save`; None (and no file) when it has none."""
        from pconv_mlir.runtime.build import write_weights

        return write_weights(module, ctx, path)

    def build(
        self,
        text: str,
        signatures: dict[str, Any],
        workdir: Path,
        *,
        opt_level: int = 3,
        weights: WeightsFile | None = None,
        name: str | None = None,
        threads: int | None = None,
    ) -> Any:
        """Compile and load `text` with the data of its external constants (`write_weights`)
        linked in. With `name` (one of `signatures`: a compiled model), the library also has the
        C entry points of `pconv_mlir.runtime.driver.library_source` (`<name>_set_threads`,
        ...); the code runs on `threads` threads (default: the machine's cores)."""
        from pconv_mlir.runtime.driver import library_source
        from pconv_mlir.runtime.runners import ExecutableRunner, build_runner_from_ir

        c_sources = {}
        if name is not None:
            c_sources[f"{name}_entry.c"] = library_source(name, signatures[name], threads)
        runner = build_runner_from_ir(
            text,
            signatures,
            target=self.machine,
            cpu=self.cpu,
            opt_level=opt_level,
            workdir=workdir,
            weights=weights,
            c_sources=c_sources,
        )
        if threads is not None and isinstance(runner, ExecutableRunner):  # qemu: env per call
            runner.env["PCONV_NUM_THREADS"] = str(threads)
        return runner

    def save(
        self,
        text: str,
        signature: Any,
        directory: Path,
        *,
        name: str,
        opt_level: int = 3,
        weights: WeightsFile | None = None,
        threads: int | None = None,
    ) -> Sequence[Path]:
        """Write `lib<name>.so` (built for the machine, the weights and the C runtime inside,
        with the entry points of `pconv_mlir.runtime.driver.library_source`), `<name>.h` (its
        header), `<name>.ll` (the generated code), and with `weights`, `<name>.weights.bin` (the
        raw bytes of the external constants) and `<name>.weights.s` (the assembly stub that
        `.incbin`s them by that relative name). To build a library of your own from `<name>.ll`
        and the stub, add `pconv_alloc.c`, `pconv_omp.c` (and `pconv_profile.c` for a profiled
        build) from `pconv_mlir/runtime` when the IR calls them."""
        from pconv_mlir.runtime.build import compile_shared_library
        from pconv_mlir.runtime.driver import library_header, library_source

        directory.mkdir(parents=True, exist_ok=True)
        ir_path, header = directory / f"{name}.ll", directory / f"{name}.h"
        ir_path.write_text(text)
        header.write_text(library_header(name, signature, self.name))
        written = [header, ir_path]
        if weights is not None:
            weights = weights.copy_to(directory / f"{name}.weights.bin")
            stub = directory / f"{name}.weights.s"
            stub.write_text(weights.assembly(weights.path.name))
            written += [weights.path, stub]
        library = compile_shared_library(
            text,
            directory / f"lib{name}.so",
            self.machine,
            cpu=self.cpu,
            opt_level=opt_level,
            weights=weights,
            c_sources={f"{name}_entry.c": library_source(name, signature, threads)},
        )
        return [library, *written]

    def _estimate(self, module: ModuleOp, ctx: Context, function: str, trips: int) -> float:
        """llvm-mca's cycles for the hot multiply-add loop of `function`, times `trips`."""
        from pconv_mlir.runtime.mca import llvm_mca_report

        hot = r"^fmla" if self.machine.name == "aarch64" else r"vfmadd"
        report = llvm_mca_report(
            self.emit(module, ctx),
            function=function,
            hot=hot,
            target=self.machine,
            cpu=self.cpu,
        )
        return report.total_cycles / report.iterations * trips

    def cost(
        self,
        module: ModuleOp,
        ctx: Context,
        function: str,
        *,
        repeats: int = 3,
        trips: int = 1,
    ) -> float:
        """llvm-mca's estimate of `function`: its hot loop's cycles times `trips`, the times the
        loop runs (the tuner counts them: register tiles x kernels)."""
        return self._estimate(module, ctx, function, trips)


class HostBackend(LlvmCpuBackend):
    """This computer, tuned for with `native`; runs in-process; costed by timing."""

    name = "host"
    summary = "LLVM IR for this computer, run in-process, tuned by timing"
    machine_name = "host"
    cost_unit = "s"
    tunable = (
        "vector_width",
        "tile",
        "partial_sums",
        "unroll_filters",
        "tile_channels",
        "specialize",
    )

    def describe(self) -> str:
        return f"{_cpu_model()} ({super().describe()})"

    def cost(
        self,
        module: ModuleOp,
        ctx: Context,
        function: str,
        *,
        repeats: int = 3,
        trips: int = 1,
    ) -> float:
        """Median seconds of `repeats` calls of `function` on random inputs, after a warm-up."""
        from pconv_mlir.lowering.llvm import function_signatures
        from pconv_mlir.runtime.runners import build_runner
        from pconv_mlir.runtime.timing import median_seconds

        signature = function_signatures(module)[function]
        rng = np.random.default_rng(0)
        args = [
            np.zeros(a.shape, a.dtype)
            if a.is_out_param
            else rng.standard_normal(a.shape).astype(a.dtype)
            for a in signature.args
        ]
        with build_runner(module, ctx, target=self.machine, cpu=self.cpu) as runner:
            return median_seconds(lambda: runner.call(function, *args), repeats=repeats)


class Aarch64Backend(LlvmCpuBackend):
    """Cortex-A76 (Snapdragon 855); runs under qemu-aarch64; costed by llvm-mca."""

    name = "aarch64"
    summary = "LLVM IR for Cortex-A76 (NEON), run under qemu, tuned by llvm-mca"
    machine_name = "aarch64"


class X86Backend(LlvmCpuBackend):
    """A generic AVX2 x86-64; costed by llvm-mca."""

    name = "x86_64"
    summary = "LLVM IR for a generic AVX2 x86-64, tuned by llvm-mca"
    machine_name = "x86_64"


@dataclass(frozen=True)
class LlvmIrTarget(Target):
    """LLVM IR of a CPU back end, through mlir-opt-22 and mlir-translate-22.

    Options: `backend` is `host`, `aarch64` or `x86_64`; `opt_level` 0 skips the MLIR clean-ups.
    The module must be in upstream dialects (run `convert-pconv-to-loops` first, or the whole
    pipeline); a module that cannot be lowered is one located diagnostic.

        pconv-opt conv.mlir -p convert-pconv-to-loops -t 'llvm-ir{backend=aarch64}'
    """

    name = "llvm-ir"

    backend: str = "host"
    opt_level: int = 3

    def __post_init__(self) -> None:
        from pconv_mlir.backends import backend_class

        if not issubclass(backend_class(self.backend), LlvmCpuBackend):
            raise OptionError(f"backend '{self.backend}' does not produce LLVM IR")

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.backends import get_backend

        output.write(get_backend(self.backend).emit(module, ctx, opt_level=self.opt_level))


LlvmCpuBackend.target = LlvmIrTarget

"""Build LLVM IR into native code with clang-22: a shared library, or an executable with a driver.

    >>> compile_shared_library(llvm_ir, "conv.so", "host")                  # doctest: +SKIP
    >>> compile_executable(llvm_ir, "conv", driver_c=c, machine="aarch64")  # doctest: +SKIP

- `compile_shared_library`: `-O3 -fPIC -shared`, for a `pconv_mlir.machine.Machine` (flags from
  `Machine.clang_flags`: `-march=native` on the host, `-mcpu=cortex-a76
  --target=aarch64-unknown-linux-gnu` for aarch64; clang finds Debian's cross GCC installation
  and libc by itself, while `--sysroot=/usr/aarch64-linux-gnu` would break that).
- `compile_executable`: the same, linked with a C program that has `main` (the driver of
  `pconv_mlir.runtime.driver`), statically by default so that qemu needs no dynamic loader.

`sanitize="address"` builds under AddressSanitizer (`-fsanitize=address -fno-omit-frame-pointer
-g`; executables are then linked dynamically, since ASan does not support `-static`). clang
instruments only the functions that carry the `sanitize_address` attribute, which its C front
end adds and `mlir-translate` does not, so the attribute is added to every function defined in
the IR first.

Support code: `memref.copy` between non-contiguous buffers (e.g. what bufferized `tensor.pad`
becomes) lowers to a call to MLIR's runtime function `memrefCopy`; `SUPPORT_C`, a small C
implementation of it, is compiled in whenever the IR declares it: no MLIR runtime library needed.

Weights: the constants that `pconv-externalize-constants` took out of the IR are external
symbols in the LLVM IR. `WeightsFile.write` puts their bytes in one binary file, each at a
64-byte aligned offset; the builders take it as `weights=` and assemble a stub
(`WeightsFile.assembly`: `.section .rodata`, one hidden global label per symbol, `.incbin` of its
bytes) with clang for the same machine, so the data is linked into the library or executable
as it is: no text on the way, and no symbol exported.

Threads and profiling: parallel loops reach LLVM IR as calls to the libomp ABI
(`__kmpc_fork_call`, ...; see `pconv_mlir.lowering.llvm.llvm_pipeline`), and
`pconv-profile-layers` adds calls to `pconv_layer_begin/end`. The builders compile in the
package's own C runtime for them when the IR (or a C source given) refers to them:
`pconv_omp.c` (a thread pool behind that ABI; with `-pthread`), `pconv_profile.c` (the layer
timer) and `pconv_alloc.c` (the heap functions every `memref.alloc` calls, which keep freed
activation buffers for the next call instead of returning them to the kernel). Their symbols are
hidden, so a library exports only what the generated code and its wrappers define. A `__kmpc_`
function that `pconv_omp.c` does not implement is a `BuildError`.

A failed build raises `pconv_mlir.errors.BuildError` whose message is clang's first error line;
the output file appears only when the build succeeded.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from pconv_mlir.errors import BuildError, OptionError, ToolFailedError
from pconv_mlir.lowering.externalize_constants import external_constants
from pconv_mlir.machine import Machine
from pconv_mlir.machine import machine as machine_named
from pconv_mlir.toolchain import run_tool

__all__ = [
    "OMP_FUNCTIONS",
    "SANITIZERS",
    "SUPPORT_C",
    "WeightsFile",
    "compile_executable",
    "compile_shared_library",
    "runtime_sources",
    "sanitize_flags",
    "write_weights",
]

SUPPORT_C = r"""
/* pconv-mlir runtime support: the MLIR runtime functions that lowered code may call. */
#include <stdint.h>
#include <string.h>

typedef struct { int64_t rank; void *descriptor; } UnrankedMemRef;
typedef struct { char *allocated; char *aligned; int64_t offset; int64_t sizes_strides[]; } MemRef;

/* memref.copy between buffers of any layout (MLIR's CRunnerUtils `memrefCopy`). */
void memrefCopy(int64_t elem_size, UnrankedMemRef *src_arg, UnrankedMemRef *dst_arg) {
  int64_t rank = src_arg->rank;
  MemRef *src = (MemRef *)src_arg->descriptor, *dst = (MemRef *)dst_arg->descriptor;
  char *sp = src->aligned + src->offset * elem_size;
  char *dp = dst->aligned + dst->offset * elem_size;
  if (rank == 0) { memcpy(dp, sp, elem_size); return; }
  const int64_t *sizes = src->sizes_strides;
  const int64_t *ss = src->sizes_strides + rank, *ds = dst->sizes_strides + rank;
  for (int64_t d = 0; d < rank; ++d)
    if (sizes[d] == 0) return;
  int64_t index[rank];
  memset(index, 0, sizeof index);
  int64_t inner = sizes[rank - 1], s_in = ss[rank - 1], d_in = ds[rank - 1];
  for (;;) {
    if (s_in == 1 && d_in == 1)
      memcpy(dp, sp, inner * elem_size);
    else
      for (int64_t i = 0; i < inner; ++i)
        memcpy(dp + i * d_in * elem_size, sp + i * s_in * elem_size, elem_size);
    int64_t d = rank - 2;
    for (; d >= 0; --d) {
      sp += ss[d] * elem_size;
      dp += ds[d] * elem_size;
      if (++index[d] < sizes[d]) break;
      sp -= sizes[d] * ss[d] * elem_size;
      dp -= sizes[d] * ds[d] * elem_size;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}
"""

WEIGHTS_ALIGNMENT = 64
"""Byte alignment of every symbol in a weights file (and of its section)."""


@dataclass(frozen=True)
class WeightsFile:
    """The bytes of a module's external constants in one binary file, and where each one is.

    Each symbol starts at a multiple of `WEIGHTS_ALIGNMENT` bytes (zero padding in between),
    so the file is the `.rodata` contents the assembly stub makes of it.
    """

    path: Path
    symbols: tuple[tuple[str, int, int], ...]
    """(symbol, offset, size in bytes), in file order."""

    @staticmethod
    def write(path: str | os.PathLike[str], constants: Iterable[tuple[str, Any]]) -> WeightsFile:
        """Write `constants`, (symbol, data) pairs whose data is a `pconv_mlir.elements.Blob`
        or a numpy array, to `path`, straight from their memory."""
        path = Path(path)
        symbols: list[tuple[str, int, int]] = []
        offset = 0
        with open(path, "wb") as f:
            for symbol, data in constants:
                array = np.ascontiguousarray(getattr(data, "data", data)).reshape(-1)
                padding = -offset % WEIGHTS_ALIGNMENT
                f.write(bytes(padding))
                offset += padding
                f.write(memoryview(array).cast("B"))
                symbols.append((symbol, offset, array.nbytes))
                offset += array.nbytes
        return WeightsFile(path, tuple(symbols))

    @property
    def nbytes(self) -> int:
        return self.symbols[-1][1] + self.symbols[-1][2] if self.symbols else 0

    def assembly(self, incbin_path: str | None = None) -> str:
        """GNU assembler source that defines each symbol in `.rodata` with `.incbin` of its
        bytes from the file at `incbin_path` (default: this file's absolute path). The symbols
        are global but hidden: the generated code links to them, nothing outside sees them.
        clang assembles it for x86-64 and aarch64 alike."""
        source = incbin_path if incbin_path is not None else str(self.path.resolve())
        quoted = '"' + source.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines = [
            f"/* pconv-mlir weights: {len(self.symbols)} constants, {self.nbytes} bytes */",
            "\t.section .rodata",
        ]
        for symbol, offset, size in self.symbols:
            lines += [
                f"\t.p2align {WEIGHTS_ALIGNMENT.bit_length() - 1}",
                f"\t.globl {symbol}",
                f"\t.hidden {symbol}",
                f"\t.type {symbol}, %object",
                f"\t.size {symbol}, {size}",
                f"{symbol}:",
                f"\t.incbin {quoted}, {offset}, {size}",
            ]
        lines.append('\t.section .note.GNU-stack,"",%progbits')  # no executable stack
        return "\n".join(lines) + "\n"

    def copy_to(self, path: str | os.PathLike[str]) -> WeightsFile:
        """The same weights in a copy of the file at `path`."""
        shutil.copyfile(self.path, path)
        return WeightsFile(Path(path), self.symbols)


def write_weights(
    module: ModuleOp, ctx: Context, path: str | os.PathLike[str]
) -> WeightsFile | None:
    """The data of `module`'s external constants (`pconv-externalize-constants`), read from
    `ctx`, written to the binary file `path`; None (and no file) when it has none."""
    constants = external_constants(module, ctx)
    return WeightsFile.write(path, constants) if constants else None


SANITIZERS = ("address",)
"""The values `sanitize` may take besides `None`."""


def sanitize_flags(sanitize: str | None) -> list[str]:
    """clang flags for `sanitize` (`None` or `"address"`); `OptionError` for another value."""
    if sanitize is None:
        return []
    if sanitize not in SANITIZERS:
        raise OptionError(f"unknown sanitizer '{sanitize}' (choose from {', '.join(SANITIZERS)})")
    return [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]


def _needs_support(llvm_ir: str) -> bool:
    return re.search(r"^declare .*@memrefCopy\(", llvm_ir, re.MULTILINE) is not None


OMP_FUNCTIONS = frozenset(
    {
        "__kmpc_fork_call",
        "__kmpc_for_static_init_8u",
        "__kmpc_for_static_init_8",
        "__kmpc_for_static_fini",
        "__kmpc_barrier",
        "__kmpc_global_thread_num",
    }
)
"""The libomp functions `pconv_omp.c` implements."""

_OMP_CALL = re.compile(r"@(__kmpc_\w+)")
_THREADS_USE = re.compile(r"\b(__kmpc_\w+|pconv_set_num_threads|pconv_get_num_threads)\b")
_ALLOC_USE = re.compile(r"\b_mlir_memref_to_llvm_(alloc|aligned_alloc|free)\b")
"""The heap functions of `finalize-memref-to-llvm{use-generic-functions}` (`pconv_alloc.c`)."""
_PROFILE_USE = re.compile(r"\bpconv_layer_(begin|end|seconds|reset)\b")


def _runtime_file(name: str) -> str:
    return files("pconv_mlir.runtime").joinpath(name).read_text()


def runtime_sources(
    llvm_ir: str, c_sources: Iterable[str] = ()
) -> tuple[dict[str, str], list[str]]:
    """The package's C runtime files that code `llvm_ir` (with C sources `c_sources`) needs,
    by file name, and the flags they need (`-pthread`). `BuildError` for a libomp function that
    `pconv_omp.c` does not implement."""
    unsupported = sorted(set(_OMP_CALL.findall(llvm_ir)) - OMP_FUNCTIONS)
    if unsupported:
        raise BuildError(
            f"the code calls {unsupported[0]}, which pconv-mlir's OpenMP runtime "
            f"(pconv_omp.c) does not implement (it has {', '.join(sorted(OMP_FUNCTIONS))})"
        )
    texts = [llvm_ir, *c_sources]
    sources: dict[str, str] = {}
    flags: list[str] = []
    if any(_THREADS_USE.search(text) for text in texts):
        sources["pconv_omp.c"] = _runtime_file("pconv_omp.c")
        flags.append("-pthread")
    if any(_ALLOC_USE.search(text) for text in texts):
        sources["pconv_alloc.c"] = _runtime_file("pconv_alloc.c")
    if any(_PROFILE_USE.search(text) for text in texts):
        sources["pconv_profile.c"] = _runtime_file("pconv_profile.c")
    return sources, flags


_DEFINE_TAIL = re.compile(r"^(define\b.*?)((?:\s+!\w+\s+!\d+)*\s*\{)$", re.MULTILINE)
"""A function definition's line, split before its trailing metadata (`!dbg !5`) and `{`."""


def _mark_sanitized(llvm_ir: str, sanitize: str) -> str:
    """`llvm_ir` with attribute `sanitize_<sanitize>` on every function it defines."""
    attribute = f"sanitize_{sanitize}"
    return _DEFINE_TAIL.sub(lambda m: f"{m.group(1)} {attribute}{m.group(2)}", llvm_ir)


def _clang(args: list[str], out_path: Path) -> Path:
    """Run clang with `args` writing `-o` to a temporary name, then move it to `out_path`."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        run_tool("clang", [*args, "-o", str(partial)], what="clang")
        os.replace(partial, out_path)
    except ToolFailedError as e:
        raise BuildError(str(e), stderr=e.stderr) from None
    finally:
        partial.unlink(missing_ok=True)
    return out_path


def _build(
    llvm_ir: str,
    out_path: str | os.PathLike[str],
    c_sources: Mapping[str, str],
    flags: list[str],
    sanitize: str | None,
    weights: WeightsFile | None = None,
) -> Path:
    """Write the IR, the C sources and the weights' assembly stub to a temporary folder and
    build them with `flags`."""
    extra = sanitize_flags(sanitize)
    runtime, runtime_flags = runtime_sources(llvm_ir, c_sources.values())
    if sanitize is not None:
        llvm_ir = _mark_sanitized(llvm_ir, sanitize)
    sources = {"kernel.ll": llvm_ir, **c_sources, **runtime}
    extra += runtime_flags
    if _needs_support(llvm_ir):
        sources["pconv_support.c"] = SUPPORT_C
    if weights is not None and weights.symbols:
        sources["weights.s"] = weights.assembly()
    with tempfile.TemporaryDirectory(prefix="pconv-cc-") as tmp:
        paths = []
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text)
            paths.append(str(Path(tmp) / name))
        args = [*flags, *extra, "-Wno-override-module", *paths, "-lm"]
        return _clang(args, Path(out_path))


def compile_shared_library(
    llvm_ir: str,
    out_path: str | os.PathLike[str],
    machine: Machine | str,
    *,
    cpu: str | None = None,
    opt_level: int = 3,
    sanitize: str | None = None,
    weights: WeightsFile | None = None,
    c_sources: Mapping[str, str] | None = None,
) -> Path:
    """Build LLVM IR into shared library `out_path` for `machine` (a `Machine` or its name).

    `cpu` overrides the tuning (`-march` on x86-64, `-mcpu` on aarch64; by default the
    machine's: `native` on the host, `cortex-a76` for aarch64). `weights` holds the data of the
    IR's external constants, linked into the library. `c_sources` (file name -> C source) are
    compiled in too (say, the wrappers of `pconv_mlir.runtime.driver.library_source`), and so
    is the C runtime the code needs (`runtime_sources`). A library built with `sanitize` needs
    the sanitizer's runtime loaded first, so python cannot load it with ctypes. Raises
    `BuildError` with clang's first error line, `OptionError` for an unknown machine or
    sanitizer, or `ToolNotFoundError`.
    """
    flags = [*machine_named(machine).clang_flags(cpu), f"-O{opt_level}", "-fPIC", "-shared"]
    return _build(llvm_ir, out_path, dict(c_sources or {}), flags, sanitize, weights)


def compile_executable(
    llvm_ir: str,
    out_path: str | os.PathLike[str],
    *,
    driver_c: str,
    machine: Machine | str,
    cpu: str | None = None,
    opt_level: int = 3,
    static: bool = True,
    sanitize: str | None = None,
    weights: WeightsFile | None = None,
    c_sources: Mapping[str, str] | None = None,
) -> Path:
    """Build LLVM IR and the C program `driver_c` (which has `main`) into executable `out_path`.

    Linked statically when `static`, so that qemu needs no dynamic loader, except under a
    sanitizer (ASan does not support `-static`), which always links dynamically. Other
    arguments and errors as for `compile_shared_library`.
    """
    flags = [*machine_named(machine).clang_flags(cpu), f"-O{opt_level}"]
    if static and sanitize is None:
        flags.append("-static")
    sources = {**(c_sources or {}), "driver.c": driver_c}
    return _build(llvm_ir, out_path, sources, flags, sanitize, weights)

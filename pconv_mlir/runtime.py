"""Build LLVM IR into native code, call it with numpy arrays, and estimate cycles with llvm-mca.

    >>> runner = build_runner(module, target="aarch64")      # doctest: +SKIP
    >>> runner.call("saxpy", np.float32(2.0), x, y)   # fills y in place  # doctest: +SKIP

Building (clang-22, found by `pconv_mlir.toolchain`):

- `compile_shared_library`: `-O3 -fPIC -shared`, tuned with `-march=native` on the x86-64 host or
  `-mcpu=cortex-a76 --target=aarch64-unknown-linux-gnu` for aarch64 (clang finds Debian's cross
  GCC installation and libc by itself; passing `--sysroot=/usr/aarch64-linux-gnu` breaks that).
- `compile_executable`: the same, linked statically with a C driver for running under qemu.

Calling: a `Runner` knows the C signatures of the module's public functions
(`pconv_mlir.lowering.llvm.function_signatures`, the bare-pointer ABI) and `call(name, *args)`
takes, in C order, numpy arrays for buffers (inputs, and preallocated outputs that it fills in
place) and Python or numpy numbers for scalars, checks each against the signature, and returns the
scalar result or `None`.

- `HostRunner` loads a shared library with ctypes, for code built for the machine we run on.
- `QemuRunner` runs a static aarch64 executable under `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
  Its generated driver (`generate_driver`) is called as `prog FUNCTION IN OUT`: it reads every
  argument in C order from file IN (scalars as their raw bytes, buffers as their raw row-major
  bytes), calls FUNCTION, and writes every buffer argument, then the scalar result, to file OUT.
  The runner copies the buffers back into the caller's (writeable) arrays, so both runners have the
  same in-place semantics.

Support code: `memref.copy` between non-contiguous buffers (e.g. what bufferized `tensor.pad`
becomes) lowers to a call to MLIR's runtime function `memrefCopy`; `SUPPORT_C`, a small C
implementation of it, is compiled in whenever the IR declares it: no MLIR runtime library needed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from pconv_mlir.lowering.llvm import (
    ArgSpec,
    FunctionSignature,
    TargetSpec,
    function_signatures,
    lower_to_llvm_ir,
    resolve_target,
)
from pconv_mlir.toolchain import (
    AARCH64_SYSROOT,
    ToolFailedError,
    find_tool,
    first_error_line,
    run_tool,
)

__all__ = [
    "SUPPORT_C",
    "CompileError",
    "HostRunner",
    "McaReport",
    "QemuRunner",
    "RunError",
    "Runner",
    "build_runner",
    "clang_target_flags",
    "compile_executable",
    "compile_shared_library",
    "generate_driver",
    "llvm_mca_cycles",
    "llvm_mca_report",
]


class CompileError(RuntimeError):
    """clang could not build the code. The message is clang's first error line; `stderr` has all."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class RunError(RuntimeError):
    """The generated code failed while running (a signal, or the driver reported an error)."""


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------

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


def clang_target_flags(target: str = "host", cpu: str | None = None) -> list[str]:
    """clang flags that select and tune for `target`: triple plus `-mcpu` (aarch64) or `-march`."""
    spec = resolve_target(target)
    chosen = cpu or spec.default_cpu
    tune = f"-mcpu={chosen}" if spec.name == "aarch64" else f"-march={chosen}"
    return [f"--target={spec.triple}", tune]


def _needs_support(llvm_ir: str) -> bool:
    return re.search(r"^declare .*@memrefCopy\(", llvm_ir, re.MULTILINE) is not None


def _clang(args: list[str], out_path: Path, what: str) -> Path:
    """Run clang with `args` writing `-o` to a temporary name, then move it to `out_path`."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        run_tool("clang", [*args, "-o", str(partial)], what=what)
        os.replace(partial, out_path)
    except ToolFailedError as e:
        raise CompileError(str(e), stderr=e.stderr) from None
    finally:
        partial.unlink(missing_ok=True)
    return out_path


def _write_sources(
    workdir: Path, llvm_ir: str, c_sources: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Write the IR and C sources into `workdir`; return (source paths, link libraries)."""
    paths = [str(workdir / "kernel.ll")]
    (workdir / "kernel.ll").write_text(llvm_ir)
    sources = dict(c_sources)
    if _needs_support(llvm_ir):
        sources["pconv_support.c"] = SUPPORT_C
    for name, text in sources.items():
        (workdir / name).write_text(text)
        paths.append(str(workdir / name))
    return paths, ["-lm"]


def compile_shared_library(
    llvm_ir: str,
    out_path: str | os.PathLike[str],
    *,
    target: str = "host",
    cpu: str | None = None,
    opt_level: int = 3,
) -> Path:
    """Build LLVM IR into shared library `out_path` for `target` (`host`, `aarch64`, `x86_64`).

    `cpu` overrides the tuning (`-march` on x86-64, `-mcpu` on aarch64; default `native` on the
    host, `cortex-a76` for aarch64). Raises `CompileError` with clang's first error line, or
    `ToolNotFoundError`. The output file appears only when the build succeeded.
    """
    with tempfile.TemporaryDirectory(prefix="pconv-cc-") as tmp:
        sources, libs = _write_sources(Path(tmp), llvm_ir, {})
        args = [
            *clang_target_flags(target, cpu),
            f"-O{opt_level}",
            "-fPIC",
            "-shared",
            "-Wno-override-module",
            *sources,
            *libs,
        ]
        return _clang(args, Path(out_path), "clang")


def compile_executable(
    llvm_ir: str,
    out_path: str | os.PathLike[str],
    *,
    driver_c: str,
    target: str = "aarch64",
    cpu: str | None = None,
    opt_level: int = 3,
    static: bool = True,
) -> Path:
    """Build LLVM IR and the C program `driver_c` (which has `main`) into executable `out_path`.

    Linked statically by default, so that qemu needs no dynamic loader. Errors as for
    `compile_shared_library`.
    """
    with tempfile.TemporaryDirectory(prefix="pconv-cc-") as tmp:
        sources, libs = _write_sources(Path(tmp), llvm_ir, {"driver.c": driver_c})
        args = [
            *clang_target_flags(target, cpu),
            f"-O{opt_level}",
            *(["-static"] if static else []),
            "-Wno-override-module",
            *sources,
            *libs,
        ]
        return _clang(args, Path(out_path), "clang")


# ------------------------------------------------------------------------------------------------
# The C driver for running under qemu
# ------------------------------------------------------------------------------------------------

_C_TYPES = {
    "float16": "_Float16",
    "float32": "float",
    "float64": "double",
    "bool": "_Bool",
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
}

_RESERVED = {"main"}
"""Entry points whose symbol would clash with the driver's own; renamed in the executable."""


def _driver_symbol(name: str) -> str:
    return f"pconv_entry_{name}" if name in _RESERVED else name


def _rename_reserved(llvm_ir: str, names: Sequence[str]) -> str:
    for name in names:
        if name in _RESERVED:
            llvm_ir = re.sub(rf"@{re.escape(name)}(?![-\w$.])", f"@{_driver_symbol(name)}", llvm_ir)
    return llvm_ir


def _nbytes(spec: ArgSpec) -> int:
    count = 1
    for dim in spec.shape or ():
        count *= dim
    return count * np.dtype(spec.dtype).itemsize


def generate_driver(signatures: Mapping[str, FunctionSignature]) -> str:
    """C source of a `main` that runs one of `signatures` by name (protocol in the module doc)."""
    out = [
        "#include <stdint.h>",
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "#include <string.h>",
        "",
        "static void *read_buffer(FILE *f, size_t n, const char *what) {",
        "  size_t padded = (n + 63) / 64 * 64 + 64;",
        "  char *p = aligned_alloc(64, padded);",
        '  if (!p) { fprintf(stderr, "error: cannot allocate %zu bytes for %s\\n", n, what);'
        " exit(3); }",
        "  if (n && fread(p, 1, n, f) != n) {",
        '    fprintf(stderr, "error: input ended before %s\\n", what); exit(3); }',
        "  return p;",
        "}",
        "",
        "static void write_bytes(FILE *f, const void *p, size_t n) {",
        "  if (n && fwrite(p, 1, n, f) != n) {",
        '    fprintf(stderr, "error: cannot write the output\\n"); exit(3); }',
        "}",
        "",
    ]
    for sig in signatures.values():
        c_args = ["void *" if arg.is_buffer else _C_TYPES[arg.dtype] for arg in sig.args]
        c_result = _C_TYPES[sig.result.dtype] if sig.result else "void"
        symbol = _driver_symbol(sig.name)
        out.append(f"extern {c_result} {symbol}({', '.join(c_args) or 'void'});")
        out.append(f"static void run_{sig.name}(FILE *in, FILE *out) {{")
        for i, arg in enumerate(sig.args):
            what = f'"argument {i} of {sig.name}"'
            if arg.is_buffer:
                out.append(f"  void *a{i} = read_buffer(in, {_nbytes(arg)}u, {what});")
            else:
                ctype = _C_TYPES[arg.dtype]
                out.append(f"  {ctype} a{i};")
                out.append(f"  if (fread(&a{i}, sizeof a{i}, 1, in) != 1) {{")
                out.append(f'    fprintf(stderr, "error: input ended before %s\\n", {what});')
                out.append("    exit(3); }")
        call = f"{symbol}({', '.join(f'a{i}' for i in range(len(sig.args)))})"
        if sig.result:
            out.append(f"  {c_result} r = {call};")
        else:
            out.append(f"  {call};")
        for i, arg in enumerate(sig.args):
            if arg.is_buffer:
                out.append(f"  write_bytes(out, a{i}, {_nbytes(arg)}u);")
                out.append(f"  free(a{i});")
        if sig.result:
            out.append("  write_bytes(out, &r, sizeof r);")
        out.append("}")
        out.append("")
    out += [
        "int main(int argc, char **argv) {",
        "  if (argc != 4) {",
        '    fprintf(stderr, "usage: %s FUNCTION INPUT OUTPUT\\n", argv[0]); return 2; }',
        '  FILE *in = fopen(argv[2], "rb");',
        '  if (!in) { fprintf(stderr, "error: cannot open %s\\n", argv[2]); return 2; }',
        '  FILE *out = fopen(argv[3], "wb");',
        '  if (!out) { fprintf(stderr, "error: cannot open %s\\n", argv[3]); return 2; }',
    ]
    for i, sig in enumerate(signatures.values()):
        keyword = "if" if i == 0 else "else if"
        out.append(f'  {keyword} (strcmp(argv[1], "{sig.name}") == 0) run_{sig.name}(in, out);')
    out += [
        "  else {",
        '    fprintf(stderr, "error: no function %s\\n", argv[1]); return 2; }',
        "  fclose(in);",
        "  if (fclose(out) != 0) {",
        '    fprintf(stderr, "error: cannot write %s\\n", argv[3]); return 3; }',
        "  return 0;",
        "}",
        "",
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Runners
# ------------------------------------------------------------------------------------------------


class Runner(ABC):
    """Calls the functions of one compiled module with numpy arrays.

    `call(name, *args)` takes the C arguments in order (see `FunctionSignature`): numpy arrays of
    exactly the declared dtype and shape, C-contiguous, for buffers (outputs are filled in place
    and must be writeable), numbers for scalars. It returns the scalar result or `None`.
    """

    def __init__(
        self,
        signatures: Mapping[str, FunctionSignature],
        cleanup: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.signatures = dict(signatures)
        self._cleanup = cleanup
        """The temporary directory holding the compiled code, removed by `close()`."""

    def call(self, name: str, *args: Any) -> Any:
        if name not in self.signatures:
            raise KeyError(
                f"no function @{name} (available: {', '.join(sorted(self.signatures)) or 'none'})"
            )
        sig = self.signatures[name]
        return self._call(sig, _check_args(sig, args))

    @abstractmethod
    def _call(self, sig: FunctionSignature, args: list[Any]) -> Any: ...

    def close(self) -> None:
        """Remove the temporary directory of the compiled code, if the runner owns one."""
        if self._cleanup is not None:
            self._cleanup.cleanup()
            self._cleanup = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_args(sig: FunctionSignature, args: Sequence[Any]) -> list[Any]:
    """`args` checked against `sig`: arrays as they are, scalars converted to numpy scalars."""
    if len(args) != len(sig.args):
        raise TypeError(f"@{sig.name} takes {len(sig.args)} arguments, got {len(args)}")
    checked: list[Any] = []
    for i, (spec, value) in enumerate(zip(sig.args, args, strict=True)):
        where = f"argument {i} of @{sig.name}"
        if spec.is_buffer:
            expected = f"a {spec.dtype} array of shape {spec.shape}"
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{where}: expected {expected}, got {type(value).__name__}")
            if value.dtype != np.dtype(spec.dtype) or value.shape != spec.shape:
                raise TypeError(
                    f"{where}: expected {expected}, got a {value.dtype} array of shape "
                    f"{value.shape}"
                )
            if not value.flags.c_contiguous:
                raise ValueError(f"{where}: array must be C-contiguous (np.ascontiguousarray)")
            if spec.is_out_param and not value.flags.writeable:
                raise ValueError(f"{where}: output array must be writeable")
            checked.append(value)
        else:
            if isinstance(value, np.ndarray) and value.shape != ():
                raise TypeError(f"{where}: expected a {spec.dtype} scalar, got an array")
            checked.append(np.dtype(spec.dtype).type(value))
    return checked


_CTYPES: dict[str, Any] = {
    "float32": ctypes.c_float,
    "float64": ctypes.c_double,
    "bool": ctypes.c_bool,
    "int8": ctypes.c_int8,
    "int16": ctypes.c_int16,
    "int32": ctypes.c_int32,
    "int64": ctypes.c_int64,
}


def _ctype(spec: ArgSpec, where: str) -> Any:
    if spec.is_buffer:
        return ctypes.c_void_p
    if spec.dtype not in _CTYPES:
        raise TypeError(f"{where}: ctypes cannot pass a {spec.dtype} scalar")
    return _CTYPES[spec.dtype]


class HostRunner(Runner):
    """Calls functions of a shared library built for this machine, through ctypes."""

    def __init__(
        self,
        library: str | os.PathLike[str],
        signatures: Mapping[str, FunctionSignature],
        *,
        cleanup: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        super().__init__(signatures, cleanup)
        self.library_path = Path(library)
        self._library = ctypes.CDLL(str(self.library_path))
        self._functions: dict[str, Any] = {}

    def _function(self, sig: FunctionSignature) -> Any:
        if sig.name not in self._functions:
            fn = getattr(self._library, sig.name)
            fn.argtypes = [
                _ctype(a, f"argument {i} of @{sig.name}") for i, a in enumerate(sig.args)
            ]
            fn.restype = _ctype(sig.result, f"result of @{sig.name}") if sig.result else None
            self._functions[sig.name] = fn
        return self._functions[sig.name]

    def _call(self, sig: FunctionSignature, args: list[Any]) -> Any:
        fn = self._function(sig)
        c_args = [a.ctypes.data if isinstance(a, np.ndarray) else a.item() for a in args]
        result = fn(*c_args)
        return np.dtype(sig.result.dtype).type(result) if sig.result else None

    def close(self) -> None:
        self._functions.clear()
        super().close()


class QemuRunner(Runner):
    """Runs functions of a static aarch64 executable (with `generate_driver`'s main) under qemu."""

    def __init__(
        self,
        executable: str | os.PathLike[str],
        signatures: Mapping[str, FunctionSignature],
        *,
        timeout: float = 600.0,
        cleanup: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        super().__init__(signatures, cleanup)
        self.executable = Path(executable)
        self.timeout = timeout
        self._qemu = find_tool("qemu-aarch64")

    def _call(self, sig: FunctionSignature, args: list[Any]) -> Any:
        with tempfile.TemporaryDirectory(prefix="pconv-qemu-") as tmp:
            in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            with open(in_path, "wb") as f:
                for value in args:
                    f.write(value.tobytes())
            command = [self._qemu, "-L", AARCH64_SYSROOT, str(self.executable), sig.name]
            try:
                done = subprocess.run(
                    [*command, str(in_path), str(out_path)],
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                )
            except subprocess.TimeoutExpired:
                raise RunError(
                    f"@{sig.name} under qemu: timed out after {self.timeout} s"
                ) from None
            if done.returncode != 0:
                if done.returncode < 0:
                    reason = f"killed by {signal.Signals(-done.returncode).name}"
                else:
                    reason = first_error_line(done.stderr)
                raise RunError(f"@{sig.name} under qemu failed: {reason}")
            data = out_path.read_bytes()
        offset = 0
        for spec, value in zip(sig.args, args, strict=True):
            if not spec.is_buffer:
                continue
            n = value.nbytes
            if value.flags.writeable:
                value[...] = np.frombuffer(data, value.dtype, value.size, offset).reshape(
                    value.shape
                )
            offset += n
        if sig.result:
            return np.frombuffer(data, np.dtype(sig.result.dtype), 1, offset)[0]
        return None


def _runs_natively(spec: TargetSpec) -> bool:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine) == spec.name


def build_runner(
    module: ModuleOp,
    *,
    target: str = "host",
    cpu: str | None = None,
    opt_level: int = 3,
    workdir: str | os.PathLike[str] | None = None,
) -> Runner:
    """Lower, compile and load `module` for `target`; a `Runner` to call its public functions.

    Code for this machine's architecture is loaded with ctypes (`HostRunner`); aarch64 code on
    another machine runs under qemu (`QemuRunner`). Files go to `workdir`, else to a temporary
    directory that `Runner.close()` removes.
    """
    signatures = function_signatures(module)
    llvm_ir = lower_to_llvm_ir(module, target=target, opt_level=opt_level)
    return build_runner_from_ir(
        llvm_ir, signatures, target=target, cpu=cpu, opt_level=opt_level, workdir=workdir
    )


def build_runner_from_ir(
    llvm_ir: str,
    signatures: Mapping[str, FunctionSignature],
    *,
    target: str = "host",
    cpu: str | None = None,
    opt_level: int = 3,
    workdir: str | os.PathLike[str] | None = None,
) -> Runner:
    """Compile LLVM IR whose functions have `signatures` and load it (see `build_runner`)."""
    spec = resolve_target(target)
    cleanup = None
    if workdir is None:
        cleanup = tempfile.TemporaryDirectory(prefix="pconv-run-")
        workdir = cleanup.name
    folder = Path(workdir)
    try:
        if _runs_natively(spec):
            library = compile_shared_library(
                llvm_ir, folder / "kernel.so", target=target, cpu=cpu, opt_level=opt_level
            )
            return HostRunner(library, signatures, cleanup=cleanup)
        if spec.name != "aarch64":
            raise RunError(f"cannot run {spec.name} code on this {platform.machine()} machine")
        find_tool("qemu-aarch64")
        executable = compile_executable(
            _rename_reserved(llvm_ir, list(signatures)),
            folder / "kernel.exe",
            driver_c=generate_driver(signatures),
            target=target,
            cpu=cpu,
            opt_level=opt_level,
        )
        return QemuRunner(executable, signatures, cleanup=cleanup)
    except BaseException:
        if cleanup is not None:
            cleanup.cleanup()
        raise


# ------------------------------------------------------------------------------------------------
# llvm-mca
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McaReport:
    """What llvm-mca-22 says about one block of code repeated `iterations` times."""

    total_cycles: int
    instructions: int
    """Instructions simulated (block length x iterations)."""
    iterations: int
    block_rthroughput: float
    """Reciprocal throughput of one iteration of the block, in cycles."""
    assembly: str
    """The instructions given to llvm-mca."""


def _function_lines(asm: str, function: str | None) -> list[str]:
    """The lines of `function`'s body in clang's assembly (by default, of the only function)."""
    names = re.findall(r"^([\w.$]+):[^\n]*// @|^([\w.$]+):[^\n]*# @", asm, re.MULTILINE)
    defined = [a or b for a, b in names]
    if function is None:
        if len(defined) != 1:
            raise ValueError(f"say which function to analyse: found {', '.join(defined) or 'none'}")
        function = defined[0]
    lines = asm.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(rf"^{re.escape(function)}:", line)), None
    )
    if start is None:
        raise ValueError(f"no function '{function}' in the assembly")
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith(".Lfunc_end") or line.startswith(".size"):
            break
        body.append(line)
    return body


def _instructions(lines: Sequence[str], comment: str) -> list[str]:
    kept = []
    for line in lines:
        text = line.split(comment, 1)[0].strip()
        if text and not text.startswith(".") and not text.endswith(":"):
            kept.append(text)
    return kept


def _innermost_loops(lines: Sequence[str]) -> dict[str, list[str]]:
    """Innermost loops in clang's verbose assembly: loop header name -> the lines of its blocks.

    clang comments the header of an innermost loop with `=> This Inner Loop Header`, and every
    other block in a loop with `in Loop: Header=BBx_y`, naming the innermost loop holding it. The
    comment is on the block's label line or on the comment-only lines right after it.
    """
    blocks: list[tuple[list[str], list[str]]] = []  # (label and leading comment lines, body)
    for line in lines:
        if re.match(r"^\.LBB\w+:", line) or re.match(r"^\s*(//|#) %bb\.\d+:", line):
            blocks.append(([line], []))
        elif blocks:
            head, body = blocks[-1]
            if not body and re.match(r"^\s*(//|#)", line):
                head.append(line)
            else:
                body.append(line)
    membership: list[tuple[str | None, list[str]]] = []
    innermost: set[str] = set()
    for head, body in blocks:
        comment = " ".join(head)
        label = re.match(r"^\.L(BB\w+):", head[0])
        header = None
        if label and re.search(r"=>\s*This Inner Loop Header", comment):
            header = label.group(1)
            innermost.add(header)
        elif member := re.search(r"in Loop: Header=(BB\w+)", comment):
            header = member.group(1)
        membership.append((header, body))
    loops: dict[str, list[str]] = {}
    for header, body in membership:
        if header in innermost:
            loops.setdefault(header, []).extend(body)
    return loops


def llvm_mca_report(
    code: str,
    *,
    function: str | None = None,
    region: str = "innermost-loop",
    target: str = "aarch64",
    cpu: str | None = None,
    iterations: int = 100,
    opt_level: int = 3,
    hot: str | None = None,
) -> McaReport:
    """Run llvm-mca-22 on one region of `function` in `code` (LLVM IR, or assembly from clang -S).

    `hot`, a regex, picks the innermost loop with the most instructions matching it (for
    example `fmla` for the multiply-add loop of a convolution) instead of the longest one.

    LLVM IR is first compiled to assembly by clang-22 for `target`/`cpu` at `opt_level`.
    `region` is `innermost-loop` (the innermost loop with the most instructions, as llvm-mca
    sees it: the steady state of the hot loop, `iterations` times; the whole function if it has
    no loop) or `function` (every instruction of the function as one straight-line block).
    `cpu` defaults to the target's (`cortex-a76` for aarch64).
    """
    spec = resolve_target(target)
    mcpu = cpu or spec.default_cpu
    if re.search(r"^define ", code, re.MULTILINE):
        code = run_tool(
            "clang",
            [*clang_target_flags(target, cpu), f"-O{opt_level}", "-S", "-x", "ir", "-", "-o", "-"],
            code,
            what="clang -S",
        )
    comment = "//" if spec.name == "aarch64" else "#"
    body = _function_lines(code, function)
    block = body
    if region == "innermost-loop":
        loops = _innermost_loops(body)
        if loops:

            def weight(ls: list[str]) -> tuple[int, int]:
                found = _instructions(ls, comment)
                matching = sum(bool(re.search(hot, i)) for i in found) if hot else 0
                return (matching, len(found))

            block = max(loops.values(), key=weight)
    elif region != "function":
        raise ValueError(f"region must be 'innermost-loop' or 'function', not '{region}'")
    instructions = _instructions(block, comment)
    if not instructions:
        raise ValueError("the region to analyse has no instructions")
    assembly = "\n".join(instructions) + "\n"
    try:
        report = run_tool(
            "llvm-mca",
            [f"-mtriple={spec.triple}", f"-mcpu={mcpu}", f"-iterations={iterations}"],
            assembly,
            what="llvm-mca",
        )
    except ToolFailedError as e:
        raise CompileError(str(e), stderr=e.stderr) from None

    def number(key: str) -> str:
        found = re.search(rf"^{key}:\s*([\d.]+)", report, re.MULTILINE)
        if found is None:
            raise CompileError(f"llvm-mca printed no '{key}'")
        return found.group(1)

    return McaReport(
        total_cycles=int(number("Total Cycles")),
        instructions=int(number("Instructions")),
        iterations=int(number("Iterations")),
        block_rthroughput=float(number("Block RThroughput")),
        assembly=assembly,
    )


def llvm_mca_cycles(
    code: str,
    *,
    function: str | None = None,
    region: str = "innermost-loop",
    cpu: str | None = None,
    target: str = "aarch64",
    iterations: int = 100,
    opt_level: int = 3,
) -> int:
    """llvm-mca-22's total cycle estimate for `iterations` runs of a region of `function`.

    The tuner's cost figure for aarch64: lower is better, and only comparable between calls with
    the same `iterations`, `region` and `cpu`. `cpu` defaults to the target's, `cortex-a76` for
    aarch64. See `llvm_mca_report` for the other arguments.
    """
    return llvm_mca_report(
        code,
        function=function,
        region=region,
        target=target,
        cpu=cpu,
        iterations=iterations,
        opt_level=opt_level,
    ).total_cycles

"""Call the functions of a compiled module with numpy arrays: in-process, or through a driver.

    >>> runner = build_runner(module, ctx, target="aarch64")   # doctest: +SKIP
    >>> runner.call("saxpy", np.float32(2.0), x, y)   # fills y in place  # doctest: +SKIP

A `Runner` knows the C signatures of the module's public functions
(`pconv_mlir.lowering.llvm.function_signatures`, the bare-pointer ABI) and `call(name, *args)`
takes, in C order, numpy arrays for buffers (inputs, and preallocated outputs that it fills in
place) and Python or numpy numbers for scalars, checks each against the signature, and returns the
scalar result or `None`.

- `HostRunner` loads a shared library with ctypes, for code built for the machine we run on.
- `ExecutableRunner` runs an executable with the driver of `pconv_mlir.runtime.driver`, behind an
  optional launcher: it writes the arguments to a file, runs `[*launcher, exe, NAME, IN, OUT]`,
  and copies the buffers back into the caller's (writeable) arrays, so every runner has the same
  in-place semantics. A non-zero exit or a signal raises `RunError`.
- `QemuRunner` is the `ExecutableRunner` of a static aarch64 executable under
  `qemu-aarch64 -L /usr/aarch64-linux-gnu`.

`build_runner(module, ctx, target=...)` lowers, builds and loads in one step: ctypes for this
machine's architecture, qemu for aarch64 elsewhere. With `sanitize="address"` it builds the
driver under AddressSanitizer and runs it natively (a library with ASan cannot be loaded into
python): any invalid access then fails the call with a `RunError` that quotes ASan's first
error line.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from pconv_mlir.elements import SCALARS
from pconv_mlir.errors import OptionError, RunError, first_error_line
from pconv_mlir.ir import default_context
from pconv_mlir.lowering.llvm import (
    ArgSpec,
    FunctionSignature,
    function_signatures,
    lower_to_llvm_ir,
)
from pconv_mlir.machine import Machine
from pconv_mlir.machine import machine as machine_named
from pconv_mlir.runtime.build import (
    WeightsFile,
    compile_executable,
    compile_shared_library,
    sanitize_flags,
    write_weights,
)
from pconv_mlir.runtime.driver import generate_driver, rename_reserved
from pconv_mlir.toolchain import AARCH64_SYSROOT, find_tool

__all__ = [
    "ASAN_OPTIONS",
    "ExecutableRunner",
    "HostRunner",
    "QemuRunner",
    "Runner",
    "build_runner",
    "build_runner_from_ir",
]

ASAN_OPTIONS = "halt_on_error=1:abort_on_error=0:exitcode=1:detect_leaks=1:print_summary=1"
"""How a driver built with `sanitize="address"` runs: stop at the first error (a leak
included) and exit with status 1, whatever `ASAN_OPTIONS` the caller's environment holds."""


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
        """Call function `name` with `args` (checked against its signature); its scalar result."""
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


# ------------------------------------------------------------------------------------------------
# In-process, through ctypes
# ------------------------------------------------------------------------------------------------


def _ctype(spec: ArgSpec, where: str) -> Any:
    if spec.is_buffer:
        return ctypes.c_void_p
    ctype = SCALARS[spec.dtype].ctypes
    if ctype is None:
        raise TypeError(f"{where}: ctypes cannot pass a {spec.dtype} scalar")
    return ctype


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

    def c_function(self, name: str, restype: Any, argtypes: Sequence[Any]) -> Any:
        """The library's exported C function `name` as a ctypes function with these types
        (for entry points outside the signatures: `<name>_set_threads`, the profiler's)."""
        try:
            fn = getattr(self._library, name)
        except AttributeError:
            raise RunError(f"{self.library_path.name} exports no function {name}") from None
        fn.restype, fn.argtypes = restype, list(argtypes)
        return fn

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


# ------------------------------------------------------------------------------------------------
# Out of process, through the driver
# ------------------------------------------------------------------------------------------------


class ExecutableRunner(Runner):
    """Runs functions of an executable with `generate_driver`'s `main`, one process per call.

    `launcher` prefixes the command (an emulator; empty for a native executable), `env` is
    added to this process's environment, and `description` says how the code runs in error
    messages: `@conv under qemu failed: killed by SIGSEGV`.
    """

    def __init__(
        self,
        executable: str | os.PathLike[str],
        signatures: Mapping[str, FunctionSignature],
        *,
        launcher: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        description: str = "natively",
        timeout: float = 600.0,
        cleanup: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        super().__init__(signatures, cleanup)
        self.executable = Path(executable)
        self.launcher = list(launcher)
        self.env = dict(env or {})
        self.description = description
        self.timeout = timeout

    def _run(self, sig: FunctionSignature, in_path: Path, out_path: Path) -> None:
        """Run the executable on one call's files; `RunError` unless it exits with status 0."""
        command = [*self.launcher, str(self.executable), sig.name, str(in_path), str(out_path)]
        where = f"@{sig.name} {self.description}"
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env={**os.environ, **self.env},
            )
        except subprocess.TimeoutExpired:
            raise RunError(f"{where}: timed out after {self.timeout} s") from None
        if done.returncode < 0:
            raise RunError(f"{where} failed: killed by {signal.Signals(-done.returncode).name}")
        if done.returncode != 0:
            raise RunError(f"{where} failed: {first_error_line(done.stderr)}")

    def _call(self, sig: FunctionSignature, args: list[Any]) -> Any:
        with tempfile.TemporaryDirectory(prefix="pconv-run-call-") as tmp:
            in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            with open(in_path, "wb") as f:
                for value in args:
                    f.write(value.tobytes())
            self._run(sig, in_path, out_path)
            data = out_path.read_bytes()
        offset = 0
        for spec, value in zip(sig.args, args, strict=True):
            if not spec.is_buffer:
                continue
            if value.flags.writeable:
                value[...] = np.frombuffer(data, value.dtype, value.size, offset).reshape(
                    value.shape
                )
            offset += value.nbytes
        if sig.result:
            return np.frombuffer(data, np.dtype(sig.result.dtype), 1, offset)[0]
        return None


class QemuRunner(ExecutableRunner):
    """Runs functions of a static aarch64 executable (with `generate_driver`'s main) under qemu.

    Takes the options of `ExecutableRunner` (`env`, `timeout`, `cleanup`) but the launcher.
    """

    def __init__(self, executable: str | os.PathLike[str], *args: Any, **options: Any) -> None:
        launcher = [find_tool("qemu-aarch64"), "-L", AARCH64_SYSROOT]
        super().__init__(executable, *args, launcher=launcher, description="under qemu", **options)


# ------------------------------------------------------------------------------------------------
# Lower, build and load
# ------------------------------------------------------------------------------------------------


def _runnable_machine(target: Machine | str, sanitize: str | None) -> Machine:
    """`target` as a `Machine`, checked to run here (natively, or aarch64 under qemu) with
    `sanitize`: `OptionError` for a bad machine or sanitizer, `RunError` for foreign code."""
    spec = machine_named(target)
    sanitize_flags(sanitize)
    if sanitize is not None and not spec.is_host:
        raise OptionError(
            f"sanitize='{sanitize}' needs code that runs natively, not {spec.name} code "
            f"on this {platform.machine()} machine"
        )
    if not spec.is_host and spec.name != "aarch64":
        raise RunError(f"cannot run {spec.name} code on this {platform.machine()} machine")
    return spec


def build_runner(
    module: ModuleOp,
    ctx: Context | None = None,
    *,
    target: Machine | str = "host",
    cpu: str | None = None,
    opt_level: int = 3,
    workdir: str | os.PathLike[str] | None = None,
    sanitize: str | None = None,
) -> Runner:
    """Lower, compile and load `module` for `target`; a `Runner` to call its public functions.

    `ctx` holds the module's `dense_resource` blobs; the data of the constants that
    `pconv-externalize-constants` took out of the IR is linked in from a weights file. See
    `build_runner_from_ir` for the rest.
    """
    _runnable_machine(target, sanitize)  # bad options fail before the module is lowered
    signatures = function_signatures(module)
    llvm_ir = lower_to_llvm_ir(module, ctx, target, opt_level=opt_level)
    with tempfile.TemporaryDirectory(prefix="pconv-weights-") as tmp:  # linked in: then unused
        weights = write_weights(module, default_context() if ctx is None else ctx, tmp + "/w.bin")
        return build_runner_from_ir(
            llvm_ir,
            signatures,
            target=target,
            cpu=cpu,
            opt_level=opt_level,
            workdir=workdir,
            sanitize=sanitize,
            weights=weights,
        )


def build_runner_from_ir(
    llvm_ir: str,
    signatures: Mapping[str, FunctionSignature],
    *,
    target: Machine | str = "host",
    cpu: str | None = None,
    opt_level: int = 3,
    workdir: str | os.PathLike[str] | None = None,
    sanitize: str | None = None,
    weights: WeightsFile | None = None,
    c_sources: Mapping[str, str] | None = None,
) -> Runner:
    """Compile LLVM IR whose functions have `signatures` and load it.

    Code for this machine's architecture is loaded with ctypes (`HostRunner`); aarch64 code on
    another machine runs under qemu (`QemuRunner`). With `sanitize="address"` the code must run
    natively: it is linked with the driver under AddressSanitizer and run as an
    `ExecutableRunner` with `ASAN_OPTIONS`. `weights` holds the data of the IR's external
    constants, linked into the library or executable (the file is not needed afterwards);
    `c_sources` (file name -> C source) are compiled in too. The code's parallel loops run on
    `PCONV_NUM_THREADS` threads (the environment's; an `ExecutableRunner` passes its `env`),
    else on the machine's cores. Files go to `workdir`, else to a temporary directory that
    `Runner.close()` removes.
    """
    spec = _runnable_machine(target, sanitize)
    cleanup = None
    if workdir is None:
        cleanup = tempfile.TemporaryDirectory(prefix="pconv-run-")
        workdir = cleanup.name
    folder = Path(workdir)
    try:
        if spec.is_host and sanitize is None:
            library = compile_shared_library(
                llvm_ir,
                folder / "kernel.so",
                spec,
                cpu=cpu,
                opt_level=opt_level,
                weights=weights,
                c_sources=c_sources,
            )
            return HostRunner(library, signatures, cleanup=cleanup)
        if not spec.is_host:
            find_tool("qemu-aarch64")  # a missing qemu fails before the build
        executable = compile_executable(
            rename_reserved(llvm_ir, signatures),
            folder / ("kernel-asan.exe" if sanitize else "kernel.exe"),
            driver_c=generate_driver(signatures),
            machine=spec,
            cpu=cpu,
            opt_level=opt_level,
            sanitize=sanitize,
            weights=weights,
            c_sources=c_sources,
        )
        if not spec.is_host:
            return QemuRunner(executable, signatures, cleanup=cleanup)
        return ExecutableRunner(
            executable,
            signatures,
            env={"ASAN_OPTIONS": ASAN_OPTIONS},
            description="under AddressSanitizer",
            cleanup=cleanup,
        )
    except BaseException:
        if cleanup is not None:
            cleanup.cleanup()
        raise

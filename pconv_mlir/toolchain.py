"""Discovery of the external LLVM/MLIR tools that pconv-mlir drives.

Debian installs LLVM 22 with a version suffix (`mlir-opt-22`, `clang-22`, ...). This module is
the one place that knows those names: everything else asks for a tool by its plain name.

    >>> find_tool("mlir-opt")          # doctest: +SKIP
    '/usr/bin/mlir-opt-22'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

from pconv_mlir.errors import ToolFailedError, ToolNotFoundError

LLVM_VERSION = 22
"""The LLVM/MLIR major version the generated IR is written for."""

# Tools whose names carry the LLVM version suffix on Debian, and others with a fixed name.
_VERSIONED = {
    "mlir-opt",
    "mlir-translate",
    "mlir-runner",
    "clang",
    "llc",
    "opt",
    "llvm-mca",
    "ld.lld",
    "lld",
    "llvm-objdump",
}
_FIXED = {
    "llvm-spirv": ["llvm-spirv-15", "llvm-spirv"],
    "spirv-val": ["spirv-val"],
    "spirv-dis": ["spirv-dis"],
    "qemu-aarch64": ["qemu-aarch64", "qemu-aarch64-static"],
    "aarch64-linux-gnu-gcc": ["aarch64-linux-gnu-gcc"],
}

AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
"""Where Debian's libc6-dev-arm64-cross puts the aarch64 C library (for qemu's `-L`)."""


def candidates(name: str) -> list[str]:
    """The executable names tried, in order, for the tool called `name`."""
    if name in _VERSIONED:
        return [f"{name}-{LLVM_VERSION}", name]
    return _FIXED.get(name, [name])


@cache
def find_tool(name: str) -> str:
    """The absolute path of tool `name`, or `ToolNotFoundError` naming what to install.

    An environment variable `PCONV_<NAME>` (upper case, `-` and `.` as `_`) overrides the search.
    """
    override = os.environ.get("PCONV_" + name.upper().replace("-", "_").replace(".", "_"))
    if override:
        return override
    for candidate in candidates(name):
        path = shutil.which(candidate)
        if path is not None:
            return path
    raise ToolNotFoundError(
        f"'{name}' not found (looked for {', '.join(candidates(name))}); run `make setup`"
    )


def tool_available(name: str) -> bool:
    """Whether tool `name` is installed."""
    try:
        find_tool(name)
    except ToolNotFoundError:
        return False
    return True


def configure_xdsl() -> None:
    """Point xDSL's `mlir-opt` pass at the versioned binary, unless the user chose one."""
    if "XDSL_MLIR_OPT" not in os.environ and tool_available("mlir-opt"):
        os.environ["XDSL_MLIR_OPT"] = find_tool("mlir-opt")


def run_tool(
    name: str,
    args: list[str],
    input_text: str | None = None,
    *,
    what: str | None = None,
    timeout: float | None = None,
) -> str:
    """Run tool `name` (found by `find_tool`) with `args` and `input_text`; return its stdout.

    A missing tool raises `ToolNotFoundError`; a non-zero exit, or a run longer than `timeout`
    seconds, raises `ToolFailedError` (naming `what`, by default `name`).
    """
    executable = find_tool(name)
    try:
        completed = subprocess.run(
            [executable, *args], input=input_text, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as e:
        raise ToolNotFoundError(f"'{name}' could not be run ({executable}): {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ToolFailedError(
            what or name, f"error: timed out after {timeout} s", input_text=input_text or ""
        ) from None
    if completed.returncode != 0:
        raise ToolFailedError(what or name, completed.stderr, input_text=input_text or "")
    return completed.stdout

"""What the generated code costs in instruction bytes and register spills, from the object file.

    >>> code_statistics(llvm_ir)                          # doctest: +SKIP
    CodeStats(code_bytes=5376, spills=13, reloads=12, folded_reloads=3)

`code_statistics` compiles LLVM IR to an object file with clang-22 for a machine (the host by
default), exactly as the builds do (`-O3`, the machine's `-march`/`-mcpu`), and reads two
things back: the bytes of code of every function (`llvm-objdump-22 --syms`: the sizes of the
function symbols, outlined parallel bodies included) and the register allocator's spills and
reloads (clang's optimization record, `-fsave-optimization-record`: the `regalloc` pass's
`SpillReloadCopies` remark of each function). Code larger than the instruction cache and spills
in the kernel loops are what cap a fully unrolled generator; issue 10's benchmark reports them
per layer. Failures raise `pconv_mlir.errors.BuildError`.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pconv_mlir.errors import BuildError, ToolFailedError
from pconv_mlir.machine import Machine
from pconv_mlir.machine import machine as machine_named
from pconv_mlir.toolchain import run_tool

__all__ = ["CodeStats", "code_statistics"]


@dataclass(frozen=True)
class CodeStats:
    """Code bytes and register-allocation figures of one object file, summed over functions."""

    code_bytes: int
    spills: int
    reloads: int
    folded_reloads: int
    """Reloads folded into an instruction's memory operand (no separate load)."""
    functions: dict[str, int]
    """Code bytes by function."""


_REMARK = re.compile(r"^--- !(\w+)$")
_FIELD = re.compile(r"^\s*(?:- )?(\w+):\s+'?([^']*)'?\s*$")


def _spill_remarks(record: str) -> tuple[int, int, int]:
    """(spills, reloads, folded reloads) summed over the function-level `SpillReloadCopies`
    remarks of an optimization record (YAML documents, one per remark)."""
    totals = {"NumSpills": 0, "NumReloads": 0, "NumFoldedReloads": 0}
    current: dict[str, str] = {}

    def flush() -> None:
        if current.get("Pass") == "regalloc" and current.get("Name") == "SpillReloadCopies":
            for key in totals:
                totals[key] += int(current.get(key, "0"))

    for line in record.splitlines():
        if _REMARK.match(line):
            flush()
            current = {}
            continue
        match = _FIELD.match(line)
        if match and match.group(1) not in current:
            current[match.group(1)] = match.group(2)
    flush()
    return totals["NumSpills"], totals["NumReloads"], totals["NumFoldedReloads"]


def _function_sizes(symbols: str) -> dict[str, int]:
    """Code bytes by function from `llvm-objdump --syms` (`F .text` entries)."""
    sizes = {}
    for line in symbols.splitlines():
        parts = line.split()  # address, flags..., F, section, size, name
        if len(parts) >= 5 and parts[-3] == ".text" and parts[-4] == "F":
            sizes[parts[-1]] = int(parts[-2], 16)
    return sizes


def code_statistics(
    llvm_ir: str, machine: str | Machine = "host", cpu: str | None = None, opt_level: int = 3
) -> CodeStats:
    """Compile `llvm_ir` to an object file for `machine` and return its code bytes and the
    register allocator's spills and reloads (see the module docstring)."""
    target = machine_named(machine)
    with tempfile.TemporaryDirectory() as tmp:
        source, obj, record = Path(tmp, "code.ll"), Path(tmp, "code.o"), Path(tmp, "code.yaml")
        source.write_text(llvm_ir)
        args = [
            *target.clang_flags(cpu),
            f"-O{opt_level}",
            "-c",
            str(source),
            "-o",
            str(obj),
            "-fsave-optimization-record",
            f"-foptimization-record-file={record}",
            "-Wno-override-module",
        ]
        try:
            run_tool("clang", args, what="clang")
            symbols = run_tool("llvm-objdump", ["--syms", str(obj)], what="llvm-objdump")
        except ToolFailedError as e:
            raise BuildError(str(e), stderr=e.stderr) from None
        spills, reloads, folded = _spill_remarks(record.read_text() if record.exists() else "")
    sizes = _function_sizes(symbols)
    return CodeStats(sum(sizes.values()), spills, reloads, folded, sizes)

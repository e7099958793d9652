"""The aarch64 cost model: llvm-mca-22's cycle estimate for the hot loop of generated code.

    >>> llvm_mca_cycles(llvm_ir, function="conv")          # doctest: +SKIP
    41230

`llvm_mca_report` compiles LLVM IR to assembly with clang-22 (or takes clang's assembly as it
is), cuts out one region of one function (by default its hottest innermost loop, found from
clang's verbose loop comments) and gives it to llvm-mca-22, which simulates the CPU's pipeline
(`cortex-a76` for aarch64). `llvm_mca_cycles` is its total cycle count: the tuner's cost figure
when the code cannot be timed on the machine itself (see `pconv_mlir.runtime.timing` for that).
Failures raise `pconv_mlir.errors.BuildError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pconv_mlir.errors import BuildError, ToolFailedError
from pconv_mlir.machine import Machine
from pconv_mlir.machine import machine as machine_named
from pconv_mlir.toolchain import run_tool

__all__ = ["McaReport", "llvm_mca_cycles", "llvm_mca_report"]


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


def _tool(name: str, args: list[str], input_text: str) -> str:
    """The stdout of tool `name`; a `BuildError` with its first error line if it fails."""
    try:
        return run_tool(name, args, input_text, what=name)
    except ToolFailedError as e:
        raise BuildError(str(e), stderr=e.stderr) from None


def _outlined(name: str) -> bool:
    """Whether `name` is a parallel body that LLVM's OpenMP lowering outlined
    (`conv..omp_par`, `conv..omp_par.1`, ...)."""
    return "..omp_par" in name


def _body(lines: list[str], name: str) -> list[str]:
    start = next(
        (i for i, line in enumerate(lines) if re.match(rf"^{re.escape(name)}:", line)), None
    )
    if start is None:
        raise ValueError(f"no function '{name}' in the assembly")
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith(".Lfunc_end") or line.startswith(".size"):
            break
        body.append(line)
    return body


def _function_lines(asm: str, function: str | None) -> list[str]:
    """The lines of `function`'s body in clang's assembly (by default, of the only function),
    followed by those of its parallel bodies, which the OpenMP lowering outlined into functions
    of their own (`function..omp_par*`): its loops are there."""
    names = re.findall(r"^([\w.$]+):[^\n]*// @|^([\w.$]+):[^\n]*# @", asm, re.MULTILINE)
    defined = [a or b for a, b in names]
    if function is None:
        own = [name for name in defined if not _outlined(name)]
        if len(own) != 1:
            raise ValueError(f"say which function to analyse: found {', '.join(own) or 'none'}")
        function = own[0]
    lines = asm.splitlines()
    body = _body(lines, function)
    for name in defined:
        if name.startswith(f"{function}..omp_par"):
            body += _body(lines, name)
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
    target: Machine | str = "aarch64",
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
    spec = machine_named(target)
    mcpu = cpu or spec.cpu
    if re.search(r"^define ", code, re.MULTILINE):
        code = _tool(
            "clang",
            [*spec.clang_flags(cpu), f"-O{opt_level}", "-S", "-x", "ir", "-", "-o", "-"],
            code,
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
    report = _tool(
        "llvm-mca",
        [f"-mtriple={spec.triple}", f"-mcpu={mcpu}", f"-iterations={iterations}"],
        assembly,
    )

    def number(key: str) -> str:
        found = re.search(rf"^{key}:\s*([\d.]+)", report, re.MULTILINE)
        if found is None:
            raise BuildError(f"llvm-mca printed no '{key}'")
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
    target: Machine | str = "aarch64",
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

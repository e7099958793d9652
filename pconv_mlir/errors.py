"""The errors pconv-mlir raises: one family, rooted in xDSL's `DiagnosticException`.

Every error a user can cause is a `PconvError` whose text is one diagnostic line, as mlir-opt
prints it: `file:line:col: error: message` when it has a location. Because the root is xDSL's
`DiagnosticException`, xDSL's own drivers treat ours like theirs (`xdsl-opt --verify-diagnostics`
prints the line instead of a traceback), and `except DiagnosticException` catches both.

    PconvError                  the root; `str(e)` is one line
      OpError                   an op a pass or a lowering cannot handle, located at the op
      OptionError               a bad option (of a pass, a target, `compile`); also a ValueError
      FrontendError             a torch model that cannot be imported
      LoweringError             a module that cannot be lowered (an unsupported op or type)
      ToolError                 an external tool: not installed (ToolNotFoundError) or failed
        ToolNotFoundError         (ToolFailedError)
        ToolFailedError
      BuildError                clang could not build the generated code
      RunError                  the generated code failed while running

This module imports xDSL only: every layer may raise these.
"""

from __future__ import annotations

from xdsl.dialects.builtin import FileLineColLoc
from xdsl.ir import Operation
from xdsl.utils.exceptions import DiagnosticException

__all__ = [
    "BuildError",
    "FrontendError",
    "LoweringError",
    "OpError",
    "OptionError",
    "PconvError",
    "RunError",
    "ToolError",
    "ToolFailedError",
    "ToolNotFoundError",
    "first_line",
    "format_op_error",
    "op_location",
]


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's text, or the error's type name."""
    text = error if isinstance(error, str) else str(error)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip() or (type(error).__name__ if not isinstance(error, str) else "error")


def op_location(op: Operation) -> str:
    """`file:line:col` of `op` (or of its nearest located parent), else `<unknown>`."""
    current: Operation | None = op
    while current is not None:
        loc = current.location
        if isinstance(loc, FileLineColLoc):
            return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
        current = current.parent_op()
    return "<unknown>"


def format_op_error(op: Operation, message: str) -> str:
    """One diagnostic line about `op`, as mlir-opt prints it."""
    return f"{op_location(op)}: error: '{op.name}' op {message}"


class PconvError(DiagnosticException):
    """A user-facing error: its text is one diagnostic line, `location: error: message`."""


class OpError(PconvError):
    """An op that a pass or a lowering cannot handle; `str()` points at the op's location."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op
        self.message = first_line(message)

    def __str__(self) -> str:
        return format_op_error(self.op, self.message)


class OptionError(PconvError, ValueError):
    """A bad option value; the message names the option and what it allows."""


class FrontendError(PconvError):
    """A model cannot be imported; the message is one sentence, `original` the underlying error."""

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


class LoweringError(PconvError):
    """The module cannot be lowered: an unsupported op or type, or an upstream tool failed.

    `op` is the offending op when there is one (its location leads the message); when a tool
    failed, `details` holds its whole stderr and `input_text` what it was given.
    """

    def __init__(
        self,
        message: str,
        *,
        op: Operation | None = None,
        details: str = "",
        input_text: str = "",
    ) -> None:
        super().__init__(message)
        self.op = op
        self.details = details
        self.input_text = input_text

    def __str__(self) -> str:
        message = first_line(self.args[0]) if self.args else "cannot lower the module"
        if self.op is None:
            return message
        return f"{op_location(self.op)}: error: {message}"


class ToolError(PconvError):
    """An external tool (LLVM, MLIR, qemu) is missing or failed."""


class ToolNotFoundError(ToolError):
    """An external tool that a step needs is not installed."""


class ToolFailedError(ToolError):
    """An external tool exited with a non-zero status.

    The message is one line, `<what> failed: <the tool's first error line>`; `stderr` keeps all
    of it and `input_text` what the tool was given on stdin.
    """

    def __init__(self, what: str, stderr: str, *, input_text: str = "") -> None:
        super().__init__(f"{what} failed: {first_error_line(stderr)}")
        self.stderr = stderr
        self.input_text = input_text


class BuildError(PconvError):
    """clang could not build the code. The message is clang's first error line; `stderr` has all."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class RunError(PconvError):
    """The generated code failed while running (a signal, or the driver reported an error)."""


def first_error_line(stderr: str) -> str:
    """The first line of a tool's stderr that mentions an error, else its first non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else "(no message)"

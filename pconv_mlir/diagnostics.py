"""Diagnostics in the form mlir-opt prints them: `file:line:col: error: message`, one line.

xDSL reports parse errors with a multi-line excerpt and verifier errors with the whole module
printed; both tools and the Python API turn them into one line with a source location here.
Operations parsed by `LocatingParser` carry a `FileLineColLoc`, so a verifier or pass error can
point at the line that holds the op.
"""

from __future__ import annotations

from collections.abc import Iterator

from xdsl.context import Context
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException


class PconvError(Exception):
    """A user-facing error: its text is one diagnostic line `location: error: message`."""


class LocatedVerifyException(VerifyException):
    """A verifier error raised while parsing (an attribute's), with the op's source location."""

    def __init__(self, message: str, location: str):
        super().__init__(message)
        self.location = location


class PconvDiagnostic(Exception):
    """Raised by a pass for an input it cannot handle, naming the operation at fault."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op
        self.message = message

    def __str__(self) -> str:
        return format_op_error(self.op, self.message)


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


def format_parse_error(error: ParseError) -> str:
    """One diagnostic line for a parse error."""
    loc = error.span.get_location()
    return f"{loc.file}:{loc.line}:{loc.col}: error: {error.msg}"


def _walk_preorder(op: Operation) -> Iterator[Operation]:
    yield op
    for region in op.regions:
        for block in region.blocks:
            for child in block.ops:
                yield from _walk_preorder(child)


def describe_failure(module: Operation | None, error: Exception) -> str:
    """One diagnostic line for an error raised while verifying or transforming `module`.

    A pass's `PconvDiagnostic`, and any other error that names its op in an `op` attribute (a
    lowering error), point at that op; a verifier failure is located by `locate_verify_error`.
    """
    if isinstance(error, PconvDiagnostic):
        return str(error)
    op = getattr(error, "op", None)
    if isinstance(op, Operation) and not isinstance(error, VerifyException):
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"{op_location(op)}: error: {first}"
    return locate_verify_error(module, error)


def locate_verify_error(module: Operation | None, error: Exception) -> str:
    """One diagnostic line for a failed verification of `module`.

    xDSL's exception does not name the failing operation, so the module is verified again op
    by op, outermost first, and the first op that fails gives the location.
    """
    if isinstance(error, LocatedVerifyException):
        return f"{error.location}: error: {str(error).splitlines()[0]}"
    if module is not None:
        for op in _walk_preorder(module):
            try:
                op.verify(verify_nested_ops=False)
            except VerifyException as e:
                return format_op_error(op, str(e).splitlines()[0])
    return f"<unknown>: error: {str(error).splitlines()[0]}"


class LocatingParser(Parser):
    """xDSL's parser, which also gives every parsed op a `FileLineColLoc` of where it starts.

    An explicit `loc(...)` in the source wins. `line_offset` shifts line numbers for a chunk of
    a file cut with `--split-input-file`.
    """

    def __init__(
        self, ctx: Context, source: str | bytes, name: str = "<unknown>", line_offset: int = 0
    ):
        super().__init__(ctx, source, name)
        self.source_bytes = source.encode() if isinstance(source, str) else source
        self.source_name = name
        self.line_offset = line_offset

    def _location(self, position: int) -> FileLineColLoc:
        text = self.source_bytes
        line = text.count(b"\n", 0, position) + 1 + self.line_offset
        column = position - (text.rfind(b"\n", 0, position) + 1) + 1
        return FileLineColLoc(StringAttr(self.source_name), IntAttr(line), IntAttr(column))

    def parse_operation(self) -> Operation:
        start = self.pos
        try:
            op = super().parse_operation()
        except LocatedVerifyException:
            raise
        except VerifyException as e:
            loc = self._location(start)
            where = f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
            raise LocatedVerifyException(str(e), where) from None
        if not isinstance(op.location, FileLineColLoc):
            op.location = self._location(start)
        return op


def parse_module(
    ctx: Context, source: str | bytes, name: str = "<string>", line_offset: int = 0
) -> ModuleOp:
    """Parse `source` (with its `dialect_resources`) into a module; `PconvError` if malformed.

    Ops get `FileLineColLoc`s (see `LocatingParser`); resource blobs go to `ctx`'s storage
    through `pconv_mlir.frontend.parse_module`, which keeps a file parsed twice intact.
    """
    from pconv_mlir import frontend

    text = source.decode() if isinstance(source, bytes) else source
    try:
        return frontend.parse_module(
            text,
            ctx,
            parse=lambda c, body: LocatingParser(c, body, name, line_offset).parse_module(),
        )
    except ParseError as e:
        raise PconvError(format_parse_error(e)) from None

"""IR text: contexts, parsing (with resources and locations) and printing (with resources).

    >>> ctx = make_context()
    >>> module = parse_module(text, ctx, name="conv.mlir")     # doctest: +SKIP
    >>> print(print_module(module, ctx))                      # doctest: +SKIP

`dense_resource<key>` weights keep their bytes in the context's builtin dialect storage, not in
the module (see `pconv_mlir.elements`), so a module goes with the context it was parsed into:

- `make_context()` registers every dialect (xDSL's, plugins', pconv's). Its resources go to
  xDSL's process-wide storage, shared with every other such context, so a module parsed in one
  can be handed to another. `make_context(own_resources=True)` gives the context a storage of
  its own (a `BlobStore`, which keeps bytes instead of hex): isolated, and freed with it.
- `parse_module(text, ctx)` parses text with a `{-# dialect_resources ... #-}` section; every
  op gets a `file:line:col` location, and any mistake is a `PconvError` with one located line.
  A resource key that the storage already holds (the same file parsed twice) is renamed
  `key_0`, `key_1`, ... in the module, as MLIR does.
- `print_module(module, ctx)` prints the module and the resources it uses, so the text
  round-trips.
- `describe_failure(module, error)` gives the one located line for an error raised while
  verifying or transforming a module.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterator
from functools import cache

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Dialect, Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from pconv_mlir.elements import BlobStore, storage_of
from pconv_mlir.errors import PconvError, first_line, format_op_error

__all__ = [
    "LocatingParser",
    "default_context",
    "describe_failure",
    "make_context",
    "parse_module",
    "print_module",
]


# --------------------------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------------------------


def _all_dialects() -> dict[str, Callable[[], Dialect]]:
    """xDSL's dialects, those of plugins, and pconv-mlir's own."""
    from xdsl.universe import Universe

    from pconv_mlir import universe

    try:
        dialects = dict(Universe.get_multiverse().all_dialects)
    except Exception as e:  # a broken plugin must not stop us
        from xdsl.dialects import get_all_dialects

        warnings.warn(
            f"xDSL plugin discovery failed ({first_line(e)}); using xDSL's own dialects only",
            stacklevel=3,
        )
        dialects = dict(get_all_dialects())
    dialects.update(universe.get_all_dialects())
    return dialects


def _builtin_with_own_storage() -> Dialect:
    """xDSL's builtin dialect with a `BlobStore` of its own."""
    return Dialect(Builtin.name, list(Builtin.operations), list(Builtin.attributes), [BlobStore()])


def make_context(*, own_resources: bool = False, allow_unregistered: bool = False) -> Context:
    """A `Context` with every dialect registered (each loaded when first used).

    By default its resource blobs go to xDSL's process-wide storage, shared with every other
    context. With `own_resources=True` the builtin dialect gets a `BlobStore` of its own: the
    weights parsed into this context are visible only through it and are freed with it.
    """
    ctx = Context(allow_unregistered=allow_unregistered)
    for name, factory in _all_dialects().items():
        if name == "builtin" and own_resources:
            factory = _builtin_with_own_storage
        ctx.register_dialect(name, factory)
    return ctx


@cache
def default_context() -> Context:
    """The process-wide context used when none is given."""
    return make_context()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class LocatedVerifyException(VerifyException):
    """A verifier error raised while parsing (an attribute's), with the op's source location."""

    def __init__(self, message: str, location: str):
        super().__init__(message)
        self.location = location


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

    def location_text(self, position: int) -> str:
        loc = self._location(position)
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"

    def parse_operation(self) -> Operation:
        start = self.pos
        try:
            op = super().parse_operation()
        except LocatedVerifyException:
            raise
        except VerifyException as e:
            raise LocatedVerifyException(first_line(e), self.location_text(start)) from None
        if not isinstance(op.location, FileLineColLoc):
            op.location = self._location(start)
        return op


_METADATA_START = re.compile(r"^\{-#", re.MULTILINE)
_DIALECT_OPEN = re.compile(r"([A-Za-z_][\w$.]*)\s*:\s*\{")
_KEY_BEFORE_VALUE = re.compile(r'([A-Za-z_][\w$.\-]*|"[^"]*")\s*:\s*$')
_RESOURCE_REF = re.compile(r"dense_resource<([^>]+)>")


def _line_col(text: str, position: int, name: str, line_offset: int) -> str:
    line = text.count("\n", 0, position) + 1 + line_offset
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"{name}:{line}:{column}"


def split_resources(
    text: str, name: str = "<string>", line_offset: int = 0
) -> tuple[str, dict[str, str]]:
    """Split MLIR text into its operations and its builtin dialect resources (key -> hex).

    The hex payloads (hundreds of MB for a large network) are delimited with `str.find`, which
    scans at memory speed; only the short gaps between them (keys, braces, dialect names) go
    through regular expressions, and xDSL's lexer never sees the payloads. A malformed section
    is a located `PconvError`.
    """
    start = _METADATA_START.search(text)
    if start is None:
        return text, {}

    def fail(position: int, message: str) -> PconvError:
        return PconvError(f"{_line_col(text, position, name, line_offset)}: error: {message}")

    resources: dict[str, str] = {}
    dialect: str | None = None
    gap_start = pos = start.start()
    while (quote := text.find('"', pos)) >= 0:
        close = text.find('"', quote + 1)
        if close < 0:
            raise fail(quote, "unterminated string in the resources section")
        pos = close + 1
        if not text.startswith("0x", quote + 1):
            continue  # a quoted key: part of the gap before its value
        gap = text[gap_start:quote]
        gap_start = pos
        if "external_resources" in gap:
            raise fail(quote, "external_resources in the file metadata are not supported")
        for opened in _DIALECT_OPEN.finditer(gap):
            if opened.group(1) != "dialect_resources":
                dialect = opened.group(1)
        key = _KEY_BEFORE_VALUE.search(gap)
        if key is None:
            raise fail(quote, "malformed resources section: expected 'key: \"0x...\"'")
        if dialect != "builtin":
            what = f"dialect '{dialect}'" if dialect else "an unnamed dialect"
            raise fail(quote, f"resources of {what} are not supported (only builtin)")
        payload = text[quote + 3 : close]
        bad = re.search(r"[^0-9A-Fa-f]", payload)
        if bad is not None or len(payload) % 2:
            where = quote + 3 + (bad.start() if bad is not None else len(payload))
            raise fail(where, f"resource '{key.group(1).strip(chr(34))}' is not whole hex bytes")
        resources[key.group(1).strip('"')] = text[quote + 1 : close]
    return text[: start.start()], resources


def parse_module(
    source: str | bytes,
    ctx: Context | None = None,
    *,
    name: str = "<string>",
    line_offset: int = 0,
    implicit_module: bool = True,
) -> ModuleOp:
    """Parse MLIR text, including a `{-# dialect_resources ... #-}` section, into `ctx`.

    Ops get `FileLineColLoc`s (see `LocatingParser`); the builtin resources go into `ctx`'s
    storage (default context: `default_context()`). A key that the storage already holds is
    renamed `key_0`, `key_1`, ... in the module, as MLIR does. Raises `PconvError` with one
    located line for anything it cannot parse or that fails a verifier while parsing.
    """
    ctx = default_context() if ctx is None else ctx
    text = source.decode() if isinstance(source, bytes) else source
    storage = storage_of(ctx)
    body, resources = split_resources(text, name, line_offset)

    renamed: dict[str, str] = {}
    taken = set(resources)
    for key in resources:
        if storage.lookup(key) is None:
            continue
        counter = 0
        while (new := f"{key}_{counter}") in taken or storage.lookup(new) is not None:
            counter += 1
        taken.add(new)
        renamed[key] = new
    if renamed:
        body = _RESOURCE_REF.sub(
            lambda m: f"dense_resource<{renamed.get(m.group(1), m.group(1))}>", body
        )

    try:
        module = LocatingParser(ctx, body, name, line_offset).parse_module(implicit_module)
    except ParseError as e:
        raise PconvError(format_parse_error(e)) from None
    except LocatedVerifyException as e:
        raise PconvError(f"{e.location}: error: {first_line(e)}") from None
    for key, blob in resources.items():
        key = renamed.get(key, key)
        if storage.lookup(key) is None:
            storage.declare_resource(key)
        storage.parse_resource(key, blob)
    return module


def format_parse_error(error: ParseError) -> str:
    """One diagnostic line for a parse error."""
    loc = error.span.get_location()
    return f"{loc.file}:{loc.line}:{loc.col}: error: {first_line(error.msg)}"


# --------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------


def print_module(
    module: Operation,
    ctx: Context | None = None,
    *,
    generic: bool = False,
) -> str:
    """The text of `module` followed by the resources it references, as `pconv-opt` prints it.

    `Printer.print_op` alone leaves `dense_resource` data out; this adds the
    `{-# dialect_resources: {builtin: {...}} #-}` section from `ctx`'s storage (default
    context: `default_context()`). `generic=True` prints every op in generic form.
    """
    ctx = default_context() if ctx is None else ctx
    stream = io.StringIO()
    printer = Printer(stream=stream, print_generic_format=generic)
    printer.print_op(module)
    printer.print_metadata(ctx.loaded_dialects)
    stream.write("\n")
    return stream.getvalue()


# --------------------------------------------------------------------------------------------
# Locating failures
# --------------------------------------------------------------------------------------------


def _walk_preorder(op: Operation) -> Iterator[Operation]:
    yield op
    for region in op.regions:
        for block in region.blocks:
            for child in block.ops:
                yield from _walk_preorder(child)


def describe_failure(module: Operation | None, error: BaseException) -> str:
    """One diagnostic line for an error raised while verifying or transforming `module`.

    Our own errors are already one line (located when they name an op); a verifier failure is
    located by verifying `module` again op by op, outermost first.
    """
    if isinstance(error, PconvError):
        return first_line(error)
    if isinstance(error, ParseError):
        return format_parse_error(error)
    if isinstance(error, LocatedVerifyException):
        return f"{error.location}: error: {first_line(error)}"
    if module is not None and isinstance(error, VerifyException):
        for op in _walk_preorder(module):
            try:
                op.verify(verify_nested_ops=False)
            except VerifyException as e:
                return format_op_error(op, first_line(e))
            except DiagnosticException:
                break
    return f"<unknown>: error: {first_line(error)}"

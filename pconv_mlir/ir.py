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
  round-trips bit for bit; `elide_resources_over=N` leaves out blobs of more than N bytes (as
  mlir-opt's `--mlir-elide-resource-strings-if-larger`; pconv-opt's
  `--pconv-elide-resources-over`). The hex of a `BlobStore`'s blobs is made only here.
- `describe_failure(module, error)` gives the one located line for an error raised while
  verifying or transforming a module.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from math import prod
from typing import IO, Any

from xdsl.context import Context
from xdsl.dialects.builtin import (
    AnyDenseElement,
    Builtin,
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    IntAttr,
    ModuleOp,
    RankedStructure,
    ShapedType,
    StringAttr,
)
from xdsl.ir import Attribute, Dialect, Operation, TypeAttribute
from xdsl.parser import Parser, ParserState
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRToken, MLIRTokenKind

from pconv_mlir.elements import BlobStore, blob_size, storage_of
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
    """A diagnostic raised while parsing (an attribute's verifier), with the op's location."""

    def __init__(self, message: str, location: str):
        super().__init__(message)
        self.location = location


MAX_DENSE_ELEMENTS = 1 << 26
"""The most elements a `dense<...>` literal may have. xDSL's parser expands a splat into a
Python list of every element before packing it (about 50 ns and 8 bytes an element), so a
splat of `tensor<65536x65536xf32>` would exhaust memory; large constants belong in
`dense_resource` blobs, which are read without expansion."""

MAX_INTEGER_WIDTH = (1 << 24) - 1
"""MLIR's limit on the width of an integer type. xDSL has none and computes the range of an
`i1000000000` value as a Python integer of that many bits (seconds, and gigabytes beyond)."""

_STRING_BODY = re.compile(r'(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+')
"""What may follow the opening quote of a string literal, as xDSL's lexer accepts it, matched
without backtracking (possessive quantifiers): a linear scan even when the string is not closed.
"""


class LinearLexer(MLIRLexer):
    """xDSL's lexer with a string-literal regex that runs in linear time.

    xDSL's `_unescaped_characters_regex`, `"(?:[^"\\\n\v\f]+|\\(...))*"`, nests `+` in `*`:
    when a string is not closed, the regex engine tries every way of splitting the characters
    between the two quantifiers, 2**n for n characters (see docs/upstream-xdsl.md). Here both
    are possessive, and a string that does not close gets a message saying why, at the
    character where it stops.
    """

    _unescaped_characters_regex = re.compile('"' + _STRING_BODY.pattern + '"')

    def _lex_string_literal(self, start_pos: int) -> MLIRToken:
        content = self.input.content
        body = _STRING_BODY.match(content, start_pos + 1)
        assert body is not None  # the body may be empty: it always matches
        stop = body.end()
        if stop >= len(content) or content[stop] in "\n\r":
            raise ParseError(
                Span(start_pos, start_pos + 1, self.input), "unterminated string literal"
            )
        if content[stop] == "\\":
            raise ParseError(
                Span(stop, min(stop + 2, len(content)), self.input),
                'unknown escape in string literal (allowed: \\" \\\\ \\n \\t \\XX)',
            )
        if content[stop] != '"':
            raise ParseError(
                Span(stop, stop + 1, self.input),
                f"invalid character {content[stop]!r} in string literal",
            )
        return super()._lex_string_literal(start_pos)


def _internal_message(error: BaseException, what: str = "xDSL") -> str:
    """One line for an error that xDSL raised without a diagnostic (a bug of its own)."""
    if isinstance(error, struct.error):
        return "integer out of range for its element type"
    if isinstance(error, MemoryError):
        return "out of memory"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, ValueError) and "integer string conversion" in str(error):
        return f"integer literal of more than {sys.get_int_max_str_digits()} digits"
    return f"malformed IR: {what} failed with {type(error).__name__}: {first_line(error)}"


class LocatingParser(Parser):
    """xDSL's parser, which also gives every parsed op a `FileLineColLoc` of where it starts.

    An explicit `loc(...)` in the source wins. `line_offset` shifts line numbers for a chunk of
    a file cut with `--split-input-file`. Beyond xDSL's parser it

    - lexes with `LinearLexer` (no exponential time on an unclosed string literal);
    - refuses a `dense<...>` literal of more than `MAX_DENSE_ELEMENTS` elements before xDSL
      expands it, and reports a value out of range of its element type at the literal;
    - refuses integer types wider than `MAX_INTEGER_WIDTH` bits, as MLIR does;
    - turns any other exception that xDSL raises while parsing an op (a Python error, not a
      diagnostic: `struct.error` for `array<i64: 99999999999999999999>`, ...) into a
      `ParseError` at the op.
    """

    def __init__(
        self, ctx: Context, source: str | bytes, name: str = "<unknown>", line_offset: int = 0
    ):
        text = source.decode() if isinstance(source, bytes) else source
        super().__init__(ctx, "", name)
        self._resume_from(ParserState(LinearLexer(Input(text, name))))  # lex with LinearLexer
        self.source_name = name
        self.line_offset = line_offset
        self._counted = (0, 1)  # (position, its line): ops come in order, count lines from here

    def location_for(self, position: int) -> FileLineColLoc:
        """The `FileLineColLoc` of a position in the text."""
        text = self.lexer.input.content
        counted, line = self._counted
        if position < counted:
            counted, line = 0, 1
        line += text.count("\n", counted, position)
        self._counted = (position, line)
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return FileLineColLoc(
            StringAttr(self.source_name), IntAttr(line + self.line_offset), IntAttr(column)
        )

    def location_text(self, position: int) -> str:
        loc = self.location_for(position)
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"

    def parse_operation(self) -> Operation:
        start = self.pos
        try:
            op = super().parse_operation()
        except (ParseError, LocatedVerifyException):
            raise
        except DiagnosticException as e:  # an attribute's verifier, while it was parsed
            raise LocatedVerifyException(first_line(e), self.location_text(start)) from None
        except Exception as e:  # xDSL failed without a diagnostic: locate it at the op
            self.raise_error(_internal_message(e, "xDSL's parser"), start, self.pos)
        if not isinstance(op.location, FileLineColLoc):
            op.location = self.location_for(start)
        return op

    def _parse_optional_integer_or_float_type(self) -> TypeAttribute | None:
        token = self._current_token
        if token.kind == MLIRTokenKind.BARE_IDENT:
            match = self._builtin_integer_type_regex.match(token.text)
            digits = match.group(1) if match is not None else ""
            if digits and (len(digits) > 8 or int(digits) > MAX_INTEGER_WIDTH):
                self.raise_error(
                    f"integer bitwidth is limited to {MAX_INTEGER_WIDTH} bits", token.span
                )
        return super()._parse_optional_integer_or_float_type()

    def _dense_start(self) -> int:
        """Where the `dense` keyword before the current `<` starts (else the `<`)."""
        text, position = self.lexer.input.content, self.pos
        keyword = text.rfind("dense", max(0, position - 64), position)
        if keyword >= 0 and not text[keyword + 5 : position].strip():
            return keyword
        return position

    def _check_dense_size(self, type: Attribute, start: int) -> None:
        shape = type.get_shape() if isinstance(type, ShapedType) else ()
        count = prod(shape)
        if count > MAX_DENSE_ELEMENTS:
            self.raise_error(
                f"dense literal of type {type} has {count} elements, more than the "
                f"{MAX_DENSE_ELEMENTS} pconv-mlir parses (use dense_resource for large data)",
                start,
                self.pos,
            )

    def parse_dense_int_or_fp_elements_attr(
        self, type: RankedStructure[AnyDenseElement] | None
    ) -> DenseIntOrFPElementsAttr:
        start = self._dense_start()
        if type is not None:
            self._check_dense_size(type, start)
        try:
            return super().parse_dense_int_or_fp_elements_attr(type)
        except (ValueError, OverflowError, struct.error) as e:  # an element out of range
            self.raise_error(first_line(e), start, self.pos)

    def _parse_dense_literal_type(self) -> RankedStructure[AnyDenseElement]:
        # The type of a literal, parsed before xDSL expands a splat to that many elements.
        start = self.pos
        type = super()._parse_dense_literal_type()
        self._check_dense_size(type, start)
        return type


class _MetadataReader:
    """Reads the `{-# ... #-}` section token by token; failures are located `PconvError`s.

    String tokens are delimited with `str.find` (hex payloads can be hundreds of MB), the
    short rest with one regular expression.
    """

    _TOKEN = re.compile(
        r'(?:\s++|//[^\n]*+)*+(?:(#-\})|([{}:,])|([A-Za-z_][\w$.\-]*+)|(")|([^\s{}:,"]++))?'
    )

    def __init__(self, text: str, pos: int, name: str, line_offset: int):
        self.text, self.pos, self.name, self.line_offset = text, pos, name, line_offset

    def fail(self, position: int, message: str) -> PconvError:
        return PconvError(
            f"{_line_col(self.text, position, self.name, self.line_offset)}: error: {message}"
        )

    def next(self) -> tuple[str, int, int]:
        """(kind, start, end) of the next token; kinds: `_TOKEN_KINDS` and `eof`."""
        match = self._TOKEN.match(self.text, self.pos)
        assert match is not None  # everything in the pattern is optional
        kind = next(
            (k for k, g in zip(_TOKEN_KINDS, match.groups(), strict=True) if g is not None), "eof"
        )
        start = match.start(match.lastindex) if match.lastindex else match.end()
        end = match.end()
        if kind == "string":
            close = self.text.find('"', start + 1)
            newline = self.text.find("\n", start + 1, close if close >= 0 else len(self.text))
            if close < 0 or newline >= 0:
                raise self.fail(start, "unterminated string in the resources section")
            end = close + 1
        self.pos = end
        return kind, start, end

    def expect(
        self, what: str, kinds: tuple[str, ...] = (), texts: tuple[str, ...] = ()
    ) -> tuple[int, int]:
        """(start, end) of the next token, which must be of one of `kinds` or spell one of
        `texts`."""
        found, start, end = self.next()
        if found not in kinds and self.text[start:end] not in texts:
            if found == "eof":
                shown = "the end of the file"
            else:
                token = self.text[start:end]
                shown = repr(token if len(token) <= 24 else token[:20] + "...")
            raise self.fail(start, f"expected {what} in the resources section, found {shown}")
        return start, end


_TOKEN_KINDS = ("end", "punct", "ident", "string", "other")
_METADATA_START = re.compile(r"^\{-#", re.MULTILINE)
_NOT_HEX = re.compile(r"[^0-9A-Fa-f]")
_RESOURCE_REF = re.compile(r"dense_resource<([^>]+)>")


def _line_col(text: str, position: int, name: str, line_offset: int) -> str:
    line = text.count("\n", 0, position) + 1 + line_offset
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"{name}:{line}:{column}"


def split_resources(
    text: str, name: str = "<string>", line_offset: int = 0
) -> tuple[str, dict[str, str]]:
    """Split MLIR text into its operations and its builtin dialect resources (key -> hex).

    The section is `{-# dialect_resources: {builtin: {key: "0x...", ...}} #-}` at the start of
    a line, after the operations. The hex payloads (hundreds of MB for a large network) are
    delimited with `str.find`, which scans at memory speed, and xDSL's lexer never sees them.
    Anything else (another dialect's resources, `external_resources`, a malformed section,
    text after it) is a located `PconvError`.
    """
    start = _METADATA_START.search(text)
    if start is None:
        return text, {}
    reader = _MetadataReader(text, start.end(), name, line_offset)
    resources: dict[str, str] = {}

    def comma_list(item: Callable[[], None], closing: str) -> None:
        """`item (, item)*` up to `closing`, which may also come first (an empty list)."""
        _, first, end = reader.next()
        if text[first:end] == closing:
            return
        reader.pos = first
        while True:
            item()
            at, end = reader.expect(f"',' or '{closing}'", texts=(",", closing))
            if text[at:end] == closing:
                return

    def resource() -> None:
        at, end = reader.expect("a resource key", ("ident", "string"))
        key = text[at:end].strip('"')
        reader.expect("':'", texts=(":",))
        quote, end = reader.expect('a hex string "0x..."', ("string",))
        close = end - 1
        if not text.startswith('"0x', quote):
            raise reader.fail(quote, f"resource '{key}' is not a hex string \"0x...\"")
        bad = _NOT_HEX.search(text, quote + 3, close)
        if bad is not None or (close - quote - 3) % 2:
            raise reader.fail(
                bad.start() if bad else close, f"resource '{key}' is not whole hex bytes"
            )
        if key in resources:
            raise reader.fail(at, f"resource '{key}' is defined twice")
        resources[key] = text[quote + 1 : close]

    def dialect() -> None:
        at, end = reader.expect("a dialect name", ("ident",))
        reader.expect("':'", texts=(":",))
        if text[at:end] != "builtin":
            raise reader.fail(
                at, f"resources of dialect '{text[at:end]}' are not supported (only builtin)"
            )
        reader.expect("'{'", texts=("{",))
        comma_list(resource, "}")

    def entry() -> None:
        at, end = reader.expect("'dialect_resources'", ("ident",))
        word = text[at:end]
        if word == "external_resources":
            raise reader.fail(at, "external_resources in the file metadata are not supported")
        if word != "dialect_resources":
            raise reader.fail(at, f"unknown key '{word}' in the file metadata")
        reader.expect("':'", texts=(":",))
        reader.expect("'{'", texts=("{",))
        comma_list(dialect, "}")

    comma_list(entry, "#-}")
    kind, at, end = reader.next()
    if kind != "eof":
        raise reader.fail(at, "unexpected text after the file metadata {-# ... #-}")
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
    if isinstance(source, bytes):
        try:
            text = source.decode()
        except UnicodeDecodeError as e:
            where = _line_col(
                source[: e.start].decode(errors="replace"), e.start, name, line_offset
            )
            raise PconvError(f"{where}: error: the file is not UTF-8 ({e.reason})") from None
    else:
        text = source
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

    parser = LocatingParser(ctx, body, name, line_offset)
    first = parser.pos
    try:
        module = parser.parse_module(implicit_module)
    except ParseError as e:
        raise PconvError(format_parse_error(e, line_offset)) from None
    except LocatedVerifyException as e:
        raise PconvError(f"{e.location}: error: {first_line(e)}") from None
    except Exception as e:  # outside any op (an alias, the end of the file): where it stopped
        where = parser.location_text(min(parser.pos, len(body)))
        message = (
            first_line(e)
            if isinstance(e, DiagnosticException)
            else _internal_message(e, "xDSL's parser")
        )
        raise PconvError(f"{where}: error: {message}") from None
    if not isinstance(module.location, FileLineColLoc):  # an implicit module: its first op
        module.location = parser.location_for(first)
    for key, blob in resources.items():
        key = renamed.get(key, key)
        if storage.lookup(key) is None:
            storage.declare_resource(key)
        storage.parse_resource(key, blob)
    return module


def format_parse_error(error: ParseError, line_offset: int = 0) -> str:
    """One diagnostic line for a parse error (`line_offset`: lines before the chunk parsed)."""
    loc = dataclasses.replace(error.span, line_offset=error.span.line_offset + line_offset)
    where = loc.get_location()
    return f"{where.file}:{where.line}:{where.col}: error: {first_line(error.msg)}"


# --------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------


class ResourcePrinter(Printer):
    """xDSL's printer, which also records the resource handles it prints (`resources`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resources: dict[str, set[str]] = {}
        """dialect name -> the keys of the resources printed."""

    def print_resource_handle(self, dialect: str, handle: str) -> None:
        super().print_resource_handle(dialect, handle)
        self.resources.setdefault(dialect, set()).add(handle)


def write_resources(
    stream: IO[str],
    ctx: Context,
    keys: Iterable[str],
    *,
    elide_over: int | None = None,
) -> list[str]:
    """Write the `{-# dialect_resources: {builtin: {...}} #-}` section for the builtin resources
    `keys` that hold data in `ctx`, in MLIR's layout (one per line, sorted by key).

    Blobs of more than `elide_over` bytes of data are left out, as mlir-opt's
    `--mlir-elide-resource-strings-if-larger` leaves them out: the `dense_resource<key>`
    attributes stay, with no data. Returns the keys left out. The hex text of a `BlobStore`'s
    blobs is made piece by piece as it is written.
    """
    storage = storage_of(ctx)
    kept: list[str] = []
    elided: list[str] = []
    for key in sorted(keys):
        size = blob_size(storage, key)
        if size is None:
            continue
        (elided if elide_over is not None and size > elide_over else kept).append(key)
    if kept:
        stream.write("\n{-#\n  dialect_resources: {\n    builtin: {\n")
        for i, key in enumerate(kept):
            stream.write(f'      {key}: "')
            blob = storage.blob(key) if isinstance(storage, BlobStore) else None
            if blob is not None:
                blob.write_hex(stream.write)
            else:
                stream.write(storage.lookup(key) or "")
            stream.write('",\n' if i + 1 < len(kept) else '"\n')
        stream.write("    }\n  }\n#-}\n")
    if elided:
        stream.write(
            f"\n// {len(elided)} dense_resource blob(s) of more than {elide_over} bytes elided: "
            "this file has no data for them\n"
        )
    return elided


def print_module(
    module: Operation,
    ctx: Context | None = None,
    *,
    generic: bool = False,
    elide_resources_over: int | None = None,
    **printer_options: Any,
) -> str:
    """The text of `module` followed by the resources it references, as `pconv-opt` prints it.

    `Printer.print_op` alone leaves `dense_resource` data out; this adds the
    `{-# dialect_resources: {builtin: {...}} #-}` section from `ctx`'s storage (default
    context: `default_context()`), so that the text round-trips bit for bit.
    `elide_resources_over=N` leaves out the data of every blob of more than N bytes (as
    mlir-opt's `--mlir-elide-resource-strings-if-larger`; a comment at the end says how many):
    such text still parses, but its large constants have no data, and reading or compiling
    them is a located error. `generic=True` prints every op in generic form; other keywords go
    to xDSL's `Printer` (`print_properties_as_attributes`, `print_debuginfo`).
    """
    ctx = default_context() if ctx is None else ctx
    stream = io.StringIO()
    printer = ResourcePrinter(stream=stream, print_generic_format=generic, **printer_options)
    printer.print_op(module)
    stream.write("\n")
    write_resources(
        stream, ctx, printer.resources.get("builtin", ()), elide_over=elide_resources_over
    )
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

    Our own errors are already one line (located when they name an op). A verifier failure is
    located by verifying `module` again op by op, outermost first; so is any other exception
    that an op's verifier raises (xDSL's verifiers sometimes fail with a plain `ValueError`
    on malformed ops): the op whose own verifier raises the same error is the one named.
    """
    if isinstance(error, PconvError):
        return first_line(error)
    if isinstance(error, ParseError):
        return format_parse_error(error)
    if isinstance(error, LocatedVerifyException):
        return f"{error.location}: error: {first_line(error)}"
    message = first_line(error)
    if module is not None and isinstance(error, Exception):
        for op in _walk_preorder(module):
            try:
                op.verify(verify_nested_ops=False)
            except VerifyException as e:
                if isinstance(error, VerifyException):
                    return format_op_error(op, first_line(e))
            except DiagnosticException:
                break
            except Exception as e:
                if type(e) is type(error) and str(e) == str(error):
                    return format_op_error(op, _internal_message(e, "its verifier"))
    if not isinstance(error, DiagnosticException):
        message = _internal_message(error)
    return f"<unknown>: error: {message}"

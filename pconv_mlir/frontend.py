"""The torch front end: a `torch.nn.Module` to an xDSL `ModuleOp` of linalg on tensors.

    >>> ctx = make_context()
    >>> module = import_torch(model, torch.randn(1, 3, 32, 32), ctx=ctx)    # doctest: +SKIP
    >>> conv = next(op for op in module.walk() if op.name == "linalg.conv_2d_nchw_fchw")
    >>> weights = constant_array(ctx, conv.inputs[1].owner.value)          # numpy, exact

torch-mlir (`fx.export_and_import(..., output_type="linalg-on-tensors")`) turns the model into
MLIR; its text is parsed by xDSL. Weights arrive as `dense_resource<key>` attributes whose bytes
live in the file's `{-# dialect_resources: {builtin: {key: "0x..."}} #-}` section. After parsing,
that hex text lives in the **context**, not in the module: in the blob storage of the builtin
dialect's `OpAsmDialectInterface`. So keep the `Context` next to the module:

- `resource_array(ctx, attr)` / `constant_array(ctx, attr)` read a weight back as numpy;
- `resource_attr(ctx, key, array)` stores a new blob and returns its `dense_resource` attribute;
- `print_module(module, ctx)` prints the module *with* its resources section, so the text
  round-trips through `pconv-opt` / `xdsl-opt` (a bare `Printer.print_op` drops the weights);
- `parse_module(text, ctx)` parses such text back.

In xDSL 0.74 the builtin dialect object, and with it the blob storage, is one process-wide
singleton shared by every `Context` built the usual way (`get_all_dialects()`, `pconv-opt`,
`pipeline.make_context`), so a module imported here can be handed to any of them.
`make_context(own_resources=True)` instead gives a context its own storage: isolated, and freed
with the context (ResNet-50 is ~200 MB of hex).

xDSL's `Parser` loses the weights when the same resource key is parsed twice in one process
(the second module's `dense_resource<k>` becomes `k_0` with no data). `parse_module` avoids
that: it renames a key the storage already holds to `k_0`, `k_1`, ... in the text first, as
MLIR does, and fills the storage itself.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from functools import cache
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects.arith import ConstantOp
from xdsl.dialects.builtin import (
    Builtin,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    Signedness,
    TensorType,
    UnregisteredOp,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from pconv_mlir.elements import dense_array, numpy_dtype, static_shape, widen

if TYPE_CHECKING:
    import torch

__all__ = [
    "FrontendError",
    "constant_array",
    "default_context",
    "constant_array",
    "constant_value",
    "make_context",
    "parse_module",
    "print_module",
    "resource_array",
    "resource_attr",
]


class FrontendError(Exception):
    """A model cannot be imported; the message is one sentence, `original` the underlying error."""

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


# --------------------------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------------------------


def _all_dialects() -> dict[str, Callable[[], Dialect]]:
    from xdsl.universe import Universe

    try:
        return Universe.get_multiverse().all_dialects
    except Exception as e:  # a broken plugin must not stop the importer
        from xdsl.dialects import get_all_dialects

        warnings.warn(
            f"xDSL plugin discovery failed ({e}); using xDSL's own dialects only", stacklevel=3
        )
        return get_all_dialects()


def _builtin_with_own_resources() -> Dialect:
    """xDSL's builtin dialect with a fresh `OpAsmDialectInterface` (blob storage) of its own."""
    return Dialect(
        Builtin.name, list(Builtin.operations), list(Builtin.attributes), [OpAsmDialectInterface()]
    )


def make_context(*, own_resources: bool = False) -> Context:
    """A `Context` with every dialect of the xDSL multiverse registered (plugins included).

    By default its resource blobs go to xDSL's process-wide storage, shared with every other
    context. With `own_resources=True` the builtin dialect gets a storage of its own: the
    weights parsed into this context are visible only through it and are freed with it.
    """
    ctx = Context()
    for name, factory in _all_dialects().items():
        if name == "builtin" and own_resources:
            factory = _builtin_with_own_resources
        ctx.register_dialect(name, factory)
    return ctx


@cache
def default_context() -> Context:
    """The process-wide context `import_torch` and `parse_module` use when given none."""
    return make_context()


def _resources(ctx: Context) -> OpAsmDialectInterface:
    interface = ctx.get_dialect("builtin").get_interface(OpAsmDialectInterface)
    if interface is None:
        raise FrontendError("the builtin dialect of this context has no resource storage")
    return interface


# --------------------------------------------------------------------------------------------
# Text: parsing and printing with the resources section
# --------------------------------------------------------------------------------------------

_METADATA_START = re.compile(r"^\{-#", re.MULTILINE)
_DIALECT_OPEN = re.compile(r"([A-Za-z_][\w$.]*)\s*:\s*\{")
_KEY_BEFORE_VALUE = re.compile(r'([A-Za-z_][\w$.\-]*|"[^"]*")\s*:\s*$')
_RESOURCE_REF = re.compile(r"dense_resource<([^>]+)>")


def _split_resources(text: str) -> tuple[str, dict[str, str]]:
    """Split MLIR text into its operations and its builtin dialect resources (key -> hex).

    The hex payloads (~200 MB for ResNet-50) are delimited with `str.find`, which scans at
    memory speed; only the short gaps between them (keys, braces, dialect names) go through
    regular expressions. xDSL's lexer never sees the payloads.
    """
    start = _METADATA_START.search(text)
    if start is None:
        return text, {}
    resources: dict[str, str] = {}
    dialect: str | None = None
    gap_start = pos = start.start()
    while (quote := text.find('"', pos)) >= 0:
        close = text.find('"', quote + 1)
        if close < 0:
            raise FrontendError("unterminated string in the resources section")
        pos = close + 1
        if not text.startswith("0x", quote + 1):
            continue  # a quoted key: part of the gap before its value
        gap = text[gap_start:quote]
        gap_start = pos
        if "external_resources" in gap:
            raise FrontendError("external_resources in the file metadata are not supported")
        for opened in _DIALECT_OPEN.finditer(gap):
            if opened.group(1) != "dialect_resources":
                dialect = opened.group(1)
        key = _KEY_BEFORE_VALUE.search(gap)
        if key is None:
            raise FrontendError(f"malformed resources section near '{gap.strip()[-40:]}'")
        if dialect != "builtin":
            raise FrontendError(f"resources of dialect '{dialect}' are not supported")
        resources[key.group(1).strip('"')] = text[quote + 1 : close]
    return text[: start.start()], resources


def parse_module(
    text: str,
    ctx: Context | None = None,
    *,
    parse: Callable[[Context, str], ModuleOp] | None = None,
) -> ModuleOp:
    """Parse MLIR text, including a `{-# dialect_resources ... #-}` section, into `ctx`.

    The builtin resources go into `ctx`'s blob storage. A key that the storage already holds
    (say the same file parsed twice) is renamed `key_0`, `key_1`, ... in the module, as MLIR
    does. `parse(ctx, ops_text)` parses the text before the resources section (which keeps its
    line numbers); the default is xDSL's `Parser(ctx, ops_text).parse_module()`. Raises xDSL's
    `ParseError` for text it cannot parse.
    """
    ctx = default_context() if ctx is None else ctx
    storage = _resources(ctx)
    body, resources = _split_resources(text)

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

    module = Parser(ctx, body).parse_module() if parse is None else parse(ctx, body)
    for key, blob in resources.items():
        key = renamed.get(key, key)
        if storage.lookup(key) is None:
            storage.declare_resource(key)
        storage.parse_resource(key, blob)
    return module


def print_module(module: ModuleOp, ctx: Context | None = None, *, generic: bool = False) -> str:
    """The text of `module` followed by the resources it references, as `xdsl-opt` prints them.

    `Printer.print_op` alone leaves the `dense_resource` data out; this adds the
    `{-# dialect_resources: {builtin: {...}} #-}` section from `ctx`'s storage (xDSL's
    `Printer.print_metadata`, which the `mlir` target of `xdsl-opt`/`pconv-opt` also calls).
    `generic=True` prints every operation in generic form.
    """
    ctx = default_context() if ctx is None else ctx
    stream = io.StringIO()
    printer = Printer(stream=stream, print_generic_format=generic)
    printer.print_op(module)
    printer.print_metadata(ctx.loaded_dialects)
    stream.write("\n")
    return stream.getvalue()


# --------------------------------------------------------------------------------------------
# Constants as numpy
# --------------------------------------------------------------------------------------------


def resource_array(ctx: Context, attr: DenseResourceAttr) -> np.ndarray:
    """The data of a `dense_resource` attribute as a writable numpy array of its shape.

    The blob is MLIR's: "0x", a 4-byte little-endian alignment, then the raw little-endian
    elements (i1 one byte each). Element types: f16, f32, f64, bf16 (widened to float32), i1
    (as bool), 8- to 64-bit integers (signless as signed) and index.
    """
    key = attr.resource_handle.data
    blob = _resources(ctx).lookup(key)
    if not blob:
        raise FrontendError(f"dense_resource<{key}> has no data in this context")
    element_type = attr.type.get_element_type()
    shape = static_shape(attr)
    dtype = numpy_dtype(element_type)
    data = bytearray.fromhex(blob[2:])
    if len(data) != 4 + prod(shape) * dtype.itemsize:
        raise FrontendError(
            f"dense_resource<{key}> holds {len(data) - 4} bytes, {attr.type} needs "
            f"{prod(shape) * dtype.itemsize}"
        )
    raw = np.frombuffer(data, dtype=dtype, offset=4).reshape(shape)
    return widen(raw, element_type)


def constant_array(ctx: Context, attr: Attribute) -> np.ndarray:
    """The value of a `dense<...>` (splats included) or `dense_resource<...>` attribute as numpy.

    `ctx` holds the resource blobs (it is unused for `dense<...>`). The array is a copy that
    the caller may modify; see `resource_array` for the element types.
    """
    if isinstance(attr, DenseResourceAttr):
        return resource_array(ctx, attr)
    if not isinstance(attr, DenseIntOrFPElementsAttr):
        raise FrontendError(f"expected a dense or dense_resource attribute, got {attr}")
    return dense_array(attr)


def constant_value(ctx: Context, value: SSAValue) -> np.ndarray | None:
    """The data of `value` when an `arith.constant` tensor defines it (dense or resource)."""
    owner = value.owner
    if not isinstance(owner, ConstantOp) or not isinstance(value.type, TensorType):
        return None
    return constant_array(ctx, owner.value)


_ELEMENT_TYPES: dict[str, Callable[[], Attribute]] = {
    "float16": Float16Type,
    "float32": Float32Type,
    "float64": Float64Type,
    "bool": lambda: IntegerType(1),
    "int8": lambda: IntegerType(8),
    "int16": lambda: IntegerType(16),
    "int32": lambda: IntegerType(32),
    "int64": lambda: IntegerType(64),
    "uint8": lambda: IntegerType(8, Signedness.UNSIGNED),
    "uint16": lambda: IntegerType(16, Signedness.UNSIGNED),
    "uint32": lambda: IntegerType(32, Signedness.UNSIGNED),
    "uint64": lambda: IntegerType(64, Signedness.UNSIGNED),
}


def resource_attr(ctx: Context, key: str, array: np.ndarray) -> DenseResourceAttr:
    """Store `array` as a blob in `ctx` and return `dense_resource<key'> : tensor<...>`.

    `key'` is `key`, or `key_0`, `key_1`, ... if `ctx` already holds `key`. The inverse of
    `resource_array`.
    """
    if array.dtype.name not in _ELEMENT_TYPES:
        raise FrontendError(f"cannot store {array.dtype} arrays as a dense_resource")
    element_type = _ELEMENT_TYPES[array.dtype.name]()
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    alignment = max(data.dtype.itemsize, 1).to_bytes(4, "little")
    storage = _resources(ctx)
    key = storage.declare_resource(key)
    storage.parse_resource(key, "0x" + (alignment + data.tobytes()).hex().upper())
    return DenseResourceAttr.from_params(key, TensorType(element_type, array.shape))


# --------------------------------------------------------------------------------------------
# torch -> MLIR
# --------------------------------------------------------------------------------------------


def _fast_literal_hooks() -> Any:
    """FxImporter hooks that turn float weights into resources without `Tensor.tolist()`.

    torch-mlir's own literal path converts every weight through a Python list (13 s of the
    18 s VGG-16 import); this builds the same `torch.vtensor.literal` op straight from the
    tensor's buffer. Anything else (scalars, integer or bool tensors) takes torch-mlir's path.
    """
    import torch
    from torch_mlir import ir
    from torch_mlir.extras.fx_importer import FxImporterHooks, create_mlir_tensor_type

    float_types = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16"}

    class FastLiteralHooks(FxImporterHooks):
        def __init__(self) -> None:
            # id(tensor) -> (tensor, array, attribute): the first two keep the buffer alive.
            self.literals: dict[int, tuple[torch.Tensor, np.ndarray, Any]] = {}

        def resolve_literal(self, gni: Any, literal: Any, info: Any) -> Any:
            if (
                not isinstance(literal, torch.Tensor)
                or literal.dtype not in float_types
                or literal.numel() <= 1
            ):
                return None
            if id(literal) not in self.literals:
                try:
                    array = np.ascontiguousarray(literal.detach().cpu().numpy())
                except Exception:  # e.g. a fake tensor: let torch-mlir handle it
                    return None
                shape = "_".join(str(d) for d in literal.shape)
                attr = ir.DenseResourceElementsAttr.get_from_buffer(
                    array, f"torch_tensor_{shape}_{literal.dtype}", create_mlir_tensor_type(literal)
                )
                self.literals[id(literal)] = (literal, array, attr)
            attr = self.literals[id(literal)][2]
            dims = ",".join(str(d) for d in literal.shape)
            vtensor = ir.Type.parse(f"!torch.vtensor<[{dims}],{float_types[literal.dtype]}>")
            return ir.Operation.create(
                name="torch.vtensor.literal", results=[vtensor], attributes={"value": attr}
            ).result

    return FastLiteralHooks()


_GENERALIZE = """
module attributes {{transform.with_named_sequence}} {{
  transform.named_sequence @__transform_main(%root: !transform.any_op {{transform.readonly}}) {{
    %ops = transform.structured.match ops{{{names}}} in %root
      : (!transform.any_op) -> !transform.any_op
    %generic = transform.structured.generalize %ops : (!transform.any_op) -> !transform.any_op
    transform.yield
  }}
}}
"""


def _generalize_unknown_linalg_ops(mlir_module: Any, ctx: Context) -> list[str]:
    """Rewrite, in MLIR, the linalg named ops that `ctx` does not define into `linalg.generic`.

    xDSL 0.74 has no `linalg.depthwise_conv_2d_nchw_chw` (MobileNet-V2's depthwise layers),
    among others. Upstream's `transform.structured.generalize` gives the equivalent generic op,
    which every xDSL tool understands. Returns the names of the ops rewritten.
    """
    from torch_mlir import ir
    from torch_mlir.dialects.transform import interpreter

    names: set[str] = set()

    def collect(op: Any) -> Any:
        names.add(op.name)
        return ir.WalkResult.ADVANCE

    mlir_module.operation.walk(collect)
    unknown = []
    for name in sorted(n for n in names if n.startswith("linalg.")):
        op_type = ctx.get_optional_op(name)
        if op_type is None or issubclass(op_type, UnregisteredOp):
            unknown.append(name)
    if unknown:
        with mlir_module.context:
            script = ir.Module.parse(
                _GENERALIZE.format(names="[" + ", ".join(f'"{n}"' for n in unknown) + "]")
            )
            interpreter.apply_named_sequence(
                mlir_module.operation, script.body.operations[0], script
            )
    return unknown


_USER_FRAME = re.compile(r'File "([^"]+)", line (\d+), in ')


def _one_sentence(error: BaseException, diagnostics: list[str] | None = None) -> str:
    """The telling line of a torch / torch-mlir / xDSL error, with the user's source line."""
    if isinstance(error, ParseError):
        return error.msg
    if diagnostics:  # MLIR's own diagnostics, when a torch-mlir lowering pass failed
        return diagnostics[0]
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    sentence = " ".join(lines[0].split()) if lines else type(error).__name__
    frames = _USER_FRAME.findall(text)
    if frames:
        sentence += f" (at {frames[-1][0]}:{frames[-1][1]})"
    return sentence


@contextmanager
def _quiet_torch() -> Iterator[None]:
    """Hold back torch's log output and stderr while exporting; replay stderr on success.

    A failed export otherwise floods stderr with partial graphs and logged tracebacks; the
    `FrontendError` says what went wrong and keeps the original exception.
    """
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL + 1)
    held = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stderr(held):
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        torch_logger.setLevel(level)
    sys.stderr.write(held.getvalue())  # only reached when the export succeeded


def _export(model: torch.nn.Module, args: tuple[Any, ...]) -> Any:
    """torch-mlir's `fx.export_and_import` to linalg-on-tensors, as an MLIR module.

    It runs in an MLIR context of our own whose diagnostic handler keeps the errors of failing
    lowering passes (MLIR would print them to stderr) for the `FrontendError`.
    """
    from torch_mlir import fx, ir
    from torch_mlir.dialects import torch as torch_dialect
    from torch_mlir.extras.fx_importer import FxImporter

    diagnostics: list[str] = []

    def keep(diagnostic: Any) -> bool:
        if diagnostic.severity == ir.DiagnosticSeverity.ERROR:
            diagnostics.append(str(diagnostic.message))
        return True

    context = ir.Context()
    torch_dialect.register_dialect(context)
    handler = context.attach_diagnostic_handler(keep)
    hooks = _fast_literal_hooks()
    importer = FxImporter(context=context, hooks=hooks)
    was_training = model.training
    model.eval()
    try:
        with _quiet_torch():
            module = fx.export_and_import(
                model, *args, output_type="linalg-on-tensors", fx_importer=importer
            )
    except Exception as e:
        raise FrontendError(
            f"torch-mlir cannot export {type(model).__name__} to linalg-on-tensors: "
            + _one_sentence(e, diagnostics),
            e,
        ) from None
    finally:
        model.train(was_training)
        handler.detach()
    return module


def import_torch(
    model: torch.nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    ctx: Context | None = None,
) -> ModuleOp:
    """Import `model` as linalg on tensors: an xDSL module with one `func.func @main`.

    The model is exported in eval mode (BatchNorm uses its running statistics, dropout is off)
    for the shapes of `example_input`; its training mode is restored afterwards. Weights become
    `arith.constant dense_resource<...>` whose data is stored in `ctx` (default:
    `default_context()`); read them with `constant_array(ctx, attr)`, print the module with
    `print_module(module, ctx)`. linalg named ops that `ctx` does not define (in xDSL 0.74:
    `linalg.depthwise_conv_2d_nchw_chw`) arrive as the equivalent `linalg.generic`. Raises
    `FrontendError` if torch or torch-mlir cannot export the model or xDSL cannot parse the
    result.
    """
    ctx = default_context() if ctx is None else ctx
    name = type(model).__name__
    mlir_module = _export(
        model, example_input if isinstance(example_input, tuple) else (example_input,)
    )
    generalized = _generalize_unknown_linalg_ops(mlir_module, ctx)
    # The generic form: xDSL cannot parse the custom syntax of some LLVM-22-era ops.
    text = mlir_module.operation.get_asm(print_generic_op_form=True)
    del mlir_module
    try:
        module = parse_module(text, ctx)
        if generalized:  # a note `transform.structured.generalize` leaves on its results
            for op in module.walk():
                op.attributes.pop("linalg.memoized_indexing_maps", None)
        module.verify()
    except (ParseError, VerifyException) as e:
        raise FrontendError(
            f"xDSL cannot read torch-mlir's output for {name}: {_one_sentence(e)}", e
        ) from None
    return module

"""The torch front end: a `torch.nn.Module` to an xDSL `ModuleOp` of linalg on tensors.

    >>> ctx = make_context()
    >>> module = import_torch(model, torch.randn(1, 3, 32, 32), ctx=ctx)    # doctest: +SKIP
    >>> print(print_module(module, ctx))                                    # doctest: +SKIP

torch-mlir (`fx.export_and_import(..., output_type="linalg-on-tensors")`) turns the model into
MLIR, which xDSL parses from text printed without the weights; the weights go from the torch
tensors to the context as arrays, never as text. They arrive as `dense_resource<key>`
attributes whose bytes live in the context's resource storage, not in the module: keep the
context next to the module, read a weight with `pconv_mlir.elements.constant_array(ctx, attr)`
and print the module with `pconv_mlir.ir.print_module(module, ctx)` (a bare `Printer.print_op`
drops the weights).

This module imports torch and torch-mlir only inside its functions; the rest of pconv-mlir
(the dialect, the passes, `pconv-opt`) never needs them.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects.builtin import ModuleOp, UnregisteredOp
from xdsl.utils.exceptions import ParseError, VerifyException

from pconv_mlir.elements import Blob, declared, fresh_key, has_data, storage_of, store_blob
from pconv_mlir.errors import FrontendError, PconvError
from pconv_mlir.ir import default_context, parse_module, print_module

if TYPE_CHECKING:
    import torch

__all__ = ["FrontendError", "ImportedModule", "import_torch"]


# --------------------------------------------------------------------------------------------
# torch -> MLIR
# --------------------------------------------------------------------------------------------


def _literal_hooks(storage: OpAsmDialectInterface, names: dict[tuple[int, Any], str]) -> Any:
    """FxImporter hooks that turn tensor literals into resources whose data never becomes text.

    Each tensor becomes a `dense_resource<key>` built straight from the tensor's buffer
    (torch-mlir's own literal path goes through `Tensor.tolist()`, 13 s of an 18 s VGG-16
    import), under a key of our own: the name of the model's parameter or buffer with the same
    memory and shape (`names`: (data pointer, shape) -> name; `features.0.weight` gives
    `features_0_weight`), else one made from the shape; unique among the hooks' keys and the
    keys `storage` already holds, so that neither MLIR nor xDSL's parser renames it.
    The hooks keep each tensor's numpy view (`literals`: key -> array), so the data can be
    stored in the xDSL context after the module was printed without its blobs. Scalars and
    other dtypes (complex, float8) take torch-mlir's path; `declined` counts those that become
    resources there. bf16 tensors go as their bits (int16), so torch-mlir's `ml_dtypes` is not
    needed.
    """
    import torch
    from torch_mlir import ir
    from torch_mlir.extras.fx_importer import FxImporterHooks, create_mlir_tensor_type

    mlir_types = {
        torch.float16: "f16",
        torch.float32: "f32",
        torch.float64: "f64",
        torch.int8: "si8",
        torch.int16: "si16",
        torch.int32: "si32",
        torch.int64: "si64",
        torch.uint8: "ui8",
        torch.bool: "i1",
        torch.bfloat16: "bf16",
    }

    class LiteralHooks(FxImporterHooks):
        def __init__(self) -> None:
            self.literals: dict[str, np.ndarray] = {}
            """key -> the tensor's data as numpy (a view that keeps the tensor alive)."""
            self.attributes: dict[int, tuple[torch.Tensor, Any]] = {}
            """id(tensor) -> (tensor, its MLIR attribute): one resource per tensor."""
            self.declined = 0

        def _key(self, literal: torch.Tensor) -> str:
            target = names.get((literal.data_ptr(), tuple(literal.shape)))
            if target:
                base = re.sub(r"[^A-Za-z0-9_]", "_", target)
            else:
                shape = "x".join(str(d) for d in literal.shape)
                base = f"torch_tensor_{shape}_{mlir_types[literal.dtype]}"
            if not base[0].isalpha() and base[0] != "_":
                base = "torch_" + base
            return fresh_key(storage, base, self.literals)

        def resolve_literal(self, gni: Any, literal: Any, info: Any) -> Any:
            if not isinstance(literal, torch.Tensor) or literal.numel() <= 1:
                return None
            if literal.dtype not in mlir_types:
                self.declined += 1
                return None
            if id(literal) not in self.attributes:
                try:
                    tensor = literal.detach().cpu()
                    if tensor.dtype == torch.bfloat16:  # numpy has none: its bits as int16
                        tensor = tensor.view(torch.int16)
                    array = np.ascontiguousarray(tensor.numpy())
                except Exception:  # e.g. a fake tensor: let torch-mlir handle it
                    self.declined += 1
                    return None
                key = self._key(literal)
                attr = ir.DenseResourceElementsAttr.get_from_buffer(
                    array, key, create_mlir_tensor_type(literal)
                )
                self.literals[key] = array
                self.attributes[id(literal)] = (literal, attr)
            attr = self.attributes[id(literal)][1]
            dims = ",".join(str(d) for d in literal.shape)
            vtensor = ir.Type.parse(f"!torch.vtensor<[{dims}],{mlir_types[literal.dtype]}>")
            return ir.Operation.create(
                name="torch.vtensor.literal", results=[vtensor], attributes={"value": attr}
            ).result

    return LiteralHooks()


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
_FILE_LOC = re.compile(r'"([^"]+)":(\d+):\d+')


@cache
def _torch_sources() -> tuple[str, ...]:
    """Prefixes of the files that are torch's own code, not the user's."""
    import torch

    return (os.path.dirname(torch.__file__) + os.sep, "<eval_with_key>")


def _user_frames(frames: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """The (file, line) frames that are the user's code, not torch's own modules."""
    return [(f, int(line)) for f, line in frames if not f.startswith(_torch_sources())]


def _node_origins(program: Any) -> dict[tuple[str, int], str]:
    """(file, line) of the user's source -> the torch ops the exported graph has there and the
    module they belong to, as `aten.sort in Sorts` or `aten.sort in layer 'head.sort' (Sorts)`."""
    ops: dict[tuple[str, int], list[str]] = {}
    owners: dict[tuple[str, int], str] = {}
    for node in program.graph.nodes:
        frames = _user_frames(_USER_FRAME.findall(node.meta.get("stack_trace") or ""))
        if not frames or node.op != "call_function":
            continue
        where = frames[-1]
        name = str(node.target).removesuffix(".default")  # an OpOverload: aten.sort.default
        if name.startswith("aten.") and name not in ops.setdefault(where, []):
            ops[where].append(name)
        stack = node.meta.get("nn_module_stack") or {}
        if stack:
            path, kind = list(stack.values())[-1]
            kind = str(getattr(kind, "__qualname__", kind)).rsplit(".", 1)[-1]
            owners[where] = f"layer '{path}' ({kind})" if path else kind
    return {
        where: f"{', '.join(names)} in {owners.get(where, 'the model')}"
        for where, names in ops.items()
    }


def _check_supported(
    mlir_module: Any, ctx: Context, model: str, origins: dict[tuple[str, int], str]
) -> None:
    """Raise `FrontendError` for the first op of torch-mlir's output that `ctx` does not
    define (torch.sort becomes `tm_tensor.sort`, which nothing in pconv-mlir lowers), naming it,
    the torch op and module it came from and the user's source line when torch recorded it."""
    from torch_mlir import ir

    unknown: list[Any] = []

    def find(op: Any) -> Any:
        op_type = ctx.get_optional_op(op.name)
        if op_type is None or issubclass(op_type, UnregisteredOp):
            unknown.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    mlir_module.operation.walk(find, ir.WalkOrder.PRE_ORDER)
    if not unknown:
        return
    op = unknown[0]
    frames = _user_frames(_FILE_LOC.findall(str(op.location)))
    if not frames:
        raise FrontendError(
            f"{model}: torch-mlir turns a torch op into '{op.name}', which pconv-mlir cannot "
            "compile (no lowering for it)"
        )
    where = frames[0]
    origin = origins.get(where, f"a torch op of {model}")
    raise FrontendError(
        f"{where[0]}:{where[1]}: error: {origin} becomes '{op.name}' in torch-mlir, which "
        "pconv-mlir cannot compile (no lowering for it)"
    )


def _one_sentence(error: BaseException, diagnostics: list[str] | None = None) -> str:
    """The telling line of a torch / torch-mlir / xDSL error, with the user's source line."""
    if isinstance(error, ParseError):
        return error.msg
    if isinstance(error, PconvError):
        return str(error).split(": error: ", 1)[-1]
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


_TORCH_MLIR_PIPELINES = (
    "builtin.module(func.func(torch-match-quantized-custom-ops),"
    " torchdynamo-export-to-torch-backend-pipeline{ extra-library=})",
    "builtin.module(torch-backend-to-linalg-on-tensors-backend-pipeline{allow-non-finites=true})",
)
"""The two pipelines of torch-mlir's `fx.export_and_import(output_type="linalg-on-tensors")`."""


def _export(
    model: torch.nn.Module, args: tuple[Any, ...], hooks: Any = None
) -> tuple[Any, dict[tuple[str, int], str]]:
    """torch-mlir's `fx.export_and_import` to linalg-on-tensors, as an MLIR module, and where in
    the model each source line's torch ops come from (`_node_origins`).

    It runs in an MLIR context of our own whose diagnostic handler keeps the errors of failing
    lowering passes (MLIR would print them to stderr) for the `FrontendError`. The import stops
    at torch-mlir's raw torch IR, and torch-mlir's two lowering pipelines run here: its own
    driver (`run_pipeline_with_repro_report`) prints the whole module, every weight as hex,
    before each pipeline in case it fails (2 GB and 10 s for VGG-16).
    """
    import torch
    from torch_mlir import fx, ir
    from torch_mlir.dialects import torch as torch_dialect
    from torch_mlir.extras.fx_importer import FxImporter
    from torch_mlir.passmanager import PassManager

    diagnostics: list[str] = []

    def keep(diagnostic: Any) -> bool:
        if diagnostic.severity == ir.DiagnosticSeverity.ERROR:
            diagnostics.append(str(diagnostic.message))
        return True

    context = ir.Context()
    torch_dialect.register_dialect(context)
    handler = context.attach_diagnostic_handler(keep)
    importer = FxImporter(context=context, hooks=hooks)
    was_training = model.training
    model.eval()
    try:
        with _quiet_torch():
            program = torch.export.export(model, args)
            origins = _node_origins(program)
            module = fx.export_and_import(program, output_type="raw", fx_importer=importer)
            with context:
                context.emit_error_diagnostics = True
                for pipeline in _TORCH_MLIR_PIPELINES:
                    PassManager.parse(pipeline).run(module.operation)
    except Exception as e:
        raise FrontendError(
            f"torch-mlir cannot export {type(model).__name__} to linalg-on-tensors: "
            + _one_sentence(e, diagnostics),
            e,
        ) from None
    finally:
        model.train(was_training)
        handler.detach()
    return module, origins


def import_torch(
    model: torch.nn.Module,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    ctx: Context | None = None,
    copy_weights: bool = True,
    name: str | None = None,
) -> ImportedModule:
    """Import `model` as linalg on tensors: an xDSL module with one `func.func @main` (an
    `ImportedModule`: `str()` of it is a complete MLIR file, weights included).

    The model is exported in eval mode (BatchNorm uses its running statistics, dropout is off)
    for the shapes of `example_input`; its training mode is restored afterwards. Weights become
    `arith.constant dense_resource<key>` (`key` from the parameter's name: `features_0_weight`)
    whose data is stored in `ctx` (default: `pconv_mlir.ir.default_context()`); read them with
    `pconv_mlir.elements.constant_array`, print the module with
    `pconv_mlir.ir.print_module(module, ctx)`. linalg named ops that `ctx` does not define (in
    xDSL 0.74: `linalg.depthwise_conv_2d_nchw_chw`) arrive as the equivalent `linalg.generic`.

    The weights never become text on the way: torch-mlir's module is printed without its blobs
    and the tensors' data goes to `ctx` as arrays. A context with its own resources (a
    `BlobStore`, `make_context(own_resources=True)`) keeps them as bytes: one copy of each
    tensor, or none with `copy_weights=False` (the module then shares the model's memory, so
    the model's weights must not change while the module is used). xDSL's shared storage (the
    default context) holds hex text, so there each weight is encoded once.

    Raises `FrontendError` if torch or torch-mlir cannot export the model or xDSL cannot parse
    the result, and for an op that nothing in pconv-mlir compiles (torch.sort becomes
    `tm_tensor.sort`): the message names the op, the torch op and the module it came from, and
    leads with the user's source line when torch recorded it. `name` is the model's name in
    messages (default: its class name).
    """
    ctx = default_context() if ctx is None else ctx
    storage = storage_of(ctx)
    name = type(model).__name__ if name is None else name
    names = {
        (tensor.data_ptr(), tuple(tensor.shape)): key
        for key, tensor in (*model.named_parameters(), *model.named_buffers())
    }
    hooks = _literal_hooks(storage, names)
    mlir_module, origins = _export(
        model, example_input if isinstance(example_input, tuple) else (example_input,), hooks
    )
    generalized = _generalize_unknown_linalg_ops(mlir_module, ctx)
    _check_supported(mlir_module, ctx, name, origins)
    # The generic form: xDSL cannot parse the custom syntax of some LLVM-22-era ops. Without
    # blobs (`large_resource_limit=0`: the section is left empty), unless torch-mlir made some
    # literal itself (a dtype numpy lacks), whose data then has to come as text.
    limit = 0 if hooks.declined == 0 else None
    text = mlir_module.operation.get_asm(print_generic_op_form=True, large_resource_limit=limit)
    del mlir_module
    hooks.attributes.clear()  # MLIR's references to the tensors
    try:
        module = parse_module(text, ctx, name=f"<torch-mlir: {name}>")
        del text
        if generalized:  # a note `transform.structured.generalize` leaves on its results
            for op in module.walk():
                op.attributes.pop("linalg.memoized_indexing_maps", None)
        for key, array in hooks.literals.items():
            # Keys the module does not use (a literal MLIR folded away) were never declared.
            if declared(storage, key) and not has_data(storage, key):
                store_blob(storage, key, Blob.of(array, copy=copy_weights))
        hooks.literals.clear()
        module.verify()
    except (PconvError, ParseError, VerifyException) as e:
        raise FrontendError(
            f"xDSL cannot read torch-mlir's output for {name}: {_one_sentence(e)}", e
        ) from None
    imported = ImportedModule(module.detach_region(module.body), ctx)
    imported.attributes.update(module.attributes)
    return imported


class ImportedModule(ModuleOp):
    """The `builtin.module` that `import_torch` returns: a `ModuleOp` that remembers the
    context holding its weights, so that the obvious printing works: `str(module)` (and
    `print(module)`) is `pconv_mlir.ir.print_module(module, module.ctx)`, a complete MLIR file
    with its `dialect_resources` section, which `pconv-opt` reads back with the weights.
    (A bare xDSL `Printer` prints no resources; a file without them gets a located error that
    says how to print one with them.)"""

    ctx: Context | None = None
    """The context holding the weights (None for a copy made by `clone()`: the default one)."""

    def __init__(self, body: Any, ctx: Context) -> None:
        super().__init__(body)
        self.ctx = ctx

    def __str__(self) -> str:
        return print_module(self, self.ctx)

"""The torch front end: a `torch.nn.Module` to an xDSL `ModuleOp` of linalg on tensors.

    >>> ctx = make_context()
    >>> module = import_torch(model, torch.randn(1, 3, 32, 32), ctx=ctx)    # doctest: +SKIP
    >>> print(print_module(module, ctx))                                    # doctest: +SKIP

torch-mlir (`fx.export_and_import(..., output_type="linalg-on-tensors")`) turns the model into
MLIR, which xDSL parses. Weights arrive as `dense_resource<key>` attributes whose bytes live in
the context's resource storage, not in the module: keep the context next to the module, read a
weight with `pconv_mlir.elements.constant_array(ctx, attr)` and print the module with
`pconv_mlir.ir.print_module(module, ctx)` (a bare `Printer.print_op` drops the weights).

This module imports torch and torch-mlir only inside its functions; the rest of pconv-mlir
(the dialect, the passes, `pconv-opt`) never needs them.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from typing import TYPE_CHECKING, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnregisteredOp
from xdsl.utils.exceptions import ParseError, VerifyException

from pconv_mlir.errors import FrontendError, PconvError
from pconv_mlir.ir import default_context, parse_module

if TYPE_CHECKING:
    import torch

__all__ = ["FrontendError", "import_torch"]


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
    `pconv_mlir.ir.default_context()`); read them with `pconv_mlir.elements.constant_array`,
    print the module with `pconv_mlir.ir.print_module(module, ctx)`. linalg named ops that
    `ctx` does not define (in xDSL 0.74: `linalg.depthwise_conv_2d_nchw_chw`) arrive as the
    equivalent `linalg.generic`. Raises
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
        module = parse_module(text, ctx, name=f"<torch-mlir: {name}>")
        if generalized:  # a note `transform.structured.generalize` leaves on its results
            for op in module.walk():
                op.attributes.pop("linalg.memoized_indexing_maps", None)
        module.verify()
    except (PconvError, ParseError, VerifyException) as e:
        raise FrontendError(
            f"xDSL cannot read torch-mlir's output for {name}: {_one_sentence(e)}", e
        ) from None
    return module

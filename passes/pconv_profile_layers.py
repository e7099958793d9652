"""pconv-profile-layers: time every layer of a network with calls around it.

A *layer* is an op in a function's body that does the work of a network layer: a pconv conv,
or a linalg op that computes (`linalg.generic`, a named conv, pooling or matmul, ...); data
movement (`tensor.pad`, `linalg.fill`, `linalg.broadcast`, `tensor.empty`, constants) is not
(`is_layer`). The pass numbers the layers of each function in order and puts
`func.call @pconv_layer_begin(i)` before layer i and `func.call @pconv_layer_end(i)` after it;
the runtime (`pconv_mlir/runtime/pconv_profile.c`) adds up the time between the two. The calls
have side effects, so the lowering keeps each layer's code between them.

Each function gets a `pconv.layers` attribute: one string per layer, `"<op name> @ <location>"`,
in the order of the numbers.

    %y = pconv.fkw_conv2d %x, ...
  becomes
    func.call @pconv_layer_begin(%c3) : (i64) -> ()
    %y = pconv.fkw_conv2d %x, ...
    func.call @pconv_layer_end(%c3) : (i64) -> ()
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from pconv_mlir.errors import op_location

BEGIN, END = "pconv_layer_begin", "pconv_layer_end"

_MOVEMENT = (linalg.FillOp, linalg.BroadcastOp, linalg.TransposeOp, linalg.CopyOp)


def is_layer(op: Operation) -> bool:
    """Whether `op` is a layer: a pconv conv or a computing linalg op (see the module doc)."""
    if op.name.startswith("pconv."):
        return True
    return op.name.startswith("linalg.") and not isinstance(op, _MOVEMENT) and bool(op.results)


def layers_of(function: func.FuncOp) -> list[Operation]:
    """The layers in `function`'s body, in order."""
    if not function.body.blocks:
        return []
    return [op for op in function.body.block.ops if is_layer(op)]


def describe(op: Operation) -> str:
    """`<op name> @ <location>`: how the layer table names a layer."""
    return f"{op.name} @ {op_location(op)}"


@dataclass(frozen=True)
class PconvProfileLayersPass(ModulePass):
    """Puts timing calls around every layer of every function (see the module docstring)."""

    name = "pconv-profile-layers"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        functions = [f for f in op.ops if isinstance(f, func.FuncOp) and f.body.blocks]
        if not any(layers_of(f) for f in functions):
            return
        names = {f.sym_name.data for f in op.ops if isinstance(f, func.FuncOp)}
        for symbol in (BEGIN, END):
            if symbol not in names:
                Rewriter.insert_op(
                    func.FuncOp.external(symbol, [i64], []), InsertPoint.at_end(op.body.block)
                )
        for function in functions:
            layers = layers_of(function)
            if not layers:
                continue
            for number, layer in enumerate(layers):
                for symbol, where in ((BEGIN, InsertPoint.before(layer)), (END, None)):
                    index = arith.ConstantOp(IntegerAttr(number, i64))
                    call = func.CallOp(symbol, [index.result], [])
                    where = where or InsertPoint.after(layer)
                    Rewriter.insert_op([index, call], where)
            function.attributes["pconv.layers"] = ArrayAttr(
                StringAttr(describe(layer)) for layer in layers
            )

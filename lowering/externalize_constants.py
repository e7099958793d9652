"""pconv-externalize-constants: take large tensor constants out of the IR, as external symbols.

Every `arith.constant` tensor of the module's own functions whose data is more than `threshold`
bytes (a `dense_resource<...>`, or a `dense<...>` that is not a splat) becomes a read of an
external `memref.global`: the global has no data in the IR that reaches mlir-opt, and the back
end links the bytes in (`pconv_mlir.runtime.build.WeightsFile`: one binary file, an assembly
stub with `.incbin`). Constants of at most `threshold` bytes, splats and constants inside nested
modules are left alone. Equal constants share one global.

The global records its data in the discardable attribute `pconv.external_data`, a
`dense_resource<key>` of the context's storage (a `dense<...>` is moved to a blob first), so a
printed module keeps its weights. xDSL 0.74's `memref.global` needs `sym_visibility` and
`initial_value`, which MLIR's external declaration lacks: in xDSL the global is public,
`uninitialized` and constant; `pconv_mlir.lowering.llvm.print_for_mlir_opt` prints it as MLIR's
external declaration (no initial value), which `finalize-memref-to-llvm` makes an
`llvm.mlir.global external constant`, and leaves the data out. The tensor is
`bufferization.to_tensor ... restrict` (read-only: bufferization copies before any write).

Option: `threshold` (bytes, default `pconv_mlir.elements.INLINE_LIMIT`).

    %w = arith.constant dense_resource<features_0_weight> : tensor<64x3x3x3xf32>
  becomes
    "memref.global"() <{sym_name = "pconv_features_0_weight", sym_visibility = "public",
        type = memref<64x3x3x3xf32>, initial_value, constant, alignment = 64 : i64}>
        {pconv.external_data = dense_resource<features_0_weight> : tensor<64x3x3x3xf32>}
    ...
    %0 = memref.get_global @pconv_features_0_weight : memref<64x3x3x3xf32>
    %w = bufferization.to_tensor %0 restrict : memref<64x3x3x3xf32> to tensor<64x3x3x3xf32>
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import prod

import numpy as np
from xdsl.context import Context
from xdsl.dialects import memref
from xdsl.dialects.arith import ConstantOp
from xdsl.dialects.bufferization import ToTensorOp
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    MemRefType,
    ModuleOp,
    NoneAttr,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint
from xdsl.traits import SymbolTable

from pconv_mlir.elements import (
    INLINE_LIMIT,
    Blob,
    ElementsError,
    blob_of,
    dense_resource_of,
    numpy_dtype,
    storage_of,
)
from pconv_mlir.errors import LoweringError, OptionError

__all__ = [
    "ALIGNMENT",
    "EXTERNAL_DATA",
    "ExternalizeConstantsPass",
    "external_constants",
    "external_declaration",
    "is_external",
]

EXTERNAL_DATA = "pconv.external_data"
"""The attribute of an externalized `memref.global` that holds its data (a `dense_resource`)."""

ALIGNMENT = 64
"""Byte alignment of every externalized constant (a cache line; any vector load)."""


def is_external(op: Operation) -> bool:
    """Whether `op` is a `memref.global` made by this pass (data in `EXTERNAL_DATA`)."""
    return isinstance(op, memref.GlobalOp) and isinstance(
        op.attributes.get(EXTERNAL_DATA), DenseResourceAttr
    )


def external_declaration(op: memref.GlobalOp) -> memref.GlobalOp:
    """A detached copy of externalized global `op` as MLIR spells an external declaration: no
    initial value, no data attribute. For printing only (xDSL's verifier refuses it)."""
    properties = {k: v for k, v in op.properties.items() if k != "initial_value"}
    attributes = {k: v for k, v in op.attributes.items() if k != EXTERNAL_DATA}
    return memref.GlobalOp.create(properties=properties, attributes=attributes)


def external_constants(module: ModuleOp, ctx: Context) -> list[tuple[str, Blob]]:
    """(symbol, blob) of every externalized global of `module`, in module order, with its data
    from `ctx`'s storage. Raises a located `LoweringError` for a global whose data `ctx` does
    not hold (a module printed with its resources elided)."""
    storage = storage_of(ctx)
    found: list[tuple[str, Blob]] = []
    for op in module.body.block.ops:
        if not is_external(op):
            continue
        attr = op.attributes[EXTERNAL_DATA]
        assert isinstance(attr, DenseResourceAttr) and isinstance(op, memref.GlobalOp)
        key = attr.resource_handle.data
        blob = blob_of(storage, key)
        if blob is None:
            raise LoweringError(missing_data_message(key), op=op)
        found.append((op.sym_name.data, blob))
    return found


def missing_data_message(key: str) -> str:
    """What to say about a `dense_resource<key>` with no data when code is built."""
    return (
        f"dense_resource<{key}> has no data in the context the module is lowered in (was it "
        "parsed into another context, or printed with --pconv-elide-resources-over or without "
        "its dialect_resources section? print it in full, or compile from the model)"
    )


def _nbytes(attr: DenseResourceAttr | DenseIntOrFPElementsAttr) -> int | None:
    """Bytes of the constant's data from its type; None for a splat or an unusable type."""
    type_ = attr.type
    if not isinstance(type_, TensorType) or not isinstance(type_.encoding, NoneAttr):
        return None
    shape = type_.get_shape()
    if any(d < 0 for d in shape):
        return None
    try:
        itemsize = numpy_dtype(type_.get_element_type()).itemsize
    except ElementsError:
        return None
    if isinstance(attr, DenseIntOrFPElementsAttr) and prod(shape) > 1:
        raw = np.frombuffer(attr.data.data, dtype=np.dtype(f"V{itemsize}"))
        if raw.size <= 1 or (raw == raw[0]).all():
            return None  # a splat (xDSL expands it when parsed): one value in the text
    return prod(shape) * itemsize


@dataclass
class _Externalize(RewritePattern):
    ctx: Context
    module: ModuleOp
    threshold: int
    globals: dict[object, memref.GlobalOp] = field(default_factory=dict)
    """resource key or dense attribute -> the global made for it."""
    last: memref.GlobalOp | None = None

    def _owned_by_module(self, op: Operation) -> bool:
        parent = op.parent_op()
        while parent is not None and not parent.has_trait(SymbolTable):
            parent = parent.parent_op()
        return parent is self.module

    def _symbol(self, key: str) -> str:
        base = "pconv_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
        name, counter = base, 0
        while SymbolTable.lookup_symbol(self.module, name) is not None:
            name, counter = f"{base}_{counter}", counter + 1
        return name

    def _global(
        self,
        attr: DenseResourceAttr | DenseIntOrFPElementsAttr,
        op: ConstantOp,
        rewriter: PatternRewriter,
    ) -> memref.GlobalOp:
        identity: object = (
            attr.resource_handle.data if isinstance(attr, DenseResourceAttr) else attr
        )
        found = self.globals.get(identity)
        if found is not None:
            return found
        if isinstance(attr, DenseIntOrFPElementsAttr):
            attr = dense_resource_of(self.ctx, attr, op.result.name_hint or "constant")
        type_ = attr.type
        assert isinstance(type_, TensorType)
        new = memref.GlobalOp.get(
            StringAttr(self._symbol(attr.resource_handle.data)),
            MemRefType(type_.get_element_type(), type_.get_shape()),
            UnitAttr(),
            StringAttr("public"),
            constant=UnitAttr(),
            alignment=ALIGNMENT,
        )
        new.attributes[EXTERNAL_DATA] = attr
        new.location = op.location
        where = (
            InsertPoint.after(self.last)
            if self.last is not None
            else InsertPoint.at_start(self.module.body.block)
        )
        rewriter.insert(new, where)
        self.globals[identity] = self.last = new
        return new

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ConstantOp, rewriter: PatternRewriter) -> None:
        attr = op.value
        if not isinstance(attr, DenseResourceAttr | DenseIntOrFPElementsAttr):
            return
        if attr.type != op.result.type or not self._owned_by_module(op):
            return
        size = _nbytes(attr)
        if size is None or size <= self.threshold:
            return
        global_ = self._global(attr, op, rewriter)
        get = memref.GetGlobalOp(global_.sym_name.data, global_.type)
        tensor = ToTensorOp(get.memref, restrict=True)
        rewriter.replace(op, [get, tensor], [tensor.tensor])
        tensor.tensor.name_hint = op.result.name_hint


@dataclass(frozen=True)
class ExternalizeConstantsPass(ModulePass):
    """Takes tensor constants larger than `threshold` bytes out of the IR as external globals.

    See the module docstring for what it makes, what it leaves alone and an example.
    """

    name = "pconv-externalize-constants"

    threshold: int = INLINE_LIMIT

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise OptionError(f"threshold = {self.threshold!r} is not a number of bytes")
        if self.threshold < 0:
            raise OptionError(f"threshold = {self.threshold} is negative")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            _Externalize(ctx, op, self.threshold), apply_recursively=False
        ).rewrite_module(op)

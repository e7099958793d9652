"""Element data as numpy: the one place that turns MLIR constants into arrays and back.

- `SCALARS`, `scalar_of`: the one table of scalar types (MLIR type, numpy dtype, C type, ctypes
  type) that the C ABI, the runners, the drivers and the headers share.
- `dense_array(attr)`: a `dense<...>` attribute (splats included) as numpy; `dense_attr(array)`
  the other way.
- Resources: `dense_resource<key>` blobs live in a context's builtin dialect storage (xDSL's
  `OpAsmDialectInterface`), not in the module. `constant_array(ctx, attr)` and
  `constant_value(ctx, value)` read a weight of either kind; `resource_attr(ctx, key, array)`
  stores one. `BlobStore` is a storage that keeps the bytes (not hex text) for contexts made
  with `pconv_mlir.ir.make_context(own_resources=True)`.
- `active_storage()` / `using_storage(ctx)`: the storage that code without a context at hand
  (the dialect's verifiers) reads blobs from. Drivers that hold a context (`Pipeline.run`,
  `pconv-opt`, `compile`) make theirs the active one; the default is xDSL's process-wide one.

This module imports numpy and xDSL only: the dialect and every pass may use it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialect_interfaces.op_asm import OpAsmDialectInterface
from xdsl.dialects.arith import ConstantOp
from xdsl.dialects.builtin import (
    BFloat16Type,
    Builtin,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    Signedness,
    TensorType,
)
from xdsl.ir import Attribute, SSAValue


class ElementsError(ValueError):
    """Element data that numpy cannot hold, or a resource without data."""


# --------------------------------------------------------------------------------------------
# Scalar types: MLIR, numpy, C, ctypes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarType:
    """One scalar type as each layer spells it."""

    dtype: str
    """numpy dtype name: `float32`, `int64`, ..."""
    c: str
    """C type: `float`, `int64_t`, ..."""
    ctypes: Any
    """ctypes type, for calls through a shared library."""
    mlir: Callable[[], Attribute]
    """Builds the MLIR type."""


SCALARS: dict[str, ScalarType] = {
    s.dtype: s
    for s in (
        ScalarType("float16", "_Float16", None, Float16Type),
        ScalarType("float32", "float", ctypes.c_float, Float32Type),
        ScalarType("float64", "double", ctypes.c_double, Float64Type),
        ScalarType("bool", "_Bool", ctypes.c_bool, lambda: IntegerType(1)),
        ScalarType("int8", "int8_t", ctypes.c_int8, lambda: IntegerType(8)),
        ScalarType("int16", "int16_t", ctypes.c_int16, lambda: IntegerType(16)),
        ScalarType("int32", "int32_t", ctypes.c_int32, lambda: IntegerType(32)),
        ScalarType("int64", "int64_t", ctypes.c_int64, lambda: IntegerType(64)),
        ScalarType("uint8", "uint8_t", ctypes.c_uint8, lambda: IntegerType(8, Signedness.UNSIGNED)),
        ScalarType(
            "uint16", "uint16_t", ctypes.c_uint16, lambda: IntegerType(16, Signedness.UNSIGNED)
        ),
        ScalarType(
            "uint32", "uint32_t", ctypes.c_uint32, lambda: IntegerType(32, Signedness.UNSIGNED)
        ),
        ScalarType(
            "uint64", "uint64_t", ctypes.c_uint64, lambda: IntegerType(64, Signedness.UNSIGNED)
        ),
    )
}
"""numpy dtype name -> the scalar type, for every type the C ABI of generated code passes."""


def scalar_of(element_type: Attribute) -> ScalarType | None:
    """The `ScalarType` of an MLIR scalar type at the C ABI (`index` is int64, signless
    integers are signed), or None when the ABI has none (bf16, i7, ...)."""
    match element_type:
        case Float16Type():
            return SCALARS["float16"]
        case Float32Type():
            return SCALARS["float32"]
        case Float64Type():
            return SCALARS["float64"]
        case IndexType():
            return SCALARS["int64"]
        case IntegerType():
            width = element_type.width.data
            if width == 1:
                return SCALARS["bool"]
            if width not in (8, 16, 32, 64):
                return None
            unsigned = element_type.signedness.data == Signedness.UNSIGNED
            return SCALARS[f"{'u' if unsigned else ''}int{width}"]
    return None


def numpy_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The little-endian numpy dtype of one *stored* element (bf16 as its raw uint16)."""
    if isinstance(element_type, BFloat16Type):
        return np.dtype("<u2")
    scalar = scalar_of(element_type)
    if scalar is None:
        raise ElementsError(f"cannot read {element_type} elements as numpy")
    if scalar.dtype == "bool":
        return np.dtype("u1")
    return np.dtype(scalar.dtype).newbyteorder("<")


def value_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The numpy dtype that holds *values* of `element_type`: bf16 as float32, i1 as bool."""
    if isinstance(element_type, BFloat16Type):
        return np.dtype(np.float32)
    scalar = scalar_of(element_type)
    if scalar is None:
        raise ElementsError(f"no numpy type holds {element_type} values")
    return np.dtype(scalar.dtype)


def widen(raw: np.ndarray, element_type: Attribute) -> np.ndarray:
    """Stored elements as values: bf16 widened to float32, i1 as bool, others unchanged."""
    if isinstance(element_type, BFloat16Type):
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if isinstance(element_type, IntegerType) and element_type.bitwidth == 1:
        return raw != 0
    return raw


def static_shape(attr: Attribute) -> tuple[int, ...]:
    """The shape of a constant's type, which must be static."""
    shape = tuple(attr.type.get_shape())
    if any(d < 0 for d in shape):
        raise ElementsError(f"constant of type {attr.type} has a dynamic shape")
    return shape


# --------------------------------------------------------------------------------------------
# dense<...>
# --------------------------------------------------------------------------------------------


def dense_array(attr: DenseIntOrFPElementsAttr, *, copy: bool = True) -> np.ndarray:
    """A `dense<...>` attribute (splats included) as a numpy array of its shape.

    With `copy=False` the array may be a read-only view of the attribute's bytes (cheap for the
    verifiers, which only read); a splat is then a broadcast view."""
    element_type = attr.get_element_type()
    shape = static_shape(attr)
    raw = np.frombuffer(attr.data.data, dtype=numpy_dtype(element_type))
    if raw.size == 1 and prod(shape) != 1:
        raw = np.broadcast_to(raw, shape)
        return widen(raw, element_type).copy() if copy else widen(raw, element_type)
    if raw.size != prod(shape):
        raise ElementsError(
            f"dense elements hold {raw.size} values, {attr.type} needs {prod(shape)}"
        )
    values = widen(raw.reshape(shape), element_type)
    return values.copy() if copy else values


def _element_type_of(array: np.ndarray) -> Attribute:
    name = array.dtype.name
    if name not in SCALARS:
        raise ElementsError(f"cannot store {array.dtype} arrays as MLIR elements")
    return SCALARS[name].mlir()


def dense_attr(
    array: np.ndarray, element_type: Attribute | None = None
) -> DenseIntOrFPElementsAttr:
    """`dense<...> : tensor<...>` holding `array`, of its own element type unless one is given
    (`Float32Type()`, `IntegerType(8)`, ...)."""
    array = np.asarray(array)
    if element_type is None:
        element_type = _element_type_of(array)
    data = np.ascontiguousarray(array, dtype=numpy_dtype(element_type))
    return DenseIntOrFPElementsAttr(
        TensorType(element_type, array.shape), BytesAttr(data.tobytes())
    )


def dense_constant(array: np.ndarray, element_type: Attribute | None = None) -> ConstantOp:
    """An `arith.constant` tensor holding `array` (see `dense_attr`)."""
    return ConstantOp(dense_attr(array, element_type))


# --------------------------------------------------------------------------------------------
# dense_resource<...>: the blob storage
# --------------------------------------------------------------------------------------------


class BlobStore(OpAsmDialectInterface):
    """A builtin-dialect resource storage that keeps each blob as bytes, not as hex text.

    xDSL's storage holds `"0x..."` strings; this one decodes them once when parsed, hands out
    numpy views without copying, and makes hex only when a module is printed. MLIR's blob
    layout is kept: a 4-byte little-endian alignment, then the raw little-endian elements.
    """

    def __init__(self) -> None:
        super().__init__()
        self._bytes: dict[str, bytes] = {}

    def parse_resource(self, key: str, val: str) -> None:
        if not val.startswith("0x"):
            raise ValueError(f"Blob must be a hex string, got: {val[:20]}")
        if key not in self._blob_storage:
            raise KeyError(f"Resource with key {key} wasn't declared")
        self._bytes[key] = bytes.fromhex(val[2:])
        self._blob_storage[key] = "0x"  # declared and filled; the hex is made when printed

    def store_bytes(self, key: str, data: bytes) -> None:
        """Fill declared resource `key` with raw blob bytes (alignment word included)."""
        if key not in self._blob_storage:
            raise KeyError(f"Resource with key {key} wasn't declared")
        self._bytes[key] = data
        self._blob_storage[key] = "0x"

    def blob_bytes(self, key: str) -> bytes | None:
        return self._bytes.get(key)

    def lookup(self, key: str) -> str | None:
        if key in self._bytes:
            return "0x" + self._bytes[key].hex().upper()
        return self._blob_storage.get(key)

    def build_resources(self, keys: Iterable[str]) -> dict[str, str]:
        return {key: text for key in keys if (text := self.lookup(key)) and text != "0x"}


def storage_of(ctx: Context) -> OpAsmDialectInterface:
    """The builtin dialect's resource storage in `ctx` (xDSL's process-wide one when `ctx` has
    no builtin dialect registered, as a bare `Context()`)."""
    builtin = ctx.get_optional_dialect("builtin")
    if builtin is None:
        return shared_storage()
    interface = builtin.get_interface(OpAsmDialectInterface)
    if interface is None:
        raise ElementsError("the builtin dialect of this context has no resource storage")
    return interface


def shared_storage() -> OpAsmDialectInterface:
    """xDSL's process-wide storage, which every context made the usual way shares."""
    storage = Builtin.get_interface(OpAsmDialectInterface)
    assert storage is not None
    return storage


_ACTIVE: ContextVar[OpAsmDialectInterface | None] = ContextVar("pconv_storage", default=None)


def active_storage() -> OpAsmDialectInterface:
    """The storage that code without a context at hand reads blobs from (see the module doc)."""
    return _ACTIVE.get() or shared_storage()


@contextmanager
def using_storage(ctx: Context | None) -> Iterator[None]:
    """Within the block, `active_storage()` is `ctx`'s storage (no change when `ctx` is None)."""
    if ctx is None:
        yield
        return
    token = _ACTIVE.set(storage_of(ctx))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


_DECODED: dict[tuple[int, str], tuple[str, bytes]] = {}
"""(id(storage), key) -> (the hex text, its bytes): hex storages are decoded once per blob."""


def blob_bytes(storage: OpAsmDialectInterface, key: str) -> bytes | None:
    """The raw bytes of blob `key` in `storage` (alignment word included), or None if empty."""
    if isinstance(storage, BlobStore):
        return storage.blob_bytes(key)
    text = storage.lookup(key)
    if not text or text == "0x":
        return None
    cached = _DECODED.get((id(storage), key))
    if cached is not None and cached[0] is text:
        return cached[1]
    data = bytes.fromhex(text[2:])
    _DECODED[(id(storage), key)] = (text, data)
    return data


def has_data(storage: OpAsmDialectInterface, key: str) -> bool:
    """Whether blob `key` in `storage` holds data."""
    if isinstance(storage, BlobStore):
        return storage.blob_bytes(key) is not None
    text = storage.lookup(key)
    return bool(text) and text != "0x"


def resource_array(
    attr: DenseResourceAttr, storage: OpAsmDialectInterface | None = None
) -> np.ndarray:
    """The data of a `dense_resource` attribute as a read-only numpy array of its shape.

    Read from `storage` (default: `active_storage()`). Raises `ElementsError` when the blob is
    missing, empty or of the wrong size.
    """
    storage = active_storage() if storage is None else storage
    key = attr.resource_handle.data
    data = blob_bytes(storage, key)
    if data is None:
        raise ElementsError(f"dense_resource<{key}> has no data in this context")
    element_type = attr.type.get_element_type()
    shape = static_shape(attr)
    dtype = numpy_dtype(element_type)
    if len(data) != 4 + prod(shape) * dtype.itemsize:
        raise ElementsError(
            f"dense_resource<{key}> holds {len(data) - 4} bytes, {attr.type} needs "
            f"{prod(shape) * dtype.itemsize}"
        )
    raw = np.frombuffer(data, dtype=dtype, offset=4).reshape(shape)
    return widen(raw, element_type)


def constant_array(ctx: Context | None, attr: Attribute, *, copy: bool = True) -> np.ndarray:
    """The value of a `dense<...>` or `dense_resource<...>` attribute as numpy.

    `ctx` holds the resource blobs (None: the active storage). A copy the caller may modify,
    unless `copy=False` (then possibly a read-only view).
    """
    if isinstance(attr, DenseResourceAttr):
        storage = None if ctx is None else storage_of(ctx)
        array = resource_array(attr, storage)
        return array.copy() if copy else array
    if not isinstance(attr, DenseIntOrFPElementsAttr):
        raise ElementsError(f"expected a dense or dense_resource attribute, got {attr}")
    return dense_array(attr, copy=copy)


def constant_value(ctx: Context | None, value: SSAValue, *, copy: bool = True) -> np.ndarray | None:
    """The data of `value` when an `arith.constant` tensor defines it (dense or resource).

    None when `value` is not such a constant. A resource without data raises `ElementsError`.
    """
    owner = value.owner
    if not isinstance(owner, ConstantOp) or not isinstance(value.type, TensorType):
        return None
    return constant_array(ctx, owner.value, copy=copy)


def resource_attr(ctx: Context | None, key: str, array: np.ndarray) -> DenseResourceAttr:
    """Store `array` as a blob and return `dense_resource<key'> : tensor<...>`.

    `key'` is `key`, or `key_0`, `key_1`, ... if the storage already holds `key`. Stored in
    `ctx`'s storage (None: the active one). The inverse of `resource_array`.
    """
    array = np.asarray(array)
    element_type = _element_type_of(array)
    data = np.ascontiguousarray(array, dtype=numpy_dtype(element_type))
    alignment = max(data.dtype.itemsize, 1).to_bytes(4, "little")
    storage = active_storage() if ctx is None else storage_of(ctx)
    key = storage.declare_resource(key)
    blob = alignment + data.tobytes()
    if isinstance(storage, BlobStore):
        storage.store_bytes(key, blob)
    else:
        storage.parse_resource(key, "0x" + blob.hex().upper())
    return DenseResourceAttr.from_params(key, TensorType(element_type, array.shape))

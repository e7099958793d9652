"""Element data as numpy: the one place that turns MLIR constants into arrays and back.

- `SCALARS`, `scalar_of`: the one table of scalar types (MLIR type, numpy dtype, C type, ctypes
  type) that the C ABI, the runners, the drivers and the headers share.
- `dense_array(attr)`: a `dense<...>` attribute (splats included) as numpy; `dense_attr(array)`
  the other way.
- Resources: `dense_resource<key>` blobs live in a context's builtin dialect storage (xDSL's
  `OpAsmDialectInterface`), not in the module. `constant_array(ctx, attr)` and
  `constant_value(ctx, value)` read a weight of either kind; `resource_attr(ctx, key, array)`
  stores one. `BlobStore` is a storage that keeps `Blob`s (bytes, not hex text) for contexts
  made with `pconv_mlir.ir.make_context(own_resources=True)`; hex is made only when a module
  is printed with its resources.
- `constant_op(ctx, array, key)`: the one way passes make a tensor constant: `dense<...>` up to
  `INLINE_LIMIT` bytes, a `dense_resource` blob above it.
- `active_storage()` / `using_storage(ctx)`: the storage that code without a context at hand
  (the dialect's verifiers) reads blobs from. Drivers that hold a context (`Pipeline.run`,
  `pconv-opt`, `compile`) make theirs the active one; the default is xDSL's process-wide one.

This module imports numpy and xDSL only: the dialect and every pass may use it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Container, Iterable, Iterator
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


@dataclass(frozen=True, eq=False)
class Blob:
    """One resource blob in MLIR's layout: an alignment, then the raw little-endian elements.

    `data` is a read-only 1-D uint8 array (possibly a view of the array it was made from); the
    text form, `"0x" + 4-byte little-endian alignment + data`, in hex, is made only when printed.
    """

    alignment: int
    data: np.ndarray

    @staticmethod
    def of(array: np.ndarray, *, copy: bool = True) -> Blob:
        """The blob of a contiguous array, aligned to its element size. `copy=False` shares the
        array's memory (read-only through the blob): only for arrays nobody will change."""
        array = np.array(array, order="C", copy=True) if copy else np.ascontiguousarray(array)
        data = array.reshape(-1).view(np.uint8)
        data.flags.writeable = False
        return Blob(max(array.dtype.itemsize, 1), data)

    @staticmethod
    def from_hex(text: str) -> Blob:
        """A blob from its text form `"0x..."` (alignment word included)."""
        raw = bytes.fromhex(text[2:])
        if len(raw) < 4:
            raise ElementsError("a resource blob needs at least its 4-byte alignment")
        return Blob(int.from_bytes(raw[:4], "little"), np.frombuffer(raw, np.uint8, offset=4))

    @property
    def nbytes(self) -> int:
        """Bytes of element data (the alignment word not counted)."""
        return self.data.size

    def write_hex(self, write: Callable[[str], object], chunk: int = 1 << 22) -> None:
        """Write the text form (`0x...`, upper-case hex, no quotes) piece by piece."""
        write("0x" + self.alignment.to_bytes(4, "little").hex().upper())
        for start in range(0, self.data.size, chunk):
            write(memoryview(self.data[start : start + chunk]).hex().upper())

    def hex(self) -> str:
        """The text form `0x...` (alignment word included)."""
        parts: list[str] = []
        self.write_hex(parts.append)
        return "".join(parts)


class BlobStore(OpAsmDialectInterface):
    """A builtin-dialect resource storage that keeps each blob as bytes, not as hex text.

    xDSL's storage holds `"0x..."` strings; this one keeps `Blob`s (decoded once when parsed,
    or stored as arrays by `store_blob`), hands out numpy views without copying, and makes hex
    only when a module is printed with its resources.
    """

    def __init__(self) -> None:
        super().__init__()
        self._blobs: dict[str, Blob] = {}

    def parse_resource(self, key: str, val: str) -> None:
        if not val.startswith("0x"):
            raise ValueError(f"Blob must be a hex string, got: {val[:20]}")
        self.store(key, Blob.from_hex(val))

    def store(self, key: str, blob: Blob) -> None:
        """Fill declared resource `key` with `blob`."""
        if key not in self._blob_storage:
            raise KeyError(f"Resource with key {key} wasn't declared")
        self._blobs[key] = blob
        self._blob_storage[key] = "0x"  # declared and filled; the hex is made when printed

    def blob(self, key: str) -> Blob | None:
        return self._blobs.get(key)

    def declared(self, key: str) -> bool:
        """Whether `key` is declared (`lookup` would make the hex text of its blob)."""
        return key in self._blob_storage

    def lookup(self, key: str) -> str | None:
        if key in self._blobs:
            return self._blobs[key].hex()
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


_DECODED: dict[tuple[int, str], tuple[str, Blob]] = {}
"""(id(storage), key) -> (the hex text, its blob): hex storages are decoded once per blob."""


def blob_of(storage: OpAsmDialectInterface, key: str) -> Blob | None:
    """The blob `key` of `storage`, or None if it is not declared or has no data."""
    if isinstance(storage, BlobStore):
        return storage.blob(key)
    text = storage.lookup(key)
    if not text or text == "0x":
        return None
    cached = _DECODED.get((id(storage), key))
    if cached is not None and cached[0] is text:
        return cached[1]
    blob = Blob.from_hex(text)
    _DECODED[(id(storage), key)] = (text, blob)
    return blob


def blob_size(storage: OpAsmDialectInterface, key: str) -> int | None:
    """Bytes of element data in blob `key` (no decoding), or None if it has no data."""
    if isinstance(storage, BlobStore):
        blob = storage.blob(key)
        return None if blob is None else blob.nbytes
    text = storage.lookup(key)
    if not text or text == "0x":
        return None
    return max(0, (len(text) - 2) // 2 - 4)


def has_data(storage: OpAsmDialectInterface, key: str) -> bool:
    """Whether blob `key` in `storage` holds data."""
    return blob_size(storage, key) is not None


def store_blob(storage: OpAsmDialectInterface, key: str, blob: Blob) -> None:
    """Fill declared resource `key` of `storage`: as bytes in a `BlobStore`, else as the hex
    text xDSL's storage holds (the one place pconv-mlir makes hex that is not printed)."""
    if isinstance(storage, BlobStore):
        storage.store(key, blob)
    else:
        storage.parse_resource(key, blob.hex())


def declared(storage: OpAsmDialectInterface, key: str) -> bool:
    """Whether `storage` has declared resource `key` (with or without data), without making
    any hex text."""
    if isinstance(storage, BlobStore):
        return storage.declared(key)
    return storage.lookup(key) is not None


def fresh_key(storage: OpAsmDialectInterface, key: str, taken: Container[str] = ()) -> str:
    """`key`, or `key_0`, `key_1`, ... : the first that `storage` has not declared and that is
    not in `taken`. A key chosen so is never renamed by the parser or `declare_resource`."""
    candidate, counter = key, 0
    while candidate in taken or declared(storage, candidate):
        candidate, counter = f"{key}_{counter}", counter + 1
    return candidate


def resource_array(
    attr: DenseResourceAttr, storage: OpAsmDialectInterface | None = None
) -> np.ndarray:
    """The data of a `dense_resource` attribute as a read-only numpy array of its shape.

    Read from `storage` (default: `active_storage()`). Raises `ElementsError` when the blob is
    missing, empty or of the wrong size.
    """
    storage = active_storage() if storage is None else storage
    key = attr.resource_handle.data
    blob = blob_of(storage, key)
    if blob is None:
        raise ElementsError(f"dense_resource<{key}> has no data in this context")
    element_type = attr.type.get_element_type()
    shape = static_shape(attr)
    dtype = numpy_dtype(element_type)
    if blob.nbytes != prod(shape) * dtype.itemsize:
        raise ElementsError(
            f"dense_resource<{key}> holds {blob.nbytes} bytes, {attr.type} needs "
            f"{prod(shape) * dtype.itemsize}"
        )
    return widen(blob.data.view(dtype).reshape(shape), element_type)


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


def resource_attr(
    ctx: Context | None, key: str, array: np.ndarray, *, copy: bool = True
) -> DenseResourceAttr:
    """Store `array` as a blob and return `dense_resource<key'> : tensor<...>`.

    `key'` is `key`, or `key_0`, `key_1`, ... if the storage already holds `key`. Stored in
    `ctx`'s storage (None: the active one): as bytes in a `BlobStore`, as hex in xDSL's shared
    storage. The blob is a copy of `array` unless `copy=False` (then it shares `array`'s memory,
    which nobody may change afterwards). The inverse of `resource_array`.
    """
    array = np.asarray(array)
    element_type = _element_type_of(array)
    data = array.astype(numpy_dtype(element_type), copy=False)
    storage = active_storage() if ctx is None else storage_of(ctx)
    key = storage.declare_resource(key)
    store_blob(storage, key, Blob.of(data, copy=copy))
    return DenseResourceAttr.from_params(key, TensorType(element_type, array.shape))


def dense_resource_of(
    ctx: Context | None, attr: DenseIntOrFPElementsAttr, key: str
) -> DenseResourceAttr:
    """The data of `dense<...>` attribute `attr` (not a splat) as a blob in `ctx`'s storage
    (None: the active one): `dense_resource<key'> : <attr's type>` with the same bytes."""
    element_type = attr.get_element_type()
    shape = static_shape(attr)
    raw = np.frombuffer(attr.data.data, dtype=numpy_dtype(element_type))
    if raw.size != prod(shape):
        raise ElementsError(
            f"dense elements hold {raw.size} values, {attr.type} needs {prod(shape)}"
        )
    storage = active_storage() if ctx is None else storage_of(ctx)
    key = storage.declare_resource(key)
    store_blob(storage, key, Blob.of(raw, copy=False))  # the attribute's bytes never change
    return DenseResourceAttr.from_params(key, attr.type)


INLINE_LIMIT = 4096
"""Bytes of data up to which `constant_op` makes a `dense<...>` constant. Larger arrays become
`dense_resource` blobs, kept as bytes in the context, and `pconv-externalize-constants` takes
the constants above this size out of the IR that reaches mlir-opt."""


def constant_op(
    ctx: Context | None, array: np.ndarray, key: str, *, inline_limit: int = INLINE_LIMIT
) -> ConstantOp:
    """An `arith.constant` tensor holding `array` (of its own element type), not yet inserted
    anywhere: hand it to the rewriter (`rewriter.insert(op, point)`, `rewriter.replace`).

    Arrays of at most `inline_limit` bytes become `dense<...>`; larger ones become
    `dense_resource<key'>` whose data is stored, as bytes, in `ctx`'s storage (None: the active
    one; `key'` is `key` or `key_0`, `key_1`, ... when taken). Either reads back with
    `constant_value`. The array is copied.

        weight = constant_op(self.ctx, packed.weight, "fkw_weight")
        rewriter.replace(op, [weight, new_op])
    """
    array = np.asarray(array)
    if array.nbytes <= inline_limit:
        return ConstantOp(dense_attr(array))
    return ConstantOp(resource_attr(ctx, key, array))

"""Dense MLIR element data as numpy: the one decoder that the dialect, the passes and the front
end share (`dense<...>` here; `dense_resource<...>` blobs in `pconv_mlir.frontend`)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    Signedness,
)
from xdsl.ir import Attribute


class ElementsError(ValueError):
    """Element data that numpy cannot hold."""


def numpy_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The little-endian numpy dtype of one stored element (bf16 as its raw uint16)."""
    match element_type:
        case Float16Type():
            return np.dtype("<f2")
        case Float32Type():
            return np.dtype("<f4")
        case Float64Type():
            return np.dtype("<f8")
        case BFloat16Type():
            return np.dtype("<u2")
        case IndexType():
            return np.dtype("<i8")
        case IntegerType():
            width = element_type.bitwidth
            if width == 1:
                return np.dtype("u1")
            if width not in (8, 16, 32, 64):
                raise ElementsError(f"cannot read {element_type} elements as numpy")
            kind = "u" if element_type.signedness.data == Signedness.UNSIGNED else "i"
            return np.dtype(f"<{kind}{width // 8}")
    raise ElementsError(f"cannot read {element_type} elements as numpy")


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


def dense_array(attr: DenseIntOrFPElementsAttr, *, copy: bool = True) -> np.ndarray:
    """A `dense<...>` attribute (splats included) as a numpy array of its shape.

    With `copy=False` the array may be a read-only view of the attribute's bytes: cheap for the
    verifiers, which only read."""
    element_type = attr.get_element_type()
    shape = static_shape(attr)
    raw = np.frombuffer(attr.data.data, dtype=numpy_dtype(element_type))
    if raw.size == 1 and prod(shape) != 1:
        raw = np.full(shape, raw[0], dtype=raw.dtype)
    values = widen(raw.reshape(shape), element_type)
    return values.copy() if copy else values

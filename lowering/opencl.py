"""OpenCL C 1.2 from the gpu dialect, and the launch description of the host's kernel launches.

`print_opencl` prints every `gpu.module` of a module as one OpenCL C 1.2 program: no OpenCL 2.0
feature (no generic address space, no pipes, no subgroups), so that Adreno's drivers, which take
OpenCL C source only, compile it. One printer walks the kernels' ops and dispatches on the op's
class, as xDSL's WGSL printer does; there is no text written per kernel.

What it takes (everything else is a located diagnostic naming the op):

- `gpu.func` with `gpu.kernel` (the property xDSL builds, or the attribute mlir-opt prints)
  becomes a `__kernel void`; `gpu.known_block_size` becomes `reqd_work_group_size`. Memref
  arguments are `__global` pointers, `const` when nothing stores through them; scalars are
  passed by value. `gpu.thread_id`, `block_id`, `block_dim`, `grid_dim`, `global_id` become
  `get_local_id`, `get_group_id`, `get_local_size`, `get_num_groups`, `get_global_id`;
  `gpu.barrier` a barrier with local and global fences.
- `arith` (integer, float, comparisons, `select`, casts, constants, vector splats), `math`
  (OpenCL's built-in functions of the same names), `affine.apply` / `affine.min` (what
  upstream `convert-parallel-loops-to-gpu` leaves in kernels), `scf.for` / `scf.if` /
  `scf.yield` (loop carried values and results are variables assigned by the yield).
- `memref.load` / `store` on memrefs of static strides, flattened to one pointer index;
  `subview`, `reinterpret_cast`, `cast`, `collapse_shape`, `expand_shape` are offsets and
  strides on the same pointer, no code. `memref.alloca` is a private array; an `alloca` or
  `alloc` in workgroup memory (`#gpu.address_space<workgroup>`, or memory space 3) is a
  `__local` array declared at the top of the kernel, as OpenCL 1.2 requires. A constant
  `memref.global` of the gpu.module is a `__constant` array (`memref.get_global` reads it).
- `vector` of 2, 3, 4, 8 or 16 elements as `floatN` (`halfN`, `intN`): `load` / `store` as
  `vloadN` / `vstoreN`, `broadcast`, `fma`, `extract` / `insert` at constant positions,
  `shuffle`, `reduction`.

`index` is `int` (32 bits, as GPU address arithmetic is). f16 values are `half`: they need
`fp16=True`, which prints `#pragma OPENCL EXTENSION cl_khr_fp16 : enable`; the element types
come from the IR (an f16 memref is a `half *`), the option only allows them. On a device without
`cl_khr_fp16` (PoCL), `fp16_emulation=True` prints the same kernels with f16 values held in
`float`, rounded to half precision after every op that can round (`pconv_round_half`), and f16
memory read and written with `vload_half` / `vstore_half_rte`, which OpenCL 1.2 has without the
extension: the numbers of native half arithmetic, to check f16 kernels where they cannot run.

`launch_description` describes the host side: every `gpu.launch_func` of the module's
functions, in order, with the kernel, its arguments (which function argument, allocation,
global or constant each buffer is, and its size in bytes) and the global and local sizes. See
its docstring for the JSON format.

    pconv-opt kernels.mlir -t opencl                 # the .cl source
    pconv-opt kernels.mlir -t 'opencl{fp16=true}'    # with half
    pconv-opt kernels.mlir -t 'opencl{fp16_emulation=true}'  # half in float, any device
    pconv-opt kernels.mlir -t opencl-launch          # the launch description, as JSON
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import singledispatchmethod
from typing import IO, Any

from xdsl.dialects import affine, arith, bufferization, func, gpu, memref, scf, vector
from xdsl.dialects import math as mathd
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    Float16Type,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    NoneAttr,
    Signedness,
    TensorType,
    UnitAttr,
    VectorType,
)
from xdsl.ir import Attribute, Block, BlockArgument, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineSymExpr,
)
from xdsl.utils.base_printer import BasePrinter

from pconv_mlir.errors import OpError, OptionError

__all__ = ["OpenClPrinter", "launch_description", "print_opencl", "root_buffer"]

VECTOR_WIDTHS = (2, 3, 4, 8, 16)
"""The vector lengths OpenCL C has types for."""

_DIMENSIONS = {"x": 0, "y": 1, "z": 2}
_LANES = "0123456789abcdef"

_KEYWORDS = frozenset(
    """auto bool break case char const constant continue default do double else enum extern
    float for global goto half if image2d_t image3d_t inline int kernel local long private
    read_only read_write register restrict return sampler_t short signed sizeof static struct
    switch typedef uchar uint ulong union unsigned ushort void volatile while write_only true
    false""".split()
)
_BUILTIN_NAME = re.compile(
    r"^(__.*|get_.*|as_.*|convert_.*|vload.*|vstore.*|barrier|select|min|max|fmin|fmax|abs|"
    r"fabs|fma|mad|pow|pown|rint|round|trunc|ceil|floor|sqrt|rsqrt|exp|exp2|expm1|log|log2|"
    r"log10|log1p|sin|cos|tan|sinh|cosh|tanh|asin|acos|atan|atan2|asinh|acosh|atanh|erf|cbrt|"
    r"copysign|popcount|clz|isordered|isunordered|islessgreater|NAN|INFINITY|CLK_.*|pconv_.*|"
    r"(u?(char|short|int|long)|float|half|double|bool)\d*)$"
)

_OPERATORS: dict[type[Operation], str] = {
    arith.AddiOp: "+",
    arith.SubiOp: "-",
    arith.MuliOp: "*",
    arith.DivSIOp: "/",
    arith.RemSIOp: "%",
    arith.AndIOp: "&",
    arith.OrIOp: "|",
    arith.XOrIOp: "^",
    arith.ShLIOp: "<<",
    arith.ShRSIOp: ">>",
    arith.AddfOp: "+",
    arith.SubfOp: "-",
    arith.MulfOp: "*",
    arith.DivfOp: "/",
}
"""arith ops that are one C operator, for scalars and OpenCL vectors alike."""

_UNSIGNED_BINARY: dict[type[Operation], str] = {
    arith.DivUIOp: "/",
    arith.RemUIOp: "%",
    arith.ShRUIOp: ">>",
}
"""arith ops that are a C operator on the operands read as unsigned."""

_BUILTIN_BINARY: dict[type[Operation], str] = {
    arith.MaximumfOp: "fmax",
    arith.MaxnumfOp: "fmax",
    arith.MinimumfOp: "fmin",
    arith.MinnumfOp: "fmin",
    arith.MaxSIOp: "max",
    arith.MinSIOp: "min",
    mathd.PowFOp: "pow",
    mathd.Atan2Op: "atan2",
    mathd.CopySignOp: "copysign",
    mathd.FPowIOp: "pown",
}
_UNSIGNED_BUILTIN_BINARY: dict[type[Operation], str] = {
    arith.MaxUIOp: "max",
    arith.MinUIOp: "min",
}
_BUILTIN_UNARY: dict[type[Operation], str] = {
    mathd.AbsFOp: "fabs",
    mathd.AcosOp: "acos",
    mathd.AcoshOp: "acosh",
    mathd.AsinOp: "asin",
    mathd.AsinhOp: "asinh",
    mathd.AtanOp: "atan",
    mathd.AtanhOp: "atanh",
    mathd.CbrtOp: "cbrt",
    mathd.CeilOp: "ceil",
    mathd.CosOp: "cos",
    mathd.CoshOp: "cosh",
    mathd.CountLeadingZerosOp: "clz",
    mathd.CtPopOp: "popcount",
    mathd.ErfOp: "erf",
    mathd.Exp2Op: "exp2",
    mathd.ExpM1Op: "expm1",
    mathd.ExpOp: "exp",
    mathd.FloorOp: "floor",
    mathd.Log10Op: "log10",
    mathd.Log1pOp: "log1p",
    mathd.Log2Op: "log2",
    mathd.LogOp: "log",
    mathd.RoundEvenOp: "rint",
    mathd.RoundOp: "round",
    mathd.RsqrtOp: "rsqrt",
    mathd.SinOp: "sin",
    mathd.SinhOp: "sinh",
    mathd.SqrtOp: "sqrt",
    mathd.TanOp: "tan",
    mathd.TanhOp: "tanh",
    mathd.TruncOp: "trunc",
}

_CMPI = {0: "==", 1: "!=", 2: "<", 3: "<=", 4: ">", 5: ">=", 6: "<", 7: "<=", 8: ">", 9: ">="}
_CMPF = {
    1: "{a} == {b}",
    2: "{a} > {b}",
    3: "{a} >= {b}",
    4: "{a} < {b}",
    5: "{a} <= {b}",
    6: "islessgreater({a}, {b})",
    7: "isordered({a}, {b})",
    8: "!islessgreater({a}, {b})",
    9: "!({a} <= {b})",
    10: "!({a} < {b})",
    11: "!({a} >= {b})",
    12: "!({a} > {b})",
    13: "{a} != {b}",
    14: "isunordered({a}, {b})",
}
"""`arith.cmpf` predicates as C: `<`, `>`, `==` are ordered (false on NaN), `!=` unordered."""

_REDUCTIONS = {
    "add": "{a} + {b}",
    "mul": "{a} * {b}",
    "minsi": "min({a}, {b})",
    "maxsi": "max({a}, {b})",
    "minnumf": "fmin({a}, {b})",
    "maxnumf": "fmax({a}, {b})",
    "minimumf": "fmin({a}, {b})",
    "maximumf": "fmax({a}, {b})",
    "and": "{a} & {b}",
    "or": "{a} | {b}",
    "xor": "{a} ^ {b}",
}

_VIEW_OPS = (
    memref.SubviewOp,
    memref.ReinterpretCastOp,
    memref.CastOp,
    memref.CollapseShapeOp,
    memref.ExpandShapeOp,
    memref.MemorySpaceCastOp,
)
"""memref ops that give another view of the same buffer."""

_INEXACT: tuple[type[Operation], ...] = (
    arith.AddfOp,
    arith.SubfOp,
    arith.MulfOp,
    arith.DivfOp,
    arith.TruncFOp,
    arith.SIToFPOp,
    arith.UIToFPOp,
    mathd.FmaOp,
    vector.FMAOp,
    vector.ReductionOp,
    mathd.PowFOp,
    mathd.Atan2Op,
    mathd.FPowIOp,
    *(
        op
        for op in _BUILTIN_UNARY
        if op not in (mathd.AbsFOp, mathd.CeilOp, mathd.FloorOp, mathd.RoundOp, mathd.TruncOp)
    ),
)
"""Ops whose f16 result must be rounded to half precision when f16 is held in float."""


def _is_identifier(name: str) -> bool:
    """Whether `name` can name a kernel or a global: a C identifier, not reserved."""
    return (
        re.fullmatch(r"[A-Za-z_]\w*", name) is not None
        and name not in _KEYWORDS
        and not _BUILTIN_NAME.match(name)
    )


def _is_kernel(op: gpu.FuncOp) -> bool:
    return op.kernel is not None or isinstance(op.attributes.get("gpu.kernel"), UnitAttr)


def _address_space(space: Attribute) -> str | None:
    """`global`, `local` or `private` for a memref's memory space; None when unknown.

    xDSL 0.74 has no `#gpu.address_space`: parsed with `--allow-unregistered-dialect` it is an
    unregistered attribute, recognised by its text. Integers follow the NVVM numbering.
    """
    if isinstance(space, NoneAttr):
        return "global"
    if isinstance(space, IntegerAttr):
        return {0: "global", 1: "global", 3: "local", 5: "private"}.get(space.value.data)
    text = str(space)
    if "address_space" in text:
        for name, space_name in (("workgroup", "local"), ("private", "private")):
            if name in text:
                return space_name
        if "global" in text:
            return "global"
    return None


def _round(value: float, fmt: str) -> float:
    """`value` rounded to a float (`fmt` "f") or a half ("e"); beyond the range, infinity."""
    try:
        return struct.unpack(fmt, struct.pack(fmt, value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _float_literal(value: float, width: int) -> str:
    """The shortest C literal that reads back as `value` rounded to `width` bits."""
    fmt = "e" if width == 16 else "f"
    rounded = value if math.isnan(value) else _round(value, fmt)
    if math.isnan(rounded):
        text = "NAN"
    elif math.isinf(rounded):
        text = "INFINITY" if rounded > 0 else "(-INFINITY)"
    else:
        for digits in range(1, 18):
            text = f"{rounded:.{digits}g}"
            # C reads the literal as a float, which (half) then rounds again
            if _round(_round(float(text), "f"), fmt) == rounded:
                break
        if "." not in text and "e" not in text:
            text += ".0"
        text += "f"
        if rounded < 0:
            text = f"({text})"
    return f"((half){text})" if width == 16 else text


def _int_literal(value: int, type_: Attribute) -> str:
    width = type_.width.data if isinstance(type_, IntegerType) else 32
    if width == 1:
        return "true" if value else "false"
    if width == 64:
        text = "(-9223372036854775807L - 1)" if value == -(2**63) else f"{value}L"
    elif value == -(2**31):
        text = "(-2147483647 - 1)"
    else:
        text = str(value)
    if value < 0 and not text.startswith("("):
        text = f"({text})"
    return text if width in (32, 64) else f"(({_scalar_c_type(type_)}){text})"


def _scalar_c_type(type_: Attribute, half: str = "half") -> str | None:
    if isinstance(type_, IndexType):
        return "int"
    if isinstance(type_, IntegerType):
        names = {1: "bool", 8: "char", 16: "short", 32: "int", 64: "long"}
        name = names.get(type_.width.data)
        if name is None:
            return None
        if type_.signedness.data == Signedness.UNSIGNED and name != "bool":
            name = "u" + name
        return name
    if isinstance(type_, Float32Type):
        return "float"
    if isinstance(type_, Float16Type):
        return half
    return None


def _c_type(type_: Attribute, half: str = "half") -> str | None:
    """The OpenCL C type of a scalar or 1-D vector type; None when OpenCL 1.2 has none.
    `half` is the type that holds f16 values (`float` when emulated)."""
    if isinstance(type_, VectorType):
        shape = type_.get_shape()
        if len(shape) != 1 or shape[0] not in VECTOR_WIDTHS or type_.get_num_scalable_dims():
            return None
        element = _scalar_c_type(type_.get_element_type(), half)
        if element is None:
            return None
        return f"{'int' if element == 'bool' else element}{shape[0]}"
    return _scalar_c_type(type_, half)


def _c_bytes(c_type: str) -> int:
    """The size of one element of an OpenCL C scalar or vector type."""
    element = c_type.rstrip("0123456789").removeprefix("u")
    return {"bool": 4, "char": 1, "short": 2, "half": 2, "long": 8}.get(element, 4)


def _element_bytes(type_: Attribute) -> int:
    if isinstance(type_, IndexType):
        return 4
    if isinstance(type_, IntegerType):
        return max(1, type_.width.data // 8)
    if isinstance(type_, Float16Type):
        return 2
    if isinstance(type_, Float32Type):
        return 4
    return 8


def _uses_f16(type_: Attribute) -> bool:
    if isinstance(type_, Float16Type):
        return True
    if isinstance(type_, MemRefType | VectorType):
        return isinstance(type_.get_element_type(), Float16Type)
    return False


def _lane(index: int) -> str:
    return f"s{_LANES[index]}"


@dataclass
class _View:
    """A memref as the C code sees it: element `pointer[offset + sum(index_i * strides_i)]`.

    `offset` is a constant part and C terms added to it (from dynamic subview offsets).
    """

    pointer: str
    strides: tuple[int, ...]
    offset: int = 0
    terms: tuple[str, ...] = ()


@dataclass(eq=False, repr=False)
class OpenClPrinter(BasePrinter):
    """Prints `gpu.module`s as OpenCL C 1.2; see the module docstring for what it takes."""

    fp16: bool = False
    """Allow f16 (as `half`, with `cl_khr_fp16`)."""
    fp16_emulation: bool = False
    """Hold f16 values in `float`, rounded to half precision after every inexact op, and read
    and write f16 memory with `vload_half` / `vstore_half_rte` (core OpenCL 1.2)."""

    _names: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str], init=False)
    _used: set[str] = field(default_factory=set[str], init=False)
    _views: dict[SSAValue, _View] = field(default_factory=dict[SSAValue, _View], init=False)
    _declared: set[Operation] = field(default_factory=set[Operation], init=False)
    _globals: dict[str, _View] = field(default_factory=dict[str, _View], init=False)
    _count: int = field(default=0, init=False)
    _depth: int = field(default=0, init=False)

    # -- the program ------------------------------------------------------------------------

    def print_program(self, modules: Sequence[gpu.ModuleOp]) -> None:
        """All kernels and constants of `modules` as one program, with the pragmas and the
        helper functions it needs first."""
        names: dict[str, Operation] = {}
        uses_f16 = False
        half_widths: set[int] = set()
        for module in modules:
            for op in module.walk():
                types = [v.type for v in (*op.results, *op.operands)]
                if isinstance(op, gpu.FuncOp):
                    types += op.function_type.inputs.data
                for type_ in filter(_uses_f16, types):
                    if not (self.fp16 or self.fp16_emulation):
                        raise OpError(
                            op,
                            "uses f16, which needs the fp16 option (cl_khr_fp16) or fp16_emulation",
                        )
                    uses_f16 = True
                    if isinstance(type_, VectorType):
                        half_widths.add(type_.get_shape()[0])
                    else:
                        half_widths.add(1)
            for op in module.body.ops:
                if isinstance(op, gpu.FuncOp | memref.GlobalOp):
                    name = op.sym_name.data
                    if name in names:
                        raise OpError(op, f"the name '{name}' is used twice in the program")
                    if not _is_identifier(name):
                        raise OpError(op, f"'{name}' cannot be an OpenCL C name")
                    names[name] = op
        self.line("// OpenCL C 1.2, printed by pconv-mlir")
        if uses_f16 and not self.fp16_emulation:
            self.line("#pragma OPENCL EXTENSION cl_khr_fp16 : enable")
        if uses_f16 and self.fp16_emulation:
            for width in sorted(half_widths):
                self._round_half_function(width)
        for module in modules:
            self.print_op(module)

    def _round_half_function(self, width: int) -> None:
        """`pconv_round_halfN(x)`: `x` rounded to the nearest half (ties to even), as float."""
        n = "" if width == 1 else str(width)
        self.line("")
        self.line(f"float{n} pconv_round_half{n}(const float{n} x) {{")
        with self.nested():
            self.line(f"ushort{n} bits;")
            self.line(f"vstore_half{n}_rte(x, 0, (half *)&bits);")
            self.line(f"return vload_half{n}(0, (const half *)&bits);")
        self.line("}")

    def _emulated(self, type_: Attribute) -> bool:
        """Whether values of `type_` are f16 held in float."""
        return self.fp16_emulation and _uses_f16(type_)

    # -- names and expressions ----------------------------------------------------------------

    def _fresh(self, hint: str | None) -> str:
        if hint is not None:
            hint = re.sub(r"\W", "_", hint)
            if not hint or hint[0].isdigit():
                hint = "v" + hint
            if hint in _KEYWORDS or _BUILTIN_NAME.match(hint):
                hint = "v_" + hint
        base = hint or f"v{self._count}"
        name, suffix = base, 0
        while name in self._used:
            if hint is None:
                self._count += 1
                name = base = f"v{self._count}"
            else:
                suffix += 1
                name = f"{base}_{suffix}"
        if hint is None:
            self._count += 1
        self._used.add(name)
        return name

    def name(self, value: SSAValue) -> str:
        """The C variable of `value` (named after its name hint, else `vN`)."""
        if value not in self._names:
            self._names[value] = self._fresh(value.name_hint)
        return self._names[value]

    def expr(self, value: SSAValue) -> str:
        """`value` as a C atom: a scalar constant's literal, else its variable."""
        owner = value.owner
        if value not in self._names and isinstance(owner, arith.ConstantOp):
            literal = self._scalar_literal(owner)
            if literal is not None:
                return literal
        return self.name(value)

    def _scalar_literal(self, op: arith.ConstantOp) -> str | None:
        attr, type_ = op.value, op.result.type
        if isinstance(attr, IntegerAttr):
            return _int_literal(attr.value.data, type_)
        if isinstance(attr, FloatAttr):
            if isinstance(type_, Float16Type):
                rounded = _round(attr.value.data, "e")
                return _float_literal(rounded, 32 if self.fp16_emulation else 16)
            return _float_literal(attr.value.data, 32)
        return None

    @staticmethod
    def _constant_int(value: SSAValue) -> int | None:
        owner = value.owner
        if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
            return owner.value.value.data
        return None

    def c_type(self, op: Operation, type_: Attribute) -> str:
        """The C type of `type_`, or a diagnostic at `op`."""
        result = _c_type(type_, "float" if self.fp16_emulation else "half")
        if result is None:
            raise OpError(op, f"type {type_} has no OpenCL C 1.2 equivalent")
        return result

    def line(self, text: str) -> None:
        """One line of C at the current depth."""
        self.print_string("  " * self._depth + text + "\n", indent=0)

    @contextmanager
    def nested(self) -> Iterator[None]:
        """Lines printed inside are one level deeper (a C block)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def define(self, op: Operation, value: SSAValue, expression: str) -> None:
        """`const T name = expression;` for `value`, the result of `op` (rounded to half
        precision when f16 is emulated and `op` can round)."""
        if self._emulated(value.type) and isinstance(op, _INEXACT):
            width = value.type.get_shape()[0] if isinstance(value.type, VectorType) else ""
            expression = f"pconv_round_half{width}({expression})"
        self.line(f"const {self.c_type(op, value.type)} {self.name(value)} = {expression};")

    # -- memrefs ----------------------------------------------------------------------------

    def _strides(self, op: Operation, type_: MemRefType) -> tuple[int, ...]:
        strides = type_.get_strides()
        if strides is None or any(s is None or s == DYNAMIC_INDEX for s in strides):
            raise OpError(op, f"memref type {type_} needs static strides")
        return tuple(int(s) for s in strides if s is not None)

    def view(self, op: Operation, value: SSAValue) -> _View:
        if value not in self._views:
            raise OpError(op, "reads a memref that is not a kernel argument or a view of one")
        return self._views[value]

    def index(self, op: Operation, view: _View, indices: Sequence[SSAValue]) -> str:
        """The flat element index of `indices` in `view`, as C."""
        constant = view.offset
        terms = list(view.terms)
        for index, stride in zip(indices, view.strides, strict=True):
            known = self._constant_int(index)
            if known is not None:
                constant += known * stride
            elif stride == 1:
                terms.append(self.expr(index))
            elif stride != 0:
                terms.append(f"{self.expr(index)} * {stride}")
        text = " + ".join(terms)
        if not terms:
            return str(constant)
        if constant > 0:
            text += f" + {constant}"
        elif constant < 0:
            text += f" - {-constant}"
        return text

    def address(self, op: Operation, base: SSAValue, indices: Sequence[SSAValue]) -> str:
        """`pointer + index`, for vloadN / vstoreN (contiguous elements only)."""
        view = self.view(op, base)
        if view.strides and view.strides[-1] != 1:
            raise OpError(op, f"reads a vector across a stride of {view.strides[-1]} elements")
        index = self.index(op, view, indices)
        return view.pointer if index == "0" else f"{view.pointer} + {index}"

    def element(self, op: Operation, base: SSAValue, indices: Sequence[SSAValue]) -> str:
        view = self.view(op, base)
        return f"{view.pointer}[{self.index(op, view, indices)}]"

    def _array(self, op: memref.AllocOp | memref.AllocaOp, space: str) -> None:
        type_ = op.memref.type
        assert isinstance(type_, MemRefType)
        if op.dynamic_sizes or any(d == DYNAMIC_INDEX for d in type_.get_shape()):
            raise OpError(op, "allocates a dynamic size; OpenCL arrays need static sizes")
        element = _scalar_c_type(type_.get_element_type())
        if element is None or element == "bool":
            raise OpError(op, f"type {type_} has no OpenCL C 1.2 equivalent")
        name = self.name(op.memref)
        qualifier = "__local " if space == "local" else ""
        pointer = name
        if self._emulated(type_):  # no half variables without cl_khr_fp16: ushort storage
            element, pointer = "ushort", f"(({qualifier}half *){name})"
        self.line(f"{qualifier}{element} {name}[{math.prod(type_.get_shape())}];")
        self._views[op.memref] = _View(pointer, self._strides(op, type_))

    # -- dispatch ---------------------------------------------------------------------------

    @singledispatchmethod
    def print_op(self, op: Operation) -> None:
        raise OpError(op, "cannot be printed as OpenCL C 1.2")

    def print_block(self, block: Block) -> None:
        for op in block.ops:
            self.print_op(op)

    @print_op.register
    def _(self, op: gpu.ModuleOp) -> None:
        for inner in op.body.ops:
            if not isinstance(inner, gpu.FuncOp | memref.GlobalOp):
                raise OpError(inner, "cannot be printed as OpenCL C 1.2 (only kernels can)")
        # constants first: a kernel may read one defined after it in the module
        for inner in op.body.ops:
            if isinstance(inner, memref.GlobalOp):
                self.print_op(inner)
        for inner in op.body.ops:
            if isinstance(inner, gpu.FuncOp):
                self.print_op(inner)

    @print_op.register
    def _(self, op: memref.GlobalOp) -> None:
        """A constant global: a `__constant` array at program scope."""
        type_, value = op.type, op.initial_value
        if op.constant is None or not isinstance(value, DenseIntOrFPElementsAttr):
            raise OpError(op, "is not a constant with a value; only those are printed")
        element_type = type_.get_element_type()
        element = _scalar_c_type(element_type)
        name = op.sym_name.data
        if element is None or element == "bool" or not _is_identifier(name):
            raise OpError(op, f"cannot be a __constant array of OpenCL C 1.2 ({type_})")
        values = list(value.get_values())
        if value.is_splat():
            values *= math.prod(type_.get_shape()) // len(values)
        pointer = name
        if isinstance(element_type, Float16Type | Float32Type):
            width = 32 if isinstance(element_type, Float32Type) else 16
            literals = [_float_literal(float(v), width) for v in values]
            if self._emulated(type_):  # the bits of each half, read with vload_half
                element, pointer = "ushort", f"((__constant half *){name})"
                literals = [
                    str(struct.unpack("H", struct.pack("e", _round(float(v), "e")))[0])
                    for v in values
                ]
        else:
            literals = [_int_literal(int(v), element_type) for v in values]
        self.line("")
        self.line(f"__constant {element} {name}[{len(literals)}] = {{{', '.join(literals)}}};")
        self._globals[name] = _View(pointer, self._strides(op, type_))

    @print_op.register
    def _(self, op: memref.GetGlobalOp) -> None:
        name = op.name_.root_reference.data
        if name not in self._globals:
            raise OpError(op, f"reads @{name}, which is not a constant global of the gpu.module")
        self._views[op.memref] = self._globals[name]

    @print_op.register
    def _(self, op: gpu.FuncOp) -> None:
        if not _is_kernel(op):
            raise OpError(op, "is not a kernel; only gpu.kernel functions are printed")
        if len(op.body.blocks) != 1:
            raise OpError(op, "has several blocks; only structured control flow is printed")
        self._names.clear()
        self._used = set(self._globals)
        self._views.clear()
        self._count = 0
        block = op.body.block
        accesses = _accesses(op)
        parameters: list[str] = []
        for arg in block.args:
            name = self.name(arg)
            type_ = arg.type
            if isinstance(type_, MemRefType):
                if _address_space(type_.memory_space) != "global":
                    raise OpError(op, f"argument {arg.index} must be a global memref: {type_}")
                element = _scalar_c_type(type_.get_element_type())
                if element is None or element == "bool":
                    raise OpError(op, f"argument {arg.index} has type {type_}")
                const = "const " if accesses[arg] == "read" else ""
                parameters.append(f"__global {const}{element} *{name}")
                offset = type_.get_offset() if not isinstance(type_.layout, NoneAttr) else 0
                if offset is None or offset == DYNAMIC_INDEX:
                    raise OpError(op, f"argument {arg.index} has a dynamic offset: {type_}")
                self._views[arg] = _View(name, self._strides(op, type_), offset=offset)
            else:
                c_type = _c_type(type_)
                if (
                    c_type is None
                    or c_type == "bool"
                    or isinstance(type_, VectorType)
                    or self._emulated(type_)
                ):
                    raise OpError(
                        op, f"argument {arg.index} of type {type_} cannot be a kernel argument"
                    )
                parameters.append(f"const {c_type} {name}")
        attributes = ""
        if op.known_block_size is not None:
            sizes = ", ".join(str(s) for s in op.known_block_size.get_values())
            attributes = f"__attribute__((reqd_work_group_size({sizes})))"
        self.line("")
        self.line(f"__kernel {attributes}".rstrip())
        self.line(f"void {op.sym_name.data}({', '.join(parameters)}) {{")
        with self.nested():
            for inner in op.walk():
                if isinstance(inner, memref.AllocaOp | memref.AllocOp):
                    type_ = inner.memref.type
                    assert isinstance(type_, MemRefType)
                    if _address_space(type_.memory_space) == "local":
                        self._array(inner, "local")
                        self._declared.add(inner)
            self.print_block(block)
        self.line("}")

    @print_op.register
    def _(self, op: gpu.ReturnOp) -> None:
        if op.operands:
            raise OpError(op, "returns values; kernels return nothing")
        if op.next_op is not None or not isinstance(op.parent_op(), gpu.FuncOp):
            self.line("return;")

    # -- gpu --------------------------------------------------------------------------------

    def _id(
        self,
        op: gpu.ThreadIdOp | gpu.BlockIdOp | gpu.BlockDimOp | gpu.GridDimOp | gpu.GlobalIdOp,
        function: str,
    ) -> None:
        dimension = _DIMENSIONS[str(op.dimension.data)]
        self.define(op, op.result, f"(int){function}({dimension})")

    @print_op.register
    def _(self, op: gpu.ThreadIdOp) -> None:
        self._id(op, "get_local_id")

    @print_op.register
    def _(self, op: gpu.BlockIdOp) -> None:
        self._id(op, "get_group_id")

    @print_op.register
    def _(self, op: gpu.BlockDimOp) -> None:
        self._id(op, "get_local_size")

    @print_op.register
    def _(self, op: gpu.GridDimOp) -> None:
        self._id(op, "get_num_groups")

    @print_op.register
    def _(self, op: gpu.GlobalIdOp) -> None:
        self._id(op, "get_global_id")

    @print_op.register
    def _(self, op: gpu.BarrierOp) -> None:
        self.line("barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);")

    # -- arith ------------------------------------------------------------------------------

    @print_op.register
    def _(self, op: arith.ConstantOp) -> None:
        if self._scalar_literal(op) is not None:
            return  # printed as a literal where it is used
        attr, type_ = op.value, op.result.type
        if not isinstance(attr, DenseIntOrFPElementsAttr) or not isinstance(type_, VectorType):
            raise OpError(op, f"constant {attr} cannot be printed as OpenCL C 1.2")
        element = type_.get_element_type()
        if isinstance(element, Float16Type):
            width = 32 if self.fp16_emulation else 16
            rounded = (_round(float(v), "e") for v in attr.get_values())
            values = [_float_literal(v, width) for v in rounded]
        elif isinstance(element, Float32Type):
            values = [_float_literal(float(v), 32) for v in attr.get_values()]
        elif element == IntegerType(1):  # a mask: all bits set is true, as comparisons give
            values = ["-1" if v else "0" for v in attr.get_values()]
        else:
            values = [_int_literal(int(v), element) for v in attr.get_values()]
        if attr.is_splat():
            values = values[:1]
        c_type = self.c_type(op, type_)
        self.define(op, op.result, f"({c_type})({', '.join(values)})")

    @print_op.register(arith.AddiOp)
    @print_op.register(arith.SubiOp)
    @print_op.register(arith.MuliOp)
    @print_op.register(arith.DivSIOp)
    @print_op.register(arith.RemSIOp)
    @print_op.register(arith.AndIOp)
    @print_op.register(arith.OrIOp)
    @print_op.register(arith.XOrIOp)
    @print_op.register(arith.ShLIOp)
    @print_op.register(arith.ShRSIOp)
    @print_op.register(arith.AddfOp)
    @print_op.register(arith.SubfOp)
    @print_op.register(arith.MulfOp)
    @print_op.register(arith.DivfOp)
    def _(self, op: Operation) -> None:
        lhs, rhs = (self.expr(v) for v in op.operands)
        self.define(op, op.results[0], f"{lhs} {_OPERATORS[type(op)]} {rhs}")

    def _unsigned(self, op: Operation, value: SSAValue) -> str:
        """`value` read as unsigned."""
        c_type = self.c_type(op, value.type)
        if c_type.startswith("u") or c_type == "bool":
            return self.expr(value)
        if isinstance(value.type, VectorType):
            return f"as_u{c_type}({self.expr(value)})"
        return f"(u{c_type}){self.expr(value)}"

    @print_op.register(arith.DivUIOp)
    @print_op.register(arith.RemUIOp)
    @print_op.register(arith.ShRUIOp)
    def _(self, op: Operation) -> None:
        lhs, rhs = (self._unsigned(op, v) for v in op.operands)
        result = f"{lhs} {_UNSIGNED_BINARY[type(op)]} {rhs}"
        self.define(op, op.results[0], self._signed(op, op.results[0], result))

    def _signed(self, op: Operation, value: SSAValue, expression: str) -> str:
        """An unsigned `expression` back in the (signless) type of `value`."""
        c_type = self.c_type(op, value.type)
        if isinstance(value.type, VectorType):
            return f"as_{c_type}({expression})"
        return f"({c_type})({expression})"

    @print_op.register(arith.MaximumfOp)
    @print_op.register(arith.MaxnumfOp)
    @print_op.register(arith.MinimumfOp)
    @print_op.register(arith.MinnumfOp)
    @print_op.register(arith.MaxSIOp)
    @print_op.register(arith.MinSIOp)
    @print_op.register(mathd.PowFOp)
    @print_op.register(mathd.Atan2Op)
    @print_op.register(mathd.CopySignOp)
    @print_op.register(mathd.FPowIOp)
    def _(self, op: Operation) -> None:
        lhs, rhs = (self.expr(v) for v in op.operands)
        self.define(op, op.results[0], f"{_BUILTIN_BINARY[type(op)]}({lhs}, {rhs})")

    @print_op.register(arith.MaxUIOp)
    @print_op.register(arith.MinUIOp)
    def _(self, op: Operation) -> None:
        lhs, rhs = (self._unsigned(op, v) for v in op.operands)
        result = f"{_UNSIGNED_BUILTIN_BINARY[type(op)]}({lhs}, {rhs})"
        self.define(op, op.results[0], self._signed(op, op.results[0], result))

    @print_op.register
    def _(self, op: arith.FloorDivSIOp) -> None:
        self._scalar_only(op)
        a, b = self.expr(op.lhs), self.expr(op.rhs)
        self.define(op, op.result, f"{a} / {b} - ({a} % {b} != 0 && ({a} < 0) != ({b} < 0))")

    @print_op.register
    def _(self, op: arith.CeilDivSIOp) -> None:
        self._scalar_only(op)
        a, b = self.expr(op.lhs), self.expr(op.rhs)
        self.define(op, op.result, f"{a} / {b} + ({a} % {b} != 0 && ({a} < 0) == ({b} < 0))")

    @print_op.register
    def _(self, op: arith.CeilDivUIOp) -> None:
        self._scalar_only(op)
        a, b = self._unsigned(op, op.lhs), self._unsigned(op, op.rhs)
        self.define(op, op.result, self._signed(op, op.result, f"{a} / {b} + ({a} % {b} != 0)"))

    def _scalar_only(self, op: Operation) -> None:
        if any(isinstance(v.type, VectorType) for v in op.results):
            raise OpError(op, "on vectors cannot be printed as OpenCL C 1.2")

    @print_op.register
    def _(self, op: arith.NegfOp) -> None:
        self.define(op, op.result, f"-{self.expr(op.operand)}")

    @print_op.register
    def _(self, op: arith.CmpiOp) -> None:
        predicate = op.predicate.value.data
        if predicate >= 6:
            lhs, rhs = self._unsigned(op, op.lhs), self._unsigned(op, op.rhs)
        else:
            lhs, rhs = self.expr(op.lhs), self.expr(op.rhs)
        self.define(op, op.result, self._mask(op, f"{lhs} {_CMPI[predicate]} {rhs}"))

    def _mask(self, op: Operation, comparison: str) -> str:
        """A vector comparison as the `intN` that holds `vector<Nxi1>` (OpenCL compares
        N-element vectors of 2- or 8-byte elements into `shortN` or `longN`)."""
        operand = self.c_type(op, op.operands[0].type)
        if isinstance(op.operands[0].type, VectorType) and _c_bytes(operand) != 4:
            return f"convert_{self.c_type(op, op.results[0].type)}({comparison})"
        return comparison

    @print_op.register
    def _(self, op: arith.CmpfOp) -> None:
        predicate = op.predicate.value.data
        lhs, rhs = self.expr(op.lhs), self.expr(op.rhs)
        if predicate in (0, 15):
            c_type = self.c_type(op, op.result.type)
            if isinstance(op.lhs.type, VectorType):
                self.define(op, op.result, f"({c_type})({-1 if predicate else 0})")
            else:
                self.define(op, op.result, "true" if predicate else "false")
            return
        self.define(op, op.result, self._mask(op, _CMPF[predicate].format(a=lhs, b=rhs)))

    @print_op.register
    def _(self, op: arith.SelectOp) -> None:
        cond, lhs, rhs = self.expr(op.cond), self.expr(op.lhs), self.expr(op.rhs)
        type_ = op.result.type
        if isinstance(op.cond.type, VectorType):
            size = _c_bytes(self.c_type(op, type_))
            if isinstance(type_, VectorType) and size != 4:
                width = {1: "char", 2: "short", 8: "long"}[size]
                cond = f"convert_{width}{type_.get_shape()[0]}({cond})"
            self.define(op, op.result, f"select({rhs}, {lhs}, {cond})")
        elif isinstance(type_, MemRefType):
            raise OpError(op, "selects between memrefs; OpenCL C 1.2 cannot")
        else:
            self.define(op, op.result, f"{cond} ? {lhs} : {rhs}")

    @print_op.register(arith.IndexCastOp)
    @print_op.register(arith.SIToFPOp)
    @print_op.register(arith.FPToSIOp)
    @print_op.register(arith.ExtFOp)
    @print_op.register(arith.TruncFOp)
    @print_op.register(arith.ExtSIOp)
    @print_op.register(arith.TruncIOp)
    def _(self, op: Operation) -> None:
        source, result = op.operands[0], op.results[0]
        c_type = self.c_type(op, result.type)
        value = self.expr(source)
        if isinstance(op, arith.ExtSIOp) and _c_type(source.type) == "bool":
            value = f"(-(int){value})"
        if isinstance(op, arith.TruncIOp) and c_type == "bool":
            value = f"({value} & 1)"
        if isinstance(result.type, VectorType):
            self.define(op, result, f"convert_{c_type}({value})")
        else:
            self.define(op, result, f"({c_type}){value}")

    @print_op.register(arith.UIToFPOp)
    @print_op.register(arith.FPToUIOp)
    @print_op.register(arith.ExtUIOp)
    def _(self, op: Operation) -> None:
        source, result = op.operands[0], op.results[0]
        c_type = self.c_type(op, result.type)
        value = self._unsigned(op, source)
        if isinstance(source.type, VectorType) and source.type.get_element_type() == IntegerType(1):
            value = f"(-{self.expr(source)})"  # a mask is -1 for true
        if isinstance(op, arith.FPToUIOp):
            unsigned = "u" + c_type if not c_type.startswith("u") else c_type
            inner = (
                f"convert_{unsigned}({self.expr(source)})"
                if isinstance(result.type, VectorType)
                else f"({unsigned})({self.expr(source)})"
            )
            self.define(op, result, self._signed(op, result, inner))
        elif isinstance(result.type, VectorType):
            self.define(op, result, f"convert_{c_type}({value})")
        else:
            self.define(op, result, f"({c_type}){value}")

    @print_op.register(arith.BitcastOp)
    @print_op.register(vector.BitcastOp)
    def _(self, op: Operation) -> None:
        if any(self._emulated(v.type) for v in (*op.operands, *op.results)):
            raise OpError(op, "bitcasts f16, which fp16_emulation cannot")
        c_type = self.c_type(op, op.results[0].type)
        self.define(op, op.results[0], f"as_{c_type}({self.expr(op.operands[0])})")

    # -- math -------------------------------------------------------------------------------

    @print_op.register(mathd.AbsFOp)
    @print_op.register(mathd.AcosOp)
    @print_op.register(mathd.AcoshOp)
    @print_op.register(mathd.AsinOp)
    @print_op.register(mathd.AsinhOp)
    @print_op.register(mathd.AtanOp)
    @print_op.register(mathd.AtanhOp)
    @print_op.register(mathd.CbrtOp)
    @print_op.register(mathd.CeilOp)
    @print_op.register(mathd.CosOp)
    @print_op.register(mathd.CoshOp)
    @print_op.register(mathd.CountLeadingZerosOp)
    @print_op.register(mathd.CtPopOp)
    @print_op.register(mathd.ErfOp)
    @print_op.register(mathd.Exp2Op)
    @print_op.register(mathd.ExpM1Op)
    @print_op.register(mathd.ExpOp)
    @print_op.register(mathd.FloorOp)
    @print_op.register(mathd.Log10Op)
    @print_op.register(mathd.Log1pOp)
    @print_op.register(mathd.Log2Op)
    @print_op.register(mathd.LogOp)
    @print_op.register(mathd.RoundEvenOp)
    @print_op.register(mathd.RoundOp)
    @print_op.register(mathd.RsqrtOp)
    @print_op.register(mathd.SinOp)
    @print_op.register(mathd.SinhOp)
    @print_op.register(mathd.SqrtOp)
    @print_op.register(mathd.TanOp)
    @print_op.register(mathd.TanhOp)
    @print_op.register(mathd.TruncOp)
    def _(self, op: Operation) -> None:
        value = self.expr(op.operands[0])
        self.define(op, op.results[0], f"{_BUILTIN_UNARY[type(op)]}({value})")

    @print_op.register
    def _(self, op: mathd.AbsIOp) -> None:
        c_type = self.c_type(op, op.result.type)
        value = f"abs({self.expr(op.operand)})"
        if isinstance(op.result.type, VectorType):
            self.define(op, op.result, f"as_{c_type}({value})")
        else:
            self.define(op, op.result, f"({c_type}){value}")

    @print_op.register(mathd.FmaOp)
    @print_op.register(vector.FMAOp)
    def _(self, op: Operation) -> None:
        a, b, c = (self.expr(v) for v in op.operands)
        self.define(op, op.results[0], f"fma({a}, {b}, {c})")

    # -- affine -----------------------------------------------------------------------------

    def _affine(self, expr: AffineExpr, operands: Sequence[str], dims: int) -> str:
        """An affine expression as C over `operands` (the dimensions, then the symbols).
        Affine division and modulo round down, and their divisor is positive."""
        if isinstance(expr, AffineDimExpr):
            return operands[expr.position]
        if isinstance(expr, AffineSymExpr):
            return operands[dims + expr.position]
        if isinstance(expr, AffineConstantExpr):
            return str(expr.value) if expr.value >= 0 else f"({expr.value})"
        assert isinstance(expr, AffineBinaryOpExpr)
        a = self._affine(expr.lhs, operands, dims)
        b = self._affine(expr.rhs, operands, dims)
        return {
            AffineBinaryOpKind.Add: f"({a} + {b})",
            AffineBinaryOpKind.Mul: f"({a} * {b})",
            AffineBinaryOpKind.Mod: f"(({a} % {b} + {b}) % {b})",
            AffineBinaryOpKind.FloorDiv: f"({a} / {b} - ({a} % {b} < 0))",
            AffineBinaryOpKind.CeilDiv: f"({a} / {b} + ({a} % {b} > 0))",
        }[expr.kind]

    @print_op.register
    def _(self, op: affine.ApplyOp) -> None:
        affine_map = op.map.data
        operands = [self.expr(v) for v in op.mapOperands]
        (result,) = affine_map.results
        self.define(op, op.result, self._affine(result, operands, affine_map.num_dims))

    @print_op.register
    def _(self, op: affine.MinOp) -> None:
        affine_map = op.map.data
        operands = [self.expr(v) for v in op.arguments]
        results = [self._affine(r, operands, affine_map.num_dims) for r in affine_map.results]
        expression = results[0]
        for result in results[1:]:
            expression = f"min({expression}, {result})"
        self.define(op, op.result, expression)

    # -- scf --------------------------------------------------------------------------------

    def _assign(
        self, targets: Sequence[str], values: Sequence[SSAValue], carried: Iterable[SSAValue]
    ) -> None:
        """`target = value;` for each pair, as one parallel assignment: through temporaries
        when a value is one of the `carried` variables that another assignment overwrites."""
        carried = set(carried)
        pairs = [(t, v) for t, v in zip(targets, values, strict=True) if self.expr(v) != t]
        if any(v in carried for _, v in pairs) and len(pairs) > 1:
            temporaries = []
            for target, value in pairs:
                temporary = self._fresh(target + "_next")
                c_type = _c_type(value.type, "float" if self.fp16_emulation else "half")
                self.line(f"const {c_type} {temporary} = {self.expr(value)};")
                temporaries.append((target, temporary))
            for target, temporary in temporaries:
                self.line(f"{target} = {temporary};")
            return
        for target, value in pairs:
            self.line(f"{target} = {self.expr(value)};")

    def _variables(self, op: Operation, results: Sequence[SSAValue]) -> list[str]:
        names = []
        for result in results:
            if isinstance(result.type, MemRefType):
                raise OpError(op, "yields a memref; OpenCL C 1.2 cannot")
            names.append(self.name(result))
        return names

    @print_op.register
    def _(self, op: scf.ForOp) -> None:
        body = op.body.block
        induction, carried = body.args[0], body.args[1:]
        variables = self._variables(op, op.results)
        for arg, variable, init in zip(carried, variables, op.iter_args, strict=True):
            self._names[arg] = variable
            self.line(f"{self.c_type(op, arg.type)} {variable} = {self.expr(init)};")
        c_type = self.c_type(op, induction.type)
        i = self.name(induction)
        lb, ub, step = self.expr(op.lb), self.expr(op.ub), self.expr(op.step)
        increment = f"++{i}" if step == "1" else f"{i} += {step}"
        self.line(f"for ({c_type} {i} = {lb}; {i} < {ub}; {increment}) {{")
        with self.nested():
            self.print_block(body)
            yield_op = body.last_op
            assert isinstance(yield_op, scf.YieldOp)
            self._assign(variables, yield_op.operands, carried)
        self.line("}")

    @print_op.register
    def _(self, op: scf.IfOp) -> None:
        variables = self._variables(op, op.results)
        for result, variable in zip(op.results, variables, strict=True):
            self.line(f"{self.c_type(op, result.type)} {variable};")
        self.line(f"if ({self.expr(op.cond)}) {{")
        self._branch(op.true_region.blocks[0], variables)
        if op.false_region.blocks and (
            variables or any(not isinstance(o, scf.YieldOp) for o in op.false_region.block.ops)
        ):
            self.line("} else {")
            self._branch(op.false_region.blocks[0], variables)
        self.line("}")

    def _branch(self, block: Block, variables: Sequence[str]) -> None:
        with self.nested():
            self.print_block(block)
            assert block.last_op is not None
            self._assign(variables, block.last_op.operands, ())

    @print_op.register
    def _(self, op: scf.YieldOp) -> None:
        pass  # assigned by the loop or branch it ends

    # -- memref -----------------------------------------------------------------------------

    @print_op.register
    def _(self, op: memref.LoadOp) -> None:
        if self._emulated(op.memref.type):
            view = self.view(op, op.memref)
            index = self.index(op, view, op.indices)
            self.define(op, op.res, f"vload_half({index}, {view.pointer})")
        else:
            self.define(op, op.res, self.element(op, op.memref, op.indices))

    @print_op.register
    def _(self, op: memref.StoreOp) -> None:
        if self._emulated(op.memref.type):
            view = self.view(op, op.memref)
            index = self.index(op, view, op.indices)
            self.line(f"vstore_half_rte({self.expr(op.value)}, {index}, {view.pointer});")
        else:
            target = self.element(op, op.memref, op.indices)
            self.line(f"{target} = {self.expr(op.value)};")

    @print_op.register(memref.AllocaOp)
    @print_op.register(memref.AllocOp)
    def _(self, op: memref.AllocaOp | memref.AllocOp) -> None:
        if op in self._declared:
            return  # a __local array, declared at the top of the kernel
        type_ = op.memref.type
        assert isinstance(type_, MemRefType)
        space = _address_space(type_.memory_space)
        if isinstance(op, memref.AllocOp) or space not in ("global", "private"):
            raise OpError(
                op,
                f"allocates {type_}; a kernel allocates only private or "
                "workgroup memory, with static sizes",
            )
        self._array(op, "private")

    @print_op.register(memref.DeallocOp)
    def _(self, op: memref.DeallocOp) -> None:
        pass

    @print_op.register
    def _(self, op: memref.SubviewOp) -> None:
        source = self.view(op, op.source)
        dynamic = iter(op.offsets)
        constant, terms = source.offset, list(source.terms)
        for offset, stride in zip(op.static_offsets.get_values(), source.strides, strict=True):
            if offset == DYNAMIC_INDEX:
                value = next(dynamic)
                known = self._constant_int(value)
                if known is not None:
                    constant += known * stride
                elif stride == 1:
                    terms.append(self.expr(value))
                else:
                    terms.append(f"{self.expr(value)} * {stride}")
            else:
                constant += offset * stride
        type_ = op.result.type
        assert isinstance(type_, MemRefType)
        self._views[op.result] = _View(
            source.pointer, self._strides(op, type_), constant, tuple(terms)
        )

    @print_op.register
    def _(self, op: memref.ReinterpretCastOp) -> None:
        source = self.view(op, op.source)
        (offset,) = op.static_offsets.get_values()
        terms: tuple[str, ...] = ()
        if offset == DYNAMIC_INDEX:
            offset, terms = 0, (self.expr(op.offsets[0]),)
        type_ = op.result.type
        assert isinstance(type_, MemRefType)
        self._views[op.result] = _View(source.pointer, self._strides(op, type_), offset, terms)

    @print_op.register(memref.CastOp)
    @print_op.register(memref.CollapseShapeOp)
    @print_op.register(memref.ExpandShapeOp)
    @print_op.register(memref.MemorySpaceCastOp)
    def _(self, op: Operation) -> None:
        source = self.view(op, op.operands[0])
        result = op.results[0]
        type_ = result.type
        assert isinstance(type_, MemRefType)
        strides = type_.get_strides()
        if strides is None or any(s is None or s == DYNAMIC_INDEX for s in strides):
            if isinstance(op, memref.CastOp) and len(source.strides) == type_.get_num_dims():
                strides = source.strides
            else:
                raise OpError(op, f"memref type {type_} needs static strides")
        self._views[result] = _View(
            source.pointer,
            tuple(int(s) for s in strides if s is not None),
            source.offset,
            source.terms,
        )

    @print_op.register
    def _(self, op: memref.DimOp) -> None:
        type_ = op.source.type
        index = self._constant_int(op.index)
        if not isinstance(type_, MemRefType) or index is None:
            raise OpError(op, "needs a constant dimension")
        size = type_.get_shape()[index]
        if size == DYNAMIC_INDEX:
            raise OpError(op, f"dimension {index} of {type_} is dynamic")
        self.define(op, op.result, str(size))

    # -- vector -----------------------------------------------------------------------------

    def _width(self, op: Operation, type_: Attribute) -> int:
        self.c_type(op, type_)
        assert isinstance(type_, VectorType)
        return type_.get_shape()[0]

    @print_op.register
    def _(self, op: vector.LoadOp) -> None:
        width = self._width(op, op.result.type)
        address = self.address(op, op.base, op.indices)
        half = "_half" if self._emulated(op.base.type) else ""
        self.define(op, op.result, f"vload{half}{width}(0, {address})")

    @print_op.register
    def _(self, op: vector.StoreOp) -> None:
        width = self._width(op, op.vector.type)
        address = self.address(op, op.base, op.indices)
        half = f"_half{width}_rte" if self._emulated(op.base.type) else str(width)
        self.line(f"vstore{half}({self.expr(op.vector)}, 0, {address});")

    @print_op.register
    def _(self, op: vector.BroadcastOp) -> None:
        c_type = self.c_type(op, op.vector.type)
        if isinstance(op.source.type, VectorType):
            if op.source.type != op.vector.type:
                raise OpError(op, "broadcasts a vector to another shape; OpenCL C 1.2 cannot")
            self.define(op, op.vector, self.expr(op.source))
        else:
            self.define(op, op.vector, f"({c_type})({self.expr(op.source)})")

    def _position(self, op: vector.ExtractOp | vector.InsertOp) -> int:
        positions = op.static_position.get_values()
        if len(positions) != 1 or positions[0] == DYNAMIC_INDEX or op.dynamic_position:
            raise OpError(op, "needs one constant position")
        return positions[0]

    @print_op.register
    def _(self, op: vector.ExtractOp) -> None:
        self._width(op, op.vector.type)
        lane = _lane(self._position(op))
        self.define(op, op.result, f"{self.expr(op.vector)}.{lane}")

    @print_op.register
    def _(self, op: vector.InsertOp) -> None:
        c_type = self.c_type(op, op.result.type)
        lane = _lane(self._position(op))
        name = self.name(op.result)
        self.line(f"{c_type} {name} = {self.expr(op.dest)};")
        self.line(f"{name}.{lane} = {self.expr(op.source)};")

    @print_op.register
    def _(self, op: vector.ShuffleOp) -> None:
        c_type = self.c_type(op, op.result.type)
        width = self._width(op, op.v1.type)
        lanes = []
        for index in op.mask.get_values():
            source, lane = (op.v1, index) if index < width else (op.v2, index - width)
            lanes.append(f"{self.expr(source)}.{_lane(lane)}")
        self.define(op, op.result, f"({c_type})({', '.join(lanes)})")

    @print_op.register
    def _(self, op: vector.ReductionOp) -> None:
        width = self._width(op, op.vector.type)
        kind = str(op.kind.data.value if hasattr(op.kind.data, "value") else op.kind.data)
        if kind not in _REDUCTIONS:
            raise OpError(op, f"reduction <{kind}> cannot be printed as OpenCL C 1.2")
        source = self.expr(op.vector)
        lanes = [f"{source}.{_lane(i)}" for i in range(width)]
        if op.acc is not None:
            lanes.insert(0, self.expr(op.acc))
        template = _REDUCTIONS[kind]
        if template.startswith("{a}"):  # an operator: C groups it from the left
            expression = template.replace("{a}", "").replace("{b}", "").join(lanes)
        else:
            expression = lanes[0]
            for lane in lanes[1:]:
                expression = template.format(a=expression, b=lane)
        self.define(op, op.dest, expression)


def _accesses(kernel: gpu.FuncOp) -> dict[SSAValue, str]:
    """How `kernel` uses each memref argument: `read`, `write` or `read_write` (an op it does
    not know, such as an atomic, counts as both)."""
    accesses: dict[SSAValue, str] = {}
    for arg in kernel.body.block.args:
        if not isinstance(arg.type, MemRefType):
            continue
        reads = writes = False
        pending = [arg]
        while pending:
            value = pending.pop()
            for use in value.uses:
                user = use.operation
                if isinstance(user, _VIEW_OPS):
                    pending.extend(user.results)
                elif isinstance(user, memref.LoadOp | vector.LoadOp):
                    reads = True
                elif isinstance(user, memref.StoreOp | vector.StoreOp):
                    writes = True
                elif not isinstance(user, memref.DimOp):
                    reads = writes = True
        accesses[arg] = "read_write" if reads and writes else "write" if writes else "read"
    return accesses


def gpu_modules(module: ModuleOp) -> list[gpu.ModuleOp]:
    """The `gpu.module`s of `module`, in order (nested in other modules too)."""
    return [op for op in module.walk() if isinstance(op, gpu.ModuleOp)]


def print_opencl(
    module: ModuleOp, stream: IO[str], *, fp16: bool = False, fp16_emulation: bool = False
) -> None:
    """Print every `gpu.module` of `module` to `stream` as one OpenCL C 1.2 program.

    `fp16` allows f16 types (as `half`, enabling `cl_khr_fp16`); `fp16_emulation` allows them
    on any device instead: f16 values are held in `float` and rounded to half precision after
    every op that can round, f16 memory is read and written with `vload_half` /
    `vstore_half_rte`; the results are those of native half arithmetic that rounds each op.
    Without either an f16 value is a diagnostic. Unsupported ops and types raise `OpError`
    located at the op.
    """
    if fp16 and fp16_emulation:
        raise OptionError("fp16 and fp16_emulation exclude each other")
    modules = gpu_modules(module)
    if not modules:
        raise OpError(module, "has no gpu.module to print as OpenCL C")
    printer = OpenClPrinter(stream=stream, fp16=fp16, fp16_emulation=fp16_emulation)
    printer.print_program(modules)


# -- the launch description -----------------------------------------------------------------


def _dtype(type_: Attribute) -> str:
    if isinstance(type_, IndexType):
        return "int32"
    if isinstance(type_, Float16Type):
        return "float16"
    if isinstance(type_, Float32Type):
        return "float32"
    if isinstance(type_, IntegerType):
        width = type_.width.data
        unsigned = type_.signedness.data == Signedness.UNSIGNED
        return "bool" if width == 1 else f"{'u' if unsigned else ''}int{width}"
    return str(type_)


def _constant(op: Operation, value: SSAValue, what: str) -> int:
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return owner.value.value.data
    raise OpError(op, f"{what} is not a constant")


def _static_layout(type_: Attribute) -> bool:
    """Whether memref type `type_` has static strides and a static offset (which a kernel
    taking it adds to the base pointer it is passed)."""
    if not isinstance(type_, MemRefType):
        return False
    strides = type_.get_strides()
    offset = type_.get_offset() if not isinstance(type_.layout, NoneAttr) else 0
    return (
        strides is not None
        and all(s is not None and s != DYNAMIC_INDEX for s in strides)
        and offset is not None
        and offset != DYNAMIC_INDEX
    )


def root_buffer(value: SSAValue) -> SSAValue:
    """The buffer a kernel operand views: through casts and reshapes that keep offset 0, through
    subviews whose type holds their static offset and strides (the kernel indexes the base
    buffer with them), and through `bufferization.to_buffer` to the tensor (a function argument
    or a constant)."""
    while True:
        owner = value.owner
        if isinstance(owner, memref.CastOp | memref.CollapseShapeOp | memref.ExpandShapeOp):
            value = owner.operands[0]
        elif isinstance(owner, memref.SubviewOp) and _static_layout(owner.result.type):
            value = owner.source
        elif isinstance(owner, memref.ReinterpretCastOp) and owner.static_offsets.get_values() == (
            0,
        ):
            value = owner.source
        elif isinstance(owner, bufferization.ToBufferOp):
            value = owner.tensor
        else:
            return value


def _returned(function: func.FuncOp, value: SSAValue) -> int | None:
    """The index of the result of `function` that is `value` (also as a tensor), if any."""
    pending = [value]
    while pending:
        current = pending.pop()
        for use in current.uses:
            user = use.operation
            if isinstance(user, func.ReturnOp) and user.parent_op() is function:
                return use.index
            if isinstance(user, bufferization.ToTensorOp | memref.CastOp):
                pending.extend(user.results)
    return None


def launch_description(
    module: ModuleOp, buffer_ids: dict[SSAValue, int] | None = None
) -> dict[str, Any]:
    """What a host program needs to run the kernels that `print_opencl` prints (JSON-able).

        {"kernels": [{"module": "kernels", "name": "vadd", "reqd_work_group_size": [64, 1, 1],
                      "args": [{"type": "__global const float *", "access": "read"},
                               {"type": "int"}, ...]}, ...],
         "buffers": [{"id": 0, "function": "main", "origin": "argument", "argument": 0,
                      "dtype": "float32", "shape": [143], "bytes": 572},
                     {"id": 3, "function": "main", "origin": "alloc", ...},
                     {"id": 4, "function": "main", "origin": "global", "symbol": "w", ...}],
         "launches": [{"function": "main", "module": "kernels", "kernel": "vadd",
                       "global_size": [192, 1, 1], "local_size": [64, 1, 1],
                       "args": [{"buffer": 0, "bytes": 572},
                                {"scalar": "int", "value": 7, "bytes": 4},
                                {"scalar": "float", "argument": 3, "bytes": 4}, ...]}, ...]}

    `kernels` lists the kernels with their parameters' C types and, for buffers, whether the
    kernel reads, writes or does both (`read`, `write`, `read_write`). `buffers` lists every
    memref a launch passes, once, by where the host function gets it (through casts,
    reshapes and `bufferization.to_buffer`): its `argument` (index; a tensor argument too), a
    `memref.alloc` (`alloc`: a device buffer the host creates; `result` is the index of the
    function result it becomes, if it is returned), a `memref.get_global` (`global`, `symbol`
    names it) or an `arith.constant` tensor (`constant`: its `data` flattened, or the
    `resource` key of a `dense_resource`); `bytes` is null for a dynamic shape. A
    launch's `args` are in the kernel's parameter order: a buffer by id, or a scalar with its C
    type and either a constant `value` or the host function's `argument`. `global_size` is
    OpenCL's (blocks times threads per block), `local_size` the work-group size; both come from
    the constant grid and block sizes of the `gpu.launch_func`.

    With `buffer_ids`, it also gets each described buffer's value (what `root_buffer` gives
    for a kernel operand) and id.
    """
    kernels: dict[tuple[str, str], gpu.FuncOp] = {}
    described_kernels = []
    for gpu_module in gpu_modules(module):
        for op in gpu_module.body.ops:
            if isinstance(op, gpu.FuncOp) and _is_kernel(op):
                kernels[(gpu_module.sym_name.data, op.sym_name.data)] = op
                described_kernels.append(_describe_kernel(gpu_module, op))
    buffers: dict[SSAValue, dict[str, Any]] = {}
    launches = []
    for function in module.walk():
        if not isinstance(function, func.FuncOp):
            continue
        for launch in function.walk():
            if isinstance(launch, gpu.LaunchFuncOp):
                launches.append(_describe_launch(function, launch, kernels, buffers))
    if buffer_ids is not None:
        buffer_ids.update({value: b["id"] for value, b in buffers.items()})
    return {
        "kernels": described_kernels,
        "buffers": list(buffers.values()),
        "launches": launches,
    }


def _describe_kernel(gpu_module: gpu.ModuleOp, kernel: gpu.FuncOp) -> dict[str, Any]:
    accesses = _accesses(kernel)
    args = []
    for arg in kernel.body.block.args:
        type_ = arg.type
        if isinstance(type_, MemRefType):
            const = "const " if accesses[arg] == "read" else ""
            element = _scalar_c_type(type_.get_element_type())
            args.append({"type": f"__global {const}{element} *", "access": accesses[arg]})
        else:
            args.append({"type": _c_type(type_)})
    block = kernel.known_block_size.get_values() if kernel.known_block_size else None
    return {
        "module": gpu_module.sym_name.data,
        "name": kernel.sym_name.data,
        "reqd_work_group_size": list(block) if block else None,
        "args": args,
    }


def _describe_launch(
    function: func.FuncOp,
    launch: gpu.LaunchFuncOp,
    kernels: dict[tuple[str, str], gpu.FuncOp],
    buffers: dict[SSAValue, dict[str, Any]],
) -> dict[str, Any]:
    path = (launch.kernel.root_reference.data, *(r.data for r in launch.kernel.nested_references))
    if len(path) != 2 or path not in kernels:
        raise OpError(launch, f"launches {launch.kernel}, which is not a kernel of a gpu.module")
    if launch.dynamicSharedMemorySize is not None:
        raise OpError(launch, "has dynamic shared memory; OpenCL C 1.2 kernels here do not")
    grid = [
        _constant(launch, v, "the grid size")
        for v in (launch.gridSizeX, launch.gridSizeY, launch.gridSizeZ)
    ]
    block = [
        _constant(launch, v, "the block size")
        for v in (launch.blockSizeX, launch.blockSizeY, launch.blockSizeZ)
    ]
    known = kernels[path].known_block_size
    if known is not None and list(known.get_values()) != block:
        raise OpError(
            launch,
            f"launches {path[1]} with blocks of {block}, but the kernel requires "
            f"{list(known.get_values())} (gpu.known_block_size)",
        )
    args: list[dict[str, Any]] = []
    for operand in launch.kernelOperands:
        type_ = operand.type
        if isinstance(type_, MemRefType):
            root = root_buffer(operand)
            if root not in buffers:
                buffers[root] = _describe_buffer(launch, function, root, len(buffers))
            args.append({"buffer": buffers[root]["id"], "bytes": buffers[root]["bytes"]})
            continue
        c_type = _c_type(type_)
        if c_type is None or isinstance(type_, VectorType):
            raise OpError(launch, f"passes a {type_}, which cannot be a kernel argument")
        arg: dict[str, Any] = {"scalar": c_type, "bytes": _element_bytes(type_)}
        owner = operand.owner
        if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr | FloatAttr):
            arg["value"] = owner.value.value.data
        elif isinstance(operand, BlockArgument) and operand.owner.parent_op() is function:
            arg["argument"] = operand.index
        else:
            raise OpError(
                launch,
                f"passes a {type_} computed on the host; only constants and "
                "function arguments are described",
            )
        args.append(arg)
    return {
        "function": function.sym_name.data,
        "module": path[0],
        "kernel": path[1],
        "global_size": [g * b for g, b in zip(grid, block, strict=True)],
        "local_size": block,
        "args": args,
    }


def _describe_buffer(
    launch: gpu.LaunchFuncOp, function: func.FuncOp, value: SSAValue, id_: int
) -> dict[str, Any]:
    type_ = value.type
    assert isinstance(type_, MemRefType | TensorType)
    description: dict[str, Any] = {"id": id_, "function": function.sym_name.data}
    owner = value.owner
    if isinstance(value, BlockArgument) and value.owner.parent_op() is function:
        description |= {"origin": "argument", "argument": value.index}
    elif isinstance(owner, memref.AllocOp):
        description["origin"] = "alloc"
        result = _returned(function, value)
        if result is not None:
            description["result"] = result
    elif isinstance(owner, memref.GetGlobalOp):
        description |= {"origin": "global", "symbol": owner.name_.root_reference.data}
    elif isinstance(owner, arith.ConstantOp) and isinstance(owner.value, DenseResourceAttr):
        description |= {"origin": "constant", "resource": owner.value.resource_handle.data}
    elif isinstance(owner, arith.ConstantOp) and isinstance(owner.value, DenseIntOrFPElementsAttr):
        description |= {"origin": "constant", "data": list(owner.value.get_values())}
    else:
        what = owner.name if isinstance(owner, Operation) else "a block argument"
        raise OpError(
            launch,
            f"passes a memref made by {what}; only function arguments, constants, "
            "memref.alloc and memref.get_global buffers are described",
        )
    shape = type_.get_shape()
    dynamic = any(d == DYNAMIC_INDEX for d in shape)
    description |= {
        "dtype": _dtype(type_.get_element_type()),
        "shape": [None if d == DYNAMIC_INDEX else d for d in shape],
        "bytes": None if dynamic else math.prod(shape) * _element_bytes(type_.get_element_type()),
    }
    return description

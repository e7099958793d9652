"""Lower an xDSL module in upstream dialects to LLVM IR with `mlir-opt-22` and `mlir-translate-22`.

The back half of the CPU path. The input is a `builtin.module` whose ops all come from upstream
MLIR dialects (`UPSTREAM_DIALECTS`: func, scf, cf, memref, arith, vector, math, affine, index, ub,
and linalg/tensor/bufferization on tensors or buffers); `pconv` ops must be lowered before. The
output is LLVM IR text for a `pconv_mlir.machine.Machine`, for the builders in `pconv_mlir.runtime`.

    >>> ir = lower_to_llvm_ir(module, ctx, machine("aarch64"))      # doctest: +SKIP
    >>> signatures = function_signatures(module)                    # doctest: +SKIP

How: xDSL verifies the module, checks that it uses upstream dialects only and that public function
boundaries have types the C ABI can express, stamps the target triple and data layout on a copy,
and prints it in generic form with the `dense_resource` blobs of `ctx`. `mlir-opt-22` runs
`llvm_pipeline()`, and `mlir-translate-22 --mlir-to-llvmir` makes LLVM IR. xDSL has no lowering of
its own from vector, memref (descriptors, subviews) or bufferization to the llvm dialect, so the
whole conversion happens upstream.

The C ABI ("bare pointers"), the same for every public `func.func` with a body:

- a memref argument is one pointer to its first element (`float *`): the memref must have a static
  shape and the identity layout; the buffer is dense and row-major, and nothing is assumed about
  its alignment beyond the element type's;
- a tensor argument is bufferized to such a memref;
- memref and tensor results become pointer arguments that the caller allocates ("out-params"),
  appended after the original arguments in result order: `func.func @f(%x: tensor<2x3xf32>) ->
  tensor<2x7xf32>` is `void f(float *x, float *out)` in C;
- scalar arguments and at most one scalar result keep their C type; `index` is `int64_t`.

`function_signatures` describes exactly this per function; the runners in `pconv_mlir.runtime`
check every call against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    AffineMapAttr,
    DenseResourceAttr,
    MemRefType,
    ModuleOp,
    NoneAttr,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation
from xdsl.utils.exceptions import DiagnosticException

from pconv_mlir.elements import has_data, scalar_of, storage_of
from pconv_mlir.errors import LoweringError, ToolFailedError, first_line
from pconv_mlir.ir import ResourcePrinter, default_context, write_resources
from pconv_mlir.lowering.externalize_constants import (
    external_declaration,
    is_external,
    missing_data_message,
)
from pconv_mlir.machine import Machine, machine
from pconv_mlir.toolchain import run_tool

__all__ = [
    "UPSTREAM_DIALECTS",
    "ArgSpec",
    "FunctionSignature",
    "check_upstream_only",
    "function_signatures",
    "llvm_pipeline",
    "lower_to_llvm_dialect",
    "lower_to_llvm_ir",
    "print_for_mlir_opt",
    "run_mlir_opt",
    "translate_to_llvm_ir",
]


# ------------------------------------------------------------------------------------------------
# The C ABI of the generated functions
# ------------------------------------------------------------------------------------------------


def _dtype_of(type_: Attribute, where: str) -> str:
    """The numpy dtype name of scalar MLIR type `type_`, or a `LoweringError` naming `where`."""
    scalar = scalar_of(type_)
    if scalar is None or scalar.dtype.startswith("uint"):
        raise LoweringError(f"{where} has type {type_}, which the C ABI does not support")
    return scalar.dtype


@dataclass(frozen=True)
class ArgSpec:
    """One C-level argument or result of a generated function."""

    dtype: str
    """numpy dtype name of the value or of the buffer's elements (`float32`, `int64`, ...)."""
    shape: tuple[int, ...] | None
    """The buffer's shape for a pointer argument; `None` for a scalar passed by value."""
    is_out_param: bool = False
    """Whether this pointer was a memref/tensor result, now a caller-allocated output."""

    @property
    def is_buffer(self) -> bool:
        return self.shape is not None


@dataclass(frozen=True)
class FunctionSignature:
    """The C signature of one generated function under the bare-pointer ABI."""

    name: str
    args: tuple[ArgSpec, ...]
    """C arguments in order: the original arguments, then one out-param per buffer result."""
    result: ArgSpec | None
    """The scalar result, if any."""


def _is_identity_layout(type_: MemRefType) -> bool:
    layout = type_.layout
    if isinstance(layout, NoneAttr):
        return True
    if isinstance(layout, AffineMapAttr):
        return layout.data == layout.data.identity(layout.data.num_dims)
    return False


def _buffer_spec(type_: MemRefType | TensorType, where: str, *, out: bool = False) -> ArgSpec:
    shape = tuple(type_.get_shape())
    if any(dim < 0 for dim in shape):
        raise LoweringError(
            f"{where} has dynamic shape {type_}; the bare-pointer ABI needs static shapes"
        )
    if isinstance(type_, MemRefType) and not _is_identity_layout(type_):
        raise LoweringError(
            f"{where} has layout {type_.layout}; the bare-pointer ABI needs the identity layout"
        )
    return ArgSpec(_dtype_of(type_.get_element_type(), where), shape, out)


def _function_signature(op: func.FuncOp) -> FunctionSignature:
    name = op.sym_name.data
    args: list[ArgSpec] = []
    for i, type_ in enumerate(op.function_type.inputs.data):
        where = f"argument {i} of @{name}"
        if isinstance(type_, MemRefType | TensorType):
            args.append(_buffer_spec(type_, where))
        else:
            args.append(ArgSpec(_dtype_of(type_, where), None))
    scalars: list[ArgSpec] = []
    for i, type_ in enumerate(op.function_type.outputs.data):
        where = f"result {i} of @{name}"
        if isinstance(type_, MemRefType | TensorType):
            args.append(_buffer_spec(type_, where, out=True))
        else:
            scalars.append(ArgSpec(_dtype_of(type_, where), None))
    if len(scalars) > 1:
        raise LoweringError(f"@{name} returns {len(scalars)} scalars; the C ABI allows at most one")
    return FunctionSignature(name, tuple(args), scalars[0] if scalars else None)


def function_signatures(module: ModuleOp) -> dict[str, FunctionSignature]:
    """The C signatures of the module's public functions with a body, by name.

    Raises `LoweringError` for a boundary type the bare-pointer ABI cannot express: a dynamic
    shape, a non-identity layout, an unsupported element type, or more than one scalar result.
    """
    signatures: dict[str, FunctionSignature] = {}
    for op in module.ops:
        if not isinstance(op, func.FuncOp) or op.is_declaration:
            continue
        if op.sym_visibility is not None and op.sym_visibility.data != "public":
            continue
        try:
            signatures[op.sym_name.data] = _function_signature(op)
        except LoweringError as e:
            raise LoweringError(str(e), op=op) from None
    return signatures


# ------------------------------------------------------------------------------------------------
# Checking and printing the module for mlir-opt
# ------------------------------------------------------------------------------------------------

UPSTREAM_DIALECTS = frozenset(
    {
        "builtin",
        "func",
        "scf",
        "cf",
        "memref",
        "arith",
        "vector",
        "math",
        "affine",
        "index",
        "ub",
        "linalg",
        "tensor",
        "bufferization",
        "llvm",
    }
)
"""Dialects whose ops `llvm_pipeline()` lowers."""

# linalg ops whose region the user writes, so that their generic form is faithful. Every other
# linalg op is a named op whose region MLIR derives from its name, and xDSL's copies of those
# regions are not always right: xDSL 0.74 builds `linalg.pooling_nchw_max` as max(input, window)
# instead of max(output, input). Those are printed in custom form, so mlir-opt builds the region.
_LINALG_EXPLICIT_REGION = frozenset(
    {"linalg.generic", "linalg.yield", "linalg.index", "linalg.reduce", "linalg.map"}
)


class _UpstreamPrinter(ResourcePrinter):
    """Generic form, except for named linalg ops (custom form, without their region); globals
    made by `pconv-externalize-constants` as MLIR's external declarations, without their data."""

    def print_op(self, op: Operation) -> None:
        if isinstance(op, memref.GlobalOp) and is_external(op):
            super().print_op(external_declaration(op))
        elif (
            self.print_generic_format
            and op.name.startswith("linalg.")
            and op.name not in _LINALG_EXPLICIT_REGION
            and type(op).print is not Operation.print
        ):
            self.print_generic_format = False
            try:
                super().print_op(op)
            finally:
                self.print_generic_format = True
        else:
            super().print_op(op)


def check_upstream_only(module: ModuleOp) -> None:
    """Raise `LoweringError` naming the first op that is not in `UPSTREAM_DIALECTS`."""
    for op in module.walk():
        if op.dialect_name() not in UPSTREAM_DIALECTS:
            raise LoweringError(
                f"'{op.name}' cannot be lowered to LLVM here: only upstream dialects "
                f"({', '.join(sorted(UPSTREAM_DIALECTS))}) can; lower it first",
                op=op,
            )


def _check_resource_blobs(module: ModuleOp, ctx: Context) -> None:
    """Raise `LoweringError`, located at the op, for a `dense_resource` whose blob `ctx` does not
    hold (the data of externalized globals included: the build links it in)."""
    storage = storage_of(ctx)
    for op in module.walk():
        for attr in (*op.properties.values(), *op.attributes.values()):
            if isinstance(attr, DenseResourceAttr):
                key = attr.resource_handle.data
                if not has_data(storage, key):
                    raise LoweringError(missing_data_message(key), op=op)


def print_for_mlir_opt(
    module: ModuleOp, ctx: Context | None = None, target: Machine | str | None = None
) -> str:
    """`module` as text for `mlir-opt-22`: generic form plus the `dense_resource` blobs it uses,
    read from `ctx` (default: `pconv_mlir.ir.default_context()`).

    The globals of `pconv-externalize-constants` are printed as external declarations and their
    data is left out (the build links it in from the weights file, see
    `pconv_mlir.lowering.externalize_constants.external_constants`), so after that pass the text
    holds no large constant. With `target`, a copy of the module carries `llvm.target_triple`
    and `llvm.data_layout`.
    """
    ctx = default_context() if ctx is None else ctx
    if target is not None:
        spec = machine(target)
        module = module.clone()
        module.attributes["llvm.target_triple"] = StringAttr(spec.triple)
        module.attributes["llvm.data_layout"] = StringAttr(spec.data_layout)
    _check_resource_blobs(module, ctx)
    stream = StringIO()
    printer = _UpstreamPrinter(stream=stream, print_generic_format=True)
    printer.print_op(module)
    stream.write("\n")
    write_resources(stream, ctx, printer.resources.get("builtin", ()))
    return stream.getvalue()


# ------------------------------------------------------------------------------------------------
# Running the upstream tools
# ------------------------------------------------------------------------------------------------


def llvm_pipeline(
    opt_level: int = 3, *, transform_library: str | None = None, threads: bool = True
) -> str:
    """The `mlir-opt-22 --pass-pipeline` that takes upstream dialects to the llvm dialect.

    In order: with `transform_library` (a file holding a transform script such as
    `pconv_mlir.lowering.vectorize_linalg.transform_script` makes), run its
    `@__transform_main` on the module while it is still on tensors: the linalg ops it tiles and
    vectorises become vector code; bufferize tensors (function boundaries with identity
    layouts), make buffer results caller-allocated out-params, insert deallocations; the
    transform script's thread shares (`scf.forall`) to `scf.parallel`; the remaining linalg
    ops (named and generic) to scf loops; vector transfers to scf; subviews and affine maps to
    arithmetic; every `scf.parallel` to an OpenMP parallel loop (`convert-scf-to-openmp`: the
    generator's images x row tiles x filter shares, and the shares the transform script split
    upstream-vectorised layers into); canonicalize (always: it inlines the
    `memref.alloca_scope` that wraps each parallel body, which `convert-scf-to-cf` cannot split
    into blocks), and with
    `opt_level` >= 1 cse and loop-invariant code motion; scf to cf; then every dialect to llvm,
    with bare pointers for memrefs at function boundaries, heap buffers through MLIR's generic
    allocation functions (`_mlir_memref_to_llvm_alloc/free`: `pconv_mlir/runtime/pconv_alloc.c`
    keeps freed buffers for the next call), the `omp` ops last (after func and cf).
    `mlir-translate-22` then outlines each parallel body and calls the libomp ABI
    (`__kmpc_fork_call`, ...), which `pconv_mlir/runtime/pconv_omp.c` implements; the builders link
    it in. Passes with nothing to do (bufferization on a memref-only module, the OpenMP conversion
    without `scf.parallel`) leave the module as it is.

    With `threads=False` the parallel loops stay sequential loops (no `omp` ops in the result:
    what xDSL can read back, see `pconv-lower-to-llvm`).
    """
    cleanup = ["cse", "loop-invariant-code-motion"] if opt_level >= 1 else []
    vectorize = (
        [
            f"transform-preload-library{{transform-library-paths={transform_library}}}",
            "transform-interpreter",
        ]
        if transform_library is not None
        else []
    )
    passes = [
        # linalg on tensors to vector code (the ops the transform script tags).
        *vectorize,
        # Tensors to buffers.
        "one-shot-bufferize{bufferize-function-boundaries"
        " function-boundary-type-conversion=identity-layout-map}",
        "buffer-results-to-out-params{hoist-static-allocs modify-public-functions}",
        "buffer-deallocation-pipeline",
        "convert-bufferization-to-memref",
        # The transform script's thread shares (`scf.forall`, on tensors) are bufferized now,
        # without results: to `scf.parallel`, which becomes OpenMP below (or, without threads,
        # sequential loops in convert-scf-to-cf).
        "scf-forall-to-parallel",
        # Structured ops to loops and plain arithmetic.
        "func.func(convert-linalg-to-loops)",
        # Unrolled: the default keeps a transfer's temporaries in stack allocas inside the
        # loops (no alloca scope), so the stack grows with the trip count and overflows on
        # large batches.
        "convert-vector-to-scf{full-unroll=true}",
        "expand-strided-metadata",
        "lower-affine",
        # Threads: parallel loops to OpenMP (each body in a memref.alloca_scope, which
        # canonicalize inlines).
        *(["convert-scf-to-openmp"] if threads else []),
        "canonicalize",
        *cleanup,
        # math: LLVM intrinsics where they exist, else libm calls (scalarised), else outlined.
        "convert-math-to-llvm",
        "convert-math-to-libm",
        "convert-math-to-funcs",
        "convert-scf-to-cf",
        # Everything to llvm.
        "convert-vector-to-llvm",
        "convert-arith-to-llvm",
        "convert-index-to-llvm",
        # Heap buffers through `_mlir_memref_to_llvm_alloc/free`, which the runtime's
        # pconv_alloc.c implements with reuse: no page faults after the first call.
        "finalize-memref-to-llvm{use-generic-functions}",
        "convert-func-to-llvm{use-bare-ptr-memref-call-conv}",
        "convert-cf-to-llvm",
        *(["convert-openmp-to-llvm"] if threads else []),
        "convert-ub-to-llvm",
        "reconcile-unrealized-casts",
    ]
    return "builtin.module(" + ",".join(passes) + ")"


def _lower_vectorized(module: ModuleOp, ctx: Context | None, spec: Machine, opt_level: int) -> str:
    """`lower_to_llvm_dialect` with the linalg ops that have a vector form vectorised: a copy
    of `module` gets the canonical forms of `pconv_mlir.lowering.vectorize_linalg`, and
    `llvm_pipeline` runs the transform script for its kinds and `spec`."""
    import tempfile
    from pathlib import Path

    from pconv_mlir.lowering.vectorize_linalg import prepare_linalg, transform_script

    if not any(op.dialect_name() == "linalg" for op in module.walk()):
        # Nothing to vectorise: no copy (a specialised conv's module has 10^5 ops and more).
        return run_mlir_opt(prepare_for_mlir_opt(module, ctx, spec), llvm_pipeline(opt_level))
    # The checks of `prepare_for_mlir_opt` on the module as given, so diagnostics name its ops.
    try:
        module.verify()
    except DiagnosticException as e:
        raise LoweringError(f"module does not verify: {first_line(e)}") from None
    check_upstream_only(module)
    function_signatures(module)
    vectorized = module.clone()
    kinds = prepare_linalg(vectorized, spec)
    text = prepare_for_mlir_opt(vectorized, ctx, spec)
    if not kinds:
        return run_mlir_opt(text, llvm_pipeline(opt_level))
    with tempfile.TemporaryDirectory(prefix="pconv-transform-") as folder:
        library = Path(folder) / "vectorize.mlir"
        library.write_text(transform_script(kinds, spec))
        return run_mlir_opt(text, llvm_pipeline(opt_level, transform_library=str(library)))


def _run_upstream(tool: str, args: list[str], text: str) -> str:
    try:
        return run_tool(tool, args, text)
    except ToolFailedError as e:
        raise LoweringError(str(e), details=e.stderr, input_text=text) from None


def run_mlir_opt(text: str, pipeline: str, *, generic_output: bool = False) -> str:
    """Run `mlir-opt-22 --pass-pipeline=pipeline` on MLIR `text` and return its output.

    With `generic_output` the output is in generic form: the form to hand back to xDSL's parser.
    """
    args = [f"--pass-pipeline={pipeline}"]
    if generic_output:
        args.append("--mlir-print-op-generic")
    return _run_upstream("mlir-opt", args, text)


def translate_to_llvm_ir(llvm_dialect_text: str) -> str:
    """LLVM IR for a module in the llvm dialect, by `mlir-translate-22 --mlir-to-llvmir`."""
    return _run_upstream("mlir-translate", ["--mlir-to-llvmir"], llvm_dialect_text)


def prepare_for_mlir_opt(module: ModuleOp, ctx: Context | None, target: Machine | str) -> str:
    """Verify `module`, check it is upstream-only with a C ABI, and print it for mlir-opt."""
    spec = machine(target)
    try:
        module.verify()
    except DiagnosticException as e:
        raise LoweringError(f"module does not verify: {first_line(e)}") from None
    check_upstream_only(module)
    function_signatures(module)  # rejects boundary types the ABI cannot express
    return print_for_mlir_opt(module, ctx, spec)


def lower_to_llvm_dialect(
    module: ModuleOp,
    ctx: Context | None = None,
    target: Machine | str = "host",
    *,
    opt_level: int = 3,
    vectorize: bool = True,
) -> str:
    """`module` lowered by `llvm_pipeline()` to the llvm dialect, as upstream MLIR text.

    With `vectorize` (the default), the linalg ops that have a vector form
    (`pconv_mlir.lowering.vectorize_linalg`) are tiled and vectorised for `target`; the others
    become scalar loops (`vectorize_linalg.unvectorised_ops` lists them). The text is in LLVM 22
    syntax, which xDSL may not parse: give it to `translate_to_llvm_ir`.
    """
    if vectorize:
        return _lower_vectorized(module, ctx, machine(target), opt_level)
    return run_mlir_opt(prepare_for_mlir_opt(module, ctx, target), llvm_pipeline(opt_level))


def lower_to_llvm_ir(
    module: ModuleOp,
    ctx: Context | None = None,
    target: Machine | str = "host",
    *,
    opt_level: int = 3,
) -> str:
    """`module` (upstream dialects only) as LLVM IR text for `target` (a `Machine` or its name).

    The IR carries the machine's triple and data layout, and its functions follow the
    bare-pointer C ABI of this module's docstring; `dense_resource` data comes from `ctx`.
    `opt_level` 0 skips the MLIR clean-up passes; LLVM's optimisations are clang's job. Raises
    `LoweringError` (one-line message) or `ToolNotFoundError`.
    """
    llvm_dialect = lower_to_llvm_dialect(module, ctx, target, opt_level=opt_level)
    return translate_to_llvm_ir(llvm_dialect)

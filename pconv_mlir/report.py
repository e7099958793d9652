"""The per-layer report of a compiled network: what each layer is, what it costs, how it runs.

    >>> for row in artifact.report: print(row)                 # doctest: +SKIP
    >>> print(format_report(artifact.report))                  # doctest: +SKIP

`layer_report(module)` reads a module at the FKW level (after `pconv-fkw-pack`, before the
lowering) and gives one `LayerRow` per layer (`pconv_mlir.passes.pconv_profile_layers.is_layer`,
in the same order as the profiler numbers them): its kind, dense and executed multiply-adds,
patterns used, kernels kept, the bytes of its weights and how it is lowered. `compile` keeps
these rows (`CompiledModel.report`); `CompiledModel.profile` adds the time per layer measured
on the host (`LayerRow.seconds`, through a build with `pconv-profile-layers`). A conv lowered
upstream whose element-wise tails are fused into it (`pconv_mlir.lowering.vectorize_linalg`)
runs them inside its own loops, so its row gets the time of the whole chain and the tails' rows
read zero, as the epilogue of a pconv conv is part of its row.

Kinds: `pattern` (a pattern-sparse KxK conv), `dense` (a KxK conv with every tap), `1x1`,
`depthwise`, `pool`, `linear`, `elementwise` and `other`. Lowerings: `pconv` (the pattern
generator), `vector` (upstream tiling and vectorisation) and `scalar` (upstream loops: no fast
lowering yet, said so rather than hidden).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from math import prod

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Operation

from pconv_mlir.dialects.pconv import FkwConv2dOp
from pconv_mlir.elements import ElementsError, constant_value
from pconv_mlir.errors import op_location
from pconv_mlir.passes.pconv_profile_layers import layers_of


@dataclass(frozen=True)
class LayerRow:
    """One layer of the report."""

    number: int
    op: str
    location: str
    kind: str
    output: tuple[int, ...]
    dense_macs: int
    """Multiply-adds of the layer computed densely (0 for layers without any)."""
    macs: int
    """Multiply-adds the generated code executes."""
    patterns: int = 0
    """Patterns the layer uses (pconv convs)."""
    kernels: tuple[int, int] = (0, 0)
    """(kept, all) kernels (pconv convs)."""
    weight_bytes: int = 0
    """Bytes of the weights as stored (FKW arrays for pconv convs)."""
    lowering: str = "pconv"
    seconds: float | None = None
    """Measured time per call on the host, when profiled."""


def _shape(op: Operation) -> tuple[int, ...]:
    result = op.results[0].type if op.results else None
    return tuple(result.get_shape()) if isinstance(result, TensorType) else ()


def _pconv_row(number: int, op: FkwConv2dOp) -> LayerRow:
    n, f, oh, ow = op.result.type.get_shape()
    c = op.input.type.get_shape()[1]
    kh, kw = op.patterns.kernel_window
    kernels = op.index.type.get_shape()[0]
    taps = op.patterns.taps.data
    if (kh, kw) == (1, 1):
        kind = "1x1"
    elif op.patterns.is_dense:
        kind = "dense"
    else:
        kind = "pattern"
    used = len(op.patterns)
    stride = constant_value(None, op.stride, copy=False) if _readable(op.stride) else None
    if stride is not None:
        runs = stride[:, 1:] - stride[:, :-1]
        per_pattern = runs.reshape(f, -1, len(op.patterns)).sum(axis=(0, 1))
        used = int((per_pattern > 0).sum())
    weight_bytes = sum(
        prod(getattr(op, name).type.get_shape()) * 4
        for name in ("offset", "reorder", "index", "stride", "weight")
    )
    return LayerRow(
        number,
        op.name,
        op_location(op),
        kind,
        (n, f, oh, ow),
        n * oh * ow * f * c * kh * kw,
        n * oh * ow * kernels * taps,
        used,
        (kernels, f * c),
        weight_bytes,
        "pconv",
    )


def _readable(value) -> bool:
    try:
        return constant_value(None, value, copy=False) is not None
    except ElementsError:
        return False


def _is_depthwise(op: linalg.GenericOp) -> bool:
    """A generic whose image operand is read at (n, c, h + kh, w + kw) with its weight at
    (c, kh, kw): the depthwise convs `import_torch` generalises."""
    maps = [m.data for m in op.indexing_maps]
    return (
        len(op.inputs) == 2
        and len(maps) == 3
        and maps[0].num_dims == 6
        and len(maps[1].results) == 3
        and any(it.data.value == "reduction" for it in op.iterator_types)
    )


def _kind(op: Operation) -> str:
    """The kind of a linalg layer (see the module docstring)."""
    name = op.name
    if "pooling" in name:
        return "pool"
    if "matmul" in name:
        return "linear"
    if "conv" in name:  # left for upstream vectorisation: 1x1 convs that keep every kernel
        weight = getattr(op, "inputs", ())[1:2]
        window = tuple(weight[0].type.get_shape()[2:]) if weight else ()
        return "1x1" if window == (1, 1) else "other"
    if not isinstance(op, linalg.GenericOp):
        return "elementwise"
    if not any(it.data.value == "reduction" for it in op.iterator_types):
        return "elementwise"
    if _is_depthwise(op):
        return "depthwise"
    return "pool" if len(op.inputs) == 1 else "other"


def _linalg_row(number: int, op: Operation, lowering: Callable[[Operation], str]) -> LayerRow:
    try:
        loops = tuple(op.get_static_loop_ranges())
    except Exception:  # not every linalg op can say
        loops = _shape(op)
    work = prod(loops) if loops else 0
    kind = _kind(op)
    name = op.name
    macs = work if kind in ("depthwise", "linear", "other", "1x1") else 0
    weight_bytes = 0
    for value in getattr(op, "inputs", ()):
        if isinstance(value.owner, linalg.TransposeOp):  # a linear layer's weight, transposed
            value = value.owner.inputs[0]
        if _readable(value):
            array = constant_value(None, value, copy=False)
            if array is not None and array.size > 1:
                weight_bytes += array.nbytes
    return LayerRow(
        number,
        name,
        op_location(op),
        kind,
        _shape(op),
        macs,
        macs,
        weight_bytes=weight_bytes,
        lowering=lowering(op),
    )


def layer_report(
    module: ModuleOp,
    function: str | None = None,
    lowering: Callable[[Operation], str] | None = None,
) -> list[LayerRow]:
    """One row per layer of `function` (default: the first function with layers).

    `lowering(op)` says how a non-pconv layer is lowered (`vector` or `scalar` on the CPU,
    `gpu-loops` on the GPU backends; default `scalar`). Constants are read from the active
    resource storage (`pconv_mlir.elements.using_storage`)."""
    how = lowering or (lambda op: "scalar")
    functions = [f for f in module.ops if isinstance(f, func.FuncOp) and layers_of(f)]
    if function is not None:
        functions = [f for f in functions if f.sym_name.data == function]
    if not functions:
        return []
    rows = []
    for number, op in enumerate(layers_of(functions[0])):
        if isinstance(op, FkwConv2dOp):
            rows.append(_pconv_row(number, op))
        else:
            rows.append(_linalg_row(number, op, how))
    return rows


def with_times(rows: list[LayerRow], seconds: list[float]) -> list[LayerRow]:
    """`rows` with the measured seconds per call of each layer."""
    return [replace(r, seconds=s) for r, s in zip(rows, seconds, strict=False)]


def format_report(rows: list[LayerRow]) -> str:
    """The report as a text table, with a total row."""
    header = (
        f"{'#':>3} {'kind':<11} {'output':<16} {'dense MMAC':>10} {'exec MMAC':>10} "
        f"{'pat':>3} {'kernels kept':>15} {'weights KB':>10} {'lowering':<8} {'ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        kept = f"{r.kernels[0]}/{r.kernels[1]}" if r.kernels[1] else ""
        ms = f"{r.seconds * 1e3:8.3f}" if r.seconds is not None else f"{'':>8}"
        lines.append(
            f"{r.number:>3} {r.kind:<11} {'x'.join(map(str, r.output)):<16} "
            f"{r.dense_macs / 1e6:10.2f} {r.macs / 1e6:10.2f} {r.patterns or '':>3} "
            f"{kept:>15} {r.weight_bytes / 1024:10.1f} {r.lowering:<8} {ms}"
        )
    dense = sum(r.dense_macs for r in rows)
    executed = sum(r.macs for r in rows)
    total_ms = sum(r.seconds for r in rows if r.seconds is not None) * 1e3
    times = any(r.seconds is not None for r in rows)
    lines.append("-" * len(header))
    lines.append(
        f"{'':>3} {'total':<11} {'':<16} {dense / 1e6:10.2f} {executed / 1e6:10.2f} {'':>3} "
        f"{'':>15} {sum(r.weight_bytes for r in rows) / 1024:10.1f} {'':<8} "
        + (f"{total_ms:8.3f}" if times else "")
    )
    return "\n".join(lines)

"""pconv-lre: register-level load redundancy elimination (PatDNN, section 5.3).

In the unrolled kernel bodies that convert-pconv-to-loops emits, every (output row, vector, tap)
loads its own shifted input vector from the flat padded input `%xp`, at the kernel's base plus
a constant: `vector.load %xp[%base + ((r * sh + dr) * s_y + q * s_q + u * V + j)]`. Yet output
row r with tap row-offset dr reads the same input row as row r + 1 with row-offset dr - sh (with
stride 1: row 0 with tap row 1 and row 1 with tap row 0): the same vector. Within each block,
this pass finds `vector.load`s of the same memref at the same indices, with no write to memory
between them, and keeps only the first. Indices count as equal when they are the same value plus
the same constant (`%base + 12` built twice is one index). The index arithmetic that only the
removed loads used goes too.

Option `report`: print to stderr, for every function, the vector loads per output vector per
kernel before and after, averaged over its kernel loops (`scf.for`s whose body does
`vector.fma`s), and the activation vector loads per vector multiply-add over all of those
loop bodies, before and after (the figure PatDNN's filter-level LRE and XNNPACK's sparse kernels
are judged by: 1 when every multiply-add loads its own input vector).

    %c12 = arith.constant 12 : index        // row 0, tap (1, 1): 1 * s_y + 1, with s_y = 11
    %i = arith.addi %base, %c12 : index
    %a = vector.load %xp[%i] : memref<132xf32>, vector<4xf32>
    %c12b = arith.constant 12 : index       // row 1, tap (0, 1): (1 + 0) * s_y + 1, the same
    %k = arith.addi %base, %c12b : index
    %b = vector.load %xp[%k] : memref<132xf32>, vector<4xf32>
  becomes
    %c12 = arith.constant 12 : index
    %i = arith.addi %base, %c12 : index
    %a = vector.load %xp[%i] : memref<132xf32>, vector<4xf32>   // %b's uses read %a
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, scf, vector
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.traits import MemoryEffectKind, get_effects

from pconv_mlir.errors import op_location

IndexKey = tuple[object, int]


def index_key(value: SSAValue) -> IndexKey:
    """`value` as (base, constant offset): `%a + 2 + 1` and `%a + 3` give the same key."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, IntegerAttr):
        return (None, owner.value.value.data)
    if isinstance(owner, arith.AddiOp):
        for base, other in ((owner.lhs, owner.rhs), (owner.rhs, owner.lhs)):
            other_owner = other.owner
            if isinstance(other_owner, arith.ConstantOp) and isinstance(
                other_owner.value, IntegerAttr
            ):
                key_base, offset = index_key(base)
                return (key_base, offset + other_owner.value.value.data)
    return (value, 0)


def eliminate_redundant_loads(block: Block) -> int:
    """Remove repeated vector loads in `block`; returns how many were removed."""
    seen: dict[tuple[object, ...], SSAValue] = {}
    removed = 0
    for op in list(block.ops):
        if isinstance(op, vector.LoadOp):
            key = (op.base, op.result.type, *(index_key(i) for i in op.indices))
            if key in seen:
                dead_indices = [i.owner for i in op.indices]
                op.result.replace_all_uses_with(seen[key])
                Rewriter.erase_op(op)
                _erase_unused(dead_indices)
                removed += 1
            else:
                seen[key] = op.result
        elif _may_write(op):
            seen.clear()
    return removed


def _may_write(op: Operation) -> bool:
    """Whether `op` may write memory: it has regions, unknown effects or a write effect."""
    if op.regions:
        return True
    effects = get_effects(op)
    return effects is None or any(e.kind == MemoryEffectKind.WRITE for e in effects)


def _erase_unused(ops: list[object]) -> None:
    pending = [o for o in ops if isinstance(o, Operation)]
    while pending:
        op = pending.pop()
        if op.parent is None or not isinstance(op, arith.AddiOp | arith.ConstantOp):
            continue
        if any(r.uses for r in op.results):
            continue
        operands = [o.owner for o in op.operands if isinstance(o.owner, Operation)]
        Rewriter.erase_op(op)
        pending += operands


def kernel_loops(root: Operation) -> list[scf.ForOp]:
    """The scf.for loops whose own body multiplies-adds vectors: one per pattern run."""
    return [
        op
        for op in root.walk()
        if isinstance(op, scf.ForOp) and any(isinstance(o, vector.FMAOp) for o in op.body.block.ops)
    ]


def loads_per_output(loop: scf.ForOp) -> float:
    """Vector loads in the loop body per accumulated output vector."""
    loads = sum(isinstance(o, vector.LoadOp) for o in loop.body.block.ops)
    return loads / max(1, len(loop.iter_args))


def loads_and_fmas(loops: list[scf.ForOp]) -> tuple[int, int]:
    """Activation vector loads and vector multiply-adds in the bodies of `loops`: the vector
    loads that some multiply-add multiplies (the weights are scalar loads and broadcasts; a
    load that starts an accumulator from the output is not counted)."""
    loads = fmas = 0
    for loop in loops:
        for o in loop.body.block.ops:
            fmas += isinstance(o, vector.FMAOp)
            if isinstance(o, vector.LoadOp) and any(
                isinstance(use.operation, vector.FMAOp) and use.index < 2 for use in o.result.uses
            ):
                loads += 1
    return loads, fmas


@dataclass(frozen=True)
class PconvLrePass(ModulePass):
    """Register-level load redundancy elimination: each shared input vector is loaded once.

    See the module docstring for what counts as the same load and for the report.
    """

    name = "pconv-lre"

    report: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in [f for f in op.walk() if isinstance(f, func.FuncOp)]:
            loops = kernel_loops(function)
            before = [loads_per_output(loop) for loop in loops]
            loads_before, fmas = loads_and_fmas(loops)
            for loop in loops:
                eliminate_redundant_loads(loop.body.block)
            if self.report and loops:
                after = [loads_per_output(loop) for loop in loops]
                mean_before, mean_after = sum(before) / len(loops), sum(after) / len(loops)
                loads_after, _ = loads_and_fmas(loops)
                print(
                    f"{op_location(function)}: pconv-lre: @{function.sym_name.data}: "
                    f"{len(loops)} kernel loops, vector loads per output vector per kernel "
                    f"{mean_before:.2f} -> {mean_after:.2f}, activation vector loads per "
                    f"multiply-add {loads_before / max(1, fmas):.2f} -> "
                    f"{loads_after / max(1, fmas):.2f}",
                    file=sys.stderr,
                )

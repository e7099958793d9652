"""pconv-apply-tuning: give each FKW convolution the schedule a tuning database holds for it.

The database is the JSON file the tuner writes (`pconv-tune`, `pconv_mlir.tune`): per layer,
the schedule parameters it chose. A layer is found by `layer_key`: its shapes, window, pattern
set size and a digest of which kernels it keeps with which pattern, so a database tuned on one
module applies to the same layers of another. The parameters the database holds replace the
op's; every other parameter is kept. Layers the database does not know are left alone.
Changing `tile_channels` re-packs the FKW arrays (see `pconv-schedule`).

Options: `database` (the JSON file), `report` (print per conv what was applied to stderr).

    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 3, unroll_cols = 2, ...>
  with a database entry {"schedule": {"unroll_rows": 4, "unroll_cols": 1}} becomes
    pconv.fkw_conv2d ... schedule <vector_width = 8, unroll_rows = 4, unroll_cols = 1, ...>
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import VerifyException

from pconv_mlir import fkw
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr, window_of
from pconv_mlir.errors import OptionError, PconvError, op_location
from pconv_mlir.passes.pconv_schedule import reschedule

FORMAT = "pconv-tuning/1"
"""The `format` field of a tuning database."""


def layer_key(op: FkwConv2dOp) -> str:
    """What identifies a layer for tuning: shapes, window, pattern set size and the digest of
    its kernels' pattern ids (in original filter order, so reordering and channel blocking do
    not change it). `dynamic` stands for the digest when the FKW arrays are not constants."""
    n, c, h, w = op.input.type.get_shape()
    f = op.result.type.get_shape()[1]
    window = window_of(op)
    arrays = op.fkw_arrays()
    if arrays is None:
        digest = "dynamic"
    else:
        _, ids = fkw.unpack(arrays, op.patterns.patterns, c)
        digest = hashlib.sha1(ids.astype("int8").tobytes()).hexdigest()[:12]
    sh, sw = window["strides"]
    ph, pw = window["padding"]
    dh, dw = window["dilation"]
    return (
        f"{n}x{c}x{h}x{w}->{f} s{sh}x{sw} p{ph}x{pw} d{dh}x{dw} "
        f"k{len(op.patterns)}t{op.patterns.taps.data} {digest}"
    )


@dataclass
class TuningDatabase:
    """Per layer key, the schedule parameters a tuner chose (and what it measured)."""

    backend: str = ""
    machine: str = ""
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """key -> {"schedule": {...}, "cost": float, "unit": str, "location": str, ...}"""

    def record(
        self, key: str, schedule: dict[str, int], cost: float, unit: str, **extra: Any
    ) -> None:
        """Remember `schedule` (the tuned parameters only) for layer `key`."""
        self.layers[key] = {"schedule": dict(schedule), "cost": cost, "unit": unit, **extra}

    def schedule_for(self, key: str) -> dict[str, int] | None:
        """The tuned parameters of layer `key`, or None when the database does not know it."""
        entry = self.layers.get(key)
        return None if entry is None else dict(entry["schedule"])

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "backend": self.backend,
            "machine": self.machine,
            "layers": self.layers,
        }
        return json.dumps(document, indent=2, sort_keys=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the database as JSON (atomically: a half-written file never appears)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(self.to_json())
        partial.replace(path)

    @staticmethod
    def load(path: str | Path) -> TuningDatabase:
        """Read a database; `PconvError` naming the file for anything malformed."""
        try:
            document = json.loads(Path(path).read_text())
        except OSError as e:
            raise PconvError(
                f"{path}: error: cannot read the tuning database: {e.strerror}"
            ) from None
        except json.JSONDecodeError as e:
            raise PconvError(f"{path}:{e.lineno}:{e.colno}: error: not JSON: {e.msg}") from None
        return TuningDatabase.from_document(document, str(path))

    @staticmethod
    def from_document(document: Any, where: str = "<tuning database>") -> TuningDatabase:
        """A database from its parsed JSON; `PconvError` for a wrong format."""

        def fail(message: str) -> PconvError:
            return PconvError(f"{where}: error: {message}")

        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise fail(f'not a tuning database (expected "format": "{FORMAT}")')
        layers = document.get("layers")
        if not isinstance(layers, dict):
            raise fail('"layers" must be an object')
        for key, entry in layers.items():
            schedule = entry.get("schedule") if isinstance(entry, dict) else None
            if not isinstance(schedule, dict):
                raise fail(f"layer '{key}' has no \"schedule\" object")
            try:
                ScheduleAttr.get(**schedule).verify()
            except (OptionError, VerifyException) as e:
                raise fail(f"layer '{key}': {e}") from None
        return TuningDatabase(
            str(document.get("backend", "")), str(document.get("machine", "")), dict(layers)
        )


@dataclass
class _ApplyTuning(RewritePattern):
    database: TuningDatabase
    report: bool

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        key = layer_key(op)
        values = self.database.schedule_for(key)
        if self.report:
            found = "not in the database" if values is None else f"applies {values}"
            print(f"{op_location(op)}: pconv-apply-tuning: {key}: {found}", file=sys.stderr)
        if values is None:
            return
        schedule = op.schedule.replace(**values)
        if schedule != op.schedule:
            reschedule(op, schedule, rewriter)


@dataclass(frozen=True)
class PconvApplyTuningPass(ModulePass):
    """Applies the schedules of a tuning database to the FKW convolutions it knows.

    See the module docstring for how layers are matched; parameters not tuned are kept.
    """

    name = "pconv-apply-tuning"

    database: str = ""
    report: bool = False

    def __post_init__(self) -> None:
        if not self.database:
            raise OptionError("pconv-apply-tuning needs database=<file.json>")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        database = TuningDatabase.load(self.database)
        PatternRewriteWalker(
            _ApplyTuning(database, self.report), apply_recursively=False
        ).rewrite_module(op)

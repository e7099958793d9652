"""pconv-apply-tuning: give each FKW convolution the schedule a tuning database holds for it.

The database is the JSON file the tuner writes (`pconv-tune`, `pconv_mlir.tune`): per layer
and target, the schedule parameters it chose. A layer is named by `layer_key`: its shapes,
window, pattern set size and a digest of which kernels it keeps with which pattern, so a
database tuned on one module applies to the same layers of another. Each entry also holds the
target it was tuned for (`host-avx2`, `host-avx512`, `aarch64-cortex-a76`, ...: the backend
and what distinguishes its machine, see `pconv_mlir.tune.tuning_target`) and the layer's
pattern statistics (`layer_stats`: the fraction of kernels kept and the share of each pattern,
largest first).

Lookup (`TuningDatabase.lookup`): the exact layer for the target first; otherwise, among the
entries for the same target with the same shapes, window and pattern set, the one whose
statistics are nearest (`stats_distance`: difference of kept fractions plus total variation of
the pattern shares), if at most `STATS_TOLERANCE` (0.1) away. So a layer pruned again with
another random seed reuses the tuning; a layer pruned to another rate does not. Entries of a
version 1 database (`pconv-tuning/1`) have no target and match their exact layer on any target.

The parameters found replace the op's; every other parameter is kept. Layers the database
does not know are left alone. Changing `tile_channels` re-packs the FKW arrays (see
`pconv-schedule`). The pass only reads the file.

Options: `database` (the JSON file); `target` (whose entries apply; default: the one target
the file holds, and an error when it holds several); `report` (print per conv what was applied
to stderr).

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

import numpy as np
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

FORMAT = "pconv-tuning/2"
"""The `format` field of the tuning databases written now."""

READABLE = ("pconv-tuning/1", FORMAT)
"""The formats `TuningDatabase.load` reads (version 1 entries have no target: any target)."""

STATS_TOLERANCE = 0.1
"""The largest `stats_distance` at which a layer reuses another's tuning (see the module
docstring): a re-pruning at the same rate with another random seed is well within it, a layer
that keeps twice the kernels is not."""


def layer_key(op: FkwConv2dOp) -> str:
    """What identifies a layer for tuning: shapes, window, pattern set size and the digest of
    its kernels' pattern ids (in original filter order, so reordering and channel blocking do
    not change it). `dynamic` stands for the digest when the FKW arrays are not constants."""
    n, c, h, w = op.input.type.get_shape()
    f = op.result.type.get_shape()[1]
    window = window_of(op)
    ids = _pattern_ids(op)
    digest = "dynamic" if ids is None else hashlib.sha1(ids.astype("int8").tobytes()).hexdigest()
    sh, sw = window["strides"]
    ph, pw = window["padding"]
    dh, dw = window["dilation"]
    return (
        f"{n}x{c}x{h}x{w}->{f} s{sh}x{sw} p{ph}x{pw} d{dh}x{dw} "
        f"k{len(op.patterns)}t{op.patterns.taps.data} {digest[:12]}"
    )


def layer_shape(key: str) -> str:
    """The part of a `layer_key` without the kernel digest: shapes, window and pattern set."""
    return key.rsplit(" ", 1)[0]


def _pattern_ids(op: FkwConv2dOp) -> np.ndarray | None:
    arrays = op.fkw_arrays()
    if arrays is None:
        return None
    _, ids = fkw.unpack(arrays, op.patterns.patterns, op.input.type.get_shape()[1])
    return ids


def layer_stats(op: FkwConv2dOp) -> dict[str, Any] | None:
    """The pattern statistics of a layer: `kept`, the fraction of its kernels kept, and
    `patterns`, the share of the kept kernels of each pattern, largest first (so it does not
    depend on which patterns the set holds or their order). None when the FKW arrays are not
    constants."""
    ids = _pattern_ids(op)
    if ids is None:
        return None
    kept = ids[ids >= 0]
    counts = np.bincount(kept, minlength=len(op.patterns)).astype(np.float64)
    shares = sorted((counts / max(1, kept.size)).tolist(), reverse=True)
    return {
        "kept": round(kept.size / max(1, ids.size), 6),
        "patterns": [round(v, 6) for v in shares],
    }


def stats_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How far apart two layers' pattern statistics are: the difference of their kept
    fractions plus the total variation distance of their pattern shares (0 to 1 each)."""
    pa, pb = list(a["patterns"]), list(b["patterns"])
    width = max(len(pa), len(pb))
    pa, pb = pa + [0.0] * (width - len(pa)), pb + [0.0] * (width - len(pb))
    shares = 0.5 * sum(abs(x - y) for x, y in zip(pa, pb, strict=True))
    return abs(float(a["kept"]) - float(b["kept"])) + shares


@dataclass(frozen=True)
class Match:
    """A database entry found for a layer: its key in `TuningDatabase.layers`, the entry, and
    the statistics distance (None: the exact layer)."""

    key: str
    entry: dict[str, Any]
    distance: float | None = None

    @property
    def schedule(self) -> dict[str, int]:
        return dict(self.entry["schedule"])

    def describe(self) -> str:
        if self.distance is None:
            return "exact"
        return f"nearest {self.entry.get('layer', self.key)}, distance {self.distance:.3f}"


@dataclass
class TuningDatabase:
    """Per layer and target, the schedule parameters a tuner chose (and what it measured).

    An entry's key is `entry_key(layer_key, target)`; the entry holds `layer`, `target`,
    `stats` (`layer_stats`), `schedule`, `cost`, `unit`, `backend`, `machine` and what else the
    tuner adds (`location`, `search`, `candidates`). `backend` and `machine` of the database are
    those of its last writer, for reports."""

    backend: str = ""
    machine: str = ""
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """entry key -> {"layer": ..., "target": ..., "stats": ..., "schedule": {...}, ...}"""

    @staticmethod
    def entry_key(layer: str, target: str | None) -> str:
        """The key of layer `layer`'s entry for `target` (version 1 entries: the layer key)."""
        return layer if not target else f"{layer} @ {target}"

    def record(
        self,
        key: str,
        schedule: dict[str, int],
        cost: float,
        unit: str,
        *,
        target: str | None = None,
        stats: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """Remember `schedule` (the tuned parameters only) for layer `key` on `target`."""
        entry: dict[str, Any] = {"layer": key}
        if target:
            entry["target"] = target
        if stats is not None:
            entry["stats"] = stats
        if self.backend:
            entry["backend"] = self.backend
        if self.machine:
            entry["machine"] = self.machine
        entry |= {"schedule": dict(schedule), "cost": cost, "unit": unit, **extra}
        self.layers[self.entry_key(key, target)] = entry

    def targets(self) -> set[str]:
        """The targets the entries are for (version 1 entries have none)."""
        return {e["target"] for e in self.layers.values() if e.get("target")}

    def lookup(
        self,
        key: str,
        target: str | None = None,
        stats: dict[str, Any] | None = None,
        tolerance: float = STATS_TOLERANCE,
    ) -> Match | None:
        """The entry for layer `key` on `target`: the exact layer first (an entry without a
        target matches any), else the entry of the same shapes, window and pattern set for
        the same target whose `stats` are nearest to `stats`, within `tolerance`."""
        for candidate in (self.entry_key(key, target), key):
            entry = self.layers.get(candidate)
            if entry is not None and entry.get("target") in (None, target):
                return Match(candidate, entry)
        if stats is None or target is None:
            return None
        best: Match | None = None
        shape = layer_shape(key)
        for entry_key, entry in self.layers.items():
            theirs = entry.get("stats")
            if entry.get("target") != target or theirs is None:
                continue
            if layer_shape(entry.get("layer", entry_key)) != shape:
                continue
            distance = stats_distance(stats, theirs)
            if distance <= tolerance and (best is None or distance < (best.distance or 0.0)):
                best = Match(entry_key, entry, distance)
        return best

    def schedule_for(
        self, key: str, target: str | None = None, stats: dict[str, Any] | None = None
    ) -> dict[str, int] | None:
        """The tuned parameters of layer `key` (see `lookup`), or None when unknown."""
        match = self.lookup(key, target, stats)
        return None if match is None else match.schedule

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

        form = document.get("format") if isinstance(document, dict) else None
        if isinstance(form, str) and form.startswith("pconv-tuning/") and form not in READABLE:
            raise fail(
                f'tuning database format "{form}" is unknown (this pconv-mlir reads '
                f"{', '.join(READABLE)}); re-tune or upgrade pconv-mlir"
            )
        if form not in READABLE:
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
            stats = entry.get("stats")
            if stats is not None and not (
                isinstance(stats, dict)
                and isinstance(stats.get("kept"), int | float)
                and isinstance(stats.get("patterns"), list)
            ):
                raise fail(f'layer \'{key}\': "stats" must be {{"kept": ..., "patterns": [...]}}')
            target = entry.get("target")
            if target is not None and not isinstance(target, str):
                raise fail(f"layer '{key}': \"target\" must be a string")
        return TuningDatabase(
            str(document.get("backend", "")), str(document.get("machine", "")), dict(layers)
        )


@dataclass
class _ApplyTuning(RewritePattern):
    database: TuningDatabase
    target: str | None
    report: bool

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FkwConv2dOp, rewriter: PatternRewriter) -> None:
        key = layer_key(op)
        match = self.database.lookup(key, self.target, layer_stats(op))
        if self.report:
            found = (
                "not in the database"
                if match is None
                else f"applies {match.schedule}"
                + ("" if match.distance is None else f" ({match.describe()})")
            )
            print(f"{op_location(op)}: pconv-apply-tuning: {key}: {found}", file=sys.stderr)
        if match is None:
            return
        schedule = op.schedule.replace(**match.schedule)
        if schedule != op.schedule:
            reschedule(op, schedule, rewriter)


@dataclass(frozen=True)
class PconvApplyTuningPass(ModulePass):
    """Applies the schedules of a tuning database to the FKW convolutions it knows.

    See the module docstring for how layers and targets are matched; parameters not tuned are
    kept.
    """

    name = "pconv-apply-tuning"

    database: str = ""
    target: str = ""
    report: bool = False

    def __post_init__(self) -> None:
        if not self.database:
            raise OptionError("pconv-apply-tuning needs database=<file.json>")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        database = TuningDatabase.load(self.database)
        target = self.target or None
        if target is None:
            targets = database.targets()
            if len(targets) > 1:
                raise PconvError(
                    f"{self.database}: error: the database holds tunings for "
                    f"{', '.join(sorted(targets))}; choose one with "
                    "pconv-apply-tuning{target=...}"
                )
            target = next(iter(targets), None)
        PatternRewriteWalker(
            _ApplyTuning(database, target, self.report), apply_recursively=False
        ).rewrite_module(op)

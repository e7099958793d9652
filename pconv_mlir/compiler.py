"""`pconv_mlir.compile`: a torch model or an MLIR module to a callable native artifact.

    >>> art = pconv_mlir.compile(model, torch.randn(1, 3, 32, 32))              # doctest: +SKIP
    >>> y = art(x)                      # numpy out, computed by the generated code
    >>> art.save("out/")                # forward.so, forward.h, forward.ll (+ the weights file)

Options (`CompileOptions`) become a backend and a list of pass objects: torch-mlir import (linalg
on tensors) -> `pconv-from-linalg` -> `pconv-fkr` -> `pconv-fkw-pack` (the schedule) ->
[`pconv-apply-tuning`] -> the backend's lowering (`convert-pconv-to-loops`, `pconv-lre`,
`pconv-externalize-constants`) -> the backend's build (LLVM: mlir-opt-22, mlir-translate-22,
clang-22). Everything that is not a 3x3 conv goes down the upstream linalg path. The weights
stay numpy arrays from the torch module to the artifact: large constants are external symbols
in the IR, and their bytes go from one binary file into the library (no text on the way).

By default `compile` changes no weight: it reads the patterns from the weights it is given
(`mode="infer"`), so the artifact computes what the model computes. `mode="project"` prunes in
one shot (`patterns`, `connectivity`); `mode="dense"` compiles every 3x3 conv with the dense
9-tap pattern set through the same generator, for comparisons.

What `compile` raises, all `pconv_mlir.errors.PconvError` with a one-line message:

- `OptionError` (also a ValueError): an unknown or ill-typed option, an unknown target;
- `FrontendError`: torch-mlir cannot export the model, or xDSL cannot read what it exported;
- `OpError`: a pass rejects an op (a kernel that fits no pattern in infer mode), located;
- `LoweringError`: an op no backend lowers, or an unsupported function signature;
- `ToolNotFoundError`, `ToolFailedError`, `BuildError`: the LLVM tools are missing or failed.

Calling the artifact raises `RunError` when the code fails, and ValueError/TypeError for
inputs of the wrong number, shape or kind.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from pconv_mlir.backends import get_backend
from pconv_mlir.backends.base import Backend
from pconv_mlir.dialects.pconv import SCHEDULE_FIELDS, ScheduleAttr
from pconv_mlir.elements import INLINE_LIMIT, using_storage
from pconv_mlir.errors import OptionError, RunError
from pconv_mlir.ir import make_context, parse_module, print_module
from pconv_mlir.pipeline import Pipeline

ENTRY = "forward"
"""The C symbol of the compiled model's entry point."""

MODES = ("infer", "project", "dense")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class CompileOptions:
    """Options of `compile`; a bad one fails early with one sentence (`OptionError`).

    Any `#pconv.schedule` parameter (`vector_width`, `unroll_rows`, ...) is also an option of
    `compile`; it lands in `schedule`. Parameters not given take the backend's preference (its
    vector width) and then the schedule's defaults (`SCHEDULE_FIELDS`).
    """

    mode: str = "infer"
    """`infer` (patterns read from the weights), `project` (one-shot pruning), `dense`."""
    patterns: int = 8
    """Pattern-set size K for `mode="project"`."""
    connectivity: float = 3.6
    """Keep 1 kernel in this many, for `mode="project"`."""
    taps: int = 4
    """Taps a pattern keeps, for `mode="infer"`."""
    group_size: int = 4
    """Filters per FKR group."""
    schedule: Mapping[str, int] = field(default_factory=dict)
    """Schedule parameters for every conv (the others: backend, then schedule defaults)."""
    lre: bool = True
    """Run pconv-lre."""
    tune: bool = False
    """Choose each conv's schedule with the tuner (measured on the host; llvm-mca for aarch64).
    Slower to compile: about a dozen builds per conv."""
    tuning: str | None = None
    """A tuning database (JSON, from `pconv-tune`) to apply instead of tuning."""
    opt_level: int = 3
    """0 to 3: clang's -O level; 0 also skips MLIR's clean-up passes."""
    cpu: str | None = None
    """clang `-march`/`-mcpu`; default `native` on the host, `cortex-a76` for aarch64."""
    function: str | None = None
    """The function of an MLIR module to expose (default: its only public function)."""
    fold_batchnorm: bool = True
    """Fold each eval-mode BatchNorm into the conv before it (torch.fx), so the conv's bias and
    ReLU fold into the pconv op. Scaling a filter keeps its zeros, so its patterns stay."""

    @staticmethod
    def from_keywords(options: Mapping[str, Any]) -> CompileOptions:
        """Options from `compile`'s keywords: schedule parameters are gathered in `schedule`."""
        names = {f.name for f in fields(CompileOptions)}
        schedule = dict(options.get("schedule") or {})
        given: dict[str, Any] = {}
        for key, value in options.items():
            if key in SCHEDULE_FIELDS:
                schedule[key] = value
            elif key in names and key != "schedule":
                given[key] = value
            elif key != "schedule":
                known = sorted(names | set(SCHEDULE_FIELDS))
                raise OptionError(f"unknown option '{key}' (options: {', '.join(known)})")
        result = CompileOptions(**given, schedule=schedule)
        result.validate()
        return result

    def validate(self) -> None:
        """Raise `OptionError` naming the first bad option."""
        if self.mode not in MODES:
            raise OptionError(f"mode '{self.mode}' is not one of {', '.join(MODES)}")
        for name, low, high in (("patterns", 1, 56), ("taps", 1, 9), ("opt_level", 0, 3)):
            value = getattr(self, name)
            if not _is_int(value):
                raise OptionError(f"{name} = {value!r} is not an integer")
            if not low <= value <= high:
                raise OptionError(f"{name} = {value} is outside {low}..{high}")
        if not _is_int(self.group_size) or self.group_size < 1:
            raise OptionError(f"group_size = {self.group_size!r} must be an integer of at least 1")
        if isinstance(self.connectivity, bool) or not isinstance(self.connectivity, Real):
            raise OptionError(f"connectivity = {self.connectivity!r} is not a number")
        if not self.connectivity >= 1:
            raise OptionError(f"connectivity = {self.connectivity} is below 1")
        for name in ("lre", "tune", "fold_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"{name} = {getattr(self, name)!r} is not True or False")
        for name in ("cpu", "function", "tuning"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | os.PathLike):
                raise OptionError(f"{name} = {value!r} is not a string")
        if self.tune and self.tuning is not None:
            raise OptionError("give tune=True or tuning=<database>, not both")
        try:
            ScheduleAttr.get(**self.schedule).verify()
        except VerifyException as e:
            raise OptionError(str(e)) from None

    def front_passes(self, backend: Backend) -> list[ModulePass]:
        """The passes from linalg on tensors to FKW-level IR with each conv's schedule."""
        from pconv_mlir.passes.pconv_fkr import PconvFkrPass
        from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass
        from pconv_mlir.passes.pconv_from_linalg import PconvFromLinalgPass

        if self.mode == "project":
            front = PconvFromLinalgPass(
                mode="project", patterns=self.patterns, connectivity=float(self.connectivity)
            )
        else:
            front = PconvFromLinalgPass(taps=9 if self.mode == "dense" else self.taps)
        schedule = backend.schedule_defaults() | dict(self.schedule)
        passes: list[ModulePass] = [
            front,
            PconvFkrPass(group_size=int(self.group_size)),
            PconvFkwPackPass(**{k: int(v) for k, v in schedule.items()}),
        ]
        if self.tuning is not None:
            from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass

            passes.append(PconvApplyTuningPass(database=os.fspath(self.tuning)))
        return passes


@dataclass
class CompiledModel:
    """A compiled model: call it with numpy arrays or torch tensors, get numpy back."""

    backend: Backend
    options: CompileOptions
    text: str
    """The backend's code (LLVM IR for the CPU backends)."""
    mlir: str
    """The module after the pconv passes and the backend's lowering to upstream dialects (for
    the CPU backends: loops and vectors), before LLVM: what was compiled. The data of blobs
    larger than `pconv_mlir.elements.INLINE_LIMIT` bytes is elided (it is in `weights`)."""
    signature: Any
    runner: Any
    workdir: Path
    tuning: Any = None
    """The tuning database the schedules came from, when `tune=True`."""
    weights: Any = None
    """The bytes of the external constants (a `pconv_mlir.runtime.build.WeightsFile` in
    `workdir`), linked into the code; None when the model has no large constant."""
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def target(self) -> str:
        return self.backend.name

    @property
    def llvm_ir(self) -> str:
        """The LLVM IR of a CPU backend's artifact (the same as `text`)."""
        return self.text

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [a.shape for a in self._inputs()]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [a.shape for a in self.signature.args if a.is_out_param]

    def _inputs(self) -> list[Any]:
        return [a for a in self.signature.args if not a.is_out_param]

    def __call__(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        if self._closed:
            raise RunError("this compiled model is closed; compile it again to call it")
        specs = self._inputs()
        if len(inputs) != len(specs):
            raise TypeError(f"expected {len(specs)} inputs, got {len(inputs)}")
        arrays = [
            _as_array(x, spec, i) for i, (x, spec) in enumerate(zip(inputs, specs, strict=True))
        ]
        outputs = [np.zeros(s.shape, dtype=s.dtype) for s in self.signature.args if s.is_out_param]
        self.runner.call(self.signature.name, *arrays, *outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write what an application needs to `directory` (for the CPU backends: `forward.so`
        built for the target with the weights inside, `forward.h`, `forward.ll`, and when the
        model has large constants `forward.weights.bin`, their raw bytes, with
        `forward.weights.s`, the stub that links them; plus `tuning.json` when tuned)."""
        out = Path(directory)
        self.backend.save(
            self.text,
            self.signature,
            out,
            stem=ENTRY,
            opt_level=self.options.opt_level,
            weights=self.weights,
        )
        if self.tuning is not None:
            self.tuning.save(out / "tuning.json")
        return out

    def close(self) -> None:
        """Unload the code and remove its temporary files; calling afterwards is an error."""
        if self._closed:
            return
        self._closed = True
        self.runner.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> CompiledModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_array(value: Any, spec: Any, position: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise TypeError(f"input {position} is complex; the model takes {spec.dtype}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"input {position} holds {array.dtype}, not numbers")
    if tuple(array.shape) != tuple(spec.shape):
        raise ValueError(
            f"input {position} of shape {tuple(array.shape)} does not match {tuple(spec.shape)}"
        )
    return np.ascontiguousarray(array, dtype=spec.dtype)


def _entry_function(module: ModuleOp, name: str | None) -> func.FuncOp:
    functions = [
        op
        for op in module.body.block.ops
        if isinstance(op, func.FuncOp) and op.body.blocks and op.sym_visibility is None
    ]
    if name is not None:
        functions = [f for f in functions if f.sym_name.data == name]
    if len(functions) != 1:
        names = ", ".join(f"@{f.sym_name.data}" for f in functions) or "none"
        raise OptionError(
            f"cannot choose the entry function (public functions: {names}); pass function=..."
        )
    return functions[0]


def fold_batchnorm(model: Any) -> Any:
    """A copy of `model` in eval mode with every conv -> BatchNorm pair folded into one conv, or
    an eval-mode copy of `model` when torch.fx cannot trace it."""
    from torch.fx.experimental.optimization import fuse

    evaluated = copy.deepcopy(model).eval()
    try:
        return fuse(evaluated, inplace=True)
    except Exception as e:  # an untraceable model compiles as it is, BatchNorm included
        warnings.warn(f"BatchNorm not folded: torch.fx cannot trace the model ({e})", stacklevel=3)
        return evaluated


def import_program(
    program: Any, example_input: Any = None, ctx: Context | None = None, fold_bn: bool = False
) -> tuple[ModuleOp, Context]:
    """A torch module (with its example input), an xDSL module or MLIR text, as a module."""
    ctx = make_context(own_resources=True) if ctx is None else ctx
    if isinstance(program, ModuleOp):
        return program, ctx
    if isinstance(program, str):
        return parse_module(program, ctx), ctx
    if hasattr(program, "forward") and hasattr(program, "parameters"):
        if example_input is None:
            raise OptionError("compiling a torch.nn.Module needs an example_input")
        from pconv_mlir.frontend import import_torch

        if getattr(program, "training", False):
            warnings.warn(
                f"{type(program).__name__} is in training mode; it is compiled in eval mode "
                "(BatchNorm running statistics, no dropout): call model.eval() to compare",
                stacklevel=3,
            )
        model = fold_batchnorm(program) if fold_bn else program
        # A folded model is our own copy: the module may share its memory.
        return import_torch(model, example_input, ctx=ctx, copy_weights=model is program), ctx
    raise OptionError(
        f"cannot compile a {type(program).__name__}: give a torch.nn.Module, an xDSL "
        "ModuleOp or MLIR text"
    )


def compile(
    program: Any,
    example_input: Any = None,
    target: str = "host",
    *,
    workdir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> CompiledModel:
    """Compile `program` (torch.nn.Module, xDSL ModuleOp or MLIR text) for backend `target`.

    `target` is a backend name (`host`, `aarch64`: Cortex-A76, run under qemu-aarch64 when
    called; `x86_64`). Options are the fields of `CompileOptions` and the `#pconv.schedule`
    parameters. A module passed in is changed in place; text and torch models are compiled
    in a context of their own, so compiling twice gives the same `mlir`.
    """
    from pconv_mlir.lowering.llvm import function_signatures

    opts = CompileOptions.from_keywords(options)
    if not isinstance(target, str):
        raise OptionError(f"target = {target!r} is not a backend name")
    backend = get_backend(target, cpu=opts.cpu)
    module, ctx = import_program(program, example_input, fold_bn=opts.fold_batchnorm)
    entry = _entry_function(module, opts.function)
    entry.sym_name = StringAttr(ENTRY)
    Pipeline(opts.front_passes(backend)).run(module, ctx)
    database = None
    if opts.tune:
        from pconv_mlir.tune import tune

        database = tune(module, ctx, backend)
        with tempfile.TemporaryDirectory(prefix="pconv-tuning-") as tmp:
            from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass

            database.save(Path(tmp) / "tuning.json")
            Pipeline([PconvApplyTuningPass(database=str(Path(tmp) / "tuning.json"))]).run(
                module, ctx
            )
    Pipeline(backend.lowering(lre=opts.lre)).run(module, ctx)
    mlir_text = print_module(module, ctx, elide_resources_over=INLINE_LIMIT)
    with using_storage(ctx):
        text = backend.emit(module, ctx, opt_level=opts.opt_level)
        signature = function_signatures(module)[ENTRY]
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pconv-compile-")
        workdir = tmp.name
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        weights = backend.write_weights(module, ctx, Path(workdir) / "weights.bin")
        del module, ctx  # the weights are in the file now
        runner = backend.build(
            text, {ENTRY: signature}, Path(workdir), opt_level=opts.opt_level, weights=weights
        )
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    return CompiledModel(
        backend,
        opts,
        text,
        mlir_text,
        signature,
        runner,
        Path(workdir),
        tuning=database,
        weights=weights,
        _tmp=tmp,
    )

"""`pconv_mlir.compile`: a torch model or an MLIR module to a callable native artifact.

    >>> art = pconv_mlir.compile(model, torch.randn(1, 3, 32, 32), name="vgg")  # doctest: +SKIP
    >>> y = art(x)                      # numpy out, computed by the generated code, threaded
    >>> art.set_threads(1)              # the threads of its parallel loops
    >>> art.report                      # one row per layer: kind, MACs, patterns, weights, ...
    >>> art.profile(x, repeats=10)      # the same rows with the measured seconds per layer
    >>> art.save("out/")                # libvgg.so, vgg.h, vgg.ll (+ the weights file)

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

The artifact is the model's function `<name>` (bare pointers: inputs, then the outputs), and
for a model with one input and one output `int <name>_forward(const float *input, float
*output)`, plus `<name>_set_threads(int)`; `save` writes them as a library with its header
(`pconv_mlir.runtime.driver.library_header`). Its parallel loops (images x row tiles x filter
shares) run on `threads` threads through `pconv_mlir/runtime/pconv_omp.c`.
"""

from __future__ import annotations

import copy
import ctypes
import os
import re
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
from pconv_mlir.report import LayerRow, layer_report, with_times

ENTRY = "forward"
"""The default `name` of a compiled model: the C symbol of its generated function."""

MODES = ("infer", "project", "dense")

PRECISIONS = ("fp32", "fp16", "fp16-acc32")
GPU_TARGETS = ("opencl", "spirv")
"""The backends that take `precision`."""

MAX_THREADS = 256
"""The most threads `pconv_omp.c` runs a parallel loop on."""

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while bool true false main class delete explicit "
    "export friend mutable namespace new nullptr operator private protected public template "
    "this throw try catch typename using virtual".split()
)
"""C keywords, the C++ ones a header included from C++ cannot use, and `main`."""


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
    Slower to compile: a few dozen builds per conv. With `tuning`, only the convs that
    database does not know for this target are tuned, and the file is updated (created when
    missing), so each layer is tuned once."""
    tuning: str | None = None
    """A tuning database (JSON, from `pconv-tune`): applied to the convs it knows for this
    target (`pconv_mlir.tune.tuning_target`); with `tune=True`, also completed and updated."""
    opt_level: int = 3
    """0 to 3: clang's -O level; 0 also skips MLIR's clean-up passes."""
    cpu: str | None = None
    """clang `-march`/`-mcpu`; default `native` on the host, `cortex-a76` for aarch64."""
    function: str | None = None
    """The function of an MLIR module to expose (default: its only public function)."""
    fold_batchnorm: bool = True
    """Fold each eval-mode BatchNorm into the conv before it (torch.fx), so the conv's bias and
    ReLU fold into the pconv op. Scaling a filter keeps its zeros, so its patterns stay."""
    name: str = ENTRY
    """The model's name, a C identifier: its function `<name>`, the library's
    `<name>_forward` and `<name>_set_threads`, the files `lib<name>.so` and `<name>.h`."""
    precision: str = "fp32"
    """GPU backends: `fp32`, `fp16` (half buffers and arithmetic) or `fp16-acc32` (half
    buffers, float accumulation); the CPU backends take `fp32` only."""
    threads: int | None = None
    """Threads the parallel loops run on (default: the machine's cores, `os.cpu_count()`);
    `CompiledModel.set_threads` changes it."""

    @property
    def thread_count(self) -> int:
        """`threads`, or the machine's cores when not given."""
        return self.threads if self.threads is not None else min(os.cpu_count() or 1, MAX_THREADS)

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
        if self.precision not in PRECISIONS:
            raise OptionError(
                f"precision = {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        check_name(self.name)
        if self.threads is not None:
            check_threads(self.threads)
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
                mode="project",
                patterns=self.patterns,
                connectivity=float(self.connectivity),
                pointwise=False,
            )
        else:
            front = PconvFromLinalgPass(
                taps=9 if self.mode == "dense" else self.taps, pointwise=False
            )
        schedule = backend.schedule_defaults() | dict(self.schedule)
        passes: list[ModulePass] = [
            front,
            PconvFkrPass(group_size=int(self.group_size)),
            PconvFkwPackPass(**{k: int(v) for k, v in schedule.items()}),
        ]
        if self.tuning is not None and not self.tune:  # with tune, `compile` applies it
            from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass
            from pconv_mlir.tune import tuning_target

            database = os.fspath(self.tuning)
            passes.append(PconvApplyTuningPass(database=database, target=tuning_target(backend)))
        return passes


def check_name(name: Any) -> None:
    """`OptionError` unless `name` can name a model in C (see `CompileOptions.name`)."""
    if not isinstance(name, str) or not _C_IDENTIFIER.fullmatch(name):
        raise OptionError(f"name = {name!r} is not a C identifier (letters, digits, _)")
    if name in _C_KEYWORDS:
        raise OptionError(f"name = {name!r} is reserved in C or C++; choose another")
    if name.startswith(("pconv_", "__")):
        raise OptionError(f"name = {name!r}: names starting with pconv_ or __ are the runtime's")


def check_threads(threads: Any) -> None:
    """`OptionError` unless `threads` is a thread count (1 to `MAX_THREADS`)."""
    if not _is_int(threads):
        raise OptionError(f"threads = {threads!r} is not an integer")
    if not 1 <= threads <= MAX_THREADS:
        raise OptionError(f"threads = {threads} is outside 1..{MAX_THREADS}")


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
    layers: tuple[LayerRow, ...] = ()
    """The per-layer report, read at compile time from the module at the FKW level."""
    threads: int = 1
    """The threads the parallel loops run on (`set_threads`)."""
    _profile_source: Any = field(default=None, repr=False)
    """(module at the FKW level, its context) for the profiled build of host code, until
    `profile` builds it or `close`: the context holds the weights in memory until then."""
    _profiler: Any = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def target(self) -> str:
        return self.backend.name

    @property
    def name(self) -> str:
        """The model's name: its C function and the prefix of its library's entry points."""
        return self.signature.name

    @property
    def report(self) -> list[LayerRow]:
        """One `pconv_mlir.report.LayerRow` per layer (kind, dense and executed MACs, patterns,
        kernels kept, weight bytes, lowering), without times: see `profile`. Print it with
        `pconv_mlir.report.format_report`."""
        return list(self.layers)

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

    def _check_open(self) -> None:
        if self._closed:
            raise RunError("this compiled model is closed; compile it again to call it")

    def _arguments(self, inputs: tuple[Any, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The checked input arrays and fresh output arrays of one call."""
        specs = self._inputs()
        if len(inputs) != len(specs):
            raise TypeError(f"expected {len(specs)} inputs, got {len(inputs)}")
        arrays = [
            _as_array(x, spec, i) for i, (x, spec) in enumerate(zip(inputs, specs, strict=True))
        ]
        outputs = [np.zeros(s.shape, dtype=s.dtype) for s in self.signature.args if s.is_out_param]
        return arrays, outputs

    def __call__(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        self._check_open()
        arrays, outputs = self._arguments(inputs)
        self.runner.call(self.signature.name, *arrays, *outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def set_threads(self, threads: int) -> None:
        """Run the parallel loops on `threads` threads from the next call on (the library's
        `<name>_set_threads`; under qemu, `PCONV_NUM_THREADS` of each run)."""
        self._check_open()
        check_threads(threads)
        for runner in (self.runner, self._profiler):
            if runner is not None:
                _set_threads(runner, self.name, int(threads))
        self.threads = int(threads)

    def profile(self, *inputs: Any, repeats: int = 10) -> list[LayerRow]:
        """The `report` rows with `seconds`, each layer's mean wall time per call over `repeats`
        calls on `inputs` (after one warm-up call), on `threads` threads.

        The times come from a second build of the model with `pconv-profile-layers` (a clock
        read around every layer), made on the first call and kept. Host code only: code that
        runs under qemu has no meaningful time (`RunError`)."""
        self._check_open()
        if not _is_int(repeats) or repeats < 1:
            raise ValueError(f"repeats = {repeats!r} must be an integer of at least 1")
        arrays, outputs = self._arguments(inputs)
        runner = self._profiled_runner()
        seconds = runner.c_function(
            "pconv_layer_seconds", ctypes.c_int64, [ctypes.c_void_p, ctypes.c_int64]
        )
        reset = runner.c_function("pconv_layer_reset", None, [])
        runner.call(self.name, *arrays, *outputs)  # warm-up
        reset()
        for _ in range(repeats):
            runner.call(self.name, *arrays, *outputs)
        totals = np.zeros(max(1, len(self.layers)), dtype=np.float64)
        seen = seconds(totals.ctypes.data, len(self.layers))
        if seen != len(self.layers):
            raise RunError(
                f"the profiled build timed {seen} layers, the report has {len(self.layers)}"
            )
        return with_times(self.report, [float(t) / repeats for t in totals[: len(self.layers)]])

    def _profiled_runner(self) -> Any:
        """The profiled build (see `profile`), built on the first call."""
        from pconv_mlir.passes.pconv_profile_layers import PconvProfileLayersPass
        from pconv_mlir.runtime.runners import HostRunner

        if self._profiler is not None:
            return self._profiler
        if self._profile_source is None:
            if self.target in GPU_TARGETS:
                raise RunError(
                    "profile() times the layers of CPU code; time GPU kernels with "
                    "bench/opencl.py (per layer) or by calling the artifact"
                )
            raise RunError(
                f"profile() times code on this machine; {self.target} code runs under "
                "emulation, whose times mean nothing: compile for target='host'"
            )
        module, ctx = self._profile_source
        Pipeline([PconvProfileLayersPass()]).run(module, ctx)
        folder = self.workdir / "profiled"
        folder.mkdir(parents=True, exist_ok=True)
        _text, _signature, _weights, runner = _lower_and_build(
            self.backend, self.options, module, ctx, folder
        )
        if not isinstance(runner, HostRunner):  # not reached: only host builds keep a source
            runner.close()
            raise RunError(f"cannot time {self.target} code on this machine")
        _set_threads(runner, self.name, self.threads)
        self._profiler, self._profile_source = runner, None
        return runner

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write what an application needs to `directory` and return it (for the CPU
        backends: `lib<name>.so` built for the target with the weights and the thread runtime
        inside, `<name>.h` declaring `<name>_forward`, `<name>_set_threads` and `<name>`,
        `<name>.ll`, and when the model has large constants `<name>.weights.bin`, their raw
        bytes, with `<name>.weights.s`, the stub that links them; plus `tuning.json` when
        tuned). A C program includes `<name>.h` and links with `-L<directory> -l<name>`."""
        out = Path(directory)
        self.backend.save(
            self.text,
            self.signature,
            out,
            name=self.name,
            opt_level=self.options.opt_level,
            weights=self.weights,
            threads=self.options.threads,
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
        if self._profiler is not None:
            self._profiler.close()
        self._profiler = self._profile_source = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> CompiledModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_threads(runner: Any, name: str, threads: int) -> None:
    """Threads for `runner`'s code: `<name>_set_threads` in a loaded library; the environment
    of each run for an executable (qemu)."""
    from pconv_mlir.runtime.runners import ExecutableRunner, HostRunner

    if isinstance(runner, HostRunner):
        runner.c_function(f"{name}_set_threads", None, [ctypes.c_int])(threads)
    elif isinstance(runner, ExecutableRunner):
        runner.env["PCONV_NUM_THREADS"] = str(threads)


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
    import torch
    from torch.fx.experimental.optimization import fuse

    evaluated = copy.deepcopy(model).eval()
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return evaluated  # nothing to fold; untraced, torch records the user's source lines
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
        return import_torch(
            model,
            example_input,
            ctx=ctx,
            copy_weights=model is program,
            name=type(program).__name__,
        ), ctx
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

    opts = CompileOptions.from_keywords(options)
    if not isinstance(target, str):
        raise OptionError(f"target = {target!r} is not a backend name")
    if opts.precision == "fp32":
        backend = get_backend(target, cpu=opts.cpu)
    elif target in GPU_TARGETS:
        backend = get_backend(target, cpu=opts.cpu, precision=opts.precision)
    else:
        raise OptionError(
            f"precision = {opts.precision!r} is for the GPU targets ({', '.join(GPU_TARGETS)})"
        )
    module, ctx = import_program(program, example_input, fold_bn=opts.fold_batchnorm)
    entry = _entry_function(module, opts.function)
    if any(
        isinstance(op, func.FuncOp) and op is not entry and op.sym_name.data == opts.name
        for op in module.body.block.ops
    ):
        raise OptionError(f"name = {opts.name!r} is the name of another function of the module")
    entry.sym_name = StringAttr(opts.name)
    Pipeline(opts.front_passes(backend)).run(module, ctx)
    database = None
    if opts.tune:
        database = _tune_once(module, ctx, backend, opts.tuning)
    with using_storage(ctx):
        how = _gpu_lowering_of if target in GPU_TARGETS else _lowering_of
        layers = tuple(layer_report(module, opts.name, lowering=how))
    # The profiled build starts from here, when `profile` is first called (host code only).
    runs_here = getattr(getattr(backend, "machine", None), "is_host", False)
    profile_source = (module.clone(), ctx) if runs_here else None
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pconv-compile-")
        workdir = tmp.name
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        text, signature, weights, runner = _lower_and_build(
            backend, opts, module, ctx, Path(workdir)
        )
        mlir_text = print_module(module, ctx, elide_resources_over=INLINE_LIMIT)
        _set_threads(runner, opts.name, opts.thread_count)
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
        layers=layers,
        threads=opts.thread_count,
        _profile_source=profile_source,
        _tmp=tmp,
    )


def _tune_once(module: ModuleOp, ctx: Context, backend: Backend, path: Any) -> Any:
    """Tune the convs of `module` that the database at `path` (when given and present) does
    not know for the backend's target, save it there when that added any (creating it), and
    apply it."""
    from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass, TuningDatabase
    from pconv_mlir.tune import tune, tuning_target

    target = tuning_target(backend)
    known = path is not None and Path(path).exists()
    database = TuningDatabase.load(path) if known else TuningDatabase()
    before = dict(database.layers)
    database = tune(module, ctx, backend, database=database, target=target, retune=False)
    with tempfile.TemporaryDirectory(prefix="pconv-tuning-") as tmp:
        where = Path(tmp) / "tuning.json"
        if path is not None and database.layers != before:
            database.save(path)
        database.save(where)
        Pipeline([PconvApplyTuningPass(database=str(where), target=target)]).run(module, ctx)
    return database


def _lower_and_build(
    backend: Backend, opts: CompileOptions, module: ModuleOp, ctx: Context, folder: Path
) -> tuple[str, Any, Any, Any]:
    """`module` (at the FKW level) through the backend's lowering, emitted, its weights written
    to `folder` and built there: (code, signature of `opts.name`, weights file, runner)."""
    from pconv_mlir.lowering.llvm import function_signatures

    Pipeline(backend.lowering(lre=opts.lre)).run(module, ctx)
    with using_storage(ctx):
        text = backend.emit(module, ctx, opt_level=opts.opt_level)
        signature = function_signatures(module)[opts.name]
    weights = backend.write_weights(module, ctx, folder / "weights.bin")
    runner = backend.build(
        text,
        {opts.name: signature},
        folder,
        opt_level=opts.opt_level,
        weights=weights,
        name=opts.name,
        threads=opts.threads,
    )
    return text, signature, weights, runner


def _gpu_lowering_of(op: Any) -> str:
    """How a non-pconv layer runs on the GPU backends: `gpu-loops`, upstream's kernels of
    parallel loops (a work-item per output row, no register blocking)."""
    return "gpu-loops"


def _lowering_of(op: Any) -> str:
    """How a non-pconv layer is lowered: `vector` when the upstream path has a vector form for
    it (`pconv_mlir.lowering.vectorize_linalg.classify`), else `scalar`."""
    from pconv_mlir.lowering.vectorize_linalg import classify

    return "vector" if classify(op) is not None else "scalar"

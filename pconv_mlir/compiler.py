"""`pconv_mlir.compile`: a torch model or an MLIR module to a callable native artifact.

    >>> art = pconv_mlir.compile(model, torch.randn(1, 3, 32, 32))              # doctest: +SKIP
    >>> y = art(x)                      # numpy out, computed by the generated code
    >>> art.save("out/")                # forward.so, forward.h, forward.ll

The pipeline: torch-mlir import (linalg on tensors) -> pconv-from-linalg -> pconv-fkr ->
pconv-fkw-pack -> convert-pconv-to-loops -> pconv-lre -> LLVM (mlir-opt-22, mlir-translate-22)
-> clang-22. Everything that is not a 3x3 conv goes down the upstream linalg path.

By default `compile` changes no weight: it reads the patterns from the weights it is given
(`mode="infer"`), so the artifact computes what the model computes. `mode="project"` prunes in
one shot (`patterns`, `connectivity`); `mode="dense"` compiles every 3x3 conv with the dense
9-tap pattern set through the same generator, for comparisons.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from pconv_mlir.diagnostics import parse_module
from pconv_mlir.pipeline import Pipeline, make_context

ENTRY = "forward"
"""The C symbol of the compiled model's entry point."""


@dataclass(frozen=True)
class CompileOptions:
    """Options of `compile`; a bad one fails early with one sentence."""

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
    vector_width: int | None = None
    """Lanes along the output row; default 8 on the x86-64 host (AVX2), 4 on aarch64 (NEON)."""
    unroll_rows: int = 3
    """Output rows in the register tile."""
    unroll_cols: int = 2
    """Vectors per row in the register tile."""
    lre: bool = True
    """Run pconv-lre."""
    tune: bool = False
    """Choose each conv's register tile with pconv-tune (measured on the host; llvm-mca for
    aarch64). Slower to compile: about ten builds per conv."""
    opt_level: int = 3
    cpu: str | None = None
    """clang `-march`/`-mcpu`; default `native` on the host, `cortex-a76` for aarch64."""
    function: str | None = None
    """The function of an MLIR module to expose (default: its only public function)."""
    fold_batchnorm: bool = True
    """Fold each eval-mode BatchNorm into the conv before it (torch.fx), so the conv's bias and
    ReLU fold into the pconv op. Scaling a filter keeps its zeros, so its patterns stay."""

    def validate(self, target: str) -> None:
        if self.mode not in ("infer", "project", "dense"):
            raise ValueError(f"mode '{self.mode}' is not one of infer, project, dense")
        if target not in ("host", "aarch64", "x86_64"):
            raise ValueError(f"target '{target}' is not one of host, aarch64, x86_64")
        if not 1 <= self.patterns <= 56:
            raise ValueError(f"patterns = {self.patterns} is outside 1..56")
        if self.connectivity < 1:
            raise ValueError(f"connectivity = {self.connectivity} is below 1")
        for name in ("group_size", "unroll_rows", "unroll_cols"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be at least 1")
        width = self.vector_width
        if width is not None and (width < 1 or width & (width - 1)):
            raise ValueError(f"vector_width = {width} is not a power of two")

    def width_for(self, target: str) -> int:
        if self.vector_width is not None:
            return self.vector_width
        arch = platform.machine() if target == "host" else target
        return 4 if arch in ("aarch64", "arm64") else 8

    def pipeline(self, target: str) -> str:
        """The pass pipeline from linalg on tensors to loops."""
        if self.mode == "infer":
            front = f"pconv-from-linalg{{taps={self.taps}}}"
        elif self.mode == "dense":
            front = "pconv-from-linalg{taps=9}"
        else:
            front = (
                f"pconv-from-linalg{{mode=project patterns={self.patterns} "
                f"connectivity={float(self.connectivity)}}}"
            )
        passes = [
            front,
            f"pconv-fkr{{group_size={self.group_size}}}",
            f"pconv-fkw-pack{{vector_width={self.width_for(target)} "
            f"unroll_rows={self.unroll_rows} unroll_cols={self.unroll_cols}}}",
        ]
        if self.tune:
            tune_target = "aarch64" if target == "aarch64" else "host"
            passes.append(
                f"pconv-tune{{target={tune_target} vector_width={self.width_for(target)}}}"
            )
        passes.append("convert-pconv-to-loops")
        if self.lre:
            passes.append("pconv-lre")
        return ",".join(passes)


def _options(overrides: dict[str, Any]) -> CompileOptions:
    names = {f.name for f in dataclasses.fields(CompileOptions)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown option '{unknown[0]}' (options: {', '.join(sorted(names))})")
    return CompileOptions(**overrides)


@dataclass
class CompiledModel:
    """A compiled model: call it with a numpy array or torch tensor, get numpy back."""

    target: str
    options: CompileOptions
    llvm_ir: str
    mlir: str
    """The module after the pconv passes, before LLVM: what was compiled."""
    signature: Any
    runner: Any
    workdir: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [a.shape for a in self.signature.args if not a.is_out_param]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [a.shape for a in self.signature.args if a.is_out_param]

    def __call__(self, *inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        arrays = [_as_array(x, spec) for x, spec in zip(inputs, self._inputs(), strict=False)]
        if len(arrays) != len(self.input_shapes):
            raise ValueError(f"expected {len(self.input_shapes)} inputs, got {len(inputs)}")
        outputs = [np.zeros(s.shape, dtype=s.dtype) for s in self.signature.args if s.is_out_param]
        self.runner.call(self.signature.name, *arrays, *outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _inputs(self) -> list[Any]:
        return [a for a in self.signature.args if not a.is_out_param]

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `forward.so` (for the target), `forward.h` and `forward.ll` to `directory`."""
        from pconv_mlir.runtime import compile_shared_library

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{ENTRY}.ll").write_text(self.llvm_ir)
        (out / f"{ENTRY}.h").write_text(c_header(self.signature, self.target))
        compile_shared_library(
            self.llvm_ir,
            out / f"{ENTRY}.so",
            target=self.target,
            cpu=self.options.cpu,
            opt_level=self.options.opt_level,
        )
        return out

    def close(self) -> None:
        self.runner.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _as_array(value: Any, spec: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.ascontiguousarray(value, dtype=spec.dtype)
    if tuple(array.shape) != tuple(spec.shape):
        raise ValueError(f"input of shape {array.shape} does not match {tuple(spec.shape)}")
    return array


_C = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t"}


def c_header(signature: Any, target: str) -> str:
    """A C header declaring the entry point under the bare-pointer ABI."""
    params = []
    lines = [
        f"/* Generated by pconv-mlir for target {target}. Buffers are dense, row-major. */",
        "#pragma once",
        "#include <stdint.h>",
        "",
    ]
    inputs = outputs = 0
    for spec in signature.args:
        ctype = _C.get(spec.dtype, "void")
        dims = "".join(f"[{d}]" for d in spec.shape or ())
        if spec.is_out_param:
            name, outputs = f"out{outputs}", outputs + 1
            params.append(f"{ctype} *{name}")
        else:
            name, inputs = f"in{inputs}", inputs + 1
            params.append(f"const {ctype} *{name}")
        lines.append(f"/* {name}: {ctype}{dims} */")
    lines.append(f"void {signature.name}({', '.join(params)});")
    return "\n".join(lines) + "\n"


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
        raise ValueError(
            f"cannot choose the entry function (public functions: {names}); pass function=..."
        )
    return functions[0]


def fold_batchnorm(model: Any) -> Any:
    """`model` with every conv -> BatchNorm pair folded into one conv (eval mode), or `model`
    itself when torch.fx cannot trace it."""
    import copy
    import warnings

    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(model).eval(), inplace=True)
    except Exception as e:  # an untraceable model compiles as it is, BatchNorm included
        warnings.warn(f"BatchNorm not folded: torch.fx cannot trace the model ({e})", stacklevel=3)
        return model


def import_program(
    program: Any, example_input: Any = None, ctx: Context | None = None, fold_bn: bool = False
) -> tuple[ModuleOp, Context]:
    """A torch module (with its example input), an xDSL module or MLIR text, as a module."""
    ctx = make_context() if ctx is None else ctx
    if isinstance(program, ModuleOp):
        return program, ctx
    if isinstance(program, str):
        return parse_module(ctx, program), ctx
    if hasattr(program, "forward") and hasattr(program, "parameters"):
        if example_input is None:
            raise ValueError("compiling a torch.nn.Module needs an example_input")
        from pconv_mlir.frontend import import_torch

        model = fold_batchnorm(program) if fold_bn else program
        return import_torch(model, example_input, ctx=ctx), ctx
    raise TypeError(f"cannot compile a {type(program).__name__}: give a torch.nn.Module or MLIR")


def compile(
    program: Any,
    example_input: Any = None,
    target: str = "host",
    *,
    workdir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> CompiledModel:
    """Compile `program` (torch.nn.Module, xDSL ModuleOp or MLIR text) for `target`.

    `target="aarch64"` builds for Cortex-A76; calling the artifact runs it under qemu-aarch64.
    Options are the fields of `CompileOptions`.
    """
    from pconv_mlir.lowering.llvm import function_signatures, lower_to_llvm_ir
    from pconv_mlir.runtime import build_runner_from_ir

    opts = _options(options)
    opts.validate(target)
    module, ctx = import_program(program, example_input, fold_bn=opts.fold_batchnorm)
    entry = _entry_function(module, opts.function)
    entry.sym_name = StringAttr(ENTRY)
    Pipeline(opts.pipeline(target)).run(module, ctx)
    from pconv_mlir.frontend import print_module

    mlir_text = print_module(module, ctx)
    llvm_ir = lower_to_llvm_ir(module, target=target, opt_level=opts.opt_level)
    signature = function_signatures(module)[ENTRY]
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pconv-compile-")
        workdir = tmp.name
    runner = build_runner_from_ir(
        llvm_ir,
        {ENTRY: signature},
        target=target,
        cpu=opts.cpu,
        opt_level=opts.opt_level,
        workdir=workdir,
    )
    return CompiledModel(target, opts, llvm_ir, mlir_text, signature, runner, Path(workdir), tmp)

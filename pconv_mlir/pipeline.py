"""The Python pass-pipeline API: the same passes and pipeline syntax as `pconv-opt -p`.

    >>> from pconv_mlir.pipeline import Pipeline
    >>> text = Pipeline("canonicalize,cse").run(source)        # doctest: +SKIP
    >>> module = Pipeline([CanonicalizePass()]).run(module)    # doctest: +SKIP

A bad pipeline, malformed IR or a pass that rejects its input raises `PconvError` whose text is
the one-line diagnostic `pconv-opt` would print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.universe import Universe
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException

from pconv_mlir import toolchain, universe
from pconv_mlir.elements import using_storage
from pconv_mlir.errors import PconvError, first_line
from pconv_mlir.ir import describe_failure, make_context, parse_module, print_module


def all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every pass pconv-opt knows: xDSL's and pconv-mlir's."""
    passes = dict(Universe.get_multiverse().all_passes)
    passes.update(universe.get_all_passes())
    return passes


def parse_pass_pipeline(
    spec: str, available: dict[str, Callable[[], type[ModulePass]]] | None = None
) -> tuple[ModulePass, ...]:
    """Pass objects for a pipeline string such as `"pconv-fkr,pconv-fkw-pack{report=true}"`."""
    available = all_passes() if available is None else available
    try:
        specs = list(parse_pipeline(spec))
    except ArgSpecParseError as e:
        # xDSL's message: a title, the location, the spec, a caret line, then the message.
        lines = str(e).splitlines()
        carets = [line for line in lines if line.strip().startswith("^")]
        column = carets[0].index("^") + 1 if carets else 1
        message = lines[-1].strip() if lines else "malformed pass pipeline"
        raise PconvError(f"<pass-pipeline>:1:{column}: error: {message}") from None
    passes: list[ModulePass] = []
    for pass_spec in specs:
        if pass_spec.name not in available:
            column = spec.find(pass_spec.name) + 1
            raise PconvError(
                f"<pass-pipeline>:1:{max(column, 1)}: error: '{pass_spec.name}' does not refer "
                "to a registered pass"
            )
        try:
            passes.append(available[pass_spec.name]().from_pass_spec(pass_spec))
        except (ValueError, TypeError) as e:  # OptionError is a ValueError
            column = spec.find(pass_spec.name) + 1
            message = first_line(e)
            raise PconvError(
                f"<pass-pipeline>:1:{column}: error: bad options for '{pass_spec.name}': {message}"
            ) from None
    return tuple(passes)


class Pipeline:
    """A sequence of passes, built from a pipeline string or from pass objects.

    `verify` checks the module before the first pass and after every pass, as pconv-opt does.
    """

    def __init__(self, passes: str | Sequence[ModulePass] = (), *, verify: bool = True):
        self.passes = parse_pass_pipeline(passes) if isinstance(passes, str) else tuple(passes)
        self.verify = verify

    def __repr__(self) -> str:
        return f"Pipeline({self.spec()!r})"

    def spec(self) -> str:
        """The pipeline as a `-p` string."""
        return ",".join(str(p.pipeline_pass_spec()) for p in self.passes)

    @overload
    def run(self, program: str, ctx: Context | None = None, *, generic: bool = False) -> str: ...

    @overload
    def run(
        self, program: ModuleOp, ctx: Context | None = None, *, generic: bool = False
    ) -> ModuleOp: ...

    def run(
        self, program: str | ModuleOp, ctx: Context | None = None, *, generic: bool = False
    ) -> str | ModuleOp:
        """Apply the passes. Text in, text out (custom form unless `generic`); a module is
        changed in place and returned."""
        ctx = make_context() if ctx is None else ctx
        module = parse_module(program, ctx) if isinstance(program, str) else program

        def check(_prev: ModulePass | None, op: ModuleOp, _next: ModulePass | None) -> None:
            if self.verify:
                op.verify()

        toolchain.configure_xdsl()  # xDSL's `mlir-opt` pass finds mlir-opt-22
        with using_storage(ctx):
            try:
                PassPipeline(self.passes, check).apply(ctx, module)
            except PconvError:
                raise
            except DiagnosticException as e:
                raise PconvError(describe_failure(module, e)) from None
            except Exception as e:  # xDSL's verifiers sometimes raise plain Python errors
                line = describe_failure(module, e)
                if line.startswith("<unknown>"):
                    raise  # not an op's fault that we can name: a bug, keep the traceback
                raise PconvError(line) from e
        if isinstance(program, str):
            return print_module(module, ctx, generic=generic)
        return module


def run_pipeline(program: str | ModuleOp, passes: str | Sequence[ModulePass], **kwargs):
    """`Pipeline(passes).run(program, **kwargs)`."""
    return Pipeline(passes).run(program, **kwargs)

"""`pconv-opt`: xdsl-opt with the pconv dialect, passes and targets, and mlir-opt's manners.

The tool subclasses `xDSLOptMain` and overrides only its registration hooks. `main` wraps the
run so that every user mistake (malformed IR, an unknown pass, an op that fails its verifier,
a missing file) is one `file:line:col: error: ...` line on stderr and exit code 1, and an
output file (`-o`) is written only when the whole run succeeds: it is written to a temporary
next to it and renamed at the end. SIGTERM and SIGINT stop the run with exit code 128 + the
signal's number and remove the temporary.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    ParseError,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from pconv_mlir import pipeline, toolchain, universe
from pconv_mlir.elements import using_storage
from pconv_mlir.errors import PconvError, first_line
from pconv_mlir.ir import describe_failure, format_parse_error, parse_module, print_module

TOOL = "pconv-opt"


def pass_summary(pass_class: type[ModulePass]) -> str:
    """The first sentence of a pass's docstring, or its class name in words when it has none."""
    doc = inspect.getdoc(pass_class) or ""
    if pass_class.__doc__ is None or doc.startswith(pass_class.__name__ + "("):
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", pass_class.__name__).split()
        words = [w for w in words if w != "Pass"] or words
        return " ".join([words[0]] + [w.lower() if w[1:].islower() else w for w in words[1:]])
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


class _PassListing:
    """The `--help` epilog, computed only when help is printed (it imports every pass)."""

    def __init__(self, passes: dict[str, Callable[[], type[ModulePass]]]):
        self.passes = passes

    def text(self) -> str:
        ours = universe.get_all_passes()
        lines = ["pconv passes:"]
        lines += [f"  {name:<32} {pass_summary(f())}" for name, f in sorted(ours.items())]
        lines.append("")
        lines.append("upstream xDSL passes:")
        for name, factory in sorted(self.passes.items()):
            if name in ours:
                continue
            try:
                summary = pass_summary(factory())
            except Exception:  # a pass whose module fails to import still gets listed
                summary = "(unavailable)"
            lines.append(f"  {name:<32} {summary}")
        return "\n".join(lines)

    # argparse treats the epilog as text: these are the str methods it calls.
    def __contains__(self, item: str) -> bool:
        return item in self.text()

    def splitlines(self, keepends: bool = False) -> list[str]:
        return self.text().splitlines(keepends)


class PconvOptMain(xDSLOptMain):
    """xdsl-opt with pconv-mlir's dialects, passes and targets registered."""

    version_format = "pconv-opt built on xdsl version {xdsl_version}"

    last_module: ModuleOp | None = None
    chunk_line_offset: int = 0

    def register_all_frontends(self) -> None:
        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            # Located ops, resources kept intact when a key repeats, one-line errors.
            self.last_module = parse_module(
                io.read(),
                self.ctx,
                name=self.get_input_name(),
                line_offset=self.chunk_line_offset,
                implicit_module=not self.args.no_implicit_module,
            )
            return self.last_module

        self.available_frontends["mlir"] = parse_mlir

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.formatter_class = argparse.RawDescriptionHelpFormatter
        arg_parser.epilog = _PassListing(self.available_passes)  # type: ignore[assignment]
        arg_parser.add_argument(
            "--list-passes",
            action=_ListPassesAction,
            passes=self.available_passes,
            help="List every pass with a one-line summary and exit",
        )
        arg_parser.add_argument(
            "--pconv-elide-resources-over",
            type=_byte_count,
            metavar="BYTES",
            default=None,
            help="Leave the data of dense_resource blobs larger than BYTES out of the MLIR "
            "output (as mlir-opt's --mlir-elide-resource-strings-if-larger); the output still "
            "parses, but its large constants have no data, so it cannot be compiled",
        )

    def output_resulting_program(self, prog: ModuleOp) -> str:
        limit = self.args.pconv_elide_resources_over
        if limit is None or parse_spec(self.args.target).name != "mlir":
            return super().output_resulting_program(prog)
        return print_module(
            prog,
            self.ctx,
            generic=self.args.print_op_generic,
            elide_resources_over=limit,
            print_properties_as_attributes=self.args.print_no_properties,
            print_debuginfo=self.args.print_debuginfo,
        )

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0):
        self.chunk_line_offset = start_offset
        return super().parse_chunk(chunk, file_extension, start_offset)


def _byte_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of bytes")
    return value


class _ListPassesAction(argparse.Action):
    def __init__(self, *args, passes: dict[str, Callable[[], type[ModulePass]]], **kwargs):
        super().__init__(*args, nargs=0, **kwargs)
        self.passes = passes

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_PassListing(self.passes).text())
        parser.exit()


def _error(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


class _Signalled(BaseException):
    """SIGTERM or SIGINT arrived: unwinds the run (not an `Exception`, so nothing swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise `_Signalled`, so that `finally` blocks run.

    A second signal while unwinding is ignored. Signals left ignored by the parent stay
    ignored; off the main thread (where Python cannot set handlers) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) != signal.SIG_IGN]

    def stop(signum: int, _frame: object) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise _Signalled(signum)

    previous = {s: signal.signal(s, stop) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run pconv-opt; returns the exit code (0 success, 1 a diagnostic, 2 bad usage, 128 + N
    when stopped by signal N)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _stop_on_signals():
        try:
            return _run(argv)
        except _Signalled as e:
            name = signal.Signals(e.signum).name
            what = "interrupted" if e.signum == signal.SIGINT else "terminated"
            print(f"{TOOL}: {what} ({name})", file=sys.stderr)
            return 128 + e.signum


def _run(argv: list[str]) -> int:
    toolchain.configure_xdsl()
    tool: PconvOptMain | None = None
    final_output: str | None = None
    temporary: str | None = None
    succeeded = False
    try:
        try:
            tool = PconvOptMain(description="pconv-mlir modular optimizer driver", args=argv)
        except ValueError as e:  # unknown pass in -p, raised while building the pipeline
            raise PconvError(_pipeline_error(argv, e)) from None
        if tool.args.output_file:
            final_output = tool.args.output_file
            directory = os.path.dirname(os.path.abspath(final_output))
            handle, temporary = tempfile.mkstemp(prefix=".pconv-opt-", suffix=".tmp", dir=directory)
            os.close(handle)
            tool.args.output_file = temporary
        with using_storage(tool.ctx):  # verifiers read dense_resource data from this context
            tool.run()
        succeeded = True
    except PconvError as e:
        return _error(str(e))
    except ArgSpecParseError as e:
        return _error(_pipeline_error(argv, e))
    except ParseError as e:
        return _error(format_parse_error(e))
    except DiagnosticException as e:
        return _error(describe_failure(tool.last_module if tool is not None else None, e))
    except OSError as e:
        if tool is not None and e.filename == tool.args.input_file:
            return _error(f"{e.filename}: error: could not open input file: {e.strerror}")
        return _error(f"{final_output or e.filename}: error: could not write: {e.strerror}")
    except KeyboardInterrupt as e:  # SIGINT when the handler could not be installed
        raise _Signalled(signal.SIGINT) from e
    except Exception as e:
        if os.environ.get("PCONV_DEBUG"):
            raise
        # xDSL's verifiers may fail with a plain Python error on a malformed op: locate it.
        line = describe_failure(tool.last_module if tool is not None else None, e)
        if line.startswith("<unknown>:"):
            line = f"{TOOL}: error: {first_line(e)} (set PCONV_DEBUG=1 for a traceback)"
        return _error(line)
    finally:
        if temporary is not None:
            if succeeded and final_output is not None:
                os.replace(temporary, final_output)
            elif os.path.exists(temporary):
                os.unlink(temporary)
    return 0


def _pipeline_error(argv: Sequence[str], error: BaseException) -> str:
    """Re-parse the `-p` string with pconv-mlir's pipeline parser for a located diagnostic."""
    spec = ""
    for i, arg in enumerate(argv):
        if arg in ("-p", "--passes") and i + 1 < len(argv):
            spec = argv[i + 1]
        elif arg.startswith("--passes="):
            spec = arg.split("=", 1)[1]
        elif arg.startswith("-p") and len(arg) > 2:
            spec = arg[2:]
    try:
        pipeline.parse_pass_pipeline(spec)
    except PconvError as e:
        return str(e)
    return f"<pass-pipeline>:1:1: error: {str(error).splitlines()[0]}"


if __name__ == "__main__":
    sys.exit(main())

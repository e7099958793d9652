"""Reliability of pconv-opt on bad input: one located diagnostic, never a traceback or a hang.

Each bug a fuzzing run found has a regression test here; `test_fuzz` mutates the lit inputs
with a fixed seed and runs every mutant through `pconv_opt.main` in-process. For a longer
local run (thousands of mutants, other seeds):

    .venv/bin/python test/python/test_reliability.py --seeds 0-99 --runs 50
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pconv_mlir.errors import PconvError
from pconv_mlir.ir import MAX_DENSE_ELEMENTS, make_context, parse_module, split_resources
from pconv_mlir.tools.pconv_opt import main

ROOT = Path(__file__).resolve().parents[2]
PASSES = "pconv-from-linalg,pconv-fkr,pconv-fkw-pack,convert-pconv-to-loops,pconv-lre"
DIAGNOSTIC = re.compile(r"^(?:[^\s:]+:\d+:\d+|<pass-pipeline>:1:\d+): error: ")
LIMIT = 5
"""Seconds a single run may take."""


class Hang(BaseException):
    """A run exceeded its time limit (a BaseException, so no `except Exception` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise Hang(f"more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_opt(*args: str, limit: int = LIMIT) -> tuple[int, str, str]:
    """`pconv-opt args` in-process, within `limit` seconds: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with time_limit(limit), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def run_text(tmp_path: Path, text: str | bytes, *args: str, name: str = "in.mlir"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return run_opt(str(path), *args)


def diagnostic(result: tuple[int, str, str]) -> str:
    """The one diagnostic line of a failed run (checked)."""
    code, _out, err = result
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and DIAGNOSTIC.match(lines[0]), err
    return lines[0]


# --------------------------------------------------------------------------------------------
# 1. Integers too large for their element type
# --------------------------------------------------------------------------------------------


def test_dense_integer_out_of_range_is_located_at_the_literal(tmp_path):
    text = (
        "func.func @f() -> tensor<2xi8> {\n"
        "  %c = arith.constant dense<[1, 300]> : tensor<2xi8>\n"
        "  func.return %c : tensor<2xi8>\n"
        "}\n"
    )
    line = diagnostic(run_text(tmp_path, text))
    assert line.startswith(f"{tmp_path}/in.mlir:2:23: error: Integer value 300 is out of range")


CONV = (
    "func.func @f(%x: tensor<1x2x6x6xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32> {\n"
    "  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>"
    " kernel_patterns dense<[[0, 1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1]"
    " dilation [1, 1] : (tensor<1x2x6x6xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32>\n"
    "  func.return %y : tensor<1x1x6x6xf32>\n"
    "}\n"
)


def test_kernel_patterns_out_of_range_is_located(tmp_path):
    text = CONV.replace("dense<[[0, 1]]>", "dense<[[0, 100000]]>")
    column = CONV.splitlines()[1].index("dense<") + 1
    line = diagnostic(run_text(tmp_path, text))
    assert f"in.mlir:2:{column}: error: Integer value 100000 is out of range" in line


# --------------------------------------------------------------------------------------------
# 2. Python errors from deep inside xDSL, and allocation before any check
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new",
    [
        ("strides [1, 1]", "strides [1, 99999999999999999999999]"),
        ("strides [1, 1]", "strides [1, -99999999999999999999999]"),
    ],
)
def test_huge_window_value_is_located_at_the_op(tmp_path, old, new):
    line = diagnostic(run_text(tmp_path, CONV.replace(old, new)))
    assert "in.mlir:2:3: error: integer out of range" in line


def dense_conv(old: str, new: str) -> str:
    text = (ROOT / "test/passes/inputs/dense_conv.mlir").read_text()
    assert old in text
    return text.replace(old, new)


def test_linalg_conv_with_three_strides_is_located(tmp_path):
    text = dense_conv("strides = dense<1> : vector<2xi64>", "strides = dense<1> : vector<3xi64>")
    line = diagnostic(run_text(tmp_path, text, "-p", "pconv-from-linalg"))
    assert "in.mlir:13:5: error: 'linalg.conv_2d_nchw_fchw' op" in line


def test_linalg_named_op_without_operands_is_located(tmp_path):
    text = (
        "func.func @f() {\n"
        "  %y = linalg.conv_2d_nchw_fchw {strides = dense<1> : vector<2xi64>} -> tensor<1xf32>\n"
        "  func.return\n"
        "}\n"
    )
    line = diagnostic(run_text(tmp_path, text))
    assert "in.mlir:2:3: error: malformed IR: xDSL's parser failed with IndexError" in line


def test_integer_type_wider_than_mlir_allows_is_refused(tmp_path):
    # xDSL would compute 2**1000000000 (seconds, and gigabytes for wider types).
    text = "func.func @f() {\n  %c = arith.constant 1 : i1000000000\n  func.return\n}\n"
    with time_limit(LIMIT):
        line = diagnostic(run_text(tmp_path, text))
    assert "in.mlir:2:27: error: integer bitwidth is limited to 16777215 bits" in line


@pytest.mark.parametrize(
    "old, new",
    [
        # A fill with two values is not a bias init pconv knows: the conv stays linalg.
        (
            "%5 = linalg.broadcast ins(%2:tensor<2xf32>) outs(%4:tensor<1x2x4x4xf32>) "
            "dimensions = [0, 2, 3]",
            "%5 = linalg.fill ins(%0, %0 : f32, f32) outs(%4 : tensor<1x2x4x4xf32>) "
            "-> tensor<1x2x4x4xf32>",
        ),
        # A pad that yields nothing is not a zero pad: the conv keeps it as its input.
        ("tensor.yield %0 : f32", "tensor.yield"),
    ],
)
def test_pconv_from_linalg_leaves_unusual_ops_alone(tmp_path, old, new):
    code, out, err = run_text(tmp_path, dense_conv(old, new), "-p", "pconv-from-linalg{taps=9}")
    assert code == 0 and not err, err


def test_huge_splat_is_refused_before_it_is_allocated(tmp_path):
    text = (
        "func.func @f() -> tensor<65536x65536xf32> {\n"
        "  %c = arith.constant dense<1.0> : tensor<65536x65536xf32>\n"
        "  func.return %c : tensor<65536x65536xf32>\n"
        "}\n"
    )
    line = diagnostic(run_text(tmp_path, text))
    assert f"in.mlir:2:36: error: dense literal of type tensor<65536x65536xf32> has {2**32}" in line
    hex_splat = text.replace("dense<1.0>", 'dense<"0x0000803F">')
    assert "has 4294967296 elements" in diagnostic(run_text(tmp_path, hex_splat))


def test_the_largest_splat_allowed_is_parsed():
    # The limit refuses absurd sizes only: a 1M-element splat parses (and quickly).
    n = 1 << 20
    assert n <= MAX_DENSE_ELEMENTS
    with time_limit(LIMIT):
        parse_module(f"%c = arith.constant dense<0.0> : tensor<{n}xf32>", make_context())


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "    builtin: {",
            "    builti!: {",
            ":20:11: error: expected ':' in the resources section",
        ),
        ("    builtin: {", "    bogus: {", ":20:5: error: resources of dialect 'bogus' are not"),
        ("  dialect_resources", "  dialect_resourcez", ":19:3: error: unknown key 'dialect_r"),
        (
            '"0x040000000000000000000000"',
            '"0x0400000000000',
            ":21:374: error: unterminated string in the resources section",
        ),
        (
            '"0x040000000000000000000000"',
            '"0x04000000000000000000000"',
            ":21:400: error: resource 'torch_tensor_2_torch.float32' is not whole hex bytes",
        ),
        (
            'float32: "0x0400',
            'float32: 17, "0x0400',
            ":21:43: error: expected a hex string \"0x...\" in the resources section, found '17'",
        ),
        ("  }\n#-}", "  }\n#-}\nfunc.func @g()", ":25:1: error: unexpected text after the file"),
    ],
)
def test_bad_resources_section_is_located(tmp_path, old, new, message):
    line = diagnostic(run_text(tmp_path, dense_conv(old, new)))
    assert f"in.mlir{message}" in line
    assert "None" not in line


def test_resources_truncated_anywhere_is_one_located_line(tmp_path):
    text = (ROOT / "test/passes/inputs/dense_conv.mlir").read_text()
    start = text.index("{-#")
    for end in range(start + 3, len(text) - 1, 7):
        line = diagnostic(run_text(tmp_path, text[:end]))
        assert int(line.split(":")[1]) >= 18, line  # in the section, which starts on line 18


def test_split_input_file_chunks_report_file_lines(tmp_path):
    text = "func.func @a() {\n  func.return\n}\n// -----\nfunc.func @b() {\n  %x = arith.constant : i32\n}\n"
    line = diagnostic(run_text(tmp_path, text, "--split-input-file"))
    assert "in.mlir:6:23: error: attribute expected" in line


def test_error_on_the_implicit_module_is_located_at_its_first_op(tmp_path):
    text = "func.func @a() {\n  func.return\n}\n// -----\n\nfunc.func @f() {\n  func.return\n}\n"
    text += "func.func @f() {\n  func.return\n}\n"
    line = diagnostic(run_text(tmp_path, text, "--split-input-file"))
    assert "in.mlir:6:1: error: 'builtin.module' op Redefinition of symbol \"f\"" in line


def test_invalid_utf8_is_located(tmp_path):
    line = diagnostic(run_text(tmp_path, b"func.func @f() {\n  \xff\n}\n"))
    assert "in.mlir:2:3: error: the file is not UTF-8" in line


# --------------------------------------------------------------------------------------------
# 3. Hangs: xDSL's string-literal regex backtracks exponentially on an unclosed string
# --------------------------------------------------------------------------------------------

# With xDSL's own regex each of these takes 2**n steps for n characters in the string: hours
# at 40, and the time limit is 5 s for all of them together.
UNCLOSED = [
    ('func.func @f(%x: "' + "a" * 60, ":1:18: error: unterminated string literal"),
    ('func.func @f() {\n  %c = arith.constant dense<"0x' + "0" * 60, ":2:29: error: unterminated"),
    ('%c = "test.op"() {a = "' + "b" * 60 + '\\q"} : () -> ()', ":1:84: error: unknown escape"),
    ('"' + "c" * 60 + "\n", ":1:1: error: unterminated string literal"),
]


@pytest.mark.parametrize("text, message", UNCLOSED)
def test_unclosed_string_fails_fast(tmp_path, text, message):
    start = time.monotonic()
    line = diagnostic(run_text(tmp_path, text))
    assert f"in.mlir{message}" in line
    assert time.monotonic() - start < LIMIT


def test_unclosed_string_in_python_api_fails_fast():
    with time_limit(LIMIT), pytest.raises(PconvError, match=r"^<string>:1:18: error: unterm"):
        parse_module('func.func @f(%x: "' + "a" * 200, make_context())


def test_unclosed_string_in_subprocess_fails_fast(tmp_path):
    # No in-process signal: a subprocess with a timeout is the bound.
    path = tmp_path / "unclosed.mlir"
    path.write_text('func.func @f(%x: "' + "a" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "pconv_mlir.tools.pconv_opt", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"{path}:1:18: error: unterminated string literal\n"


def test_split_resources_is_linear_on_a_large_blob():
    text = (ROOT / "test/passes/inputs/dense_conv.mlir").read_text()
    big = "0x04000000" + "00" * 20_000_000
    text = text.replace('"0x040000000000000000000000"', f'"{big}"')
    start = time.monotonic()
    _body, resources = split_resources(text)
    assert resources["torch_tensor_2_torch.float32"] == big
    assert time.monotonic() - start < 2


# --------------------------------------------------------------------------------------------
# 4. -o and signals: the temporary goes, the output is not written, the exit is non-zero
# --------------------------------------------------------------------------------------------

SLEEPER = """
import sys, time
from dataclasses import dataclass
from pathlib import Path
from xdsl.passes import ModulePass
from pconv_mlir.tools import pconv_opt

@dataclass(frozen=True)
class SleepPass(ModulePass):
    name = "test-sleep"
    def apply(self, ctx, op):
        Path(sys.argv[1]).touch()
        time.sleep(60)

class Main(pconv_opt.PconvOptMain):
    def register_all_passes(self):
        super().register_all_passes()
        self.register_pass("test-sleep", lambda: SleepPass)

pconv_opt.PconvOptMain = Main
sys.exit(pconv_opt.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_the_temporary_output(tmp_path, signum):
    source = tmp_path / "in.mlir"
    source.write_text("func.func @f() {\n  func.return\n}\n")
    started, output = tmp_path / "started", tmp_path / "out" / "result.mlir"
    output.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, str(started), str(source), "-p", "test-sleep"]
        + ["-o", str(output)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the pass never started"
            time.sleep(0.05)
        assert [p.name for p in output.parent.iterdir()][0].startswith(".pconv-opt-")
        process.send_signal(signum)
        code = process.wait(timeout=10)
    finally:
        process.kill()
    assert code == 128 + signum
    assert process.stderr.read().strip() in (
        "pconv-opt: terminated (SIGTERM)",
        "pconv-opt: interrupted (SIGINT)",
    )
    assert list(output.parent.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Fuzzing: mutants of the lit inputs
# --------------------------------------------------------------------------------------------

HUGE = ["4294967296", "18446744073709551616", "9223372036854775808", "99999999999999999999999"]
HUGE += ["2147483648", "65536", "0", "-1", "-9223372036854775809", "1e400", "0x" + "f" * 40]
DENSE_CONTENTS = ["[1, 300]", "999999999999", "[[0, 1], [2]]", "", '"0x00"', '"0x0G"', "[", "1.5"]
DENSE_CONTENTS += ["[[-2, 70000]]", "true", '"0x' + "0" * 31, "-0x1p3", "[1.0, [2.0]]"]
INSERTS = ['"', "{", "}", "<", ">", "[", "]", "(", ")", "%", "@", "#", "!", "\\", "{-#", "#-}"]
INSERTS += ["//", ":", ",", "->", "dense<", "\n", "\x00", "\xe9", " ", "loc(", '"\\']
TOKEN = re.compile(r'"[^"\n]*"|[%@#!^]?[\w.$-]+|->|\S')


def _span(rng: random.Random, text: str, most: int) -> tuple[int, int]:
    start = rng.randrange(len(text))
    return start, min(len(text), start + rng.randint(1, most))


def _delete(rng, text):
    a, b = _span(rng, text, 20)
    return text[:a] + text[b:]


def _duplicate(rng, text):
    a, b = _span(rng, text, 40)
    return text[:b] + text[a:b] + text[b:]


def _truncate(rng, text):
    return text[: rng.randrange(len(text))]


def _huge_number(rng, text):
    runs = list(re.finditer(r"\d+", text))
    if not runs:
        return text
    m = rng.choice(runs)
    return text[: m.start()] + rng.choice(HUGE) + text[m.end() :]


def _small_number(rng, text):
    runs = list(re.finditer(r"\d+", text))
    if not runs:
        return text
    m = rng.choice(runs)
    return (
        text[: m.start()] + str(rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17])) + text[m.end() :]
    )


def _swap_lines(rng, text):
    lines = text.split("\n")
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines)


def _swap_tokens(rng, text):
    tokens = list(TOKEN.finditer(text))
    if len(tokens) < 2:
        return text
    a, b = sorted(rng.sample(tokens, 2), key=lambda m: m.start())
    return text[: a.start()] + b.group() + text[a.end() : b.start()] + a.group() + text[b.end() :]


def _perturb_dense(rng, text):
    literals = list(re.finditer(r"dense<([^<>]*)>", text))
    if not literals:
        return _huge_number(rng, text)
    m = rng.choice(literals)
    if rng.random() < 0.5:
        contents = rng.choice(DENSE_CONTENTS)
    else:
        contents = re.sub(r"-?\d+", lambda _: rng.choice(["300", "-129", "256", *HUGE]), m.group(1))
    return text[: m.start(1)] + contents + text[m.end(1) :]


def _insert(rng, text):
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(INSERTS) + text[at:]


MUTATIONS: list[Callable[[random.Random, str], str]] = [
    _delete,
    _duplicate,
    _truncate,
    _huge_number,
    _small_number,
    _small_number,
    _swap_lines,
    _swap_tokens,
    _perturb_dense,
    _insert,
]


def lit_inputs() -> list[Path]:
    return sorted(p for p in (ROOT / "test").rglob("*.mlir") if "Output" not in p.parts)


def mutant(rng: random.Random, text: str) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if text:
            text = rng.choice(MUTATIONS)(rng, text)
    return text


PIPELINES = [[], ["-p", PASSES], ["-p", PASSES.replace(",convert-pconv-to-loops", "")]]


def fuzz(seed: int, runs: int, workdir: Path) -> list[str]:
    """`runs` mutants from `seed`; returns a description of each run that broke the rules."""
    rng = random.Random(seed)
    inputs = [(p, p.read_text()) for p in lit_inputs()]
    problems = []
    for i in range(runs):
        path, text = rng.choice(inputs)
        text = mutant(rng, text)
        case = workdir / f"fuzz-{seed}-{i}.mlir"
        case.write_text(text, encoding="utf-8", errors="surrogateescape")
        args = [str(case), *rng.choice(PIPELINES)]
        if "// -----" in text and rng.random() < 0.8:
            args.append("--split-input-file")
        if rng.random() < 0.2:
            args += ["-o", str(workdir / "out.mlir")]
        start = time.monotonic()
        try:
            code, _out, err = run_opt(*args)
        except Hang:
            problems.append(f"{case} (from {path.name}) {args[1:]}: hang")
            continue
        except BaseException as e:  # noqa: BLE001 - anything escaping main is a bug
            problems.append(f"{case} (from {path.name}) {args[1:]}: {type(e).__name__}: {e}")
            continue
        lines = err.splitlines()
        if code not in (0, 1):
            problems.append(f"{case} {args[1:]}: exit code {code}: {err[:300]}")
        elif code == 1 and not (len(lines) == 1 and DIAGNOSTIC.match(lines[0])):
            problems.append(f"{case} (from {path.name}) {args[1:]}: {err[:300]!r}")
        elif code == 0 and err:
            problems.append(
                f"{case} (from {path.name}) {args[1:]}: exit 0 with stderr {err[:300]!r}"
            )
        leftovers = [p.name for p in workdir.iterdir() if p.name.startswith(".pconv-opt-")]
        if leftovers:
            problems.append(f"{case} {args[1:]}: temporaries left: {leftovers}")
        if time.monotonic() - start > LIMIT:
            problems.append(f"{case} {args[1:]}: took {time.monotonic() - start:.1f} s")
        if not problems or not problems[-1].startswith(str(case)):
            case.unlink()
        (workdir / "out.mlir").unlink(missing_ok=True)
    return problems


def test_fuzz(tmp_path):
    problems = fuzz(seed=20260, runs=500, workdir=tmp_path)
    assert not problems, "\n".join(problems)


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Fuzz pconv-opt with mutants of the lit inputs.")
    parser.add_argument("--seeds", default="0-9", help="a range FIRST-LAST")
    parser.add_argument("--runs", type=int, default=100, help="mutants per seed")
    parser.add_argument("--keep", default=None, help="folder for the failing mutants")
    options = parser.parse_args()
    first, last = (int(v) for v in options.seeds.split("-"))
    workdir = Path(options.keep or tempfile.mkdtemp(prefix="pconv-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    total, failed = 0, []
    for seed in range(first, last + 1):
        found = fuzz(seed, options.runs, workdir)
        total += options.runs
        failed += found
        print(f"seed {seed}: {len(found)} problem(s)", file=sys.__stdout__, flush=True)
    print("\n".join(failed))
    print(f"{total} runs, {len(failed)} problems; mutants kept in {workdir}")
    os._exit(1 if failed else 0)


def test_python_api_locates_a_verifier_that_raises_a_plain_python_error():
    """The pipeline API gives the same located line as pconv-opt for xDSL verifiers that fail
    with a plain ValueError (a linalg conv with three strides)."""
    from pconv_mlir.errors import PconvError
    from pconv_mlir.pipeline import run_pipeline

    text = dense_conv("strides = dense<1> : vector<2xi64>", "strides = dense<1> : vector<3xi64>")
    with pytest.raises(PconvError, match=r"^<string>:13:5: error: 'linalg.conv_2d_nchw_fchw' op"):
        run_pipeline(text, "pconv-from-linalg")

"""pconv-opt and the Python pipeline API: registration, pipelines, and one-line diagnostics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.transforms.canonicalize import CanonicalizePass

from pconv_mlir.errors import PconvError
from pconv_mlir.ir import make_context, parse_module
from pconv_mlir.pipeline import Pipeline, parse_pass_pipeline, run_pipeline
from pconv_mlir.tools.pconv_opt import main

GOOD = """
func.func @f(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %a = arith.constant 1 : i32
  %b = arith.addi %a, %a : i32
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}
"""
BAD_ID = GOOD.replace("dense<0> : tensor<1x1xi8>", "dense<7> : tensor<1x1xi8>")


def test_pipeline_from_string_text_in_text_out():
    out = Pipeline("canonicalize").run(GOOD)
    assert "arith.addi" not in out and "pconv.conv2d" in out


def test_pipeline_from_pass_objects_on_module():
    parsed = parse_module(GOOD, make_context())
    result = Pipeline([CanonicalizePass()]).run(parsed)
    assert isinstance(result, ModuleOp) and result is parsed
    assert Pipeline([CanonicalizePass()]).spec() == "canonicalize"


def test_pipeline_generic_output():
    assert '"pconv.conv2d"' in run_pipeline(GOOD, "", generic=True)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "cse,no-such-pass",
            "<pass-pipeline>:1:5: error: 'no-such-pass' does not refer to a registered pass",
        ),
        ("canonicalize{", "<pass-pipeline>:1:14: error: Expected argument name here"),
        ("canonicalize{bogus=1}", "bad options for 'canonicalize'"),
    ],
)
def test_pipeline_errors(spec, message):
    with pytest.raises(PconvError) as info:
        parse_pass_pipeline(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_pipeline_diagnostics_for_bad_ir():
    with pytest.raises(
        PconvError,
        match=r"^<string>:5:3: error: 'pconv.conv2d' op kernel \(0, 0\) has pattern id 7",
    ):
        run_pipeline(BAD_ID, "")
    with pytest.raises(PconvError, match=r"^<string>:1:\d+: error: "):
        run_pipeline("func.func @f(", "")


def run_tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pconv_mlir.tools.pconv_opt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_help_lists_pconv_passes_with_summaries():
    from pconv_mlir.tools.pconv_opt import pass_summary
    from pconv_mlir.universe import get_all_passes

    out = run_tool("--help")
    assert out.returncode == 0
    assert "pconv passes:" in out.stdout and "upstream xDSL passes:" in out.stdout
    for name, factory in get_all_passes().items():
        assert factory().name == name
        summary = pass_summary(factory())
        assert summary, f"{name} has no docstring summary"
        assert name in out.stdout and summary in out.stdout
    assert "canonicalize" in out.stdout


def test_bad_inputs_give_one_line_and_exit_1(tmp_path: Path):
    missing = run_tool(str(tmp_path / "missing.mlir"))
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        == f"{tmp_path / 'missing.mlir'}: error: could not open input file: No such file or directory"
    )

    bad = tmp_path / "bad.mlir"
    bad.write_text(BAD_ID)
    out = run_tool(str(bad))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith(
        f"{bad}:5:3: error: 'pconv.conv2d' op kernel (0, 0) has pattern id 7"
    )
    assert "Traceback" not in out.stderr

    unknown = run_tool(str(bad), "-p", "nope")
    assert unknown.returncode == 1
    assert (
        unknown.stderr.strip()
        == "<pass-pipeline>:1:1: error: 'nope' does not refer to a registered pass"
    )

    malformed = run_tool(stdin="func.func @f() {\n  %x = arith.constant : i32\n}\n")
    assert malformed.returncode == 1 and malformed.stderr.startswith("stdin:2:")


def test_no_half_written_output(tmp_path: Path):
    source = tmp_path / "two.mlir"
    source.write_text(GOOD + "\n// -----\n" + BAD_ID)
    target = tmp_path / "out.mlir"
    assert main([str(source), "--split-input-file", "-o", str(target)]) == 1
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [source]
    # The same run on good input writes the file.
    source.write_text(GOOD)
    assert main([str(source), "-o", str(target)]) == 0
    assert "pconv.conv2d" in target.read_text()


def test_split_input_file_locations_are_absolute(tmp_path: Path, capsys):
    source = tmp_path / "two.mlir"
    source.write_text(GOOD + "\n// -----\n" + BAD_ID)
    assert main([str(source), "--split-input-file"]) == 1
    err = capsys.readouterr().err.strip()
    line = GOOD.count("\n") + 2 + 5
    assert err.startswith(f"{source}:{line}:3: error: 'pconv.conv2d' op"), err


def test_xdsl_opt_sees_the_dialect_through_the_entry_point():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "xdsl-opt")], input=GOOD, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "pconv.conv2d" in out.stdout

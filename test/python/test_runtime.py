"""The runtime: clang builds, the C driver and header, the runners, AddressSanitizer, timing.

The ASan tests build the driver under `-fsanitize=address` and run it natively: a pattern-sparse
convolution must run clean on shapes with ragged vector tails, and a kernel that reads past its
buffer must fail, so that a clean run means something.
"""

from __future__ import annotations

import platform
import subprocess

import numpy as np
import pytest

from pconv_mlir import reference, toolchain
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.errors import BuildError, OptionError, RunError, ToolFailedError
from pconv_mlir.ir import parse_module
from pconv_mlir.lowering.llvm import ArgSpec, FunctionSignature
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.runtime.build import compile_executable, compile_shared_library
from pconv_mlir.runtime.driver import c_header, generate_driver, rename_reserved
from pconv_mlir.runtime.runners import ExecutableRunner, build_runner
from pconv_mlir.runtime.timing import median_seconds

LOWER = "pconv-fkr,pconv-fkw-pack,convert-pconv-to-loops,pconv-lre"


@pytest.fixture
def need_asan(need_tool, need, tmp_path):
    """Skip unless the LLVM tools are installed and clang-22 can link a program with
    AddressSanitizer (libclang-rt-22-dev); under `make test` (PCONV_REQUIRE_TOOLS=1) a missing
    tool or runtime fails the test instead."""
    for tool in ("mlir-opt", "mlir-translate", "clang"):
        need_tool(tool)
    try:
        toolchain.run_tool(
            "clang",
            ["-fsanitize=address", "-x", "c", "-", "-o", str(tmp_path / "asan-probe")],
            "int main(void) { return 0; }\n",
        )
    except ToolFailedError:
        need("clang-22 cannot link with AddressSanitizer (install libclang-rt-22-dev)")


# ------------------------------------------------------------------------------------------------
# AddressSanitizer
# ------------------------------------------------------------------------------------------------

ODD_SHAPES = [
    # (batch, channels, filters, height, width, bias): stride 2 and padding 0 for all.
    (1, 11, 5, 9, 13, False),
    (2, 3, 9, 12, 17, True),
    (1, 13, 12, 15, 10, True),
]


@pytest.mark.parametrize("n, c, f, h, w, bias", ODD_SHAPES)
def test_pattern_conv_is_clean_under_asan(need_asan, n, c, f, h, w, bias) -> None:
    """The lowered pattern-sparse conv reads and writes only inside its buffers and constants,
    with channel and width tails that are not a multiple of the vector width."""
    rng = np.random.default_rng(c * 100 + w)
    patterns, ids, weight = random_pattern_layer(rng, f, c, k=6, rate=2.5)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    module = conv2d_module(x.shape, weight, b, patterns, ids, (2, 2), (0, 0))
    Pipeline(LOWER).run(module)
    with build_runner(module, sanitize="address") as runner:
        assert isinstance(runner, ExecutableRunner)
        out = np.zeros(runner.signatures["conv"].args[-1].shape, np.float32)
        runner.call("conv", x, *([b] if bias else []), out)
    expected = reference.conv2d(x, weight, b, patterns, ids, (2, 2), (0, 0))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


OUT_OF_BOUNDS = """
func.func @load(%x: memref<4xf32>, %i: index) -> f32 {
  %v = memref.load %x[%i] : memref<4xf32>
  return %v : f32
}
"""


def test_out_of_bounds_load_fails_under_asan(need_asan) -> None:
    """A read one element past the buffer is a RunError quoting ASan, not a silent value."""
    x = np.arange(4, dtype=np.float32)
    with build_runner(parse_module(OUT_OF_BOUNDS), sanitize="address") as runner:
        assert runner.call("load", x, 3) == np.float32(3.0)
        with pytest.raises(RunError) as info:
            runner.call("load", x, 4)
    message = str(info.value)
    assert message.startswith("@load under AddressSanitizer failed: ")
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in message
    assert "\n" not in message


def test_sanitize_is_checked_before_building() -> None:
    """Bad options fail at once, before any tool runs."""
    module = parse_module(OUT_OF_BOUNDS)
    with pytest.raises(OptionError, match="unknown sanitizer 'memory'"):
        build_runner(module, sanitize="memory")
    if platform.machine() not in ("aarch64", "arm64"):
        with pytest.raises(OptionError, match="sanitize='address' needs code that runs natively"):
            build_runner(module, target="aarch64", sanitize="address")


# ------------------------------------------------------------------------------------------------
# Builds
# ------------------------------------------------------------------------------------------------


def test_clang_failure_is_its_first_error_line(need_tool, tmp_path) -> None:
    need_tool("clang")
    with pytest.raises(BuildError) as info:
        compile_shared_library("define void @f( {", tmp_path / "f.so", "host")
    assert str(info.value).startswith("clang failed: ") and "error" in str(info.value)
    assert "\n" not in str(info.value) and info.value.stderr
    assert not (tmp_path / "f.so").exists()


def test_unknown_machine_is_an_option_error(tmp_path) -> None:
    with pytest.raises(OptionError, match="unknown machine 'sparc'"):
        compile_shared_library("", tmp_path / "f.so", "sparc")


# ------------------------------------------------------------------------------------------------
# The C side: driver and header
# ------------------------------------------------------------------------------------------------

SCALE = FunctionSignature(
    "main",
    (ArgSpec("float64", None), ArgSpec("int32", (3,)), ArgSpec("int32", (3,), True)),
    ArgSpec("int64", None),
)
SCALE_IR = """
define i64 @main(double %0, ptr %1, ptr %2) {
  %s = fptosi double %0 to i32
  br label %loop
loop:
  %i = phi i64 [ 0, %3 ], [ %next, %loop ]
  %src = getelementptr i32, ptr %1, i64 %i
  %dst = getelementptr i32, ptr %2, i64 %i
  %v = load i32, ptr %src
  %m = mul i32 %v, %s
  store i32 %m, ptr %dst
  %next = add i64 %i, 1
  %done = icmp eq i64 %next, 3
  br i1 %done, label %exit, label %loop
exit:
  ret i64 42
}
"""


def test_driver_runs_an_entry_point_called_main(need_tool, tmp_path) -> None:
    """The driver renames an entry point that clashes with its own `main`, reads scalars and
    buffers, and writes outputs and the scalar result back."""
    need_tool("clang")
    exe = compile_executable(
        rename_reserved(SCALE_IR, ["main"]),
        tmp_path / "scale",
        driver_c=generate_driver({"main": SCALE}),
        machine="host",
        static=False,
    )
    runner = ExecutableRunner(exe, {"main": SCALE})
    out = np.zeros(3, np.int32)
    assert runner.call("main", 3.0, np.array([1, 2, 3], np.int32), out) == 42
    np.testing.assert_array_equal(out, [3, 6, 9])
    done = subprocess.run([str(exe), "nope", "/dev/null", "/dev/null"], capture_output=True)
    assert done.returncode == 2 and b"error: no function nope" in done.stderr


def test_c_header_declares_the_bare_pointer_abi() -> None:
    conv = FunctionSignature(
        "conv", (ArgSpec("float32", (1, 3, 8, 8)), ArgSpec("float32", (1, 4, 6, 6), True)), None
    )
    assert c_header(conv, "aarch64") == (
        "/* Generated by pconv-mlir for target aarch64. Buffers are dense, row-major. */\n"
        "#pragma once\n"
        "#include <stdint.h>\n"
        "\n"
        "/* in0: float[1][3][8][8] */\n"
        "/* out0: float[1][4][6][6] */\n"
        "void conv(const float *in0, float *out0);\n"
    )
    header = c_header(SCALE, "x86_64")
    assert "int64_t main(double in0, const int32_t *in1, int32_t *out0);" in header


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------


def test_median_seconds_warms_up_and_takes_the_median() -> None:
    calls: list[int] = []
    seconds = median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and 0 <= seconds < 1
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        median_seconds(lambda: None, repeats=0)


def test_code_statistics_reads_code_bytes_and_spills_from_the_object_file(need_tool) -> None:
    """A function whose 40 live values exceed the 16 (or 32) vector registers spills: the
    regalloc remark counts it, and the code bytes are the function symbol's size."""
    need_tool("clang")
    from pconv_mlir.runtime.codestats import code_statistics

    count = 40
    loads = "\n".join(
        f"  %p{i} = getelementptr <8 x float>, ptr %x, i64 {i}\n"
        f"  %v{i} = load volatile <8 x float>, ptr %p{i}"
        for i in range(count)
    )
    sums = ["%v0"]
    body = []
    for i in range(1, count):
        body.append(f"  %s{i} = fadd <8 x float> {sums[-1]}, %v{i}")
        sums.append(f"%s{i}")
    stores = "\n".join(
        f"  %q{i} = getelementptr <8 x float>, ptr %y, i64 {i}\n"
        f"  store volatile <8 x float> %v{i}, ptr %q{i}"
        for i in range(count)
    )
    ir = (
        "define void @pressure(ptr %x, ptr %y) {\n"
        + loads
        + "\n"
        + "\n".join(body)
        + "\n"
        + stores
        + f"\n  store <8 x float> {sums[-1]}, ptr %y\n  ret void\n}}\n"
    )
    stats = code_statistics(ir)
    assert set(stats.functions) == {"pressure"}
    assert stats.code_bytes == stats.functions["pressure"] > 0
    assert stats.spills > 0 and stats.reloads + stats.folded_reloads > 0

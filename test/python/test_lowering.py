"""The CPU back end: upstream dialects -> LLVM IR -> clang-22 -> run on the host and under qemu.

Every program is checked against numpy. Builds are shared per module and target (fixtures), so
each test costs about one mlir-opt + clang run (~1 s).
"""

from __future__ import annotations

import math
import platform
from functools import cache
from io import StringIO

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from xdsl.context import Context
from xdsl.dialects import get_all_dialects
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.arg_spec import parse_spec

from pconv_mlir import toolchain
from pconv_mlir.backends import get_all_targets
from pconv_mlir.backends.llvm_cpu import LlvmIrTarget
from pconv_mlir.errors import LoweringError, OptionError, RunError, ToolNotFoundError
from pconv_mlir.lowering import llvm
from pconv_mlir.machine import MACHINES
from pconv_mlir.runtime.build import compile_shared_library
from pconv_mlir.runtime.mca import llvm_mca_cycles, llvm_mca_report
from pconv_mlir.runtime.runners import Runner, build_runner

TARGETS = ["host", "aarch64"]


@pytest.fixture
def need(need_tool):
    """`need("clang", ...)`: skip unless every tool is installed (see test/conftest.py)."""

    def check(*names: str) -> None:
        for name in names:
            need_tool(name)

    return check


RNG = np.random.default_rng(0)


@cache
def parse(text: str) -> ModuleOp:
    """The module in `text`, parsed once: xDSL keeps `dense_resource` blobs in one process-wide
    table, and parsing a text with the same blob names again loses the new module's blobs."""
    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    return Parser(ctx, text).parse_module()


# ------------------------------------------------------------------------------------------------
# Programs
# ------------------------------------------------------------------------------------------------

SAXPY = """
func.func @saxpy(%a: f32, %x: memref<67xf32>, %y: memref<67xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %c67 = arith.constant 67 : index
  %va = vector.broadcast %a : f32 to vector<8xf32>
  scf.for %i = %c0 to %c64 step %c8 {
    %vx = vector.load %x[%i] : memref<67xf32>, vector<8xf32>
    %vy = vector.load %y[%i] : memref<67xf32>, vector<8xf32>
    %r = vector.fma %va, %vx, %vy : vector<8xf32>
    vector.store %r, %y[%i] : memref<67xf32>, vector<8xf32>
  }
  scf.for %i = %c64 to %c67 step %c1 {
    %sx = memref.load %x[%i] : memref<67xf32>
    %sy = memref.load %y[%i] : memref<67xf32>
    %m = arith.mulf %a, %sx : f32
    %s = arith.addf %m, %sy : f32
    memref.store %s, %y[%i] : memref<67xf32>
  }
  return
}

func.func @dot(%x: memref<67xf32>, %y: memref<67xf32>, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %sum = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %zero) -> (f32) {
    %a = memref.load %x[%i] : memref<67xf32>
    %b = memref.load %y[%i] : memref<67xf32>
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    scf.yield %s : f32
  }
  return %sum : f32
}
"""

# Direct 3x3 convolution, C=3 -> F=4, 6x13 -> 4x11, accumulating into `out` (preset with a bias).
# The output row is vectorised by 4: two vectors, then a scalar tail of 3.
DIRECT_CONV = """
func.func @conv3x3(%in: memref<3x6x13xf32>, %w: memref<4x3x3x3xf32>, %out: memref<4x4x11xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c11 = arith.constant 11 : index
  scf.for %f = %c0 to %c4 step %c1 {
    scf.for %oh = %c0 to %c4 step %c1 {
      scf.for %c = %c0 to %c3 step %c1 {
        scf.for %kh = %c0 to %c3 step %c1 {
          %ih = arith.addi %oh, %kh : index
          scf.for %kw = %c0 to %c3 step %c1 {
            %wv = memref.load %w[%f, %c, %kh, %kw] : memref<4x3x3x3xf32>
            %wb = vector.broadcast %wv : f32 to vector<4xf32>
            scf.for %ow = %c0 to %c8 step %c4 {
              %iw = arith.addi %ow, %kw : index
              %x = vector.load %in[%c, %ih, %iw] : memref<3x6x13xf32>, vector<4xf32>
              %acc = vector.load %out[%f, %oh, %ow] : memref<4x4x11xf32>, vector<4xf32>
              %r = vector.fma %x, %wb, %acc : vector<4xf32>
              vector.store %r, %out[%f, %oh, %ow] : memref<4x4x11xf32>, vector<4xf32>
            }
            scf.for %ow = %c8 to %c11 step %c1 {
              %iw = arith.addi %ow, %kw : index
              %x = memref.load %in[%c, %ih, %iw] : memref<3x6x13xf32>
              %acc = memref.load %out[%f, %oh, %ow] : memref<4x4x11xf32>
              %p = arith.mulf %x, %wv : f32
              %s = arith.addf %acc, %p : f32
              memref.store %s, %out[%f, %oh, %ow] : memref<4x4x11xf32>
            }
          }
        }
      }
    }
  }
  return
}
"""

MATH = """
func.func @math(%x: memref<8xf32>, %out: memref<4x8xf32>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  scf.for %i = %c0 to %c8 step %c4 {
    %v = vector.load %x[%i] : memref<8xf32>, vector<4xf32>
    %e = math.exp %v : vector<4xf32>
    %t = math.tanh %v : vector<4xf32>
    %r = math.erf %v : vector<4xf32>
    %a = math.absf %v : vector<4xf32>
    %s = math.sqrt %a : vector<4xf32>
    vector.store %e, %out[%c0, %i] : memref<4x8xf32>, vector<4xf32>
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    vector.store %t, %out[%c1, %i] : memref<4x8xf32>, vector<4xf32>
    vector.store %r, %out[%c2, %i] : memref<4x8xf32>, vector<4xf32>
    vector.store %s, %out[%c3, %i] : memref<4x8xf32>, vector<4xf32>
  }
  return
}
"""


def blob(array: np.ndarray) -> str:
    """`array` as a `dense_resource` blob: 4-byte alignment header, then little-endian data."""
    return "0x04000000" + array.astype("<f4").tobytes().hex().upper()


def dense(array: np.ndarray) -> str:
    """`array` as a hex `dense` literal: little-endian data, no header."""
    return 'dense<"0x' + array.astype("<f4").tobytes().hex().upper() + '">'


# What torch-mlir emits for a small CNN (linalg on tensors, weights as dense_resource blobs):
# pad 1, 3x3 conv stride 2 with bias, ReLU, 2x2 max-pool stride 1, 1x1 conv, flatten, linear.
# Named `main` like torch-mlir's entry point, which the aarch64 driver must rename.
CONV_W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
CONV_B = RNG.standard_normal(4).astype(np.float32)
PW_W = RNG.standard_normal((5, 4, 1, 1)).astype(np.float32)
FC_W = RNG.standard_normal((6, 80)).astype(np.float32)
FC_B = RNG.standard_normal(6).astype(np.float32)

TENSOR_NET = f"""
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>
func.func @main(%x: tensor<2x3x9x9xf32>) -> tensor<2x6xf32> {{
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %w = arith.constant dense_resource<conv_w> : tensor<4x3x3x3xf32>
  %b = arith.constant dense_resource<conv_b> : tensor<4xf32>
  %pw = arith.constant {dense(PW_W)} : tensor<5x4x1x1xf32>
  %fw = arith.constant {dense(FC_W)} : tensor<6x80xf32>
  %fb = arith.constant {dense(FC_B)} : tensor<6xf32>
  %padded = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] {{
  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):
    tensor.yield %zero : f32
  }} : tensor<2x3x9x9xf32> to tensor<2x3x11x11xf32>
  %e0 = tensor.empty() : tensor<2x4x5x5xf32>
  %bias = linalg.broadcast ins(%b : tensor<4xf32>) outs(%e0 : tensor<2x4x5x5xf32>)
      dimensions = [0, 2, 3]
  %conv = linalg.conv_2d_nchw_fchw {{dilations = dense<1> : vector<2xi64>,
      strides = dense<2> : vector<2xi64>}}
      ins(%padded, %w : tensor<2x3x11x11xf32>, tensor<4x3x3x3xf32>)
      outs(%bias : tensor<2x4x5x5xf32>) -> tensor<2x4x5x5xf32>
  %relu = linalg.generic {{indexing_maps = [#id4, #id4],
      iterator_types = ["parallel", "parallel", "parallel", "parallel"]}}
      ins(%conv : tensor<2x4x5x5xf32>) outs(%e0 : tensor<2x4x5x5xf32>) {{
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  }} -> tensor<2x4x5x5xf32>
  %e1 = tensor.empty() : tensor<2x4x4x4xf32>
  %init = linalg.fill ins(%ninf : f32) outs(%e1 : tensor<2x4x4x4xf32>) -> tensor<2x4x4x4xf32>
  %window = tensor.empty() : tensor<2x2xf32>
  %pool = linalg.pooling_nchw_max {{dilations = dense<1> : vector<2xi64>,
      strides = dense<1> : vector<2xi64>}}
      ins(%relu, %window : tensor<2x4x5x5xf32>, tensor<2x2xf32>)
      outs(%init : tensor<2x4x4x4xf32>) -> tensor<2x4x4x4xf32>
  %e2 = tensor.empty() : tensor<2x5x4x4xf32>
  %z2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<2x5x4x4xf32>) -> tensor<2x5x4x4xf32>
  %pconv = linalg.conv_2d_nchw_fchw {{dilations = dense<1> : vector<2xi64>,
      strides = dense<1> : vector<2xi64>}}
      ins(%pool, %pw : tensor<2x4x4x4xf32>, tensor<5x4x1x1xf32>)
      outs(%z2 : tensor<2x5x4x4xf32>) -> tensor<2x5x4x4xf32>
  %flat = tensor.collapse_shape %pconv [[0], [1, 2, 3]] : tensor<2x5x4x4xf32> into tensor<2x80xf32>
  %e3 = tensor.empty() : tensor<80x6xf32>
  %fwt = linalg.transpose ins(%fw : tensor<6x80xf32>) outs(%e3 : tensor<80x6xf32>)
      permutation = [1, 0]
  %e4 = tensor.empty() : tensor<2x6xf32>
  %z4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<2x6xf32>) -> tensor<2x6xf32>
  %mm = linalg.matmul ins(%flat, %fwt : tensor<2x80xf32>, tensor<80x6xf32>)
      outs(%z4 : tensor<2x6xf32>) -> tensor<2x6xf32>
  %y = linalg.generic {{indexing_maps = [#id2, #row, #id2],
      iterator_types = ["parallel", "parallel"]}}
      ins(%mm, %fb : tensor<2x6xf32>, tensor<6xf32>) outs(%e4 : tensor<2x6xf32>) {{
  ^bb0(%a: f32, %c: f32, %o: f32):
    %s = arith.addf %a, %c : f32
    linalg.yield %s : f32
  }} -> tensor<2x6xf32>
  return %y : tensor<2x6xf32>
}}

{{-#
  dialect_resources: {{
    builtin: {{
      conv_w: "{blob(CONV_W)}",
      conv_b: "{blob(CONV_B)}"
    }}
  }}
#-}}
"""


def conv2d_nchw(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,fcij->nfhw", windows, w, dtype=np.float64)


def tensor_net_reference(x: np.ndarray) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = conv2d_nchw(padded, CONV_W, 2) + CONV_B[None, :, None, None]
    y = np.maximum(y, 0)
    y = sliding_window_view(y, (2, 2), axis=(2, 3)).max(axis=(4, 5))
    y = conv2d_nchw(y, PW_W)
    return y.reshape(2, 80) @ FC_W.T.astype(np.float64) + FC_B


# ------------------------------------------------------------------------------------------------
# Shared builds
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runners():
    """Runners built in this module, by (program, target); closed at the end."""
    built: dict[tuple[str, str], Runner] = {}
    yield built
    for runner in built.values():
        runner.close()


@pytest.fixture
def build(runners, need):
    """`build(program, target)`: the runner of `program`, built once per module and target."""

    def get(program: str, target: str) -> Runner:
        need("mlir-opt", "mlir-translate", "clang")
        if target == "aarch64" and platform.machine() not in ("aarch64", "arm64"):
            need("qemu-aarch64")
        if (program, target) not in runners:
            runners[program, target] = build_runner(parse(program), target=target)
        return runners[program, target]

    return get


# ------------------------------------------------------------------------------------------------
# Numerics, host and aarch64
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_vector_saxpy_with_tail(build, target: str) -> None:
    runner = build(SAXPY, target)
    x = RNG.standard_normal(67).astype(np.float32)
    y = RNG.standard_normal(67).astype(np.float32)
    expected = 1.5 * x + y
    assert runner.call("saxpy", 1.5, x, y) is None
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_scalar_arguments_and_result(build, target: str) -> None:
    runner = build(SAXPY, target)
    x = RNG.standard_normal(67).astype(np.float32)
    y = RNG.standard_normal(67).astype(np.float32)
    result = runner.call("dot", x, y, 50)
    assert isinstance(result, np.float32)
    assert result == pytest.approx(float(x[:50].astype(np.float64) @ y[:50]), rel=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_direct_convolution_vector_and_tail(build, target: str) -> None:
    runner = build(DIRECT_CONV, target)
    x = RNG.standard_normal((3, 6, 13)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = RNG.standard_normal(4).astype(np.float32)
    out = np.repeat(bias, 4 * 11).reshape(4, 4, 11).astype(np.float32)
    runner.call("conv3x3", x, w, out)
    expected = conv2d_nchw(x[None], w)[0] + bias[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_math_functions(build, target: str) -> None:
    runner = build(MATH, target)
    x = np.linspace(-2, 2, 8, dtype=np.float32)
    out = np.zeros((4, 8), np.float32)
    runner.call("math", x, out)
    expected = [np.exp(x), np.tanh(x), [math.erf(v) for v in x], np.sqrt(np.abs(x))]
    np.testing.assert_allclose(out, np.array(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_linalg_on_tensors_network(build, target: str) -> None:
    runner = build(TENSOR_NET, target)
    sig = runner.signatures["main"]
    assert [a.shape for a in sig.args] == [(2, 3, 9, 9), (2, 6)]
    assert sig.args[1].is_out_param and sig.result is None
    x = RNG.standard_normal((2, 3, 9, 9)).astype(np.float32)
    out = np.zeros((2, 6), np.float32)
    runner.call("main", x, out)
    np.testing.assert_allclose(out, tensor_net_reference(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", TARGETS)
def test_argument_checks(build, target: str) -> None:
    runner = build(SAXPY, target)
    x = np.zeros(67, np.float32)
    with pytest.raises(TypeError, match=r"argument 1 of @saxpy: expected a float32 array"):
        runner.call("saxpy", 1.0, x.astype(np.float64), x)
    with pytest.raises(TypeError, match=r"shape \(67,\)"):
        runner.call("saxpy", 1.0, x[:60], x)
    with pytest.raises(ValueError, match="C-contiguous"):
        runner.call("saxpy", 1.0, np.zeros(134, np.float32)[::2], x)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        runner.call("saxpy", x, x)
    with pytest.raises(KeyError, match="no function @axpy"):
        runner.call("axpy", 1.0, x, x)


# ------------------------------------------------------------------------------------------------
# LLVM IR, ABI, targets
# ------------------------------------------------------------------------------------------------


def test_llvm_ir_has_target_and_bare_pointer_abi(need) -> None:
    need("mlir-opt", "mlir-translate")
    ir = llvm.lower_to_llvm_ir(parse(SAXPY), target="aarch64")
    assert 'target triple = "aarch64-unknown-linux-gnu"' in ir
    assert f'target datalayout = "{MACHINES["aarch64"].data_layout}"' in ir
    assert "define void @saxpy(float %0, ptr %1, ptr %2)" in ir
    assert "define float @dot(ptr %0, ptr %1, i64 %2)" in ir
    assert "@llvm.fmuladd.v8f32" in ir


def test_tensor_results_become_out_params(need) -> None:
    need("mlir-opt", "mlir-translate")
    ir = llvm.lower_to_llvm_ir(parse(TENSOR_NET), target="x86_64")
    assert "define void @main(ptr %0, ptr %1)" in ir
    assert 'target triple = "x86_64-pc-linux-gnu"' in ir


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_target_table_matches_clang(need, name: str) -> None:
    need("clang")
    spec = MACHINES[name]
    text = toolchain.run_tool(
        "clang", [f"--target={spec.triple}", "-S", "-emit-llvm", "-x", "c", "-", "-o", "-"], ""
    )
    assert f'target triple = "{spec.triple}"' in text
    assert f'target datalayout = "{spec.data_layout}"' in text


def test_signatures() -> None:
    sigs = llvm.function_signatures(parse(SAXPY))
    assert sigs["saxpy"].args == (
        llvm.ArgSpec("float32", None),
        llvm.ArgSpec("float32", (67,)),
        llvm.ArgSpec("float32", (67,)),
    )
    assert sigs["dot"].result == llvm.ArgSpec("float32", None)
    assert sigs["dot"].args[2] == llvm.ArgSpec("int64", None)


def test_llvm_target_class(need) -> None:
    need("mlir-opt", "mlir-translate")
    factory = get_all_targets()["llvm-ir"]
    target = factory().from_spec(parse_spec("llvm-ir{backend=aarch64 opt_level=0}"))
    assert target == LlvmIrTarget(backend="aarch64", opt_level=0)
    out = StringIO()
    target.emit(Context(), parse(SAXPY), out)
    assert "aarch64-unknown-linux-gnu" in out.getvalue()


# ------------------------------------------------------------------------------------------------
# Errors are one line, not a traceback dump
# ------------------------------------------------------------------------------------------------


def test_dynamic_shape_is_rejected() -> None:
    module = parse("func.func @f(%x: memref<?xf32>) {\n  return\n}")
    with pytest.raises(LoweringError, match=r"argument 0 of @f has dynamic shape"):
        llvm.function_signatures(module)


def test_non_upstream_op_is_rejected() -> None:
    module = parse('func.func @f() {\n  "test.op"() : () -> ()\n  return\n}')
    with pytest.raises(LoweringError, match=r"'test.op' cannot be lowered to LLVM here"):
        llvm.lower_to_llvm_ir(module)


def test_unknown_target_is_rejected() -> None:
    with pytest.raises(OptionError, match="unknown machine 'sparc'"):
        llvm.lower_to_llvm_ir(parse(SAXPY), target="sparc")


def test_mlir_opt_failure_is_its_first_error_line(need) -> None:
    need("mlir-opt", "mlir-translate")
    with pytest.raises(LoweringError) as info:
        llvm.run_mlir_opt('"func.func"() : () -> ()', "builtin.module(canonicalize)")
    message = str(info.value)
    assert message.startswith("mlir-opt failed: ") and "error" in message
    assert "\n" not in message and info.value.details


def test_missing_tool_is_named(monkeypatch) -> None:
    from pconv_mlir import toolchain

    def missing(name: str) -> str:
        raise ToolNotFoundError(f"'{name}' not found")

    monkeypatch.setattr(toolchain, "find_tool", missing)
    with pytest.raises(ToolNotFoundError, match="'mlir-opt' not found"):
        llvm.lower_to_llvm_ir(parse(SAXPY))


# ------------------------------------------------------------------------------------------------
# llvm-mca
# ------------------------------------------------------------------------------------------------


def test_llvm_mca_cycles(need) -> None:
    need("mlir-opt", "mlir-translate", "clang", "llvm-mca")
    ir = llvm.lower_to_llvm_ir(parse(DIRECT_CONV), target="aarch64")
    loop = llvm_mca_report(ir, function="conv3x3")
    whole = llvm_mca_report(ir, function="conv3x3", region="function")
    assert 0 < loop.total_cycles < whole.total_cycles
    assert loop.iterations == 100
    assert "fmla" in loop.assembly or "fmadd" in loop.assembly
    assert llvm_mca_cycles(ir, function="conv3x3") == loop.total_cycles
    # More work in the same loop shape costs more cycles.
    saxpy_ir = llvm.lower_to_llvm_ir(parse(SAXPY), target="aarch64")
    assert llvm_mca_cycles(saxpy_ir, function="dot") > 0


CRASH = """
func.func @crash(%x: memref<4xf32>) {
  %far = arith.constant 1099511627776 : index
  %v = arith.constant 1.0 : f32
  memref.store %v, %x[%far] : memref<4xf32>
  return
}
"""


def test_crash_under_qemu_is_a_run_error(need, build) -> None:
    need("qemu-aarch64")
    runner = build(CRASH, "aarch64")
    with pytest.raises(RunError, match=r"@crash under qemu failed: killed by SIGSEGV"):
        runner.call("crash", np.zeros(4, np.float32))


def test_aarch64_shared_object(need, tmp_path) -> None:
    need("mlir-opt", "mlir-translate", "clang")
    ir = llvm.lower_to_llvm_ir(parse(SAXPY), target="aarch64")
    path = compile_shared_library(ir, tmp_path / "saxpy.so", "aarch64")
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[16] == 3  # ET_DYN
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


RESOURCE_SCALE = """
func.func @scale(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = arith.constant dense_resource<scale_weights> : tensor<4xf32>
  %e = tensor.empty() : tensor<4xf32>
  %y = linalg.mul ins(%x, %w : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}
{-#
  dialect_resources: {
    builtin: {
      scale_weights: "0x040000000000803F000000400000404000008040"
    }
  }
#-}
"""


def test_a_module_in_a_context_of_its_own_lowers_with_its_weights(need) -> None:
    """Regression: the lowering read blobs from xDSL's process-wide store, so a module parsed
    into `make_context(own_resources=True)` could not be lowered."""
    need("mlir-opt", "mlir-translate", "clang")
    from pconv_mlir.ir import make_context, parse_module

    ctx = make_context(own_resources=True)
    module = parse_module(RESOURCE_SCALE, ctx)
    with build_runner(module, ctx) as runner:
        out = np.zeros(4, dtype=np.float32)
        runner.call("scale", np.ones(4, dtype=np.float32), out)
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
    with pytest.raises(LoweringError, match=r"dense_resource<scale_weights> has no data in the"):
        llvm.lower_to_llvm_ir(module, make_context(own_resources=True))

"""The OpenCL C target (`pconv_mlir.lowering.opencl`): printed kernels compile and compute.

Each module is upstream gpu/arith/math/memref/scf/vector IR with host launches. The printed
source must pass `clang-22 -x cl -cl-std=CL1.2 -fsyntax-only`; the fp32 kernels then run on the
first OpenCL platform (PoCL here) through pyopencl, driven only by `launch_description`, and
are compared with numpy on odd shapes (relative error below 1e-5), as are the kernels that
`convert-pconv-to-gpu` makes of a pattern conv (against torch). f16 kernels with native `half`
(`fp16=True`) are compile-checked only, PoCL having no cl_khr_fp16; their `fp16_emulation`
form runs and must equal numpy's float16 arithmetic. The OpenCL tests skip only when pyopencl
or an OpenCL platform is missing (under `make test` that is a failure).
"""

from __future__ import annotations

import json
import subprocess
from io import StringIO
from typing import Any

import numpy as np
import pytest

from pconv_mlir import toolchain
from pconv_mlir.elements import blob_of, storage_of
from pconv_mlir.errors import OpError, OptionError, PconvError
from pconv_mlir.ir import make_context, parse_module
from pconv_mlir.lowering.opencl import launch_description, print_opencl

RTOL = 1e-5

# A pattern of a pattern-pruned 3x3 kernel: 4 taps (row, column) of the window.
PATTERN = ((0, 1), (1, 0), (1, 1), (2, 1))


def parse(text: str):
    return parse_module(text, make_context(allow_unregistered=True))


def opencl_source(text: str, **options: bool) -> str:
    stream = StringIO()
    print_opencl(parse(text), stream, **options)
    return stream.getvalue()


def kernel(name: str, types: list[str], body: str, block: tuple[int, ...] | None = None) -> str:
    """A `gpu.func` kernel in generic form (xDSL 0.74 has no custom syntax for it)."""
    names = [f"%arg{i}" for i in range(len(types))]
    signature = ", ".join(types)
    arguments = ", ".join(f"{n}: {t}" for n, t in zip(names, types, strict=True))
    attributes = f'gpu.kernel, sym_name = "{name}"'
    if block is not None:
        attributes += f", gpu.known_block_size = array<i32: {', '.join(map(str, block))}>"
    return f"""
    "gpu.func"() <{{function_type = ({signature}) -> ()}}> ({{
    ^bb0({arguments}):
{body}
      "gpu.return"() : () -> ()
    }}) {{{attributes}}} : () -> ()"""


def launch(name: str, grid: tuple[int, int, int], block: tuple[int, int, int], args) -> str:
    """`gpu.launch_func @kernels::@name` of `args`, a list of (SSA name, type)."""
    sizes = ", ".join(f"%c{s}" for s in (*grid, *block))
    operands = "".join(f", {a}" for a, _ in args)
    types = "".join(f", {t}" for _, t in args)
    segments = f"0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, {len(args)}, 0"
    return (
        f'    "gpu.launch_func"({sizes}{operands}) <{{kernel = @kernels::@{name}, '
        f"operandSegmentSizes = array<i32: {segments}>}}> : "
        f"(index, index, index, index, index, index{types}) -> ()"
    )


def program(kernels: list[str], arguments: list[str], launches: list[str], sizes) -> str:
    """A module: one gpu.module of `kernels`, and `@main(arguments)` doing `launches`."""
    constants = "\n".join(f"    %c{s} = arith.constant {s} : index" for s in sorted(set(sizes)))
    params = ", ".join(f"%a{i}: {t}" for i, t in enumerate(arguments))
    return f"""
module attributes {{gpu.container_module}} {{
  "gpu.module"() <{{sym_name = "kernels"}}> ({{{"".join(kernels)}
  }}) : () -> ()
  func.func @main({params}) {{
{constants}
{chr(10).join(launches)}
    return
  }}
}}
"""


def conv_program(channels: int, height: int, width: int) -> str:
    """A pattern conv: out[y, x] = sum over channels and the taps of PATTERN of
    in[c, y + dy, x + dx] * w[c, tap]; one work-item per output pixel, 8x4 work-groups."""
    in_type = f"memref<{channels}x{height + 2}x{width + 2}xf32>"
    w_type = f"memref<{channels}x{len(PATTERN)}xf32>"
    out_type = f"memref<{height}x{width}xf32>"
    window = f"memref<3x3xf32, strided<[{width + 2}, 1], offset: ?>>"
    taps = []
    previous = "%acc"
    for k, (dy, dx) in enumerate(PATTERN):
        taps.append(f"""
          %t{k} = memref.load %win[%c{dy}, %c{dx}] : {window}
          %w{k} = memref.load %arg1[%ch, %c{k}] : {w_type}
          %p{k} = math.fma %t{k}, %w{k}, {previous} : f32""")
        previous = f"%p{k}"
    body = f"""
      %x = "gpu.global_id"() <{{dimension = #gpu<dim x>}}> : () -> index
      %y = "gpu.global_id"() <{{dimension = #gpu<dim y>}}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %cc = arith.constant {channels} : index
      %h = arith.constant {height} : index
      %w = arith.constant {width} : index
      %inx = arith.cmpi slt, %x, %w : index
      %iny = arith.cmpi slt, %y, %h : index
      %inside = arith.andi %inx, %iny : i1
      scf.if %inside {{
        %zero = arith.constant 0.0 : f32
        %sum = scf.for %ch = %c0 to %cc step %c1 iter_args(%acc = %zero) -> (f32) {{
          %win = memref.subview %arg0[%ch, %y, %x] [1, 3, 3] [1, 1, 1] : {in_type} to {window}
{"".join(taps)}
          scf.yield {previous} : f32
        }}
        memref.store %sum, %arg2[%y, %x] : {out_type}
      }}"""
    grid = (-(-width // 8), -(-height // 4), 1)
    return program(
        [kernel("conv", [in_type, w_type, out_type], body, block=(8, 4, 1))],
        [in_type, w_type, out_type],
        [
            launch(
                "conv",
                grid,
                (8, 4, 1),
                [(f"%a{i}", t) for i, t in enumerate([in_type, w_type, out_type])],
            )
        ],
        [*grid, 8, 4, 1],
    )


def vector_program(n: int) -> str:
    """`ys[4i:4i+4] = a * xs[4i:4i+4] + ys[...]` and `sums[i] = sum of those 4`, then a local
    memory reduction: `groups[g]` = the sum of `ys` over work-group g (16 work-items)."""
    quads = n // 4
    groups = -(-n // 16)
    vector_body = f"""
      %i = "gpu.global_id"() <{{dimension = #gpu<dim x>}}> : () -> index
      %c4 = arith.constant 4 : index
      %cq = arith.constant {quads} : index
      %inside = arith.cmpi slt, %i, %cq : index
      scf.if %inside {{
        %off = arith.muli %i, %c4 : index
        %vx = vector.load %arg1[%off] : memref<{n}xf32>, vector<4xf32>
        %vy = vector.load %arg2[%off] : memref<{n}xf32>, vector<4xf32>
        %va = vector.broadcast %arg0 : f32 to vector<4xf32>
        %r = vector.fma %va, %vx, %vy : vector<4xf32>
        vector.store %r, %arg2[%off] : memref<{n}xf32>, vector<4xf32>
        %half = arith.constant dense<0.5> : vector<4xf32>
        %scaled = arith.mulf %r, %half : vector<4xf32>
        %last = vector.extract %scaled[3] : f32 from vector<4xf32>
        %twice = arith.addf %last, %last : f32
        %r1 = vector.insert %twice, %scaled [3] : f32 into vector<4xf32>
        %total = vector.reduction <add>, %r1 : vector<4xf32> into f32
        memref.store %total, %arg3[%i] : memref<{quads}xf32>
      }}"""
    local_body = f"""
      %t = "gpu.thread_id"() <{{dimension = #gpu<dim x>}}> : () -> index
      %g = "gpu.block_id"() <{{dimension = #gpu<dim x>}}> : () -> index
      %bs = "gpu.block_dim"() <{{dimension = #gpu<dim x>}}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c16 = arith.constant 16 : index
      %cn = arith.constant {n} : index
      %tile = memref.alloca() : memref<16xf32, #gpu.address_space<workgroup>>
      %base = arith.muli %g, %bs : index
      %i = arith.addi %base, %t : index
      %inside = arith.cmpi slt, %i, %cn : index
      %zero = arith.constant 0.0 : f32
      %v = scf.if %inside -> (f32) {{
        %x = memref.load %arg0[%i] : memref<{n}xf32>
        scf.yield %x : f32
      }} else {{
        scf.yield %zero : f32
      }}
      memref.store %v, %tile[%t] : memref<16xf32, #gpu.address_space<workgroup>>
      "gpu.barrier"() : () -> ()
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {{
        %s = scf.for %k = %c0 to %c16 step %c1 iter_args(%acc = %zero) -> (f32) {{
          %e = memref.load %tile[%k] : memref<16xf32, #gpu.address_space<workgroup>>
          %acc1 = arith.addf %acc, %e : f32
          scf.yield %acc1 : f32
        }}
        memref.store %s, %arg1[%g] : memref<{groups}xf32>
      }}"""
    vec = f"memref<{n}xf32>"
    return program(
        [
            kernel("saxpy4", ["f32", vec, vec, f"memref<{quads}xf32>"], vector_body),
            kernel("group_sum", [vec, f"memref<{groups}xf32>"], local_body, block=(16, 1, 1)),
        ],
        ["f32", vec, vec, f"memref<{quads}xf32>", f"memref<{groups}xf32>"],
        [
            launch(
                "saxpy4",
                (-(-quads // 8), 1, 1),
                (8, 1, 1),
                [("%a0", "f32"), ("%a1", vec), ("%a2", vec), ("%a3", f"memref<{quads}xf32>")],
            ),
            launch(
                "group_sum",
                (groups, 1, 1),
                (16, 1, 1),
                [("%a2", vec), ("%a4", f"memref<{groups}xf32>")],
            ),
        ],
        [-(-quads // 8), 8, 1, groups, 16],
    )


def scalar_program(n: int) -> str:
    """Integer and float scalar ops, a loop that swaps two carried values (a parallel
    assignment), one that runs a Fibonacci recurrence, affine maps on negative values (their
    division and modulo round down), constant tables (`memref.global`): out[i] = f(i)."""
    body = f"""
      %i = "gpu.global_id"() <{{dimension = #gpu<dim x>}}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c3 = arith.constant 3 : index
      %cn = arith.constant {n} : index
      %inside = arith.cmpi ult, %i, %cn : index
      scf.if %inside {{
        %ii = arith.index_cast %i : index to i32
        %f = arith.sitofp %ii : i32 to f32
        %one = arith.constant 1.0 : f32
        %zero = arith.constant 0.0 : f32
        %pair:2 = scf.for %k = %c0 to %i step %c1 iter_args(%a = %zero, %b = %one) -> (f32, f32) {{
          scf.yield %b, %a : f32, f32
        }}
        %fib:2 = scf.for %k = %c0 to %c3 step %c1 iter_args(%p = %one, %q = %f) -> (f32, f32) {{
          %next = arith.addf %p, %q : f32
          scf.yield %q, %next : f32, f32
        }}
        %r = arith.remsi %i, %c3 : index
        %odd = arith.cmpi eq, %r, %c1 : index
        %m = arith.select %odd, %pair#0, %pair#1 : f32
        %neg = arith.negf %f : f32
        %mx = arith.maximumf %neg, %zero : f32
        %sq = math.sqrt %f : f32
        %e = math.exp %zero : f32
        %t1 = arith.addf %fib#1, %m : f32
        %t2 = arith.addf %t1, %mx : f32
        %t3 = arith.addf %t2, %sq : f32
        %t4 = arith.subf %t3, %e : f32
        %lt = arith.cmpf olt, %t4, %f : f32
        %res = scf.if %lt -> (f32) {{
          %d = arith.divf %t4, %f : f32
          scf.yield %d : f32
        }} else {{
          scf.yield %t4 : f32
        }}
        %cm20 = arith.constant -20 : index
        %shifted = arith.addi %i, %cm20 : index
        %af = affine.apply affine_map<(d0)[s0] -> (d0 * 4 + s0 floordiv 3 - s0 mod 4 + s0 ceildiv 5)>(%i)[%shifted]
        %am = affine.min affine_map<(d0) -> (d0, 50, d0 floordiv 2 + 30)>(%af)
        %ai = arith.index_cast %am : index to i32
        %a32 = arith.sitofp %ai : i32 to f32
        %out = arith.addf %res, %a32 : f32
        %lut = memref.get_global @lut : memref<5xi32>
        %scale = memref.get_global @scale : memref<3xf32>
        %c5 = arith.constant 5 : index
        %r5 = arith.remui %i, %c5 : index
        %entry = memref.load %lut[%r5] : memref<5xi32>
        %fentry = arith.sitofp %entry : i32 to f32
        %half = memref.load %scale[%c1] : memref<3xf32>
        %looked = arith.mulf %fentry, %half : f32
        %final = arith.addf %out, %looked : f32
        memref.store %final, %arg0[%i] : memref<{n}xf32>
      }}"""
    out = f"memref<{n}xf32>"
    tables = """
    "memref.global"() <{sym_name = "lut", sym_visibility = "private", type = memref<5xi32>,
        initial_value = dense<[3, -1, 4, 1, 5]> : tensor<5xi32>, constant}> : () -> ()
    "memref.global"() <{sym_name = "scale", sym_visibility = "private", type = memref<3xf32>,
        initial_value = dense<0.5> : tensor<3xf32>, constant}> : () -> ()"""
    return program(
        [kernel("scalars", [out], body, block=(16, 1, 1)), tables],  # tables after their use
        [out],
        [launch("scalars", (-(-n // 16), 1, 1), (16, 1, 1), [("%a0", out)])],
        [-(-n // 16), 16, 1],
    )


def scalar_reference(n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for i in range(n):
        f = np.float32(i)
        a, b = np.float32(0), np.float32(1)
        for _ in range(i):
            a, b = b, a
        p, q = np.float32(1), f
        for _ in range(3):
            p, q = q, p + q
        m = a if i % 3 == 1 else b
        t4 = q + m + max(-f, np.float32(0)) + np.sqrt(f) - np.float32(1)
        s = i - 20
        af = i * 4 + s // 3 - s % 4 - (-s // 5)
        out[i] = (t4 / f if t4 < f else t4) + min(af, 50, af // 2 + 30)
        out[i] += [3, -1, 4, 1, 5][i % 5] * 0.5
    return out


HALF_BODY = """
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %off = arith.muli %i, %c4 : index
      %v = vector.load %arg0[%off] : memref<40xf16>, vector<4xf16>
      %vf = arith.extf %v : vector<4xf16> to vector<4xf32>
      %vs = vector.broadcast %arg2 : f32 to vector<4xf32>
      %m = arith.mulf %vf, %vs : vector<4xf32>
      %h = arith.truncf %m : vector<4xf32> to vector<4xf16>
      vector.store %h, %arg1[%off] : memref<40xf16>, vector<4xf16>
      %c = arith.constant dense<[1.0, 2.0, 0.5, 0.3]> : vector<4xf16>
      %hs = arith.mulf %v, %c : vector<4xf16>
      %lt = "arith.cmpf"(%hs, %h) <{predicate = 4 : i64, fastmath = #arith.fastmath<none>}> : (vector<4xf16>, vector<4xf16>) -> vector<4xi1>
      %sel = "arith.select"(%lt, %hs, %h) : (vector<4xi1>, vector<4xf16>, vector<4xf16>) -> vector<4xf16>
      %x = vector.extract %sel[1] : f16 from vector<4xf16>
      %zero = arith.constant 0.0 : f16
      %sum = scf.for %k = %c0 to %c4 step %c1 iter_args(%acc = %zero) -> (f16) {
        %j = arith.addi %off, %k : index
        %e = memref.load %arg0[%j] : memref<40xf16>
        %p = arith.mulf %e, %x : f16
        %a = arith.addf %acc, %p : f16
        scf.yield %a : f16
      }
      %table = memref.get_global @weights : memref<4xf16>
      %w1 = memref.load %table[%c1] : memref<4xf16>
      %scaled = arith.mulf %sum, %w1 : f16
      memref.store %scaled, %arg1[%off] : memref<40xf16>"""
HALF_TYPES = ["memref<40xf16>", "memref<40xf16>", "f32"]
HALF_TABLE = """
    "memref.global"() <{sym_name = "weights", sym_visibility = "private", type = memref<4xf16>,
        initial_value = dense<[0.1, 0.2, 0.3, 0.4]> : tensor<4xf16>, constant}> : () -> ()"""
HALF_PROGRAM = program(
    [HALF_TABLE, kernel("hscale", HALF_TYPES, HALF_BODY)],
    HALF_TYPES,
    [launch("hscale", (2, 1, 1), (5, 1, 1), [(f"%a{i}", t) for i, t in enumerate(HALF_TYPES)])],
    [2, 5, 1],
)
"""f16 storage and arithmetic: out[4i:4i+4] = half(in[4i:4i+4] * s), then out[4i] = a sum in
half precision of in[4i + k] * x (x: an element picked by a vector compare and select) times
a half constant of a `memref.global` table."""


def half_reference(inp: np.ndarray, s: np.float32) -> np.ndarray:
    """What HALF_PROGRAM computes, in numpy float16 (each op rounded to half)."""
    out = np.zeros_like(inp)
    c = np.array([1.0, 2.0, 0.5, 0.3], np.float16)
    for i in range(len(inp) // 4):
        v = inp[4 * i : 4 * i + 4]
        h = (v.astype(np.float32) * s).astype(np.float16)
        out[4 * i : 4 * i + 4] = h
        hs = v * c
        x = np.where(hs < h, hs, h)[1]
        acc = np.float16(0)
        for k in range(4):
            acc = np.float16(acc + np.float16(v[k] * x))
        out[4 * i] = np.float16(acc * np.float16(0.2))
    return out


# -- compiling -------------------------------------------------------------------------------


def clang_syntax_check(source: str, *extra: str) -> None:
    clang = toolchain.find_tool("clang")
    result = subprocess.run(
        [clang, "-x", "cl", "-cl-std=CL1.2", "-fsyntax-only", "-Werror", *extra, "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + "\n" + source


PROGRAMS = {
    "conv_13x11": lambda: conv_program(2, 13, 11),
    "conv_5x7": lambda: conv_program(3, 5, 7),
    "vector_143": lambda: vector_program(143),
    "scalars_37": lambda: scalar_program(37),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_printed_source_is_opencl_c_1_2(name, need_tool):
    need_tool("clang")
    source = opencl_source(PROGRAMS[name]())
    assert "#pragma" not in source
    clang_syntax_check(source)


def test_half_source_compiles_with_cl_khr_fp16(need_tool):
    """Native f16 kernels (`fp16=True`): compile-checked only. PoCL here has no cl_khr_fp16,
    so they cannot run; the source must pass clang-22's OpenCL C 1.2 check with the extension
    enabled. Their numbers are checked through `fp16_emulation` below."""
    need_tool("clang")
    source = opencl_source(HALF_PROGRAM, fp16=True)
    assert source.splitlines()[1] == "#pragma OPENCL EXTENSION cl_khr_fp16 : enable"
    assert "__global const half *arg0" in source
    assert "const int4 lt = convert_int4(hs < h);" in source
    assert "select(h, hs, convert_short4(lt))" in source  # lt ? hs : h
    clang_syntax_check(source)
    clang_syntax_check(source, "-Xclang", "-cl-ext=+cl_khr_fp16")


def test_emulated_half_needs_no_extension(need_tool):
    need_tool("clang")
    source = opencl_source(HALF_PROGRAM, fp16_emulation=True)
    assert "#pragma" not in source
    assert "const float4 v = vload_half4(0, arg0 + off);" in source
    assert "const float a = pconv_round_half(sum + p);" in source
    clang_syntax_check(source, "-Xclang", "-cl-ext=-cl_khr_fp16")


def test_half_needs_an_option():
    with pytest.raises(OpError, match="uses f16, which needs the fp16 option"):
        opencl_source(HALF_PROGRAM)


def test_unsupported_op_is_a_located_diagnostic():
    text = program(
        [
            kernel(
                "sg",
                ["memref<4xindex>"],
                """
      %sg = "gpu.subgroup_id"() : () -> index
      %c0 = arith.constant 0 : index
      memref.store %sg, %arg0[%c0] : memref<4xindex>""",
            )
        ],
        [],
        [],
        [],
    )
    with pytest.raises(PconvError) as error:
        opencl_source(text)
    assert str(error.value).endswith(
        "error: 'gpu.subgroup_id' op cannot be printed as OpenCL C 1.2"
    )
    assert str(error.value).startswith("<string>:")


def test_launch_description_names_buffers_and_sizes():
    description = launch_description(parse(vector_program(143)))
    saxpy, group_sum = description["launches"]
    assert saxpy["kernel"] == "saxpy4" and saxpy["global_size"] == [40, 1, 1]
    assert saxpy["local_size"] == [8, 1, 1]
    assert saxpy["args"][0] == {"scalar": "float", "bytes": 4, "argument": 0}
    assert group_sum["global_size"] == [144, 1, 1]
    ys = description["buffers"][saxpy["args"][2]["buffer"]]
    assert ys == {
        "id": 1,
        "function": "main",
        "origin": "argument",
        "argument": 2,
        "dtype": "float32",
        "shape": [143],
        "bytes": 572,
    }
    assert group_sum["args"][0]["buffer"] == ys["id"]
    kernels = {k["name"]: k for k in description["kernels"]}
    assert [a["access"] for a in kernels["saxpy4"]["args"][1:]] == ["read", "read_write", "write"]


# -- running on OpenCL -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def opencl(need):
    """(context, queue) on the first device of the first OpenCL platform."""
    try:
        import pyopencl as cl
    except ImportError:
        need("pyopencl is not installed (pip install -e '.[test]')")
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    devices = [d for p in platforms for d in p.get_devices()]
    if not devices:
        need("no OpenCL platform (install pocl-opencl-icd)")
    context = cl.Context([devices[0]])
    return context, cl.CommandQueue(context)


_NUMPY = {"float": np.float32, "int": np.int32, "half": np.float16, "long": np.int64}


def run(text: str, arguments: list[Any], opencl, **options: bool) -> list[Any]:
    """Run `@main(*arguments)` of `text` on OpenCL (see `execute`); the arguments' values
    afterwards (arrays are written back)."""
    return execute(parse(text), None, arguments, opencl, **options)[0]


def execute(module, ctx, arguments: list[Any], opencl, **options: bool):
    """Run the host function of `module` on OpenCL from the printed source (`options` of
    `print_opencl`) and the launch description alone: (the arguments after the run, arrays
    written back; {result index: array} for the buffers the function returns). `ctx` holds
    the data of `dense_resource` constants."""
    import pyopencl as cl

    context, queue = opencl
    stream = StringIO()
    print_opencl(module, stream, **options)
    built = cl.Program(context, stream.getvalue()).build(options=["-cl-std=CL1.2"])
    description = launch_description(module)
    flags = cl.mem_flags
    buffers = {}
    for buffer in description["buffers"]:
        if buffer["origin"] in ("argument", "constant"):
            if buffer["origin"] == "argument":
                host = np.ascontiguousarray(arguments[buffer["argument"]])
            elif "data" in buffer:
                host = np.array(buffer["data"], buffer["dtype"])
            else:
                blob = blob_of(storage_of(ctx), buffer["resource"])  # raw bytes
                host = np.ascontiguousarray(blob.data).view(buffer["dtype"])
            assert host.nbytes == buffer["bytes"] and str(host.dtype) == buffer["dtype"]
            buffers[buffer["id"]] = cl.Buffer(
                context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=host
            )
        else:
            assert buffer["origin"] == "alloc"
            buffers[buffer["id"]] = cl.Buffer(context, flags.READ_WRITE, buffer["bytes"])
    for step in description["launches"]:
        values = []
        for arg in step["args"]:
            if "buffer" in arg:
                values.append(buffers[arg["buffer"]])
            else:
                value = arguments[arg["argument"]] if "argument" in arg else arg["value"]
                values.append(_NUMPY[arg["scalar"]](value))
        getattr(built, step["kernel"])(queue, step["global_size"], step["local_size"], *values)
    after, results = list(arguments), {}
    for buffer in description["buffers"]:
        if buffer["origin"] == "argument":
            after[buffer["argument"]] = out = np.empty_like(arguments[buffer["argument"]])
            cl.enqueue_copy(queue, out, buffers[buffer["id"]])
        elif "result" in buffer:
            results[buffer["result"]] = out = np.empty(buffer["shape"], buffer["dtype"])
            cl.enqueue_copy(queue, out, buffers[buffer["id"]])
    queue.finish()
    return after, results


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


@pytest.mark.parametrize("channels, height, width", [(2, 13, 11), (3, 5, 7), (1, 9, 17)])
def test_pattern_conv_runs(channels, height, width, opencl):
    rng = np.random.default_rng(height * width)
    x = rng.standard_normal((channels, height + 2, width + 2)).astype(np.float32)
    w = rng.standard_normal((channels, len(PATTERN))).astype(np.float32)
    out = np.full((height, width), np.nan, np.float32)
    _, _, got = run(conv_program(channels, height, width), [x, w, out], opencl)
    want = np.zeros((height, width), np.float64)
    for c in range(channels):
        for k, (dy, dx) in enumerate(PATTERN):
            want += w[c, k] * x[c, dy : dy + height, dx : dx + width]
    assert relative_error(got, want) < RTOL


def test_vector_and_local_memory_kernels_run(opencl):
    n = 143
    rng = np.random.default_rng(1)
    a = np.float32(0.75)
    xs, ys = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    quads, groups = n // 4, -(-n // 16)
    sums = np.zeros(quads, np.float32)
    group_sums = np.zeros(groups, np.float32)
    _, _, got_ys, got_sums, got_groups = run(
        vector_program(n), [a, xs, ys, sums, group_sums], opencl
    )
    want_ys = ys.astype(np.float64)
    want_ys[: 4 * quads] += a * xs[: 4 * quads]
    assert relative_error(got_ys, want_ys) < RTOL
    scaled = 0.5 * want_ys[: 4 * quads].reshape(quads, 4)
    scaled[:, 3] *= 2
    assert relative_error(got_sums, scaled.sum(axis=1)) < RTOL
    padded = np.zeros(16 * groups)
    padded[:n] = want_ys
    assert relative_error(got_groups, padded.reshape(groups, 16).sum(axis=1)) < RTOL


def test_scalar_ops_and_carried_values_run(opencl):
    n = 37
    (got,) = run(scalar_program(n), [np.zeros(n, np.float32)], opencl)
    assert relative_error(got, scalar_reference(n)) < RTOL


def test_emulated_half_runs_like_numpy_float16(opencl):
    """f16 on a device without cl_khr_fp16: `fp16_emulation` rounds every op to half, so the
    result is numpy's float16 arithmetic exactly."""
    rng = np.random.default_rng(7)
    inp = rng.standard_normal(40).astype(np.float16)
    s = np.float32(1.7)
    _, got, _ = run(HALF_PROGRAM, [inp, np.zeros(40, np.float16), s], opencl, fp16_emulation=True)
    want = half_reference(inp, s)
    np.testing.assert_array_equal(got, want)


def test_emulated_rounding_is_numpy_float16_everywhere(opencl):
    """The emulation's `pconv_round_half` (scalar and vector) against numpy's float32 ->
    float16 on ties, the largest half and the first value that overflows, subnormals and their
    ties, infinities, NaN, zeros of both signs and random values over 2^-30 .. 2^20."""
    import pyopencl as cl

    source = opencl_source(HALF_PROGRAM, fp16_emulation=True)
    helpers = source[source.index("float pconv_round_half(") : source.index("__kernel")]
    assert "float4 pconv_round_half4(" in helpers
    kernel_source = (
        helpers
        + """
__kernel void round_all(__global const float *x, __global float *y, __global float *y4) {
  const size_t i = get_global_id(0);
  y[i] = pconv_round_half(x[i]);
  if (i % 4 == 0) vstore4(pconv_round_half4(vload4(0, x + i)), 0, y4 + i);
}
"""
    )
    special = [0.0, -0.0, 1.0, 1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 65504.0, 65519.0,
               65520.0, -65520.0, 1e5, 2**-14, 2**-14 - 2**-26, 2**-24, 2**-25, 3 * 2**-25,
               2**-26, 1e-8, -3.3, np.inf, -np.inf, np.nan]  # fmt: skip
    rng = np.random.default_rng(11)
    randoms = rng.standard_normal(1000) * np.exp2(rng.uniform(-30, 20, 1000))
    x = np.concatenate([special, randoms, [0.0] * (-(len(special) + 1000) % 4)])
    x = x.astype(np.float32)
    context, queue = opencl
    program = cl.Program(context, kernel_source).build(options=["-cl-std=CL1.2"])
    flags = cl.mem_flags
    xb = cl.Buffer(context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=x)
    y, y4 = np.empty_like(x), np.empty_like(x)
    yb = cl.Buffer(context, flags.WRITE_ONLY, y.nbytes)
    y4b = cl.Buffer(context, flags.WRITE_ONLY, y4.nbytes)
    program.round_all(queue, (len(x),), None, xb, yb, y4b)
    cl.enqueue_copy(queue, y, yb)
    cl.enqueue_copy(queue, y4, y4b)
    want = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(y4, want)
    assert np.array_equal(np.signbit(y), np.signbit(want))


ALL_OPS_BODY = """
      %i = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
      %t = "gpu.thread_id"() <{dimension = #gpu<dim y>}> : () -> index
      %g = "gpu.block_id"() <{dimension = #gpu<dim z>}> : () -> index
      %gd = "gpu.grid_dim"() <{dimension = #gpu<dim x>}> : () -> index
      %c0 = arith.constant 0 : index
      %c3 = arith.constant 3 : index
      %m5 = arith.constant -5 : i32
      %ii = arith.index_cast %i : index to i32
      %a = arith.addi %ii, %m5 : i32
      %b = arith.subi %a, %ii : i32
      %c = arith.muli %a, %b : i32
      %d = arith.divsi %c, %m5 : i32
      %e = arith.divui %c, %m5 : i32
      %f = arith.remsi %c, %m5 : i32
      %h = arith.remui %c, %m5 : i32
      %j = arith.floordivsi %c, %m5 : i32
      %k = arith.ceildivsi %c, %m5 : i32
      %l = arith.ceildivui %c, %m5 : i32
      %m = arith.andi %j, %k : i32
      %n = arith.ori %m, %l : i32
      %o = arith.xori %n, %h : i32
      %p = arith.shli %o, %ii : i32
      %q = arith.shrsi %p, %ii : i32
      %r = arith.shrui %q, %ii : i32
      %s = arith.maxsi %r, %f : i32
      %u = arith.minui %s, %e : i32
      %v = arith.minsi %u, %d : i32
      %w = arith.maxui %v, %d : i32
      %lt = arith.cmpi ult, %w, %v : i32
      %ext = arith.extui %lt : i1 to i32
      %exts = arith.extsi %lt : i1 to i64
      %tr = arith.trunci %exts : i64 to i16
      %x = arith.sitofp %w : i32 to f32
      %y = arith.uitofp %tr : i16 to f32
      %z = arith.fptosi %y : f32 to i32
      %zu = arith.fptoui %x : f32 to i64
      %bits = arith.bitcast %x : f32 to i32
      %sum = arith.addi %z, %bits : i32
      %fl = arith.sitofp %sum : i32 to f32
      %fa = arith.divf %fl, %x : f32
      %fb = arith.subf %fa, %y : f32
      %fc = arith.negf %fb : f32
      %fd = arith.maximumf %fc, %fb : f32
      %fe = arith.minnumf %fd, %fa : f32
      %u1 = math.absf %fe : f32
      %u2 = math.sqrt %u1 : f32
      %u3 = math.rsqrt %u2 : f32
      %u4 = math.exp %u3 : f32
      %u5 = math.exp2 %u4 : f32
      %u6 = math.log %u5 : f32
      %u7 = math.log2 %u6 : f32
      %u8 = math.tanh %u7 : f32
      %u9 = math.sin %u8 : f32
      %u10 = math.cos %u9 : f32
      %u11 = math.floor %u10 : f32
      %u12 = math.ceil %u11 : f32
      %u13 = math.roundeven %u12 : f32
      %u14 = math.erf %u13 : f32
      %u15 = math.powf %u14, %u13 : f32
      %u16 = math.fma %u15, %u14, %u13 : f32
      %u17 = math.copysign %u16, %fc : f32
      %ai = math.absi %sum : i32
      %pop = math.ctpop %ai : i32
      %p1 = arith.cmpf oeq, %u17, %u16 : f32
      %p2 = arith.cmpf one, %u17, %u16 : f32
      %p3 = arith.cmpf ord, %u17, %u16 : f32
      %p4 = arith.cmpf ueq, %u17, %u16 : f32
      %p5 = arith.cmpf ugt, %u17, %u16 : f32
      %p6 = arith.cmpf uno, %u17, %u16 : f32
      %p7 = arith.cmpf true, %u17, %u16 : f32
      %q1 = arith.andi %p1, %p2 : i1
      %q2 = arith.ori %q1, %p3 : i1
      %q3 = arith.xori %q2, %p4 : i1
      %q4 = arith.andi %q3, %p5 : i1
      %q5 = arith.ori %q4, %p6 : i1
      %q6 = arith.andi %q5, %p7 : i1
      %sel = arith.select %q6, %u17, %fl : f32
      %va = vector.broadcast %sel : f32 to vector<8xf32>
      %vb = arith.constant dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]> : vector<8xf32>
      %vc = arith.mulf %va, %vb : vector<8xf32>
      %vmax = vector.reduction <maxnumf>, %vc : vector<8xf32> into f32
      %vsh = vector.shuffle %vc, %vb [15, 0, 3] : vector<8xf32>, vector<8xf32>
      %v3 = vector.reduction <mul>, %vsh, %vmax : vector<3xf32> into f32
      %vi = vector.broadcast %tr : i16 to vector<16xi16>
      %vj = arith.constant dense<3> : vector<16xi16>
      %vmask = "arith.cmpi"(%vi, %vj) <{predicate = 2 : i64}> : (vector<16xi16>, vector<16xi16>) -> vector<16xi1>
      %vsel = "arith.select"(%vmask, %vi, %vj) : (vector<16xi1>, vector<16xi16>, vector<16xi16>) -> vector<16xi16>
      %ones = arith.constant dense<1> : vector<16xi32>
      %zeros = arith.constant dense<0> : vector<16xi32>
      %vext = "arith.select"(%vmask, %ones, %zeros) : (vector<16xi1>, vector<16xi32>, vector<16xi32>) -> vector<16xi32>
      %vsum = vector.reduction <add>, %vext : vector<16xi32> into i32
      %e15 = vector.extract %vsel[15] : i16 from vector<16xi16>
      %priv = memref.alloca() : memref<2x3xf32>
      memref.store %v3, %priv[%c0, %c3] : memref<2x3xf32>
      %back = memref.load %priv[%c0, %c3] : memref<2x3xf32>
      %flat = memref.collapse_shape %arg0 [[0, 1]] : memref<4x8xf32> into memref<32xf32>
      %pair = vector.load %flat[%i] : memref<32xf32>, vector<2xf32>
      %pe = vector.extract %pair[1] : f32 from vector<2xf32>
      %tot = arith.addf %back, %pe : f32
      %part = memref.reinterpret_cast %arg1 to offset: [4], sizes: [3, 4], strides: [4, 1] : memref<16xf32> to memref<3x4xf32, strided<[4, 1], offset: 4>>
      memref.store %tot, %part[%t, %g] : memref<3x4xf32, strided<[4, 1], offset: 4>>
      %ie = arith.extsi %e15 : i16 to i32
      %iv = arith.addi %ie, %vsum : i32
      %iw = arith.addi %iv, %pop : i32
      %ix = arith.addi %iw, %ext : i32
      %gi = arith.index_cast %gd : index to i32
      %iy = arith.addi %ix, %gi : i32
      %zi = arith.trunci %zu : i64 to i32
      %iz = arith.addi %iy, %zi : i32
      memref.store %iz, %arg2[%i] : memref<8xi32>"""


def test_every_printed_op_is_opencl_c_1_2(need_tool):
    """One kernel with the integer, float, comparison, cast, math, vector and memref ops the
    printer takes; clang-22 must accept what it prints."""
    need_tool("clang")
    types = ["memref<4x8xf32>", "memref<16xf32>", "memref<8xi32>"]
    source = opencl_source(program([kernel("all_ops", types, ALL_OPS_BODY)], types, [], []))
    assert "const ushort16" not in source and "convert_int16(vi < vj)" in source
    assert "const int16 vext = select(zeros, ones, vmask);" in source
    clang_syntax_check(source)


def test_targets_print_source_and_json():
    """`-t opencl` and `-t opencl-launch` as pconv-opt finds them (pconv_mlir.backends)."""
    from xdsl.utils.arg_spec import parse_spec

    from pconv_mlir.backends import get_all_targets

    module = parse(vector_program(143))
    targets = get_all_targets()
    out = StringIO()
    targets["opencl"]().from_spec(parse_spec("opencl")).emit(make_context(), module, out)
    assert out.getvalue() == opencl_source(vector_program(143))
    out = StringIO()
    targets["opencl-launch"]().from_spec(parse_spec("opencl-launch")).emit(
        make_context(), module, out
    )
    assert json.loads(out.getvalue()) == launch_description(module)
    with pytest.raises(OptionError, match="exclude each other"):
        opencl_source(HALF_PROGRAM, fp16=True, fp16_emulation=True)


@pytest.mark.parametrize(
    "channels, filters, stride, padding, schedule",
    [
        (5, 7, 1, 1, ""),
        (
            5,
            7,
            2,
            1,
            "gpu_block_pixels=3 gpu_filters_per_item=2 gpu_workgroup_x=4 gpu_workgroup_y=2",
        ),
        (5, 7, 1, 0, "gpu_block_pixels=1"),
        (24, 36, 1, 1, ""),  # weights of more than 4 KB: a dense_resource constant
        # The input staged in local memory, work-groups overhanging the output both ways.
        (5, 7, 1, 1, "gpu_stage_input=1 gpu_workgroup_x=2 gpu_workgroup_y=4"),
        (5, 7, 2, 1, "gpu_stage_input=1 gpu_block_pixels=3 gpu_filters_per_item=3"),
    ],
)
def test_convert_pconv_to_gpu_kernels_run(channels, filters, stride, padding, schedule, opencl):
    """A pattern-pruned conv (13x11, ReLU) through convert-pconv-to-gpu, printed as OpenCL C
    and run from the launch description alone, gives torch's conv2d of the masked dense
    weights."""
    torch = pytest.importorskip("torch")
    from pconv_mlir.builders import conv2d_module, random_pattern_layer
    from pconv_mlir.pipeline import Pipeline

    rng = np.random.default_rng(stride * 10 + padding)
    patterns, ids, weight = random_pattern_layer(rng, filters, channels, k=4, rate=1.5)
    bias = rng.standard_normal(filters).astype(np.float32)
    x = rng.standard_normal((1, channels, 13, 11)).astype(np.float32)
    module = conv2d_module(
        x.shape, weight, bias, patterns, ids, (stride,) * 2, (padding,) * 2, (1, 1), relu=True
    )
    ctx = make_context()
    passes = f"pconv-fkr{{group_size=4}},pconv-fkw-pack{{{schedule}}},convert-pconv-to-gpu"
    Pipeline(passes).run(module, ctx)
    _, results = execute(module, ctx, [x, bias], opencl)
    want = torch.relu(
        torch.nn.functional.conv2d(
            torch.from_numpy(x).double(),
            torch.from_numpy(weight).double(),
            torch.from_numpy(bias).double(),
            stride=stride,
            padding=padding,
        )
    ).numpy()
    assert relative_error(results[0], want) < RTOL

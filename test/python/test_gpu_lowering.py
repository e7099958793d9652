"""convert-pconv-to-gpu's kernels through upstream MLIR: every emitted `gpu.module` becomes a
SPIR-V module (Kernel capability, OpenCL memory model) that `spirv-val --target-env opencl1.2`
accepts, and that SPIR-V, turned into SPIR 1.2 bitcode by `llvm-spirv-15 -r`, computes torch's
conv2d on the masked dense weights when PoCL runs it through pyopencl."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from xdsl.dialects import arith, bufferization, func, gpu, memref
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.ir import SSAValue

from pconv_mlir import toolchain
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import FkwConv2dOp, conv_output_shape
from pconv_mlir.elements import constant_value
from pconv_mlir.ir import make_context, print_module
from pconv_mlir.pipeline import Pipeline

# Upstream: the target environment of an OpenCL kernel (Kernel capability, physical 64-bit
# addresses), default memory space as CrossWorkgroup (global), kernels to SPIR-V, then the ABI
# attributes lowered and the module's version, capabilities and extensions deduced.
SPIRV_PIPELINE = (
    "builtin.module(spirv-attach-target{ver=v1.0 caps=Kernel,Addresses,Int64},"
    "map-memref-spirv-storage-class{client-api=opencl},"
    "convert-gpu-to-spirv{use-64bit-index=true},"
    "gpu.module(spirv.module(spirv-lower-abi-attrs,spirv-update-vce)))"
)

CASES = [
    # C=5, F=7, 13x11, stride 1, padding 1: the pad kernel; 7 filters in blocks of 4 (the
    # last one short); 11 columns in blocks of 4 (the last one short).
    dict(n=1, c=5, f=7, h=13, w=11, stride=1, padding=1, bias=True, act="relu", schedule={}),
    # Stride 2, two images, 3 pixels x 2 filters per work-item, work-groups of 4 x 2.
    dict(
        n=2,
        c=5,
        f=7,
        h=13,
        w=11,
        stride=2,
        padding=1,
        bias=False,
        act="relu6",
        schedule=dict(
            gpu_block_pixels=3, gpu_filters_per_item=2, gpu_workgroup_x=4, gpu_workgroup_y=2
        ),
    ),
    # No padding and whole pixel blocks: the conv reads its input directly. A residual, and
    # channel blocks of 2 (a loop over the blocks around the pattern runs).
    dict(
        n=1,
        c=3,
        f=5,
        h=9,
        w=10,
        stride=1,
        padding=0,
        bias=True,
        act="relu",
        residual=True,
        schedule=dict(tile_channels=2, gpu_filters_per_item=1),
    ),
    # Stride 2 without padding, but the last pixel block reads past the input's right edge:
    # the pad kernel only widens the input. One pixel per work-item.
    dict(
        n=1,
        c=4,
        f=3,
        h=8,
        w=12,
        stride=2,
        padding=0,
        bias=False,
        act=None,
        schedule=dict(gpu_block_pixels=1, gpu_workgroup_x=8, gpu_workgroup_y=8),
    ),
]


def random_case(rng: np.random.Generator) -> dict:
    """Batch 1..2, channels and filters 1..9, H/W 1..14, stride 1/2, padding 0/1, dilation 1/2,
    K 1..4 patterns, bias, ReLU/ReLU6/none, a residual, channel blocks of 2 or 3 or none, and
    1..5 pixels x 1..4 filters per work-item in work-groups of 1..8 x 1..8, input staged in
    local memory or not."""
    while True:
        h, w = (int(v) for v in rng.integers(1, 15, size=2))
        stride, padding, dilation = (int(v) for v in rng.integers(1, 3, size=3) - [0, 1, 0])
        if min(h, w) + 2 * padding > 2 * dilation:
            break
    return dict(
        n=int(rng.integers(1, 3)),
        c=int(rng.integers(1, 10)),
        f=int(rng.integers(1, 10)),
        h=h,
        w=w,
        stride=stride,
        padding=padding,
        dilation=dilation,
        k=int(rng.integers(1, 5)),
        bias=bool(rng.integers(0, 2)),
        act=[None, "relu", "relu6"][int(rng.integers(0, 3))],
        residual=bool(rng.integers(0, 2)),
        schedule=dict(
            tile_channels=int(rng.choice([0, 0, 2, 3])),
            gpu_block_pixels=int(rng.integers(1, 6)),
            gpu_filters_per_item=int(rng.integers(1, 5)),
            gpu_workgroup_x=int(rng.integers(1, 9)),
            gpu_workgroup_y=int(rng.integers(1, 9)),
            gpu_stage_input=int(rng.integers(0, 2)),
        ),
    )


CASES += [random_case(np.random.default_rng(4000 + i)) for i in range(8)]
# A CIFAR-size layer on the default GPU schedule, 8 patterns.
CASES.append(
    dict(n=1, c=24, f=36, h=16, w=16, stride=1, padding=1, k=8, bias=True, act="relu", schedule={})
)
# The same layer with its input staged in local memory (barriers in SPIR-V, workgroup memory).
CASES.append(
    dict(
        n=2,
        c=24,
        f=36,
        h=16,
        w=15,
        stride=1,
        padding=1,
        k=8,
        bias=True,
        act="relu",
        schedule=dict(gpu_stage_input=1, gpu_workgroup_x=3, gpu_workgroup_y=3),
    )
)
# Staged one channel block at a time: blocks of 5 channels, the last one short (24 = 4 x 5 + 4),
# stride 2, 7 filters in blocks of 3 (the last one short).
CASES.append(
    dict(
        n=1,
        c=24,
        f=7,
        h=15,
        w=13,
        stride=2,
        padding=1,
        k=6,
        bias=False,
        act="relu6",
        residual=True,
        schedule=dict(
            gpu_stage_input=1,
            tile_channels=5,
            gpu_filters_per_item=3,
            gpu_block_pixels=3,
            gpu_workgroup_x=2,
            gpu_workgroup_y=5,
        ),
    )
)

# Staging asked for without channel blocks, on a layer whose tile of every channel (48 x 6 rows x
# 34 columns) does not fit in 32 KB: pconv-fkw-pack picks blocks of 40 channels (the last 8).
CASES.append(
    dict(
        n=1,
        c=48,
        f=6,
        h=32,
        w=32,
        stride=1,
        padding=1,
        bias=True,
        act="relu",
        schedule=dict(gpu_stage_input=1),
    )  # fmt: skip
)
STAGED_BLOCKS = len(CASES) - 1


def lower(case: dict, seed: int):
    """(module after convert-pconv-to-gpu, context, weight, bias, x, residual) of `case`."""
    rng = np.random.default_rng(seed)
    k = case.get("k", 4)
    patterns, ids, weight = random_pattern_layer(rng, case["f"], case["c"], k=k, rate=1.5)
    bias = rng.standard_normal(case["f"]).astype(np.float32) if case["bias"] else None
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    s, p, d = case["stride"], case["padding"], case.get("dilation", 1)
    module = conv2d_module(
        x.shape,
        weight,
        bias,
        patterns,
        ids,
        (s, s),
        (p, p),
        (d, d),
        relu=case["act"] == "relu",
        relu6=case["act"] == "relu6",
        residual=case.get("residual", False),
    )
    residual = None
    if case.get("residual"):
        out_shape = conv_output_shape(x.shape, case["f"], (s, s), (p, p), (d, d))
        residual = rng.standard_normal(out_shape).astype(np.float32)
    options = " ".join(f"{k}={v}" for k, v in case["schedule"].items())
    ctx = make_context()
    Pipeline(f"pconv-fkr{{group_size=4}},pconv-fkw-pack{{{options}}},convert-pconv-to-gpu").run(
        module, ctx
    )
    return module, ctx, weight, bias, x, residual


def kernels_text(module: ModuleOp) -> str:
    """The module's `gpu.module`s alone, each kernel with the `spirv.entry_point_abi` that
    convert-gpu-to-spirv asks for (the work-group of its `gpu.known_block_size`; added as text,
    since xDSL has no SPIR-V attributes: a SPIR-V back end would do the same)."""
    kernels = [op.clone() for op in module.ops if isinstance(op, gpu.ModuleOp)]
    wrapper = ModuleOp(kernels)
    wrapper.attributes["gpu.container_module"] = UnitAttr()
    text = print_module(wrapper)
    return re.sub(
        r"gpu\.known_block_size = array<i32: (\d+), (\d+), (\d+)>",
        r"\g<0>, spirv.entry_point_abi = #spirv.entry_point_abi<workgroup_size = [\1, \2, \3]>",
        text,
    )


def spirv_module_text(text: str) -> str:
    """The first `spirv.module` op of upstream's output, on its own."""
    start = text.index("spirv.module")
    open_at = text.index("\n", start) - 1
    assert text[open_at] == "{", text[start : open_at + 1]
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1] + "\n"
    raise AssertionError("unbalanced spirv.module")


def to_spirv(module: ModuleOp, tmp_path: Path) -> Path:
    """The kernels as a SPIR-V binary that spirv-val accepted for OpenCL 1.2."""
    lowered = toolchain.run_tool(
        "mlir-opt", [f"--pass-pipeline={SPIRV_PIPELINE}"], kernels_text(module)
    )
    source = tmp_path / "kernels.spirv.mlir"
    source.write_text(spirv_module_text(lowered))
    binary = tmp_path / "kernels.spv"
    toolchain.run_tool(
        "mlir-translate",
        ["--no-implicit-module", "--serialize-spirv", str(source), "-o", str(binary)],
    )
    toolchain.run_tool("spirv-val", ["--target-env", "opencl1.2", str(binary)])
    return binary


def need_spirv_tools(need_tool) -> None:
    for tool in ("mlir-opt", "mlir-translate", "spirv-val"):
        need_tool(tool)


def test_staging_without_channel_blocks_gets_blocks_that_fit() -> None:
    """pconv-fkw-pack gives a staged conv channel blocks when its whole tile does not fit."""
    case = CASES[STAGED_BLOCKS]
    rng = np.random.default_rng(0)
    patterns, ids, weight = random_pattern_layer(rng, case["f"], case["c"], k=4, rate=1.5)
    module = conv2d_module((1, 48, 32, 32), weight, None, patterns, ids, (1, 1), (1, 1))
    ctx = make_context()
    Pipeline("pconv-fkw-pack{gpu_stage_input=1}").run(module, ctx)
    (op,) = [op for op in module.walk() if isinstance(op, FkwConv2dOp)]
    assert op.schedule["tile_channels"] == 40
    assert op.channel_blocks() == 2


@pytest.mark.parametrize("i", range(len(CASES)))
def test_kernels_are_valid_opencl_spirv(i: int, tmp_path: Path, need_tool) -> None:
    need_spirv_tools(need_tool)
    module, *_ = lower(CASES[i], seed=i)
    assert not any(isinstance(op, FkwConv2dOp) for op in module.walk())
    binary = to_spirv(module, tmp_path)
    assert binary.read_bytes()[:4] == b"\x03\x02\x23\x07"  # the SPIR-V magic number


# --------------------------------------------------------------------------------------------
# Numerics on PoCL
# --------------------------------------------------------------------------------------------


def spir_device(need):
    """(pyopencl, the first OpenCL device that loads SPIR bitcode): PoCL here; `need` (the
    fixture) skips the test when there is none, or fails it under `make test`."""
    try:
        import pyopencl as cl

        return cl, next(
            d
            for p in cl.get_platforms()
            for d in p.get_devices()
            if "cl_khr_spir" in d.extensions.split()
        )
    except (ImportError, StopIteration) as e:
        need(f"no pyopencl with an OpenCL device that loads SPIR bitcode ({e!r})")
    except Exception as e:  # pyopencl's errors when no platform is installed
        need(f"no OpenCL platform: {e}")


def run_host(module: ModuleOp, ctx, program, queue, args: list[np.ndarray]) -> np.ndarray:
    """Run the host function of `module` with pyopencl: its buffers, its launches in order;
    the array its result tensor holds."""
    import pyopencl as cl

    host = next(op for op in module.ops if isinstance(op, func.FuncOp))
    arrays: dict[SSAValue, np.ndarray] = dict(zip(host.body.block.args, args, strict=True))
    buffers: dict[SSAValue, cl.Buffer] = {}
    flags = cl.mem_flags

    def buffer(value: SSAValue) -> cl.Buffer:
        if value not in buffers:
            buffers[value] = cl.Buffer(
                program.context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=arrays[value]
            )
        return buffers[value]

    def index(value: SSAValue) -> int:
        assert isinstance(value.owner, arith.ConstantOp)
        return value.owner.value.value.data

    result = None
    for op in host.body.block.ops:
        if isinstance(op, bufferization.ToBufferOp):
            source = op.tensor
            data = arrays.get(source)
            if data is None:
                data = constant_value(ctx, source)
            arrays[op.memref] = np.ascontiguousarray(data)
        elif isinstance(op, memref.AllocOp):
            arrays[op.memref] = np.zeros(op.memref.type.get_shape(), dtype=np.float32)
        elif isinstance(op, gpu.LaunchFuncOp):
            kernel = getattr(program, op.kernel.nested_references.data[-1].data)
            grid = [index(v) for v in (op.gridSizeX, op.gridSizeY, op.gridSizeZ)]
            block = [index(v) for v in (op.blockSizeX, op.blockSizeY, op.blockSizeZ)]
            kernel.set_args(*(buffer(v) for v in op.kernelOperands))
            total = [g * b for g, b in zip(grid, block, strict=True)]
            cl.enqueue_nd_range_kernel(queue, kernel, total, block)
        elif isinstance(op, bufferization.ToTensorOp):
            result = op.memref
    assert result is not None
    out = np.empty_like(arrays[result])
    cl.enqueue_copy(queue, out, buffer(result))
    queue.finish()
    return out


def expected(case: dict, x, weight, bias, residual) -> np.ndarray:
    y = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight).double(),
        None if bias is None else torch.from_numpy(bias).double(),
        stride=case["stride"],
        padding=case["padding"],
        dilation=case.get("dilation", 1),
    )
    if residual is not None:
        y = y + torch.from_numpy(residual).double()
    if case["act"] == "relu":
        y = torch.relu(y)
    elif case["act"] == "relu6":
        y = torch.clamp(y, 0, 6)
    return y.numpy()


@pytest.mark.parametrize("i", range(len(CASES)))
def test_spirv_matches_torch_on_pocl(i: int, tmp_path: Path, need_tool, need) -> None:
    need_spirv_tools(need_tool)
    need_tool("llvm-spirv")
    cl, device = spir_device(need)
    case = CASES[i]
    module, ctx, weight, bias, x, residual = lower(case, seed=i)
    binary = to_spirv(module, tmp_path)
    bitcode = tmp_path / "kernels.bc"
    toolchain.run_tool("llvm-spirv", ["-r", str(binary), "-o", str(bitcode)])
    context = cl.Context([device])
    program = cl.Program(context, [device], [bitcode.read_bytes()]).build()
    queue = cl.CommandQueue(context)
    args = [x, *(a for a in (bias, residual) if a is not None)]
    out = run_host(module, ctx, program, queue, args)
    reference = expected(case, x, weight, bias, residual)
    scale = max(1.0, float(np.abs(reference).max()))
    error = float(np.abs(out - reference).max()) / scale
    assert error < 1e-4, f"{case}: max relative error {error:.2e}"

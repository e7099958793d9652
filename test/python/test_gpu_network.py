"""Whole networks on the GPU path: `pconv_mlir.compile(model, x, target="opencl"|"spirv")`
against the torch model, run on PoCL (the CPU's OpenCL device) through pyopencl.

- randomised networks mixing every layer kind of VGG, ResNet and MobileNet-V2 (pattern convs
  through our kernels, the rest through upstream's), odd shapes, through OpenCL C and SPIR-V;
- a pruned CIFAR-size VGG-16 through both, saved, and run from the saved files by the C host
  program `pconv_mlir/runtime/pconv_cl_run.c` (OpenCL C source, and SPIR bitcode made from
  the saved `.spv`);
- a layer no GPU lowering takes is one located error, not a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_networks import mixed_network, relative_error

import pconv_mlir
from pconv_mlir import pruning, toolchain
from pconv_mlir.errors import PconvError, RunError

RUNTIME = Path(pconv_mlir.__file__).parent / "runtime"


@pytest.fixture(scope="module")
def opencl(need):
    """The first OpenCL device that loads SPIR bitcode (PoCL here), for both paths."""
    from pconv_mlir.errors import RunError
    from pconv_mlir.runtime.opencl import opencl_device

    for tool in ("mlir-opt", "mlir-translate", "spirv-val", "llvm-spirv"):
        if not toolchain.tool_available(tool):
            need(f"'{tool}' is not installed (run `make setup`)")
    try:
        return opencl_device(spir=True)
    except RunError as e:
        need(f"{e} (run `make setup`: pocl-opencl-icd)")


@pytest.mark.parametrize("stage", [0, 1])
@pytest.mark.parametrize("target", ["opencl", "spirv"])
@pytest.mark.parametrize("seed, c, shape", [(0, 5, (1, 3, 29, 27)), (1, 8, (2, 3, 33, 37))])
def test_mixed_network_on_the_opencl_device(seed, c, shape, target, stage, opencl):
    """With `gpu_stage_input=1` the pattern convs stage their input tiles in local memory
    (barriers, `__local` arrays; workgroup variables in SPIR-V)."""
    model = mixed_network(seed, c)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        expected = model(x).numpy()
    artifact = pconv_mlir.compile(model, x, target=target, name="mixed", gpu_stage_input=stage)
    try:
        assert relative_error(artifact(x), expected) < 1e-4
        # Buffers stay on the device: a second call with other data gives its own answer.
        x2 = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 20))
        with torch.no_grad():
            assert relative_error(artifact(x2), model(x2).numpy()) < 1e-4
        kinds = {row.kind for row in artifact.report}
        assert {"pattern", "1x1", "dense"} <= kinds
        # The per-layer report says how the layers run: ours, or upstream's plain kernels.
        assert {row.lowering for row in artifact.report} == {"pconv", "gpu-loops"}
        with pytest.raises(RunError, match="profile\\(\\) times the layers of CPU code"):
            artifact.profile(x)
        if target == "opencl":
            assert "__kernel" in artifact.text
            assert ("__local float" in artifact.text) == bool(stage)
            assert ("barrier(" in artifact.text) == bool(stage)
        else:
            assert "spirv.module" in artifact.text
            assert ("spirv.ControlBarrier" in artifact.text) == bool(stage)
    finally:
        artifact.close()


def _build_host_program(tmp_path: Path, need) -> Path:
    compiler = shutil.which("clang-22") or shutil.which("cc")
    if compiler is None or not Path("/usr/include/CL/cl.h").exists():
        need("no C compiler with the OpenCL headers (run `make setup`: ocl-icd-opencl-dev)")
    if not Path("/usr/include/cjson/cJSON.h").exists():
        need("cJSON is not installed (run `make setup`: libcjson-dev)")
    exe = tmp_path / "pconv_cl_run"
    subprocess.run(
        [compiler, "-O2", str(RUNTIME / "pconv_cl_run.c"), "-lOpenCL", "-lcjson", "-o", str(exe)],
        check=True,
    )
    return exe


def test_pruned_cifar_vgg16_runs_on_opencl_and_spirv_and_from_the_saved_files(
    tmp_path, opencl, need
):
    from pconv_mlir.models import vgg16

    torch.manual_seed(0)
    model = vgg16(num_classes=10, input_size=32).eval()
    pruning.prune_model(model, patterns=8, connectivity=3.6)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    saved = {}
    for target in ("opencl", "spirv"):
        artifact = pconv_mlir.compile(model, x, target=target, name="vgg")
        try:
            assert relative_error(artifact(x), expected) < 1e-4, target
            assert sum(row.kind == "pattern" for row in artifact.report) == 13
            saved[target] = artifact.save(tmp_path / target)
        finally:
            artifact.close()
    folder = saved["opencl"]
    names = {p.name for p in folder.iterdir()}
    assert {"vgg.cl", "vgg.spv", "vgg.launch.json", "vgg.weights.bin"} <= names
    plan = json.loads((folder / "vgg.launch.json").read_text())
    assert plan["inputs"][0]["shape"] == [1, 3, 32, 32] and plan["outputs"][0]["shape"] == [1, 10]
    assert (folder / "vgg.spv").read_bytes()[:4] == b"\x03\x02\x23\x07"  # SPIR-V magic

    exe = _build_host_program(tmp_path, need)
    x.numpy().astype(np.float32).tofile(tmp_path / "x.bin")
    subprocess.run(
        [
            str(exe),
            str(folder / "vgg.launch.json"),
            str(tmp_path / "x.bin"),
            str(tmp_path / "y.bin"),
        ],
        check=True,
    )
    got = np.fromfile(tmp_path / "y.bin", dtype=np.float32).reshape(expected.shape)
    assert relative_error(got, expected) < 1e-4

    bitcode = tmp_path / "vgg.bc"
    toolchain.run_tool("llvm-spirv", ["-r", str(folder / "vgg.spv"), "-o", str(bitcode)])
    subprocess.run(
        [
            str(exe),
            "--binary",
            str(bitcode),
            str(folder / "vgg.launch.json"),
            str(tmp_path / "x.bin"),
            str(tmp_path / "y2.bin"),
        ],
        check=True,
    )
    got = np.fromfile(tmp_path / "y2.bin", dtype=np.float32).reshape(expected.shape)
    assert relative_error(got, expected) < 1e-4


def test_a_layer_that_stays_on_the_host_is_one_error(opencl):
    with pytest.raises(PconvError) as info:
        pconv_mlir.compile(
            "func.func @f(%x: tensor<4xf32>, %i: index) -> f32 {\n"
            "  %e = tensor.extract %x[%i] : tensor<4xf32>\n  func.return %e : f32\n}\n",
            target="opencl",
        )
    message = str(info.value)
    assert "\n" not in message
    assert "'memref.load' would run on the host between kernels" in message


@pytest.mark.parametrize("precision, stage", [("fp16", 0), ("fp16-acc32", 0), ("fp16", 1)])
def test_mixed_network_in_half_precision(precision, stage, tmp_path, opencl, need_tool):
    """Half buffers (and, for fp16, half arithmetic) on the OpenCL C path, the input tiles
    staged in local memory or not. PoCL has no cl_khr_fp16, so the artifact runs the
    emulated-half program (a warning says so) and the native-half program is checked by clang;
    relative error below 1e-2."""
    need_tool("clang")
    seed, c, shape = 0, 5, (1, 3, 29, 27)
    model = mixed_network(seed, c)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        expected = model(x).numpy()
    fp16 = "cl_khr_fp16" in opencl.extensions.split()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # One pixel of one filter per work-item: PoCL's kernel compiler (LLVM 15) takes minutes
        # on an emulated-half conv kernel of the default 4 x 4 block (every op rounds to half),
        # and 40 s for the whole network with this one; the native program is the same code.
        artifact = pconv_mlir.compile(
            model,
            x,
            target="opencl",
            precision=precision,
            gpu_stage_input=stage,
            gpu_filters_per_item=1,
            gpu_block_pixels=1,
        )
    try:
        got = artifact(x)
        assert got.dtype == np.float16
        error = relative_error(got.astype(np.float32), expected)
        assert error < 1e-2, error
        assert fp16 or any("cl_khr_fp16" in str(w.message) for w in caught)
        assert "cl_khr_fp16 : enable" in artifact.text
        assert ("__local half" in artifact.text) == bool(stage)
        folder = artifact.save(tmp_path / "half")
    finally:
        artifact.close()
    plan = json.loads((folder / "forward.launch.json").read_text())
    assert plan["inputs"][0]["dtype"] == "float16"
    subprocess.run(
        [
            toolchain.find_tool("clang"),
            "-x",
            "cl",
            "-cl-std=CL1.2",
            "-fsyntax-only",
            "-Werror",
            str(folder / "forward.cl"),
        ],
        check=True,
    )


def test_half_spirv_is_valid_and_refused_where_half_cannot_run(opencl):
    """Half SPIR-V (validated by spirv-val before the build reaches the device) runs where the
    device has cl_khr_fp16 and is refused with a clear error where it has not (PoCL here)."""
    from pconv_mlir.errors import RunError

    model = mixed_network(0, 5)
    x = torch.randn(1, 3, 29, 27)
    if "cl_khr_fp16" not in opencl.extensions.split():
        with pytest.raises(RunError, match="has no cl_khr_fp16: half SPIR-V cannot run on it"):
            pconv_mlir.compile(model, x, target="spirv", precision="fp16")
        return
    artifact = pconv_mlir.compile(model, x, target="spirv", precision="fp16")
    try:
        with torch.no_grad():
            expected = model(x).numpy()
        assert relative_error(artifact(x).astype(np.float32), expected) < 1e-2
    finally:
        artifact.close()


def test_precision_is_an_option_of_the_gpu_targets_only():
    from pconv_mlir.errors import OptionError

    model = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(OptionError, match="precision = 'fp16' is for the GPU targets"):
        pconv_mlir.compile(model, torch.randn(1, 3, 8, 8), precision="fp16")
    with pytest.raises(OptionError, match="precision = 'fp8' is not one of"):
        pconv_mlir.compile(model, torch.randn(1, 3, 8, 8), target="opencl", precision="fp8")


def test_input_staging_is_on_where_local_memory_is_on_chip(opencl):
    """The GPU backends stage conv input tiles in local memory by default only on a device
    whose local memory is on chip (`CL_LOCAL`); PoCL on a CPU keeps it in global memory."""
    import pyopencl as cl

    from pconv_mlir.backends import get_backend
    from pconv_mlir.runtime.opencl import local_memory_on_chip

    class Device:
        def __init__(self, kind: int) -> None:
            self.local_mem_type = kind

    assert local_memory_on_chip(Device(cl.device_local_mem_type.LOCAL))
    assert not local_memory_on_chip(Device(cl.device_local_mem_type.GLOBAL))
    on_chip = local_memory_on_chip(opencl)
    for name in ("opencl", "spirv"):
        assert get_backend(name).schedule_defaults() == {"gpu_stage_input": int(on_chip)}

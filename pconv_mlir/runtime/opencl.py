"""Run a network lowered by `pconv-lower-to-gpu` on an OpenCL device, through pyopencl.

    >>> plan, weights = launch_plan(module, ctx, "forward", folder / "forward.weights.bin")
    >>> runner = OpenClRunner(signatures, plan, weights, source=opencl_c)   # or binary=SPIR
    >>> runner.call("forward", x, out)          # fills out in place          # doctest: +SKIP

The *launch plan* is what an application needs besides the kernels: the launch description of
`pconv_mlir.lowering.opencl.launch_description` (kernels, buffers, launches in order) plus the
model's `name`, its `inputs` and `outputs` (buffer ids, in argument and result order), and for
every buffer whose contents come from the model (its weights, and constants) the byte `offset`
of its data in the weights file. `artifact.save` writes it as `<name>.launch.json`, next to
`<name>.weights.bin`, `<name>.cl` and `<name>.spv`; `pconv_mlir/runtime/pconv_cl_run.c` runs
exactly these files with the OpenCL C API.

`OpenClRunner` creates every buffer once, on the device (weights uploaded once, the
intermediate buffers kept), and each call writes the inputs, enqueues every launch in order on
one in-order queue and reads the outputs: no layer returns to the host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    ModuleOp,
)
from xdsl.ir import SSAValue

from pconv_mlir.elements import blob_of, constant_array, numpy_dtype, storage_of
from pconv_mlir.errors import LoweringError, RunError
from pconv_mlir.lowering.externalize_constants import EXTERNAL_DATA
from pconv_mlir.lowering.llvm import FunctionSignature
from pconv_mlir.lowering.opencl import launch_description, root_buffer
from pconv_mlir.runtime.build import WeightsFile
from pconv_mlir.runtime.runners import Runner

__all__ = ["OpenClRunner", "launch_plan", "opencl_device"]

_SCALARS = {
    "int": np.int32,
    "uint": np.uint32,
    "long": np.int64,
    "ulong": np.uint64,
    "short": np.int16,
    "char": np.int8,
    "float": np.float32,
}


def _global_data(module: ModuleOp, ctx: Context, symbol: str) -> Any:
    """The data of `memref.global @symbol`: its external blob, or its initial value."""
    storage = storage_of(ctx)
    for op in module.body.block.ops:
        if not isinstance(op, memref.GlobalOp) or op.sym_name.data != symbol:
            continue
        external = op.attributes.get(EXTERNAL_DATA)
        dtype = numpy_dtype(op.type.get_element_type())
        if isinstance(external, DenseResourceAttr):
            blob = blob_of(storage, external.resource_handle.data)
            if blob is None:
                raise LoweringError(f"the weights of @{symbol} are not in the context", op=op)
            stored = numpy_dtype(external.type.get_element_type())
            if stored == dtype:
                return blob
            return blob.data.view(stored).astype(dtype)  # f32 weights of an f16 network
        value = op.initial_value
        if isinstance(value, DenseIntOrFPElementsAttr | DenseResourceAttr):
            array = constant_array(ctx, value)
            shape = tuple(op.type.get_shape())
            return np.broadcast_to(np.asarray(array, dtype=dtype), shape).copy()
        raise LoweringError(f"@{symbol} has no data to put in a device buffer", op=op)
    raise LoweringError(f"no memref.global @{symbol} in the module")


def launch_plan(
    module: ModuleOp, ctx: Context, name: str, weights_path: str | os.PathLike[str]
) -> tuple[dict[str, Any], WeightsFile | None]:
    """The launch plan of host function `name` (see the module docstring), and the weights file
    it points into, written to `weights_path` (None, and no file, when no buffer needs data)."""
    function = next(
        (op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == name),
        None,
    )
    if function is None:
        raise LoweringError(f"no host function @{name} in the module")
    ids: dict[SSAValue, int] = {}
    description = launch_description(module, ids)
    description["launches"] = [
        launch for launch in description["launches"] if launch["function"] == name
    ]
    buffers = {b["id"]: b for b in description["buffers"] if b["function"] == name}
    description["buffers"] = list(buffers.values())
    arguments = {b["argument"]: b["id"] for b in buffers.values() if b["origin"] == "argument"}
    inputs = []
    for i, arg in enumerate(function.body.block.args):
        inputs.append({"buffer": arguments.get(i), **_shape_of(arg)})
    returned = function.body.block.last_op
    assert isinstance(returned, func.ReturnOp)
    outputs = []
    for i, value in enumerate(returned.operands):
        buffer = ids.get(root_buffer(value))
        if buffer is None or buffers[buffer]["origin"] != "alloc":
            raise LoweringError(
                f"result {i} of @{name} is not a buffer that a kernel writes", op=returned
            )
        outputs.append({"buffer": buffer, **_shape_of(value)})
    constants: list[tuple[str, Any]] = []
    for buffer in description["buffers"]:
        if buffer["origin"] == "global":
            constants.append((f"buffer{buffer['id']}", _global_data(module, ctx, buffer["symbol"])))
        elif buffer["origin"] == "constant":
            raise LoweringError(
                "a kernel reads a tensor constant that was not bufferized: run "
                "pconv-lower-to-gpu first"
            )
    weights = WeightsFile.write(weights_path, constants) if constants else None
    if weights is not None:
        offsets = {symbol: offset for symbol, offset, _ in weights.symbols}
        for buffer in description["buffers"]:
            if f"buffer{buffer['id']}" in offsets:
                buffer["offset"] = offsets[f"buffer{buffer['id']}"]
    plan = {
        "name": name,
        "program": f"{name}.cl",
        "spirv": f"{name}.spv",
        "weights": f"{name}.weights.bin" if weights is not None else None,
        "inputs": inputs,
        "outputs": outputs,
        **description,
    }
    return plan, weights


def _shape_of(value: SSAValue) -> dict[str, Any]:
    type_ = value.type
    shape = list(type_.get_shape()) if hasattr(type_, "get_shape") else []
    dtype = numpy_dtype(type_.get_element_type()) if hasattr(type_, "get_element_type") else None
    return {"dtype": None if dtype is None else dtype.name, "shape": shape}


def opencl_device(*, spir: bool = False) -> Any:
    """The first OpenCL device (of the first platform that has one); with `spir`, the first
    that loads SPIR bitcode (`cl_khr_spir`). `RunError` when there is none or no pyopencl."""
    try:
        import pyopencl as cl
    except ImportError as e:
        raise RunError(f"running OpenCL code needs pyopencl ({e})") from None
    try:
        platforms = cl.get_platforms()
    except Exception as e:  # pyopencl's error when no ICD is installed
        raise RunError(f"no OpenCL platform: {e}") from None
    for platform in platforms:
        for device in platform.get_devices():
            if not spir or "cl_khr_spir" in device.extensions.split():
                return device
    wanted = "an OpenCL device that loads SPIR bitcode" if spir else "an OpenCL device"
    raise RunError(f"no {wanted} (install pocl-opencl-icd for the CPU)")


def local_memory_on_chip(device: Any) -> bool:
    """Whether `device`'s local memory is dedicated on-chip memory (`CL_LOCAL`: Adreno and most
    discrete GPUs) rather than a region of global memory (`CL_GLOBAL`: PoCL on a CPU, Mali),
    where staging data in it only adds copies."""
    import pyopencl as cl

    return device.local_mem_type == cl.device_local_mem_type.LOCAL


class OpenClRunner(Runner):
    """Runs the host functions of a launch plan on an OpenCL device (see the module docstring).

    Give the program as OpenCL C `source` or as a `binary` the device loads (SPIR 1.2 bitcode
    from `pconv_mlir.lowering.gpu.spir_bitcode`)."""

    def __init__(
        self,
        signatures: Mapping[str, FunctionSignature],
        plan: dict[str, Any],
        weights: WeightsFile | None,
        *,
        source: str | None = None,
        binary: bytes | None = None,
        device: Any = None,
    ) -> None:
        import pyopencl as cl

        super().__init__(signatures)
        if (source is None) == (binary is None):
            raise ValueError("give the program as source or as binary, not both")
        self.device = device if device is not None else opencl_device(spir=binary is not None)
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context)
        try:
            if source is not None:
                program = cl.Program(self.context, source).build(options=["-cl-std=CL1.2"])
            else:
                program = cl.Program(self.context, [self.device], [binary]).build()
        except cl.Error as e:
            raise RunError(f"the OpenCL program does not build: {str(e).splitlines()[0]}") from None
        self.plan = plan
        data = np.fromfile(weights.path, dtype=np.uint8) if weights is not None else None
        flags = cl.mem_flags
        self.buffers: dict[int, Any] = {}
        for buffer in plan["buffers"]:
            size = max(1, int(buffer["bytes"]))
            if "offset" in buffer:
                assert data is not None
                start = int(buffer["offset"])
                self.buffers[buffer["id"]] = cl.Buffer(
                    self.context,
                    flags.READ_WRITE | flags.COPY_HOST_PTR,
                    hostbuf=data[start : start + int(buffer["bytes"])],
                )
            else:
                self.buffers[buffer["id"]] = cl.Buffer(self.context, flags.READ_WRITE, size)
        self.launches = []
        for launch in plan["launches"]:
            kernel = cl.Kernel(program, launch["kernel"])
            args = []
            for arg in launch["args"]:
                if "buffer" in arg:
                    args.append(self.buffers[arg["buffer"]])
                elif "value" in arg and arg["scalar"] in _SCALARS:
                    args.append(_SCALARS[arg["scalar"]](arg["value"]))
                else:
                    raise RunError(f"kernel {launch['kernel']} takes an argument {arg} here")
            kernel.set_args(*args)
            self.launches.append(
                (kernel, tuple(launch["global_size"]), tuple(launch["local_size"]))
            )

    def _call(self, sig: FunctionSignature, args: list[Any]) -> Any:
        import pyopencl as cl

        if sig.name != self.plan["name"]:
            raise RunError(f"this program runs @{self.plan['name']}, not @{sig.name}")
        count = len(self.plan["inputs"])
        for spec, array in zip(self.plan["inputs"], args[:count], strict=True):
            if spec["buffer"] is not None:
                cl.enqueue_copy(self.queue, self.buffers[spec["buffer"]], array)
        for kernel, global_size, local_size in self.launches:
            cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)
        for spec, array in zip(self.plan["outputs"], args[count:], strict=True):
            cl.enqueue_copy(self.queue, array, self.buffers[spec["buffer"]])
        self.queue.finish()
        return None

    def run_launches(self) -> None:
        """Enqueue every launch once and wait (for timing the kernels alone)."""
        import pyopencl as cl

        for kernel, global_size, local_size in self.launches:
            cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)
        self.queue.finish()

    def close(self) -> None:
        for buffer in getattr(self, "buffers", {}).values():
            buffer.release()
        self.buffers = {}
        super().close()


def write_package(
    directory: Path, name: str, plan: dict[str, Any], source: str, spirv: bytes | None
) -> list[Path]:
    """Write `<name>.launch.json`, `<name>.cl` and `<name>.spv` (when given) to `directory`."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / f"{name}.cl", directory / f"{name}.launch.json"]
    written[0].write_text(source)
    public = {**plan, "spirv": plan["spirv"] if spirv is not None else None}
    written[1].write_text(json.dumps(public, indent=1) + "\n")
    if spirv is not None:
        (directory / f"{name}.spv").write_bytes(spirv)
        written.append(directory / f"{name}.spv")
    return written

"""The OpenCL C output formats: `-t opencl` (the kernels' source) and `-t opencl-launch` (JSON).

They print a module that already has its kernels in `gpu.module`s (from `convert-pconv-to-gpu`,
or written by hand in upstream dialects) and its launches as `gpu.launch_func` in host
functions; see `pconv_mlir.lowering.opencl`. There is no OpenCL backend object yet (lowering,
runtime and cost model come with it): the two targets are registered in
`pconv_mlir.backends.TARGETS`.

    pconv-opt kernels.mlir -t opencl
    pconv-opt kernels.mlir -t 'opencl{fp16=true}'
    pconv-opt kernels.mlir -t 'opencl{fp16_emulation=true}'
    pconv-opt kernels.mlir -t opencl-launch
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from io import StringIO
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target


@dataclass(frozen=True)
class OpenClTarget(Target):
    """Every `gpu.module` as one OpenCL C 1.2 program.

    Options: `fp16` allows f16 values (as `half`, with `cl_khr_fp16` enabled);
    `fp16_emulation` allows them on any OpenCL 1.2 device instead (held in `float`, rounded to
    half precision after every op, stored with `vstore_half_rte`). Without either an f16 value
    is a diagnostic.
    """

    name = "opencl"

    fp16: bool = False
    fp16_emulation: bool = False

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering.opencl import print_opencl

        text = StringIO()  # nothing is written when the module cannot be printed
        print_opencl(module, text, fp16=self.fp16, fp16_emulation=self.fp16_emulation)
        output.write(text.getvalue())


@dataclass(frozen=True)
class OpenClLaunchTarget(Target):
    """The launch description of the module's `gpu.launch_func`s, as JSON
    (see `pconv_mlir.lowering.opencl.launch_description`)."""

    name = "opencl-launch"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from pconv_mlir.lowering.opencl import launch_description

        output.write(format_json(launch_description(module)) + "\n")


def format_json(value: object) -> str:
    """`value` as indented JSON, with every list or object of scalars on one line."""
    text = json.dumps(value, indent=2)
    return _FLAT.sub(
        lambda m: (
            " ".join(m.group(0).split())
            .replace("[ ", "[")
            .replace(" ]", "]")
            .replace("{ ", "{")
            .replace(" }", "}")
        ),
        text,
    )


_FLAT = re.compile(r"[\[{][^\[\]{}]*[\]}]")
"""A JSON list or object with no list or object inside."""

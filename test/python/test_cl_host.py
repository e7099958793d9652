"""The OpenCL C host program `pconv_mlir/runtime/pconv_cl_run.c`, run on PoCL.

The program is built with clang-22 against the OpenCL ICD loader and cJSON, then run on a small
package written here by hand in the saved format (`<name>.launch.json`, an OpenCL C 1.2 source,
a weights file): two kernels, an argument buffer, a global buffer at a nonzero offset of the
weights file, two scratch buffers, the last one the result. Without clang-22, the headers or an
OpenCL device the tests are skipped (under `make test`, PCONV_REQUIRE_TOOLS=1, they fail).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SOURCE = Path(__file__).resolve().parents[2] / "pconv_mlir" / "runtime" / "pconv_cl_run.c"

N = 37
ALPHA = 0.5

KERNELS = """\
__kernel void scale_add(__global const float *x, __global const float *w, __global float *y,
                        const int n, const float alpha) {
    int i = (int)(get_global_id(1) * get_global_size(0) + get_global_id(0));
    if (i < n)
        y[i] = alpha * x[i] + w[i];
}

__kernel void relu(__global const float *y, __global float *z, const long n) {
    long i = (long)get_global_id(0);
    if (i < n)
        z[i] = fmax(y[i], 0.0f);
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory, need) -> Path:
    """The host program, built into a temporary directory."""
    compiler = shutil.which("clang-22")
    if compiler is None:
        need("clang-22 is not installed (run `make setup`)")
    out = tmp_path_factory.mktemp("cl_host") / "pconv_cl_run"
    built = subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(SOURCE)]
        + ["-lOpenCL", "-lcjson"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        log = built.stderr
        if any(s in log for s in ("CL/cl.h", "cjson/cJSON.h", "-lOpenCL", "-lcjson")):
            need(
                "the OpenCL or cJSON development files are missing "
                f"(apt-get install ocl-icd-opencl-dev libcjson-dev):\n{log}"
            )
        pytest.fail(f"pconv_cl_run.c does not build cleanly:\n{log}")
    return out


def write_package(directory: Path, x: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """The package in `directory`; its launch description (also written there)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "forward.cl").write_text(KERNELS)
    # An unused constant first, so that w is at a nonzero offset of the weights file.
    padding = np.arange(3, dtype=np.int32)
    offset = 16
    blob = padding.tobytes().ljust(offset, b"\0") + w.tobytes()
    (directory / "forward.weights.bin").write_bytes(blob)
    nbytes = 4 * N
    vector = {"dtype": "float32", "shape": [N], "bytes": nbytes}
    description = {
        "name": "forward",
        "program": "forward.cl",
        "weights": "forward.weights.bin",
        "inputs": [{"buffer": 0, "dtype": "float32", "shape": [N]}],
        "outputs": [{"buffer": 4, "dtype": "float32", "shape": [N]}],
        "kernels": [
            {
                "module": "forward_kernels",
                "name": "scale_add",
                "reqd_work_group_size": None,
                "args": [
                    {"type": "__global const float *", "access": "read"},
                    {"type": "__global const float *", "access": "read"},
                    {"type": "__global float *", "access": "write"},
                    {"type": "int"},
                    {"type": "float"},
                ],
            },
            {
                "module": "forward_kernels",
                "name": "relu",
                "reqd_work_group_size": None,
                "args": [
                    {"type": "__global const float *", "access": "read"},
                    {"type": "__global float *", "access": "write"},
                    {"type": "long"},
                ],
            },
        ],
        "buffers": [
            {"id": 0, "function": "forward", "origin": "argument", "argument": 0} | vector,
            {"id": 1, "function": "forward", "origin": "global", "symbol": "w"}
            | vector
            | {"offset": offset},
            {
                "id": 2,
                "function": "forward",
                "origin": "constant",
                "dtype": "int32",
                "shape": [3],
                "bytes": padding.nbytes,
                "offset": 0,
            },
            {"id": 3, "function": "forward", "origin": "alloc"} | vector,
            {"id": 4, "function": "forward", "origin": "alloc", "result": 0} | vector,
        ],
        "launches": [
            {
                "function": "forward",
                "module": "forward_kernels",
                "kernel": "scale_add",
                # 16 x 3 = 48 work items for 37 elements: the kernel bounds-checks.
                "global_size": [16, 3, 1],
                "local_size": [16, 1, 1],
                "args": [
                    {"buffer": 0, "bytes": nbytes},
                    {"buffer": 1, "bytes": nbytes},
                    {"buffer": 3, "bytes": nbytes},
                    {"scalar": "int", "value": N, "bytes": 4},
                    {"scalar": "float", "value": ALPHA, "bytes": 4},
                ],
            },
            {
                "function": "forward",
                "module": "forward_kernels",
                "kernel": "relu",
                "global_size": [40, 1, 1],
                "local_size": None,
                "args": [
                    {"buffer": 3, "bytes": nbytes},
                    {"buffer": 4, "bytes": nbytes},
                    {"scalar": "long", "value": N, "bytes": 8},
                ],
            },
        ],
    }
    save(directory, description)
    return description


def save(directory: Path, description: dict[str, Any]) -> Path:
    path = directory / "forward.launch.json"
    path.write_text(json.dumps(description, indent=1))
    return path


def run(program: Path, *args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def package(tmp_path, program, need):
    """(directory, x, w, input file); skips (or fails) when there is no OpenCL device."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(N).astype(np.float32)
    w = rng.standard_normal(N).astype(np.float32)
    directory = tmp_path / "pkg"
    write_package(directory, x, w)
    inp = tmp_path / "x.bin"
    inp.write_bytes(x.tobytes())
    probe = run(program, directory / "forward.launch.json", inp, tmp_path / "probe.bin")
    if probe.returncode != 0 and (
        "clGetPlatformIDs" in probe.stderr or "clGetDeviceIDs" in probe.stderr
    ):
        need(f"no OpenCL device (install pocl-opencl-icd): {probe.stderr.strip()}")
    return directory, x, w, inp


def expected(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.maximum(np.float32(ALPHA) * x + w, np.float32(0))


def test_runs_the_launch_sequence(program, package, tmp_path):
    directory, x, w, inp = package
    out = tmp_path / "y.bin"
    done = run(program, directory / "forward.launch.json", inp, out)
    assert done.returncode == 0, done.stderr
    got = np.fromfile(out, np.float32)
    assert got.shape == (N,)
    np.testing.assert_allclose(got, expected(x, w), rtol=1e-6, atol=1e-6)
    assert (got == 0).any() and (got > 0).any()  # relu did something


def test_repeat_prints_the_median(program, package, tmp_path):
    directory, x, w, inp = package
    out = tmp_path / "y.bin"
    done = run(program, "--repeat", "3", "--device", "0", directory / "forward.launch.json")
    assert done.returncode == 2  # no files
    done = run(program, "--repeat", "3", directory / "forward.launch.json", inp, out)
    assert done.returncode == 0, done.stderr
    assert "median" in done.stderr and "ms" in done.stderr
    np.testing.assert_allclose(np.fromfile(out, np.float32), expected(x, w), rtol=1e-6, atol=1e-6)


def test_wrong_input_size(program, package, tmp_path):
    directory, x, _, _ = package
    short = tmp_path / "short_input.bin"
    short.write_bytes(x[:-1].tobytes())
    out = tmp_path / "y.bin"
    done = run(program, directory / "forward.launch.json", short, out)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(short) in lines[0] and str(4 * N) in lines[0]
    assert not out.exists()


def test_missing_kernel(program, package, tmp_path):
    directory, x, w, inp = package
    description = write_package(directory, x, w)
    description["launches"][1]["kernel"] = "no_such_kernel"
    save(directory, description)
    done = run(program, directory / "forward.launch.json", inp, tmp_path / "y.bin")
    assert done.returncode != 0
    assert "no_such_kernel" in done.stderr
    assert "CL_INVALID_KERNEL_NAME" in done.stderr


def test_wrong_file_count_is_bad_usage(program, package, tmp_path):
    directory, _, _, inp = package
    done = run(program, directory / "forward.launch.json", inp)
    assert done.returncode == 2
    assert "usage:" in done.stderr
    done = run(program, "--no-such-option", directory / "forward.launch.json", inp, inp)
    assert done.returncode == 2


@pytest.mark.parametrize(
    "scalar, message",
    [
        ({"scalar": "half", "value": 1.0, "bytes": 2}, 'scalar type "half" is not supported'),
        ({"scalar": "float", "argument": 1, "bytes": 4}, "host argument"),
    ],
)
def test_unsupported_scalars_are_rejected(program, package, tmp_path, scalar, message):
    directory, x, w, inp = package
    description = write_package(directory, x, w)
    description["launches"][0]["args"][4] = scalar
    save(directory, description)
    done = run(program, directory / "forward.launch.json", inp, tmp_path / "y.bin")
    assert done.returncode == 1
    assert message in done.stderr and "argument 4" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

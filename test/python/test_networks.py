"""Whole networks end to end: `pconv_mlir.compile` of a torch model against the model itself.

- the digits CNN, pruned with ADMM, gives torch's predictions on the whole digits test set;
- randomised networks mixing every supported layer kind, with odd shapes, match torch on the
  host and under qemu-aarch64 (relative error < 1e-4);
- the library works from C: a program that includes the generated header, links the library
  and calls `<name>_forward`, on the host;
- the per-layer report covers every layer and names the kinds; threads give the same answer;
- an unsupported op is one clear error naming the op and where in the model it came from.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn

import pconv_mlir
from pconv_mlir import pruning
from pconv_mlir.errors import PconvError


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected)) / max(1e-12, float(np.max(np.abs(expected)))))


# --------------------------------------------------------------------------------------------
# The digits CNN
# --------------------------------------------------------------------------------------------


def test_digits_cnn_predicts_what_torch_predicts_on_the_whole_test_set():
    from pconv_mlir.models.digits import QUICK, load_data, run

    out = run(QUICK, seed=0)
    model = out["model"].eval()
    _, test = load_data(0)
    images, _labels = test.tensors
    artifact = pconv_mlir.compile(model, images, name="digits")
    try:
        got = artifact(images)
        with torch.no_grad():
            expected = model(images).numpy()
        np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
        assert relative_error(got, expected) < 1e-4
        kinds = {row.kind for row in artifact.report}
        assert "pattern" in kinds  # conv2 and conv3 (conv1, one input channel, is exempt)
    finally:
        artifact.close()


# --------------------------------------------------------------------------------------------
# Randomised networks with every layer kind
# --------------------------------------------------------------------------------------------


class Mixed(nn.Module):
    """Every layer kind of VGG, ResNet and MobileNet-V2 plus the usual extras, odd shapes."""

    def __init__(self, c: int, rng: torch.Generator) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, 7, stride=2, padding=3), nn.BatchNorm2d(c), nn.ReLU()
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv = nn.Conv2d(c, c, 3, padding=1)  # pruned to patterns
        self.bn = nn.BatchNorm2d(c)
        self.pointwise = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1, groups=2 * c)
        self.relu6 = nn.ReLU6()
        self.grouped = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2)
        self.project = nn.Conv2d(2 * c, c + 3, 1)
        self.wide = nn.Conv2d(c, 5, (1, 3), padding=(0, 1))
        self.leaky = nn.LeakyReLU(0.1)
        self.silu = nn.SiLU()
        self.hardswish = nn.Hardswish()
        self.avg = nn.AvgPool2d(2, ceil_mode=False)
        self.head = nn.Linear(c + 3 + 5, 7)
        for bn in (self.stem[1], self.bn):
            bn.running_mean.uniform_(-0.5, 0.5, generator=rng)
            bn.running_var.uniform_(0.5, 2.0, generator=rng)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        x = torch.relu(self.bn(self.conv(x)) + x)  # residual block
        y = self.relu6(self.depthwise(self.pointwise(x)))
        y = self.leaky(self.grouped(y))
        y = self.silu(self.project(y))
        z = self.hardswish(self.wide(x[:, :, ::2, ::2]))
        y = torch.cat([y, z], dim=1)
        y = self.avg(y)
        y = nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.head(y)


def mixed_network(seed: int, c: int) -> nn.Module:
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Mixed(c, rng).eval()
    pruning.prune_model(model, patterns=4, connectivity=2.0)
    return model


CASES = [(0, 5, (1, 3, 29, 27)), (1, 8, (2, 3, 33, 37))]


@pytest.mark.parametrize("seed, c, shape", CASES)
def test_mixed_network_on_the_host(seed, c, shape):
    model = mixed_network(seed, c)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        expected = model(x).numpy()
    artifact = pconv_mlir.compile(model, x, name="mixed", threads=2)
    try:
        assert relative_error(artifact(x), expected) < 1e-4
        artifact.set_threads(1)
        assert relative_error(artifact(x), expected) < 1e-4
        rows = artifact.profile(x, repeats=1)
        assert {"pattern", "1x1", "dense"} <= {r.kind for r in rows}
        assert all(r.seconds is not None and r.seconds >= 0 for r in rows)
    finally:
        artifact.close()


def test_mixed_network_under_qemu(need_tool):
    need_tool("qemu-aarch64")
    seed, c, shape = CASES[0]
    model = mixed_network(seed, c)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 10))
    with torch.no_grad():
        expected = model(x).numpy()
    artifact = pconv_mlir.compile(model, x, target="aarch64", name="mixed", threads=2)
    try:
        assert relative_error(artifact(x), expected) < 1e-4
    finally:
        artifact.close()


# --------------------------------------------------------------------------------------------
# The library from C
# --------------------------------------------------------------------------------------------

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mixed.h"

int main(int argc, char **argv) {
  static float input[MIXED_INPUT_SIZE], output[MIXED_OUTPUT_SIZE];
  FILE *in = fopen(argv[1], "rb");
  if (!in || fread(input, sizeof(float), MIXED_INPUT_SIZE, in) != MIXED_INPUT_SIZE) return 2;
  fclose(in);
  mixed_set_threads(2);
  if (mixed_forward(input, output) != 0) return 3;
  FILE *out = fopen(argv[2], "wb");
  fwrite(output, sizeof(float), MIXED_OUTPUT_SIZE, out);
  fclose(out);
  return 0;
}
"""


def test_a_c_program_includes_the_header_and_links_the_library(tmp_path, need_tool):
    need_tool("clang")
    from pconv_mlir.toolchain import find_tool

    seed, c, shape = CASES[0]
    model = mixed_network(seed, c)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    artifact = pconv_mlir.compile(model, x, name="mixed")
    try:
        saved = artifact.save(tmp_path / "lib")
    finally:
        artifact.close()
    header = (saved / "mixed.h").read_text()
    assert "int mixed_forward(const float *input, float *output);" in header
    assert f"[{shape[0]}][{shape[1]}][{shape[2]}][{shape[3]}]" in header
    (tmp_path / "main.c").write_text(C_PROGRAM)
    program = tmp_path / "main"
    subprocess.run(
        [find_tool("clang"), str(tmp_path / "main.c"), f"-I{saved}", f"-L{saved}", "-lmixed",
         f"-Wl,-rpath,{saved}", "-o", str(program)],
        check=True,
    )  # fmt: skip
    x.numpy().astype(np.float32).tofile(tmp_path / "in.bin")
    subprocess.run([str(program), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True)
    got = np.fromfile(tmp_path / "out.bin", dtype=np.float32).reshape(shape[0], 7)
    with torch.no_grad():
        expected = model(x).numpy()
    assert relative_error(got, expected) < 1e-4


# --------------------------------------------------------------------------------------------
# Unsupported ops
# --------------------------------------------------------------------------------------------


class Sorts(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=1).values


def test_an_unsupported_op_is_one_error_naming_the_op_and_the_model():
    with pytest.raises(PconvError) as info:
        pconv_mlir.compile(Sorts(), torch.randn(2, 5))
    message = str(info.value)
    assert "\n" not in message
    assert "sort" in message and "Sorts" in message

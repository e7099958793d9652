"""pconv_mlir.compile: a torch model to a native artifact that computes what the model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import pconv_mlir
from pconv_mlir import errors, pruning
from pconv_mlir.errors import PconvError


def small_cnn() -> nn.Module:
    """Stride-2 and padding-0 3x3 convs, a 1x1 conv, pooling and a linear head."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 13, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(13, 13, 3, padding=1),
        nn.Conv2d(13, 6, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),
    ).eval()
    pruning.prune_model(model, patterns=4, connectivity=2.0)
    return model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return small_cnn()


def test_host_artifact_matches_the_model(model, tmp_path):
    x = torch.randn(2, 3, 15, 17)
    artifact = pconv_mlir.compile(model, x)
    try:
        assert artifact.input_shapes == [(2, 3, 15, 17)] and artifact.output_shapes == [(2, 10)]
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
        # Every 3x3 conv went through the pconv path; nothing was left as a linalg 3x3 conv.
        assert artifact.mlir.count("vector.fma") > 0
        saved = artifact.save(tmp_path / "out")
        assert {p.name for p in saved.iterdir()} == {"libforward.so", "forward.h", "forward.ll"}
        assert "void forward(const float *in0, float *out0);" in (saved / "forward.h").read_text()
    finally:
        artifact.close()


def test_aarch64_artifact_runs_under_qemu(model, need_tool):
    need_tool("qemu-aarch64")
    x = torch.randn(1, 3, 9, 9)
    artifact = pconv_mlir.compile(model, x, target="aarch64")
    try:
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    finally:
        artifact.close()


def test_infer_mode_never_changes_weights_but_project_does(model):
    x = torch.randn(1, 3, 11, 11)
    dense_model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU()).eval()
    inferred = pconv_mlir.compile(dense_model, x)  # an unpruned conv is a dense layer
    projected = pconv_mlir.compile(dense_model, x, mode="project", patterns=2, connectivity=1.5)
    dense = pconv_mlir.compile(dense_model, x, mode="dense")
    try:
        reference = dense_model(x).detach().numpy()
        np.testing.assert_allclose(inferred(x), reference, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dense(x), reference, rtol=1e-4, atol=1e-5)
        assert not np.allclose(projected(x), reference, atol=1e-3)
    finally:
        for artifact in (inferred, projected, dense):
            artifact.close()


def test_tuned_artifact_matches(model):
    x = torch.randn(1, 3, 8, 8)
    artifact = pconv_mlir.compile(model, x, tune=True)
    try:
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    finally:
        artifact.close()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "fast"}, "mode 'fast' is not one of infer, project, dense"),
        ({"vector_width": 6}, "vector_width = 6 is not a power of two"),
        ({"patterns": 0}, "patterns = 0 is outside 1..56"),
        ({"unroll": 2}, "unknown option 'unroll'"),
    ],
)
def test_bad_options_fail_early_with_one_sentence(options, message):
    with pytest.raises(ValueError, match=message):
        pconv_mlir.compile("func.func @f() { func.return }", **options)


def test_mlir_text_input():
    text = """
    func.func @conv(%x: tensor<1x1x5x5xf32>) -> tensor<1x1x5x5xf32> {
      %w = arith.constant dense<[[[[0.0, 1.0, 0.0], [2.0, 3.0, 4.0], [0.0, 0.0, 0.0]]]]> : tensor<1x1x3x3xf32>
      %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
      func.return %y : tensor<1x1x5x5xf32>
    }
    """
    artifact = pconv_mlir.compile(text)
    try:
        x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
        weight = torch.tensor([[[[0.0, 1.0, 0.0], [2.0, 3.0, 4.0], [0.0, 0.0, 0.0]]]])
        expected = torch.nn.functional.conv2d(torch.from_numpy(x), weight, padding=1).numpy()
        np.testing.assert_allclose(artifact(x), expected, rtol=1e-6)
    finally:
        artifact.close()


def test_batchnorm_folds_into_the_pattern_sparse_conv():
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 5, 3, stride=2), nn.BatchNorm2d(5), nn.ReLU(),
    )  # fmt: skip
    for bn in (model[1], model[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
    model.eval()
    pruning.prune_model(model, patterns=3, connectivity=2.0)
    x = torch.randn(2, 3, 9, 9)
    artifact = pconv_mlir.compile(model, x)
    try:
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
        # The BatchNorm went into the convs: no elementwise generic is left between them.
        assert "linalg.generic" not in artifact.mlir
    finally:
        artifact.close()


# --------------------------------------------------------------------------------------------
# Misuse of the API: each gets a clear error or the right behaviour
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"unroll_rows": "3"}, "schedule unroll_rows = '3' is not an integer"),
        ({"opt_level": 9}, "opt_level = 9 is outside 0..3"),
        ({"connectivity": "3.6"}, "connectivity = '3.6' is not a number"),
        ({"lre": "yes"}, "lre = 'yes' is not True or False"),
    ],
)
def test_ill_typed_options_are_option_errors(options, message):
    with pytest.raises(errors.OptionError, match=message):
        pconv_mlir.compile("func.func @f() { func.return }", **options)


def test_unknown_target_and_program_kind():
    with pytest.raises(PconvError, match="unknown target 'gpu'"):
        pconv_mlir.compile("func.func @f() { func.return }", target="gpu")
    with pytest.raises(PconvError, match="cannot compile a int"):
        pconv_mlir.compile(3)


def test_calls_are_checked_and_a_closed_artifact_refuses(model):
    x = torch.randn(1, 3, 8, 8)
    artifact = pconv_mlir.compile(model, x)
    with pytest.raises(TypeError, match="expected 1 inputs, got 2"):
        artifact(x, x)
    with pytest.raises(TypeError, match="input 0 is complex"):
        artifact(np.zeros((1, 3, 8, 8), dtype=np.complex64))
    with pytest.raises(ValueError, match=r"input 0 of shape \(1, 3, 9, 8\)"):
        artifact(torch.randn(1, 3, 9, 8))
    artifact.close()
    with pytest.raises(errors.RunError, match="closed"):
        artifact(x)


def test_a_model_in_training_mode_is_compiled_in_eval_mode_with_a_warning():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    model[1].running_mean.uniform_(-1, 1)
    pruning.prune_model(model, patterns=2, connectivity=1.0)
    model.train()
    x = torch.randn(2, 3, 6, 6)
    with pytest.warns(UserWarning, match="training mode; it is compiled in eval mode"):
        artifact = pconv_mlir.compile(model, x)
    try:
        assert model.training  # the caller's model is left as it was
        expected = model.eval()(x).detach().numpy()
        np.testing.assert_allclose(artifact(x), expected, rtol=1e-4, atol=1e-5)
    finally:
        artifact.close()


def test_printed_ir_is_the_same_when_compiled_twice(model):
    """Regression: the second compile in a process renamed the weights' resource keys `_0`."""
    x = torch.randn(1, 3, 8, 8)
    first = pconv_mlir.compile(model, x)
    second = pconv_mlir.compile(model, x)
    try:
        assert first.mlir == second.mlir
    finally:
        first.close()
        second.close()

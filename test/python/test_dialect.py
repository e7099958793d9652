"""The pconv ops' reference semantics equal torch's conv2d on the masked dense weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from xdsl.builder import ImplicitBuilder
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Float32Type,
    IntegerType,
    ModuleOp,
    TensorType,
)
from xdsl.utils.exceptions import VerifyException

from pconv_mlir import fkw as fkw_format
from pconv_mlir import reference
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import (
    FkwConv2dOp,
    PatternSetAttr,
    ScheduleAttr,
    conv_output_size,
)
from pconv_mlir.elements import dense_constant
from pconv_mlir.errors import PconvError
from pconv_mlir.interpreter import run_function
from pconv_mlir.ir import make_context, parse_module, print_module
from pconv_mlir.pipeline import run_pipeline
from pconv_mlir.tools import pconv_opt

f32 = Float32Type()
i32 = IntegerType(32)

# Odd shapes: channels not a multiple of a vector width, stride 2, padding 0 and 1, batch > 1.
CASES = [
    # n, c, f, h, w, stride, pad, dilation, k, bias, relu
    (1, 1, 1, 3, 3, 1, 0, 1, 1, False, False),
    (2, 3, 5, 7, 9, 1, 1, 1, 3, True, True),
    (3, 5, 7, 11, 6, 2, 1, 1, 8, True, False),
    (1, 7, 3, 9, 13, 2, 0, 1, 4, False, True),
    (2, 9, 6, 10, 10, 1, 1, 2, 6, True, True),
    (1, 13, 11, 5, 17, 2, 1, 1, 12, False, False),
]


def random_layer(rng: np.random.Generator, f: int, c: int, k: int):
    """A pattern-sparse weight with K random patterns and about 1 kernel in 3 pruned."""
    return random_pattern_layer(rng, f, c, k, rate=1.5)


def torch_conv(x, weight, bias, stride, pad, dil, relu):
    out = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight).double(),
        None if bias is None else torch.from_numpy(bias).double(),
        stride=stride,
        padding=pad,
        dilation=dil,
    )
    return (torch.relu(out) if relu else out).numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}f{}h{}w{}s{}p{}d{}k{}".format(*c[:9]))
def test_conv2d_matches_torch(case):
    n, c, f, h, w, stride, pad, dil, k, has_bias, relu = case
    rng = np.random.default_rng(hash(case) % 2**32)
    patterns, ids, weight = random_layer(rng, f, c, k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32) if has_bias else None
    module = conv2d_module(
        x.shape, weight, bias, patterns, ids, (stride, stride), (pad, pad), (dil, dil), relu
    )
    # The printed module goes through an (empty) pipeline, parses back and computes the same.
    module = parse_module(run_pipeline(print_module(module), ""), make_context())
    args = (x,) if bias is None else (x, bias)
    (got,) = run_function(module, "conv", *args)
    expected = torch_conv(x, weight, bias, stride, pad, dil, relu)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "case", CASES[1:], ids=lambda c: "n{}c{}f{}h{}w{}s{}p{}d{}k{}".format(*c[:9])
)
def test_fkw_matches_torch(case):
    n, c, f, h, w, stride, pad, dil, k, has_bias, relu = case
    rng = np.random.default_rng(1 + hash(case) % 2**32)
    patterns, ids, weight = random_layer(rng, f, c, k)
    order = rng.permutation(f)
    fkw = fkw_format.pack(weight, ids, patterns, order)
    unpacked, unpacked_ids = fkw_format.unpack(fkw, patterns, c)
    np.testing.assert_array_equal(unpacked, weight)
    np.testing.assert_array_equal(unpacked_ids, ids)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32) if has_bias else None

    oh, ow = conv_output_size(h, stride, pad, dil), conv_output_size(w, stride, pad, dil)
    out_type = TensorType(f32, (n, f, oh, ow))
    inputs = [TensorType(f32, x.shape)] + ([TensorType(f32, (f,))] if has_bias else [])
    module = ModuleOp([])
    with ImplicitBuilder(module.body):
        fn = func.FuncOp("conv", (inputs, [out_type]))
        with ImplicitBuilder(fn.body) as args:
            consts = [dense_constant(a).result for a in fkw.arrays()]
            op = FkwConv2dOp(
                args[0],
                consts,
                args[1] if has_bias else None,
                out_type,
                PatternSetAttr.get(patterns),
                ScheduleAttr.get(vector_width=4),
                (stride, stride),
                (pad, pad),
                (dil, dil),
                relu,
            )
            func.ReturnOp(op.result)
    module.verify()
    (got,) = run_function(module, "conv", *((x,) if bias is None else (x, bias)))
    np.testing.assert_allclose(
        got, torch_conv(x, weight, bias, stride, pad, dil, relu), rtol=1e-4, atol=1e-4
    )


def test_pattern_set_helpers():
    ps = PatternSetAttr.get([[4, 1, 3, 5], [3, 4, 5, 7]])
    assert ps.patterns == [(1, 3, 4, 5), (3, 4, 5, 7)]
    assert ps.taps.data == 4 and len(ps) == 2
    masks = ps.mask_array()
    assert masks.shape == (2, 3, 3) and masks[0].sum() == 4 and masks[:, 1, 1].all()
    dense = PatternSetAttr.dense()
    assert dense.taps.data == 9 and dense.mask_array().all()


@pytest.mark.parametrize(
    "patterns, taps, centre, message",
    [
        ([[1, 3, 4, 5], [1, 3, 4, 5]], 4, True, "duplicates pattern 0"),
        ([[1, 3, 4]], 4, True, "pattern 0 has 3 taps, the set allows 4"),
        ([[0, 1, 2, 3]], 4, True, "lacks the centre tap 4"),
        ([], 4, True, "holds no pattern"),
    ],
)
def test_pattern_set_verifier(patterns, taps, centre, message):
    with pytest.raises(VerifyException, match=message):
        PatternSetAttr.get(patterns, taps, centre) if patterns else PatternSetAttr.get([], 4)


def test_pattern_set_without_centre_allowed():
    assert PatternSetAttr.get([[0, 1, 2, 3]], centre=False).centre.data == 0


def test_schedule_defaults_and_errors():
    assert ScheduleAttr.get().as_dict() == ScheduleAttr.DEFAULTS
    assert ScheduleAttr.get(vector_width=16).vector_width.data == 16
    with pytest.raises(VerifyException, match="not a power of two"):
        ScheduleAttr.get(vector_width=12)
    with pytest.raises(ValueError, match="unknown schedule parameter 'tile'"):
        ScheduleAttr.get(tile=3)


def test_dense_reference_is_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    got = reference.dense_conv2d(x, w, None, (2, 1), (1, 0), (1, 1))
    np.testing.assert_allclose(
        got, torch_conv(x, w, None, (2, 1), (1, 0), 1, False), rtol=1e-5, atol=1e-5
    )


RESOURCE_CONV = """
func.func @f(%x: tensor<1x1x5x5xf32>) -> tensor<1x1x5x5xf32> {
  %w = arith.constant dense_resource<w> : tensor<1x1x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}
"""


def resource_text(weights: list[float]) -> str:
    blob = (4).to_bytes(4, "little") + np.asarray(weights, dtype="<f4").tobytes()
    return (
        RESOURCE_CONV
        + '{-#\n  dialect_resources: {\n    builtin: {\n      w: "0x'
        + (blob.hex().upper() + '"\n    }\n  }\n#-}\n')
    )


def test_verifier_checks_dense_resource_weights():
    """Regression: weights from torch-mlir are dense_resource; the verifier skipped them."""
    good = [0, 1, 0, 2, 3, 4, 0, 0, 0]
    bad = [0, 1, 0, 2, 3, 4, 0, 0, 5]  # tap 8 is outside pattern [1, 3, 4, 5]
    assert "pconv.conv2d" in run_pipeline(resource_text(good), "")
    message = r"<string>:4:3: error: 'pconv.conv2d' op weight \(0, 0\) is nonzero at tap 8"
    with pytest.raises(PconvError, match=message):
        run_pipeline(resource_text(bad), "")


def test_pconv_opt_verifies_dense_resource_weights(tmp_path, capsys):
    path = tmp_path / "bad.mlir"
    path.write_text(resource_text([0, 1, 0, 2, 3, 4, 0, 0, 5]))
    assert pconv_opt.main([str(path)]) == 1
    expected = "'pconv.conv2d' op weight (0, 0) is nonzero at tap 8 outside pattern 0"
    assert capsys.readouterr().err == f"{path}:4:3: error: {expected}\n"

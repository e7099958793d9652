"""pconv-fkr and pconv-fkw-pack keep the numbers: torch's conv2d on the masked dense weights."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import Conv2dOp, FkwConv2dOp
from pconv_mlir.interpreter import run_function
from pconv_mlir.passes.pconv_fkr import filter_order, group_bounds, load_imbalance
from pconv_mlir.pipeline import Pipeline

# n, c, f, h, w, stride, padding, K, connectivity rate, group size
CASES = [
    (1, 1, 1, 3, 3, 1, 0, 1, 1.0, 1),
    (2, 3, 5, 7, 9, 1, 1, 3, 2.0, 2),
    (3, 13, 7, 11, 6, 2, 1, 8, 3.6, 4),
    (1, 17, 9, 9, 13, 2, 0, 12, 8.0, 3),
    (2, 67, 19, 5, 5, 1, 1, 8, 3.6, 8),
]


def torch_conv(x, weight, bias, stride, pad):
    out = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight).double(),
        torch.from_numpy(bias).double(),
        stride=stride,
        padding=pad,
    )
    return torch.relu(out).numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}f{}h{}w{}s{}p{}k{}r{}g{}".format(*c))
def test_fkr_then_fkw_pack_matches_torch(case):
    n, c, f, h, w, stride, pad, k, rate, group = case
    rng = np.random.default_rng(sum(case[:8]))
    patterns, ids, weight = random_pattern_layer(rng, f, c, k, rate)
    bias = rng.standard_normal(f).astype(np.float32)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    module = conv2d_module(
        x.shape, weight, bias, patterns, ids, (stride, stride), (pad, pad), relu=True
    )
    expected = torch_conv(x, weight, bias, stride, pad)

    Pipeline(f"pconv-fkr{{group_size={group}}}").run(module)
    (conv,) = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert list(conv.filter_order.get_values()) == filter_order(ids, k)
    (got,) = run_function(module, "conv", x, bias)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

    Pipeline("pconv-fkw-pack{vector_width=4}").run(module)
    assert not any(isinstance(op, Conv2dOp) for op in module.walk())
    (fkw,) = [op for op in module.walk() if isinstance(op, FkwConv2dOp)]
    assert list(fkw.filter_groups.get_values()) == group_bounds(f, group)
    (got,) = run_function(module, "conv", x, bias)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_fkr_order_groups_equal_filters_and_never_worsens_balance():
    rng = np.random.default_rng(3)
    for _ in range(50):
        f, c, k = rng.integers(1, 40), rng.integers(1, 40), rng.integers(1, 9)
        _, ids, _ = random_pattern_layer(rng, int(f), int(c), int(k), float(rng.uniform(1, 6)))
        order = filter_order(ids, int(k))
        assert sorted(order) == list(range(f))
        lengths = (ids >= 0).sum(axis=1)[order]
        assert all(a >= b for a, b in pairwise(lengths))
        for g in (1, 2, 4, 8):
            bounds = group_bounds(int(f), g)
            assert (
                load_imbalance(ids, order, bounds)
                <= load_imbalance(ids, list(range(f)), bounds) + 1e-12
            )


def test_fkr_puts_equal_pattern_mixes_side_by_side():
    ids = np.array([[0, 1, -1], [2, 2, 2], [1, -1, 0], [2, 2, 2], [0, -1, 1]])
    assert filter_order(ids, 3) == [1, 3, 0, 2, 4]

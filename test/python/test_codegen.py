"""The generated code computes torch's conv2d on the masked dense weights, on the host and on
aarch64 under qemu, over randomised shapes that reach every code path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pconv_mlir import fkw
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import conv_output_size
from pconv_mlir.patterns import kernel_mask
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.runtime.runners import build_runner


def random_case(rng: np.random.Generator) -> dict:
    """Channels 1..67, H/W 1..33, stride 1/2, padding 0/1, K 1..12, connectivity 1..8, batch 1..3,
    a register tile of 1..4 rows x 1..3 vectors, 1..2 partial sums, 1..3 filters in lock-step,
    and channel blocks of 3, 8 or 16 channels or none."""
    h, w = int(rng.integers(1, 34)), int(rng.integers(1, 34))
    stride = int(rng.integers(1, 3))
    padding = 1 if min(h, w) < 3 else int(rng.integers(0, 2))
    return {
        "n": int(rng.integers(1, 4)),
        "c": int(rng.integers(1, 68)),
        "f": int(rng.integers(1, 68)),
        "h": h,
        "w": w,
        "stride": stride,
        "padding": padding,
        "k": int(rng.integers(1, 13)),
        "rate": float(rng.uniform(1, 8)),
        "bias": bool(rng.integers(0, 2)),
        "relu": bool(rng.integers(0, 2)),
        "rows": int(rng.integers(1, 5)),
        "cols": int(rng.integers(1, 4)),
        "partials": int(rng.integers(1, 3)),
        "filters": int(rng.integers(1, 4)),
        "tile_channels": int(rng.choice([0, 0, 3, 8, 16])),
    }


def check_case(
    case: dict, target: str, vector_width: int, seed: int, layer: tuple | None = None
) -> None:
    """Compile `case` (with `layer` = (patterns, ids, weight), else a random layer), run it on
    `target` and compare with torch."""
    rng = np.random.default_rng(seed)
    if layer is None:
        layer = random_pattern_layer(rng, case["f"], case["c"], case["k"], case["rate"])
    patterns, ids, weight = layer
    bias = rng.standard_normal(case["f"]).astype(np.float32) if case["bias"] else None
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    s, p = case["stride"], case["padding"]
    residual = case.get("residual", False)
    module = conv2d_module(
        x.shape, weight, bias, patterns, ids, (s, s), (p, p), relu=case["relu"], residual=residual
    )
    Pipeline(
        f"pconv-fkr{{group_size=4}},pconv-fkw-pack{{vector_width={vector_width} "
        f"unroll_rows={case['rows']} unroll_cols={case['cols']} partial_sums={case['partials']} "
        f"unroll_filters={case['filters']} tile_channels={case['tile_channels']} "
        f"specialize={case.get('specialize', 0)} chunk_fmas={case.get('chunk_fmas', 1536)} "
        f"lane_weights={case.get('lane_weights', 0)}}},"
        "convert-pconv-to-loops,pconv-lre"
    ).run(module)
    oh = conv_output_size(case["h"], s, p, 1)
    ow = conv_output_size(case["w"], s, p, 1)
    out = np.zeros((case["n"], case["f"], oh, ow), dtype=np.float32)
    shortcut = rng.standard_normal(out.shape).astype(np.float32) if residual else None
    args = [x, *([] if bias is None else [bias]), *([] if shortcut is None else [shortcut])]
    with build_runner(module, target=target) as runner:
        runner.call("conv", *args, out)
    expected = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight).double(),
        None if bias is None else torch.from_numpy(bias).double(),
        stride=s,
        padding=p,
    )
    if shortcut is not None:
        expected = expected + torch.from_numpy(shortcut).double()
    if case["relu"]:
        expected = torch.relu(expected)
    expected = expected.numpy()
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(out - expected).max()) / scale
    assert error < 1e-4, f"{case}: max relative error {error:.2e}"


HOST_CASES = [random_case(np.random.default_rng(1000 + i)) for i in range(16)]
AARCH64_CASES = [random_case(np.random.default_rng(2000 + i)) for i in range(6)]


@pytest.mark.parametrize("i", range(len(HOST_CASES)))
def test_host_matches_torch(i: int) -> None:
    check_case(HOST_CASES[i], "host", 8, seed=i)


@pytest.mark.parametrize("i", range(len(AARCH64_CASES)))
def test_aarch64_matches_torch(i: int, need_tool) -> None:
    for tool in ("qemu-aarch64", "clang"):
        need_tool(tool)
    check_case(AARCH64_CASES[i], "aarch64", 4, seed=100 + i)


def blocked_layer_with_empty_runs() -> tuple:
    """(patterns, ids, weight): 6 filters over 10 channels, cut by tile_channels = 4 into
    blocks of 4, 4 and 2 channels, where filter 0 has no kernel in block 1, filter 1 has
    kernels in block 2 only, filter 2 none at all and filter 3 in block 0 only."""
    rng = np.random.default_rng(5)
    patterns, ids, _ = random_pattern_layer(rng, 6, 10, 3, 1.0)
    ids[0, 4:8] = -1
    ids[1, :8] = -1
    ids[2, :] = -1
    ids[3, 4:] = -1
    ids[4, ::3] = -1
    weight = rng.standard_normal((6, 10, 3, 3)).astype(np.float32)
    weight = np.where(kernel_mask(ids, patterns), weight, 0).astype(np.float32)
    return patterns, ids, weight


@pytest.mark.parametrize("filters", [1, 2, 3])
def test_host_channel_blocks_with_empty_runs(filters: int) -> None:
    """Channel blocks where C is not a multiple of tile_channels and some filters have no kernel
    in some blocks (or none at all), with filters in lock-step next to empty ones."""
    patterns, ids, weight = layer = blocked_layer_with_empty_runs()
    packed = fkw.pack(weight, ids, patterns, tile_channels=4)
    k = len(patterns)
    assert packed.blocks(k) == 3
    block_sizes = np.diff(packed.stride[:, ::k], axis=1)  # kernels per (filter, block)
    assert (block_sizes == 0).any() and (block_sizes > 0).any()
    case = {
        "n": 2,
        "c": 10,
        "f": 6,
        "h": 7,
        "w": 11,
        "stride": 1,
        "padding": 1,
        "bias": True,
        "relu": filters != 2,
        "rows": 2,
        "cols": 2,
        "partials": 2,
        "filters": filters,
        "tile_channels": 4,
    }
    check_case(case, "host", 8, seed=filters, layer=layer)


def test_cases_cover_every_path() -> None:
    cases = HOST_CASES + AARCH64_CASES
    for key, values in {
        "stride": {1, 2},
        "padding": {0, 1},
        "bias": {True, False},
        "relu": {True, False},
        "n": {1, 2, 3},
    }.items():
        assert {c[key] for c in cases} >= values, key
    # Whole tiles and ragged tiles, one-vector and multi-vector tiles.
    assert any(c["rows"] > 1 and c["cols"] > 1 for c in cases)
    assert {c["partials"] for c in cases} == {1, 2} and {c["filters"] for c in cases} == {1, 2, 3}
    assert any(c["f"] % c["filters"] for c in cases)  # a ragged last filter group
    # Several channel blocks, with and without ReLU (applied after the last block).
    assert any(c["tile_channels"] and c["c"] > 2 * c["tile_channels"] and c["relu"] for c in cases)
    assert any(c["tile_channels"] and c["c"] > c["tile_channels"] and not c["relu"] for c in cases)
    assert any(c["w"] < 8 for c in cases) and any(c["c"] > 60 for c in cases)


def test_lower_to_llvm_pass_then_llvm_ir_runs() -> None:
    """pconv-lower-to-llvm's llvm-dialect module, printed as LLVM IR and compiled, gives torch's
    answer: the pass is the same CPU pipeline as `build_runner`, in xDSL's hands."""
    from pconv_mlir.lowering.llvm import function_signatures, lower_to_llvm_ir
    from pconv_mlir.runtime.runners import build_runner_from_ir

    case = dict(random_case(np.random.default_rng(7)), relu=True, bias=True)
    rng = np.random.default_rng(0)
    patterns, ids, weight = random_pattern_layer(rng, case["f"], case["c"], case["k"], case["rate"])
    bias = rng.standard_normal(case["f"]).astype(np.float32)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    s, p = case["stride"], case["padding"]
    module = conv2d_module(x.shape, weight, bias, patterns, ids, (s, s), (p, p), relu=True)
    Pipeline("pconv-fkr,pconv-fkw-pack{vector_width=8}").run(module)
    signatures = function_signatures(module)
    Pipeline("pconv-lower-to-llvm").run(module, None)
    assert all(op.name.startswith(("llvm.", "builtin.")) for op in module.walk())
    out = np.zeros(signatures["conv"].args[-1].shape, dtype=np.float32)
    with build_runner_from_ir(lower_to_llvm_ir(module), signatures) as runner:
        runner.call("conv", x, bias, out)
    expected = torch.relu(
        F.conv2d(
            torch.from_numpy(x),
            torch.from_numpy(weight),
            torch.from_numpy(bias),
            stride=s,
            padding=p,
        )
    ).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


SPECIALIZED_CASES = [
    # Ragged tiles (9 x 13 output, 2 x 2 tile of 8 lanes), many chunks, a short last group.
    {"n": 2, "c": 13, "f": 11, "h": 9, "w": 13, "stride": 1, "padding": 1, "k": 8, "rate": 2.0,
     "bias": True, "relu": True, "rows": 2, "cols": 2, "filters": 3, "chunk_fmas": 64},
    # Stride 2, padding 0, a row narrower than a vector, one chunk per group, no bias.
    {"n": 1, "c": 20, "f": 7, "h": 10, "w": 7, "stride": 2, "padding": 0, "k": 5, "rate": 3.6,
     "bias": False, "relu": False, "rows": 1, "cols": 1, "filters": 4},
    # A residual added before the ReLU, every kernel kept (no connectivity pruning), 6 filters.
    {"n": 1, "c": 9, "f": 14, "h": 8, "w": 17, "stride": 1, "padding": 1, "k": 4, "rate": 1.0,
     "bias": True, "relu": True, "residual": True, "rows": 3, "cols": 1, "filters": 6,
     "chunk_fmas": 200},
]  # fmt: skip
"""`specialize = 1` cases; `partials` and `tile_channels` are set (and ignored by it)."""


@pytest.mark.parametrize("i", range(len(SPECIALIZED_CASES)))
def test_host_specialized_matches_torch(i: int) -> None:
    case = {"partials": 2, "tile_channels": 8, **SPECIALIZED_CASES[i], "specialize": 1}
    check_case(case, "host", 8, seed=300 + i)


def test_aarch64_specialized_matches_torch(need_tool) -> None:
    for tool in ("qemu-aarch64", "clang"):
        need_tool(tool)
    case = {"partials": 1, "tile_channels": 0, **SPECIALIZED_CASES[0], "specialize": 1}
    check_case(case, "aarch64", 4, seed=310)


@pytest.mark.parametrize("filters", [2, 4])
def test_host_specialized_filters_without_kernels(filters: int) -> None:
    """Specialised code where a filter has no kernel at all (its output is the bias) and others
    have kernels in a few channels only, in groups with and without such filters."""
    layer = blocked_layer_with_empty_runs()
    case = {"n": 1, "c": 10, "f": 6, "h": 6, "w": 9, "stride": 1, "padding": 1, "bias": True,
            "relu": True, "rows": 2, "cols": 1, "partials": 1, "filters": filters,
            "tile_channels": 0, "specialize": 1, "chunk_fmas": 16}  # fmt: skip
    check_case(case, "host", 8, seed=filters, layer=layer)


def test_overlap_groups_share_reads() -> None:
    """The greedy grouping puts filters that read the same (channel, tap) pairs together and
    covers every filter once; ties go to the larger filter, then the lower index."""
    uses = np.zeros((6, 8), dtype=bool)
    uses[[0, 3], :4] = True  # filters 0 and 3 read the first half
    uses[[1, 4], 4:] = True  # 1 and 4 the second
    uses[2, :2] = uses[5, 6:] = True  # 2 shares with 0 and 3, 5 with 1 and 4
    groups = fkw.overlap_groups(uses, 3)
    assert groups == [[0, 3, 2], [1, 4, 5]]
    assert fkw.overlap_groups(uses, 4) == [[0, 3, 2, 1], [4, 5]]
    assert sorted(f for g in fkw.overlap_groups(uses, 1) for f in g) == list(range(6))


@pytest.mark.parametrize("specialize", [0, 1])
def test_aarch64_lane_weights_match_torch(specialize: int, need_tool) -> None:
    """`lane_weights` (the AArch64 default: a kernel's weights in one vector, multiplied by
    lane) on NEON under qemu, in the loop code and in specialised code."""
    for tool in ("qemu-aarch64", "clang"):
        need_tool(tool)
    case = {**AARCH64_CASES[1], "lane_weights": 1, "specialize": specialize, "chunk_fmas": 100}
    check_case(case, "aarch64", 4, seed=320 + specialize)


def test_host_lane_weights_match_torch() -> None:
    case = {**HOST_CASES[2], "lane_weights": 1}
    check_case(case, "host", 8, seed=330)


def test_lane_weights_are_the_aarch64_default_only() -> None:
    from pconv_mlir.backends import get_backend

    assert get_backend("aarch64").schedule_defaults()["lane_weights"] == 1
    assert "lane_weights" not in get_backend("host").schedule_defaults()


def dense_layer(rng: np.random.Generator, filters: int, channels: int, window: int = 3) -> tuple:
    """(patterns, ids, weight) of a dense layer: one pattern of every tap, every kernel kept."""
    taps = window * window
    ids = np.zeros((filters, channels), dtype=np.int64)
    weight = rng.standard_normal((filters, channels, window, window)).astype(np.float32)
    return [tuple(range(taps))], ids, weight


SHARED_CASES = [
    # 3 filters in lock-step, a ragged last group (10 = 3 * 3 + 1), ragged tiles, 2 partial sums.
    {"n": 2, "c": 7, "f": 10, "h": 9, "w": 13, "stride": 1, "padding": 1, "bias": True,
     "relu": True, "rows": 3, "cols": 1, "partials": 2, "filters": 3, "tile_channels": 0},
    # Stride 2, channel blocks (19 channels in blocks of 8), 4 filters, a residual.
    {"n": 1, "c": 19, "f": 8, "h": 12, "w": 17, "stride": 2, "padding": 1, "bias": False,
     "relu": True, "residual": True, "rows": 2, "cols": 2, "partials": 1, "filters": 4,
     "tile_channels": 8},
    # 6 filters, one row of one vector, no padding.
    {"n": 1, "c": 5, "f": 13, "h": 6, "w": 20, "stride": 1, "padding": 0, "bias": True,
     "relu": False, "rows": 1, "cols": 1, "partials": 1, "filters": 6, "tile_channels": 0},
]  # fmt: skip
"""Dense layers (`fkw.uniform`): filters in lock-step share each input load."""


@pytest.mark.parametrize("i", range(len(SHARED_CASES)))
def test_host_shared_loads_match_torch(i: int) -> None:
    case = SHARED_CASES[i]
    layer = dense_layer(np.random.default_rng(400 + i), case["f"], case["c"])
    check_case(case, "host", 8, seed=400 + i, layer=layer)


def test_aarch64_shared_loads_match_torch(need_tool) -> None:
    for tool in ("qemu-aarch64", "clang"):
        need_tool(tool)
    case = {**SHARED_CASES[0], "lane_weights": 1}
    layer = dense_layer(np.random.default_rng(410), case["f"], case["c"])
    check_case(case, "aarch64", 4, seed=410, layer=layer)


def test_uniform_filters() -> None:
    """`fkw.uniform`: true for a dense layer (with or without channel blocks) and for filters
    with the same kernels; false when one filter lacks a kernel or has another pattern."""
    rng = np.random.default_rng(6)
    patterns, ids, weight = dense_layer(rng, 5, 11)
    assert fkw.uniform(fkw.pack(weight, ids, patterns))
    assert fkw.uniform(fkw.pack(weight, ids, patterns, tile_channels=4))
    patterns, ids, weight = random_pattern_layer(rng, 4, 6, 2, 1.0)
    ids[:] = ids[0]
    weight = np.where(kernel_mask(ids, patterns), weight[:1], 0).astype(np.float32)
    assert fkw.uniform(fkw.pack(weight, ids, patterns))
    ids[2, 3] = -1
    assert not fkw.uniform(fkw.pack(weight * kernel_mask(ids, patterns), ids, patterns))
    ids[2, 3] = 1 - ids[0, 3]
    assert not fkw.uniform(fkw.pack(weight * kernel_mask(ids, patterns), ids, patterns))

"""Tests of pconv_mlir.pruning: pattern sets, projections, connectivity, ADMM and retraining."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from pconv_mlir.pruning import (
    CENTRE,
    PruneResult,
    admm_prune,
    candidate_patterns,
    connectivity_mask,
    global_connectivity_masks,
    hard_prune,
    kept_kernel_count,
    pattern_ids,
    project_to_patterns,
    prunable_convs,
    prune_model,
    pruning_rate,
    retrain_masked,
    select_pattern_set,
)

SET8 = [(1, 3, 4, 5), (1, 4, 5, 7), (3, 4, 5, 7), (1, 3, 4, 7), (0, 1, 3, 4), (1, 2, 4, 5)]
SET8 += [(3, 4, 6, 7), (4, 5, 7, 8)]


def kernel_with(taps: tuple[int, ...], value: float = 1.0) -> np.ndarray:
    k = np.zeros(9, dtype=np.float32)
    k[list(taps)] = value
    return k.reshape(3, 3)


def assert_pattern_sparse(w: torch.Tensor, ids: np.ndarray, patterns: list[tuple[int, ...]]):
    """Every kept kernel has exactly its pattern's taps nonzero; every removed kernel is zero."""
    flat = w.detach().reshape(w.shape[0], w.shape[1], 9)
    for f, c in itertools.product(range(w.shape[0]), range(w.shape[1])):
        nz = tuple(int(t) for t in torch.nonzero(flat[f, c]).flatten())
        if ids[f, c] < 0:
            assert nz == (), (f, c)
        else:
            assert nz == patterns[ids[f, c]], (f, c)


class Net(nn.Module):
    """A 3x3 conv with 3 inputs, a 3x3 conv, a 1x1 conv, a depthwise 3x3 conv and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.point = nn.Conv2d(16, 12, 1)
        self.depth = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.conv3 = nn.Conv2d(12, 10, 3, stride=2)
        self.head = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.depth(self.point(x)))
        x = torch.relu(self.conv3(x))
        return self.head(x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------------------------
# Candidates and pattern set selection
# ----------------------------------------------------------------------------------------------


def test_candidates_are_the_56_centre_shapes():
    cands = candidate_patterns()
    assert len(cands) == 56 == len(set(cands))
    assert all(len(p) == 4 and CENTRE in p and list(p) == sorted(p) for p in cands)
    assert cands == sorted(cands) == candidate_patterns(4, True)
    assert len(candidate_patterns(4, centre=False)) == 126
    assert candidate_patterns(1) == [(4,)]
    with pytest.raises(ValueError, match="taps=10"):
        candidate_patterns(10)


@pytest.mark.parametrize("k", [0, 57, -1])
def test_select_k_out_of_range(k: int):
    w = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match=f"k={k} is out of range: choose 1 to 56"):
        select_pattern_set([w], k=k)


def test_select_k_bounds_inclusive():
    w = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    assert len(select_pattern_set([w], k=1)) == 1
    every = select_pattern_set([w], k=56)
    assert sorted(every) == candidate_patterns()


def test_select_picks_most_frequent():
    a, b, c = (1, 3, 4, 5), (4, 5, 7, 8), (0, 1, 2, 4)
    rng = np.random.default_rng(0)
    kernels = [kernel_with(a)] * 10 + [kernel_with(b)] * 6 + [kernel_with(c)] * 3
    # Noise outside the shape that never outweighs it, so each kernel's best shape is its own.
    w = np.stack(kernels)[:, None] + 0.01 * rng.random((19, 1, 3, 3)).astype(np.float32)
    w2 = np.stack([kernel_with(b)] * 5)[None]  # a second layer: b is now 11 vs a's 10
    assert select_pattern_set([w], k=2) == [a, b]
    assert select_pattern_set([w, w2], k=3) == [b, a, c]
    assert select_pattern_set([torch.from_numpy(w), torch.from_numpy(w2)], k=3) == [b, a, c]
    # K larger than the number of shapes seen: filled deterministically, still K distinct patterns.
    filled = select_pattern_set([w], k=8)
    assert filled[:3] == [a, b, c] and len(set(filled)) == 8
    assert filled == select_pattern_set([w], k=8)


def test_select_from_module_uses_only_3x3_convs():
    torch.manual_seed(0)
    net = Net()
    names = [n for n, _ in prunable_convs(net)]
    assert names == ["conv1", "conv2", "conv3"]
    weights = [net.conv1.weight, net.conv2.weight, net.conv3.weight]
    assert select_pattern_set(net, k=8) == select_pattern_set(weights, k=8)


# ----------------------------------------------------------------------------------------------
# Projection and pattern ids
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [False, True])
def test_projection_keeps_max_norm_pattern(as_tensor: bool):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 7, 3, 3)).astype(np.float32)
    arg = torch.from_numpy(w) if as_tensor else w
    projected, ids = project_to_patterns(arg, SET8)
    assert type(projected) is type(arg) and projected.dtype == arg.dtype
    assert ids.shape == (5, 7) and ids.dtype == np.int64
    proj = projected.numpy() if as_tensor else projected
    for f, c in itertools.product(range(5), range(7)):
        flat = w[f, c].reshape(9)
        kept = [float(np.sum(flat[list(p)].astype(np.float64) ** 2)) for p in SET8]
        best = int(np.argmax(kept))
        assert ids[f, c] == best
        expect = np.zeros(9, dtype=np.float32)
        expect[list(SET8[best])] = flat[list(SET8[best])]
        np.testing.assert_array_equal(proj[f, c].reshape(9), expect)


def test_projection_of_zero_kernel_is_removed():
    w = np.ones((2, 2, 3, 3), dtype=np.float32)
    w[1, 0] = 0
    projected, ids = project_to_patterns(w, SET8)
    assert ids[1, 0] == -1 and not projected[1, 0].any()
    assert (ids[[0, 0, 1], [0, 1, 1]] == 0).all()  # all-equal kernels: first pattern on the tie


def test_pattern_ids_roundtrip():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 5, 3, 3))
    projected, ids = project_to_patterns(w, SET8)
    projected[2, 3] = 0
    ids[2, 3] = -1
    np.testing.assert_array_equal(pattern_ids(projected, SET8), ids)
    np.testing.assert_array_equal(pattern_ids(torch.from_numpy(projected), SET8), ids)


def test_pattern_ids_subset_and_exact_match():
    patterns = [(1, 3, 4, 5), (4,), (3, 4)]
    w = np.stack([kernel_with((4,)), kernel_with((3, 4)), kernel_with((1, 4))])[None]
    # (4,) matches pattern 1 exactly; (3, 4) pattern 2 exactly; (1, 4) only fits inside pattern 0.
    np.testing.assert_array_equal(pattern_ids(w, patterns), [[1, 2, 0]])


def test_pattern_ids_error_names_kernel():
    w = np.zeros((2, 3, 3, 3), dtype=np.float32)
    w[0, 0] = kernel_with((1, 3, 4, 5))
    w[1, 2] = kernel_with((0, 2, 4, 8))
    with pytest.raises(ValueError, match=r"kernel \(f=1, c=2\) has nonzero taps \(0, 2, 4, 8\)"):
        pattern_ids(w, SET8)


def test_bad_patterns_and_shapes_are_rejected():
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"pattern \(4, 1\)"):
        project_to_patterns(w, [(4, 1)])
    with pytest.raises(ValueError, match=r"pattern \(1, 4\) appears twice"):
        project_to_patterns(w, [(1, 4), (1, 4)])
    with pytest.raises(ValueError, match=r"shape \(1, 1, 5, 5\)"):
        project_to_patterns(np.ones((1, 1, 5, 5)), SET8)


# ----------------------------------------------------------------------------------------------
# Connectivity
# ----------------------------------------------------------------------------------------------


def test_kept_kernel_count():
    assert kept_kernel_count(512, 3.6) == 142  # 142.2
    assert kept_kernel_count(18, 3.6) == 5  # 5.0
    assert kept_kernel_count(9, 2) == 5  # 4.5 rounds up
    assert kept_kernel_count(2, 3.6) == 1  # at least one
    assert kept_kernel_count(7, 1) == 7
    with pytest.raises(ValueError, match="below 1"):
        kept_kernel_count(7, 0.5)


def test_connectivity_keeps_largest_norms():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 9, 3, 3)).astype(np.float32)
    mask = connectivity_mask(w, 3.6)
    assert mask.shape == (8, 9) and mask.dtype == bool
    assert mask.sum() == round(72 / 3.6) == 20
    norms = np.sqrt((w.astype(np.float64) ** 2).sum(axis=(2, 3)))
    assert norms[mask].min() > norms[~mask].max()
    np.testing.assert_array_equal(connectivity_mask(torch.from_numpy(w), 3.6), mask)
    assert connectivity_mask(w, 1).all()


def test_global_connectivity():
    rng = np.random.default_rng(4)
    big = 10 * rng.standard_normal((6, 6, 3, 3))
    small = 0.1 * rng.standard_normal((4, 4, 3, 3))
    masks = global_connectivity_masks([big, small], 3.6)
    # 52 kernels -> 14 kept by norm: all from the big layer, plus the small layer's largest kernel.
    assert masks[0].sum() == 14 and masks[1].sum() == 1
    small_norms = (small**2).sum(axis=(2, 3))
    assert small_norms[masks[1]].item() == small_norms.max()


# ----------------------------------------------------------------------------------------------
# Model-level one-shot pruning
# ----------------------------------------------------------------------------------------------


def test_prune_model_layer_scope():
    torch.manual_seed(0)
    net = Net()
    untouched = {n: net.get_parameter(f"{n}.weight").detach().clone() for n in ("point", "depth")}
    result = prune_model(net, patterns=8, connectivity=3.6)
    assert len(result.patterns) == 8 and result.exempt == ("conv1",)
    assert set(result.ids) == {"conv1", "conv2", "conv3"}
    assert (result.ids["conv1"] >= 0).all()  # first conv: pattern-pruned, connectivity exempt
    assert (result.ids["conv2"] >= 0).sum() == kept_kernel_count(16 * 8, 3.6)
    assert (result.ids["conv3"] >= 0).sum() == kept_kernel_count(10 * 12, 3.6)
    for name, conv in prunable_convs(net):
        assert_pattern_sparse(conv.weight, result.ids[name], result.patterns)
        np.testing.assert_array_equal(pattern_ids(conv.weight, result.patterns), result.ids[name])
    for name, w in untouched.items():
        assert torch.equal(net.get_parameter(f"{name}.weight"), w)

    summary = pruning_rate(net)
    assert summary.weights == 9 * (3 * 8 + 8 * 16 + 12 * 10)
    assert summary.weights_kept == 4 * (24 + 36 + 33)
    assert summary.removed_fraction == pytest.approx(1 - 4 * 93 / summary.weights)
    assert result.summary.weights_kept == summary.weights_kept
    # Per image: conv1/conv2 produce 6x6 outputs on a 6x6 input, conv3 (stride 2, no padding) 2x2.
    per_image = pruning_rate(net, torch.zeros(2, 3, 6, 6))
    assert [layer.positions for layer in per_image.layers] == [36, 36, 4]
    assert per_image.macs == 9 * 36 * (24 + 128) + 9 * 4 * 120
    assert per_image.macs_kept == 4 * 36 * (24 + 36) + 4 * 4 * 33
    assert "total" in str(per_image) and "MAC reduction" in str(per_image)


def test_prune_model_options():
    torch.manual_seed(1)
    net = Net()
    result = prune_model(net, patterns=SET8[:4], connectivity=3.6, skip_first=False)
    assert result.patterns == SET8[:4] and result.exempt == ()
    assert (result.ids["conv1"] >= 0).sum() == kept_kernel_count(24, 3.6)

    torch.manual_seed(1)
    net = Net()
    result = prune_model(net, patterns=8, connectivity=3.6, scope="global")
    kept = sum(int((result.ids[n] >= 0).sum()) for n in ("conv2", "conv3"))
    assert kept == kept_kernel_count(128 + 120, 3.6)
    assert (result.ids["conv1"] >= 0).all()

    net = Net()
    result = prune_model(net, patterns=2, connectivity=1)
    assert all((ids >= 0).all() for ids in result.ids.values())
    with pytest.raises(ValueError, match="scope='all'"):
        prune_model(Net(), scope="all")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# ADMM, hard prune and masked retraining
# ----------------------------------------------------------------------------------------------


def synthetic_loader(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 3, 6, 6, generator=g)
    y = (x[:, 0, :3].mean(dim=(1, 2)) > x[:, 1, 3:].mean(dim=(1, 2))).long()
    y += 2 * (x[:, 2].mean(dim=(1, 2)) > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]


def test_admm_then_retrain_keeps_masks_exact():
    torch.manual_seed(0)
    net = Net()
    loader = synthetic_loader()
    loss_fn = nn.CrossEntropyLoss()
    before = {n: c.weight.detach().clone() for n, c in prunable_convs(net)}
    result = admm_prune(net, loader, loss_fn, patterns=8, epochs=3, rho=1e-2, rho_growth=2.0)
    assert isinstance(result, PruneResult) and len(result.patterns) == 8
    assert [h["rho"] for h in result.history] == pytest.approx([1e-2, 2e-2, 4e-2])
    assert all(h["pattern_residual"] > 0 for h in result.history)
    # ADMM trains the weights but leaves them dense.
    assert not torch.equal(net.conv2.weight, before["conv2"])
    assert (net.conv2.weight != 0).all()

    hard_prune(net, result)
    for name, conv in prunable_convs(net):
        assert_pattern_sparse(conv.weight, result.ids[name], result.patterns)
    pruned = {n: c.weight.detach().clone() for n, c in prunable_convs(net)}

    # SGD with momentum and weight decay would revive masked weights if they were not held at 0.
    losses = retrain_masked(
        net,
        result,
        loader,
        loss_fn,
        epochs=3,
        optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    )
    assert len(losses) == 3
    for name, conv in prunable_convs(net):
        w = conv.weight
        mask = result.weight_mask(name)
        assert (w[~mask] == 0).all()
        assert not torch.equal(w, pruned[name])  # the kept weights did train
        kept = result.ids[name] >= 0
        assert ((w != 0).reshape(*kept.shape, 9).sum(dim=2)[torch.from_numpy(kept)] == 4).all()
        assert_pattern_sparse(w, result.ids[name], result.patterns)
        np.testing.assert_array_equal(pattern_ids(w, result.patterns), result.ids[name])
    assert (result.ids["conv2"] >= 0).sum() == kept_kernel_count(128, 3.6)


def test_retrain_masked_with_plain_masks():
    torch.manual_seed(0)
    net = Net()
    mask = torch.rand(net.conv2.weight.shape) > 0.5
    retrain_masked(net, {"conv2": mask}, synthetic_loader(), nn.CrossEntropyLoss(), epochs=1)
    assert (net.conv2.weight[~mask] == 0).all() and (net.conv2.weight[mask] != 0).all()
    with pytest.raises(ValueError, match="mask for 'conv2' has shape"):
        retrain_masked(net, {"conv2": mask[:1]}, [], nn.CrossEntropyLoss(), epochs=1)

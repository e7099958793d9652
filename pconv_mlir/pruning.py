"""Pattern and connectivity pruning of 3x3 convolutions, after PatDNN / PCONV.

The sparsity the compiler consumes (DESIGN.md, "The sparsity"):

- *Pattern pruning*: every 3x3 kernel keeps 4 of its 9 taps, the centre and 3 neighbours, in one of
  K shapes of a per-network *pattern set*.
- *Connectivity pruning*: whole kernels (links from an input channel to an output channel) are
  removed by L2 norm; the papers keep 1 kernel in 3.6.

Conventions shared with the rest of the compiler:

- The taps of a 3x3 kernel are numbered row-major, ``tap = row * 3 + col``; the centre is tap 4.
- A pattern is a tuple of sorted taps, ``(1, 3, 4, 5)``; a pattern set is a list of patterns.
- A layer's pattern ids are an int array of shape ``[F, C]`` (out channels, in channels): an index
  into the pattern set, or -1 for a kernel removed by connectivity pruning (an all-zero kernel).
- Only ``nn.Conv2d`` layers with a 3x3 kernel and ``groups == 1`` are pruned; 1x1, depthwise and
  other convolutions are left alone.

Three ways in::

    result = prune_model(model, patterns=8, connectivity=3.6)  # one-shot projection, in place

    result = admm_prune(model, loader, loss_fn, epochs=10)  # extended ADMM (weights stay dense)
    hard_prune(model, result)  # zero everything outside the masks
    retrain_masked(model, result, loader, loss_fn, epochs=5)  # fine-tune, pruned weights stay 0

    patterns = select_pattern_set(model, k=8)  # or the building blocks
    projected, ids = project_to_patterns(weight, patterns)

**The first convolution.** ``skip_first=True`` (the default everywhere) exempts the first prunable
convolution (in module registration order, taken as forward order) from *connectivity* pruning; it
is still pattern-pruned, so every 3x3 layer reaches the compiler in pattern form. The first layer
has few input channels (1 to 3), so each of its kernels is a whole input-to-filter link; removing 1
in 3.6 of them would cut most filters off the image, while the layer holds a negligible share of the
network's MACs. This is the usual choice in PatDNN-style pipelines, which leave the first layer's
connectivity alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from pconv_mlir import patterns as rules

__all__ = [
    "CENTRE",
    "LayerSummary",
    "PruneResult",
    "PruningSummary",
    "admm_prune",
    "candidate_patterns",
    "connectivity_mask",
    "global_connectivity_masks",
    "hard_prune",
    "kept_kernel_count",
    "pattern_ids",
    "pattern_matrix",
    "project_to_patterns",
    "prunable_convs",
    "prune_model",
    "pruning_rate",
    "retrain_masked",
    "select_pattern_set",
]

CENTRE = rules.CENTRE_TAP
"""The tap index of the centre of a 3x3 kernel."""

Pattern = tuple[int, ...]
Scope = Literal["layer", "global"]
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""Builds an optimizer from parameters, e.g. ``lambda ps: torch.optim.SGD(ps, lr=0.01)``."""
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(model(inputs), targets)``, e.g. ``nn.CrossEntropyLoss()``."""


# --------------------------------------------------------------------------------------------------
# Patterns: the numpy rules of pconv_mlir.patterns, on tensors or arrays
# --------------------------------------------------------------------------------------------------

candidate_patterns = rules.candidate_patterns
kept_kernel_count = rules.kept_kernel_count


def pattern_matrix(patterns: Sequence[Sequence[int]]) -> np.ndarray:
    """The pattern set as a bool array ``[K, 9]``; ``m[k, tap]`` says pattern k keeps the tap.

    Raises ValueError quoting the first pattern that is not a sorted tuple of distinct taps."""
    return rules.pattern_matrix(rules.check_patterns(patterns))


def prunable_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The ``(name, conv)`` pairs pruned: ``nn.Conv2d`` with a 3x3 kernel and ``groups == 1``.

    Listed in registration order (``model.named_modules()``), which is taken to be forward order.
    """
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (3, 3) and m.groups == 1
    ]


def _as_array(weight: np.ndarray | torch.Tensor) -> np.ndarray:
    """A ``[F, C, 3, 3]`` weight as numpy (a tensor is detached and copied to the CPU)."""
    array = (
        weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    )
    if array.ndim != 4 or tuple(array.shape[2:]) != (3, 3):
        raise ValueError(f"weight of shape {tuple(array.shape)} is not [F, C, 3, 3]")
    return array


def _like(array: np.ndarray, template: ArrayOrTensor) -> ArrayOrTensor:
    """`array` as the kind of `template`: a tensor of its dtype and device, or numpy."""
    if isinstance(template, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(array)).to(template.device, template.dtype)
    return array


def _weights_of(weights: nn.Module | Iterable[np.ndarray | torch.Tensor]) -> list[np.ndarray]:
    if isinstance(weights, nn.Module):
        return [_as_array(conv.weight) for _, conv in prunable_convs(weights)]
    if isinstance(weights, np.ndarray | torch.Tensor):
        return [_as_array(weights)]
    return [_as_array(w) for w in weights]


def select_pattern_set(
    weights: nn.Module | Iterable[np.ndarray | torch.Tensor], k: int = 8, taps: int = 4
) -> list[Pattern]:
    """Choose the K most used pattern shapes of a network (PatDNN's pattern set selection).

    ``weights`` are ``[F, C, 3, 3]`` tensors or arrays, or an ``nn.Module`` whose prunable
    convolutions are used; see ``pconv_mlir.patterns.select_pattern_set`` for the rule.
    """
    return rules.select_pattern_set(_weights_of(weights), k=k, taps=taps)


def project_to_patterns(
    weight: ArrayOrTensor, patterns: Sequence[Sequence[int]]
) -> tuple[ArrayOrTensor, np.ndarray]:
    """Project every kernel of ``weight [F, C, 3, 3]`` onto its best pattern, zeroing the rest.

    The best pattern keeps the most L2 norm (first in set order on a tie). Returns the projected
    weight, of the same type, dtype and device as the input (a tensor comes back detached), and the
    pattern ids ``[F, C]`` (int64); an all-zero kernel stays zero and gets id -1.
    """
    projected, ids = rules.project_to_patterns(_as_array(weight), rules.check_patterns(patterns))
    return _like(projected, weight), ids


def pattern_ids(weight: np.ndarray | torch.Tensor, patterns: Sequence[Sequence[int]]) -> np.ndarray:
    """Infer each kernel's pattern id ``[F, C]`` from where its nonzeros are (-1: all zero);
    see ``pconv_mlir.patterns.pattern_ids``. Raises ValueError naming a kernel no pattern holds.
    """
    return rules.pattern_ids(_as_array(weight), rules.check_patterns(patterns))


# --------------------------------------------------------------------------------------------------
# Connectivity
# --------------------------------------------------------------------------------------------------


def connectivity_mask(weight: np.ndarray | torch.Tensor, rate: float = 3.6) -> np.ndarray:
    """The kernels of ``weight [F, C, 3, 3]`` that connectivity pruning keeps, as bool ``[F, C]``.

    Keeps ``kept_kernel_count(F * C, rate)`` kernels, those with the largest L2 norm (the first in
    row-major ``[F, C]`` order on ties); ``rate=1`` keeps all.
    """
    return rules.connectivity_mask(_as_array(weight), rate)


def global_connectivity_masks(
    weights: Iterable[np.ndarray | torch.Tensor], rate: float = 3.6
) -> list[np.ndarray]:
    """Connectivity pruning across several layers at once: one bool ``[F, C]`` mask per weight.

    Keeps ``kept_kernel_count(total, rate)`` kernels of all layers together by L2 norm, so layers
    with larger kernels keep more; every layer keeps at least its largest kernel (so the total can
    exceed the count by the number of layers that would otherwise lose everything).
    """
    arrays = [_as_array(w) for w in weights]
    masks = rules.global_keep([rules.kernel_norms(a) for a in arrays], rate)
    return [m.reshape(a.shape[:2]) for m, a in zip(masks, arrays, strict=True)]


# --------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSummary:
    """Sparsity of one 3x3 convolution.

    ``macs`` and ``macs_kept`` count multiply-adds per image when the output size is known
    (``positions`` = output height x width), otherwise per output pixel (``positions`` = 1).
    """

    name: str
    filters: int
    channels: int
    kernels_kept: int
    weights_kept: int
    positions: int = 1

    @property
    def kernels(self) -> int:
        return self.filters * self.channels

    @property
    def weights(self) -> int:
        return self.kernels * 9

    @property
    def macs(self) -> int:
        return self.weights * self.positions

    @property
    def macs_kept(self) -> int:
        return self.weights_kept * self.positions


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("inf")


@dataclass(frozen=True)
class PruningSummary:
    """Sparsity of the prunable 3x3 convolutions of a network, per layer and in total."""

    layers: tuple[LayerSummary, ...]

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def weights_kept(self) -> int:
        return sum(layer.weights_kept for layer in self.layers)

    @property
    def removed_fraction(self) -> float:
        """Fraction of the 3x3 convolution weights that are zero."""
        return 1 - self.weights_kept / self.weights if self.weights else 0.0

    @property
    def compression(self) -> float:
        """Dense weights over kept weights (e.g. 8.1 for 8.1x fewer weights)."""
        return _ratio(self.weights, self.weights_kept)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def macs_kept(self) -> int:
        return sum(layer.macs_kept for layer in self.layers)

    @property
    def mac_reduction(self) -> float:
        """Dense multiply-adds over the ones left (e.g. 8.1 for 8.1x fewer)."""
        return _ratio(self.macs, self.macs_kept)

    def table(self) -> str:
        """A small text table, one row per layer and a total row."""
        rows = [("layer", "shape", "kernels kept", "weights kept", "MACs kept", "MAC reduction")]
        for s in self.layers:
            rows.append(
                (
                    s.name,
                    f"{s.filters}x{s.channels}x3x3",
                    f"{s.kernels_kept}/{s.kernels}",
                    f"{s.weights_kept}/{s.weights}",
                    f"{s.macs_kept}/{s.macs}",
                    f"{_ratio(s.macs, s.macs_kept):.2f}x",
                )
            )
        rows.append(
            (
                "total",
                "",
                f"{sum(s.kernels_kept for s in self.layers)}/{sum(s.kernels for s in self.layers)}",
                f"{self.weights_kept}/{self.weights}",
                f"{self.macs_kept}/{self.macs}",
                f"{self.mac_reduction:.2f}x",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                v.ljust(w) if i < 2 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return (
            f"{self.table()}\n3x3 weights removed: {100 * self.removed_fraction:.1f}% "
            f"({self.compression:.2f}x), MAC reduction {self.mac_reduction:.2f}x"
        )


def _output_positions(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Output height x width of each prunable convolution, from one forward pass."""
    positions: dict[str, int] = {}
    hooks = []
    for name, conv in prunable_convs(model):

        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name) -> None:
            positions[name] = int(out.shape[-1] * out.shape[-2])

        hooks.append(conv.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return positions


def pruning_rate(model: nn.Module, example_input: torch.Tensor | None = None) -> PruningSummary:
    """Measure the sparsity of a model's prunable 3x3 convolutions from their actual zeros.

    A kernel counts as kept when any of its weights is nonzero. With ``example_input`` (any batch
    size) the model is run once to learn each layer's output size, so MACs are per image; without
    it, per output pixel.
    """
    positions = _output_positions(model, example_input) if example_input is not None else {}
    layers = []
    for name, conv in prunable_convs(model):
        w = conv.weight.detach()
        nz = w.reshape(w.shape[0], w.shape[1], 9).ne(0)
        layers.append(
            LayerSummary(
                name=name,
                filters=w.shape[0],
                channels=w.shape[1],
                kernels_kept=int(nz.any(dim=2).sum()),
                weights_kept=int(nz.sum()),
                positions=positions.get(name, 1),
            )
        )
    return PruningSummary(tuple(layers))


# --------------------------------------------------------------------------------------------------
# Model-level pruning
# --------------------------------------------------------------------------------------------------


@dataclass
class PruneResult:
    """What a pruning run decided: the pattern set and, per layer name, each kernel's pattern id.

    ``ids[name]`` is the ``[F, C]`` int array of the shared convention (-1 = kernel removed); the
    masks are derived from it. ``summary`` counts the weights the masks keep (MACs per output pixel;
    call :func:`pruning_rate` with an example input for MACs per image). ``history`` holds one dict
    per ADMM epoch.
    """

    patterns: list[Pattern]
    ids: dict[str, np.ndarray]
    connectivity: float = 1.0
    scope: Scope = "layer"
    exempt: tuple[str, ...] = ()
    """Layers left out of connectivity pruning (the first convolution with ``skip_first``)."""
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def kernel_masks(self) -> dict[str, np.ndarray]:
        """Per layer, the bool ``[F, C]`` mask of kept kernels."""
        return {name: ids >= 0 for name, ids in self.ids.items()}

    def weight_mask(self, name: str) -> torch.Tensor:
        """The bool ``[F, C, 3, 3]`` mask of the weights layer ``name`` keeps."""
        return torch.from_numpy(rules.kernel_mask(self.ids[name], self.patterns))

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Per layer, the bool ``[F, C, 3, 3]`` weight mask (what :func:`retrain_masked` takes)."""
        return {name: self.weight_mask(name) for name in self.ids}

    @property
    def summary(self) -> PruningSummary:
        sizes = np.array([len(p) for p in self.patterns])
        layers = []
        for name, ids in self.ids.items():
            kept = ids >= 0
            layers.append(
                LayerSummary(
                    name=name,
                    filters=ids.shape[0],
                    channels=ids.shape[1],
                    kernels_kept=int(kept.sum()),
                    weights_kept=int(sizes[ids[kept]].sum()),
                )
            )
        return PruningSummary(tuple(layers))


def _resolve_patterns(
    model: nn.Module, patterns: int | Sequence[Sequence[int]], taps: int
) -> list[Pattern]:
    if isinstance(patterns, int) and not isinstance(patterns, bool):
        return select_pattern_set(model, k=patterns, taps=taps)
    return rules.check_patterns(patterns)


def _check_scope(scope: str) -> None:
    if scope not in ("layer", "global"):
        raise ValueError(f"scope={scope!r} is not 'layer' or 'global'")


def _exempt_layers(convs: list[tuple[str, nn.Conv2d]], skip_first: bool) -> tuple[str, ...]:
    return (convs[0][0],) if skip_first and convs else ()


def _joint_ids(
    weights: dict[str, torch.Tensor],
    patterns: list[Pattern],
    rate: float,
    scope: Scope,
    exempt: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """Pattern ids of the Euclidean projection onto (pattern set) and (kept kernels) together;
    see ``pconv_mlir.patterns.project_layers``."""
    names = list(weights)
    ids = rules.project_layers(
        [_as_array(w) for w in weights.values()],
        patterns,
        rate,
        scope=scope,
        exempt=[i for i, n in enumerate(names) if n in exempt],
    )
    return dict(zip(names, ids, strict=True))


def hard_prune(model: nn.Module, result: PruneResult) -> PruneResult:
    """Zero, in place, every weight of the model outside ``result``'s masks, and return ``result``.

    After :func:`admm_prune` the weights are close to the constraint sets; this makes them exactly
    sparse.
    """
    convs = dict(prunable_convs(model))
    with torch.no_grad():
        for name in result.ids:
            if name not in convs:
                raise ValueError(
                    f"layer {name!r} of the pruning result is not a 3x3 conv of the model"
                )
            w = convs[name].weight
            mask = result.weight_mask(name).to(w.device)
            if mask.shape != w.shape:
                raise ValueError(
                    f"layer {name!r} has weight {tuple(w.shape)}, the masks are {tuple(mask.shape)}"
                )
            w.masked_fill_(~mask, 0.0)
    return result


def prune_model(
    model: nn.Module,
    patterns: int | Sequence[Sequence[int]] = 8,
    connectivity: float = 3.6,
    scope: Scope = "layer",
    skip_first: bool = True,
    taps: int = 4,
) -> PruneResult:
    """One-shot pattern and connectivity pruning, in place (no training).

    ``patterns`` is K (the set is chosen with :func:`select_pattern_set` on the model) or a given
    pattern set. Each kernel is projected onto its best pattern, then connectivity pruning keeps 1
    kernel in ``connectivity`` by projected L2 norm, per layer (``scope="layer"``) or over all
    layers together (``"global"``). ``skip_first`` exempts the first 3x3 convolution from
    connectivity pruning (see the module docstring); ``connectivity=1`` disables it.
    """
    _check_scope(scope)
    kept_kernel_count(1, connectivity)  # validates the rate
    chosen = _resolve_patterns(model, patterns, taps)
    convs = prunable_convs(model)
    exempt = _exempt_layers(convs, skip_first)
    ids = _joint_ids(
        {name: conv.weight for name, conv in convs}, chosen, connectivity, scope, exempt
    )
    result = PruneResult(chosen, ids, connectivity=connectivity, scope=scope, exempt=exempt)
    return hard_prune(model, result)


# --------------------------------------------------------------------------------------------------
# Training: extended ADMM and masked retraining
# --------------------------------------------------------------------------------------------------


def _make_optimizer(
    model: nn.Module, optimizer: OptimizerFactory | None, lr: float
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        return torch.optim.Adam(params, lr=lr)
    return optimizer(params)


def _train_epoch(
    model: nn.Module,
    data_loader: Iterable[Any],
    loss_fn: LossFn,
    opt: torch.optim.Optimizer,
    penalty: Callable[[], torch.Tensor] | None = None,
    after_backward: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> float:
    """One pass over ``data_loader`` (batches ``(inputs, targets)``); returns the mean task loss."""
    total, batches = 0.0, 0
    for inputs, targets in data_loader:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        full = loss + penalty() if penalty is not None else loss
        full.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        if after_step is not None:
            after_step()
        total += float(loss.detach())
        batches += 1
    return total / max(batches, 1)


def admm_prune(
    model: nn.Module,
    data_loader: Iterable[Any],
    loss_fn: LossFn,
    *,
    patterns: int | Sequence[Sequence[int]] = 8,
    connectivity: float = 3.6,
    scope: Scope = "layer",
    skip_first: bool = True,
    epochs: int = 10,
    rho: float = 1e-3,
    rho_growth: float = 1.3,
    rho_max: float = 1.0,
    optimizer: OptimizerFactory | None = None,
    lr: float = 1e-3,
    taps: int = 4,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> PruneResult:
    """Train ``model`` with PatDNN's extended ADMM towards pattern and connectivity sparsity.

    The pattern set is fixed first (K chosen on the current, pre-trained weights, or given). For
    every prunable layer there are two constraint sets, S_p (every kernel in a pattern of the set)
    and S_c (at most 1 kernel in ``connectivity`` nonzero; not for exempt layers), each with an
    auxiliary variable Z (the projection of W + U onto its set) and a scaled dual variable U. Each
    epoch minimises ``loss_fn(model(x), y) + sum rho/2 ||W - Z + U||^2`` with the optimizer, then
    updates ``Z = proj(W + U)`` and ``U = U + W - Z`` and multiplies rho by ``rho_growth`` (up to
    ``rho_max``).

    The weights are *not* made sparse: call :func:`hard_prune` with the result, then
    :func:`retrain_masked`. The result's ids are the joint projection of the final weights.
    ``history`` has one entry per epoch: the task loss, rho, and the relative primal residuals
    ``||W - Z|| / ||W||`` for both sets. ``callback(epoch, entry)`` is called after each epoch.
    The model's train/eval mode is restored at the end.
    """
    _check_scope(scope)
    kept_kernel_count(1, connectivity)
    if rho <= 0 or rho_growth < 1:
        raise ValueError(f"rho={rho!r} must be > 0 and rho_growth={rho_growth!r} at least 1")
    chosen = _resolve_patterns(model, patterns, taps)
    convs = prunable_convs(model)
    exempt = _exempt_layers(convs, skip_first)
    params = {name: conv.weight for name, conv in convs}
    # Connectivity constrains only the non-exempt layers; with rate 1 it constrains nothing.
    conn_layers = [n for n in params if n not in exempt] if connectivity > 1 else []

    def project_p(v: torch.Tensor) -> torch.Tensor:
        return project_to_patterns(v, chosen)[0]

    def project_c(vs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        norms = [rules.kernel_norms(_as_array(v)) for v in vs.values()]
        keep = rules.connectivity_keep(norms, connectivity, scope)
        return {
            n: v * torch.from_numpy(k).to(v.device).reshape(*v.shape[:2], 1, 1)
            for (n, v), k in zip(vs.items(), keep, strict=True)
        }

    with torch.no_grad():
        u_p = {n: torch.zeros_like(w) for n, w in params.items()}
        u_c = {n: torch.zeros_like(params[n]) for n in conn_layers}
        z_p = {n: project_p(w.detach()) for n, w in params.items()}
        z_c = project_c({n: params[n].detach() for n in conn_layers})

    current_rho = rho

    def penalty() -> torch.Tensor:
        total = torch.zeros(())
        for n, w in params.items():
            total = total + (w - z_p[n] + u_p[n]).square().sum()
        for n in conn_layers:
            total = total + (params[n] - z_c[n] + u_c[n]).square().sum()
        return 0.5 * current_rho * total

    was_training = model.training
    model.train()
    opt = _make_optimizer(model, optimizer, lr)
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        loss = _train_epoch(model, data_loader, loss_fn, opt, penalty=penalty)
        with torch.no_grad():
            res_p = res_c = norm_w = 0.0
            for n, w in params.items():
                z_p[n] = project_p(w + u_p[n])
                u_p[n] += w - z_p[n]
                res_p += float((w - z_p[n]).square().sum())
                norm_w += float(w.square().sum())
            z_c = project_c({n: params[n] + u_c[n] for n in conn_layers})
            conn_norm = 0.0
            for n in conn_layers:
                u_c[n] += params[n] - z_c[n]
                res_c += float((params[n] - z_c[n]).square().sum())
                conn_norm += float(params[n].square().sum())
        entry = {
            "epoch": float(epoch),
            "loss": loss,
            "rho": current_rho,
            "pattern_residual": math.sqrt(res_p / norm_w) if norm_w else 0.0,
            "connectivity_residual": math.sqrt(res_c / conn_norm) if conn_norm else 0.0,
        }
        history.append(entry)
        if callback is not None:
            callback(epoch, entry)
        current_rho = min(current_rho * rho_growth, rho_max)
    model.train(was_training)

    ids = _joint_ids(params, chosen, connectivity, scope, exempt)
    return PruneResult(
        chosen, ids, connectivity=connectivity, scope=scope, exempt=exempt, history=history
    )


def retrain_masked(
    model: nn.Module,
    masks: PruneResult | Mapping[str, torch.Tensor],
    data_loader: Iterable[Any],
    loss_fn: LossFn,
    epochs: int,
    *,
    optimizer: OptimizerFactory | None = None,
    lr: float = 1e-3,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` with the pruned weights held at exactly 0; returns mean loss per epoch.

    ``masks`` maps layer names to bool (or 0/1) masks of the weight's shape, or is a
    :class:`PruneResult`. The mask is applied once before training; then after every backward pass
    the masked gradients are zeroed, and after every optimizer step the masked weights are set to 0
    again (so momentum or weight decay cannot revive them). The model's train/eval mode is restored
    at the end.
    """
    mask_map = masks.masks if isinstance(masks, PruneResult) else dict(masks)
    modules = dict(model.named_modules())
    pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
    for name, mask in mask_map.items():
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"mask for {name!r}, which is not a Conv2d of the model")
        keep = torch.as_tensor(mask).to(device=conv.weight.device, dtype=torch.bool)
        if keep.shape != conv.weight.shape:
            raise ValueError(
                f"mask for {name!r} has shape {tuple(keep.shape)}, "
                f"the weight {tuple(conv.weight.shape)}"
            )
        pairs.append((conv.weight, keep))

    def apply_mask() -> None:
        with torch.no_grad():
            for w, keep in pairs:
                w.masked_fill_(~keep, 0.0)

    def mask_grads() -> None:
        for w, keep in pairs:
            if w.grad is not None:
                w.grad.masked_fill_(~keep, 0.0)

    apply_mask()
    was_training = model.training
    model.train()
    opt = _make_optimizer(model, optimizer, lr)
    losses = []
    for epoch in range(epochs):
        loss = _train_epoch(
            model, data_loader, loss_fn, opt, after_backward=mask_grads, after_step=apply_mask
        )
        losses.append(loss)
        if callback is not None:
            callback(epoch, {"epoch": float(epoch), "loss": loss})
    model.train(was_training)
    return losses

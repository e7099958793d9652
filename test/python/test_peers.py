"""The peers of `bench/peers.py` give torch's numbers on a tiny conv, or say why they cannot run.

Nothing here times anything: the time helper is checked with fake runners that report fixed
durations. The peers of the `bench` extra (`pip install -e '.[bench]'`, which `make setup`
installs) must run: under `make test` a missing one fails (the `need` fixture). MNN lives in a
venv of its own (`PCONV_MNN_VENV`); without it, it must answer `available()` with how to get it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peers.py"
spec = importlib.util.spec_from_file_location("peers", BENCH)
peers = importlib.util.module_from_spec(spec)
sys.modules["peers"] = peers
spec.loader.exec_module(peers)


OWN_VENV = {"mnn"}
"""Peers that are not in the `bench` extra: they run from a venv of their own."""


def usable(peer, need) -> bool:
    """Whether `peer` can run here. One of the `bench` extra that cannot is missing (`need`:
    a failure under `make test`); one with a venv of its own must say how to get it."""
    reason = peer.available()
    if reason is None:
        return True
    assert isinstance(reason, str) and reason.strip(), peer.name
    if peer.name not in OWN_VENV:
        need(f"peer {peer.name}: {reason} (run `make setup`: the bench extra)")
    return False


@pytest.fixture(scope="module")
def tiny_conv():
    """A dense 3x3 conv, 8 -> 8 channels on 12 x 12, and its input."""
    return peers.conv_layer(8, 8, 12)


def run_peer(peer, module, x, workdir: Path, threads: int = 1) -> float:
    """Prepares `peer`, checks it against torch (closing it afterwards) and returns the error."""
    runner = peer.prepare(module, x, workdir, threads)
    try:
        return peers.check(runner, peers.reference(module, x))
    finally:
        runner.close()


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_peer_matches_torch_or_says_why_not(name, tiny_conv, tmp_path, need):
    peer = peers.PEERS[name]
    if not usable(peer, need):
        with pytest.raises(Exception):  # noqa: B017 - any failure will do, but it must fail
            peer.prepare(*tiny_conv, tmp_path, 1)
        return
    error = run_peer(peer, *tiny_conv, tmp_path)
    if name == "mnn":  # inexact (Winograd, about 1e-4): reported as such, but close
        assert error < 1e-2, f"mnn: relative error {error:.2e}"
    else:
        assert error < peers.EXACT, f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_peer_on_two_threads(name, tiny_conv, tmp_path, need):
    peer = peers.PEERS[name]
    if not usable(peer, need):
        return
    try:
        error = run_peer(peer, *tiny_conv, tmp_path, threads=2)
    except peers.Unsupported as e:
        assert str(e)
        return
    assert error < (1e-2 if name == "mnn" else peers.EXACT)


def small_network() -> tuple[torch.nn.Module, torch.Tensor]:
    """Conv, batch norm, ReLU, pooling, a strided conv and a linear head, on a batch of two."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).eval()
    return module, torch.randn(2, 3, 16, 16)


def test_whole_modules_run_or_are_unsupported(tmp_path):
    module, x = small_network()
    outcomes = peers.prepare_all(module, x, tmp_path, 1)
    assert [o.name for o in outcomes] == list(peers.PEERS)
    for outcome in outcomes:
        if outcome.runner is not None:
            outcome.runner.close()
        if peers.PEERS[outcome.name].available() is not None:
            assert outcome.reason and outcome.error is None
        elif outcome.name == "litert" and peers.PEERS["litert"].converter_venv is None:
            assert peers.LITERT_TORCH_VENV_ENV in outcome.reason
        else:
            assert outcome.reason is None, outcome.reason
            assert outcome.error < (1e-2 if outcome.name == "mnn" else peers.EXACT)


@pytest.mark.parametrize(
    ("stride", "padding", "hw", "bias", "mode"),
    [
        (1, 1, 12, True, "SAME"),
        (2, 1, 9, True, "SAME"),
        (2, 1, 10, True, "PAD"),  # TF's SAME pads (0, 1) here, torch pads (1, 1)
        (1, 0, 7, False, "VALID"),
        (1, 2, 7, True, "PAD"),
    ],
)
def test_litert_writes_the_conv_torch_computes(stride, padding, hw, bias, mode, tmp_path, need):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(5, 7, 3, stride=stride, padding=padding, bias=bias).eval()
    assert peers._tflite_padding(conv, hw, hw) == mode
    peer = peers.PEERS["litert"]
    if not usable(peer, need):
        return
    assert run_peer(peer, conv, torch.randn(1, 5, hw, hw), tmp_path) < peers.EXACT


def test_litert_converts_other_modules_only_with_its_venv(tmp_path, monkeypatch, need):
    monkeypatch.delenv(peers.LITERT_TORCH_VENV_ENV, raising=False)
    peer = peers.LiteRtPeer()
    if not usable(peer, need):
        return
    dilated = torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2).eval()
    with pytest.raises(peers.Unsupported, match=peers.LITERT_TORCH_VENV_ENV):
        peer.prepare(dilated, torch.randn(1, 4, 8, 8), tmp_path, 1)


def test_mnn_without_its_venv_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv(peers.MNN_VENV_ENV, raising=False)
    assert peers.MNN_VENV_ENV in peers.MnnPeer().available()
    assert "not installed" in peers.MnnPeer(tmp_path / "nowhere").available()
    with pytest.raises(peers.Unsupported):
        peers.MnnPeer(tmp_path / "nowhere").prepare(*peers.conv_layer(2, 2, 4), tmp_path, 1)


def test_tvm_tuning_is_refused_with_a_reason(tmp_path, need):
    peer = peers.TvmPeer(trials=64)
    if not usable(peer, need):
        return
    with pytest.raises(peers.Unsupported, match="MetaSchedule"):
        peer.prepare(*peers.conv_layer(2, 2, 4), tmp_path, 1)


def test_check_is_the_relative_error_of_the_worst_run():
    expected = np.ones((1, 2, 3, 3), dtype=np.float32)
    outputs = iter([expected, expected * 1.5])
    assert peers.check(lambda: next(outputs), expected) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shape"):
        peers.check(lambda: expected[0], expected)


def test_outcome_reports_inexact_instead_of_hiding_it():
    assert peers.Outcome("x", "v", error=1e-6).status == "ok"
    assert peers.Outcome("x", "v", error=1e-3).status == "inexact"
    assert peers.Outcome("x", "v", reason="not installed").status == "not installed"


def test_time_interleaved_interleaves_and_takes_the_median_of_round_medians():
    order: list[str] = []

    def fake(name: str, seconds: list[float]) -> peers.Runner:
        durations = iter(seconds)

        def invoke() -> float:
            order.append(name)
            return next(durations)

        return peers.Runner(invoke, lambda: np.zeros(1), self_timed=True)

    # one warm-up call, then 2 rounds of 3 calls: medians 2 and 5 (a), 10 and 30 (b)
    a = fake("a", [99, 1, 2, 3, 5, 5, 100])
    b = fake("b", [99, 10, 10, 50, 30, 20, 30])
    seconds = peers.time_interleaved({"a": a, "b": b}, warmup=1, calls=3, rounds=2)
    assert order == ["a", "b"] * 7
    assert seconds == {"a": pytest.approx(3.5), "b": pytest.approx(20.0)}

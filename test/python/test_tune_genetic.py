"""The genetic tuner (PatDNN's auto-tuner) and the tuning database keyed by layer shape, pattern
statistics and target. Costs are synthetic here (a function of the schedule), so the tests
check the search, not the machine."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from xdsl.utils.exceptions import VerifyException

from pconv_mlir import tune as tuner
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.dialects.pconv import FkwConv2dOp, ScheduleAttr
from pconv_mlir.elements import using_storage
from pconv_mlir.errors import OptionError, PconvError
from pconv_mlir.ir import make_context
from pconv_mlir.passes.pconv_apply_tuning import (
    PconvApplyTuningPass,
    TuningDatabase,
    layer_key,
    layer_stats,
    stats_distance,
)
from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.tune import genes, genetic_search, schedule_key, tune, tune_layer

GENES = ("vector_width", "tile", "partial_sums", "unroll_filters", "tile_channels")


class FakeBackend:
    """What the tuner asks of a backend, without a machine (so 8 accumulators at most)."""

    name = "fake"
    cost_unit = "cycles"
    tunable = GENES

    def describe(self) -> str:
        return "a synthetic cost"

    def schedule_defaults(self) -> dict[str, int]:
        return {"vector_width": 16}


OPTIMUM = {
    "vector_width": 16,
    "unroll_rows": 4,
    "unroll_cols": 2,
    "partial_sums": 2,
    "unroll_filters": 1,
    "tile_channels": 32,
}


def synthetic(schedule: ScheduleAttr) -> float:
    """A separable cost with one minimum, `OPTIMUM` (cost 1)."""
    return (
        1.0
        + abs(schedule["unroll_rows"] - 4)
        + 2 * abs(schedule["unroll_cols"] - 2)
        + (schedule["partial_sums"] != 2)
        + 0.5 * (schedule["unroll_filters"] != 1)
        + 0.7 * (schedule["vector_width"] != 16)
        + 0.3 * (schedule["tile_channels"] != 32)
    )


class Counting:
    """`synthetic`, counting its calls."""

    def __init__(self, cost=synthetic) -> None:
        self.cost, self.calls = cost, []

    def __call__(self, schedule: ScheduleAttr) -> float:
        self.calls.append(schedule)
        return self.cost(schedule)


def packed(seed: int, f: int = 6, c: int = 10, rate: float = 2.0, k: int = 4, **schedule: int):
    rng = np.random.default_rng(seed)
    patterns, ids, weight = random_pattern_layer(rng, f, c, k=k, rate=rate)
    module = conv2d_module((1, c, 7, 9), weight, None, patterns, ids)
    ctx = make_context(own_resources=True)
    Pipeline([PconvFkwPackPass(**schedule)]).run(module, ctx)
    return module, ctx


def fkw_op(module) -> FkwConv2dOp:
    return next(op for op in module.walk() if isinstance(op, FkwConv2dOp))


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


def test_genetic_search_finds_the_optimum_within_its_budget() -> None:
    module, ctx = packed(0)
    op = fkw_op(module)
    cost = Counting()
    best, best_cost, costs = tune_layer(
        op, ctx, FakeBackend(), cost=cost, max_acc=64, population=12, generations=12
    )
    assert {k: best[k] for k in OPTIMUM} == OPTIMUM and best_cost == 1.0
    assert len(cost.calls) <= 12 * 12 + 2  # the population's budget, plus the two starts
    assert best_cost <= costs[schedule_key(op.schedule)]


def test_result_is_never_worse_than_the_op_s_own_schedule() -> None:
    """When the op's own schedule is the cheapest, it is what the search returns."""
    module, ctx = packed(1, unroll_rows=5, unroll_cols=1)
    op = fkw_op(module)
    own = op.schedule

    def cost(schedule: ScheduleAttr) -> float:
        return 0.5 if schedule == own else synthetic(schedule)

    best, best_cost, costs = tune_layer(op, ctx, FakeBackend(), cost=cost, generations=3)
    assert best == own and best_cost == 0.5
    assert next(iter(costs)) == schedule_key(own)  # measured first
    # the backend's defaults are measured second (here: 16 lanes)
    assert list(costs)[1] == schedule_key(own.replace(vector_width=16))


def test_the_search_is_deterministic_for_a_seed() -> None:
    module, ctx = packed(2)
    op = fkw_op(module)
    runs = [
        tune_layer(op, ctx, FakeBackend(), cost=synthetic, seed=seed, generations=3)
        for seed in (7, 7, 8)
    ]
    assert list(runs[0][2]) == list(runs[1][2]) and runs[0][0] == runs[1][0]
    assert list(runs[0][2]) != list(runs[2][2])


def test_no_schedule_is_measured_twice() -> None:
    module, ctx = packed(3)
    cost = Counting()
    _, _, costs = tune_layer(
        fkw_op(module), ctx, FakeBackend(), cost=cost, population=6, generations=10
    )
    assert len(cost.calls) == len(set(cost.calls)) == len(costs)


def test_candidates_over_the_accumulator_budget_or_failing_are_rejected() -> None:
    """A candidate whose lowering fails (here a verifier error past 3 rows) costs inf and is
    never chosen; none over the accumulator budget is measured; the search does not stop."""
    module, ctx = packed(4, unroll_rows=2, unroll_cols=1)

    def cost(schedule: ScheduleAttr) -> float:
        if schedule["unroll_rows"] > 3:
            raise VerifyException(f"unroll_rows = {schedule['unroll_rows']} is too many")
        return synthetic(schedule)

    lines: list[str] = []
    best, best_cost, costs = tune_layer(
        fkw_op(module), ctx, FakeBackend(), cost=cost, max_acc=6, report=lines.append
    )
    assert best["unroll_rows"] <= 3 and math.isfinite(best_cost)
    assert any(math.isinf(v) for v in costs.values())
    assert any(line.startswith("rejected ") and "is too many" in line for line in lines)
    for key in costs:
        schedule = ScheduleAttr.get(
            **{k: int(v) for k, v in (p.split("=") for p in key.split(", "))}
        )
        assert tuner.accumulators(schedule) <= 6


def test_the_time_budget_stops_the_search() -> None:
    module, ctx = packed(5)
    cost = Counting(lambda s: time.sleep(0.02) or synthetic(s))
    started = time.monotonic()
    tune_layer(fkw_op(module), ctx, FakeBackend(), cost=cost, budget=0.1, generations=50)
    assert time.monotonic() - started < 1.0
    assert 2 <= len(cost.calls) <= 8  # the two starts, always, and what fits in 0.1 s


def test_a_small_space_is_measured_whole_and_coordinate_search_is_kept() -> None:
    module, ctx = packed(6)
    op = fkw_op(module)
    _, _, costs = tune_layer(op, ctx, FakeBackend(), cost=synthetic, steps=["vector_width"])
    assert {int(k.split("vector_width=")[1].split(",")[0]) for k in costs} == {8, 16}
    best, best_cost, _ = tune_layer(
        op, ctx, FakeBackend(), cost=synthetic, search="coordinate", max_acc=16
    )
    assert best_cost < synthetic(op.schedule)
    with pytest.raises(OptionError, match="unknown search 'random'"):
        tune_layer(op, ctx, FakeBackend(), cost=synthetic, search="random")


def test_genes_and_the_accumulator_budget_of_the_register_file() -> None:
    from pconv_mlir.backends import get_backend

    (specialize,) = genes(["specialize"], ScheduleAttr.get(chunk_fmas=512))
    assert specialize.fields == ("specialize", "chunk_fmas")
    assert specialize.alleles[0] == (0, 512) and (1, 1536) in specialize.alleles
    aarch64 = get_backend("aarch64")  # 32 NEON registers of 4 lanes
    assert tuner.accumulator_budget(aarch64, 4) == 32 - tuner.RESERVED_REGISTERS
    assert tuner.accumulator_budget(aarch64, 4, max_acc=5) == 5
    assert tuner.accumulator_budget(FakeBackend(), 8) == 8
    assert tuner.tuning_target(aarch64) == "aarch64-cortex-a76"
    assert tuner.tuning_target(get_backend("host")) in (
        "host-avx2",
        "host-avx512",
        "host-x86_64",
        "host-aarch64",
    )


def test_genetic_search_alone_with_a_custom_space() -> None:
    gene_list = genes(["tile", "partial_sums"], ScheduleAttr.DEFAULT)
    found = genetic_search(
        gene_list, synthetic, [ScheduleAttr.DEFAULT], population=6, generations=8, seed=3
    )
    assert (found.best["unroll_rows"], found.best["unroll_cols"], found.best["partial_sums"]) == (
        4,
        2,
        2,
    )
    assert found.generations <= 8


# --------------------------------------------------------------------------------------------
# The database: target and pattern statistics
# --------------------------------------------------------------------------------------------


def fake_measure(monkeypatch) -> list[str]:
    """Replace measuring by `synthetic`; returns the layer keys measured (one per call)."""
    measured: list[str] = []

    def measure(op, ctx, backend, schedule, repeats):
        measured.append(layer_key(op))
        return synthetic(schedule)

    monkeypatch.setattr(tuner, "measure", measure)
    return measured


def test_database_round_trip_with_target_and_statistics(tmp_path, monkeypatch) -> None:
    fake_measure(monkeypatch)
    module, ctx = packed(10)
    database = tune(module, ctx, FakeBackend(), generations=2, target="fake-v1")
    path = tmp_path / "db.json"
    database.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "pconv-tuning/2"
    (entry,) = document["layers"].values()
    assert entry["target"] == "fake-v1" and entry["backend"] == "fake"
    assert entry["search"] == "genetic"
    with using_storage(ctx):
        key, stats = layer_key(fkw_op(module)), layer_stats(fkw_op(module))
    assert entry["layer"] == key and entry["stats"] == stats
    assert math.isclose(sum(stats["patterns"]), 1.0, abs_tol=1e-5) and 0 < stats["kept"] <= 1
    loaded = TuningDatabase.load(path)
    assert loaded.layers == database.layers
    match = loaded.lookup(key, "fake-v1", stats)
    assert match is not None and match.distance is None
    assert match.schedule == entry["schedule"]


def test_nearest_statistics_lookup_reuses_a_repruned_layer_and_refuses_another_target(
    monkeypatch,
) -> None:
    fake_measure(monkeypatch)
    shape = {"f": 32, "c": 32, "rate": 3.6}
    module, ctx = packed(20, **shape)
    database = tune(module, ctx, FakeBackend(), generations=1, target="host-avx2")
    again, again_ctx = packed(21, **shape)  # pruned again with another seed
    far, far_ctx = packed(22, f=32, c=32, rate=1.5)  # pruned to another rate
    with using_storage(again_ctx):
        key, stats = layer_key(fkw_op(again)), layer_stats(fkw_op(again))
    with using_storage(far_ctx):
        far_key, far_stats = layer_key(fkw_op(far)), layer_stats(fkw_op(far))
    (entry,) = database.layers.values()
    assert key != entry["layer"] and stats_distance(stats, entry["stats"]) < 0.1
    match = database.lookup(key, "host-avx2", stats)
    assert match is not None and match.distance is not None
    assert match.schedule == entry["schedule"]
    assert database.lookup(key, "aarch64-cortex-a76", stats) is None
    assert database.lookup(key, "host-avx2", None) is None  # no statistics: exact only
    assert database.lookup(far_key, "host-avx2", far_stats) is None


def test_tune_skips_the_layers_the_database_knows(monkeypatch) -> None:
    measured = fake_measure(monkeypatch)
    module, ctx = packed(30)
    database = tune(module, ctx, FakeBackend(), generations=1, target="t")
    assert measured
    measured.clear()
    tune(module, ctx, FakeBackend(), generations=1, target="t", database=database, retune=False)
    assert measured == []
    tune(module, ctx, FakeBackend(), generations=1, target="u", database=database, retune=False)
    assert measured and len(database.layers) == 2


def test_apply_tuning_picks_the_target(tmp_path, monkeypatch) -> None:
    fake_measure(monkeypatch)
    module, ctx = packed(40, unroll_rows=1, unroll_cols=1)
    database = TuningDatabase()
    with using_storage(ctx):
        key, stats = layer_key(fkw_op(module)), layer_stats(fkw_op(module))
    database.record(key, {"unroll_rows": 2}, 1.0, "s", target="host-avx2", stats=stats)
    path = tmp_path / "db.json"
    database.save(path)
    Pipeline([PconvApplyTuningPass(database=str(path))]).run(module, ctx)  # one target: its
    assert fkw_op(module).schedule["unroll_rows"] == 2
    database.record(key, {"unroll_rows": 4}, 1.0, "cycles", target="aarch64-cortex-a76")
    database.save(path)
    with pytest.raises(PconvError, match="holds tunings for aarch64-cortex-a76, host-avx2"):
        Pipeline([PconvApplyTuningPass(database=str(path))]).run(module, ctx)
    Pipeline([PconvApplyTuningPass(database=str(path), target="aarch64-cortex-a76")]).run(
        module, ctx
    )
    assert fkw_op(module).schedule["unroll_rows"] == 4
    Pipeline([PconvApplyTuningPass(database=str(path), target="host-avx512")]).run(module, ctx)
    assert fkw_op(module).schedule["unroll_rows"] == 4  # no entry for that target: kept


def test_old_databases_are_read_and_unknown_versions_refused(tmp_path) -> None:
    path = tmp_path / "db.json"
    layer = {"schedule": {"unroll_rows": 2}, "cost": 1.0, "unit": "s"}
    path.write_text(json.dumps({"format": "pconv-tuning/1", "layers": {"k": layer}}))
    database = TuningDatabase.load(path)
    assert database.schedule_for("k", "host-avx2") == {"unroll_rows": 2}  # any target
    path.write_text(json.dumps({"format": "pconv-tuning/9", "layers": {}}))
    with pytest.raises(PconvError, match=r'format "pconv-tuning/9" is unknown') as error:
        TuningDatabase.load(path)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------
# compile: each layer tuned once
# --------------------------------------------------------------------------------------------


def test_compile_with_a_database_tunes_only_the_missing_layers(tmp_path, monkeypatch) -> None:
    import torch
    import torch.nn as nn

    import pconv_mlir
    from pconv_mlir import pruning

    measured = fake_measure(monkeypatch)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
    ).eval()
    pruning.prune_model(model, patterns=4, connectivity=2.0)
    x = torch.randn(1, 3, 6, 6)
    path = tmp_path / "db.json"
    artifact = pconv_mlir.compile(model, x, tune=True, tuning=str(path))
    artifact.close()
    assert len(set(measured)) == 2 and path.exists()
    document = json.loads(path.read_text())
    assert len(document["layers"]) == 2
    measured.clear()
    first, second = document["layers"]
    del document["layers"][second]
    path.write_text(json.dumps(document))
    artifact = pconv_mlir.compile(model, x, tune=True, tuning=str(path))
    try:
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    finally:
        artifact.close()
    assert len(set(measured)) == 1 and len(json.loads(path.read_text())["layers"]) == 2
    measured.clear()
    pconv_mlir.compile(model, x, tune=True, tuning=str(path)).close()
    assert measured == []


# --------------------------------------------------------------------------------------------
# bench/tune_layers.py
# --------------------------------------------------------------------------------------------


def test_quick_tuning_benchmark_prints_its_table(tmp_path, capsys) -> None:
    """bench/tune_layers.py --quick: two tiny layers tuned on the host under a small budget;
    the table and CSV have default and tuned times and the tuned schedule (speed is never
    asserted)."""
    import csv
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "tune_layers.py"
    spec = importlib.util.spec_from_file_location("bench_tune_layers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_tune_layers"] = module
    spec.loader.exec_module(module)
    out, database = tmp_path / "tune.csv", tmp_path / "tuning.json"
    argv = ["--quick", "--budget", "4", "--csv", str(out), "--database", str(database)]
    assert module.main(argv) == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "tuned schedule" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    for row in rows:
        assert float(row["default_ms"]) > 0 and float(row["tuned_ms"]) > 0
        assert row["schedule"].startswith("vw")
    assert len(TuningDatabase.load(database).layers) == 2


def test_specialised_candidates_only_where_the_code_is_reused() -> None:
    """`specialize = 1` is tried on a layer with enough register tiles per image to reuse its
    straight-line code, and never on one with a handful of tiles (7 x 9 output, 4 x 2 tile)."""

    def specialised_tried(h: int, w: int, **schedule: int) -> bool:
        rng = np.random.default_rng(0)
        patterns, ids, weight = random_pattern_layer(rng, 6, 10, k=4, rate=2.0)
        module = conv2d_module((1, 10, h, w), weight, None, patterns, ids)
        ctx = make_context(own_resources=True)
        Pipeline([PconvFkwPackPass(**schedule)]).run(module, ctx)
        cost = Counting(lambda s: 1.0 + s["specialize"])
        backend = FakeBackend()
        backend.tunable = ("tile", "specialize")
        tune_layer(fkw_op(module), ctx, backend, cost=cost, max_acc=16, population=12)
        return any(s["specialize"] for s in cost.calls)

    assert specialised_tried(40, 64, vector_width=8)
    assert not specialised_tried(7, 9, vector_width=8, unroll_rows=4)

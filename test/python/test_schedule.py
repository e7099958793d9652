"""One schedule vocabulary, the tuner as a driver with a database, and the backend registry."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap

import numpy as np
import pytest
from xdsl.utils.exceptions import VerifyException

from pconv_mlir.backends import BACKENDS, get_all_targets, get_backend
from pconv_mlir.builders import conv2d_module, random_pattern_layer
from pconv_mlir.compiler import CompileOptions
from pconv_mlir.dialects.pconv import SCHEDULE_FIELDS, FkwConv2dOp, ScheduleAttr
from pconv_mlir.errors import OptionError, PconvError
from pconv_mlir.interpreter import run_function
from pconv_mlir.ir import make_context, parse_module, print_module
from pconv_mlir.passes.pconv_apply_tuning import PconvApplyTuningPass, TuningDatabase, layer_key
from pconv_mlir.passes.pconv_fkw_pack import PconvFkwPackPass
from pconv_mlir.passes.pconv_schedule import PconvSchedulePass
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.reference import conv2d
from pconv_mlir.tune import tune

# --------------------------------------------------------------------------------------------
# The vocabulary
# --------------------------------------------------------------------------------------------


def test_every_schedule_parameter_reaches_every_place_from_one_table() -> None:
    pack = {f.name for f in dataclasses.fields(PconvFkwPackPass)}
    setter = {f.name for f in dataclasses.fields(PconvSchedulePass)}
    assert set(SCHEDULE_FIELDS) <= pack and set(SCHEDULE_FIELDS) <= setter
    defaults = ScheduleAttr.get()
    assert defaults.as_dict() == {k: f.default for k, f in SCHEDULE_FIELDS.items()}
    for key, field in SCHEDULE_FIELDS.items():
        value = field.default + 1 if not field.power_of_two else field.default * 2
        assert CompileOptions.from_keywords({key: value}).schedule == {key: value}
        text = f"#pconv.schedule<{key} = {value}>"
        assert str(parse_attr(text)[key]) == str(value)


def parse_attr(text: str) -> ScheduleAttr:
    from xdsl.parser import Parser

    return Parser(make_context(), text).parse_attribute()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"unroll_rows": "3"}, "schedule unroll_rows = '3' is not an integer"),
        ({"unroll_rows": True}, "is not an integer"),
        ({"unrol_rows": 3}, "unknown schedule parameter 'unrol_rows'"),
    ],
)
def test_bad_schedule_values_are_option_errors(values, message) -> None:
    with pytest.raises(OptionError, match=message):
        ScheduleAttr.get(**values)


def test_schedule_verifier_names_the_bad_value() -> None:
    with pytest.raises(VerifyException, match="vector_width = 6 is not a power of two"):
        ScheduleAttr.get(vector_width=6).verify()
    with pytest.raises(VerifyException, match="tile_channels = -1 must be at least 0"):
        ScheduleAttr.get(tile_channels=-1).verify()


# --------------------------------------------------------------------------------------------
# Passes that change the schedule keep the rest
# --------------------------------------------------------------------------------------------


def packed_module(rng: np.random.Generator, c: int = 10, f: int = 6, **schedule: int):
    patterns, ids, weight = random_pattern_layer(rng, f, c, k=4, rate=2.0)
    bias = rng.standard_normal(f).astype(np.float32)
    module = conv2d_module((1, c, 7, 9), weight, bias, patterns, ids, relu=True)
    ctx = make_context(own_resources=True)
    Pipeline([PconvFkwPackPass(**schedule)]).run(module, ctx)
    return module, ctx, (weight, bias, patterns, ids)


def fkw_op(module) -> FkwConv2dOp:
    return next(op for op in module.walk() if isinstance(op, FkwConv2dOp))


def test_pconv_schedule_changes_one_parameter_and_keeps_the_others() -> None:
    module, ctx, _ = packed_module(np.random.default_rng(0), partial_sums=2, unroll_filters=2)
    Pipeline("pconv-schedule{unroll_rows=5}").run(module, ctx)
    assert fkw_op(module).schedule == ScheduleAttr.get(
        unroll_rows=5, partial_sums=2, unroll_filters=2
    )


def test_changing_tile_channels_repacks_and_keeps_the_result() -> None:
    rng = np.random.default_rng(1)
    module, ctx, (weight, bias, patterns, ids) = packed_module(rng)
    x = rng.standard_normal((1, 10, 7, 9)).astype(np.float32)
    expected = conv2d(x, weight, bias, patterns, ids, padding=(1, 1), relu=True)
    Pipeline("pconv-schedule{tile_channels=4}").run(module, ctx)
    op = fkw_op(module)
    assert op.channel_blocks() == 3 and tuple(op.stride.type.get_shape()) == (6, 3 * 4 + 1)
    (got,) = run_function(module, "conv", x, bias, ctx=ctx)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    Pipeline("pconv-schedule{tile_channels=0}").run(module, ctx)
    assert tuple(fkw_op(module).stride.type.get_shape()) == (6, 4 + 1)


def test_verifier_rejects_a_stride_table_of_the_wrong_blocking() -> None:
    module, ctx, _ = packed_module(np.random.default_rng(2))
    text = print_module(module, ctx).replace("tile_channels = 0", "tile_channels = 4")
    module = parse_module(text, make_context())
    with pytest.raises(VerifyException, match=r"stride has shape 6x5, expected 6x13"):
        module.verify()


# --------------------------------------------------------------------------------------------
# The tuner: a driver and a database; a pure pass applies it
# --------------------------------------------------------------------------------------------


def test_tuning_keeps_the_parameters_it_does_not_tune(tmp_path, need_tool) -> None:
    """Regression: the old pconv-tune rebuilt the whole schedule, resetting partial_sums,
    unroll_filters and tile_channels to their defaults."""
    need_tool("llvm-mca")
    module, ctx, _ = packed_module(
        np.random.default_rng(3), partial_sums=2, unroll_filters=2, tile_channels=4
    )
    database = tune(module, ctx, get_backend("aarch64"), steps=["tile"], max_acc=16)
    (entry,) = database.layers.values()
    assert set(entry["schedule"]) == {"unroll_rows", "unroll_cols"}
    path = tmp_path / "db.json"
    database.save(path)
    assert json.loads(path.read_text())["backend"] == "aarch64"
    Pipeline([PconvApplyTuningPass(database=str(path))]).run(module, ctx)
    schedule = fkw_op(module).schedule
    assert (schedule["partial_sums"], schedule["unroll_filters"]) == (2, 2)
    assert schedule["tile_channels"] == 4
    assert (schedule["unroll_rows"], schedule["unroll_cols"]) == (
        entry["schedule"]["unroll_rows"],
        entry["schedule"]["unroll_cols"],
    )


def test_layer_key_ignores_order_and_blocking() -> None:
    module, ctx, _ = packed_module(np.random.default_rng(4))
    before = layer_key(fkw_op(module))
    Pipeline("pconv-schedule{tile_channels=3}").run(module, ctx)
    assert layer_key(fkw_op(module)) == before
    assert before.startswith("1x10x7x9->6 s1x1 p1x1 d1x1 k4t4 ")


def test_database_errors_are_located_at_the_file(tmp_path) -> None:
    path = tmp_path / "db.json"
    path.write_text("{not json")
    with pytest.raises(PconvError, match=r"db.json:1:2: error: not JSON"):
        TuningDatabase.load(path)
    path.write_text(json.dumps({"format": "pconv-tuning/1", "layers": {"k": {"schedule": {}}}}))
    assert TuningDatabase.load(path).schedule_for("k") == {}
    path.write_text(
        json.dumps({"format": "pconv-tuning/1", "layers": {"k": {"schedule": {"bogus": 1}}}})
    )
    with pytest.raises(PconvError, match="unknown schedule parameter 'bogus'"):
        TuningDatabase.load(path)
    with pytest.raises(OptionError, match="needs database"):
        PconvApplyTuningPass()


# --------------------------------------------------------------------------------------------
# Backends: one registry; a new one is one file and one entry
# --------------------------------------------------------------------------------------------

NEW_BACKEND = textwrap.dedent(
    """
    from dataclasses import dataclass

    from pconv_mlir.backends.llvm_cpu import HostBackend, LlvmIrTarget


    @dataclass(frozen=True)
    class AnnotatedTarget(LlvmIrTarget):
        name = "annotated-llvm-ir"

        def emit(self, ctx, module, output):
            output.write("; annotated\\n")
            super().emit(ctx, module, output)


    class AnnotatedBackend(HostBackend):
        name = "annotated"
        summary = "the host, for a test"
        target = AnnotatedTarget
    """
)


def test_a_new_backend_is_one_file_and_one_registry_entry(tmp_path, monkeypatch) -> None:
    (tmp_path / "annotated_backend.py").write_text(NEW_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        BACKENDS, "annotated", ("annotated_backend", "AnnotatedBackend", "annotated-llvm-ir")
    )
    try:
        assert get_all_targets()["annotated-llvm-ir"]().name == "annotated-llvm-ir"
        backend = get_backend("annotated")
        assert backend.name == "annotated" and backend.schedule_defaults()
        assert CompileOptions().front_passes(backend)[2].vector_width == (
            backend.machine.default_vector_width
        )
    finally:
        sys.modules.pop("annotated_backend", None)


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(OptionError, match=r"unknown target 'gpu' \(backends: host, aarch64"):
        get_backend("gpu")
    assert set(get_all_targets()) == {"llvm-ir", "opencl", "opencl-launch", "spirv"}


@pytest.mark.parametrize(
    "flags, lanes, registers",
    [({"avx2", "fma"}, 8, 16), ({"avx2", "fma", "avx512f", "avx512vl"}, 16, 32)],
)
def test_host_vector_width_follows_the_cpu_flags(monkeypatch, flags, lanes, registers) -> None:
    """An AVX-512 host gets 16-lane vectors (one zmm) by default, an AVX2 host 8 (one ymm)."""
    from pconv_mlir import machine

    assert machine.host_arch() == "x86_64", "this test reads x86-64 CPU flags"
    monkeypatch.setattr(machine, "_cpu_flags", lambda: flags)
    machine.host_machine.cache_clear()
    try:
        host = machine.host_machine()
        assert (host.default_vector_width, host.vector_registers) == (lanes, registers)
        assert get_backend("host").schedule_defaults() == {"vector_width": lanes}
    finally:
        monkeypatch.undo()
        machine.host_machine.cache_clear()


def test_host_tuning_tries_both_vector_widths() -> None:
    """The host tuner's first step times 8 and 16 lanes and keeps the faster."""
    from pconv_mlir.tune import tune_layer

    backend = get_backend("host")
    assert backend.tunable[0] == "vector_width"
    module, ctx, _ = packed_module(np.random.default_rng(5))
    best, best_cost, costs = tune_layer(
        fkw_op(module), ctx, backend, steps=["vector_width"], repeats=1
    )
    widths = {int(key.split("vector_width=")[1].split(",")[0]) for key in costs}
    assert widths == {8, 16}
    assert best_cost == min(costs.values()) and best["vector_width"] in widths

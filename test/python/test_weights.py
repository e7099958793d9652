"""Weights never round-trip through text: import, passes, printing, lowering and linking.

From the torch module to the artifact the weights stay numpy arrays (`Blob`s of a context's
`BlobStore`): torch-mlir's module is printed without its blobs, passes store large constants as
bytes (`constant_op`), `pconv-externalize-constants` makes them external symbols, and the CPU
back end links their bytes in from one binary file. Printing a module still round-trips, or
elides the large blobs on request.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from xdsl.dialects import arith, memref
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, DenseResourceAttr, ModuleOp

import pconv_mlir
import pconv_mlir.frontend
import pconv_mlir.lowering.llvm
from pconv_mlir import pruning
from pconv_mlir.builders import conv2d_module
from pconv_mlir.elements import (
    INLINE_LIMIT,
    Blob,
    BlobStore,
    ElementsError,
    constant_array,
    constant_op,
    constant_value,
    resource_attr,
    storage_of,
)
from pconv_mlir.errors import PconvError
from pconv_mlir.frontend import import_torch
from pconv_mlir.ir import make_context, parse_module, print_module
from pconv_mlir.lowering.externalize_constants import EXTERNAL_DATA, ExternalizeConstantsPass
from pconv_mlir.pipeline import Pipeline
from pconv_mlir.runtime.build import WEIGHTS_ALIGNMENT, WeightsFile
from pconv_mlir.toolchain import tool_available
from pconv_mlir.tools.pconv_opt import main as pconv_opt

HEX_RUN = re.compile(r"[0-9A-Fa-f]{8193,}")
"""A hex run of more than 4 KB of data: what no text on the way may hold."""


def cnn() -> nn.Module:
    """Two pattern-pruned 3x3 convs and a 4 MB linear layer (weights >> any text allowed)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 16, 1000),
    ).eval()
    pruning.prune_model(model, patterns=4, connectivity=2.0)
    return model


WEIGHT_BYTES = 4 * sum(p.numel() for p in cnn().parameters())


def resources(module: ModuleOp) -> list[DenseResourceAttr]:
    found = []
    for op in module.walk():
        for attr in (*op.properties.values(), *op.attributes.values()):
            if isinstance(attr, DenseResourceAttr):
                found.append(attr)
    return found


class TextWatch:
    """Records every text given to xDSL's parser by the importer and to the LLVM tools, and the
    size of every blob printed as hex; torch-mlir's pipeline driver, which prints the whole
    module with its blobs, must not run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[tuple[str, str]] = []
        self.hex_blobs: list[int] = []
        parse, run_tool, write_hex = (
            pconv_mlir.frontend.parse_module,
            pconv_mlir.lowering.llvm.run_tool,
            Blob.write_hex,
        )

        def watched_parse(text, *args, **kwargs):
            self.texts.append(("import", text))
            return parse(text, *args, **kwargs)

        def watched_tool(tool, args, text=None, **kwargs):
            self.texts.append((tool, text or ""))
            output = run_tool(tool, args, text, **kwargs)
            self.texts.append((f"{tool} output", output))
            return output

        def watched_hex(blob, write, *args, **kwargs):
            self.hex_blobs.append(blob.nbytes)
            return write_hex(blob, write, *args, **kwargs)

        def no_repro_dump(*args, **kwargs):  # prints every weight as hex before it runs
            raise AssertionError("torch-mlir's run_pipeline_with_repro_report was called")

        import torch_mlir.compiler_utils
        import torch_mlir.fx

        for owner in (torch_mlir.fx, torch_mlir.compiler_utils):
            monkeypatch.setattr(owner, "run_pipeline_with_repro_report", no_repro_dump)
        monkeypatch.setattr(pconv_mlir.frontend, "parse_module", watched_parse)
        monkeypatch.setattr(pconv_mlir.lowering.llvm, "run_tool", watched_tool)
        monkeypatch.setattr(Blob, "write_hex", watched_hex)

    def check(self, limit: int) -> None:
        """No text longer than `limit`, no hex run over 4 KB, no blob over 4 KB printed."""
        assert self.texts
        for what, text in self.texts:
            assert len(text) < limit, f"{what}: {len(text)} characters"
            assert HEX_RUN.search(text) is None, f"{what} holds a hex blob"
        assert all(size <= INLINE_LIMIT for size in self.hex_blobs), self.hex_blobs


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


def test_import_prints_no_blob_and_keeps_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    model = cnn()
    watch = TextWatch(monkeypatch)
    ctx = make_context(own_resources=True)
    module = import_torch(model, torch.randn(1, 3, 8, 8), ctx=ctx)
    watch.check(limit=WEIGHT_BYTES // 20)
    keys = {a.resource_handle.data for a in resources(module)}
    assert {"torch_0_weight", "torch_2_weight", "torch_6_weight", "torch_6_bias"} <= keys
    state = model.state_dict()
    for attr in resources(module):
        name = attr.resource_handle.data.removeprefix("torch_").replace("_", ".", 1)
        expected = state[name].detach().numpy()
        got = constant_array(ctx, attr, copy=False)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
        assert not np.shares_memory(got, expected)  # a copy: the model may change
    with torch.no_grad():
        model[6].weight.mul_(2)
    linear = next(a for a in resources(module) if a.resource_handle.data == "torch_6_weight")
    assert np.array_equal(constant_array(ctx, linear) * 2, model[6].weight.detach().numpy())


def test_import_without_copy_shares_the_model_memory() -> None:
    model = cnn()
    ctx = make_context(own_resources=True)
    module = import_torch(model, torch.randn(1, 3, 8, 8), ctx=ctx, copy_weights=False)
    linear = next(a for a in resources(module) if a.resource_handle.data == "torch_6_weight")
    array = constant_array(ctx, linear, copy=False)
    assert np.shares_memory(array, model[6].weight.detach().numpy())
    assert not array.flags.writeable


def test_import_into_the_shared_storage_twice_gets_new_keys() -> None:
    model = cnn()
    ctx = make_context()  # xDSL's process-wide (hex) storage
    first = import_torch(model, torch.randn(1, 3, 8, 8), ctx=ctx)
    second = import_torch(model, torch.randn(1, 3, 8, 8), ctx=ctx)
    keys = [{a.resource_handle.data for a in resources(m)} for m in (first, second)]
    assert not keys[0] & keys[1]
    for module in (first, second):
        for attr in resources(module):
            assert constant_array(ctx, attr).size > 0


# --------------------------------------------------------------------------------------------
# constants made by passes
# --------------------------------------------------------------------------------------------


def test_constant_op_is_dense_when_small_and_a_blob_when_large() -> None:
    ctx = make_context(own_resources=True)
    small = np.arange(8, dtype=np.int32)
    large = np.arange(INLINE_LIMIT // 4 + 1, dtype=np.float32)
    a, b, c = (
        constant_op(ctx, small, "w"),
        constant_op(ctx, large, "w"),
        constant_op(ctx, large, "w"),
    )
    assert a.parent is None and isinstance(a, arith.ConstantOp)  # for the rewriter to insert
    assert isinstance(a.value, DenseIntOrFPElementsAttr)
    assert isinstance(b.value, DenseResourceAttr) and b.value.resource_handle.data == "w"
    assert c.value.resource_handle.data == "w_0"
    assert isinstance(storage_of(ctx), BlobStore)
    assert storage_of(ctx).blob("w").nbytes == large.nbytes
    for op, array in ((a, small), (b, large)):
        got = constant_value(ctx, op.result)
        assert got.dtype == array.dtype and np.array_equal(got, array)
    large[0] = 99  # the constant holds a copy
    assert constant_value(ctx, b.result)[0] == 0
    forced = constant_op(ctx, small, "s", inline_limit=0)
    assert isinstance(forced.value, DenseResourceAttr)


def test_fkw_pack_stores_the_large_arrays_as_blobs() -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    patterns = [[0, 1, 4, 5], [1, 3, 4, 5], [3, 4, 5, 7], [4, 5, 7, 8]]
    ids = rng.integers(-1, len(patterns), (64, 32))
    mask = np.zeros((len(patterns), 9), bool)
    for p, taps in enumerate(patterns):
        mask[p, taps] = True
    weight = weight * np.where(ids[..., None] >= 0, mask[ids], False).reshape(64, 32, 3, 3)
    module = conv2d_module((1, 32, 6, 6), weight, None, patterns, ids, (1, 1), (1, 1))
    ctx = make_context(own_resources=True)
    Pipeline("pconv-fkw-pack").run(module, ctx)
    kinds = {
        op.result.name_hint: type(op.value).__name__
        for op in module.walk()
        if isinstance(op, arith.ConstantOp)
    }
    assert kinds["weight"] == "DenseResourceAttr" and kinds["index"] == "DenseResourceAttr"
    assert kinds["offset"] == "DenseIntOrFPElementsAttr"  # 65 entries: small
    text = print_module(module, ctx)
    again = make_context(own_resources=True)
    reparsed = parse_module(text, again)
    assert print_module(reparsed, again) == text


# --------------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------------


def test_print_parse_round_trip_is_bit_exact() -> None:
    ctx = make_context(own_resources=True)
    module = import_torch(cnn(), torch.randn(1, 3, 8, 8), ctx=ctx)
    odd = np.array([np.nan, -0.0, np.inf, 1e-45], np.float32)
    extra = [
        resource_attr(ctx, "odd", odd),
        resource_attr(ctx, "half", np.arange(6, dtype=np.float16)),
        resource_attr(ctx, "long", np.arange(-3, 3, dtype=np.int64)),
    ]
    for attr in extra:
        module.body.block.add_op(arith.ConstantOp(attr))
    text = print_module(module, ctx)
    fresh = make_context(own_resources=True)
    again = parse_module(text, fresh)
    pairs = list(zip(resources(module), resources(again), strict=True))
    assert len(pairs) >= 8
    for old, new in pairs:
        assert old == new
        a, b = constant_array(ctx, old, copy=False), constant_array(fresh, new, copy=False)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert print_module(again, fresh) == text


def test_elided_print_parses_and_compiling_it_is_a_located_error() -> None:
    ctx = make_context(own_resources=True)
    module = import_torch(cnn(), torch.randn(1, 3, 8, 8), ctx=ctx)
    text = print_module(module, ctx, elide_resources_over=1024)
    assert len(text) < 50_000 and HEX_RUN.search(text) is None
    assert "dense_resource blob(s) of more than 1024 bytes elided" in text
    assert "torch_0_bias:" in text and "torch_6_weight:" not in text  # 64 B kept, 4 MB not
    fresh = make_context(own_resources=True)
    again = parse_module(text, fresh, name="elided.mlir")
    linear = next(a for a in resources(again) if a.resource_handle.data == "torch_6_weight")
    with pytest.raises(ElementsError, match="has no data"):
        constant_array(fresh, linear)
    with pytest.raises(PconvError) as error:
        pconv_mlir.compile(text)
    message = str(error.value)
    assert re.match(r"<string>:\d+:\d+: error: ", message), message
    assert "has no data" in message and "\n" not in message


def test_pconv_opt_elides_on_request_and_round_trips_otherwise(tmp_path: Path, capsys) -> None:
    ctx = make_context(own_resources=True)
    module = import_torch(cnn(), torch.randn(1, 3, 8, 8), ctx=ctx)
    source = tmp_path / "cnn.mlir"
    source.write_text(print_module(module, ctx))
    full, elided = tmp_path / "full.mlir", tmp_path / "elided.mlir"
    assert pconv_opt([str(source), "-o", str(full)]) == 0
    assert pconv_opt([str(source), "--pconv-elide-resources-over=1024", "-o", str(elided)]) == 0
    assert len(elided.read_text()) < 50_000 < 2 * WEIGHT_BYTES < len(full.read_text())
    for path in (full, elided):
        assert pconv_opt([str(path), "-o", str(tmp_path / "again.mlir")]) == 0
    fresh = make_context(own_resources=True)
    again = parse_module(full.read_text(), fresh)
    for old, new in zip(resources(module), resources(again), strict=True):
        assert constant_array(ctx, old).tobytes() == constant_array(fresh, new).tobytes()
    assert pconv_opt([str(elided), "-t", "llvm-ir"]) == 1
    line = capsys.readouterr().err.strip()
    assert re.match(rf"{re.escape(str(elided))}:\d+:\d+: error: .*has no data", line), line


# --------------------------------------------------------------------------------------------
# lowering and linking
# --------------------------------------------------------------------------------------------


def test_weights_file_aligns_every_symbol(tmp_path: Path) -> None:
    constants = [
        ("a", np.arange(5, dtype=np.float32)),
        ("b", Blob.of(np.arange(3, dtype=np.int64))),
        ("c", np.ones(1, np.int8)),
    ]
    weights = WeightsFile.write(tmp_path / "w.bin", constants)
    assert [(s, o % WEIGHTS_ALIGNMENT, n) for s, o, n in weights.symbols] == [
        ("a", 0, 20),
        ("b", 0, 24),
        ("c", 0, 1),
    ]
    data = (tmp_path / "w.bin").read_bytes()
    for (_, offset, size), (_, array) in zip(weights.symbols, constants, strict=True):
        assert data[offset : offset + size] == np.asarray(getattr(array, "data", array)).tobytes()
    stub = weights.assembly("w.bin")
    assert stub.count('.incbin "w.bin"') == 3 and stub.count(".hidden") == 3
    assert ".section .note.GNU-stack" in stub


def test_externalized_module_runs_with_linked_weights() -> None:
    """The pass alone (on a module, then the runtime's builder): host and qemu."""
    from pconv_mlir.runtime.runners import build_runner

    ctx = make_context(own_resources=True)
    table = np.arange(2048, dtype=np.float32) * 0.5
    text = f"""
func.func @at(%i: index) -> f32 {{
  %t = arith.constant dense_resource<table> : tensor<2048xf32>
  %e = tensor.extract %t[%i] : tensor<2048xf32>
  func.return %e : f32
}}
{{-# dialect_resources: {{builtin: {{table: "{Blob.of(table).hex()}"}}}} #-}}
"""
    module = parse_module(text, ctx)
    Pipeline([ExternalizeConstantsPass()]).run(module, ctx)
    (global_,) = [op for op in module.walk() if isinstance(op, memref.GlobalOp)]
    assert global_.attributes[EXTERNAL_DATA].resource_handle.data == "table"
    assert not any(isinstance(op, arith.ConstantOp) for op in module.walk())
    targets = ["host"]
    if tool_available("qemu-aarch64"):
        targets.append("aarch64")
    for target in targets:
        with build_runner(module, ctx, target=target) as runner:
            assert [float(runner.call("at", i)) for i in (0, 7, 2047)] == [0.0, 3.5, 1023.5]


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_compiled_model_links_its_weights_without_text(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, need_tool
) -> None:
    if target == "aarch64":
        need_tool("qemu-aarch64")
    model = cnn()
    x = torch.randn(1, 3, 8, 8)
    watch = TextWatch(monkeypatch)
    artifact = pconv_mlir.compile(model, x, target=target)
    try:
        np.testing.assert_allclose(artifact(x), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
        watch.check(limit=WEIGHT_BYTES // 4)
        assert len(artifact.text) < WEIGHT_BYTES // 4  # LLVM IR without the weights
        assert len(artifact.mlir) < WEIGHT_BYTES // 4 and HEX_RUN.search(artifact.mlir) is None
        assert artifact.weights is not None and artifact.weights.nbytes >= 4_000_000
        saved = artifact.save(tmp_path / "out")
        names = {p.name for p in saved.iterdir()}
        assert names == {
            "libforward.so",
            "forward.h",
            "forward.ll",
            "forward.weights.bin",
            "forward.weights.s",
        }
        assert (saved / "libforward.so").stat().st_size > artifact.weights.nbytes
        assert (saved / "forward.weights.bin").read_bytes() == artifact.weights.path.read_bytes()
        assert "external constant" in (saved / "forward.ll").read_text()
    finally:
        artifact.close()


def test_import_keeps_integer_and_bf16_literals() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("idx", torch.tensor([3, 1, 0, 2]))
            self.w = nn.Parameter(torch.randn(4, 4).to(torch.bfloat16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.index_select(1, self.idx) @ self.w

    model = Mixed()
    ctx = make_context(own_resources=True)
    module = import_torch(model, torch.randn(2, 4, dtype=torch.bfloat16), ctx=ctx)
    values = {a.resource_handle.data: constant_array(ctx, a) for a in resources(module)}
    assert np.array_equal(values["idx"], [3, 1, 0, 2])
    assert np.array_equal(values["w"], model.w.detach().float().numpy())  # bf16 bits, widened

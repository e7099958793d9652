"""The benchmark script runs and writes its table and CSV (speed itself is never asserted)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "conv_layers.py"


def test_quick_benchmark_writes_a_table_and_csv(tmp_path, capsys, need_tool):
    need_tool("llvm-mca")
    spec = importlib.util.spec_from_file_location("conv_layers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["conv_layers"] = module
    spec.loader.exec_module(module)
    out = tmp_path / "quick.csv"
    argv = ["--quick", "--repeats", "1", "--aarch64", "--code", "--csv", str(out)]
    argv += ["--specialize", "unroll_filters=2,unroll_rows=1,unroll_cols=1"]
    assert module.main(argv) == 0
    printed = capsys.readouterr().out
    assert "sp/torch" in printed and "llvm-mca-22 ESTIMATE" in printed
    assert "sparse as specialised code" in printed
    assert "spills/reloads, loads/MAC" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3
    for row in rows:  # code bytes from the object file, loads per multiply-add below 1 after LRE
        assert int(row["sparse_code_bytes"]) > 0 and int(row["sparse_spills"]) >= 0
        assert 0 < float(row["sparse_loads_per_fma"]) <= 1
    for row in rows:
        assert float(row["sparse_ms"]) > 0 and float(row["a76_est_sparse_ms"]) > 0
    # Layer a (28 x 28 output, 1 x 1 tile: 112 tiles) is worth specialising; c (9 x 9) is not.
    assert float(rows[0]["spec_ms"]) > 0 and not rows[2]["spec_ms"]


def test_quick_opencl_benchmark_writes_a_table_and_csv(tmp_path, capsys, need):
    from pconv_mlir.errors import RunError
    from pconv_mlir.runtime.opencl import opencl_device

    try:
        opencl_device()
    except RunError as e:
        need(f"{e} (run `make setup`)")
    path = BENCH.parent / "opencl.py"
    spec = importlib.util.spec_from_file_location("bench_opencl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "opencl.csv"
    assert module.main(["--quick", "--repeats", "1", "--stage", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a CPU OpenCL device: relative comparison only" in printed and "sp/dense" in printed
    assert "staged/sp" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3
    for row in rows:
        assert float(row["sparse_ms"]) > 0 and float(row["dense_macs_per_pixel"]) > 0
        assert float(row["staged_ms"]) > 0


def test_quick_comparison_with_the_peers_writes_table_csv_and_chart(tmp_path, capsys):
    """bench/compare.py --quick: every peer is either timed after its output matched torch or
    listed with the reason it was not; pconv's three builds are timed; CSV and PNG written."""
    path = BENCH.parent / "compare.py"
    spec = importlib.util.spec_from_file_location("bench_compare", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    table, chart = tmp_path / "compare.csv", tmp_path / "compare.png"
    argv = ["--quick", "--warmup", "1", "--calls", "1", "--rounds", "1"]
    assert module.main([*argv, "--csv", str(table), "--png", str(chart)]) == 0
    printed = capsys.readouterr().out
    assert "dense peak (numpy sgemm" in printed and "geometric mean, pconv sparse" in printed
    rows = list(csv.DictReader(table.open()))
    systems = {row["system"] for row in rows}
    peers = module.peers.PEERS
    assert systems == {*peers, "pconv-dense", "pconv-pattern", "pconv-sparse"}
    for row in rows:
        if row["system"].startswith("pconv-") or row["system"].startswith("torch"):
            assert row["status"] == "exact" and float(row["ms"]) > 0, row
        else:  # timed after its check, or not timed with the reason
            assert row["status"] in ("exact", "inexact") or ": " in row["status"], row
    assert {row["kind"] for row in rows} == {"layer", "network"}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Converts and runs one MNN model in MNN's own venv, driven from `bench/peers.py`.

MNN lives in a venv of its own, and its `mnnconvert` script must not be used: that wrapper
imports a telemetry logger which runs `pip install -U aliyun-log-python-sdk` with whatever
`pip` is first on PATH (so into another Python, pulling protobuf<6 and elasticsearch with it)
and then posts to a logging service. `convert` calls the converter's C++ entry point instead:

    python bench/mnn_runner.py convert M.onnx M.mnn
    python bench/mnn_runner.py serve M.mnn INPUT.npy --threads 1

`serve` loads the model, answers `@mnn ready` and then takes commands on stdin, one per line;
each answer is one stdout line that starts with `@mnn ` (MNN itself prints to stdout too, so
other lines are ignored by the reader):

- `run`: copies the input in, runs once; answers `@mnn ok SECONDS`, the time of `runSession`
  alone (MNN may reuse the input's memory during a run, so the input is copied in every time);
- `out PATH`: the same, then saves the NCHW output to PATH (`.npy`);
- `quit`: exits.

Any failure answers `@mnn error MESSAGE`. This file imports only MNN and numpy: it must not
import torch or anything from pconv-mlir.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

PREFIX = "@mnn "


def reply(text: str) -> None:
    """Writes one protocol answer line and flushes it."""
    sys.stdout.write(PREFIX + text + "\n")
    sys.stdout.flush()


def convert(onnx_path: str, mnn_path: str) -> int:
    """Converts an ONNX file to MNN with the converter's C++ entry point (not the `mnnconvert`
    script, see above); 0 when the .mnn file was written."""
    import _tools  # MNN's converter, installed by the mnn wheel

    _tools.mnnconvert(
        ["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path]
        + ["--bizCode", "biz"]
    )
    return 0 if os.path.exists(mnn_path) else 1


def main(argv: list[str] | None = None) -> int:
    """`convert`, or `serve`: load the model and the input, then answer `run` / `out` / `quit`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    converting = commands.add_parser("convert", help="ONNX to MNN")
    converting.add_argument("onnx")
    converting.add_argument("mnn")
    serving = commands.add_parser("serve", help="run the model on commands from stdin")
    serving.add_argument("model", help="the .mnn file")
    serving.add_argument("input", help="the NCHW float32 input as .npy")
    serving.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "convert":
        return convert(args.onnx, args.mnn)
    try:
        import MNN

        x = np.ascontiguousarray(np.load(args.input), dtype=np.float32)
        interpreter = MNN.Interpreter(args.model)
        session = interpreter.createSession(
            {"backend": "CPU", "numThread": args.threads, "precision": "high"}
        )
        source = interpreter.getSessionInput(session)
        if tuple(source.getShape()) != x.shape:
            interpreter.resizeTensor(source, x.shape)
            interpreter.resizeSession(session)
        staged = MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe)
        result = interpreter.getSessionOutput(session)
    except Exception as e:  # every failure goes back to the parent as text
        reply(f"error {type(e).__name__}: {e}")
        return 1
    reply("ready")
    for line in sys.stdin:
        command, _, path = line.strip().partition(" ")
        if command == "quit":
            break
        if command not in ("run", "out"):
            reply(f"error unknown command {command!r}")
            continue
        try:
            # MNN may reuse the input's memory inside a run, so the input goes in again before
            # every run (outside the timed part): only the first run would be right otherwise.
            source.copyFrom(staged)
            start = time.perf_counter()
            interpreter.runSession(session)
            seconds = time.perf_counter() - start
            if command == "out":
                shape = tuple(result.getShape())
                host = MNN.Tensor(
                    shape,
                    MNN.Halide_Type_Float,
                    np.zeros(shape, dtype=np.float32),
                    MNN.Tensor_DimensionType_Caffe,
                )
                result.copyToHostTensor(host)
                out = np.array(host.getNumpyData(), dtype=np.float32).reshape(shape)
                np.save(path, out)
        except Exception as e:
            reply(f"error {type(e).__name__}: {e}")
            continue
        reply(f"ok {seconds:.9f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

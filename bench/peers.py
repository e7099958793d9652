"""Peers: the same dense conv layer (or whole `torch.nn.Module`) on every framework a user would
pick instead of pconv-mlir, each output checked against torch before anything is timed.

Every peer in `PEERS` has a `name`, `available()` (None when it can run here, else the reason:
not installed, or how it failed) and `prepare(module, x, workdir, threads)`, which returns a
`Runner`: calling it runs once and returns the output as an NCHW numpy array comparable to
`module(x)`; `Runner.invoke` only runs (the input is set once in `prepare`), and that is what
`time_interleaved` times. A peer that cannot run a module raises `Unsupported` with the reason.

| peer | how |
| --- | --- |
| `torch` / `torch-cl` | the module under `inference_mode`, NCHW / channels-last (oneDNN) |
| `onnxruntime` | the ONNX export (opset 17), CPU provider, IO binding |
| `openvino` | the ONNX export on the CPU plugin, `INFERENCE_PRECISION_HINT=f32` |
| `litert` | XNNPACK; a conv as a one-op `.tflite` built here, a module via litert-torch's venv |
| `mnn` | MNN's converter on the ONNX export, run in MNN's own venv (`PCONV_MNN_VENV`) |
| `tvm` | Relax `from_onnx`, `tvm.compile` for the host CPU, default schedule (untuned) |
| `iree` | `iree-import-onnx`, llvm-cpu, host CPU, `local-sync` driver (`local-task` if > 1) |

    python bench/peers.py --cpu 1                 # a 64->64 3x3 conv at 56x56, one thread
    python bench/peers.py --c 8 --f 8 --hw 12 --calls 3 --rounds 1    # smoke test
    python bench/peers.py --threads all --peak    # all cores, and the sgemm peak for reference
    python bench/peers.py --model resnet18 --hw 32                    # a whole network

MNN and litert-torch each need a venv of their own (both break the bench venv: MNN's
`mnnconvert` pip-installs protobuf<6, litert-torch pins xdsl 0.28): point `PCONV_MNN_VENV` and
`PCONV_LITERT_TORCH_VENV` (or `--mnn-venv`, `--litert-torch-venv`) at them.

Method (see shared/PEERS.md): same weights and input for every peer, each output checked before
timing (relative error above 1e-4 is reported as inexact, never hidden), peers interleaved call
by call, 2 warm-up calls, 9 timed calls, 3 rounds, median of round medians.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

QUIET_POOLS = {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"}
"""Several runtimes share the cores in one process, and an idle thread pool that spins steals
them from the peer being timed (with two threads, ONNX Runtime's spinning made torch 60x
slower; its sessions here get `allow_spinning=0`). These must be set before torch's OpenMP
starts, so the script re-executes itself with them unless `OMP_WAIT_POLICY` is already set;
importing this module changes nothing. No effect on one thread."""

EXACT = 1e-4
"""Relative error above which a peer's output is reported as inexact."""

MNN_VENV_ENV = "PCONV_MNN_VENV"
"""Environment variable naming the venv that holds MNN (`pip install mnn numpy`)."""

MNN_RUNNER = Path(__file__).resolve().with_name("mnn_runner.py")


class Unsupported(Exception):
    """A peer cannot run this module (or this thread count); the message says why."""


@dataclass
class Runner:
    """A prepared peer. Calling it runs once and returns the NCHW output (for `check`);
    `invoke` only runs, and is what gets timed. For a peer running in another process,
    `self_timed` is True and `invoke` returns the seconds measured there (no pipe overhead)."""

    invoke: Callable[[], float | None]
    fetch: Callable[[], np.ndarray]
    self_timed: bool = False
    close: Callable[[], None] = field(default=lambda: None)
    keep: tuple[object, ...] = ()
    """Objects the runtime reads by pointer without owning them (bound input arrays)."""

    def __call__(self) -> np.ndarray:
        """Runs once and returns the output of that run, NCHW float32."""
        self.invoke()
        return self.fetch()


def all_threads() -> int:
    """The number of cores this process may run on (what `--threads all` means)."""
    return len(os.sched_getaffinity(0))


def version_of(*distributions: str) -> str:
    """The installed versions of the given pip distributions, `name version` joined by commas."""
    found = []
    for name in distributions:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _output_shape(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    """The shape of `module(x)`, computed once without autograd."""
    with torch.inference_mode():
        return tuple(module(x).shape)


def fingerprint(module: torch.nn.Module, x: torch.Tensor) -> str:
    """A digest of the module's structure, its weights and buffers and the input shape: files
    made from the same module at the same shape get the same name, so they are made once."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{module!r} {tuple(x.shape)}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(module: torch.nn.Module, x: torch.Tensor, workdir: Path) -> Path:
    """Exports `module` at the shape of `x` to `workdir/model-<fingerprint>.onnx` (opset 17,
    input `x`, output `y`, TorchScript exporter), unless that file is already there."""
    path = workdir / f"model-{fingerprint(module, x)}.onnx"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module.eval(),
            (x,),
            str(partial),
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
        )
    partial.replace(path)  # a failed export leaves no file that looks finished
    return path


class Peer:
    """One framework. Subclasses set `name`, `modules` (imports that must work) and
    `distributions` (what to pip-install), and implement `prepare`."""

    name: str = ""
    modules: tuple[str, ...] = ()
    distributions: tuple[str, ...] = ()

    def available(self) -> str | None:
        """None when every module imports, else why not (not installed / the import error)."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except ImportError as e:
                return f"not installed ({e}): pip install {' '.join(self.distributions)}"
            except Exception as e:  # a broken install fails in many ways
                return f"failed to import {module}: {type(e).__name__}: {e}"
        return None

    def version(self) -> str:
        """The versions of this peer's pip distributions."""
        return version_of(*self.distributions)

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Builds whatever the peer needs for `module` at the shape of `x` in `workdir`, sets
        the input once and returns the runner. Raises `Unsupported` when it cannot."""
        raise NotImplementedError


class TorchPeer(Peer):
    """PyTorch (oneDNN), NCHW or channels-last; module and input are converted beforehand."""

    modules = ("torch",)
    distributions = ("torch",)

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        self.name = "torch-cl" if channels_last else "torch"

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Copies the module (and input) to the chosen memory format; the thread count is
        process-wide in torch, so `invoke` re-applies it if another peer changed it."""
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # only settable before the first parallel work; one thread is the default use
        model = copy.deepcopy(module).eval()
        xin = x.detach().clone()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
            xin = xin.contiguous(memory_format=torch.channels_last)
        last: list[torch.Tensor] = []

        def invoke() -> None:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            with torch.inference_mode():
                y = model(xin)
            last[:] = [y]

        return Runner(invoke, lambda: last[0].contiguous().numpy())


class OnnxRuntimePeer(Peer):
    """ONNX Runtime, CPU execution provider, input and output bound once (IO binding)."""

    name = "onnxruntime"
    modules = ("onnxruntime", "onnx")
    distributions = ("onnxruntime",)

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Sessions with `intra_op_num_threads=threads`, one inter-op thread, all graph
        optimizations; `invoke` is `run_with_iobinding`."""
        import onnxruntime as ort

        path = export_onnx(module, x, workdir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 1:  # idle workers must not spin on the cores the next peer runs on
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        xin = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        out = ort.OrtValue.ortvalue_from_numpy(np.empty(_output_shape(module, x), dtype=np.float32))
        source = ort.OrtValue.ortvalue_from_numpy(xin)
        binding = session.io_binding()
        binding.bind_ortvalue_input("x", source)
        binding.bind_ortvalue_output("y", out)

        def invoke() -> None:
            session.run_with_iobinding(binding)

        return Runner(invoke, lambda: out.numpy().copy(), keep=(xin, source, out))


class OpenVinoPeer(Peer):
    """OpenVINO CPU plugin on the ONNX export, f32 inference (no silent bf16), one stream."""

    name = "openvino"
    modules = ("openvino",)
    distributions = ("openvino",)

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Compiles for `CPU` with `INFERENCE_NUM_THREADS=threads`, `NUM_STREAMS=1`, latency
        hint; one infer request whose input tensor is set once."""
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(export_onnx(module, x, workdir)))
        compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        request = compiled.create_infer_request()
        xin = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        request.set_input_tensor(ov.Tensor(xin))

        def invoke() -> None:
            request.infer()

        return Runner(invoke, lambda: np.array(request.get_output_tensor().data, copy=True))


def _tflite_padding(conv: torch.nn.Conv2d, h: int, w: int) -> str:
    """How a torch conv's padding maps to TFLite: `SAME` or `VALID` when one of them gives
    exactly torch's padding, else `PAD` (an explicit PAD op, then a VALID conv)."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    if ph == 0 and pw == 0:
        return "VALID"

    def same_matches(size: int, k: int, s: int, p: int) -> bool:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2 == p and (size + 2 * p - k) // s + 1 == out and total - total // 2 == p

    if same_matches(h, kh, sh, ph) and same_matches(w, kw, sw, pw):
        return "SAME"
    return "PAD"


def conv2d_tflite(conv: torch.nn.Conv2d, x_shape: tuple[int, ...]) -> bytes:
    """A one-op CONV_2D TFLite model of `conv` (NHWC input, OHWI filter, float32), with a PAD
    op in front only when neither SAME nor VALID padding equals torch's. Built with the schema
    that `ai-edge-litert` ships, so no TensorFlow is needed."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    n, c, h, w = x_shape
    padding = _tflite_padding(conv, h, w)
    weight = conv.weight.detach().numpy().astype(np.float32)
    f = weight.shape[0]
    bias = (
        conv.bias.detach().numpy().astype(np.float32)
        if conv.bias is not None
        else np.zeros(f, dtype=np.float32)
    )
    with torch.inference_mode():
        _, _, oh, ow = conv(torch.zeros(x_shape)).shape

    buffers = [tfl.BufferT()]  # buffer 0 is the empty sentinel

    def buffer(data: np.ndarray | None) -> int:
        entry = tfl.BufferT()
        if data is not None:
            entry.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        buffers.append(entry)
        return len(buffers) - 1

    tensors: list[tfl.TensorT] = []

    def tensor(name: str, shape: tuple[int, ...], dtype: int, data: np.ndarray | None) -> int:
        entry = tfl.TensorT()
        entry.name, entry.shape, entry.type = name, list(shape), dtype
        entry.buffer = buffer(data)
        tensors.append(entry)
        return len(tensors) - 1

    f32, i32 = tfl.TensorType.FLOAT32, tfl.TensorType.INT32
    codes: list[tfl.OperatorCodeT] = []
    operators: list[tfl.OperatorT] = []

    def operator(
        builtin: int, inputs: list[int], outputs: list[int], kind: int, options: object
    ) -> None:
        code = tfl.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(codes) - 1, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = kind, options
        operators.append(op)

    source = tensor("x", (n, h, w, c), f32, None)
    conv_in = source
    if padding == "PAD":
        ph, pw = conv.padding
        pads = np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], dtype=np.int32)
        paddings = tensor("paddings", (4, 2), i32, pads)
        conv_in = tensor("x_padded", (n, h + 2 * ph, w + 2 * pw, c), f32, None)
        operator(
            tfl.BuiltinOperator.PAD,
            [source, paddings],
            [conv_in],
            tfl.BuiltinOptions.PadOptions,
            tfl.PadOptionsT(),
        )
    filt = tensor("w", (f, *conv.kernel_size, c), f32, weight.transpose(0, 2, 3, 1))
    bias_t = tensor("b", (f,), f32, bias)
    result = tensor("y", (n, oh, ow, f), f32, None)
    options = tfl.Conv2DOptionsT()
    options.padding = tfl.Padding.SAME if padding == "SAME" else tfl.Padding.VALID
    options.strideH, options.strideW = conv.stride
    options.dilationHFactor = options.dilationWFactor = 1
    options.fusedActivationFunction = tfl.ActivationFunctionType.NONE
    operator(
        tfl.BuiltinOperator.CONV_2D,
        [conv_in, filt, bias_t],
        [result],
        tfl.BuiltinOptions.Conv2DOptions,
        options,
    )

    graph = tfl.SubGraphT()
    graph.tensors, graph.operators = tensors, operators
    graph.inputs, graph.outputs, graph.name = [source], [result], "main"
    model = tfl.ModelT()
    model.version, model.description = 3, "pconv-mlir bench/peers.py"
    model.operatorCodes, model.subgraphs, model.buffers = codes, [graph], buffers
    builder = flatbuffers.Builder(1024 + weight.nbytes)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


LITERT_TORCH_VENV_ENV = "PCONV_LITERT_TORCH_VENV"
"""Environment variable naming a venv with `torch==2.13.0 litert-torch`, for whole modules."""

_LITERT_CONVERT = """
import sys
import litert_torch
import torch
program = torch.export.load(sys.argv[1])
example = torch.load(sys.argv[2])
litert_torch.convert(program.module(), (example,)).export(sys.argv[3])
"""


def _supported_conv(module: torch.nn.Module) -> str | None:
    """None when `conv2d_tflite` can write `module`, else why not."""
    if not isinstance(module, torch.nn.Conv2d):
        return f"not a single nn.Conv2d but a {type(module).__name__}"
    if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros":
        return "only groups=1, dilation=1 and zero padding are written to .tflite directly"
    if isinstance(module.padding, str):
        return f"padding={module.padding!r}: give the padding as numbers"
    return None


class LiteRtPeer(Peer):
    """LiteRT (TensorFlow Lite) with its default XNNPACK delegate. A single `nn.Conv2d` is
    written straight to a one-op NHWC `.tflite` (no converter needed). Any other module is
    converted by `litert-torch` in a venv of its own (`converter_venv`, or the
    `PCONV_LITERT_TORCH_VENV` variable: litert-torch pins xdsl 0.28, which conflicts with
    pconv-mlir's); its model keeps torch's NCHW input and output, with the layout transposes
    inside (and so inside the timed call). Without that venv such modules are unsupported."""

    name = "litert"
    modules = ("ai_edge_litert.interpreter", "flatbuffers")
    distributions = ("ai-edge-litert", "flatbuffers")

    def __init__(self, converter_venv: Path | str | None = None) -> None:
        self._converter_venv = converter_venv

    @property
    def converter_venv(self) -> Path | None:
        """The litert-torch venv: the argument, else `$PCONV_LITERT_TORCH_VENV`, else None."""
        chosen = self._converter_venv or os.environ.get(LITERT_TORCH_VENV_ENV)
        return Path(chosen) if chosen else None

    def convert(self, module: torch.nn.Module, x: torch.Tensor, workdir: Path) -> Path:
        """`module` at the shape of `x` as a `.tflite` file made by litert-torch in its venv
        (the module goes there as a `torch.export` program, so its class need not be
        importable there); made once per fingerprint."""
        venv = self.converter_venv
        if venv is None or not (venv / "bin" / "python").exists():
            raise Unsupported(
                f"a whole module needs litert-torch: set {LITERT_TORCH_VENV_ENV} to a venv made "
                "with `pip install torch==2.13.0 litert-torch` (its own venv: litert-torch pins "
                "xdsl 0.28, pconv-mlir needs 0.74)"
            )
        stem = workdir / f"model-{fingerprint(module, x)}"
        path = stem.with_suffix(".tflite")
        if path.exists():
            return path
        workdir.mkdir(parents=True, exist_ok=True)
        program, example = stem.with_suffix(".pt2"), stem.with_suffix(".example.pt")
        torch.export.save(torch.export.export(module.eval(), (x,)), str(program))
        torch.save(x.detach().clone(), str(example))
        partial = stem.with_suffix(".partial.tflite")
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _LITERT_CONVERT]
            + [str(program), str(example), str(partial)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not partial.exists():
            raise RuntimeError(f"litert-torch failed: {done.stderr.strip()[-500:]}")
        partial.replace(path)
        return path

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """`Interpreter(num_threads=threads)` on the model, its input set once; `invoke` is
        `Interpreter.invoke`. For the one-op conv the input is NHWC and the output is turned
        back to NCHW when fetched (not timed)."""
        from ai_edge_litert.interpreter import Interpreter

        nhwc = _supported_conv(module) is None
        workdir.mkdir(parents=True, exist_ok=True)
        if nhwc:
            assert isinstance(module, torch.nn.Conv2d)
            content = conv2d_tflite(module, tuple(x.shape))
            (workdir / f"conv-{fingerprint(module, x)}.tflite").write_bytes(content)  # to read
        else:
            content = self.convert(module, x, workdir).read_bytes()
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        result = interpreter.get_output_details()[0]["index"]
        xin = x.detach().numpy()
        interpreter.set_tensor(
            source, np.ascontiguousarray(xin.transpose(0, 2, 3, 1) if nhwc else xin, np.float32)
        )

        def invoke() -> None:
            interpreter.invoke()

        def fetch() -> np.ndarray:
            y = interpreter.get_tensor(result)
            return np.ascontiguousarray(y.transpose(0, 3, 1, 2) if nhwc else y)

        return Runner(invoke, fetch)


class MnnPeer(Peer):
    """MNN, in a venv of its own (`venv`, or the `PCONV_MNN_VENV` variable), driven through
    `bench/mnn_runner.py` over pipes; the time is `runSession` as measured in that process.
    Its fast 3x3 path (Winograd) is not exact, even at high precision: expect a relative error
    of 1e-4 to 1e-3 on real layers, which `check` reports as it is."""

    name = "mnn"
    distributions = ("mnn",)

    def __init__(self, venv: Path | str | None = None) -> None:
        self._venv = venv
        self._reason: str | None | bool = False  # False: not probed yet

    @property
    def venv(self) -> Path | None:
        """The MNN venv: the constructor's argument, else `$PCONV_MNN_VENV`, else None."""
        chosen = self._venv or os.environ.get(MNN_VENV_ENV)
        return Path(chosen) if chosen else None

    def available(self) -> str | None:
        """None when the venv's Python imports MNN and its converter, else why not."""
        if self._reason is not False:
            return self._reason
        venv = self.venv
        if venv is None:
            self._reason = (
                f"not configured: set {MNN_VENV_ENV} to a venv made with "
                "`python3 -m venv DIR && DIR/bin/pip install mnn numpy` "
                "(its own venv: MNN's `mnnconvert` script runs `pip install "
                "aliyun-log-python-sdk`, protobuf<6 with it, with the first pip on PATH; "
                "peers.py calls the converter without that script)"
            )
        elif not (venv / "bin" / "python").exists():
            self._reason = f"not installed: {venv}/bin/python does not exist"
        else:
            probe = subprocess.run(
                [str(venv / "bin" / "python"), "-c", "import MNN, _tools, numpy"],
                capture_output=True,
                text=True,
            )
            self._reason = (
                None
                if probe.returncode == 0
                else f"failed to import MNN in {venv}: {probe.stderr.strip().splitlines()[-1:]}"
            )
        return self._reason

    def version(self) -> str:
        """MNN's version as its own venv reports it."""
        venv = self.venv
        if venv is None or self.available() is not None:
            return "mnn (not installed)"
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import MNN; print(MNN.version())"],
            capture_output=True,
            text=True,
        )
        lines = probe.stdout.strip().splitlines()
        return f"mnn {lines[-1] if lines else '?'}"

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Converts the ONNX export with MNN's converter, starts `mnn_runner.py` (session with
        `numThread=threads`, precision high) and waits until it has loaded the input."""
        reason = self.available()
        if reason is not None:
            raise Unsupported(reason)
        venv = self.venv
        assert venv is not None
        onnx_path = export_onnx(module, x, workdir)
        mnn_path = onnx_path.with_suffix(".mnn")
        python = str(venv / "bin" / "python")
        if not mnn_path.exists():
            partial = onnx_path.with_suffix(".partial.mnn")
            partial.unlink(missing_ok=True)
            convert = subprocess.run(
                [python, str(MNN_RUNNER), "convert", str(onnx_path), str(partial)],
                capture_output=True,
                text=True,
            )
            if convert.returncode != 0 or not partial.exists():
                output = (convert.stdout + convert.stderr).strip()
                raise RuntimeError(f"MNN's converter failed: {output[-500:]}")
            partial.replace(mnn_path)
        input_path = mnn_path.with_suffix(".mnn-input.npy")
        np.save(input_path, np.ascontiguousarray(x.detach().numpy(), dtype=np.float32))
        child = subprocess.Popen(
            [
                python,
                str(MNN_RUNNER),
                "serve",
                str(mnn_path),
                str(input_path),
                "--threads",
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        out_path = mnn_path.with_suffix(".mnn-output.npy")

        def answer() -> str:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("@mnn "):
                    text = line[len("@mnn ") :].strip()
                    if text.startswith("error"):
                        raise RuntimeError(f"MNN: {text}")
                    return text
            raise RuntimeError(f"MNN runner exited with code {child.wait()}")

        def send(command: str) -> float:
            assert child.stdin is not None
            child.stdin.write(command + "\n")
            child.stdin.flush()
            return float(answer().split()[1])

        def close() -> None:
            if child.poll() is None:
                assert child.stdin is not None
                child.stdin.write("quit\n")
                child.stdin.close()
                child.wait(timeout=10)

        def fetch() -> np.ndarray:
            send(f"out {out_path}")
            return np.load(out_path)

        try:
            answer()  # "ready"
        except RuntimeError:
            close()
            raise
        return Runner(lambda: send("run"), fetch, self_timed=True, close=close)


class TvmPeer(Peer):
    """Apache TVM: Relax `from_onnx`, `tvm.compile` for the host CPU with its default
    schedule. Untuned, the generated loops are neither vectorized nor parallel (about 1.5 GF/s
    on a conv, on one core whatever `threads` says); a MetaSchedule-tuned variant needs a
    tuning budget of minutes to hours per layer and is not implemented (`trials > 0` says so)."""

    modules = ("tvm", "tvm.relax.frontend.onnx", "onnx")
    distributions = ("apache-tvm", "onnx")

    def __init__(self, trials: int = 0) -> None:
        self.trials = trials
        self.name = "tvm" if trials == 0 else f"tvm-tuned-{trials}"

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Compiles for `llvm -mcpu=<host> num-cores=threads`, sizes TVM's thread pool to
        `threads`; the input lives on the device once, `invoke` calls the VM's `main`."""
        if self.trials:
            raise Unsupported(
                "MetaSchedule tuning is not implemented here (needs psutil, cloudpickle, "
                "xgboost, a builder timeout >= 240 s and a long budget); use trials=0"
            )
        import onnx
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        graph = onnx.load(str(export_onnx(module, x, workdir)))
        mod = from_onnx(graph, shape_dict={"x": list(x.shape)})
        cpu = tvm.target.codegen.llvm_get_system_cpu()
        target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": threads})
        executable = tvm.compile(mod, target=target)
        tvm.get_global_func("runtime.config_threadpool")(1, threads)  # kBig cores, n threads
        device = tvm.cpu()
        vm = relax.VirtualMachine(executable, device)
        main = vm["main"]
        xin = tvm.runtime.tensor(np.ascontiguousarray(x.detach().numpy()), device)
        last: list[object] = []

        def invoke() -> None:
            last[:] = [main(xin)]

        def fetch() -> np.ndarray:
            y = last[0]
            return (y[0] if isinstance(y, tvm.ir.Array | list | tuple) else y).numpy()

        return Runner(invoke, fetch)


_iree_task_threads: int | None = None


class IreePeer(Peer):
    """IREE: `iree-import-onnx`, then `iree-compile` for llvm-cpu with `target-cpu=host`, run
    with the single-threaded `local-sync` driver, or `local-task` for more than one thread."""

    name = "iree"
    modules = ("iree.compiler", "iree.runtime", "onnx")
    distributions = ("iree-base-compiler", "iree-base-runtime", "onnx")

    def prepare(
        self, module: torch.nn.Module, x: torch.Tensor, workdir: Path, threads: int
    ) -> Runner:
        """Imports and compiles the ONNX export to a `.vmfb`, loads it, puts the input on the
        device once; `invoke` calls the module's function and keeps the device result."""
        global _iree_task_threads
        import iree.runtime as rt
        from iree.compiler.tools import compile_file

        onnx_path = export_onnx(module, x, workdir)
        vmfb_path = onnx_path.with_suffix(".vmfb")
        if not vmfb_path.exists():  # the same module at the same shape is compiled once
            mlir_path = onnx_path.with_suffix(".mlir")
            imported = subprocess.run(
                [sys.executable, "-m", "iree.compiler.tools.import_onnx", str(onnx_path)]
                + ["-o", str(mlir_path)],
                capture_output=True,
                text=True,
            )
            if imported.returncode != 0:
                raise RuntimeError(f"iree-import-onnx failed: {imported.stderr.strip()[-500:]}")
            partial = onnx_path.with_suffix(".partial.vmfb")
            compile_file(
                str(mlir_path),
                output_file=str(partial),
                extra_args=[
                    "--iree-hal-target-device=local",
                    "--iree-hal-local-target-device-backends=llvm-cpu",
                    "--iree-llvmcpu-target-cpu=host",
                ],
            )
            partial.replace(vmfb_path)  # never overwrite a file a live module has mapped
        if threads == 1:
            config = rt.Config("local-sync")
        else:
            if _iree_task_threads not in (None, threads):
                raise Unsupported(
                    f"IREE's local-task driver was created with {_iree_task_threads} threads "
                    "in this process; run another process for another thread count"
                )
            rt.flags.parse_flags(f"--task_topology_group_count={threads}")
            _iree_task_threads = threads
            config = rt.Config("local-task")
        context = rt.SystemContext(config=config)
        vm_module = rt.VmModule.mmap(config.vm_instance, str(vmfb_path))
        context.add_vm_module(vm_module)
        functions = [n for n in vm_module.function_names if not n.startswith("__") and "$" not in n]
        if not functions:
            raise RuntimeError(f"no public function in {vmfb_path}")
        function = context.modules[vm_module.name][functions[0]]
        xin = rt.asdevicearray(config.device, np.ascontiguousarray(x.detach().numpy()))
        last: list[rt.DeviceArray] = []

        def invoke() -> None:
            last[:] = [function(xin)]

        return Runner(invoke, lambda: np.asarray(last[0].to_host()))


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        TorchPeer(channels_last=False),
        TorchPeer(channels_last=True),
        OnnxRuntimePeer(),
        OpenVinoPeer(),
        LiteRtPeer(),
        MnnPeer(),
        TvmPeer(),
        IreePeer(),
    )
}
"""Every peer, by name, in the order the table prints them."""


def reference(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """`module(x)` in float32 NCHW: what every peer's output is checked against."""
    with torch.inference_mode():
        return module.eval()(x).contiguous().numpy().copy()


def check(runner: Callable[[], np.ndarray], expected: np.ndarray, runs: int = 2) -> float:
    """Runs `runs` times and returns the largest relative error ||got - expected|| / ||expected||
    (Frobenius, in float64). More than one run catches a runtime that is right only the first
    time (MNN reuses its input's memory). A shape mismatch raises ValueError."""
    reference64 = expected.astype(np.float64)
    scale = np.linalg.norm(reference64)
    worst = 0.0
    for _ in range(runs):
        got = np.asarray(runner())
        if got.shape != expected.shape:
            raise ValueError(f"output shape {got.shape}, torch gives {expected.shape}")
        diff = float(np.linalg.norm(got.astype(np.float64) - reference64))
        worst = max(worst, diff / scale if scale else diff)
    return worst


def _time_once(run: Callable[[], object]) -> float:
    """Seconds of one call: a `Runner`'s `invoke` only (as measured in its own process when it
    is `self_timed`), any other callable whole."""
    if isinstance(run, Runner):
        if run.self_timed:
            return float(run.invoke())
        start = time.perf_counter()
        run.invoke()
        return time.perf_counter() - start
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def time_interleaved(
    runners: Mapping[str, Callable[[], object]],
    warmup: int = 2,
    calls: int = 9,
    rounds: int = 3,
) -> dict[str, float]:
    """Seconds per call of each runner: `warmup` untimed calls each, then `rounds` rounds of
    `calls` calls, the runners interleaved call by call; the median of the round medians."""
    for _ in range(warmup):
        for run in runners.values():
            _time_once(run)
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(calls):
            for name, run in runners.items():
                times[name].append(_time_once(run))
        for name in runners:
            medians[name].append(statistics.median(times[name]))
    return {name: statistics.median(values) for name, values in medians.items()}


_PEAK_SCRIPT = """
import sys, time
import numpy as np
n, calls = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
c = a @ b
times = []
for _ in range(calls):
    start = time.perf_counter()
    np.matmul(a, b, out=c)
    times.append(time.perf_counter() - start)
print(2 * n**3 / min(times) / 1e9)
"""


def machine_peak_gflops(n: int = 2048, calls: int = 5) -> float:
    """Single-thread float32 GFLOP/s of numpy's sgemm (OpenBLAS) at n x n x n, best of `calls`,
    in a subprocess with `OPENBLAS_NUM_THREADS=1` and `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE`
    unset (they may be set to tune something else; they must not cap the reference)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(n), str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def conv_layer(
    c: int, f: int, hw: int, stride: int = 1, batch: int = 1, seed: int = 0
) -> tuple[torch.nn.Conv2d, torch.Tensor]:
    """A dense 3x3 conv (padding 1, with bias) from C to F channels and its NCHW input of
    `batch` x C x hw x hw, both drawn from a fixed seed so every peer sees the same numbers."""
    generator = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(c, f, 3, stride=stride, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.1)
        conv.bias.copy_(torch.randn(f, generator=generator) * 0.1)
    x = torch.randn(batch, c, hw, hw, generator=generator)
    return conv.eval(), x


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Dense FLOPs of one forward pass on `x`: twice the multiply-adds of every `Conv2d` and
    `Linear` (what the GF/s column divides by; pooling and activations are not counted)."""
    total = 0

    def conv(layer: torch.nn.Conv2d, _: object, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = layer.kernel_size
        total += 2 * output.numel() * (layer.in_channels // layer.groups) * kh * kw

    def linear(layer: torch.nn.Linear, _: object, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * output.numel() * layer.in_features

    handles = [
        layer.register_forward_hook(conv if isinstance(layer, torch.nn.Conv2d) else linear)
        for layer in module.modules()
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear)
    ]
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def network(
    name: str, input_size: int, batch: int = 1, seed: int = 0
) -> tuple[torch.nn.Module, torch.Tensor]:
    """`pconv_mlir.models.MODELS[name]` at `input_size` with random weights (seeded), in eval
    mode, and a seeded NCHW input of `batch` x 3 x input_size x input_size."""
    from pconv_mlir.models import MODELS

    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    torch.manual_seed(seed)
    module = MODELS[name](input_size=input_size).eval()
    x = torch.randn(batch, 3, input_size, input_size)
    return module, x


@dataclass
class Outcome:
    """What happened to one peer: its version, and either an error (relative) or why not."""

    name: str
    version: str
    error: float | None = None
    reason: str | None = None
    runner: Runner | None = None

    @property
    def status(self) -> str:
        """`ok`, `inexact` (relative error above EXACT), or the reason it did not run."""
        if self.reason is not None:
            return self.reason
        assert self.error is not None
        return "ok" if self.error <= EXACT else "inexact"


def prepare_all(
    module: torch.nn.Module,
    x: torch.Tensor,
    workdir: Path,
    threads: int,
    names: list[str] | None = None,
) -> list[Outcome]:
    """Prepares and checks every peer (or those named) against torch, all in `workdir` (so the
    ONNX export is made once); a peer that is missing, unsupported or fails is kept with its
    reason, never dropped."""
    expected = reference(module, x)
    outcomes = []
    for name in names or list(PEERS):
        peer = PEERS[name]
        outcome = Outcome(name, peer.version())
        outcome.reason = peer.available()
        if outcome.reason is None:
            try:
                runner = peer.prepare(module, x, workdir, threads)
                try:
                    outcome.error = check(runner, expected)
                except BaseException:
                    runner.close()
                    raise
                outcome.runner = runner
            except Unsupported as e:
                outcome.reason = f"not supported: {e}"
            except Exception as e:  # a peer failing is a result to report
                outcome.reason = f"failed: {type(e).__name__}: {str(e).strip()[:300]}"
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Runs one conv layer (or `--model`) on every peer; prints error, time, GFLOP/s each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=int, default=64, help="input channels")
    parser.add_argument("--f", type=int, default=64, help="output channels")
    parser.add_argument("--hw", type=int, help="input height and width (56, or 224 for a model)")
    parser.add_argument("--model", help="a whole network of pconv_mlir.models (vgg16, resnet50...)")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", default="1", help="a number, or `all`")
    parser.add_argument("--peers", nargs="*", choices=list(PEERS), help="default: all")
    parser.add_argument("--mnn-venv", help=f"MNN's venv (default: ${MNN_VENV_ENV})")
    parser.add_argument(
        "--litert-torch-venv", help=f"litert-torch's venv (default: ${LITERT_TORCH_VENV_ENV})"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peak", action="store_true", help="also measure the sgemm peak")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument(
        "--cpu", type=int, help="pin this process (and MNN's) to one core, as PEERS.md advises"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    threads = all_threads() if args.threads == "all" else int(args.threads)
    if args.mnn_venv:
        PEERS["mnn"] = MnnPeer(args.mnn_venv)
    if args.litert_torch_venv:
        PEERS["litert"] = LiteRtPeer(args.litert_torch_venv)
    if args.model:
        hw = args.hw or 224
        module, x = network(args.model, hw, args.batch)
        title = f"{args.model} at {hw}x{hw}"
    else:
        hw = args.hw or 56
        module, x = conv_layer(args.c, args.f, hw, args.stride, args.batch)
        title = f"conv 3x3 C={args.c} F={args.f} H=W={hw} stride={args.stride}"
    flops = count_flops(module, x)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        workdir = args.workdir or Path(tmp)
        outcomes = prepare_all(module, x, workdir, threads, args.peers)
        ready = {o.name: o.runner for o in outcomes if o.runner is not None}
        try:
            seconds = time_interleaved(ready, args.warmup, args.calls, args.rounds)
        finally:
            for runner in ready.values():
                runner.close()
    peak = machine_peak_gflops() if args.peak else None
    print(
        f"{title} batch={args.batch}, {threads} thread(s), {flops / 1e6:.1f} MFLOP"
        + (f", sgemm peak {peak:.1f} GF/s" if peak else "")
    )
    torch_s = seconds.get("torch")
    print(f"{'peer':<12} {'ms':>9} {'GF/s':>7} {'torch/x':>8} {'rel err':>9}  status, version")
    for o in outcomes:
        if o.name in seconds:
            s = seconds[o.name]
            ratio = f"{torch_s / s:8.2f}" if torch_s else f"{'':8}"
            print(
                f"{o.name:<12} {s * 1e3:9.3f} {flops / s / 1e9:7.2f} {ratio} {o.error:9.1e}  "
                f"{o.status}, {o.version}"
            )
        else:
            print(f"{o.name:<12} {'-':>9} {'-':>7} {'-':>8} {'-':>9}  {o.status}, {o.version}")
    return 0


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:  # see QUIET_POOLS
        os.environ.update(QUIET_POOLS)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    sys.exit(main())

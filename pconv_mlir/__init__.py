"""pconv-mlir: a pattern-sparse convolution compiler (PatDNN / PCONV) built on MLIR with xDSL.

    >>> import pconv_mlir
    >>> module = pconv_mlir.import_torch(model, example_input)       # linalg on tensors
    >>> artifact = pconv_mlir.compile(model, example_input, target="host")
    >>> y = artifact(x)

The public entry points are imported on first use, so `pconv-opt` starts without torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compile", "import_torch", "Pipeline", "PconvError", "CompileOptions", "get_backend"]

_LAZY = {
    "compile": ("pconv_mlir.compiler", "compile"),
    "CompileOptions": ("pconv_mlir.compiler", "CompileOptions"),
    "import_torch": ("pconv_mlir.frontend", "import_torch"),
    "Pipeline": ("pconv_mlir.pipeline", "Pipeline"),
    "PconvError": ("pconv_mlir.errors", "PconvError"),
    "get_backend": ("pconv_mlir.backends", "get_backend"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'pconv_mlir' has no attribute '{name}'")

"""The back ends: one object per target, found by name in one registry.

    >>> backend = get_backend("aarch64")
    >>> backend.machine.triple                     # doctest: +SKIP
    'aarch64-unknown-linux-gnu'

A backend says what the pconv ops lower to (`lowering`), how the lowered module becomes an
artifact and runs (`emit`, `build`, `save`), how one layer is costed for the tuner (`cost`), and
which `-t` output format prints its code (`target`). `compile`, the tuner, the benchmarks and
`pconv-opt -t` look a backend up here, once.

Adding a back end is one new file in this package (a `Backend` subclass, see `base.py`) and one
entry in `BACKENDS`. An output format that no backend owns (`-t opencl-launch`: the launch
description of the GPU back ends) is one entry in `TARGETS`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING, Any

from pconv_mlir.errors import OptionError

if TYPE_CHECKING:
    from xdsl.utils.target import Target

    from pconv_mlir.backends.base import Backend

BACKENDS: dict[str, tuple[str, str, str]] = {
    "host": ("pconv_mlir.backends.llvm_cpu", "HostBackend", "llvm-ir"),
    "aarch64": ("pconv_mlir.backends.llvm_cpu", "Aarch64Backend", "llvm-ir"),
    "x86_64": ("pconv_mlir.backends.llvm_cpu", "X86Backend", "llvm-ir"),
    "opencl": ("pconv_mlir.backends.opencl", "OpenClBackend", "opencl"),
    "spirv": ("pconv_mlir.backends.opencl", "SpirvBackend", "spirv"),
}
"""Backend name -> (module, class, the `-t` target that prints its code)."""

TARGETS: dict[str, tuple[str, str]] = {
    "opencl-launch": ("pconv_mlir.backends.opencl", "OpenClLaunchTarget"),
}
"""`-t` output formats that no backend object owns: name -> (module, class)."""


def backend_class(name: str) -> type[Backend]:
    """The class of backend `name`; `OptionError` naming the choices for an unknown one."""
    if name not in BACKENDS:
        raise OptionError(f"unknown target '{name}' (backends: {', '.join(BACKENDS)})")
    module, cls, _ = BACKENDS[name]
    return getattr(import_module(module), cls)


def get_backend(name: str, **options: Any) -> Backend:
    """Backend `name` (`host`, `aarch64`, `x86_64`, `opencl`, `spirv`) built with `options`
    (e.g. `cpu=`)."""
    return backend_class(name)(**options)


def get_all_targets() -> dict[str, Callable[[], type[Target]]]:
    """The `-t` output formats of every backend and of `TARGETS`, by name, each imported when
    asked for."""
    targets: dict[str, Callable[[], type[Target]]] = {}
    for name, (_, _, target) in BACKENDS.items():
        targets.setdefault(target, partial(_target_of, name))
    for name, (module, cls) in TARGETS.items():
        targets.setdefault(name, partial(_import_target, module, cls))
    return targets


def _target_of(backend: str) -> type[Target]:
    return backend_class(backend).target


def _import_target(module: str, cls: str) -> type[Target]:
    return getattr(import_module(module), cls)

"""The machines code is generated for: what LLVM, clang and the schedule need to know of each.

    >>> machine("aarch64").triple
    'aarch64-unknown-linux-gnu'
    >>> machine("host").name                       # this computer        # doctest: +SKIP
    'x86_64'

`machine("host")` is this computer, detected (architecture, and on x86-64 whether the CPU has
AVX-512), tuned for with `-march=native`; `aarch64` is the Snapdragon 855's big core
(Cortex-A76, 128-bit NEON); `x86_64` is a generic AVX2 x86-64 (`-march=x86-64-v3`).

It imports only `pconv_mlir.errors`: every layer may ask which machine it works for.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from pconv_mlir.errors import OptionError

__all__ = ["MACHINES", "Machine", "host_arch", "host_machine", "machine"]


@dataclass(frozen=True)
class Machine:
    """One target machine."""

    name: str
    """The architecture: `aarch64` or `x86_64`."""
    triple: str
    """The LLVM target triple, as clang-22 spells it."""
    data_layout: str
    """The LLVM data layout string that clang-22 uses for `triple`."""
    cpu: str
    """What clang tunes for: `-mcpu` on aarch64, `-march` on x86-64 (`native` for the host)."""
    vector_bits: int
    """The widest vector register the CPU has: 128 (NEON), 256 (AVX2), 512 (AVX-512)."""
    vector_registers: int
    """Vector registers in the register file: 16 (AVX2), 32 (AVX-512, NEON)."""
    default_vector_width: int
    """The fp32 lanes the code generator uses unless told otherwise."""
    features: tuple[str, ...] = ()
    """CPU features that matter to the generator (`avx2`, `avx512f`, ...), when known."""

    @property
    def is_host(self) -> bool:
        """Whether code for this machine runs natively on this computer."""
        return self.name == host_arch()

    def clang_flags(self, cpu: str | None = None) -> list[str]:
        """clang flags that select and tune for the machine: triple plus `-mcpu` or `-march`."""
        chosen = cpu or self.cpu
        tune = f"-mcpu={chosen}" if self.name == "aarch64" else f"-march={chosen}"
        return [f"--target={self.triple}", tune]


MACHINES: dict[str, Machine] = {
    "aarch64": Machine(
        name="aarch64",
        triple="aarch64-unknown-linux-gnu",
        data_layout=(
            "e-m:e-p270:32:32-p271:32:32-p272:64:64-i8:8:32-i16:16:32-i64:64-i128:128-n32:64-S128-Fn32"
        ),
        cpu="cortex-a76",
        vector_bits=128,
        vector_registers=32,
        default_vector_width=4,
        features=("neon",),
    ),
    "x86_64": Machine(
        name="x86_64",
        triple="x86_64-pc-linux-gnu",
        data_layout="e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128",
        cpu="x86-64-v3",
        vector_bits=256,
        vector_registers=16,
        default_vector_width=8,
        features=("avx2", "fma"),
    ),
}
"""The machines code can be generated for, with LLVM 22's triples and data layouts."""


def host_arch() -> str:
    """This computer's architecture, as `MACHINES` names it."""
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


@cache
def host_machine() -> Machine:
    """This computer as a `Machine`, tuned for with `native`; raises ValueError if unsupported.

    On x86-64 the vector registers are read from the CPU flags: with `avx512f` there are 32 of
    512 bits and the default vector width is 16 lanes (one zmm register; on AMD Zen 5 the four
    VGG-16 layers measured in issue 10 ran 15-48% faster at 16 lanes than at 8); without it, 8
    lanes (AVX2). A schedule can ask for either; `compile(..., tune=True)` measures both.
    """
    arch = host_arch()
    if arch not in MACHINES:
        raise OptionError(f"this computer's architecture '{arch}' is not a supported machine")
    base = MACHINES[arch]
    if arch != "x86_64":
        return replace(base, cpu="native")
    flags = _cpu_flags()
    wide = "avx512f" in flags
    features = tuple(f for f in ("avx2", "fma", "avx512f", "avx512vl") if f in flags)
    return replace(
        base,
        cpu="native",
        vector_bits=512 if wide else 256,
        vector_registers=32 if wide else 16,
        default_vector_width=16 if wide else 8,
        features=features,
    )


def machine(name: str | Machine) -> Machine:
    """The machine called `name`: `host`, or one of `MACHINES` (a `Machine` is returned as it
    is); `OptionError` (a ValueError) otherwise."""
    if isinstance(name, Machine):
        return name
    if name == "host":
        return host_machine()
    if name not in MACHINES:
        raise OptionError(
            f"unknown machine '{name}' (choose from host, {', '.join(sorted(MACHINES))})"
        )
    return MACHINES[name]

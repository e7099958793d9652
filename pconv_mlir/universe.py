"""The registry of pconv-mlir: dialects, passes and targets, each imported only when asked for.

`PCONV_UNIVERSE` is published as an `xdsl.universe` entry point, so `xdsl-opt` sees the
`pconv` dialect and passes too; `pconv-opt` registers the same entries.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe
from xdsl.utils.target import Target


def get_all_dialects() -> dict[str, Callable[[], Dialect]]:
    """The dialects pconv-mlir defines, by name."""

    def get_pconv() -> Dialect:
        from pconv_mlir.dialects.pconv import PCONV

        return PCONV

    return {"pconv": get_pconv}


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """The passes pconv-mlir defines, by name."""
    from pconv_mlir.passes import get_all_passes as passes

    return passes()


def get_all_targets() -> dict[str, Callable[[], type[Target]]]:
    """The output targets pconv-mlir defines, by name: one per back-end output format."""
    from pconv_mlir.backends import get_all_targets as targets

    return targets()


PCONV_UNIVERSE = Universe(
    all_dialects=get_all_dialects(),
    all_passes=get_all_passes(),
    all_targets=get_all_targets(),
)

"""`Backend`: what one back end must say about itself.

A backend is the one place that interprets a target name. It tells

- what pconv ops lower to: `lowering()`, the passes from FKW-level IR to the IR `emit` takes;
- what schedule parameters it prefers (`schedule_defaults()`, e.g. the machine's vector width);
- how the result is built: `emit()` gives the artifact's text (LLVM IR, OpenCL C, ...),
  `build()` compiles and loads it for calling, `save()` writes the files an application uses;
- how a layer is costed for the tuner: `cost()` in `cost_unit`, and which schedule parameters
  that cost can rank (`tunable`);
- which `-t` target prints its code (`target`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.target import Target


class Backend(ABC):
    """One back end (see the module docstring). Instances are cheap; options go to __init__."""

    name: ClassVar[str]
    """The name `compile(target=...)`, `pconv-tune --backend` and `-t ...{backend=}` take."""
    summary: ClassVar[str]
    """One line for listings."""
    target: ClassVar[type[Target]]
    """The `-t` output format that prints this backend's code."""
    cost_unit: ClassVar[str]
    """What `cost` returns: `s` (measured seconds) or `cycles` (an estimate)."""
    tunable: ClassVar[tuple[str, ...]]
    """The schedule parameters `cost` can tell apart, in the order the tuner tries them."""

    @abstractmethod
    def describe(self) -> str:
        """The machine or device, for reports and tuning databases (say, the CPU model)."""

    @abstractmethod
    def schedule_defaults(self) -> dict[str, int]:
        """Schedule parameters this backend prefers over the schedule's own defaults."""

    @abstractmethod
    def lowering(self, *, lre: bool = True) -> list[ModulePass]:
        """The passes from FKW-level IR (pconv.fkw_conv2d) to what `emit` takes."""

    @abstractmethod
    def emit(self, module: ModuleOp, ctx: Context, *, opt_level: int = 3) -> str:
        """The lowered module as the artifact's text (what `-t` prints)."""

    @abstractmethod
    def build(
        self,
        text: str,
        signatures: dict[str, Any],
        workdir: Path,
        *,
        opt_level: int = 3,
        name: str | None = None,
        threads: int | None = None,
    ) -> Any:
        """Compile `text` (from `emit`) and load it: a `pconv_mlir.runtime.runners.Runner`.
        With `name`, the compiled model's function: the build also has its C entry points
        (`<name>_set_threads`, ...); its parallel loops run on `threads` threads."""

    @abstractmethod
    def save(
        self, text: str, signature: Any, directory: Path, *, name: str, opt_level: int = 3
    ) -> Sequence[Path]:
        """Write what an application needs (library, header, source) to `directory`, for the
        model called `name` (its generated function's name)."""

    @abstractmethod
    def cost(self, module: ModuleOp, ctx: Context, function: str, *, repeats: int = 3) -> float:
        """The cost of calling `function` of `module` (one layer, lowered by `lowering`)."""

"""Conversions out of the pconv dialect and output targets (`-t`)."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.utils.target import Target


def get_all_targets() -> dict[str, Callable[[], type[Target]]]:
    """Target name -> factory returning the target class."""
    return {}

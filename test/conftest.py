"""Shared pytest helpers for pconv-mlir."""

from __future__ import annotations

import os

import pytest

from pconv_mlir import toolchain


def require_tool(name: str) -> None:
    """Skip the calling test when tool `name` is missing; under `make test`
    (PCONV_REQUIRE_TOOLS=1) a missing tool fails the test instead."""
    if toolchain.tool_available(name):
        return
    message = f"'{name}' is not installed (run `make setup`)"
    if os.environ.get("PCONV_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def need_tool():
    """`need_tool("qemu-aarch64")` inside a test: see `require_tool`."""
    return require_tool

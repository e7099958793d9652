"""Shared pytest helpers for pconv-mlir."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from pconv_mlir import toolchain


def missing(message: str) -> NoReturn:
    """Skip the calling test: something it needs (`message` says what and how to install it)
    is not on this machine. Under `make test` (PCONV_REQUIRE_TOOLS=1, so in CI, where `make
    setup` installs everything) the test fails instead, so nothing is skipped there."""
    if os.environ.get("PCONV_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> None:
    """Skip the calling test when tool `name` is missing (see `missing`)."""
    if not toolchain.tool_available(name):
        missing(f"'{name}' is not installed (run `make setup`)")


@pytest.fixture(scope="session")
def need():
    """`need("what is missing, and how to install it")` inside a test or fixture: see
    `missing`."""
    return missing


@pytest.fixture
def need_tool():
    """`need_tool("qemu-aarch64")` inside a test: see `require_tool`."""
    return require_tool

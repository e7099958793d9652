"""lit configuration for pconv-mlir's IR tests (`lit test/`)."""

import os
import shutil
import sys

import lit.formats

from pconv_mlir import toolchain

config.name = "pconv-mlir"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
config.excludes = ["inputs", "Output", "lit.cfg.py", "lit.local.cfg"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.test_source_root, "Output")

# Run the tools of the environment lit itself runs in (the repository's .venv).
bin_dir = os.path.dirname(sys.executable)
config.environment["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
for name in ("HOME", "TMPDIR", "XDSL_MLIR_OPT"):
    if name in os.environ:
        config.environment[name] = os.environ[name]


def tool(name: str) -> str:
    path = shutil.which(name, path=config.environment["PATH"])
    if path is None:
        raise RuntimeError(f"lit: '{name}' not found next to {sys.executable}")
    return path


config.substitutions.append(("pconv-opt", tool("pconv-opt")))
config.substitutions.append(("pconv-tune", tool("pconv-tune")))
config.substitutions.append(("filecheck", tool("filecheck")))
config.substitutions.append(("%python", sys.executable))

# External LLVM tools: a feature each, and a substitution with Debian's versioned name.
# `make test` sets PCONV_REQUIRE_TOOLS=1: there a missing tool is an error, not a skipped test.
require = os.environ.get("PCONV_REQUIRE_TOOLS") == "1"
for name in (
    "mlir-opt",
    "mlir-translate",
    "clang",
    "llvm-mca",
    "qemu-aarch64",
    "spirv-val",
    "llvm-spirv",
    "aarch64-linux-gnu-gcc",
):
    if toolchain.tool_available(name):
        config.available_features.add(name)
        config.substitutions.append((f"%{name}", toolchain.find_tool(name)))
    elif require:
        lit_config.fatal(f"'{name}' is missing and PCONV_REQUIRE_TOOLS=1; run `make setup`")

# pconv-mlir: set-up, tests and the demo. Every target is safe to run again.
#
#   make setup   Debian toolchain (when missing) + .venv with the project, its test extras and
#                the peers of the benchmarks (the bench extra)
#   make test    setup, then pytest and the lit/FileCheck suite
#   make demo    setup, then the main job: a pruned VGG-16 compiled for the host and aarch64,
#                checked against torch, with its per-layer report and times against PyTorch

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

APT_PACKAGES := clang-22 llvm-22 lld-22 mlir-22-tools qemu-user gcc-aarch64-linux-gnu \
	libc6-dev-arm64-cross spirv-tools llvm-spirv-15 pocl-opencl-icd ocl-icd-opencl-dev \
	libclang-rt-22-dev libcjson-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup toolchain venv test pytest lit lint demo clean

setup: toolchain venv

# Installs the Debian packages only when one of them is missing.
toolchain:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	else echo "toolchain: all Debian packages present"; fi

venv: $(STAMP)

# torch is installed first and exactly at 2.13.0 (a CPU wheel); anything else pulls CUDA.
$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $(STAMP)

test: setup pytest lit

# PCONV_REQUIRE_TOOLS: a test that needs a missing tool fails instead of being skipped.
pytest:
	PCONV_REQUIRE_TOOLS=1 $(PY) -m pytest test

lit:
	PCONV_REQUIRE_TOOLS=1 $(VENV)/bin/lit -sv test

lint: venv
	$(VENV)/bin/ruff check pconv_mlir dialects passes lowering models test

demo: setup
	$(PY) -m pconv_mlir.demo

clean:
	rm -rf test/Output .pytest_cache

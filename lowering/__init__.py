"""Conversions out of the pconv dialect: the loop generator (`convert-pconv-to-loops`), the
upstream LLVM lowering (`llvm.py`, through mlir-opt-22) and `pconv-lower-to-llvm`.

The `-t` output targets belong to the back ends (`pconv_mlir.backends`).
"""

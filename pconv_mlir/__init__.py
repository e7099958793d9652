"""pconv-mlir: a pattern-sparse convolution compiler built on MLIR with xDSL."""

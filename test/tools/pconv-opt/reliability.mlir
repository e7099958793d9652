// Inputs a fuzzing run broke pconv-opt with: each is now one located diagnostic line and exit
// code 1 (no traceback, no unlocated error, no hang). See test/python/test_reliability.py.

// An integer too large for its element type, in a dense literal and in kernel_patterns.
// Every run prints one line: nothing before it, no other error after it.
// ALL-NOT: Traceback

// RUN: not pconv-opt %S/inputs/int-out-of-range.mlir 2>&1 | filecheck %s --check-prefixes=ALL,INT
// INT: inputs/int-out-of-range.mlir:3:23: error: Integer value 300 is out of range for type i8
// RUN: sed -e 's/\[1, 300\]/[1, 3]/' %S/inputs/int-out-of-range.mlir > %t.ids.mlir
// RUN: not pconv-opt %t.ids.mlir 2>&1 | filecheck %s --check-prefixes=ALL,IDS
// IDS: ids.mlir:7:80: error: Integer value 100000 is out of range for type i8

// A stride no i64 holds.
// RUN: not pconv-opt %S/inputs/huge-stride.mlir 2>&1 | filecheck %s --check-prefixes=ALL,STRIDE
// STRIDE: inputs/huge-stride.mlir:3:3: error: integer out of range for its element type

// A linalg conv with three strides: xDSL's verifier fails with a ValueError, located at the op.
// RUN: not pconv-opt %S/inputs/conv-three-strides.mlir -p pconv-from-linalg 2>&1 | filecheck %s --check-prefixes=ALL,STRIDES
// STRIDES: inputs/conv-three-strides.mlir:13:5: error: 'linalg.conv_2d_nchw_fchw' op malformed IR: its verifier failed with ValueError: too many values to unpack (expected 2)

// A linalg named op without ins/outs: xDSL's parser fails with an IndexError, located at the op.
// RUN: not pconv-opt %S/inputs/named-op-without-operands.mlir 2>&1 | filecheck %s --check-prefixes=ALL,NAMED
// NAMED: inputs/named-op-without-operands.mlir:3:3: error: malformed IR: xDSL's parser failed with IndexError: list index out of range

// A splat of 2^32 elements, and an integer type wider than MLIR allows: refused before
// anything is allocated.
// RUN: not pconv-opt %S/inputs/huge-splat.mlir 2>&1 | filecheck %s --check-prefixes=ALL,SPLAT
// SPLAT: inputs/huge-splat.mlir:3:36: error: dense literal of type tensor<65536x65536xf32> has 4294967296 elements, more than the 67108864 pconv-mlir parses
// RUN: not pconv-opt %S/inputs/wide-integer.mlir 2>&1 | filecheck %s --check-prefixes=ALL,WIDE
// WIDE: inputs/wide-integer.mlir:3:27: error: integer bitwidth is limited to 16777215 bits

// The resources section: a bad dialect name, a file truncated inside a hex blob.
// RUN: not pconv-opt %S/inputs/bad-resource-dialect.mlir 2>&1 | filecheck %s --check-prefixes=ALL,DIALECT
// DIALECT: inputs/bad-resource-dialect.mlir:20:11: error: expected ':' in the resources section, found '!'
// RUN: not pconv-opt %S/inputs/unterminated-resource.mlir 2>&1 | filecheck %s --check-prefixes=ALL,BLOB
// BLOB: inputs/unterminated-resource.mlir:21:374: error: unterminated string in the resources section

// An unclosed string literal: xDSL's lexer alone would take 2^200 steps.
// RUN: not pconv-opt %S/inputs/unterminated-string.mlir 2>&1 | filecheck %s --check-prefixes=ALL,STRING
// STRING: inputs/unterminated-string.mlir:2:18: error: unterminated string literal

// An error in the second chunk of --split-input-file names its line in the file.
// RUN: not pconv-opt %s --split-input-file 2>&1 | filecheck %s --check-prefixes=ALL,SPLIT
// SPLIT: reliability.mlir:[[# @LINE + 7]]:23: error: attribute expected

func.func @ok() {
  func.return
}
// -----
func.func @bad() {
  %x = arith.constant : i32
  func.return
}

// ALL-NOT: error

// Plain xdsl-opt sees the pconv dialect and passes through the `xdsl.universe` entry point.
// With --verify-diagnostics xDSL prints a DiagnosticException instead of a traceback, and
// pconv's errors are DiagnosticExceptions: the output is our one line. xDSL's parser records
// no source locations, so the op is located only when the input carries `loc(...)`, as a file
// printed with debug info does; `pconv-opt` locates it either way.

// Every run prints one line: nothing before it, no other error after it.
// ALL-NOT: Traceback

// RUN: xdsl-opt --verify-diagnostics -p pconv-from-linalg %S/inputs/dense-conv-loc.mlir 2>&1 | filecheck %s --check-prefixes=ALL,LOC
// LOC: model.py:42:7: error: 'linalg.conv_2d_nchw_fchw' op 3x3 conv #0 (2x2x3x3): kernel (0, 0) has 6 nonzero taps [1, 2, 3, 4, 5, 7], a pattern keeps 4

// RUN: xdsl-opt --verify-diagnostics -p pconv-from-linalg %S/../../passes/inputs/dense_conv.mlir 2>&1 | filecheck %s --check-prefixes=ALL,PLAIN
// PLAIN: <unknown>: error: 'linalg.conv_2d_nchw_fchw' op 3x3 conv #0 (2x2x3x3): kernel (0, 0) has 6 nonzero taps [1, 2, 3, 4, 5, 7], a pattern keeps 4

// RUN: not pconv-opt -p pconv-from-linalg %S/../../passes/inputs/dense_conv.mlir 2>&1 | filecheck %s --check-prefixes=ALL,OURS
// OURS: passes/inputs/dense_conv.mlir:13:5: error: 'linalg.conv_2d_nchw_fchw' op 3x3 conv #0 (2x2x3x3)

// ALL-NOT: error

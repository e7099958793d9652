// Plain xdsl-opt sees the pconv dialect and passes through the `xdsl.universe` entry point.
// With --verify-diagnostics xDSL prints a DiagnosticException instead of a traceback, and
// pconv's errors are DiagnosticExceptions: the output is our one line. xDSL's parser records
// no source locations, so the op is located only when the input carries `loc(...)`, as a file
// printed with debug info does; `pconv-opt` locates it either way. The error is a weight that
// is a dense_resource without data (a file printed without its resources section).

// Every run prints one line: nothing before it, no other error after it.
// ALL-NOT: Traceback

// RUN: xdsl-opt --verify-diagnostics -p pconv-from-linalg %S/inputs/missing-weights-loc.mlir 2>&1 | filecheck %s --check-prefixes=ALL,LOC
// LOC: model.py:42:7: error: 'linalg.conv_2d_nchw_fchw' op its weight cannot be read: dense_resource<torch_tensor_2_2_3_3_torch.float32> has no data in this context (a file printed without its dialect_resources section has no weights; print modules with pconv_mlir.ir.print_module or pconv-opt)

// RUN: xdsl-opt --verify-diagnostics -p pconv-from-linalg %S/inputs/missing-weights.mlir 2>&1 | filecheck %s --check-prefixes=ALL,PLAIN
// PLAIN: <unknown>: error: 'linalg.conv_2d_nchw_fchw' op its weight cannot be read: dense_resource<torch_tensor_2_2_3_3_torch.float32> has no data

// RUN: not pconv-opt -p pconv-from-linalg %S/inputs/missing-weights.mlir 2>&1 | filecheck %s --check-prefixes=ALL,OURS
// OURS: inputs/missing-weights.mlir:14:5: error: 'linalg.conv_2d_nchw_fchw' op its weight cannot be read

// ALL-NOT: error

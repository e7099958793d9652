// RUN: not pconv-opt %s -t llvm-ir 2>&1 | filecheck %s
// RUN: not pconv-opt %s -t 'llvm-ir{backend=sparc}' 2>&1 | filecheck %s --check-prefix=TARGET

// Ops outside the upstream dialects are named, not passed on to mlir-opt.
// CHECK: errors.mlir:8:3: error: 'test.op' cannot be lowered to LLVM here
// TARGET: unknown target 'sparc' (backends: host, aarch64, x86_64, opencl, spirv)
func.func @f() {
  "test.op"() : () -> ()
  return
}

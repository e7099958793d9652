// RUN: not pconv-opt %s -t llvm 2>&1 | filecheck %s
// RUN: not pconv-opt %s -t 'llvm{target=sparc}' 2>&1 | filecheck %s --check-prefix=TARGET

// Ops outside the upstream dialects are named, not passed on to mlir-opt.
// CHECK: errors.mlir:8:3: error: 'test.op' cannot be lowered to LLVM here
// TARGET: unknown target 'sparc' (choose from host, aarch64, x86_64)
func.func @f() {
  "test.op"() : () -> ()
  return
}

// pconv-opt hands a module to upstream mlir-opt-22 (found by pconv_mlir.toolchain) and back.
// RUN: pconv-opt %s -p 'mlir-opt{arguments=--canonicalize,--mlir-print-op-generic}' | filecheck %s

// CHECK-LABEL: func.func @fold
// CHECK-NEXT:    %{{.*}} = arith.constant 5 : i32
// CHECK-NEXT:    func.return
func.func @fold() -> i32 {
  %a = arith.constant 2 : i32
  %b = arith.constant 3 : i32
  %c = arith.addi %a, %b : i32
  func.return %c : i32
}

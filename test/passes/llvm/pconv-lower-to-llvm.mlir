// RUN: pconv-opt %s -p 'pconv-lower-to-llvm{machine=aarch64}' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-lower-to-llvm{machine=aarch64}' -t 'llvm-ir{backend=aarch64}' | filecheck %s --check-prefix=IR

// An FKW conv through xDSL's loop generator and LRE, then upstream mlir-opt-22, back in xDSL as
// the llvm dialect for Cortex-A76: the FKW arrays are LLVM globals, the tensor arguments are
// bare pointers, and the pattern bodies multiply-add 4-lane vectors.
// CHECK:       builtin.module attributes {{{.*}}llvm.target_triple = "aarch64-unknown-linux-gnu"}
// CHECK:         llvm.mlir.global private constant @{{.*}}(dense<[0, 1, 3]> : tensor<3xi32>)
// CHECK-LABEL:   llvm.func @conv(%arg0: !llvm.ptr, %arg1: !llvm.ptr)
// CHECK:           "llvm.intr.fmuladd"({{.*}}) <{{.*}}> : (vector<4xf32>, vector<4xf32>, vector<4xf32>) -> vector<4xf32>
// CHECK-NOT:     pconv.
// IR: target triple = "aarch64-unknown-linux-gnu"
// IR: define void @conv(ptr %0, ptr %1)
// IR: @llvm.fmuladd.v4f32
func.func @conv(%x: tensor<1x2x4x6xf32>) -> tensor<1x2x4x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x6xf32>
  func.return %y : tensor<1x2x4x6xf32>
}

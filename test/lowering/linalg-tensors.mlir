// RUN: pconv-opt %s -t llvm-ir | filecheck %s

// Tensor programs are bufferized; a tensor result becomes a caller-allocated out-param appended
// to the arguments. linalg on tensors is vectorised (pconv_mlir.lowering.vectorize_linalg: the
// matmul becomes vector FMAs, the ReLU a vector maximum); linalg on buffers becomes loops.

#id = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: define void @matmul_relu(ptr %0, ptr %1, ptr %2)
// CHECK-NOT:     fmul float
// CHECK:         call <5 x float> @llvm.fmuladd.v5f32
// CHECK-NOT:     fmul float
// CHECK:         call <20 x float> @llvm.maximum.v20f32
// CHECK:         ret void
func.func @matmul_relu(%a: tensor<4x8xf32>, %b: tensor<8x5xf32>) -> tensor<4x5xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x5xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x5xf32>) -> tensor<4x5xf32>
  %mm = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x5xf32>)
      outs(%z : tensor<4x5xf32>) -> tensor<4x5xf32>
  %relu = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%mm : tensor<4x5xf32>) outs(%e : tensor<4x5xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  } -> tensor<4x5xf32>
  return %relu : tensor<4x5xf32>
}

// linalg on buffers lowers the same way.
// CHECK-LABEL: define void @conv_buffers(ptr %0, ptr %1, ptr %2)
// CHECK:         fmul float
// CHECK:         fadd float
func.func @conv_buffers(%x: memref<1x2x6x6xf32>, %w: memref<3x2x3x3xf32>,
                        %y: memref<1x3x4x4xf32>) {
  linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : memref<1x2x6x6xf32>, memref<3x2x3x3xf32>) outs(%y : memref<1x3x4x4xf32>)
  return
}

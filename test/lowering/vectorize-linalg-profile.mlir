// RUN: pconv-opt %s -p 'pconv-profile-layers,pconv-vectorize-linalg{machine=x86_64}' | filecheck %s
// RUN: pconv-opt %s -p pconv-profile-layers -t 'llvm-ir{backend=x86_64}' | filecheck %s --check-prefix=LLVM

// A profiled 1x1 conv with a ReLU: pconv-profile-layers times the conv (layer 0) and the ReLU
// (layer 1) apart, but the ReLU is fused into the conv (the last op of its chain), whose loops
// then hold both. So layer 0's end timer moves after the ReLU and layer 1's timers go: the
// profile books the conv and its fused tail on the conv's row.

// CHECK-LABEL: func.func @block
// CHECK:         %[[L0:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    func.call @pconv_layer_begin(%[[L0]]) : (i64) -> ()
// CHECK:         linalg.generic {{.*}} {pconv.vectorize = "fused:elementwise:3"}
// CHECK:         linalg.generic {{.*}} {pconv.vectorize = "fused:conv:1:1"}
// CHECK-NOT:     func.call @pconv_layer
// CHECK:         linalg.generic {{.*}} {pconv.vectorize = "chain:1:2:conv:1:1"}
// CHECK:         func.call @pconv_layer_end(%{{.*}}) : (i64) -> ()
// CHECK-NOT:     func.call @pconv_layer
// CHECK:         func.return

// The lowered function: one timed region, the conv's, around its parallel loop (the whole
// 16-pixel tiles, conv and ReLU; the body is outlined) and the 15-pixel rest after it.
// LLVM-LABEL: define void @block(
// LLVM:         call void @pconv_layer_begin(i64 0)
// LLVM-NOT:     pconv_layer_begin
// LLVM:         @__kmpc_fork_call({{.*}}@block..omp_par
// LLVM-NOT:     pconv_layer_begin
// LLVM:         @llvm.fmuladd.v15f32
// LLVM:         @llvm.maximum.v15f32
// LLVM-NOT:     pconv_layer_begin
// LLVM:         call void @pconv_layer_end(i64 0)
// LLVM-NOT:     call void @pconv_layer
// LLVM:         ret void
// LLVM-LABEL: define internal void @block..omp_par(
// LLVM:         @llvm.fmuladd.v16f32
// LLVM:         @llvm.maximum.v16f32
func.func @block(%x: tensor<1x5x13x11xf32>, %w: tensor<7x5x1x1xf32>, %b: tensor<7xf32>) -> tensor<1x7x13x11xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<1x7x13x11xf32>
  %init = linalg.broadcast ins(%b : tensor<7xf32>) outs(%e : tensor<1x7x13x11xf32>) dimensions = [0, 2, 3]
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : tensor<1x5x13x11xf32>, tensor<7x5x1x1xf32>)
      outs(%init : tensor<1x7x13x11xf32>) -> tensor<1x7x13x11xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%y : tensor<1x7x13x11xf32>) outs(%e : tensor<1x7x13x11xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  } -> tensor<1x7x13x11xf32>
  func.return %r : tensor<1x7x13x11xf32>
}

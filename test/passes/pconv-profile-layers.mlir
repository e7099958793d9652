// RUN: pconv-opt %s -p pconv-profile-layers | filecheck %s

// Two layers: each gets begin/end calls with its number, and the function lists them by op and
// location. Data movement (tensor.empty, linalg.fill) is not a layer.
// CHECK-LABEL: func.func @net
// CHECK-SAME:    pconv.layers = ["linalg.add @ {{.*}}pconv-profile-layers.mlir:19:3", "pconv.conv2d @ {{.*}}pconv-profile-layers.mlir:20:3"]
// CHECK:         linalg.fill
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    func.call @pconv_layer_begin(%[[C0]]) : (i64) -> ()
// CHECK-NEXT:    linalg.add
// CHECK-NEXT:    %[[E0:.*]] = arith.constant 0 : i64
// CHECK-NEXT:    func.call @pconv_layer_end(%[[E0]]) : (i64) -> ()
// CHECK:         func.call @pconv_layer_begin(%{{.*}}) : (i64) -> ()
// CHECK-NEXT:    pconv.conv2d
func.func @net(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %e = tensor.empty() : tensor<1x1x5x5xf32>
  %zero = arith.constant 0.0 : f32
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x1x5x5xf32>) -> tensor<1x1x5x5xf32>
  %s = linalg.add ins(%x, %f : tensor<1x1x5x5xf32>, tensor<1x1x5x5xf32>) outs(%e : tensor<1x1x5x5xf32>) -> tensor<1x1x5x5xf32>
  %y = pconv.conv2d %s, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// A function without layers is left alone.
// CHECK-LABEL: func.func @copy
// CHECK-NOT:     pconv_layer_begin
// CHECK:         func.return
func.func @copy(%x: tensor<4xf32>) -> tensor<4xf32> {
  func.return %x : tensor<4xf32>
}

// CHECK: func.func private @pconv_layer_begin(i64) -> ()
// CHECK: func.func private @pconv_layer_end(i64) -> ()

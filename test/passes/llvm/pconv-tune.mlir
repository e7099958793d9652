// RUN: pconv-opt %s -p 'pconv-tune{target=aarch64 vector_width=4 max_acc=4 report=true}' 2>%t.report | filecheck %s
// RUN: filecheck %s --check-prefix=REPORT < %t.report

// For Cortex-A76 the candidates are ranked by llvm-mca; the schedule of the conv is replaced
// by the cheapest tile with at most 4 accumulators, and nothing else changes.
// CHECK-LABEL: func.func @conv
// CHECK:         pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <{{.*}}> schedule <vector_width = 4, unroll_rows = [[R:[0-9]+]], unroll_cols = [[U:[0-9]+]], partial_sums = 1, unroll_filters = 1, tile_channels = 0> strides [1, 1] padding [1, 1] dilation [1, 1] relu
// REPORT: pconv-tune: aarch64 cycles 2x1: {{[0-9]+}}, 4x1: {{[0-9]+}}, 2x2: {{[0-9]+}}; chose {{[0-9]x[0-9]}}
func.func @conv(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x8x8xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x8x8xf32>
  func.return %y : tensor<1x2x8x8xf32>
}

// A conv whose FKW arrays are arguments, not constants, cannot be compiled alone: left alone.
// CHECK-LABEL: func.func @not_constant
// CHECK:         schedule <vector_width = 8, unroll_rows = 4, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0>
func.func @not_constant(%x: tensor<1x1x4x4xf32>, %offset: tensor<2xi32>, %reorder: tensor<1xi32>, %index: tensor<1xi32>, %stride: tensor<1x2xi32>, %weight: tensor<1x4xf32>) -> tensor<1x1x4x4xf32> {
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x4x4xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}

// RUN: pconv-opt %s -p 'pconv-schedule{unroll_rows=4}' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-schedule{tile_channels=2}' | filecheck %s --check-prefix=BLOCKS
// RUN: not pconv-opt %s -p 'pconv-schedule{vector_width=6}' 2>&1 | filecheck %s --check-prefix=BAD

// One parameter changes; every other one keeps the op's value (partial_sums = 2 here).
// CHECK-LABEL: func.func @conv
// CHECK:         schedule <vector_width = 4, unroll_rows = 4, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// Blocking the 3 input channels by 2 re-packs the FKW arrays: stride gets one run per
// (block, pattern), 2 x 2 + 1 columns. Stored filter 1 (output channel 0) reads channels
// 0 and 2 with pattern 0: one kernel in each block.
// BLOCKS-LABEL: func.func @conv
// BLOCKS:         %stride = arith.constant dense<{{\[}}[0, 0, 1, 1, 1], [1, 2, 2, 3, 3]]> : tensor<2x5xi32>
// BLOCKS:         schedule <vector_width = 4, unroll_rows = 3, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 2>
// BAD: <pass-pipeline>:1:1: error: bad options for 'pconv-schedule': schedule vector_width = 6 is not a power of two
func.func @conv(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 2]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 1], [1, 3, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_cols = 1, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// A pconv.conv2d (before packing) has no schedule: left alone.
// CHECK-LABEL: func.func @not_packed
// CHECK:         pconv.conv2d
// CHECK-NOT:     schedule
func.func @not_packed(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

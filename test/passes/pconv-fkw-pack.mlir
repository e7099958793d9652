// RUN: pconv-opt %s -p 'pconv-fkw-pack{vector_width=4}' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-fkw-pack{report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT
// RUN: pconv-opt %s -p 'pconv-fkw-pack{gpu_stage_input=1}' | filecheck %s --check-prefix=STAGE

// Two filters, two input channels, two patterns. Filter 0 keeps channel 1 (pattern 1);
// filter 1 keeps channel 0 (pattern 0) and channel 1 (pattern 1). Only the kept taps survive,
// in pattern tap order.
// CHECK-LABEL: func.func @pack
// CHECK-NEXT:    %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
// CHECK-NEXT:    %reorder = arith.constant dense<[0, 1]> : tensor<2xi32>
// CHECK-NEXT:    %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
// CHECK-NEXT:    %stride = arith.constant dense<{{\[}}[0, 0, 1], [1, 2, 3]]> : tensor<2x3xi32>
// CHECK-NEXT:    %weight = arith.constant dense<{{\[}}[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00, 7.000000e+00, 8.000000e+00], [9.000000e+00, 1.000000e+01, 1.100000e+01, 1.200000e+01]]> : tensor<3x4xf32>
// CHECK-NEXT:    %{{.*}} = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b patterns <{{\[}}[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 3, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>, tensor<2xf32>) -> tensor<1x2x6x6xf32>
// CHECK-NOT:     tensor<2x2x3x3xf32>
// REPORT: pconv-fkw-pack.mlir:{{[0-9]+}}:3: pconv-fkw-pack: 3 of 4 kernels kept, dense fp32 144 bytes -> FKW 104 bytes (1.38x smaller)
func.func @pack(%x: tensor<1x2x6x6xf32>, %b: tensor<2xf32>) -> tensor<1x2x6x6xf32> {
  %w = arith.constant dense<[
    [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 4.0, 0.0]]],
    [[[0.0, 5.0, 0.0], [6.0, 7.0, 8.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [9.0, 10.0, 11.0], [0.0, 12.0, 0.0]]]
  ]> : tensor<2x2x3x3xf32>
  %y = pconv.conv2d %x, %w, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> kernel_patterns dense<[[-1, 1], [0, 1]]> : tensor<2x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x6x6xf32>, tensor<2x2x3x3xf32>, tensor<2xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// After pconv-fkr the filters are stored in its order and its groups carry over.
// CHECK-LABEL: func.func @pack_in_fkr_order
// CHECK-NEXT:    %offset = arith.constant dense<[0, 2, 3]> : tensor<3xi32>
// CHECK-NEXT:    %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
// CHECK-NEXT:    %index = arith.constant dense<[0, 1, 1]> : tensor<3xi32>
// CHECK:         pconv.fkw_conv2d {{.*}} strides [2, 2] padding [0, 0] dilation [1, 1] filter_groups [0, 1, 2] :
func.func @pack_in_fkr_order(%x: tensor<1x2x7x7xf32>) -> tensor<1x2x3x3xf32> {
  %w = arith.constant dense<[
    [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 4.0, 0.0]]],
    [[[0.0, 5.0, 0.0], [6.0, 7.0, 8.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [9.0, 10.0, 11.0], [0.0, 12.0, 0.0]]]
  ]> : tensor<2x2x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> kernel_patterns dense<[[-1, 1], [0, 1]]> : tensor<2x2xi8> strides [2, 2] padding [0, 0] dilation [1, 1] filter_order [1, 0] filter_groups [0, 1, 2] : (tensor<1x2x7x7xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

// With gpu_stage_input = 1 and no tile_channels, a conv whose staged GPU input tile of every
// channel would not fit in 32 KB of local memory gets channel blocks of the most channels that
// do: 64 channels of 6 rows x 34 columns (work-groups of 8 x 4 items over the 32-column output,
// 4 columns each) is 52224 bytes, 40 channels fit. The small conv fits whole: no blocks.
// STAGE:       schedule <{{.*}}, tile_channels = 0, gpu_stage_input = 1> strides
// STAGE-LABEL: func.func @staged_tile_blocks
// STAGE:         pconv.fkw_conv2d {{.*}} schedule <{{.*}}, tile_channels = 40, gpu_stage_input = 1> strides [1, 1]
func.func @staged_tile_blocks(%x: tensor<1x64x34x34xf32>) -> tensor<1x1x32x32xf32> {
  %w = arith.constant dense<1.0> : tensor<1x64x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9> kernel_patterns dense<0> : tensor<1x64xi8> strides [1, 1] padding [0, 0] dilation [1, 1] : (tensor<1x64x34x34xf32>, tensor<1x64x3x3xf32>) -> tensor<1x1x32x32xf32>
  func.return %y : tensor<1x1x32x32xf32>
}

// A weight that is not a constant stays a pconv.conv2d.
// CHECK-LABEL: func.func @weight_not_constant
// CHECK-NEXT:    %{{.*}} = pconv.conv2d %x, %w
// CHECK-NOT:     pconv.fkw_conv2d
func.func @weight_not_constant(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// Round trip of every pconv op and attribute, in the custom and the generic form.
// RUN: pconv-opt %s | pconv-opt | filecheck %s
// RUN: pconv-opt %s --print-op-generic | pconv-opt | filecheck %s
// RUN: pconv-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @conv2d_bias_relu
// CHECK:         %{{.*}} = pconv.conv2d %x, %w, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> kernel_patterns dense<{{\[}}[0, -1, 1]]> : tensor<1x3xi8> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<2x3x8x8xf32>, tensor<1x3x3x3xf32>, tensor<1xf32>) -> tensor<2x1x8x8xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "conv2d_bias_relu"
// GENERIC:         "pconv.conv2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{patterns = #pconv.pattern_set<[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>, kernel_patterns = dense<{{\[}}[0, -1, 1]]> : tensor<1x3xi8>, strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, relu, operandSegmentSizes = array<i32: 1, 1, 1, 0>}>
func.func @conv2d_bias_relu(%x: tensor<2x3x8x8xf32>, %w: tensor<1x3x3x3xf32>, %b: tensor<1xf32>) -> tensor<2x1x8x8xf32> {
  %y = pconv.conv2d %x, %w, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> kernel_patterns dense<[[0, -1, 1]]> : tensor<1x3xi8> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<2x3x8x8xf32>, tensor<1x3x3x3xf32>, tensor<1xf32>) -> tensor<2x1x8x8xf32>
  func.return %y : tensor<2x1x8x8xf32>
}

// A strided, unpadded conv without bias or ReLU, and a constant weight inside its patterns.
// CHECK-LABEL: func.func @conv2d_stride2_const
// CHECK:         %{{.*}} = arith.constant dense<{{.*}}> : tensor<2x1x3x3xf32>
// CHECK:         %{{.*}} = pconv.conv2d %x, %{{.*}} patterns <[[0, 1, 3, 4]], taps = 4> kernel_patterns dense<{{\[}}[0], [-1]]> : tensor<2x1xi32> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x7x9xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x3x4xf32>
// CHECK-NOT:     relu
func.func @conv2d_stride2_const(%x: tensor<1x1x7x9xf32>) -> tensor<1x2x3x4xf32> {
  %w = arith.constant dense<[[[[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]], [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]> : tensor<2x1x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[0, 1, 3, 4]], taps = 4> kernel_patterns dense<[[0], [-1]]> : tensor<2x1xi32> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x7x9xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x3x4xf32>
  func.return %y : tensor<1x2x3x4xf32>
}

// The dense pattern set (one 9-tap mask) and a set whose patterns need not hold the centre.
// CHECK-LABEL: func.func @pattern_set_forms
// CHECK:         patterns <{{\[}}[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9>
// CHECK:         patterns <{{\[}}[0, 1], [7, 8]], taps = 2, centre = false>
func.func @pattern_set_forms(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) {
  %d = pconv.conv2d %x, %w patterns <[[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  %e = pconv.conv2d %x, %w patterns <[[0, 1], [7, 8]], taps = 2, centre = false> kernel_patterns dense<1> : tensor<1x1xi8> strides [1, 1] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x3x3xf32>
  func.return %d, %e : tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>
}

// The FKW level: two filters stored in the order (1, 0); filter 1 has one kernel of pattern 0,
// filter 0 one kernel of pattern 1 and one of pattern 0. A schedule given in part takes defaults.
// CHECK-LABEL: func.func @fkw
// CHECK:         %{{.*}} = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 3, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0> strides [1, 1] padding [1, 1] dilation [2, 2] relu : (tensor<1x2x9x9xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>, tensor<2xf32>) -> tensor<1x2x7x7xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "fkw"
// GENERIC:         "pconv.fkw_conv2d"({{.*}}) <{patterns = #pconv.pattern_set<[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>, schedule = #pconv.schedule<vector_width = 4, unroll_rows = 3, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0>
func.func @fkw(%x: tensor<1x2x9x9xf32>, %b: tensor<2xf32>) -> tensor<1x2x7x7xf32> {
  %off = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %ro = arith.constant dense<[1, 0]> : tensor<2xi32>
  %idx = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %st = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %fw = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [2, 2] relu : (tensor<1x2x9x9xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>, tensor<2xf32>) -> tensor<1x2x7x7xf32>
  func.return %y : tensor<1x2x7x7xf32>
}

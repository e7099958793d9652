// RUN: pconv-opt %s -p 'pconv-apply-tuning{database="%S/inputs/tuning.json" report=true}' 2>%t.report | filecheck %s
// RUN: filecheck %s --check-prefix=REPORT < %t.report
// RUN: not pconv-opt %s -p 'pconv-apply-tuning{database="%S/inputs/missing.json"}' 2>&1 | filecheck %s --check-prefix=MISSING

// The database's entry for this layer sets the tile and channel blocking; the parameters it
// does not hold (vector_width = 4, partial_sums = 2) are kept, and the FKW arrays are
// re-packed for two channel blocks.
// CHECK-LABEL: func.func @conv
// CHECK:         %stride = arith.constant dense<{{\[}}[0, 0, 1, 1, 1], [1, 2, 2, 3, 3]]> : tensor<2x5xi32>
// CHECK:         schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 2>
// REPORT: pconv-apply-tuning.mlir:20:3: pconv-apply-tuning: 1x3x6x6->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}: applies {'unroll_rows': 2, 'unroll_cols': 1, 'tile_channels': 2}
// REPORT: pconv-apply-tuning.mlir:34:3: pconv-apply-tuning: 1x3x6x6->2 s2x2 p1x1 d1x1 k2t4 {{[0-9a-f]+}}: not in the database
// MISSING: inputs/missing.json: error: cannot read the tuning database: No such file or directory
func.func @conv(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 2]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 1], [1, 3, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// The same kernels with stride 2 are another layer, which the database does not know: left
// alone.
// CHECK-LABEL: func.func @unknown_layer
// CHECK:         schedule <vector_width = 8, unroll_rows = 3, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0>
func.func @unknown_layer(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x3x3xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 2]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 1], [1, 3, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <> strides [2, 2] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x3x3xf32>
  func.return %y : tensor<1x2x3x3xf32>
}

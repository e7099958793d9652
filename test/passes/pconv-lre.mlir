// RUN: pconv-opt %s -p 'convert-pconv-to-loops,pconv-lre' | filecheck %s
// RUN: pconv-opt %s -p 'convert-pconv-to-loops,pconv-lre{report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT

// Two output rows per tile: row 0 with tap row 1 and row 1 with tap row 0 read the same input
// row. Pattern [1, 3, 4, 5] needs (row, column) 0:1, 1:0, 1:1, 1:2 for row 0 and 1:1, 2:0,
// 2:1, 2:2 for row 1: 1:1 is shared, 8 loads become 7. The same holds for [3, 4, 5, 7].
// CHECK-LABEL: func.func @shared_rows
// CHECK:         scf.for %{{.*}} iter_args
// CHECK-COUNT-7:   vector.load
// CHECK-NOT:       vector.load
// CHECK:           scf.yield
// CHECK:         scf.for %{{.*}} iter_args
// CHECK-COUNT-7:   vector.load
// CHECK-NOT:       vector.load
// CHECK:           scf.yield
// REPORT: pconv-lre: @shared_rows: 2 kernel loops, vector loads per output vector per kernel 4.00 -> 3.50, activation vector loads per multiply-add 1.00 -> 0.88
func.func @shared_rows(%x: tensor<1x2x4x6xf32>) -> tensor<1x2x4x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x4x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x6xf32>
  func.return %y : tensor<1x2x4x6xf32>
}

// One output row per tile: the four taps of a pattern read four different vectors, so nothing
// is shared and every load stays.
// CHECK-LABEL: func.func @one_row
// CHECK:         scf.for %{{.*}} iter_args
// CHECK-COUNT-4:   vector.load
// CHECK-NOT:       vector.load
// CHECK:           scf.yield
// REPORT: pconv-lre: @one_row: 1 kernel loops, vector loads per output vector per kernel 4.00 -> 4.00, activation vector loads per multiply-add 1.00 -> 1.00
func.func @one_row(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x4x4xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}

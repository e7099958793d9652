// RUN: pconv-opt %s -p 'pconv-fkr{group_size=2}' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-fkr{group_size=2 report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT
// RUN: pconv-opt %s -p 'pconv-fkr{group_size=2 overlap=true}' | filecheck %s --check-prefix=OVERLAP
// RUN: pconv-opt %s -p 'pconv-fkr{group_size=2 overlap=true report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=OVERLAP-REPORT

// Filters 1 and 3 keep 3 kernels with the same pattern mix, filter 2 keeps 2, filter 0 one:
// the order is 1, 3, 2, 0, cut into groups of two.
// CHECK-LABEL: func.func @reorder
// CHECK:         pconv.conv2d %x, %w patterns <{{.*}}> kernel_patterns dense<{{.*}}> : tensor<4x3xi32> strides [1, 1] padding [1, 1] dilation [1, 1] filter_order [1, 3, 2, 0] filter_groups [0, 2, 4] :
// REPORT: pconv-fkr.mlir:{{[0-9]+}}:3: pconv-fkr: 4 filters in 2 groups of 2, load imbalance 1.333 -> 1.111
func.func @reorder(%x: tensor<1x3x6x6xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4>
         kernel_patterns dense<[[0, -1, -1], [0, 1, 1], [1, -1, 0], [1, 1, 0]]> : tensor<4x3xi32>
         strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// A filter that lost every kernel goes last; a ragged last group.
// CHECK-LABEL: func.func @pruned_filter_last
// CHECK:         filter_order [1, 2, 0] filter_groups [0, 2, 3] :
func.func @pruned_filter_last(%x: tensor<1x2x5x5xf32>, %w: tensor<3x2x3x3xf32>) -> tensor<1x3x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[-1, -1], [0, 0], [0, -1]]> : tensor<3x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x5x5xf32>
  func.return %y : tensor<1x3x5x5xf32>
}

// A conv that already carries an order is left alone, and so is everything that is not pconv.
// CHECK-LABEL: func.func @left_alone
// CHECK:         filter_order [0, 1] filter_groups [0, 2] :
// CHECK:         arith.addf
func.func @left_alone(%x: tensor<1x1x5x5xf32>, %w: tensor<2x1x3x3xf32>, %a: f32) -> (tensor<1x2x5x5xf32>, f32) {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[-1], [0]]> : tensor<2x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] filter_order [0, 1] filter_groups [0, 2] : (tensor<1x1x5x5xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x5x5xf32>
  %b = arith.addf %a, %a : f32
  func.return %y, %b : tensor<1x2x5x5xf32>, f32
}

// overlap=true: filters 0 and 2 read the same channels (0, 2), filters 1 and 3 the others (1, 3).
// By length and pattern mix all four tie (order 0, 1, 2, 3: no group shares a read); grouped by
// shared (channel, tap) reads they pair up as (0, 2) and (1, 3).
// OVERLAP-LABEL: func.func @overlap
// OVERLAP:         filter_order [0, 2, 1, 3] filter_groups [0, 2, 4] :
// OVERLAP-REPORT: pconv-fkr.mlir:{{[0-9]+}}:3: pconv-fkr: 4 filters in 2 groups of 2, load imbalance 1.000 -> 1.000, shared reads 0.000 -> 1.000
func.func @overlap(%x: tensor<1x4x5x5xf32>, %w: tensor<4x4x3x3xf32>) -> tensor<1x4x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1, 0, -1], [-1, 0, -1, 0], [0, -1, 0, -1], [-1, 0, -1, 0]]> : tensor<4x4xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x4x5x5xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x5x5xf32>
  func.return %y : tensor<1x4x5x5xf32>
}

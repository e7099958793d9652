// RUN: pconv-opt %s -p 'pconv-apply-tuning{database="%S/inputs/tuning-v2.json" target=host-avx2 report=true}' 2>%t.report | filecheck %s
// RUN: filecheck %s --check-prefix=REPORT < %t.report
// RUN: pconv-opt %s -p 'pconv-apply-tuning{database="%S/inputs/tuning-v2.json" target=aarch64-cortex-a76}' | filecheck %s --check-prefix=ARM
// RUN: not pconv-opt %s -p 'pconv-apply-tuning{database="%S/inputs/tuning-v2.json"}' 2>&1 | filecheck %s --check-prefix=AMBIGUOUS

// A version 2 database holds, per layer and target, the schedule and the layer's pattern
// statistics (the fraction of kernels kept, the share of each pattern). This one knows the
// layer @exact for two targets: host-avx2 (a 2x1 tile) and aarch64-cortex-a76 (4x1).

// The layer the database holds, for the chosen target.
// CHECK-LABEL: func.func @exact
// CHECK:         schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// ARM-LABEL:   func.func @exact
// ARM:           schedule <vector_width = 4, unroll_rows = 4, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// REPORT: pconv-apply-tuning-targets.mlir:{{[0-9]+}}:3: pconv-apply-tuning: 1x3x6x6->2 s1x1 p1x1 d1x1 k2t4 093fa4c62789: applies {'unroll_rows': 2, 'unroll_cols': 1}
func.func @exact(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 2]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 1], [1, 3, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// The same layer pruned otherwise (other kernels kept, same statistics): the digest differs,
// so the entry found is the nearest by statistics, for the same target only.
// CHECK-LABEL: func.func @nearest
// CHECK:         schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// ARM-LABEL:   func.func @nearest
// ARM:           schedule <vector_width = 4, unroll_rows = 4, unroll_cols = 1, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// REPORT: pconv-apply-tuning-targets.mlir:{{[0-9]+}}:3: pconv-apply-tuning: 1x3x6x6->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}: applies {'unroll_rows': 2, 'unroll_cols': 1} (nearest 1x3x6x6->2 s1x1 p1x1 d1x1 k2t4 093fa4c62789, distance 0.000)
func.func @nearest(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[2, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 1], [1, 3, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// The same shapes with 5 kernels of 6 kept instead of 3: too far from the entry's statistics
// (distance 0.4, the tolerance is 0.1), left alone.
// CHECK-LABEL: func.func @far
// CHECK:         schedule <vector_width = 4, unroll_rows = 3, unroll_cols = 2, partial_sums = 2, unroll_filters = 1, tile_channels = 0>
// REPORT: pconv-apply-tuning-targets.mlir:{{[0-9]+}}:3: pconv-apply-tuning: 1x3x6x6->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}: not in the database
func.func @far(%x: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  %offset = arith.constant dense<[0, 3, 5]> : tensor<3xi32>
  %reorder = arith.constant dense<[0, 1]> : tensor<2xi32>
  %index = arith.constant dense<[0, 1, 2, 0, 2]> : tensor<5xi32>
  %stride = arith.constant dense<[[0, 3, 3], [3, 3, 5]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<5x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x6x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<5xi32>, tensor<2x3xi32>, tensor<5x4xf32>) -> tensor<1x2x6x6xf32>
  func.return %y : tensor<1x2x6x6xf32>
}

// Without target=, a database of two targets is ambiguous: one line, no output.
// AMBIGUOUS: tuning-v2.json: error: the database holds tunings for aarch64-cortex-a76, host-avx2; choose one with pconv-apply-tuning{target=...}

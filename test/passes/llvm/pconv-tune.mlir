// RUN: pconv-tune %s --backend aarch64 --search coordinate --max-acc 4 --steps tile --report -o %t.json 2>%t.report
// RUN: filecheck %s --check-prefix=REPORT < %t.report
// RUN: filecheck %s --check-prefix=DB < %t.json
// RUN: pconv-opt %s -p 'pconv-apply-tuning{database="%t.json"}' | filecheck %s

// The tuner is a driver: for Cortex-A76 it ranks each conv's candidate schedules by llvm-mca's
// estimate and writes a tuning database; the pure pass pconv-apply-tuning then gives the conv
// the tuned tile and keeps every parameter the tuner did not touch (here partial_sums = 2 and
// vector_width = 4).
// REPORT: pconv-tune.mlir:{{[0-9]+}}:{{[0-9]+}}: aarch64 cycles: tile 2x1: {{[0-9]+}}
// REPORT: chose {'unroll_rows': {{[0-9]}}, 'unroll_cols': {{[0-9]}}}
// REPORT: skipped: its FKW arrays are not constants
// DB: "format": "pconv-tuning/2"
// DB: "backend": "aarch64"
// DB: "1x2x8x8->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}"
// CHECK-LABEL: func.func @conv
// CHECK:         pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <{{.*}}> schedule <vector_width = 4, unroll_rows = {{[0-9]}}, unroll_cols = {{[0-9]}}, partial_sums = 2, unroll_filters = 1, tile_channels = 0> strides [1, 1] padding [1, 1] dilation [1, 1] relu
func.func @conv(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, partial_sums = 2> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x8x8xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x8x8xf32>
  func.return %y : tensor<1x2x8x8xf32>
}

// A conv whose FKW arrays are arguments, not constants, cannot be compiled alone: the tuner
// skips it and the database does not know it, so it keeps its schedule.
// CHECK-LABEL: func.func @not_constant
// CHECK:         schedule <vector_width = 8, unroll_rows = 3, unroll_cols = 2, partial_sums = 1, unroll_filters = 1, tile_channels = 0>
func.func @not_constant(%x: tensor<1x1x4x4xf32>, %offset: tensor<2xi32>, %reorder: tensor<1xi32>, %index: tensor<1xi32>, %stride: tensor<1x2xi32>, %weight: tensor<1x4xf32>) -> tensor<1x1x4x4xf32> {
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x4x4xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}

// RUN: pconv-tune %s --backend aarch64 --steps tile,partial_sums --population 4 --generations 2 -o %t.json 2>%t.progress
// RUN: filecheck %s --check-prefix=PROGRESS < %t.progress
// RUN: filecheck %s --check-prefix=DB < %t.json
// RUN: pconv-tune %s --backend aarch64 --steps tile,partial_sums --update -o %t.json 2>&1 | filecheck %s --check-prefix=UPDATE
// RUN: pconv-opt %s -p 'pconv-apply-tuning{database="%t.json" target=aarch64-cortex-a76}' | filecheck %s

// The genetic search (pconv-tune's default) ranks candidate schedules by llvm-mca's estimate
// for Cortex-A76, one progress line per layer, and writes a version 2 database: each entry
// names its target and holds the layer's pattern statistics. With --update, the layers the
// database already holds for the target are not tuned again.
// PROGRESS: [1/1] {{.*}}pconv-tune-genetic.mlir:{{[0-9]+}}:{{[0-9]+}}: {{[0-9]+}} cycles, {{[0-9.]+}}x its own, {{[0-9]+}} measured in {{[0-9.]+}} s: {'unroll_rows': {{[0-9]}}, 'unroll_cols': {{[0-9]}}, 'partial_sums': {{[12]}}}
// DB: "format": "pconv-tuning/2"
// DB: "layer": "1x2x8x8->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}"
// DB-NEXT: "target": "aarch64-cortex-a76"
// DB-NEXT: "stats": {
// DB-NEXT: "kept": 0.75
// DB: "search": "genetic"
// UPDATE: [1/1] {{.*}}: 1x2x8x8->2 s1x1 p1x1 d1x1 k2t4 {{[0-9a-f]+}}: in the database (exact)
// CHECK-LABEL: func.func @conv
// CHECK:         schedule <vector_width = 4, unroll_rows = {{[0-9]}}, unroll_cols = {{[0-9]}}, partial_sums = {{[12]}}, unroll_filters = 1, tile_channels = 0>
func.func @conv(%x: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x8x8xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x8x8xf32>
  func.return %y : tensor<1x2x8x8xf32>
}

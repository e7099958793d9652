// RUN: pconv-opt %s -p convert-pconv-to-loops | filecheck %s
// RUN: pconv-opt %s -p 'convert-pconv-to-loops,pconv-lre{report=true}' -o /dev/null 2>&1 | filecheck %s --check-prefix=LRE

// Two patterns, two filters stored in the order (1, 0), a 2-row x 1-vector register tile of
// 4 lanes. The input is copied into a flat zero-padded buffer (2 channels x (1 + 4 + 1 rows) x
// 1 stride phase x (8 + 2 + 1 columns) = 132) in parallel over images and channels: zeros
// before the first row, each input row in vectors (then its 2 columns left over), zeros up to
// the next row. One kernel loop per pattern carries the two accumulators; every tap of every
// row is a load at the kernel's base plus a constant: 4 taps x 2 rows = 8 multiply-adds per
// kernel. Images x row tiles x shares of the filters are an scf.parallel (threads), column
// tiles and filters loops inside it. The 6-column output is not whole 4-lane vectors, so the
// tiles go to a scratch output, and each row tile's rows are copied out inside the same
// parallel iteration.
// CHECK-LABEL: func.func @conv
// CHECK:         %[[X:.*]] = bufferization.to_buffer %x
// CHECK:         %[[XP:.*]] = memref.alloc() : memref<132xf32>
// CHECK:         "scf.parallel"(%{{.*}}) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}>
// CHECK:           vector.store %{{.*}}, %[[XP]][%{{.*}}] : memref<132xf32>, vector<4xf32>
// CHECK:           scf.for
// CHECK:             %[[ROW:.*]] = vector.load %[[X]][%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<1x2x4x6xf32>, vector<4xf32>
// CHECK:             vector.store %[[ROW]], %[[XP]]
// CHECK:             memref.load %[[X]]
// CHECK:             memref.store %{{.*}}, %[[XP]]
// CHECK:           scf.reduce
// CHECK-NOT:     linalg.fill
// CHECK:         %[[OUT:.*]] = memref.alloc() : memref<1x2x4x6xf32>
// CHECK:         %[[TILED:.*]] = memref.alloc() : memref<1x2x4x8xf32>
// CHECK:         "scf.parallel"(%{{.*}}) <{operandSegmentSizes = array<i32: 3, 3, 3, 0>}>
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               %{{.*}}, %{{.*}} = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<4xf32>, vector<4xf32>) {
// CHECK:                 %[[C:.*]] = arith.index_cast
// CHECK:                 %[[CB:.*]] = arith.muli %[[C]], %{{.*}} : index
// CHECK:                 %[[BASE:.*]] = arith.addi %[[CB]], %{{.*}} : index
// CHECK:                 %[[I0:.*]] = arith.addi %[[BASE]], %{{.*}} : index
// CHECK:                 vector.load %[[XP]][%[[I0]]] : memref<132xf32>, vector<4xf32>
// CHECK-COUNT-8:         vector.fma
// CHECK:                 scf.yield
// CHECK:               %{{.*}}, %{{.*}} = scf.for %{{.*}} iter_args
// CHECK-COUNT-8:         vector.fma
// CHECK:                 scf.yield
// CHECK:               arith.maximumf
// CHECK:               vector.store %{{.*}}, %[[TILED]]
// CHECK:               arith.maximumf
// CHECK:               vector.store %{{.*}}, %[[TILED]]
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               %[[V:.*]] = vector.load %[[TILED]]
// CHECK:               vector.store %[[V]], %[[OUT]]
// CHECK:               memref.load %[[TILED]]
// CHECK:               memref.store %{{.*}}, %[[OUT]]
// CHECK:           scf.reduce
// CHECK-NOT:     memref.copy
// CHECK:         %[[Y:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK:         func.return %[[Y]]
// CHECK-NOT:     pconv.fkw_conv2d
func.func @conv(%x: tensor<1x2x4x6xf32>) -> tensor<1x2x4x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x6xf32>
  func.return %y : tensor<1x2x4x6xf32>
}

// Stride 2: the padded input is split into 2 column phases (5 rows x 2 phases x 6 columns),
// so each tap is a contiguous load. Each input row is read in pairs of 4-lane vectors (columns
// 0-7), split by two shuffles into its even and odd columns, which are stored at the same
// place of phase 0 and phase 1; column 8 goes element by element. Whole tiles cover the 2x4
// output: no scratch, no copy.
// CHECK-LABEL: func.func @stride2
// CHECK:         %[[XP2:.*]] = memref.alloc() : memref<60xf32>
// CHECK:         scf.for
// CHECK:           %[[LOW:.*]] = vector.load %{{.*}} : memref<1x1x5x9xf32>, vector<4xf32>
// CHECK:           %[[HIGH:.*]] = vector.load %{{.*}} : memref<1x1x5x9xf32>, vector<4xf32>
// CHECK:           %[[EVEN:.*]] = vector.shuffle %[[LOW]], %[[HIGH]] [0, 2, 4, 6]
// CHECK:           vector.store %[[EVEN]], %[[XP2]]
// CHECK:           %[[ODD:.*]] = vector.shuffle %[[LOW]], %[[HIGH]] [1, 3, 5, 7]
// CHECK:           vector.store %[[ODD]], %[[XP2]]
// CHECK:         arith.remui
// CHECK:         arith.divui
// CHECK:         %[[OUT2:.*]] = memref.alloc() : memref<1x1x2x4xf32>
// CHECK-NOT:     memref.copy
// CHECK:         bufferization.to_tensor %[[OUT2]]
func.func @stride2(%x: tensor<1x1x5x9xf32>) -> tensor<1x1x2x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x9xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x2x4xf32>
  func.return %y : tensor<1x1x2x4xf32>
}

// pconv.conv2d (not yet packed) is left alone.
// CHECK-LABEL: func.func @not_packed
// CHECK-NEXT:    pconv.conv2d
func.func @not_packed(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// Two filters in lock-step (unroll_filters = 2) with two partial sums per output vector: per
// pattern, one loop over the kernels both filters have (the shorter run, arith.minsi) carrying
// 2 filters x 1 vector x 2 partial sums, then each filter's remainder.
// CHECK-LABEL: func.func @lockstep
// CHECK:         arith.minsi
// CHECK:         scf.for %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-8: vector.fma
// CHECK:         scf.yield
// CHECK:         scf.for %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<4xf32>, vector<4xf32>)
// CHECK:         scf.for %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<4xf32>, vector<4xf32>)
// CHECK:         arith.addf
func.func @lockstep(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, partial_sums = 2, unroll_filters = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// Channel blocks of 1 (tile_channels = 1): `stride` has 2 blocks x 2 patterns + 1 columns, and
// stored filter 0 has no kernel in block 0. Block 0 reads its runs at constant columns and starts
// from the bias; a loop over the other blocks b reads runs b * 2 + p and starts from the partial
// sums stored after the block before; the ReLU comes after the last block. No other table.
// CHECK-LABEL: func.func @blocked
// CHECK:         %[[STRIDE:.*]] = bufferization.to_buffer %stride : tensor<2x5xi32> to memref<2x5xi32>
// CHECK-NOT:     dense<
// CHECK:         memref.alloc() : memref<1x2x4x4xf32>
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               vector.store
// CHECK:             scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step
// CHECK:               %[[FIRST:.*]] = arith.muli %[[B]], %{{.*}} : index
// CHECK:               vector.load %{{.*}} : memref<1x2x4x4xf32>, vector<4xf32>
// CHECK:               memref.load %[[STRIDE]][%{{.*}}, %[[FIRST]]] : memref<2x5xi32>
// CHECK:             scf.for
// CHECK:               arith.maximumf
func.func @blocked(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 0, 1, 1], [1, 2, 2, 2, 3]]> : tensor<2x5xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, tile_channels = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x5xi32>, tensor<3x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// specialize = 1: code specialised to the kept kernels. Both stored filters form one group
// (unroll_filters = 2) with 2 rows x 1 vector each: 4 accumulators, started from the bias. No
// index or stride is read at run time: the tile's input is viewed as [channel, offset] and every
// load has two constant indices. Channel 0 has one kernel (stored filter 1, pattern 0): 7
// shifted vectors over the 2 rows for 8 multiply-adds. Channel 1 has a kernel of each filter
// (patterns 0 and 1): 8 shifted vectors feed 16 multiply-adds, each loaded once in use order.
// The weights are broadcast from constant positions; the ReLU comes with the stores.
// CHECK-LABEL: func.func @specialized
// CHECK-NOT:     memref.load %{{.*}} : memref<3xi32>
// CHECK:         "scf.parallel"
// CHECK:           %[[VIEW:.*]] = memref.reinterpret_cast %{{.*}} to offset: [%{{.*}}], sizes: [2, 132], strides: [66, 1] : memref<132xf32> to memref<2x132xf32, strided<[66, 1], offset: ?>>
// CHECK-COUNT-7:   vector.load %[[VIEW]][%{{.*}}, %{{.*}}] : memref<2x132xf32, strided<[66, 1], offset: ?>>, vector<4xf32>
// CHECK-NOT:       memref.load %{{.*}} : memref<3xi32>
// CHECK-COUNT-8:   vector.load %[[VIEW]][%{{.*}}, %{{.*}}] : memref<2x132xf32, strided<[66, 1], offset: ?>>, vector<4xf32>
// CHECK-NOT:       vector.load %[[VIEW]]
// CHECK-COUNT-4:   arith.maximumf
// CHECK:         bufferization.to_tensor
// LRE: pconv-lre: @specialized: 1 kernel loops, {{.*}} activation vector loads per multiply-add 0.62 -> 0.62
func.func @specialized(%x: tensor<1x2x4x6xf32>, %b: tensor<2xf32>) -> tensor<1x2x4x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, unroll_filters = 2, specialize = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>, tensor<2xf32>) -> tensor<1x2x4x6xf32>
  func.return %y : tensor<1x2x4x6xf32>
}


// lane_weights = 1 (the AArch64 default): each kernel's 4 weights are one vector load of its
// row of `weight`, and each tap's multiply-add takes one lane (LLVM makes it NEON's
// lane-indexed fmla) instead of a scalar load and broadcast per weight.
// CHECK-LABEL: func.func @lane_weights
// CHECK:         scf.for
// CHECK:           %[[ROW:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<1x4xf32>, vector<4xf32>
// CHECK-COUNT-4:   vector.extract %[[ROW]][{{[0-3]}}] : f32 from vector<4xf32>
// CHECK-NOT:       memref.load %{{.*}} : memref<1x4xf32>
// CHECK:           scf.yield
func.func @lane_weights(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, lane_weights = 1> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x4x4xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}


// Filters with the same kernels (`fkw.uniform`, as in a dense layer) in lock-step share their
// input loads: one loop per pattern, with no remainder loops and no arith.minsi; each kernel
// step reads the channel once (from the first filter's kernel) and each shifted input vector
// once, then the multiply-adds of both filters that use it, each with its own weight.
// CHECK-LABEL: func.func @shared
// CHECK-NOT:     arith.minsi
// CHECK:         scf.for %{{.*}} iter_args(%[[A0:.*]] = %{{.*}}, %[[A1:.*]] = %{{.*}}) -> (vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-1:   memref.load %{{.*}} : memref<4xi32>
// CHECK-COUNT-6:   memref.load %{{.*}} : memref<4x3xf32>
// CHECK:           %[[V0:.*]] = vector.load
// CHECK-NEXT:      %[[F0:.*]] = vector.fma %[[V0]], %{{.*}}, %[[A0]]
// CHECK-NEXT:      %[[G0:.*]] = vector.fma %[[V0]], %{{.*}}, %[[A1]]
// CHECK:           %[[V1:.*]] = vector.load
// CHECK-NEXT:      vector.fma %[[V1]], %{{.*}}, %[[F0]]
// CHECK-NEXT:      vector.fma %[[V1]], %{{.*}}, %[[G0]]
// CHECK:           vector.load
// CHECK-NEXT:      vector.fma
// CHECK-NEXT:      vector.fma
// CHECK-NEXT:      scf.yield
// CHECK-NOT:     arith.minsi
// CHECK:         func.return
// LRE: pconv-lre: @shared: 2 kernel loops, {{.*}} activation vector loads per multiply-add 0.67 -> 0.67
func.func @shared(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 2, 4]> : tensor<3xi32>
  %reorder = arith.constant dense<[0, 1]> : tensor<2xi32>
  %index = arith.constant dense<[0, 1, 0, 1]> : tensor<4xi32>
  %stride = arith.constant dense<[[0, 2], [2, 4]]> : tensor<2x2xi32>
  %weight = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.5, 2.5, 3.5]]> : tensor<4x3xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[3, 4, 5]], taps = 3> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, unroll_filters = 2> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<4xi32>, tensor<2x2xi32>, tensor<4x3xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

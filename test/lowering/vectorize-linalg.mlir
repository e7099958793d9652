// RUN: pconv-opt %s --split-input-file -p 'pconv-vectorize-linalg{machine=x86_64}' | filecheck %s
// RUN: pconv-opt %s --split-input-file -t 'llvm-ir{backend=x86_64}' | filecheck %s --check-prefix=LLVM
// RUN: not pconv-opt %s -p 'pconv-vectorize-linalg{machine=sparc}' 2>&1 | filecheck %s --check-prefix=BAD

// BAD: error: bad options for 'pconv-vectorize-linalg': unknown machine 'sparc'

// pconv-vectorize-linalg puts each linalg op on tensors that has a vector form in its canonical
// form, tagged pconv.vectorize = "<kind>" (pconv_mlir.lowering.vectorize_linalg); inputs as
// torch-mlir emits them, on odd shapes. x86_64: 8 lanes, conv tiles of 6 filters x 16 pixels.

// A 1x1 conv over the whole image is a matmul of the weights and the flattened pixels. Its init
// (here a fill) takes the same (n, f, pixels) shape, and a copy is the last op of the conv's
// chain (`chain:<element-wise ops>:<init operand>:<conv form>`): the transform script tiles
// the copy and fuses the conv and its init (`fused:<form>`) into its tiles.
// CHECK-LABEL: func.func @conv1x1
// CHECK:         %[[W:.*]] = tensor.extract_slice %w[0, 0, 0, 0] [7, 5, 1, 1] [1, 1, 1, 1] : tensor<7x5x1x1xf32> to tensor<7x5xf32>
// CHECK:         %[[X:.*]] = tensor.collapse_shape %x {{\[}}[0 : i64], [1 : i64], [2 : i64, 3 : i64]] : tensor<1x5x9x11xf32> into tensor<1x5x99xf32>
// CHECK:         %[[E:.*]] = tensor.collapse_shape %e {{.*}} into tensor<1x7x99xf32>
// CHECK:         %[[INIT:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> ()>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%zero : f32) outs(%[[E]] : tensor<1x7x99xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:elementwise:3"}
// CHECK:         %[[Y:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[W]], %[[X]] : tensor<7x5xf32>, tensor<1x5x99xf32>) outs(%[[INIT]] : tensor<1x7x99xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:conv:1:1"}
// CHECK:           arith.mulf
// CHECK-NEXT:      arith.addf
// CHECK:         %[[C:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%[[Y]] : tensor<1x7x99xf32>)
// CHECK-SAME:      {pconv.vectorize = "chain:1:2:conv:1:1"}
// CHECK-NEXT:    ^{{.*}}(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:      linalg.yield %[[IN]] : f32
// CHECK:         %y = tensor.expand_shape %[[C]] {{.*}} into tensor<1x7x9x11xf32>
// CHECK-NEXT:    func.return %y
// CHECK-NOT:     linalg.conv_2d_nchw_fchw

// The conv becomes vector FMAs: no scalar multiply is left.
// LLVM-LABEL: define void @conv1x1(
// LLVM-NOT:     fmul float
// LLVM:         call <16 x float> @llvm.fmuladd.v16f32
// LLVM-NOT:     fmul float
// LLVM:         ret void
func.func @conv1x1(%x: tensor<1x5x9x11xf32>, %w: tensor<7x5x1x1xf32>) -> tensor<1x7x9x11xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<1x7x9x11xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<1x7x9x11xf32>) -> tensor<1x7x9x11xf32>
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : tensor<1x5x9x11xf32>, tensor<7x5x1x1xf32>)
      outs(%init : tensor<1x7x9x11xf32>) -> tensor<1x7x9x11xf32>
  func.return %y : tensor<1x7x9x11xf32>
}

// -----

// The threads share a 1x1 conv over 13 x 11 = 143 pixels by tiles of 16 pixels: the transform
// script splits it after its 8 whole tiles, a parallel loop over them (its body OpenMP outlines
// and `__kmpc_fork_call` runs on the threads), and the rest of 15 pixels after it.
// CHECK-LABEL: func.func @conv1x1_threads
// CHECK:         linalg.generic
// CHECK-SAME:      ins(%{{.*}}, %{{.*}} : tensor<7x5xf32>, tensor<1x5x143xf32>) outs(%{{.*}} : tensor<1x7x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "conv:1:1"}
// LLVM-LABEL: define void @conv1x1_threads(
// LLVM-NOT:     @llvm.fmuladd.v16f32
// LLVM:         call void (ptr, i32, ptr, ...) @__kmpc_fork_call(ptr @{{[0-9]+}}, i32 1, ptr @conv1x1_threads..omp_par,
// LLVM-NOT:     @llvm.fmuladd.v16f32
// LLVM:         call <15 x float> @llvm.fmuladd.v15f32
// LLVM-NOT:     @llvm.fmuladd.v16f32
// LLVM:         ret void
// LLVM-LABEL: define internal void @conv1x1_threads..omp_par(
// LLVM:         call void @__kmpc_for_static_init_8u(
// LLVM:         call <16 x float> @llvm.fmuladd.v16f32
func.func @conv1x1_threads(%x: tensor<1x5x13x11xf32>, %w: tensor<7x5x1x1xf32>,
                           %init: tensor<1x7x13x11xf32>) -> tensor<1x7x13x11xf32> {
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : tensor<1x5x13x11xf32>, tensor<7x5x1x1xf32>)
      outs(%init : tensor<1x7x13x11xf32>) -> tensor<1x7x13x11xf32>
  func.return %y : tensor<1x7x13x11xf32>
}

// -----

// The element-wise tails of a 1x1 conv (ReLU, a residual add whose other operand is a block
// input, ReLU) take the conv's (n, f, pixels) shape, each reading the op before it directly
// (as its first operand); the bias broadcast, the conv and the tails but the last are fused
// into the tiles of the last: no reshape between them, no element-wise op on its own.
// CHECK-LABEL: func.func @conv1x1_chain
// CHECK:         %[[INIT:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%b : tensor<16xf32>) outs(%{{.*}} : tensor<1x16x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:elementwise:3"}
// CHECK:         %[[C:.*]] = linalg.generic
// CHECK-SAME:      outs(%[[INIT]] : tensor<1x16x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:conv:1:1"}
// CHECK:         %[[RELU:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%[[C]] : tensor<1x16x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:elementwise:3"}
// CHECK:         %[[R:.*]] = tensor.collapse_shape %r {{.*}} into tensor<1x16x143xf32>
// CHECK:         %[[ADD:.*]] = linalg.generic
// CHECK-SAME:      ins(%[[RELU]], %[[R]] : tensor<1x16x143xf32>, tensor<1x16x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:elementwise:3"}
// CHECK-NEXT:    ^{{.*}}(%[[V:.*]]: f32, %[[A:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:      arith.addf %[[A]], %[[V]] : f32
// CHECK:         %[[Y:.*]] = linalg.generic
// CHECK-SAME:      ins(%[[ADD]] : tensor<1x16x143xf32>)
// CHECK-SAME:      {pconv.vectorize = "chain:3:2:conv:1:1"}
// CHECK:         %y = tensor.expand_shape %[[Y]] {{.*}} into tensor<1x16x13x11xf32>
// CHECK-NEXT:    func.return %y
// One parallel region for the 8 whole tiles of 16 pixels (the conv's FMAs, then the tail on
// its accumulators: ReLU, add, ReLU), the rest of 15 pixels on the calling thread the same way;
// one buffer, the result's: none for the conv or a tail.
// LLVM-LABEL: define void @conv1x1_chain(
// LLVM:         call ptr @_mlir_memref_to_llvm_alloc(i64 9216)
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         call void (ptr, i32, ptr, ...) @__kmpc_fork_call(ptr @{{[0-9]+}}, i32 1, ptr @conv1x1_chain..omp_par,
// LLVM-NOT:     @__kmpc_fork_call
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         call <15 x float> @llvm.fmuladd.v15f32
// LLVM:         fcmp ugt <15 x float>
// LLVM:         fadd <15 x float>
// LLVM:         fcmp ugt <15 x float>
// LLVM-NOT:     @__kmpc_fork_call
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         ret void
// LLVM-LABEL: define internal void @conv1x1_chain..omp_par(
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         call <16 x float> @llvm.fmuladd.v16f32
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         fcmp ugt <16 x float>
// LLVM:         fadd <16 x float>
// LLVM:         fcmp ugt <16 x float>
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         ret void
func.func @conv1x1_chain(%x: tensor<1x8x13x11xf32>, %w: tensor<16x8x1x1xf32>, %b: tensor<16xf32>,
                         %r: tensor<1x16x13x11xf32>) -> tensor<1x16x13x11xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<1x16x13x11xf32>
  %init = linalg.broadcast ins(%b : tensor<16xf32>) outs(%e : tensor<1x16x13x11xf32>) dimensions = [0, 2, 3]
  %c = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : tensor<1x8x13x11xf32>, tensor<16x8x1x1xf32>)
      outs(%init : tensor<1x16x13x11xf32>) -> tensor<1x16x13x11xf32>
  %relu = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                           affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                          iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%c : tensor<1x16x13x11xf32>) outs(%e : tensor<1x16x13x11xf32>) {
  ^bb0(%in: f32, %out: f32):
    %p = arith.cmpf ugt, %in, %zero : f32
    %s = arith.select %p, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<1x16x13x11xf32>
  %add = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                          affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                          affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                         iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%r, %relu : tensor<1x16x13x11xf32>, tensor<1x16x13x11xf32>) outs(%e : tensor<1x16x13x11xf32>) {
  ^bb0(%a: f32, %v: f32, %out: f32):
    %s = arith.addf %a, %v : f32
    linalg.yield %s : f32
  } -> tensor<1x16x13x11xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                        affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%add : tensor<1x16x13x11xf32>) outs(%e : tensor<1x16x13x11xf32>) {
  ^bb0(%in: f32, %out: f32):
    %p = arith.cmpf ugt, %in, %zero : f32
    %s = arith.select %p, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<1x16x13x11xf32>
  func.return %y : tensor<1x16x13x11xf32>
}

// -----

// A 7x7 stride-2 stem: the padded 35x33 input is split into its 2x2 stride phases (padded to
// 36x34, a transpose of a reshape), then each of the 49 taps reads a unit-stride 15x14 view of
// one phase, with its own 6x3 weight slice.
// CHECK-LABEL: func.func @stem
// CHECK:         %[[P:.*]] = tensor.pad %x low[0, 0, 0, 0] high[0, 0, 1, 1]
// CHECK:         } : tensor<1x3x35x33xf32> to tensor<1x3x36x34xf32>
// CHECK:         %[[R:.*]] = tensor.expand_shape %[[P]] {{.*}} output_shape [1, 3, 18, 2, 17, 2]
// CHECK:         %[[Q:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d3, d2, d5, d4)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4, d5)>]
// CHECK-SAME:      ins(%[[R]] : tensor<1x3x18x2x17x2xf32>)
// CHECK-SAME:      {pconv.vectorize = "deinterleave:6"}
// CHECK:         -> tensor<1x3x2x18x2x17xf32>
// CHECK:         %[[X0:.*]] = tensor.extract_slice %[[Q]][0, 0, 0, 0, 0, 0] [1, 3, 1, 15, 1, 14] [1, 1, 1, 1, 1, 1] : tensor<1x3x2x18x2x17xf32> to tensor<1x3x15x14xf32>
// CHECK:         %[[X1:.*]] = tensor.extract_slice %[[Q]][0, 0, 0, 0, 1, 0] [1, 3, 1, 15, 1, 14]
// CHECK:         %[[X48:.*]] = tensor.extract_slice %[[Q]][0, 0, 0, 3, 0, 3] [1, 3, 1, 15, 1, 14]
// CHECK:         %[[W0:.*]] = tensor.extract_slice %w[0, 0, 0, 0] [6, 3, 1, 1] [1, 1, 1, 1] : tensor<6x3x7x7xf32> to tensor<6x3xf32>
// CHECK:         %[[W48:.*]] = tensor.extract_slice %w[0, 0, 6, 6] [6, 3, 1, 1]
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d1, d4)>,
// CHECK-SAME:      affine_map<(d0, d1, d2, d3, d4) -> (d0, d4, d2, d3)>,
// CHECK-SAME:      affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[W0]], {{.*}}, %[[W48]], %[[X0]], %[[X1]], {{.*}}, %[[X48]] :
// CHECK-SAME:      outs(%init : tensor<1x6x15x14xf32>)
// CHECK-SAME:      {pconv.vectorize = "conv:1:2"}
// CHECK:           arith.mulf {{.*}} fastmath<contract> : f32
// CHECK-COUNT-49:  arith.addf {{.*}} fastmath<contract> : f32
// CHECK-NEXT:      linalg.yield
// CHECK:         -> tensor<1x6x15x14xf32>
func.func @stem(%x: tensor<1x3x35x33xf32>, %w: tensor<6x3x7x7xf32>,
                %init: tensor<1x6x15x14xf32>) -> tensor<1x6x15x14xf32> {
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>}
      ins(%x, %w : tensor<1x3x35x33xf32>, tensor<6x3x7x7xf32>)
      outs(%init : tensor<1x6x15x14xf32>) -> tensor<1x6x15x14xf32>
  func.return %y : tensor<1x6x15x14xf32>
}

// -----

// A grouped conv (2 groups of 2 -> 3 channels) keeps its group dim: (n, g, f, oh, ow, c).
// CHECK-LABEL: func.func @grouped
// CHECK:         %[[X0:.*]] = tensor.extract_slice %x[0, 0, 0, 0, 0] [1, 2, 2, 9, 7] [1, 1, 1, 1, 1] : tensor<1x2x2x11x9xf32> to tensor<1x2x2x9x7xf32>
// CHECK:         %[[X8:.*]] = tensor.extract_slice %x[0, 0, 0, 2, 2] [1, 2, 2, 9, 7]
// CHECK:         %[[W0:.*]] = tensor.extract_slice %w[0, 0, 0, 0, 0] [2, 3, 2, 1, 1] [1, 1, 1, 1, 1] : tensor<2x3x2x3x3xf32> to tensor<2x3x2xf32>
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d1, d2, d5)>,
// CHECK-SAME:      affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d5, d3, d4)>,
// CHECK-SAME:      affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[W0]], {{.*}}, %[[X8]] :
// CHECK-SAME:      outs(%init : tensor<1x2x3x9x7xf32>)
// CHECK-SAME:      {pconv.vectorize = "conv:2:2"}
func.func @grouped(%x: tensor<1x2x2x11x9xf32>, %w: tensor<2x3x2x3x3xf32>,
                   %init: tensor<1x2x3x9x7xf32>) -> tensor<1x2x3x9x7xf32> {
  %y = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : tensor<1x2x2x11x9xf32>, tensor<2x3x2x3x3xf32>)
      outs(%init : tensor<1x2x3x9x7xf32>) -> tensor<1x2x3x9x7xf32>
  func.return %y : tensor<1x2x3x9x7xf32>
}

// -----

// A depthwise conv (the generic torch-mlir emits) is all-parallel: the 9 taps of the input
// times a per-channel weight, summed into the accumulator.
// CHECK-LABEL: func.func @depthwise
// CHECK:         %[[X0:.*]] = tensor.extract_slice %x[0, 0, 0, 0] [1, 6, 9, 7] [1, 1, 1, 1] : tensor<1x6x11x9xf32> to tensor<1x6x9x7xf32>
// CHECK:         %[[X8:.*]] = tensor.extract_slice %x[0, 0, 2, 2] [1, 6, 9, 7]
// CHECK:         %[[W0:.*]] = tensor.extract_slice %w[0, 0, 0] [6, 1, 1] [1, 1, 1] : tensor<6x3x3xf32> to tensor<6xf32>
// CHECK:         %[[W8:.*]] = tensor.extract_slice %w[0, 2, 2] [6, 1, 1]
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
// CHECK-SAME:      affine_map<(d0, d1, d2, d3) -> (d1)>,
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME:      ins(%[[X0]], {{.*}}, %[[X8]], %[[W0]], {{.*}}, %[[W8]] :
// CHECK-SAME:      {pconv.vectorize = "window:4"}
// CHECK-COUNT-9:   arith.addf {{.*}} fastmath<contract> : f32
// CHECK-NEXT:      linalg.yield
func.func @depthwise(%x: tensor<1x6x11x9xf32>, %w: tensor<6x3x3xf32>,
                     %init: tensor<1x6x9x7xf32>) -> tensor<1x6x9x7xf32> {
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1 + d4, d2 + d5)>,
                                        affine_map<(d0, d1, d2, d3, d4, d5) -> (d3, d4, d5)>,
                                        affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x6x11x9xf32>, tensor<6x3x3xf32>) outs(%init : tensor<1x6x9x7xf32>) {
  ^bb0(%in: f32, %wt: f32, %acc: f32):
    %m = arith.mulf %in, %wt : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x6x9x7xf32>
  func.return %y : tensor<1x6x9x7xf32>
}

// -----

// A depthwise conv with its bias and ReLU6 (MobileNet-V2): the ReLU6 keeps the conv's (n, c,
// oh, ow) shape and is the last op of its chain (the init is operand 18, after 9 taps and 9
// weights); the function has one loop nest, its tiles clamped in registers.
// CHECK-LABEL: func.func @depthwise_relu6
// CHECK:         %[[INIT:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:      {pconv.vectorize = "fused:elementwise:4"}
// CHECK:         %[[D:.*]] = linalg.generic
// CHECK-SAME:      outs(%[[INIT]] : tensor<1x6x9x7xf32>)
// CHECK-SAME:      {pconv.vectorize = "fused:window:4"}
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:      ins(%[[D]] : tensor<1x6x9x7xf32>)
// CHECK-SAME:      {pconv.vectorize = "chain:1:18:window:4"}
// CHECK:           arith.maximumf
// CHECK-NEXT:      arith.minimumf
// CHECK:         func.return %y
// LLVM-LABEL: define void @depthwise_relu6(
// LLVM:         call ptr @_mlir_memref_to_llvm_alloc(i64 1576)
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         call <7 x float> @llvm.minimum.v7f32
// LLVM-NOT:     @_mlir_memref_to_llvm_alloc
// LLVM:         ret void
func.func @depthwise_relu6(%x: tensor<1x6x11x9xf32>, %w: tensor<6x3x3xf32>,
                           %b: tensor<6xf32>) -> tensor<1x6x9x7xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %six = arith.constant 6.000000e+00 : f32
  %e = tensor.empty() : tensor<1x6x9x7xf32>
  %init = linalg.broadcast ins(%b : tensor<6xf32>) outs(%e : tensor<1x6x9x7xf32>) dimensions = [0, 2, 3]
  %d = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1 + d4, d2 + d5)>,
                                        affine_map<(d0, d1, d2, d3, d4, d5) -> (d3, d4, d5)>,
                                        affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]}
      ins(%x, %w : tensor<1x6x11x9xf32>, tensor<6x3x3xf32>) outs(%init : tensor<1x6x9x7xf32>) {
  ^bb0(%in: f32, %wt: f32, %acc: f32):
    %m = arith.mulf %in, %wt : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x6x9x7xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                        affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%d : tensor<1x6x9x7xf32>) outs(%e : tensor<1x6x9x7xf32>) {
  ^bb0(%in: f32, %out: f32):
    %lo = arith.maximumf %in, %zero : f32
    %hi = arith.minimumf %lo, %six : f32
    linalg.yield %hi : f32
  } -> tensor<1x6x9x7xf32>
  func.return %y : tensor<1x6x9x7xf32>
}

// -----

// A 3x3 stride-2 max pooling: stride phases, then the maximum of 9 unit-stride views.
// CHECK-LABEL: func.func @maxpool
// CHECK:         linalg.generic
// CHECK-SAME:      ins(%{{.*}} : tensor<1x3x6x2x5x2xf32>) outs(%{{.*}} : tensor<1x3x2x6x2x5xf32>)
// CHECK-SAME:      {pconv.vectorize = "deinterleave:6"}
// CHECK-COUNT-9: tensor.extract_slice {{.*}} to tensor<1x3x5x4xf32>
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME:      outs(%init : tensor<1x3x5x4xf32>)
// CHECK-SAME:      {pconv.vectorize = "window:4"}
// CHECK-COUNT-9:   arith.maximumf
// CHECK-NEXT:      linalg.yield
// CHECK-NOT:     linalg.pooling_nchw_max
// The stride phases' transposes are unrolled vector code: no stack array inside the loops
// (allocas in a loop grow the stack with the trip count: a large batch overflowed it).
// LLVM-LABEL: define void @maxpool(
// LLVM-NOT:     alloca [
// LLVM:         ret void
func.func @maxpool(%x: tensor<1x3x11x9xf32>, %init: tensor<1x3x5x4xf32>) -> tensor<1x3x5x4xf32> {
  %window = tensor.empty() : tensor<3x3xf32>
  %y = linalg.pooling_nchw_max {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>}
      ins(%x, %window : tensor<1x3x11x9xf32>, tensor<3x3xf32>)
      outs(%init : tensor<1x3x5x4xf32>) -> tensor<1x3x5x4xf32>
  func.return %y : tensor<1x3x5x4xf32>
}

// -----

// A linear layer whose K (37) has no vector split: the weights are transposed in 8x8 blocks,
// then a matmul.
// CHECK-LABEL: func.func @linear
// CHECK:         %[[WT:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME:      ins(%w : tensor<11x37xf32>) outs(%{{.*}} : tensor<37x11xf32>)
// CHECK-SAME:      {pconv.vectorize = "transpose:2"}
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%x, %[[WT]] : tensor<2x37xf32>, tensor<37x11xf32>) outs(%init : tensor<2x11xf32>)
// CHECK-SAME:      {pconv.vectorize = "conv:0:1"}
// CHECK-NOT:     linalg.transpose
// CHECK-NOT:     linalg.matmul
// Too small to share (2 rows, 11 columns): all on the calling thread.
// LLVM-LABEL: define void @linear(
// LLVM-NOT:     __kmpc_fork_call
// LLVM:         ret void
func.func @linear(%x: tensor<2x37xf32>, %w: tensor<11x37xf32>, %init: tensor<2x11xf32>) -> tensor<2x11xf32> {
  %e = tensor.empty() : tensor<37x11xf32>
  %wt = linalg.transpose ins(%w : tensor<11x37xf32>) outs(%e : tensor<37x11xf32>) permutation = [1, 0]
  %y = linalg.matmul ins(%x, %wt : tensor<2x37xf32>, tensor<37x11xf32>)
      outs(%init : tensor<2x11xf32>) -> tensor<2x11xf32>
  func.return %y : tensor<2x11xf32>
}

// -----

// A linear layer whose K (32) splits into 2 x 16: both operands read along K, the weights in
// place (the transpose is gone), 16 partial sums per output, then their sum.
// CHECK-LABEL: func.func @linear_dot
// CHECK:         %[[A:.*]] = tensor.expand_shape %x {{.*}} output_shape [1, 2, 16] : tensor<1x32xf32> into tensor<1x2x16xf32>
// CHECK:         %[[W:.*]] = tensor.expand_shape %w {{.*}} output_shape [11, 2, 16] : tensor<11x32xf32> into tensor<11x2x16xf32>
// CHECK:         %[[ZERO:.*]] = linalg.generic
// CHECK-SAME:      {pconv.vectorize = "elementwise:3"}
// CHECK:         %[[PART:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
// CHECK-SAME:      ins(%[[A]], %[[W]] : tensor<1x2x16xf32>, tensor<11x2x16xf32>) outs(%[[ZERO]] : tensor<1x11x16xf32>)
// CHECK-SAME:      {pconv.vectorize = "dot"}
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[PART]] : tensor<1x11x16xf32>) outs(%init : tensor<1x11xf32>)
// CHECK-SAME:      {pconv.vectorize = "reduction:3:1"}
// CHECK-NOT:     linalg.transpose
func.func @linear_dot(%x: tensor<1x32xf32>, %w: tensor<11x32xf32>, %init: tensor<1x11xf32>) -> tensor<1x11xf32> {
  %e = tensor.empty() : tensor<32x11xf32>
  %wt = linalg.transpose ins(%w : tensor<11x32xf32>) outs(%e : tensor<32x11xf32>) permutation = [1, 0]
  %y = linalg.matmul ins(%x, %wt : tensor<1x32xf32>, tensor<32x11xf32>)
      outs(%init : tensor<1x11xf32>) -> tensor<1x11xf32>
  func.return %y : tensor<1x11xf32>
}

// -----

// Element-wise ops: the trailing dims every operand reads whole are collapsed into one.
// CHECK-LABEL: func.func @relu
// CHECK:         %[[X:.*]] = tensor.collapse_shape %x {{\[}}[0 : i64, 1 : i64, 2 : i64, 3 : i64]] : tensor<1x3x5x7xf32> into tensor<105xf32>
// CHECK:         %[[R:.*]] = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
// CHECK-SAME:      ins(%[[X]] : tensor<105xf32>)
// CHECK-SAME:      {pconv.vectorize = "elementwise:1"}
// CHECK:           arith.cmpf ugt
// CHECK-NEXT:      arith.select
// CHECK:         %y = tensor.expand_shape %[[R]] {{.*}} into tensor<1x3x5x7xf32>
func.func @relu(%x: tensor<1x3x5x7xf32>) -> tensor<1x3x5x7xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<1x3x5x7xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                        affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x : tensor<1x3x5x7xf32>) outs(%e : tensor<1x3x5x7xf32>) {
  ^bb0(%in: f32, %out: f32):
    %c = arith.cmpf ugt, %in, %zero : f32
    %s = arith.select %c, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<1x3x5x7xf32>
  func.return %y : tensor<1x3x5x7xf32>
}

// -----

// A bias add reads the channel dim only: the pixels are collapsed, the channels are not.
// CHECK-LABEL: func.func @bias_add
// CHECK:         %[[X:.*]] = tensor.collapse_shape %x {{\[}}[0 : i64], [1 : i64], [2 : i64, 3 : i64]] : tensor<1x5x3x7xf32> into tensor<1x5x21xf32>
// CHECK:         linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME:      ins(%[[X]], %b : tensor<1x5x21xf32>, tensor<5xf32>)
// CHECK-SAME:      {pconv.vectorize = "elementwise:3"}
func.func @bias_add(%x: tensor<1x5x3x7xf32>, %b: tensor<5xf32>) -> tensor<1x5x3x7xf32> {
  %e = tensor.empty() : tensor<1x5x3x7xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                        affine_map<(d0, d1, d2, d3) -> (d1)>,
                                        affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %b : tensor<1x5x3x7xf32>, tensor<5xf32>) outs(%e : tensor<1x5x3x7xf32>) {
  ^bb0(%in: f32, %bias: f32, %out: f32):
    %s = arith.addf %in, %bias : f32
    linalg.yield %s : f32
  } -> tensor<1x5x3x7xf32>
  func.return %y : tensor<1x5x3x7xf32>
}

// -----

// Global average pooling's sum over the 7x9 pixels is tagged as it is.
// CHECK-LABEL: func.func @global_avgpool
// CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, 0)>], iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
// CHECK-SAME:      ins(%x : tensor<1x5x7x9xf32>) outs(%init : tensor<1x5x1x1xf32>)
// CHECK-SAME:      {pconv.vectorize = "reduction:4:2"}
func.func @global_avgpool(%x: tensor<1x5x7x9xf32>, %init: tensor<1x5x1x1xf32>) -> tensor<1x5x1x1xf32> {
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>,
                                        affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, 0)>],
                       iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%x : tensor<1x5x7x9xf32>) outs(%init : tensor<1x5x1x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %s = arith.addf %in, %acc : f32
    linalg.yield %s : f32
  } -> tensor<1x5x1x1xf32>
  func.return %y : tensor<1x5x1x1xf32>
}

// -----

// Left alone: linalg on buffers (the forms are built on tensors), and a generic with no vector
// form (a 3-D permutation).
// CHECK-LABEL: func.func @left_alone
// CHECK-NEXT:    linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
// CHECK-SAME:      ins(%x, %w : memref<1x2x6x6xf32>, memref<3x2x3x3xf32>) outs(%y : memref<1x3x4x4xf32>){{$}}
// CHECK-NEXT:    tensor.empty
// CHECK-NEXT:    linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2, d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME:      ins(%t : tensor<7x3x5xf32>) outs(%e : tensor<3x5x7xf32>) {{{$}}
// CHECK-NOT:     pconv.vectorize
func.func @left_alone(%x: memref<1x2x6x6xf32>, %w: memref<3x2x3x3xf32>, %y: memref<1x3x4x4xf32>,
                      %t: tensor<7x3x5xf32>) -> tensor<3x5x7xf32> {
  linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
      ins(%x, %w : memref<1x2x6x6xf32>, memref<3x2x3x3xf32>) outs(%y : memref<1x3x4x4xf32>)
  %e = tensor.empty() : tensor<3x5x7xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2, d0, d1)>,
                                        affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%t : tensor<7x3x5xf32>) outs(%e : tensor<3x5x7xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<3x5x7xf32>
  func.return %p : tensor<3x5x7xf32>
}

// RUN: pconv-opt %s --split-input-file --verify-diagnostics -p convert-pconv-to-gpu | filecheck %s
// RUN: not pconv-opt %s --split-input-file -p 'pconv-schedule{gpu_workgroup_x=64 gpu_workgroup_y=8}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: pconv-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=SCHEDULE

// The schedule prints the GPU fields that are not at their defaults, after the CPU ones:
// SCHEDULE: schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, partial_sums = 1, unroll_filters = 1, tile_channels = 0, gpu_block_pixels = 2, gpu_filters_per_item = 1, gpu_workgroup_x = 2, gpu_workgroup_y = 2> strides [1, 1]
// SCHEDULE: schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, partial_sums = 1, unroll_filters = 1, tile_channels = 0> strides [2, 2]

// The conv of convert-pconv-to-loops.mlir (two patterns, filters stored as (1, 0), padding 1,
// ReLU) with 2 output columns x 1 filter per work-item in work-groups of 2 x 2. A pad kernel
// writes the zero-padded input (4 + 2 rows x 6 + 2 columns) and the conv kernel reads it: per
// pattern run an scf.for (in an scf.if on a non-empty run) whose loads sit at the work-item's
// first input row and column plus constants (hoisted before the loops), each element once. 6 columns in blocks of
// 2: 3 pixel blocks, 2 work-groups of 2 along x (one item idle: the bounds check); 4 rows, 2
// work-groups along y; 2 filters x 1 image along z. The host launches both kernels.
// CHECK-LABEL: builtin.module attributes {gpu.container_module}
// CHECK:         "gpu.module"() <{sym_name = "conv_kernels"}> ({
// CHECK:           "gpu.func"() <{function_type = (memref<1x2x4x6xf32>, memref<1x2x6x8xf32>) -> (), kernel}> ({
// CHECK:             %[[PADX:.*]] = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
// CHECK:             scf.if %{{.*}} -> (f32) {
// CHECK:               memref.load %{{.*}} : memref<1x2x4x6xf32>
// CHECK:             } else {
// CHECK:             memref.store %{{.*}} : memref<1x2x6x8xf32>
// CHECK:           }) {sym_name = "conv0_pad", gpu.known_block_size = array<i32: 4, 2, 1>, gpu.kernel} : () -> ()
// CHECK:           "gpu.func"() <{function_type = (memref<1x2x6x8xf32>, memref<2xi32>, memref<3xi32>, memref<2x3xi32>, memref<3x4xf32>, memref<1x2x4x6xf32>) -> (), kernel}> ({
// CHECK-NEXT:      ^bb0(%[[X:.*]]: memref<1x2x6x8xf32>, %[[REORDER:.*]]: memref<2xi32>, %[[INDEX:.*]]: memref<3xi32>, %[[STRIDE:.*]]: memref<2x3xi32>, %[[WEIGHT:.*]]: memref<3x4xf32>, %[[OUT:.*]]: memref<1x2x4x6xf32>):
// CHECK-DAG:         %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG:         %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG:         %[[C3:.*]] = arith.constant 3 : index
// CHECK:             %[[BLOCK:.*]] = "gpu.global_id"() <{dimension = #gpu<dim x>}> : () -> index
// CHECK-NEXT:        %[[OH:.*]] = "gpu.global_id"() <{dimension = #gpu<dim y>}> : () -> index
// CHECK-NEXT:        %[[Z:.*]] = "gpu.global_id"() <{dimension = #gpu<dim z>}> : () -> index
// CHECK:             scf.if
// CHECK:               %[[OW0:.*]] = arith.muli %[[BLOCK]], %[[C2]] : index
// CHECK-NEXT:          %[[Y1:.*]] = arith.addi %[[OH]], %[[C1]] : index
// CHECK-NEXT:          %[[Y2:.*]] = arith.addi %[[OH]], %[[C2]] : index
// CHECK-NEXT:          %[[X1:.*]] = arith.addi %[[OW0]], %[[C1]] : index
// CHECK-NEXT:          %[[X2:.*]] = arith.addi %[[OW0]], %[[C2]] : index
// CHECK-NEXT:          %[[X3:.*]] = arith.addi %[[OW0]], %[[C3]] : index
// CHECK:               memref.load %[[REORDER]][%[[Z]]] : memref<2xi32>
// CHECK:               memref.load %[[STRIDE]][%[[Z]], %{{.*}}] : memref<2x3xi32>
// CHECK-NEXT:          %[[LO:.*]] = arith.index_cast
// CHECK-NEXT:          memref.load %[[STRIDE]][%[[Z]], %[[C1]]] : memref<2x3xi32>
// CHECK-NEXT:          %[[HI:.*]] = arith.index_cast
// CHECK:               arith.cmpi slt, %[[LO]], %[[HI]] : index
// CHECK:               scf.for %[[K:.*]] = %[[LO]] to %[[HI]] step %[[C1]] iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (f32, f32) {
// CHECK-NEXT:            %[[CI:.*]] = memref.load %[[INDEX]][%[[K]]] : memref<3xi32>
// CHECK-NEXT:            %[[CH:.*]] = arith.index_cast %[[CI]] : i32 to index
// CHECK-NEXT:            %[[W0:.*]] = memref.load %[[WEIGHT]][%[[K]], %{{.*}}] : memref<3x4xf32>
// Pattern 0 keeps taps 1, 3, 4, 5 of the window: pixel 0 reads (row 0, col 1), (1, 0), (1, 1), (1, 2).
// CHECK:                 %[[V:.*]] = memref.load %[[X]][%{{.*}}, %[[CH]], %[[OH]], %[[X1]]] : memref<1x2x6x8xf32>
// CHECK-NEXT:            arith.mulf %[[V]], %[[W0]] : f32
// CHECK:                 memref.load %[[X]][%{{.*}}, %[[CH]], %[[Y1]], %[[OW0]]]
// CHECK:                 memref.load %[[X]][%{{.*}}, %[[CH]], %[[Y1]], %[[X1]]]
// CHECK:                 memref.load %[[X]][%{{.*}}, %[[CH]], %[[Y1]], %[[X2]]]
// Pixel 1: the same taps one column to the right; (1, 1) and (1, 2) were loaded for pixel 0.
// CHECK:                 memref.load %[[X]][%{{.*}}, %[[CH]], %[[OH]], %[[X2]]]
// CHECK-NEXT:            arith.mulf
// CHECK-NEXT:            arith.addf
// CHECK-NEXT:            arith.mulf
// CHECK-NEXT:            arith.addf
// CHECK-NEXT:            arith.mulf
// CHECK-NEXT:            arith.addf
// CHECK-NEXT:            memref.load %[[X]][%{{.*}}, %[[CH]], %[[Y1]], %[[X3]]]
// CHECK-NEXT:            arith.mulf
// CHECK-NEXT:            arith.addf
// CHECK-NEXT:            scf.yield
// Pattern 1 keeps taps 3, 4, 5, 7: its last tap reads row 2.
// CHECK:               scf.for
// CHECK:                 memref.load %[[X]][%{{.*}}, %{{.*}}, %[[Y2]], %[[X1]]]
// CHECK:               arith.maximumf
// CHECK:               memref.store %{{.*}}, %[[OUT]][%{{.*}}, %{{.*}}, %[[OH]], %[[OW0]]] : memref<1x2x4x6xf32>
// CHECK:               arith.maximumf
// CHECK:               memref.store %{{.*}}, %[[OUT]][%{{.*}}, %{{.*}}, %[[OH]], %[[X1]]] : memref<1x2x4x6xf32>
// CHECK:           }) {sym_name = "conv0", gpu.known_block_size = array<i32: 2, 2, 1>, gpu.kernel} : () -> ()
// CHECK:         func.func @conv(%x: tensor<1x2x4x6xf32>) -> tensor<1x2x4x6xf32> {
// CHECK:           %[[XM:.*]] = bufferization.to_buffer %x
// CHECK:           %[[RM:.*]] = bufferization.to_buffer %reorder
// CHECK:           %[[IM:.*]] = bufferization.to_buffer %index
// CHECK:           %[[SM:.*]] = bufferization.to_buffer %stride
// CHECK:           %[[WM:.*]] = bufferization.to_buffer %weight
// CHECK:           %[[OM:.*]] = memref.alloc() : memref<1x2x4x6xf32>
// CHECK:           %[[XP:.*]] = memref.alloc() : memref<1x2x6x8xf32>
// CHECK-NEXT:      %[[P1:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[P2:.*]] = arith.constant 3 : index
// CHECK-NEXT:      %[[P3:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[P4:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %[[P5:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[P6:.*]] = arith.constant 1 : index
// CHECK-NEXT:      "gpu.launch_func"(%[[P1]], %[[P2]], %[[P3]], %[[P4]], %[[P5]], %[[P6]], %[[XM]], %[[XP]]) <{kernel = @conv_kernels::@conv0_pad, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 0>}>
// CHECK-NEXT:      %[[G1:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[G2:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[G3:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[B1:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[B2:.*]] = arith.constant 2 : index
// CHECK-NEXT:      %[[B3:.*]] = arith.constant 1 : index
// CHECK-NEXT:      "gpu.launch_func"(%[[G1]], %[[G2]], %[[G3]], %[[B1]], %[[B2]], %[[B3]], %[[XP]], %[[RM]], %[[IM]], %[[SM]], %[[WM]], %[[OM]]) <{kernel = @conv_kernels::@conv0, operandSegmentSizes = array<i32: 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 6, 0>}>
// CHECK-NEXT:      memref.dealloc %[[XP]] : memref<1x2x6x8xf32>
// CHECK-NEXT:      %[[Y:.*]] = bufferization.to_tensor %[[OM]] restrict writable
// CHECK-NEXT:      func.return %[[Y]]
// CHECK-NOT:     pconv.fkw_conv2d
func.func @conv(%x: tensor<1x2x4x6xf32>) -> tensor<1x2x4x6xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1, gpu_block_pixels = 2, gpu_filters_per_item = 1, gpu_workgroup_x = 2, gpu_workgroup_y = 2> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x6xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x6xf32>
  func.return %y : tensor<1x2x4x6xf32>
}

// -----

// Stride 2 without padding, default GPU schedule: 4 columns per work-item (the whole 2x4
// output row), whose taps reach column 2 * 3 + 2 = 8 of the 9-column input: no pad kernel, the
// conv reads the input. The column of pixel j, tap column c is 2 * ow0 + 2 * j + c.
// CHECK-LABEL: builtin.module attributes {gpu.container_module}
// CHECK-NOT:     conv0_pad
// CHECK:         "gpu.func"() <{function_type = (memref<1x1x5x9xf32>, memref<1xi32>, memref<1xi32>, memref<1x2xi32>, memref<1x4xf32>, memref<1x1x2x4xf32>) -> (), kernel}>
// CHECK-DAG:       %[[C8:.*]] = arith.constant 8 : index
// CHECK:           %[[OW0:.*]] = arith.muli
// CHECK:           %[[X0:.*]] = arith.muli %[[OW0]]
// CHECK:           arith.addi %[[X0]], %[[C8]] : index
// CHECK:         }) {sym_name = "conv0", gpu.known_block_size = array<i32: 1, 2, 1>, gpu.kernel}
// CHECK-LABEL:   func.func @stride2
// CHECK:           %[[XM:.*]] = bufferization.to_buffer %x
// CHECK-NOT:       memref.alloc() : memref<1x1x5
// CHECK:           "gpu.launch_func"({{.*}}, %[[XM]], {{.*}}) <{kernel = @stride2_kernels::@conv0
// CHECK-NOT:       memref.dealloc
func.func @stride2(%x: tensor<1x1x5x9xf32>) -> tensor<1x1x2x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4, unroll_rows = 2, unroll_cols = 1> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x9xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x2x4xf32>
  func.return %y : tensor<1x1x2x4xf32>
}

// -----

// The epilogue: bias, residual and ReLU6, in the kernel's arguments after the FKW arrays and
// before the output. Two convs in one function: both kernels in its one gpu.module.
// CHECK-LABEL: builtin.module attributes {gpu.container_module}
// CHECK:         "gpu.module"() <{sym_name = "block_kernels"}> ({
// CHECK:           "gpu.func"() <{function_type = (memref<1x2x6x6xf32>, memref<2xi32>, memref<3xi32>, memref<2x3xi32>, memref<3x4xf32>, memref<2xf32>, memref<1x2x4x4xf32>, memref<1x2x4x4xf32>) -> (), kernel}> ({
// CHECK-NEXT:      ^bb0(%{{.*}}: memref<1x2x6x6xf32>, %[[REORDER:.*]]: memref<2xi32>, %{{.*}}: memref<3xi32>, %{{.*}}: memref<2x3xi32>, %{{.*}}: memref<3x4xf32>, %[[BIAS:.*]]: memref<2xf32>, %[[RES:.*]]: memref<1x2x4x4xf32>, %[[OUT:.*]]: memref<1x2x4x4xf32>):
// CHECK:             %[[I32:.*]] = memref.load %[[REORDER]]
// CHECK-NEXT:        %[[O:.*]] = arith.index_cast %[[I32]] : i32 to index
// CHECK-NEXT:        %[[B:.*]] = memref.load %[[BIAS]][%[[O]]] : memref<2xf32>
// CHECK:             scf.for {{.*}} iter_args(%{{.*}} = %[[B]], %{{.*}} = %[[B]], %{{.*}} = %[[B]], %{{.*}} = %[[B]])
// CHECK:             %[[S:.*]] = memref.load %[[RES]][%{{.*}}, %[[O]], %{{.*}}, %{{.*}}] : memref<1x2x4x4xf32>
// CHECK-NEXT:        %[[SUM:.*]] = arith.addf %{{.*}}, %[[S]] : f32
// CHECK-NEXT:        %[[POS:.*]] = arith.maximumf %[[SUM]], %{{.*}} : f32
// CHECK-NEXT:        %[[SIX:.*]] = arith.minimumf %[[POS]], %{{.*}} : f32
// CHECK-NEXT:        memref.store %[[SIX]], %[[OUT]][%{{.*}}, %[[O]], %{{.*}}, %{{.*}}] : memref<1x2x4x4xf32>
// CHECK:           }) {sym_name = "conv0", {{.*}}gpu.kernel}
// CHECK:           }) {sym_name = "conv1_pad", {{.*}}gpu.kernel}
// CHECK:           }) {sym_name = "conv1", {{.*}}gpu.kernel}
// CHECK-LABEL:   func.func @block
// CHECK:           "gpu.launch_func"({{.*}}) <{kernel = @block_kernels::@conv0_pad
// CHECK:           "gpu.launch_func"({{.*}}) <{kernel = @block_kernels::@conv0,
// CHECK:           "gpu.launch_func"({{.*}}) <{kernel = @block_kernels::@conv1_pad
// CHECK:           "gpu.launch_func"({{.*}}) <{kernel = @block_kernels::@conv1,
func.func @block(%x: tensor<1x2x4x4xf32>, %b: tensor<2xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 1, 1], [1, 2, 3]]> : tensor<2x3xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight, %b residual %x : tensor<1x2x4x4xf32> patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu6 : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %z = pconv.fkw_conv2d %y, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x3xi32>, tensor<3x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %z : tensor<1x2x4x4xf32>
}

// -----

// Channel blocks of 1 (tile_channels = 1): an scf.for over the 2 blocks b carries the
// accumulators, and reads runs b * 2 + p of `stride`.
// CHECK-LABEL: builtin.module attributes {gpu.container_module}
// CHECK:         ^bb0(%{{.*}}: memref<1x2x6x6xf32>, %{{.*}}: memref<2xi32>, %{{.*}}: memref<3xi32>, %[[STRIDE:.*]]: memref<2x5xi32>
// CHECK:           scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK-NEXT:        %[[FIRST:.*]] = arith.muli %[[B]], %{{.*}} : index
// CHECK-NEXT:        memref.load %[[STRIDE]][%{{.*}}, %[[FIRST]]] : memref<2x5xi32>
func.func @blocked(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 0, 1, 1], [1, 2, 2, 2, 3]]> : tensor<2x5xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, tile_channels = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x5xi32>, tensor<3x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// gpu_stage_input = 1 with channel blocks of 1: the work-group (2 x 3 items, 2 columns and 2
// filters each) stages its tile of the padded input, 3 - 1 + 2 + 1 = 5 rows by 2 * 2 - 1 + 2 + 1
// = 6 columns of one channel block, in local memory (space 3). Channel block loop outermost,
// carrying both filters' accumulators (2 x 2); in it a barrier, the cooperative load (each item
// every 6th element, zero past the input), a barrier, then both filters' pattern runs, whose taps
// read the tile at (channel - block, local row, local column). No tap reads global memory. The
// rows' bounds check (4 rows in work-groups of 3) moves onto the stores, so that every item
// reaches the barriers.
// CHECK-LABEL: builtin.module attributes {gpu.container_module}
// CHECK:         ^bb0(%[[X:.*]]: memref<1x2x6x6xf32>, %{{.*}}: memref<2xi32>, %{{.*}}: memref<3xi32>, %{{.*}}: memref<2x5xi32>, %{{.*}}: memref<3x4xf32>, %[[OUT:.*]]: memref<1x2x4x4xf32>):
// CHECK:           %[[OH:.*]] = "gpu.global_id"() <{dimension = #gpu<dim y>}> : () -> index
// CHECK:           %[[ROWS_OK:.*]] = arith.cmpi ult, %[[OH]], %{{.*}} : index
// CHECK-NOT:       scf.if
// CHECK:           %[[TILE:.*]] = memref.alloc() : memref<1x5x6xf32, 3 : i64>
// CHECK:           %[[TY:.*]] = "gpu.thread_id"() <{dimension = #gpu<dim y>}> : () -> index
// CHECK:           scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (f32, f32, f32, f32) {
// CHECK:             "gpu.barrier"() : () -> ()
// CHECK-NEXT:        scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:               memref.load %[[X]][%{{.*}}] : memref<1x2x6x6xf32>
// CHECK:               memref.store %{{.*}}, %[[TILE]][%{{.*}}, %{{.*}}, %{{.*}}] : memref<1x5x6xf32, 3 : i64>
// CHECK-NEXT:        }
// CHECK-NEXT:        "gpu.barrier"() : () -> ()
// CHECK:             scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:               %[[LOCAL:.*]] = arith.subi %{{.*}}, %[[B]] : index
// CHECK:               memref.load %[[TILE]][%[[LOCAL]], %[[TY]], %{{.*}}] : memref<1x5x6xf32, 3 : i64>
// CHECK-NOT:         memref<1x2x6x6xf32>
// CHECK:           scf.if %[[ROWS_OK]] {
// CHECK:             memref.store %{{.*}}, %[[OUT]]
// CHECK:         }) {sym_name = "conv0", gpu.known_block_size = array<i32: 2, 3, 1>, gpu.kernel}
func.func @staged(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %offset = arith.constant dense<[0, 1, 3]> : tensor<3xi32>
  %reorder = arith.constant dense<[1, 0]> : tensor<2xi32>
  %index = arith.constant dense<[1, 0, 1]> : tensor<3xi32>
  %stride = arith.constant dense<[[0, 0, 0, 1, 1], [1, 2, 2, 2, 3]]> : tensor<2x5xi32>
  %weight = arith.constant dense<1.0> : tensor<3x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5], [3, 4, 5, 7]], taps = 4> schedule <vector_width = 4, unroll_rows = 1, unroll_cols = 1, tile_channels = 1, gpu_block_pixels = 2, gpu_filters_per_item = 2, gpu_workgroup_x = 2, gpu_workgroup_y = 3, gpu_stage_input = 1> strides [1, 1] padding [1, 1] dilation [1, 1] relu : (tensor<1x2x4x4xf32>, tensor<3xi32>, tensor<2xi32>, tensor<3xi32>, tensor<2x5xi32>, tensor<3x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %y : tensor<1x2x4x4xf32>
}

// -----

// pconv.conv2d (not yet packed) is left alone, and the module gets no gpu.container_module.
// CHECK-LABEL: builtin.module {
// CHECK-NEXT:    func.func @not_packed
// CHECK-NEXT:      pconv.conv2d
func.func @not_packed(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// -----

// The verifier checks the GPU fields of the schedule: a work-group of at most 256 items, ...
// CHECK: schedule gpu_workgroup_x = 32 x gpu_workgroup_y = 16 is 512 work-items, more than 256
func.func @too_big(%x: tensor<1x1x5x9xf32>) -> tensor<1x1x2x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <gpu_workgroup_x = 32, gpu_workgroup_y = 16> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x9xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x2x4xf32>
  func.return %y : tensor<1x1x2x4xf32>
}

// -----

// ... positive sizes ...
// CHECK: schedule gpu_block_pixels = 0 must be at least 1
func.func @no_pixels(%x: tensor<1x1x5x9xf32>) -> tensor<1x1x2x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <gpu_block_pixels = 0> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x9xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x2x4xf32>
  func.return %y : tensor<1x1x2x4xf32>
}

// -----

// ... and a work-item of at most 16 filters (the accumulators stay in registers).
// CHECK: schedule gpu_filters_per_item = 17 must be at most 16
func.func @many_filters(%x: tensor<1x1x5x9xf32>) -> tensor<1x1x2x4xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <gpu_filters_per_item = 17> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x1x5x9xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x2x4xf32>
  func.return %y : tensor<1x1x2x4xf32>
}

// -----

// ... and a staged input tile that fits in the 32 KB of local memory OpenCL 1.2 guarantees: 64
// channels of 6 rows x 34 columns (work-groups of 8 x 4 items, 4 columns each, clamped to the
// 32-column output) do not.
// CHECK: gpu_stage_input: the work-group's input tile of 64 channels x 6 rows x 34 columns is 52224 bytes, more than the 32768 bytes of local memory OpenCL 1.2 guarantees; use tile_channels at most 40
func.func @tile_too_big(%x: tensor<1x64x34x34xf32>) -> tensor<1x1x32x32xf32> {
  %offset = arith.constant dense<[0, 1]> : tensor<2xi32>
  %reorder = arith.constant dense<[0]> : tensor<1xi32>
  %index = arith.constant dense<[0]> : tensor<1xi32>
  %stride = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %weight = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <gpu_stage_input = 1> strides [1, 1] padding [0, 0] dilation [1, 1] : (tensor<1x64x34x34xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x32x32xf32>
  func.return %y : tensor<1x1x32x32xf32>
}

// The same rule through a pass option: one line, exit 1.
// OPTION: schedule gpu_workgroup_x = 64 x gpu_workgroup_y = 8 is 512 work-items, more than 256

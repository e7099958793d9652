// The inputs are MLIR that torch-mlir produced for small pruned CNNs (test/frontend/make_inputs.py).

// Infer mode: two pattern-pruned 3x3 convs with padding 1, bias and ReLU become pconv.conv2d;
// the pad, the bias broadcast and the ReLU generic fold into them, and no weight changes.
// RUN: pconv-opt %S/../frontend/inputs/pattern_cnn.mlir -p pconv-from-linalg | filecheck %s --check-prefix=INFER
// INFER-LABEL: func.func @main
// INFER-NOT:     tensor.pad
// INFER-NOT:     linalg.broadcast
// INFER:         %[[W1:.*]] = arith.constant dense<"0x000000000000000000000000000020BF{{.*}}"> : tensor<4x3x3x3xf32>
// INFER:         %[[B1:.*]] = arith.constant dense<[2.500000e-01, -5.000000e-01, 1.000000e+00, 1.000000e+00]> : tensor<4xf32>
// INFER:         %[[C1:.*]] = pconv.conv2d %arg0, %[[W1]], %[[B1]] patterns <{{\[}}[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [1, 3, 4, 5], [3, 4, 5, 7], [4, 5, 7, 8]], taps = 4> kernel_patterns dense<{{\[}}[2, 5, 3], [4, 0, 0], [-1, 4, -1], [1, -1, 2]]> : tensor<4x3xi8> strides [1, 1] padding [1, 1] dilation [1, 1] relu
// INFER:         %[[C2:.*]] = pconv.conv2d %[[C1]], %{{.*}}, %{{.*}} patterns <{{.*}}> kernel_patterns dense<{{\[}}[4, -1, 0, 1], [2, 3, 2, 0], [2, 5, 3, 3], [4, 1, -1, 0], [5, 1, 1, -1]]> : tensor<5x4xi8> strides [1, 1] padding [1, 1] dilation [1, 1] relu
// INFER-NOT:     linalg.generic
// INFER:         func.return %[[C2]]

// The same with the weights as dense_resource blobs, exactly as torch-mlir emits them.
// RUN: pconv-opt %S/../frontend/inputs/pattern_cnn_resource.mlir -p pconv-from-linalg | filecheck %s --check-prefix=RESOURCE
// RESOURCE-LABEL: func.func @main
// RESOURCE:         pconv.conv2d %arg0, %{{.*}}, %{{.*}} patterns <{{.*}}> kernel_patterns dense<{{\[}}[2, 5, 3], [4, 0, 0], [-1, 4, -1], [1, -1, 2]]>
// RESOURCE:         dialect_resources

// Stride 2, no padding, no bias (a linalg.fill of 0.0 as the accumulator), no ReLU.
// RUN: pconv-opt %S/../frontend/inputs/conv_stride2.mlir -p pconv-from-linalg | filecheck %s --check-prefix=STRIDE
// STRIDE-LABEL: func.func @main
// STRIDE-NOT:     linalg.fill
// STRIDE:         pconv.conv2d %arg0, %{{[0-9]+}} patterns <{{.*}}> kernel_patterns dense<{{.*}}> : tensor<6x4xi8> strides [2, 2] padding [0, 0] dilation [1, 1] : (tensor<1x4x7x7xf32>, tensor<6x4x3x3xf32>) -> tensor<1x6x3x3xf32>

// Project mode: one-shot pruning to 2 patterns and 1 kernel in 2; skip_first=false so the only
// conv, which is also the first, loses half its kernels too.
// RUN: pconv-opt %S/../frontend/inputs/conv_stride2.mlir -p 'pconv-from-linalg{mode=project patterns=2 connectivity=2.0 skip_first=false}' | filecheck %s --check-prefix=PROJECT
// PROJECT-LABEL: func.func @main
// PROJECT:         %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<6x4x3x3xf32>
// PROJECT:         pconv.conv2d %arg0, %[[W]] patterns <{{\[}}[{{[0-9, ]+}}], [{{[0-9, ]+}}]], taps = 4> kernel_patterns dense<{{.*}}-1{{.*}}> : tensor<6x4xi8>
// PROJECT-NOT:     linalg.conv_2d_nchw_fchw

// Left alone: a 1x1 conv, a depthwise conv (a linalg.generic) and a 3x3 conv whose weight is
// an argument, not a constant.
// RUN: pconv-opt %S/../frontend/inputs/leave_alone.mlir -p pconv-from-linalg | filecheck %s --check-prefix=ALONE
// ALONE-LABEL: func.func @main
// ALONE:         linalg.conv_2d_nchw_fchw {{.*}} tensor<4x4x1x1xf32>
// ALONE:         linalg.generic
// ALONE:         linalg.conv_2d_nchw_fchw {{.*}} ins(%{{.*}}, %arg1 : tensor<1x4x7x7xf32>, tensor<2x4x3x3xf32>)
// ALONE-NOT:     pconv

// A dense (unpruned) conv in infer mode is a diagnostic naming the conv and the kernel, and
// converts with the dense 9-tap set when asked for taps=9.
// RUN: not pconv-opt %S/inputs/dense_conv.mlir -p pconv-from-linalg 2>&1 | filecheck %s --check-prefix=DIAG
// DIAG: inputs/dense_conv.mlir:13:5: error: 'linalg.conv_2d_nchw_fchw' op 3x3 conv #0 (2x2x3x3): kernel (0, 0) has 6 nonzero taps [1, 2, 3, 4, 5, 7], a pattern keeps 4
// RUN: pconv-opt %S/inputs/dense_conv.mlir -p 'pconv-from-linalg{taps=9}' | filecheck %s --check-prefix=DENSE
// DENSE: pconv.conv2d %arg0, %{{.*}}, %{{.*}} patterns <{{\[}}[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9> kernel_patterns dense<0> : tensor<2x2xi8>

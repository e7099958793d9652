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

// A 1x1 conv becomes a pconv.conv2d with the 1x1 dense set; its all-zero kernel (3, 1) is a
// removed one (-1). Left alone: a depthwise conv (a linalg.generic) and a 3x3 conv whose
// weight is an argument, not a constant.
// RUN: pconv-opt %S/../frontend/inputs/leave_alone.mlir -p pconv-from-linalg | filecheck %s --check-prefix=ALONE
// ALONE-LABEL: func.func @main
// ALONE:         pconv.conv2d %arg0, %{{.*}} patterns <{{\[}}[0]], taps = 1, window = [1, 1]> kernel_patterns dense<{{\[}}[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, -1, 0, 0]]>
// ALONE:         linalg.generic
// ALONE:         linalg.conv_2d_nchw_fchw {{.*}} ins(%{{.*}}, %arg1 : tensor<1x4x7x7xf32>, tensor<2x4x3x3xf32>)
// ALONE-NOT:     pconv
// With dense=false only pattern layers are converted: the 1x1 conv stays linalg.
// RUN: pconv-opt %S/../frontend/inputs/leave_alone.mlir -p 'pconv-from-linalg{dense=false}' | filecheck %s --check-prefix=ONLY
// ONLY-NOT:     pconv.conv2d

// A dense (unpruned) 3x3 conv in infer mode becomes a dense layer: the 9-tap set, every kernel
// kept (it used to stop the whole compilation); taps=9 asks for that for every 3x3 conv.
// RUN: pconv-opt %S/inputs/dense_conv.mlir -p pconv-from-linalg | filecheck %s --check-prefix=DENSE
// RUN: pconv-opt %S/inputs/dense_conv.mlir -p 'pconv-from-linalg{taps=9}' | filecheck %s --check-prefix=DENSE
// DENSE: pconv.conv2d %arg0, %{{.*}}, %{{.*}} patterns <{{\[}}[0, 1, 2, 3, 4, 5, 6, 7, 8]], taps = 9> kernel_patterns dense<0> : tensor<2x2xi8>

// The epilogue torch-mlir emits for a ResNet block and a ReLU6 (MobileNet) folds into the conv:
// the shortcut add becomes the residual operand, a max with a rank-0 zero then a min with a
// rank-0 six become relu6.
// RUN: pconv-opt %S/inputs/epilogue.mlir -p pconv-from-linalg | filecheck %s --check-prefix=EPILOGUE
// EPILOGUE-LABEL: func.func @main
// EPILOGUE:         %[[A:.*]] = pconv.conv2d %arg0, %{{.*}}, %{{.*}} patterns <{{.*}}taps = 9> {{.*}} padding [1, 1] dilation [1, 1] relu6 :
// EPILOGUE:         %[[B:.*]] = pconv.conv2d %[[A]], %{{.*}}, %{{.*}} residual %arg0 : tensor<1x4x5x5xf32> patterns <{{\[}}[0]], taps = 1, window = [1, 1]> {{.*}} relu :
// EPILOGUE-NOT:     linalg.generic
// EPILOGUE:         func.return %[[B]]

// Two convs meet in one residual add + ReLU (a ResNet downsampling block): the add and the
// ReLU fold into one of them, the shortcut conv stays a plain layer.
// RUN: pconv-opt %S/inputs/downsample.mlir -p pconv-from-linalg | filecheck %s --check-prefix=DOWN
// DOWN:      %[[PRE:.*]] = pconv.conv2d %arg0, {{.*}} strides [2, 2] padding [1, 1] dilation [1, 1] :
// DOWN-NEXT: %[[SHORT:.*]] = pconv.conv2d %arg0, {{.*}} strides [2, 2] padding [0, 0] dilation [1, 1] :
// DOWN-NEXT: %[[OUT:.*]] = pconv.conv2d %[[PRE]], {{.*}} residual %[[SHORT]] : {{.*}} relu :
// DOWN-NEXT: func.return %[[OUT]]
// DOWN-NOT:  linalg.generic

// pointwise=false: the 1x1 convs that keep every kernel stay linalg (upstream vectorises them).
// RUN: pconv-opt %S/inputs/downsample.mlir -p 'pconv-from-linalg{pointwise=false}' | filecheck %s --check-prefix=POINT
// POINT-COUNT-1: pconv.conv2d
// POINT-COUNT-2: linalg.conv_2d_nchw_fchw
// POINT-NOT:     pconv.conv2d

// RUN: not pconv-opt %s -p convert-pconv-to-loops 2>&1 | filecheck %s --check-prefix=ERR

// specialize = 1 reads the FKW arrays at compile time: arrays that are arguments are an error.
// ERR: convert-pconv-to-loops-errors.mlir:[[# @LINE + 2]]:3: error: 'pconv.fkw_conv2d' op specialize = 1 needs the FKW arrays as constants
func.func @specialized_needs_constants(%x: tensor<1x1x4x4xf32>, %offset: tensor<2xi32>, %reorder: tensor<1xi32>, %index: tensor<1xi32>, %stride: tensor<1x2xi32>, %weight: tensor<1x4xf32>) -> tensor<1x1x4x4xf32> {
  %y = pconv.fkw_conv2d %x, %offset, %reorder, %index, %stride, %weight patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4, specialize = 1> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x1x4x4xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}

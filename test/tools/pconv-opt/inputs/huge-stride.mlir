// A stride that no i64 holds.
func.func @f(%x: tensor<1x2x6x6xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<0> : tensor<1x2xi8> strides [1, 99999999999999999999999] padding [1, 1] dilation [1, 1] : (tensor<1x2x6x6xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32>
  func.return %y : tensor<1x1x6x6xf32>
}

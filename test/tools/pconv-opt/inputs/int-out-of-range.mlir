// 300 does not fit in i8 (line 3), nor 100000 in kernel_patterns' i8 (line 7).
func.func @constant() -> tensor<2xi8> {
  %c = arith.constant dense<[1, 300]> : tensor<2xi8>
  func.return %c : tensor<2xi8>
}
func.func @ids(%x: tensor<1x2x6x6xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, 100000]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x6x6xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x6x6xf32>
  func.return %y : tensor<1x1x6x6xf32>
}

// Every verifier rule of the pconv dialect, one failing case each.
// RUN: pconv-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: pattern_set taps = 10 is outside 1..9
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 10> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern_set holds no pattern
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern 0 has tap 9 outside the 3x3 window 0..8
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 9]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern 0 [1, 4, 4, 5] repeats a tap
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 4, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern 1 has 5 taps, the set allows 4
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5], [0, 1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern 0 [0, 1, 2, 3] lacks the centre tap 4
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[0, 1, 2, 3]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: pattern 1 [3, 1, 4, 5] duplicates pattern 0
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5], [3, 1, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: input has a dynamic shape tensor<1x2x?x8xf32>; pconv needs static shapes
func.func @f(%x: tensor<1x2x?x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x?x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: input must be 4-D NCHW, got tensor<2x8x8xf32>
func.func @f(%x: tensor<2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: weight must be FxCx3x3 (the pattern set's window), got 1x2x5x5
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x5x5xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x5x5xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: weight has 2 input channels but the input has 3
func.func @f(%x: tensor<1x3x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x3x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: strides has 3 values, expected 2 (height, width)
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: strides value 0 is below 1
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [0, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: padding value -1 is below 0
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [-1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: dilation value 0 is below 1
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 0] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: a 2x2 input is too small for this 3x3 window
func.func @f(%x: tensor<1x2x2x2xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x1x1xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [0, 0] dilation [1, 1] : (tensor<1x2x2x2xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x1x1xf32>
  func.return %y : tensor<1x1x1x1xf32>
}

// -----

// CHECK: result shape 1x1x8x8 does not match the expected 1x1x4x4
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [2, 2] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: bias shape 2 does not match 1 filters
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>, %b: tensor<2xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w, %b patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>, tensor<2xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: kernel_patterns must hold integers
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0.0, -1.0]]> : tensor<1x2xf32> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: kernel_patterns shape 2x1 does not match the 1x2 kernels of the weight
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0], [-1]]> : tensor<2x1xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: kernel (0, 1) has pattern id 1, the set has 1 patterns (ids -1..0)
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, 1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: kernel (0, 0) has pattern id -2, the set has 1 patterns (ids -1..0)
func.func @f(%x: tensor<1x2x8x8xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32> {
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[-2, 0]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: weight (0, 0) is nonzero at tap 0 outside pattern 0
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %w = arith.constant dense<[[[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]> : tensor<1x2x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: weight (0, 1) is nonzero at tap 4 outside a pruned kernel
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %w = arith.constant dense<[[[[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]]]> : tensor<1x2x3x3xf32>
  %y = pconv.conv2d %x, %w patterns <[[1, 3, 4, 5]], taps = 4> kernel_patterns dense<[[0, -1]]> : tensor<1x2xi8> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: schedule unroll_rows = 0 must be at least 1
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <unroll_rows = 0> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: schedule vector_width = 6 is not a power of two
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 6> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: offset must hold i32, got i64
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi64>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi64>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: reorder must be 1-D, got tensor<1x1xi32>
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[[0]]> : tensor<1x1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1x1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: offset has shape 3, expected 2 (filters + 1)
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1, 1]> : tensor<3xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<3xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: index must be 1-D, got tensor<1x1xi32>
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[[0]]> : tensor<1x1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1x1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: stride has shape 1x3, expected 1x2 (filters x (patterns + 1))
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1, 1]]> : tensor<1x3xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x3xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: weight has shape 1x9, expected 1x4 (kernels x taps)
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x9xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x9xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: reorder [1] is not a permutation of 0..0
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[1]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: offset [0, 2] must rise from 0 to the 1 kernels
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 2]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: index[0] = 2 is not an input channel 0..1
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[2]> : tensor<1xi32>
  %st = arith.constant dense<[[0, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: stride row 0 [1, 1] must rise from offset[0] = 0 to offset[1] = 1
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 1]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[0]> : tensor<1xi32>
  %st = arith.constant dense<[[1, 1]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<1x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>, tensor<1x2xi32>, tensor<1x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

// -----

// CHECK: filter 0 lists an input channel twice in index
func.func @f(%x: tensor<1x2x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %off = arith.constant dense<[0, 2]> : tensor<2xi32>
  %ro = arith.constant dense<[0]> : tensor<1xi32>
  %idx = arith.constant dense<[1, 1]> : tensor<2xi32>
  %st = arith.constant dense<[[0, 2]]> : tensor<1x2xi32>
  %fw = arith.constant dense<1.0> : tensor<2x4xf32>
  %y = pconv.fkw_conv2d %x, %off, %ro, %idx, %st, %fw patterns <[[1, 3, 4, 5]], taps = 4> schedule <vector_width = 4> strides [1, 1] padding [1, 1] dilation [1, 1] : (tensor<1x2x8x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<2xi32>, tensor<1x2xi32>, tensor<2x4xf32>) -> tensor<1x1x8x8xf32>
  func.return %y : tensor<1x1x8x8xf32>
}

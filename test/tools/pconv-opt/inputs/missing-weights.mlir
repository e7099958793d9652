// A conv whose weight is a dense_resource with no data (the resources section was not printed),
// without locations.
builtin.module {
  func.func @main(%arg0: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %0 = arith.constant 0.000000e+00 : f32
    %1 = arith.constant dense_resource<torch_tensor_2_2_3_3_torch.float32> : tensor<2x2x3x3xf32>
    %2 = arith.constant dense_resource<torch_tensor_2_torch.float32> : tensor<2xf32>
    %3 = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
    ^bb0(%arg6: index, %arg7: index, %arg8: index, %arg9: index):
      tensor.yield %0 : f32
    } : tensor<1x2x4x4xf32> to tensor<1x2x6x6xf32>
    %4 = tensor.empty() : tensor<1x2x4x4xf32>
    %5 = linalg.broadcast ins(%2:tensor<2xf32>) outs(%4:tensor<1x2x4x4xf32>) dimensions = [0, 2, 3]
    %6 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%3, %1 : tensor<1x2x6x6xf32>, tensor<2x2x3x3xf32>) outs(%5 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    func.return %6 : tensor<1x2x4x4xf32>
  }
}

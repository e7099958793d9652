// A linalg named op whose ins/outs were lost.
func.func @f(%x: tensor<1x4x5x5xf32>) {
  %y = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} -> tensor<1x4x5x5xf32>
  func.return
}

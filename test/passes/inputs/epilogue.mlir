// torch-mlir's linalg for a conv3x3-ReLU6, conv1x1, shortcut add, ReLU block (see test/passes/pconv-from-linalg.mlir).
builtin.module {
  func.func @main(%arg0: tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32> {
    %0 = arith.constant 0.000000e+00 : f32
    %1 = arith.constant dense<6.000000e+00> : tensor<f32>
    %2 = arith.constant dense<0.000000e+00> : tensor<f32>
    %3 = arith.constant dense_resource<c2_bias> : tensor<4xf32>
    %4 = arith.constant dense_resource<c2_weight> : tensor<4x4x1x1xf32>
    %5 = arith.constant dense_resource<c1_weight> : tensor<4x4x3x3xf32>
    %6 = arith.constant dense_resource<c1_bias> : tensor<4xf32>
    %7 = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
    ^bb0(%arg22: index, %arg23: index, %arg24: index, %arg25: index):
      tensor.yield %0 : f32
    } : tensor<1x4x5x5xf32> to tensor<1x4x7x7xf32>
    %8 = tensor.empty() : tensor<1x4x5x5xf32>
    %9 = linalg.broadcast ins(%6:tensor<4xf32>) outs(%8:tensor<1x4x5x5xf32>) dimensions = [0, 2, 3]
    %10 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%7, %5 : tensor<1x4x7x7xf32>, tensor<4x4x3x3xf32>) outs(%9 : tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
    %11 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> ()>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%10, %2 : tensor<1x4x5x5xf32>, tensor<f32>) outs(%8 : tensor<1x4x5x5xf32>) {
    ^bb0(%arg14: f32, %arg15: f32, %arg16: f32):
      %12 = arith.cmpf ogt, %arg14, %arg15 : f32
      %13 = arith.select %12, %arg14, %arg15 : f32
      linalg.yield %13 : f32
    } -> tensor<1x4x5x5xf32>
    %14 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> ()>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%1, %11 : tensor<f32>, tensor<1x4x5x5xf32>) outs(%8 : tensor<1x4x5x5xf32>) {
    ^bb0(%arg11: f32, %arg12: f32, %arg13: f32):
      %15 = arith.cmpf olt, %arg11, %arg12 : f32
      %16 = arith.select %15, %arg11, %arg12 : f32
      linalg.yield %16 : f32
    } -> tensor<1x4x5x5xf32>
    %17 = linalg.broadcast ins(%3:tensor<4xf32>) outs(%8:tensor<1x4x5x5xf32>) dimensions = [0, 2, 3]
    %18 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%14, %4 : tensor<1x4x5x5xf32>, tensor<4x4x1x1xf32>) outs(%17 : tensor<1x4x5x5xf32>) -> tensor<1x4x5x5xf32>
    %19 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%18, %arg0 : tensor<1x4x5x5xf32>, tensor<1x4x5x5xf32>) outs(%8 : tensor<1x4x5x5xf32>) {
    ^bb0(%arg3: f32, %arg4: f32, %arg5: f32):
      %20 = arith.addf %arg3, %arg4 : f32
      linalg.yield %20 : f32
    } -> tensor<1x4x5x5xf32>
    %21 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%19 : tensor<1x4x5x5xf32>) outs(%8 : tensor<1x4x5x5xf32>) {
    ^bb0(%arg1: f32, %arg2: f32):
      %22 = arith.cmpf ugt, %arg1, %0 : f32
      %23 = arith.select %22, %arg1, %0 : f32
      linalg.yield %23 : f32
    } -> tensor<1x4x5x5xf32>
    func.return %21 : tensor<1x4x5x5xf32>
  }
}

{-#
  dialect_resources: {
    builtin: {
      c1_bias: "0x04000000445019BE80D1A1BD686AE83DAB9C8DBA",c1_weight: "0x04000000568DA3BA281BB73D64770CBE5633FBBD4E7783BDE60F373DAB6958BBDF51073E965472BC66A4343D904F4EBD4B3006BDD00B23BE180FE2BD9BB48CBDAB4ECA3BEBF0863DCBCECC3D6667E7BD53A394BDCBF4773D34B80D3E307E0CBD7B6CFF3DAB11DCBCB678903CDC881A3E8A521EBEDEE1D6BDD6D32CBD3E0D85BDC674133ECE3EDDBD80209DBD2378EEBDFAD61FBE0640C7BD6AB4123E284F983D566FA53D2B9C0F3CF8FEAEBD56FEE63CBF591FBECEA2F6BDB3F7AFBD335CD73D8821C83D306197BDD60EC5BBAB4DDA3D57AA293E1878873D6072B83CFEDBE43D56FAC8BDF66BFE3C9E5104BECB92ECBDC353B0BDB3719A3D5045893D8E30CABD0B3D4E3DE861BB3D2B54ACBCAB85D03B562D1E3D56C1D33D86DF233E0F8503BE3B2D7ABDBB25863DE0670D3EF083143EC296163E50DC073DA66814BE6B337B3C3B8AD5BDB30D1FBED4A2173EA0C4013EAA3E2ABE608DFF3C0B01E6BC4BAEE0BC683F9CBD0843833D462CCABD7B427A3D739DAC3DD059F43DB6417F3D32EA28BE006CDDBDD06EAA3D10E20E3D642205BEE08BC4BDF78D203E1BFFE53D76D494BD1BD12BBDA69322BE565344BBA68500BE17A503BE6B7516BC80FFCC3C4EC98BBD208ACA3DF6B6CFBD9BDB1A3E6BEAE93D98EB0FBEB0E729BD006EF63B2034C73C36E9213DE8F2853D4091233CDE8BA6BDE383A13D3AB623BE804FCABD50E42ABD9E44A6BDD0D16EBDD2E10BBEAB3611BDA6EC113DF35DDEBDD6220CBC0058F43D4B5B8CBC56C8973B56926BBCB6280A3D8008D93DD2A9213E08C4D83D8308223E807C45BC",c2_bias: "0x04000000283CA0BD80E1D33BB89668BEB8DE403E",c2_weight: "0x04000000DC7C7EBE022DC4BE0094EFBEEC10D8BE70B4CFBD56648C3E74678A3E02E5F6BE2EB09F3E8A52C8BEF07BD8BD1C9A4FBEF03CC5BD100EC9BDBAB8E5BE440ADDBE"
    }
  }
#-}

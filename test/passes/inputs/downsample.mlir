// Downsample of test_from_linalg.py: relu(conv(pre(x)) + shortcut(x)), imported by torch-mlir.
builtin.module {
  func.func @main(%arg0: tensor<1x3x7x5xf32>) -> tensor<1x6x4x3xf32> {
    %0 = arith.constant 0.000000e+00 : f32
    %1 = arith.constant dense_resource<shortcut_bias> : tensor<6xf32>
    %2 = arith.constant dense_resource<shortcut_weight> : tensor<6x3x1x1xf32>
    %3 = arith.constant dense_resource<conv_bias> : tensor<6xf32>
    %4 = arith.constant dense_resource<conv_weight> : tensor<6x5x1x1xf32>
    %5 = arith.constant dense_resource<pre_weight> : tensor<5x3x3x3xf32>
    %6 = arith.constant dense_resource<pre_bias> : tensor<5xf32>
    %7 = tensor.pad %arg0 low[0, 0, 1, 1] high[0, 0, 1, 1] {
    ^bb0(%arg21: index, %arg22: index, %arg23: index, %arg24: index):
      tensor.yield %0 : f32
    } : tensor<1x3x7x5xf32> to tensor<1x3x9x7xf32>
    %8 = tensor.empty() : tensor<1x5x4x3xf32>
    %9 = linalg.broadcast ins(%6:tensor<5xf32>) outs(%8:tensor<1x5x4x3xf32>) dimensions = [0, 2, 3]
    %10 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} ins(%7, %5 : tensor<1x3x9x7xf32>, tensor<5x3x3x3xf32>) outs(%9 : tensor<1x5x4x3xf32>) -> tensor<1x5x4x3xf32>
    %11 = tensor.empty() : tensor<1x6x4x3xf32>
    %12 = linalg.broadcast ins(%3:tensor<6xf32>) outs(%11:tensor<1x6x4x3xf32>) dimensions = [0, 2, 3]
    %13 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} ins(%10, %4 : tensor<1x5x4x3xf32>, tensor<6x5x1x1xf32>) outs(%12 : tensor<1x6x4x3xf32>) -> tensor<1x6x4x3xf32>
    %14 = linalg.broadcast ins(%1:tensor<6xf32>) outs(%11:tensor<1x6x4x3xf32>) dimensions = [0, 2, 3]
    %15 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} ins(%arg0, %2 : tensor<1x3x7x5xf32>, tensor<6x3x1x1xf32>) outs(%14 : tensor<1x6x4x3xf32>) -> tensor<1x6x4x3xf32>
    %16 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%13, %15 : tensor<1x6x4x3xf32>, tensor<1x6x4x3xf32>) outs(%11 : tensor<1x6x4x3xf32>) {
    ^bb0(%arg3: f32, %arg4: f32, %arg5: f32):
      %17 = arith.addf %arg3, %arg4 : f32
      linalg.yield %17 : f32
    } -> tensor<1x6x4x3xf32>
    %18 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%16 : tensor<1x6x4x3xf32>) outs(%11 : tensor<1x6x4x3xf32>) {
    ^bb0(%arg1: f32, %arg2: f32):
      %19 = arith.cmpf ugt, %arg1, %0 : f32
      %20 = arith.select %19, %arg1, %0 : f32
      linalg.yield %20 : f32
    } -> tensor<1x6x4x3xf32>
    func.return %18 : tensor<1x6x4x3xf32>
  }
}

{-#
  dialect_resources: {
    builtin: {
      conv_bias: "0x040000001C00D0BE839994BEF78DD73DAAB2963EDC79B43C08EB51BE",
      conv_weight: "0x04000000D018D23D87F5D9BD0D2AFB3DA020BBBC13A1433E9D0CDA3D2D8952BDCE1DB9BE961CD13D68B8CABE83BF703D2A79F33C4867C9BD163BBB3EC97EF43C90E63D3EF8CC413E211487BEEE0C30BE3435DC3E3446E0BEDED2F8BC2B2B11BDB869A23EA9252EBDCB2BF13D70DDAFBC803680BEA5C781BE697C5EBE",
      pre_bias: "0x040000007E1CBDBDA319603D14A4D5BD2DFF9F3D85B6163E",
      pre_weight: "0x0400000058E7C73D3D6D28BE9398663DC15B3D3E950B2F3E773346BBB9C1823D5DDC38BE904D7BBD7432C03DC08533BEE2AF2B3EE79801BE3A45793D1CBEEEBB60E80A3D71BE983CF53938BE5A5229BD8C23F9BDF889273E5E85C1BC983944BE65EB3E3D8E29AB3D6C70B0BD9CE493BCCD63AA3D343CF5BD0359D0BD851598BC76640ABE853CF23DADF2803C77D0EB3D0001D33D99DF17BEEFA9F5BDA6CA06BE3B5A7DBD0E0790BDD207FEBC02A53EBE7071A63DD498DF3DA6D4793D2775FA3D4C0B143EA38A42BE6625EE3CA9CD363EB0D10EBEE07DAFBD480C26BCC42FF5BD5B9314BDCDF7E8BC2B952F3E714346BCD9BAD53D084F103EF098AF3DCA602BBE42B4133E01F5013E65450DBED6898CBD8621063E58923FBE66B92CBEA99005BE41A0753D15F4A0BD08C12FBE99C7983D305DC73D0FA1933DDFD728BEB7E33F3E0BE76DBCB6903BBEFC55EDBC65B7003E0D83B53DB0CA06BBEFEC0A3E35CD33BE3CBC083EF99E433E4BA9EFBDD114293DA13AFEBC135D26BEE323DDBAA91584BD495328BE15990FBEDF99893B27B2363E311D8D3D011E03BE87ED073ED768813C8B9040BE7C91153C7003FD3D4CC1E7BD451411BCB85DC4BDE7631BBE50F4DFBDC9509E3CB2C6FE3DAF7A12BD003A31BE0EEDD7BA60652BBE2438393C7E1C123E3F36A83DA811F1BD64F82DBDAFD29D3DA4D8553DA21C39BEE5C9E5BDFD638BBD7ED7903DE614303E17A2AF3DAEE3943D913927BEB208FF3DDC278D3DB57A7DBD",
      shortcut_bias: "0x040000004C2410BE918DD2BCF94AF0BD3FF6AB3E0C51833DC1CB083F",
      shortcut_weight: "0x04000000ADE9813EB4F262BEA4F602BE490DA2BEF0A339BEF7F308BF0B437C3EDFE1653EF1DDEA3DBC22913E7C927A3E2841D13CBF727A3DB994343DB7BB9D3E1192C63E4749D43E5655AB3E"
    }
  }
#-}

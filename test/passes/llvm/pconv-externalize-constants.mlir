// RUN: pconv-opt %s -p 'pconv-externalize-constants{threshold=32}' -t 'llvm-ir' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-externalize-constants{threshold=32}' --pconv-elide-resources-over=16 -o %t.mlir
// RUN: not pconv-opt %t.mlir -t 'llvm-ir' 2>&1 | filecheck %s --check-prefix=ELIDED

// Through mlir-opt-22 and mlir-translate-22, an externalized constant is an external symbol
// with no data in the LLVM IR (the back end links the bytes in); the small one stays inline.
// CHECK:     @pconv_blob_w = external constant [4 x [4 x float]], align 64
// CHECK-NOT: 0x
// CHECK-NOT: float 1.600000e+01
// CHECK:     define float @f(
// CHECK:     getelementptr {{.*}} @pconv_blob_w

// A file printed with the large blob elided parses, and lowering it says where and what to do.
// ELIDED: .tmp.mlir:2:3: error: dense_resource<blob_w> has no data in the context the module is lowered in ({{.*}}print it in full, or compile from the model)
func.func @f(%i: index) -> f32 {
  %w = arith.constant dense_resource<blob_w> : tensor<4x4xf32>
  %s = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %e = tensor.extract %w[%i, %i] : tensor<4x4xf32>
  %j = arith.constant 1 : index
  %t = tensor.extract %s[%j] : tensor<2xf32>
  %r = arith.addf %e, %t : f32
  func.return %r : f32
}

{-#
  dialect_resources: {
    builtin: {
      blob_w: "0x040000000000803F0000004000004040000080400000A0400000C0400000E0400000004100001041000020410000304100004041000050410000604100007041000080410000"
    }
  }
#-}

// RUN: pconv-opt %s -p 'pconv-externalize-constants{threshold=32}' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-externalize-constants{threshold=32}' | pconv-opt | filecheck %s
// RUN: pconv-opt %s -p 'pconv-externalize-constants{threshold=32}' --pconv-elide-resources-over=16 | filecheck %s --check-prefix=ELIDED
// RUN: not pconv-opt %s -p 'pconv-externalize-constants{threshold=-1}' 2>&1 | filecheck %s --check-prefix=BAD

// The globals come first, in the order their constants are met; each is public, constant,
// 64-byte aligned, and keeps its data in pconv.external_data (a dense_resource).
// CHECK:         "memref.global"() <{sym_name = "pconv_blob_w", type = memref<4x4xf32>, initial_value, sym_visibility = "public", constant, alignment = 64 : i64}> {pconv.external_data = dense_resource<blob_w> : tensor<4x4xf32>}
// CHECK-NEXT:    "memref.global"() <{sym_name = "pconv_table", type = memref<16xi32>, initial_value, sym_visibility = "public", constant, alignment = 64 : i64}> {pconv.external_data = dense_resource<table> : tensor<16xi32>}
// CHECK-NOT:     memref.global

// A dense_resource of 64 bytes: read through the global.
// CHECK-LABEL: func.func @resource
// CHECK-NEXT:    %[[G:.*]] = memref.get_global @pconv_blob_w : memref<4x4xf32>
// CHECK-NEXT:    %[[T:.*]] = bufferization.to_tensor %[[G]] restrict : memref<4x4xf32> to tensor<4x4xf32>
// CHECK-NEXT:    tensor.extract %[[T]]
func.func @resource(%i: index) -> f32 {
  %w = arith.constant dense_resource<blob_w> : tensor<4x4xf32>
  %e = tensor.extract %w[%i, %i] : tensor<4x4xf32>
  func.return %e : f32
}

// A dense<...> of 64 bytes becomes a blob; the equal constant in @same shares its global.
// CHECK-LABEL: func.func @dense
// CHECK-NEXT:    memref.get_global @pconv_table : memref<16xi32>
// CHECK-NEXT:    bufferization.to_tensor
// CHECK-NOT:     arith.constant
func.func @dense(%i: index) -> i32 {
  %table = arith.constant dense<[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]> : tensor<16xi32>
  %e = tensor.extract %table[%i] : tensor<16xi32>
  func.return %e : i32
}

// CHECK-LABEL: func.func @same
// CHECK-NEXT:    memref.get_global @pconv_table : memref<16xi32>
func.func @same(%i: index) -> i32 {
  %t = arith.constant dense<[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]> : tensor<16xi32>
  %e = tensor.extract %t[%i] : tensor<16xi32>
  func.return %e : i32
}

// Left alone: constants of at most 32 bytes (dense or dense_resource), splats of any size,
// scalars.
// CHECK-LABEL: func.func @leave_alone
// CHECK-NEXT:    arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-NEXT:    arith.constant dense_resource<small> : tensor<2xf32>
// CHECK-NEXT:    arith.constant dense<0.000000e+00> : tensor<64x64xf32>
// CHECK-NEXT:    arith.constant 3.000000e+00 : f32
// CHECK-NOT:     memref.get_global
func.func @leave_alone(%i: index) -> f32 {
  %a = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %b = arith.constant dense_resource<small> : tensor<2xf32>
  %z = arith.constant dense<0.0> : tensor<64x64xf32>
  %c = arith.constant 3.0 : f32
  %x = tensor.extract %a[%i] : tensor<2xf32>
  %y = tensor.extract %b[%i] : tensor<2xf32>
  %w = tensor.extract %z[%i, %i] : tensor<64x64xf32>
  %s = arith.addf %x, %y : f32
  %t = arith.addf %s, %w : f32
  %u = arith.addf %t, %c : f32
  func.return %u : f32
}

// The data stays with the module; with the elision option only the small blob is printed.
// CHECK:         dialect_resources
// CHECK-DAG:     blob_w: "0x04000000
// CHECK-DAG:     small: "0x04000000
// CHECK-DAG:     table: "0x04000000
// ELIDED:        dialect_resources
// ELIDED-NEXT:   builtin: {
// ELIDED-NEXT:   small: "0x040000000000803F00000040"
// ELIDED:        // 2 dense_resource blob(s) of more than 16 bytes elided
// BAD: error: bad options for 'pconv-externalize-constants': threshold = -1 is negative

{-#
  dialect_resources: {
    builtin: {
      blob_w: "0x040000000000803F0000004000004040000080400000A0400000C0400000E0400000004100001041000020410000304100004041000050410000604100007041000080410000",
      small: "0x040000000000803F00000040"
    }
  }
#-}

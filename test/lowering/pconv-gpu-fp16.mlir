// RUN: pconv-opt %s -p 'pconv-lower-to-gpu,pconv-gpu-fp16' | filecheck %s
// RUN: pconv-opt %s -p 'pconv-lower-to-gpu,pconv-gpu-fp16{accumulate=f32}' | filecheck %s --check-prefix=ACC32
// RUN: pconv-opt %s -p 'pconv-lower-to-gpu,pconv-gpu-fp16' -t 'opencl{fp16=true}' | %clang -x cl -cl-std=CL1.2 -fsyntax-only -Werror -
// RUN: pconv-opt %s -p 'pconv-lower-to-gpu,pconv-gpu-fp16{accumulate=f32}' -t 'opencl{fp16_emulation=true}' | %clang -x cl -cl-std=CL1.2 -fsyntax-only -Werror -Xclang -cl-ext=-cl_khr_fp16 -
// RUN: pconv-opt %s -p 'pconv-lower-to-gpu,pconv-gpu-fp16' -t spirv | filecheck %s --check-prefix=SPIRV
// RUN: not pconv-opt %s -p 'pconv-gpu-fp16{accumulate=f8}' 2>&1 | filecheck %s --check-prefix=BAD
// REQUIRES: clang, mlir-opt

// A zero pad, a ReLU and a linear layer, lowered to kernels and then made half: every f32
// buffer of the host function and the kernels is f16; with accumulate=f16 the kernels compute
// in half, with accumulate=f32 they extend each load and truncate each store.

// CHECK:       func.func @net(%{{.*}}: memref<1x2x5x3xf16>, %{{.*}}: memref<4x10xf16>) -> memref<1x4xf16> {
// CHECK:         memref.alloc() {alignment = 64 : i64} : memref<1x2x7x5xf16>
// CHECK-NOT:     xf32>
// CHECK:         arith.maximumf %{{.*}}, %{{.*}} : f16
// CHECK-NOT:     f32

// ACC32:       func.func @net(%{{.*}}: memref<1x2x5x3xf16>, %{{.*}}: memref<4x10xf16>) -> memref<1x4xf16> {
// ACC32-NOT:     xf32>
// ACC32:         %[[H:.*]] = memref.load %{{.*}} : memref<1x2x7x5xf16>
// ACC32-NEXT:    %[[F:.*]] = arith.extf %[[H]] : f16 to f32
// ACC32-NEXT:    %[[R:.*]] = arith.maximumf %[[F]], %{{.*}} : f32
// ACC32-NEXT:    %[[T:.*]] = arith.truncf %[[R]] : f32 to f16
// ACC32-NEXT:    memref.store %[[T]], %{{.*}} : memref<1x2x7x5xf16>

// SPIRV:       spirv.module @__spv__net_kernels Physical64 OpenCL requires #spirv.vce<v1.0, [{{.*}}Float16{{.*}}]

// BAD: accumulate = 'f8' is not one of f16, f32
func.func @net(%x: tensor<1x2x5x3xf32>, %w: tensor<4x10xf32>) -> tensor<1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %p = tensor.pad %x low[0, 0, 1, 1] high[0, 0, 1, 1] {
  ^bb0(%a: index, %b: index, %c: index, %d: index):
    tensor.yield %zero : f32
  } : tensor<1x2x5x3xf32> to tensor<1x2x7x5xf32>
  %e = tensor.empty() : tensor<1x2x7x5xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%p : tensor<1x2x7x5xf32>) outs(%e : tensor<1x2x7x5xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %zero : f32
    linalg.yield %m : f32
  } -> tensor<1x2x7x5xf32>
  %v = tensor.extract_slice %r[0, 0, 0, 0] [1, 2, 1, 5] [1, 1, 1, 1] : tensor<1x2x7x5xf32> to tensor<1x2x5xf32>
  %s = tensor.collapse_shape %v [[0], [1, 2]] : tensor<1x2x5xf32> into tensor<1x10xf32>
  %wt = tensor.empty() : tensor<10x4xf32>
  %t = linalg.transpose ins(%w : tensor<4x10xf32>) outs(%wt : tensor<10x4xf32>) permutation = [1, 0]
  %o = tensor.empty() : tensor<1x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%o : tensor<1x4xf32>) -> tensor<1x4xf32>
  %y = linalg.matmul ins(%s, %t : tensor<1x10xf32>, tensor<10x4xf32>) outs(%f : tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %y : tensor<1x4xf32>
}

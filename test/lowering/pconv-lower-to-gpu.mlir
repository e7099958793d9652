// RUN: pconv-opt %s -p pconv-lower-to-gpu | filecheck %s
// RUN: pconv-opt %s -p pconv-lower-to-gpu -t opencl | filecheck %s --check-prefix=CL
// RUN: pconv-opt %s -p pconv-lower-to-gpu -t opencl | %clang -x cl -cl-std=CL1.2 -fsyntax-only -Werror -
// RUN: pconv-opt %s -p pconv-lower-to-gpu -t opencl-launch | filecheck %s --check-prefix=LAUNCH
// RUN: pconv-opt %s -p pconv-lower-to-gpu -t spirv | filecheck %s --check-prefix=SPIRV
// REQUIRES: clang, mlir-opt

// A small network in torch-mlir's ops: a zero pad, a ReLU, a flatten of a slice, a linear
// layer. Every layer becomes a kernel of one gpu.module, a work-item per output value in
// work-groups of 64 (the loops flattened); the host function holds buffers, views and
// launches only. The pad is a fill kernel and a copy kernel into the padded
// buffer's interior (a subview, passed with its offset in its type: no host copy).

// CHECK:       func.func @net(%{{.*}}: memref<1x2x5x3xf32>, %{{.*}}: memref<4x10xf32>) -> memref<1x4xf32> {
// CHECK-NOT:     memref.copy
// CHECK-NOT:     memref.load
// CHECK-NOT:     scf.
// CHECK:         %[[PAD:.*]] = memref.alloc() {{.*}} : memref<1x2x7x5xf32>
// CHECK-NEXT:    "gpu.launch_func"({{.*}}, %[[PAD]]) <{kernel = @net_kernels::@net_kernel,
// CHECK-NEXT:    %[[IN:.*]] = memref.subview %[[PAD]][0, 0, 1, 1] [1, 2, 5, 3] [1, 1, 1, 1] : memref<1x2x7x5xf32> to memref<1x2x5x3xf32, strided<[70, 35, 5, 1], offset: 6>>
// CHECK-NEXT:    "gpu.launch_func"({{.*}}, %{{.*}}, %[[IN]]) <{kernel = @net_kernels::@net_kernel_0,
// CHECK:         "gpu.launch_func"({{.*}}) <{kernel = @net_kernels::@net_kernel_5,
// CHECK-NOT:     gpu.launch_func
// CHECK:         func.return
// CHECK:       "gpu.module"() <{sym_name = "net_kernels"}>
// CHECK:         {gpu.kernel, sym_name = "net_kernel", workgroup_attributions = 0 : i64, gpu.known_block_size = array<i32: 64, 1, 1>}
// CHECK-NOT:   "gpu.module"

// CL:          __kernel __attribute__((reqd_work_group_size(64, 1, 1)))
// CL-NEXT:     void net_kernel(__global float *
// CL:          void net_kernel_0(__global const float *{{.*}}, __global float *

// LAUNCH:      "launches": [
// LAUNCH-NEXT:   {
// LAUNCH-NEXT:     "function": "net",
// LAUNCH-NEXT:     "module": "net_kernels",
// LAUNCH-NEXT:     "kernel": "net_kernel",
// LAUNCH:          "kernel": "net_kernel_5",
// LAUNCH-NOT:      "kernel":

// SPIRV:       spirv.module @__spv__net_kernels Physical64 OpenCL requires #spirv.vce<v1.0, [{{.*}}Kernel{{.*}}]
// SPIRV:         spirv.func @net_kernel(
// SPIRV:         spirv.EntryPoint "Kernel" @net_kernel
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


// RUN: not pconv-opt %s -p pconv-lower-to-gpu -o %t 2>&1 | filecheck %s
// RUN: not test -e %t
// REQUIRES: mlir-opt

// A scalar read of a tensor stays on the host after bufferization: one line naming the op,
// located in mlir-opt-22's output (the source locations do not survive the round trip), a
// non-zero exit and no output file.
// CHECK: <mlir-opt-22>:{{[0-9]+}}:{{[0-9]+}}: error: 'memref.load' would run on the host between kernels: no GPU lowering takes it
// CHECK-NOT: Traceback
func.func @host_read(%x: tensor<4xf32>, %i: index) -> f32 {
  %e = tensor.extract %x[%i] : tensor<4xf32>
  func.return %e : f32
}
